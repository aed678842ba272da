package par

import (
	"strings"
	"sync/atomic"
	"testing"
)

func TestForCallsEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, MinChunk - 1, MinChunk, 2*MinChunk + 1, 1000, 1001} {
		calls := make([]atomic.Int32, n)
		For(n, func(i int) { calls[i].Add(1) })
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
	}
}

func TestForRaisesAPanicInTheCaller(t *testing.T) {
	var done atomic.Int32
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "boom at 999") {
			t.Fatalf("recovered %v, want the worker's panic", r)
		}
		// The other chunks ran to their end before the panic was raised.
		if done.Load() != 999 {
			t.Fatalf("%d iterations done, want 999", done.Load())
		}
	}()
	For(1000, func(i int) {
		if i == 999 { // the last of its chunk
			panic("boom at 999")
		}
		done.Add(1)
	})
}
