package credit

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// The detail texts are what a user reads in an explanation: text must
// write exactly what the fmt verbs it replaces write.
func TestTextMatchesFmt(t *testing.T) {
	floats := []float64{0, 1, -1, 0.1, 0.25, 1.0 / 3, 2.5, 1e-7, 123456789, 1e21, 5e-5, math.MaxFloat64, -0.005, 0.125, 0.135}
	for _, f := range floats {
		if got, want := (text{}).g(f).String(), fmt.Sprintf("%g", f); got != want {
			t.Errorf("g(%v) = %q, fmt %%g %q", f, got, want)
		}
		if got, want := (text{}).f2(f).String(), fmt.Sprintf("%.2f", f); got != want {
			t.Errorf("f2(%v) = %q, fmt %%.2f %q", f, got, want)
		}
	}
	for _, n := range []int{0, 7, -3, math.MaxInt, math.MinInt} {
		if got, want := (text{}).d(n).String(), fmt.Sprintf("%d", n); got != want {
			t.Errorf("d(%d) = %q", n, got)
		}
	}
	for _, ns := range [][]int{nil, {}, {4}, {1, 22, -3}} {
		if got, want := (text{}).ints(ns).String(), fmt.Sprintf("%v", ns); got != want {
			t.Errorf("ints(%v) = %q, fmt %%v %q", ns, got, want)
		}
	}
	day := time.Date(2026, 2, 3, 23, 59, 0, 0, time.FixedZone("x", 8*3600))
	if got, want := (text{}).s("since ").date(day).String(), "since "+day.Format(time.DateOnly); got != want {
		t.Errorf("date = %q, want %q", got, want)
	}
}
