package state_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

func TestCycleNext(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for i := range 200 {
		id := fmt.Sprintf("n%03d", i)
		// Quarters: the first 7 days of the next quarter, from 12:00 UTC on its first day.
		q := state.Quarterly.Next(id, at)
		from := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
		if q.Before(from) || !q.Before(from.Add(state.QuarterWindow)) {
			t.Fatalf("%s: quarterly next %v, want in the week from %v", id, q, from)
		}
		if again := state.Quarterly.Next(id, q); again.Sub(q) < 89*24*time.Hour || again.Sub(q) > 93*24*time.Hour {
			t.Fatalf("%s: the quarter after %v is %v", id, q, again)
		}
		// Intervals: within one cycle, then exactly a cycle later, at the same phase.
		cyc := state.Interval(90)
		n := cyc.Next(id, at)
		if !n.After(at) || n.Sub(at) > 90*24*time.Hour {
			t.Fatalf("%s: next %v after %v", id, n, at)
		}
		if again := cyc.Next(id, n); again.Sub(n) != 90*24*time.Hour {
			t.Fatalf("%s: next after %v is %v, want a cycle later", id, n, again)
		}
		if p := state.Phase(id); p < 0 || p >= 1 {
			t.Fatalf("%s: phase %v", id, p)
		}
	}
	if a, b := state.Interval(90).Next("x", at), state.Interval(90).Next("y", at); a.Equal(b) {
		t.Fatalf("two users due at the same instant %v: no spread", a)
	}
	if err := (state.Cycle{Every: time.Millisecond}).Validate(); err == nil {
		t.Fatal("a millisecond cycle validated")
	}
}

// cycleEnv is a store with n known users whose first-activity triggers
// are recomputed, at start.
type cycleEnv struct {
	s     *state.Store
	rdb   redis.UniversalClient
	ids   []string
	clock time.Time
}

func newCycleEnv(t *testing.T, n int, start time.Time, cyc state.Cycle) *cycleEnv {
	t.Helper()
	e := &cycleEnv{clock: start}
	s, rdb := newClockedStore(t, &e.clock)
	e.s, e.rdb = s, rdb
	var items []state.Item
	for i := range n {
		id := fmt.Sprintf("cy%04d", i)
		e.ids = append(e.ids, id)
		items = append(items, state.Item{Event: payment("p-"+id, id, start, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	}
	apply(t, s, items...)
	got := e.drain(t, cyc, 1000)
	if len(got) != 1 || len(got[0].Claims) != n || got[0].Periodic() {
		t.Fatalf("first activity: %d batches", len(got))
	}
	return e
}

// drain claims and saves batches of up to limit at the clock until none is due.
func (e *cycleEnv) drain(t *testing.T, cyc state.Cycle, limit int) []*state.RecomputeBatch {
	t.Helper()
	ctx := context.Background()
	var out []*state.RecomputeBatch
	for {
		b, err := e.s.ClaimRecomputes(ctx, e.clock, limit, time.Minute, cyc)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Claims) == 0 {
			return out
		}
		qs := make([]state.Quota, len(b.Claims))
		for i, c := range b.Claims {
			if c.Due.After(e.clock) {
				t.Fatalf("%s claimed at %v, due %v", c.Member, e.clock, c.Due)
			}
			qs[i] = state.Quota{UserID: c.Member, QuotaFen: 1, Seq: 1, CycleDone: c.Due}
		}
		if err := e.s.SaveQuotas(ctx, b, qs); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// Walking the clock through three cycles, every user is claimed once per
// cycle, at its own due time (the cycle's Next), never early, a step late
// at most.
func TestCycleClaimsEachUserOncePerCycle(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 20, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		cyc   state.Cycle
		step  time.Duration
		until time.Time
	}{
		{"interval", state.Interval(10), 3 * time.Hour, start.AddDate(0, 0, 30)},
		{"quarters", state.Quarterly, 6 * time.Hour, start.AddDate(0, 9, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newCycleEnv(t, 150, start, tc.cyc)
			got := map[string][]time.Time{}
			for e.clock = start; !e.clock.After(tc.until); e.clock = e.clock.Add(tc.step) {
				for _, b := range e.drain(t, tc.cyc, 7) {
					if !b.Periodic() {
						t.Fatalf("a trigger batch at %v", e.clock)
					}
					for _, c := range b.Claims {
						if e.clock.Sub(c.Due) >= tc.step {
							t.Fatalf("%s due %v claimed at %v", c.Member, c.Due, e.clock)
						}
						got[c.Member] = append(got[c.Member], c.Due)
					}
				}
			}
			last := e.clock.Add(-tc.step)
			for _, id := range e.ids {
				var want []time.Time
				for d := tc.cyc.Next(id, start); !d.After(last); d = tc.cyc.Next(id, d) {
					want = append(want, d)
				}
				if len(want) < 2 || !slices.EqualFunc(got[id], want, time.Time.Equal) {
					t.Fatalf("%s recomputed at %v, want %v", id, got[id], want)
				}
			}
		})
	}
}

// Down for two and a half cycles: when the clock comes back every user is
// recomputed once, for its latest due time, then at its next one.
func TestCycleCatchesUpOnceAfterDowntime(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 20, 4, 0, 0, 0, time.UTC)
	cyc := state.Interval(10)
	e := newCycleEnv(t, 200, start, cyc)
	e.drain(t, cyc, 50) // the cursor starts here
	e.clock = start.Add(25 * 24 * time.Hour)
	ctx := context.Background()
	due, known, err := e.s.RecomputeStats(ctx, e.clock, cyc)
	if err != nil || due != 200 || known != 200 {
		t.Fatalf("stats after downtime: %d due of %d, %v; want all 200", due, known, err)
	}
	seen := map[string]bool{}
	for _, b := range e.drain(t, cyc, 13) {
		for _, c := range b.Claims {
			if seen[c.Member] {
				t.Fatalf("%s claimed twice", c.Member)
			}
			seen[c.Member] = true
			if want := cyc.Next(c.Member, e.clock.Add(-10*24*time.Hour)); !c.Due.Equal(want) {
				t.Fatalf("%s due %v, want its latest due time %v", c.Member, c.Due, want)
			}
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d users caught up, want 200", len(seen))
	}
	if due, _, err := e.s.RecomputeStats(ctx, e.clock, cyc); err != nil || due != 0 {
		t.Fatalf("%d still due, %v", due, err)
	}
	for _, id := range e.ids[:20] {
		next, ok, err := e.s.NextRecompute(ctx, id, cyc)
		if want := cyc.Next(id, e.clock); err != nil || !ok || !next.Equal(want) {
			t.Fatalf("%s: next recompute %v %v %v, want %v", id, next, ok, err, want)
		}
	}
	e.clock = e.clock.Add(5 * 24 * time.Hour)
	n := 0
	for _, b := range e.drain(t, cyc, 13) {
		n += len(b.Claims)
	}
	if n < 60 || n > 140 {
		t.Fatalf("%d users due in the next half cycle, want about 100", n)
	}
}

// A batch is a range of phases, so users sharing a phase are never split
// over two batches and a cursor that is a phase alone loses none. (The
// phases here are set by hand to make ties; the index holds Phase(id).)
func TestCycleBatchKeepsTiesTogether(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	s, err := state.New(rdb, state.Config{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cyc := state.Interval(10)
	start := time.Unix(0, 0).AddDate(0, 0, 10*2000) // a cycle's start
	var zs []redis.Z
	for i := range 10 {
		zs = append(zs, redis.Z{Score: 0.5, Member: fmt.Sprintf("t%d", i)})
	}
	zs = append(zs, redis.Z{Score: 0.25, Member: "a"}, redis.Z{Score: 0.25, Member: "b"}, redis.Z{Score: 0.75, Member: "z"})
	if err := rdb.ZAdd(ctx, state.PhaseKey, zs...).Err(); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ClaimRecomputes(ctx, start.Add(24*time.Hour), 3, time.Minute, cyc); err != nil || len(b.Claims) != 0 {
		t.Fatalf("at 0.1 of the cycle: %+v %v", b, err)
	}
	batchOf := map[string]int{}
	for i := 0; ; i++ {
		b, err := s.ClaimRecomputes(ctx, start.Add(6*24*time.Hour), 3, time.Minute, cyc)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Claims) == 0 {
			break
		}
		for _, c := range b.Claims {
			batchOf[c.Member] = i
		}
		if err := s.SaveQuotas(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(batchOf) != 12 {
		t.Fatalf("at 0.6 of the cycle: claimed %v; want a, b and the 10 at 0.5", batchOf)
	}
	for i := range 10 {
		if m := fmt.Sprintf("t%d", i); batchOf[m] != batchOf["t0"] {
			t.Fatalf("the users at phase 0.5 were split over batches: %v", batchOf)
		}
	}
	b, err := s.ClaimRecomputes(ctx, start.Add(8*24*time.Hour), 3, time.Minute, cyc)
	if err != nil || len(b.Claims) != 1 || b.Claims[0].Member != "z" {
		t.Fatalf("at 0.8 of the cycle: %+v %v; want z", b, err)
	}
	if n := rdb.HLen(ctx, state.LeasesKey).Val(); n != 1 {
		t.Fatalf("%d leases, want z's batch", n)
	}
}

// A policy that changes the cycle carries the cursor over: users done
// before the change are not claimed again for the time already passed.
func TestCycleChangeCarriesTheCursorOver(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 20, 4, 0, 0, 0, time.UTC)
	e := newCycleEnv(t, 100, start, state.Interval(90))
	e.clock = start.AddDate(0, 0, 40)
	old := 0
	for _, b := range e.drain(t, state.Interval(90), 50) {
		old += len(b.Claims)
	}
	if b := e.drain(t, state.Interval(30), 50); len(b) != 0 {
		t.Fatalf("%d batches right after the change, want none", len(b))
	}
	e.clock = e.clock.AddDate(0, 0, 30)
	seen := map[string]int{}
	for _, b := range e.drain(t, state.Interval(30), 50) {
		for _, c := range b.Claims {
			seen[c.Member]++
		}
	}
	if len(seen) != 100 || old == 0 {
		t.Fatalf("%d users in the first new cycle (%d before the change), want all 100 once", len(seen), old)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s claimed %d times", id, n)
		}
	}
}

// claimCounts drains what is due at the clock and counts each user's claims.
func claimCounts(t *testing.T, e *cycleEnv, cyc state.Cycle) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, b := range e.drain(t, cyc, 1000) {
		for _, c := range b.Claims {
			seen[c.Member]++
		}
	}
	return seen
}

// Switching from calendar quarters to an interval after the quarter's
// window recomputes nobody at once: the cursor carries over at the current
// time, not at the window's end. Instances that run the two modes side by
// side for a while (a policy rolled out one by one) recompute nobody twice.
func TestCycleModeSwitchRecomputesNobodyAgain(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	e := newCycleEnv(t, 300, start, state.Quarterly)
	e.clock = time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC) // the window is over
	if n := len(claimCounts(t, e, state.Quarterly)); n != 300 {
		t.Fatalf("%d users in the quarter's window, want 300", n)
	}
	e.clock = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	claimCounts(t, e, state.Quarterly)
	if got := claimCounts(t, e, state.Interval(90)); len(got) != 0 {
		t.Fatalf("%d users recomputed at once after switching to an interval, want none", len(got))
	}
	for i := range 4 {
		q, iv := claimCounts(t, e, state.Quarterly), claimCounts(t, e, state.Interval(90))
		if len(q)+len(iv) != 0 {
			t.Fatalf("round %d of two modes side by side: %d and %d users claimed again", i, len(q), len(iv))
		}
	}
}

// A batch whose instance died, found again after a downtime longer than a
// cycle, is not recomputed for its old cycle on top of the catch-up.
func TestCycleExpiredLeaseAfterLongDowntimeOnce(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 20, 4, 0, 0, 0, time.UTC)
	cyc := state.Interval(10)
	for _, after := range []time.Duration{25 * 24 * time.Hour, 10*24*time.Hour + 20*time.Hour} {
		t.Run(after.String(), func(t *testing.T) {
			t.Parallel()
			e := newCycleEnv(t, 200, start, cyc)
			e.clock = start.Add(5 * 24 * time.Hour)
			dead, err := e.s.ClaimRecomputes(context.Background(), e.clock, 20, time.Minute, cyc) // its instance dies
			if err != nil || len(dead.Claims) == 0 {
				t.Fatalf("%+v %v", dead, err)
			}
			e.clock = e.clock.Add(after)
			seen := claimCounts(t, e, cyc)
			for id, n := range seen {
				if n != 1 {
					t.Fatalf("%s claimed %d times after the downtime", id, n)
				}
			}
			if len(seen) != 200 && after > 20*24*time.Hour {
				t.Fatalf("%d users caught up after %v, want all 200", len(seen), after)
			}
		})
	}
}

// With the clock behind the cursor (set back, or an instance whose clock
// lags), the stats count what a claim would give: nothing of the cycle.
func TestRecomputeStatsWithTheClockBehind(t *testing.T) {
	t.Parallel()
	cyc := state.Interval(10)
	boundary := time.Unix(0, 0).AddDate(0, 0, 10*2000)
	e := newCycleEnv(t, 200, boundary.Add(-time.Hour), cyc)
	e.clock = boundary.Add(time.Hour)
	claimCounts(t, e, cyc)
	back := boundary.Add(-time.Hour)
	due, _, err := e.s.RecomputeStats(context.Background(), back, cyc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.s.ClaimRecomputes(context.Background(), back, 1000, time.Minute, cyc)
	if err != nil || due != int64(len(b.Claims)) {
		t.Fatalf("clock an hour back over a cycle boundary: stats say %d due, a claim gives %d (%v)", due, len(b.Claims), err)
	}
}
