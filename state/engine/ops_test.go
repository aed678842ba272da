package engine

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// frozenSetup is a user with open bills due five days ago.
func frozenSetup(t *testing.T, ids ...string) *State {
	t.Helper()
	s := &State{}
	dueAt := t0.Add(-5 * day)
	for _, id := range ids {
		applyOK(t, s, t0, noOff(dueEv("due-"+id, dueAt.Add(-day), id, 1000, dueAt)))
	}
	return s
}

func TestAdvanceBill(t *testing.T) {
	s := frozenSetup(t, "b1")
	froze, err := AdvanceBill(s, "b1", 1, false)
	if froze || err != nil || s.FrozenOverdue {
		t.Fatalf("stage 1: %v %v", froze, err)
	}
	if b := s.OpenBill("b1"); b.Stage != 1 || b.Froze {
		t.Fatalf("bill %+v", b)
	}
	froze, err = AdvanceBill(s, "b1", 4, true)
	if !froze || err != nil || !s.FrozenOverdue {
		t.Fatalf("freeze: %v %v frozen %v", froze, err, s.FrozenOverdue)
	}
	if b := s.OpenBill("b1"); b.Stage != 4 || !b.Froze {
		t.Fatalf("bill %+v", b)
	}
	// frozen already: not again; a lower stage does not lower the bill's
	froze, err = AdvanceBill(s, "b1", 2, true)
	if froze || err != nil || !s.FrozenOverdue {
		t.Fatalf("freeze again: %v %v", froze, err)
	}
	if b := s.OpenBill("b1"); b.Stage != 4 {
		t.Fatalf("stage lowered: %+v", b)
	}
	// the encoding keeps what it did
	d, err := Decode(enc(s))
	if err != nil || !d.FrozenOverdue || !d.OpenBill("b1").Froze {
		t.Fatalf("decoded %+v %v", d, err)
	}
}

func TestAdvanceBillGone(t *testing.T) {
	s := frozenSetup(t, "open")
	var c counter
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "settled", 100, t0)), noOff(paidEv(c.id(), t0, "settled", 100)),
		noOff(paidEv(c.id(), t0, "prepaid", 100)))
	before := enc(s)
	for _, id := range []string{"unknown", "settled", "prepaid"} {
		froze, err := AdvanceBill(s, id, 4, true)
		if froze || !errors.Is(err, ErrBillGone) {
			t.Errorf("%s: %v %v, want ErrBillGone", id, froze, err)
		}
	}
	if !slices.Equal(before, enc(s)) || s.FrozenOverdue {
		t.Fatal("AdvanceBill of a bill gone changed the state")
	}
}

func TestUnfreezeOnRepayment(t *testing.T) {
	s := frozenSetup(t, "b1", "b2")
	var c counter
	if froze, _ := AdvanceBill(s, "b1", 4, true); !froze {
		t.Fatal("not frozen")
	}
	// b2 is overdue too but did not freeze: it does not keep the user frozen
	if _, err := AdvanceBill(s, "b2", 3, false); err != nil {
		t.Fatal(err)
	}
	o := apply1(t, s, noOff(paidEv(c.id(), t0, "b1", 400)))
	if o.Unfroze || !s.FrozenOverdue {
		t.Fatalf("partial repayment unfroze: %+v", o)
	}
	o = apply1(t, s, noOff(paidEv(c.id(), t0, "b2", 1000)))
	if o.Unfroze || !s.FrozenOverdue {
		t.Fatalf("settling another bill unfroze: %+v", o)
	}
	o = apply1(t, s, noOff(paidEv(c.id(), t0, "b1", 600)))
	if !o.Unfroze || s.FrozenOverdue {
		t.Fatalf("settling the freezing bill: %+v frozen %v", o, s.FrozenOverdue)
	}
	if b := s.bill("b1"); b.Status != BillSettled || b.Froze {
		t.Fatalf("bill %+v", b)
	}
	// not frozen: settling reports no unfreeze
	s2 := frozenSetup(t, "b3")
	if o := apply1(t, s2, noOff(paidEv(c.id(), t0, "b3", 1000))); o.Unfroze {
		t.Fatal("unfroze a user not frozen")
	}
}

func TestUnfreezeNeedsEveryFreezingBill(t *testing.T) {
	s := frozenSetup(t, "b1", "b2", "b3")
	var c counter
	if froze, _ := AdvanceBill(s, "b1", 4, true); !froze {
		t.Fatal("first freeze")
	}
	if froze, _ := AdvanceBill(s, "b2", 4, true); froze {
		t.Fatal("frozen twice")
	}
	out := applyOK(t, s, t0,
		noOff(paidEv(c.id(), t0, "b3", 1000)), // not freezing
		noOff(paidEv(c.id(), t0, "b2", 1000)),
		noOff(paidEv(c.id(), t0, "b1", 999)),
		noOff(paidEv(c.id(), t0, "b1", 1)),
	)
	for i, want := range []bool{false, false, false, true} {
		if out[i].Unfroze != want {
			t.Fatalf("repayment %d: unfroze %v, want %v", i, out[i].Unfroze, want)
		}
	}
	if s.FrozenOverdue {
		t.Fatal("still frozen")
	}
	// a redelivery of the unfreezing repayment does not unfreeze again
	s2 := frozenSetup(t, "b1")
	AdvanceBill(s2, "b1", 4, true)
	e := paidEv("final", t0, "b1", 1000)
	if o := apply1(t, s2, at(e, 3)); !o.Unfroze {
		t.Fatal("no unfreeze")
	}
	if o := apply1(t, s2, at(e, 3)); o.Status != Redelivered || o.Unfroze {
		t.Fatalf("redelivery %+v", o)
	}
	if o := apply1(t, s2, at(e, 4)); o.Status != Duplicate || o.Unfroze {
		t.Fatalf("duplicate %+v", o)
	}
}

// A freezing bill re-sent by upstream keeps freezing the user.
func TestFreezeSurvivesResentDue(t *testing.T) {
	s := frozenSetup(t, "b1")
	var c counter
	AdvanceBill(s, "b1", 4, true)
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "b1", 1000, t0.Add(-5*day))))
	if b := s.OpenBill("b1"); !b.Froze || b.Stage != 4 || !s.FrozenOverdue {
		t.Fatalf("bill %+v", b)
	}
}

func TestSaveQuota(t *testing.T) {
	s := &State{}
	cycle := time.Date(2100, 1, 1, 0, 0, 0, 0, shanghai)
	SaveQuota(s, 500000, 3, cycle)
	if !s.HasQuota || s.QuotaFen != 500000 || s.Recomputes != 3 || s.CycleDone != cycle.Unix() {
		t.Fatalf("%+v", s)
	}
	SaveQuota(s, 0, 4, time.Time{})
	if !s.HasQuota || s.QuotaFen != 0 || s.Recomputes != 4 || s.CycleDone != 0 {
		t.Fatalf("a quota of 0 outside a cycle: %+v", s)
	}
	d, err := Decode(enc(s))
	if err != nil || !d.HasQuota || d.Recomputes != 4 {
		t.Fatalf("decoded %+v %v", d, err)
	}
}

func TestRecordQuotaCheck(t *testing.T) {
	s := &State{}
	const window = 30 * day
	now := t0
	if n := RecordQuotaCheck(s, now, window); n != 1 {
		t.Fatalf("first check: %d", n)
	}
	if n := RecordQuotaCheck(s, now.Add(window-time.Second), window); n != 2 {
		t.Fatalf("within the window: %d", n)
	}
	// the first is now exactly a window ago: out
	if n := RecordQuotaCheck(s, now.Add(window), window); n != 2 {
		t.Fatalf("a window later: %d", n)
	}
	if want := []int64{now.Add(window).Unix(), now.Add(window - time.Second).Unix()}; !slices.Equal(s.QuotaChecks, want) {
		t.Fatalf("checks %v, want %v", s.QuotaChecks, want)
	}
	// capped at MaxQuotaChecks, newest first
	s = &State{}
	for i := range MaxQuotaChecks + 5 {
		n := RecordQuotaCheck(s, now.Add(time.Duration(i)*time.Minute), window)
		if want := min(i+1, MaxQuotaChecks); n != want {
			t.Fatalf("check %d: %d, want %d", i, n, want)
		}
	}
	if len(s.QuotaChecks) != MaxQuotaChecks || s.QuotaChecks[0] != now.Add((MaxQuotaChecks+4)*time.Minute).Unix() ||
		!slices.IsSortedFunc(s.QuotaChecks, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("checks %v", s.QuotaChecks)
	}
	// a shorter window forgets more
	// kept: minutes 5..20; within 10 minutes of minute 25: 16..20
	if n := RecordQuotaCheck(s, now.Add(25*time.Minute), 10*time.Minute); n != 1+5 {
		t.Fatalf("ten-minute window: %d", n)
	}
}

func TestSetOverride(t *testing.T) {
	s := &State{}
	ov := &Override{QuotaFen: 100, Reason: "vip", Operator: "alice", ExpiresAt: t0.Unix()}
	if err := SetOverride(s, ov); err != nil {
		t.Fatal(err)
	}
	if s.Override == ov || !reflect.DeepEqual(s.Override, ov) {
		t.Fatalf("override %+v is not a copy of %+v", s.Override, ov)
	}
	ov.Reason, ov.QuotaFen = "changed", 1
	if s.Override.Reason != "vip" || s.Override.QuotaFen != 100 {
		t.Fatal("changing the caller's override changed the state")
	}
	// too long: refused, the state as it was
	long := strings.Repeat("x", MaxString+1)
	for _, bad := range []*Override{{Reason: long}, {Operator: long}, {Reason: long, Operator: long}} {
		err := SetOverride(s, bad)
		if err == nil || s.Override.Reason != "vip" {
			t.Fatalf("%+v: %v, override %+v", bad, err, s.Override)
		}
	}
	err := SetOverride(s, &Override{Reason: long, Operator: long})
	if !strings.Contains(err.Error(), "reason") || !strings.Contains(err.Error(), "operator") {
		t.Fatalf("error names one field only: %v", err)
	}
	ok := strings.Repeat("y", MaxString)
	if err := SetOverride(s, &Override{Reason: ok, Operator: ok}); err != nil || s.Override.Reason != ok {
		t.Fatalf("MaxString bytes: %v", err)
	}
	if err := SetOverride(s, nil); err != nil || s.Override != nil {
		t.Fatalf("remove: %v %+v", err, s.Override)
	}
	d, err := Decode(enc(s))
	if err != nil || d.Override != nil {
		t.Fatalf("decoded %+v %v", d, err)
	}
}
