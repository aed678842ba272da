package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

func creditEv(id string, at time.Time, fen int64, scene events.Scene, installments int) *events.Event {
	e := payEv(id, at, fen, scene, "dev")
	e.Payment.Installments = installments
	return e
}

// A check that draws e-commerce on the partner pool, local life on main and
// Weilidai, medical on the special quota and the rest on main, and refuses
// whatever is above the pool's available quota.
func poolCheck(s *State, _ *time.Location, p *events.Payment, at time.Time) (Pool, []string) {
	pool := PoolPayScore
	switch p.Scene {
	case events.SceneEcommerce:
		pool = PoolIndependent
	case events.SceneLocalLife:
		pool = PoolSharedWeilidai
	case events.SceneMedical:
		pool = PoolSpecialTemporary
	}
	if p.AmountFen > s.Available(pool, at).AvailableFen {
		return pool, []string{"FENQI_QUOTA_EXCEEDED"}
	}
	return pool, nil
}

func TestCreditPaymentsDrawOnTheirPool(t *testing.T) {
	cfg := testConfig()
	cfg.Credit = poolCheck
	s := &State{HasQuota: true, QuotaFen: 100_000,
		Profile: &Profile{PartnerLimitFen: 50_000, WeilidaiLimitFen: 30_000},
		Special: &Special{QuotaFen: 20_000, ExpiresAt: t0.Add(24 * time.Hour).Unix()}}
	var c counter
	apply := func(e *events.Event) Outcome {
		t.Helper()
		o := Apply(s, []Item{noOff(e)}, cfg, t0)[0]
		if o.Status != Applied {
			t.Fatalf("%s: %v %v", e.ID, o.Status, o.Err)
		}
		return o
	}
	// pay now: no credit, nothing outstanding
	if o := apply(creditEv(c.id(), t0, 900_000, events.SceneOfflineRetail, 0)); o.Credit || s.Outstanding != [NumLines]int64{} {
		t.Fatalf("a pay-now payment: %+v, outstanding %v", o, s.Outstanding)
	}
	// pay later (1 period) and installments draw on main
	apply(creditEv(c.id(), t0, 40_000, events.SceneOfflineRetail, 1))
	o := apply(creditEv(c.id(), t0, 50_000, events.SceneOfflineRetail, 6))
	if !o.Credit || o.Pool != PoolPayScore || len(o.CreditRefused) != 0 || s.Outstanding[LineMain] != 90_000 {
		t.Fatalf("main: %+v, outstanding %v", o, s.Outstanding)
	}
	// above what is left: refused, nothing drawn
	if o := apply(creditEv(c.id(), t0, 10_001, events.SceneOfflineRetail, 3)); !slices.Equal(o.CreditRefused, []string{"FENQI_QUOTA_EXCEEDED"}) ||
		s.Outstanding[LineMain] != 90_000 {
		t.Fatalf("over the main quota: %+v, outstanding %v", o, s.Outstanding)
	}
	// local life uses main and Weilidai: the tighter (main, 10,000 left) binds
	if q := s.Available(PoolSharedWeilidai, t0); q.AvailableFen != 10_000 || q.LimitFen != 100_000 {
		t.Fatalf("shared pool %+v", q)
	}
	apply(creditEv(c.id(), t0, 10_000, events.SceneLocalLife, 3))
	if s.Outstanding[LineMain] != 100_000 || s.Outstanding[LineWeilidai] != 10_000 {
		t.Fatalf("local life: outstanding %v", s.Outstanding)
	}
	// the partner pool is independent of the main quota
	apply(creditEv(c.id(), t0, 50_000, events.SceneEcommerce, 12))
	if s.Outstanding[LinePartner] != 50_000 || s.Available(PoolIndependent, t0).AvailableFen != 0 {
		t.Fatalf("partner: outstanding %v", s.Outstanding)
	}
	// the special quota, until it expires
	apply(creditEv(c.id(), t0, 5_000, events.SceneMedical, 3))
	if q := s.Available(PoolSpecialTemporary, t0); q.AvailableFen != 15_000 || q.OutstandingFen != 5_000 {
		t.Fatalf("special %+v", q)
	}
	if q := s.Available(PoolSpecialTemporary, t0.Add(25*time.Hour)); q.AvailableFen != 0 || q.LimitFen != 0 {
		t.Fatalf("special after it expired %+v", q)
	}

	// repayments free their bill's pool: a main bill, a local-life bill
	// (both lines), an overpayment frees no more than the bill, a bill paid
	// ahead frees its pool when its due event names it
	due := t0.Add(10 * 24 * time.Hour)
	apply(&events.Event{ID: c.id(), Type: events.TypeRepaymentDue, Source: testSource, Subject: "u1", Time: t0,
		Due: &events.RepaymentDue{UserID: "u1", BillID: "m1", AmountFen: 30_000, DueAt: due}})
	apply(paidEv(c.id(), t0, "m1", 10_000))
	if s.Outstanding[LineMain] != 90_000 {
		t.Fatalf("after 10,000 repaid on main: %v", s.Outstanding)
	}
	apply(paidEv(c.id(), t0, "m1", 50_000)) // 20,000 owed: frees 20,000
	if s.Outstanding[LineMain] != 70_000 {
		t.Fatalf("after an overpayment: %v", s.Outstanding)
	}
	apply(&events.Event{ID: c.id(), Type: events.TypeRepaymentDue, Source: testSource, Subject: "u1", Time: t0,
		Due: &events.RepaymentDue{UserID: "u1", BillID: "ll", AmountFen: 4_000, DueAt: due, Pool: events.PoolSharedWeilidai}})
	apply(paidEv(c.id(), t0, "ll", 4_000))
	if s.Outstanding[LineMain] != 66_000 || s.Outstanding[LineWeilidai] != 6_000 {
		t.Fatalf("after a local-life bill: %v", s.Outstanding)
	}
	apply(paidEv(c.id(), t0, "ec", 7_000))
	if s.Outstanding[LinePartner] != 50_000 {
		t.Fatalf("a repayment ahead of its bill freed quota already: %v", s.Outstanding)
	}
	apply(&events.Event{ID: c.id(), Type: events.TypeRepaymentDue, Source: testSource, Subject: "u1", Time: t0,
		Due: &events.RepaymentDue{UserID: "u1", BillID: "ec", AmountFen: 20_000, DueAt: due, Pool: events.PoolIndependent}})
	if s.Outstanding[LinePartner] != 43_000 || s.OpenBill("ec") == nil || s.OpenBill("ec").Amount != 13_000 {
		t.Fatalf("a bill paid ahead, then due: outstanding %v, bill %+v", s.Outstanding, s.bill("ec"))
	}
	// outstanding never goes below zero
	apply(&events.Event{ID: c.id(), Type: events.TypeRepaymentDue, Source: testSource, Subject: "u1", Time: t0,
		Due: &events.RepaymentDue{UserID: "u1", BillID: "sp", AmountFen: 90_000, DueAt: due, Pool: events.PoolSpecialTemporary}})
	apply(paidEv(c.id(), t0, "sp", 90_000))
	if s.Outstanding[LineSpecial] != 0 {
		t.Fatalf("special outstanding %v", s.Outstanding)
	}

	// without a check every credit payment is accepted on main
	s2 := &State{}
	if o := Apply(s2, []Item{noOff(creditEv(c.id(), t0, 1_000, events.SceneEcommerce, 3))}, testConfig(), t0)[0]; !o.Credit ||
		o.Pool != PoolPayScore || s2.Outstanding[LineMain] != 1_000 {
		t.Fatalf("no check: %+v, outstanding %v", o, s2.Outstanding)
	}
}

func TestCreditOverflowIsRefused(t *testing.T) {
	cfg := testConfig()
	s := &State{Outstanding: [NumLines]int64{1 << 62}}
	var c counter
	o := Apply(s, []Item{noOff(creditEv(c.id(), t0, 1<<62, events.SceneOfflineRetail, 3))}, cfg, t0)[0]
	if o.Status != Refused || s.Outstanding[LineMain] != 1<<62 || len(s.Payments) != 0 {
		t.Fatalf("an outstanding sum that overflows: %+v, state %v", o, s.Outstanding)
	}
}

func TestPoolNames(t *testing.T) {
	for p := range numPools {
		if q, ok := PoolNamed(p.String()); !ok || q != p {
			t.Errorf("%v: %v %v", p, q, ok)
		}
	}
	if p, ok := PoolNamed(""); !ok || p != PoolPayScore {
		t.Errorf("the empty pool: %v %v", p, ok)
	}
	if _, ok := PoolNamed("nope"); ok {
		t.Error("an unknown pool is known")
	}
}

// The policy's limits (issue 12): an amount above limits.max_amount_fen and
// a bill past limits.max_open_bills are refused, naming the setting, and
// change nothing.
func TestPolicyLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAmountFen, cfg.MaxOpenBills = 1_000_000, 2
	s := &State{}
	var c counter
	due := t0.Add(10 * 24 * time.Hour)
	for _, e := range []*events.Event{
		payEv(c.id(), t0, 1_000_001, events.SceneOther, "dev"),
		dueEv(c.id(), t0, "big", 1_000_001, due),
		paidEv(c.id(), t0, "big", 1_000_001),
	} {
		o := Apply(s, []Item{noOff(e)}, cfg, t0)[0]
		if o.Status != Refused || o.Err == nil || !strings.Contains(o.Err.Error(), "limits.max_amount_fen 1000000") {
			t.Fatalf("%s over the amount limit: %+v", e.Type, o)
		}
	}
	if len(s.Payments) != 0 || len(s.Bills) != 0 {
		t.Fatalf("refused events changed the state: %+v", s)
	}
	// at the limit: applied
	if o := Apply(s, []Item{noOff(payEv(c.id(), t0, 1_000_000, events.SceneOther, "dev"))}, cfg, t0)[0]; o.Status != Applied {
		t.Fatalf("at the amount limit: %+v", o)
	}
	// two open bills, a third refused; one paid ahead may still fall due if
	// it is settled by it; a settled one frees room
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "b1", 100, due)), noOff(dueEv(c.id(), t0, "b2", 100, due)))
	if o := Apply(s, []Item{noOff(dueEv(c.id(), t0, "b3", 100, due))}, cfg, t0)[0]; o.Status != Refused ||
		!strings.Contains(o.Err.Error(), "limits.max_open_bills is 2") {
		t.Fatalf("a third open bill: %+v", o)
	}
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0, "b4", 100)), noOff(dueEv(c.id(), t0, "b4", 100, due)))
	if b := s.bill("b4"); b == nil || b.Status != BillSettled {
		t.Fatalf("a bill paid ahead, settled by its due event: %+v", b)
	}
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0, "b1", 100)), noOff(dueEv(c.id(), t0, "b3", 100, due)))
	if s.OpenBill("b3") == nil {
		t.Fatal("room made by a settled bill was not used")
	}
}
