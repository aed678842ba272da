package credit

import (
	"strconv"
	"time"
)

// text builds the detail texts of checks and factors. It writes what
// fmt.Sprintf's %d, %g, %.2f and %v of an []int write, without fmt's
// reflection: Evaluate runs once for every user of a recompute, and these
// texts were a fifth of its time. Each method appends and returns the
// text, so calls chain: txt().s("pay score ").d(n).String().
type text []byte

// txt starts a text with room for any detail: it stays on the stack, and
// String makes the one allocation.
func txt() text { return make(text, 0, 128) }

func (t text) s(s string) text { return append(t, s...) }

// d is %d.
func (t text) d(n int) text { return strconv.AppendInt(t, int64(n), 10) }

// d64 is %d of an int64 (amounts in fen).
func (t text) d64(n int64) text { return strconv.AppendInt(t, n, 10) }

// g is %g (fmt's %g is strconv's shortest 'g').
func (t text) g(f float64) text { return strconv.AppendFloat(t, f, 'g', -1, 64) }

// f2 is %.2f.
func (t text) f2(f float64) text { return strconv.AppendFloat(t, f, 'f', 2, 64) }

// ints is %v of an []int: "[1 2 3]".
func (t text) ints(ns []int) text {
	t = append(t, '[')
	for i, n := range ns {
		if i > 0 {
			t = append(t, ' ')
		}
		t = t.d(n)
	}
	return append(t, ']')
}

// date is time.DateOnly.
func (t text) date(tm time.Time) text { return tm.AppendFormat(t, time.DateOnly) }

func (t text) String() string { return string(t) }
