package engine

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

// opEv is an operator event of user u1 at at.
func opEv(id string, at time.Time, op events.Operator) *events.Event {
	op.UserID = "u1"
	if op.Operator == "" {
		op.Operator = "alice"
	}
	return &events.Event{ID: id, Type: events.TypeOperator, Source: "fenqi/admin", Subject: "u1", Time: at, Op: &op}
}

// opItem is an operator event read from the operator topic (index 5).
func opItem(e *events.Event, off int64) Item { return tp(e, 5, 0, off) }

func TestOperatorEvents(t *testing.T) {
	t.Parallel()
	exp := t0.Add(30 * day)
	for _, c := range []struct {
		name      string
		before    func(s *State)
		op        events.Operator
		recompute bool
		check     func(t *testing.T, s *State)
	}{
		{name: "set_override", op: events.Operator{Action: events.OperatorSetOverride, QuotaFen: 800000, Reason: "VIP", ExpiresAt: exp},
			recompute: true, check: func(t *testing.T, s *State) {
				want := Override{QuotaFen: 800000, Reason: "VIP", Operator: "alice", ExpiresAt: exp.Unix()}
				if s.Override == nil || *s.Override != want {
					t.Fatalf("Override = %+v, want %+v", s.Override, want)
				}
			}},
		{name: "set_override of zero", op: events.Operator{Action: events.OperatorSetOverride, QuotaFen: 0, Reason: "fraud", ExpiresAt: exp},
			recompute: true, check: func(t *testing.T, s *State) {
				if s.Override == nil || s.Override.QuotaFen != 0 || s.Override.Reason != "fraud" {
					t.Fatalf("Override = %+v", s.Override)
				}
			}},
		{name: "clear_override", before: func(s *State) { s.Override = &Override{QuotaFen: 5, Reason: "r", ExpiresAt: exp.Unix()} },
			op: events.Operator{Action: events.OperatorClearOverride}, recompute: true, check: func(t *testing.T, s *State) {
				if s.Override != nil {
					t.Fatalf("Override = %+v, want none", s.Override)
				}
			}},
		{name: "set_special", op: events.Operator{Action: events.OperatorSetSpecial, QuotaFen: 300000, Reason: "surgery", ExpiresAt: exp},
			check: func(t *testing.T, s *State) {
				want := Special{QuotaFen: 300000, Reason: "surgery", Operator: "alice", ExpiresAt: exp.Unix()}
				if s.Special == nil || *s.Special != want {
					t.Fatalf("Special = %+v, want %+v", s.Special, want)
				}
			}},
		{name: "clear_special", before: func(s *State) { s.Special = &Special{QuotaFen: 5, Reason: "r", ExpiresAt: exp.Unix()} },
			op: events.Operator{Action: events.OperatorClearSpecial}, check: func(t *testing.T, s *State) {
				if s.Special != nil {
					t.Fatalf("Special = %+v, want none", s.Special)
				}
			}},
		{name: "quota_check at the event's time", before: func(s *State) { s.QuotaChecks = []int64{t0.Add(-40 * day).Unix(), t0.Add(-50 * day).Unix()} },
			op: events.Operator{Action: events.OperatorQuotaCheck}, check: func(t *testing.T, s *State) {
				// the event is an hour old; the checks beyond 30 days are gone
				if want := []int64{t0.Add(-time.Hour).Unix()}; !slices.Equal(s.QuotaChecks, want) {
					t.Fatalf("QuotaChecks = %v, want %v", s.QuotaChecks, want)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &State{}
			if c.before != nil {
				c.before(s)
			}
			o := applyOK(t, s, t0, opItem(opEv("op-1", t0.Add(-time.Hour), c.op), 7))[0]
			if o.RecomputeNow != c.recompute {
				t.Fatalf("RecomputeNow = %v, want %v", o.RecomputeNow, c.recompute)
			}
			c.check(t, s)
			// the encoding keeps it
			d, err := Decode(enc(s))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, d)
			// a redelivery and an upstream duplicate change nothing
			before := enc(s)
			again := Apply(s, []Item{opItem(opEv("op-1", t0.Add(-time.Hour), c.op), 7), opItem(opEv("op-1", t0.Add(-time.Hour), c.op), 8)}, testConfig(), t0)
			if again[0].Status != Redelivered || again[1].Status != Duplicate || again[0].RecomputeNow || again[1].RecomputeNow {
				t.Fatalf("again: %v %v", again[0], again[1])
			}
			if s.Offsets[len(s.Offsets)-1] != (Offset{Topic: 5, Offset: 8}) {
				t.Fatalf("offsets %+v", s.Offsets)
			}
			s.Offsets = d.Offsets
			if !bytes.Equal(enc(s), before) {
				t.Fatal("a repeat changed the state")
			}
		})
	}
}

// TestOperatorReplayRestores: an override and a special quota applied
// from their events come back in a fresh state from the same events (a
// rebuild), and a clear after them wins.
func TestOperatorReplayRestores(t *testing.T) {
	t.Parallel()
	exp := t0.Add(60 * day)
	evs := []*events.Event{
		opEv("op-1", t0.Add(-3*time.Hour), events.Operator{Action: events.OperatorSetOverride, QuotaFen: 1000, Reason: "a", ExpiresAt: exp}),
		opEv("op-2", t0.Add(-2*time.Hour), events.Operator{Action: events.OperatorSetSpecial, QuotaFen: 2000, Reason: "b", ExpiresAt: exp}),
		opEv("op-3", t0.Add(-time.Hour), events.Operator{Action: events.OperatorQuotaCheck}),
		opEv("op-4", t0.Add(-time.Minute), events.Operator{Action: events.OperatorClearSpecial}),
	}
	var items []Item
	for i, e := range evs {
		items = append(items, opItem(e, int64(i)))
	}
	live := &State{}
	for _, it := range items {
		applyOK(t, live, t0, it)
	}
	rebuilt := &State{}
	applyOK(t, rebuilt, t0, items...)
	if !bytes.Equal(enc(live), enc(rebuilt)) {
		t.Fatalf("rebuilt state differs:\n%+v\n%+v", rebuilt, live)
	}
	if rebuilt.Override == nil || rebuilt.Override.QuotaFen != 1000 || rebuilt.Special != nil || len(rebuilt.QuotaChecks) != 1 {
		t.Fatalf("rebuilt: override %+v special %+v checks %v", rebuilt.Override, rebuilt.Special, rebuilt.QuotaChecks)
	}
}

func TestOperatorRefused(t *testing.T) {
	t.Parallel()
	exp := t0.Add(day)
	long := strings.Repeat("x", MaxString+1)
	for _, c := range []struct {
		name string
		op   events.Operator
		want string
	}{
		{"override reason too long", events.Operator{Action: events.OperatorSetOverride, Reason: long, ExpiresAt: exp}, "override reason"},
		{"override operator too long", events.Operator{Action: events.OperatorSetOverride, Reason: "r", Operator: long, ExpiresAt: exp}, "override operator"},
		{"special reason too long", events.Operator{Action: events.OperatorSetSpecial, Reason: long, ExpiresAt: exp}, "special quota reason"},
		{"special operator too long", events.Operator{Action: events.OperatorSetSpecial, Reason: "r", Operator: long, ExpiresAt: exp}, "special quota operator"},
		{"unknown action", events.Operator{Action: "delete_user"}, "unknown operator action"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &State{Override: &Override{QuotaFen: 1, Reason: "kept"}}
			o := Apply(s, []Item{opItem(opEv("op-1", t0, c.op), 3)}, testConfig(), t0)[0]
			if o.Status != Refused || o.Err == nil || !strings.Contains(o.Err.Error(), c.want) || o.RecomputeNow {
				t.Fatalf("outcome %+v, want refused naming %q", o, c.want)
			}
			if s.Override == nil || s.Override.Reason != "kept" || s.Special != nil || slices.Contains(s.Dedup, Fingerprint("fenqi/admin", "op-1")) {
				t.Fatalf("a refused event changed the state: %+v", s)
			}
		})
	}
}

func TestRecordQuotaCheckOutOfOrder(t *testing.T) {
	t.Parallel()
	s := &State{}
	for _, h := range []int{1, 5, 3} { // hours before t0, arriving out of order
		RecordQuotaCheck(s, t0.Add(-time.Duration(h)*time.Hour), QuotaCheckWindow)
	}
	want := []int64{t0.Add(-time.Hour).Unix(), t0.Add(-3 * time.Hour).Unix(), t0.Add(-5 * time.Hour).Unix()}
	if !slices.Equal(s.QuotaChecks, want) {
		t.Fatalf("QuotaChecks = %v, want newest first %v", s.QuotaChecks, want)
	}
	// one older than the window of the newest is not kept
	if n := RecordQuotaCheck(s, t0.Add(-40*day), QuotaCheckWindow); n != 1 || len(s.QuotaChecks) != 3 {
		t.Fatalf("an old check: n %d, kept %v", n, s.QuotaChecks)
	}
	// at most MaxQuotaChecks, the latest
	for i := range 2 * MaxQuotaChecks {
		RecordQuotaCheck(s, t0.Add(time.Duration(i)*time.Minute), QuotaCheckWindow)
	}
	if len(s.QuotaChecks) != MaxQuotaChecks || s.QuotaChecks[0] != t0.Add(time.Duration(2*MaxQuotaChecks-1)*time.Minute).Unix() {
		t.Fatalf("QuotaChecks = %v", s.QuotaChecks)
	}
}
