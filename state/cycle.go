package state

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// QuarterWindow is how long a calendar-quarter cycle's recomputes are
// spread over, from QuarterStartOffset after the quarter begins in UTC.
// 12:00 UTC on the first day is when the new quarter has begun in every
// time zone (UTC-12 to UTC+14), so a user's "last three full months" have
// rolled over wherever the user lives.
const (
	QuarterWindow      = 7 * 24 * time.Hour
	QuarterStartOffset = 12 * time.Hour
)

// Cycle is the periodic recompute schedule. Cycles are numbered; cycle k's
// users are due from Start(k), spread over the cycle's window by each
// user's phase (a fixed fraction in [0, 1) from a hash of the id), so no
// two users are bound to the same instant and there is no thundering herd
// at a boundary.
//
// A user's phase does not depend on the cycle, so the schedule index
// (PhaseKey) is written once per user and never moved: a recompute pass
// walks it with a cursor instead of rescheduling each user it recomputes.
type Cycle struct {
	// Every is the length of a cycle, cycles aligned to the Unix epoch, the
	// window the whole cycle. Zero means calendar quarters: cycle k is
	// quarter k%4 of year k/4, its window QuarterWindow from
	// QuarterStartOffset after the quarter begins.
	Every time.Duration
}

// Quarterly is the calendar-quarter cycle.
var Quarterly = Cycle{}

// Interval is a cycle of a number of days.
func Interval(days int) Cycle { return Cycle{Every: time.Duration(days) * 24 * time.Hour} }

// Validate says whether the cycle is usable.
func (c Cycle) Validate() error {
	if c.Every < 0 || c.Every > 0 && c.Every < time.Second {
		return fmt.Errorf("state: recompute cycle of %v: want at least a second, or 0 for calendar quarters", c.Every)
	}
	return nil
}

func (c Cycle) String() string {
	if c.Every == 0 {
		return "calendar quarters"
	}
	return "every " + c.Every.String()
}

// tag names the cycle in the stored cursor, so a cursor written under
// another cycle is recognised and carried over (see parseCycleTag).
func (c Cycle) tag() string {
	if c.Every == 0 {
		return "q"
	}
	return "i" + strconv.FormatInt(int64(c.Every/time.Second), 10)
}

func parseCycleTag(t string) (Cycle, bool) {
	if t == "q" {
		return Quarterly, true
	}
	s, ok := strings.CutPrefix(t, "i")
	if !ok {
		return Cycle{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return Cycle{}, false
	}
	return Cycle{Every: time.Duration(n) * time.Second}, true
}

// start is when cycle k begins (Unix seconds).
func (c Cycle) start(k int64) int64 {
	if c.Every == 0 {
		y, q := k/4, k%4
		if q < 0 {
			y, q = y-1, q+4
		}
		return time.Date(int(y), time.Month(3*q+1), 1, 0, 0, 0, 0, time.UTC).Add(QuarterStartOffset).Unix()
	}
	return k * int64(c.Every/time.Second)
}

// window is how many seconds a cycle's users are spread over.
func (c Cycle) window() int64 {
	if c.Every == 0 {
		return int64(QuarterWindow / time.Second)
	}
	return int64(c.Every / time.Second)
}

// index is the last cycle begun at t (Unix seconds).
func (c Cycle) index(t int64) int64 {
	if c.Every == 0 {
		u := time.Unix(t, 0).UTC()
		k := int64(u.Year())*4 + int64(u.Month()-1)/3
		if c.start(k) > t {
			k--
		}
		return k
	}
	n := int64(c.Every / time.Second)
	k := t / n
	if t < 0 && t%n != 0 {
		k--
	}
	return k
}

// due is when a user of phase frac is due in cycle k (Unix seconds): the
// first second at which reached(k, t) >= frac.
func (c Cycle) due(k int64, frac float64) int64 {
	return c.start(k) + c.offset(frac)
}

// offset is how long after its cycle's start a user of phase frac is due.
func (c Cycle) offset(frac float64) int64 {
	return int64(math.Ceil(frac * float64(c.window())))
}

// reached is the highest phase due in cycle k at t: below 0 before the
// cycle's window opens, 1 once it has closed. Every phase up to it has its
// due time at or before t, rounding included.
func (c Cycle) reached(k int64, t int64) float64 {
	r := math.Min(1, float64(t-c.start(k))/float64(c.window()))
	for c.due(k, r) > t {
		r = math.Nextafter(r, math.Inf(-1))
	}
	return r
}

// Next is the user's first periodic recompute after t.
func (c Cycle) Next(userID string, t time.Time) time.Time {
	f := Phase(userID)
	k := c.index(t.Unix())
	for c.due(k, f) <= t.Unix() {
		k++
	}
	return time.Unix(c.due(k, f), 0)
}

// Phase is the user's fixed place in every cycle, in [0, 1): a hash of
// the id (FNV-1a, mixed), scaled.
func Phase(userID string) float64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(userID); i++ {
		h ^= uint64(userID[i])
		h *= 1099511628211
	}
	// FNV's high bits barely change between ids that differ in their last
	// characters: mix them (MurmurHash3's finaliser) before scaling.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h>>11) / (1 << 53)
}
