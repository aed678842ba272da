package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

// A bill falls due, is not paid: reminders on days 1 and 2, a freeze once
// it is overdue more than 72 h; the user pays: unfrozen. Each step once, through Kafka, with
// two fenqid instances running.
func TestFreezePayUnfreeze(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, shanghai)
	s := newSystem(t, dueAt.Add(-time.Hour))
	s.start()
	s.start()

	due := ev("due-1", events.TypeRepaymentDue, "ivy", dueAt.Add(-time.Hour))
	due.Due = &events.RepaymentDue{UserID: "ivy", BillID: "2026-11", AmountFen: 120_000, DueAt: dueAt}
	s.produce("fenqi.repayments", due)
	// The first activity makes a quota decision; wait for it, so that the
	// due event is known to be applied.
	s.eventually("the first quota decision", func() bool { return len(s.decisions()[events.TypeDecisionQuota]) == 1 })

	count := func(typ string) int { return len(s.decisions()[typ]) }
	steps := []struct {
		at                       time.Duration
		reminders, frozen, quota int
	}{
		{24 * time.Hour, 1, 0, 1},
		{48 * time.Hour, 2, 0, 1},             // the last reminder: it says the freeze comes at due+72h
		{72 * time.Hour, 2, 0, 1},             // 72 h overdue is not yet more than 3 days
		{72*time.Hour + time.Second, 2, 1, 2}, // frozen, and the quota recomputed at once
	}
	for _, st := range steps {
		s.clock.Set(dueAt.Add(st.at))
		s.eventually(fmt.Sprintf("due+%v: %d reminders, %d freezes, %d quotas", st.at, st.reminders, st.frozen, st.quota), func() bool {
			return count(events.TypeDecisionOverdue) == st.reminders && count(events.TypeDecisionFrozen) == st.frozen &&
				count(events.TypeDecisionQuota) == st.quota
		})
	}
	fz := s.decisions()[events.TypeDecisionFrozen][0]
	if fz.Subject != "ivy" || fz.Data.CausationID != "bill:2026-11" || fz.Data.Action != "INSTALLMENTS_SUSPENDED" {
		t.Fatalf("freeze: %+v", fz)
	}
	q := s.decisions()[events.TypeDecisionQuota][1]
	if q.Data.Detail == nil || len(q.Data.ReasonCodes) == 0 {
		t.Fatalf("the quota after the freeze gives no reasons: %+v", q)
	}

	// The user pays: unfrozen, and the quota recomputed again.
	paid := ev("paid-1", events.TypeRepaymentPaid, "ivy", s.clock.Now())
	paid.Paid = &events.RepaymentPaid{UserID: "ivy", BillID: "2026-11", AmountFen: 120_000}
	s.produce("fenqi.repayments", paid)
	s.eventually("unfrozen and recomputed", func() bool {
		return count(events.TypeDecisionUnfrozen) == 1 && count(events.TypeDecisionQuota) == 3
	})
	// Nothing more fires later.
	s.clock.Add(30 * 24 * time.Hour)
	time.Sleep(200 * time.Millisecond) // give the jobs (20ms interval) a few rounds to misbehave
	if n := count(events.TypeDecisionOverdue) + count(events.TypeDecisionFrozen); n != 3 {
		t.Fatalf("%d reminders and freezes after settlement, want 3", n)
	}
}

// A threshold changed in the policy mid-stream applies from the next batch.
func TestPolicyChangeMidStream(t *testing.T) {
	t.Parallel()
	night := time.Date(2026, 11, 20, 2, 0, 0, 0, shanghai)
	s := newSystem(t, night.Add(10*time.Minute))
	s.start()
	pay := func(id string, fen int64) events.Event {
		e := ev(id, events.TypePayment, "jun", night)
		e.Payment = &events.Payment{UserID: "jun", AmountFen: fen, Currency: "CNY", Scene: events.SceneEcommerce,
			MerchantID: "m", DeviceID: "d", City: "shanghai", Auth: events.AuthFace}
		return e
	}
	s.produce("fenqi.payments", pay("p1", 150_000)) // 1,500 yuan: not large under the preset
	s.eventually("the first payment applied (its quota decision)", func() bool {
		return len(s.decisions()[events.TypeDecisionQuota]) == 1
	})
	if n := len(s.decisions()[events.TypeDecisionAlert]); n != 0 {
		t.Fatalf("%d alerts under the preset", n)
	}
	p, _ := s.policy.get()
	lower := *p
	lower.Version = "wechat-lower-large"
	lower.Risk.LargePaymentFen = 100_000
	s.policy.swap(t, &lower)
	s.produce("fenqi.payments", pay("p2", 150_000))
	s.eventually("an alert under the new threshold", func() bool { return len(s.decisions()[events.TypeDecisionAlert]) == 1 })
	a := s.decisions()[events.TypeDecisionAlert][0]
	if a.Data.CausationID != "p2" || a.Data.PolicyVersion != "wechat-lower-large" {
		t.Fatalf("alert: %+v", a)
	}
}

// Two instances share the group and the schedules: the second joins while
// the first consumes (a rebalance); every event is counted once in state,
// and every user's first quota is published once.
func TestTwoInstancesCountOnce(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)
	s := newSystem(t, now)
	a := s.start()
	const users = 40
	produced := map[string]int64{} // user -> payments produced
	wave := 0
	send := func() {
		var evs []events.Event
		for u := range users {
			user := fmt.Sprintf("user-%02d", u)
			e := ev(fmt.Sprintf("w%d-u%d", wave, u), events.TypePayment, user, now.Add(-time.Duration(wave)*time.Second))
			e.Payment = &events.Payment{UserID: user, AmountFen: 100, Currency: "CNY", Scene: events.SceneEcommerce,
				MerchantID: "m", DeviceID: "d", City: "shanghai", Auth: events.AuthFace}
			evs = append(evs, e)
			produced[user]++
		}
		s.produce("fenqi.payments", evs...)
		wave++
	}
	send()
	b := s.start() // joins while the first is consuming
	// Keep the traffic going until both instances have applied events.
	deadline := time.Now().Add(60 * time.Second)
	for a.pipe.Stats().Applied.Load() == 0 || b.pipe.Stats().Applied.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the second instance never got a partition (applied %d and %d)", a.pipe.Stats().Applied.Load(), b.pipe.Stats().Applied.Load())
		}
		send()
		time.Sleep(100 * time.Millisecond)
	}
	send()
	total := int64(wave * users)
	s.eventually("every payment applied", func() bool {
		return a.pipe.Stats().Applied.Load()+b.pipe.Stats().Applied.Load() >= total
	})
	s.eventually("a quota for every user", func() bool { return len(s.decisions()[events.TypeDecisionQuota]) == users })
	for user, want := range produced {
		st, err := a.store.User(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		var n, fen int64
		for _, c := range st.Days {
			n += c.Payments
		}
		for _, c := range st.Months {
			fen += c.SpendFen
		}
		if n != want || fen != want*100 {
			t.Fatalf("%s: %d payments, %d fen; want %d and %d", user, n, fen, want, want*100)
		}
	}
	if got := a.pipe.Stats().Applied.Load() + b.pipe.Stats().Applied.Load(); got != total {
		t.Fatalf("applied %d events in all, %d produced", got, total)
	}
	if got := len(s.decisions()[events.TypeDecisionQuota]); got != users {
		t.Fatalf("%d distinct quota decisions for %d users", got, users)
	}
	t.Logf("%d waves; applied by the two instances: %d and %d; repeats %d and %d", wave,
		a.pipe.Stats().Applied.Load(), b.pipe.Stats().Applied.Load(), a.pipe.Stats().Repeats.Load(), b.pipe.Stats().Repeats.Load())
}

// A good customer's credit purchases draw on their pools (DOMAIN.md §3,
// §5): one within the available quota is accepted, one above it is refused
// on the stream with FENQI_QUOTA_EXCEEDED, a pay-now payment is never
// refused for a scene limit, and a payment at the user's alert threshold
// notifies the user.
func TestCreditPurchasesOnTheStream(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)
	s := newSystem(t, now)
	in := s.start()
	n := 0
	pay := func(at time.Time, fen int64, scene events.Scene, periods int) events.Event {
		n++
		e := ev(fmt.Sprintf("p%d", n), events.TypePayment, "kai", at)
		e.Payment = &events.Payment{UserID: "kai", AmountFen: fen, Currency: "CNY", Scene: scene, MerchantID: "m",
			Installments: periods, DeviceID: "phone", City: "Shanghai", Auth: events.AuthFace}
		return e
	}
	// 30 days of history: 4 payments and a login a day, then the profile
	var history, logins []events.Event
	for day := 30; day >= 1; day-- {
		at := now.AddDate(0, 0, -day)
		for i := range 4 {
			history = append(history, pay(at.Add(time.Duration(i)*time.Hour), 5_000, events.SceneOfflineRetail, 0))
		}
		l := ev(fmt.Sprintf("l%d", day), events.TypeLogin, "kai", at)
		l.Login = &events.Login{UserID: "kai", DeviceID: "phone", City: "Shanghai", IP: "10.0.0.1", Auth: events.AuthFace}
		logins = append(logins, l)
	}
	s.produce("fenqi.payments", history...)
	s.produce("fenqi.logins", logins...)
	s.eventually("the history applied", func() bool {
		u, err := in.store.User(context.Background(), "kai")
		return err == nil && len(u.Days) >= 30
	})
	prof := ev("prof", events.TypeProfile, "kai", now.Add(-time.Minute))
	prof.Profile = &events.Profile{UserID: "kai", PayScore: 720, RealNameVerified: true, IdentityComplete: true,
		CardBoundSince: "2023-01-01", WealthBalanceFen: 2_000_000, PartnerLimitFen: 1_000_000, AlertThresholdFen: 300_000}
	s.produce("fenqi.profiles", prof)
	var quota int64
	s.eventually("a positive quota", func() bool {
		for _, d := range s.decisions()[events.TypeDecisionQuota] {
			if d.Data.CausationID != "" {
				if u, err := in.store.User(context.Background(), "kai"); err == nil && u.HasQuota && u.QuotaFen > 0 {
					quota = u.QuotaFen
					return true
				}
			}
		}
		return false
	})

	// "other" draws on the main quota
	within := pay(now, quota/2, events.SceneOther, 3)
	above := pay(now.Add(time.Minute), quota, events.SceneOther, 6) // half the quota is left
	payNow := pay(now.Add(2*time.Minute), 900_000, events.SceneOfflineRetail, 0)
	partner := pay(now.Add(3*time.Minute), 200_000, events.SceneEcommerce, 12)
	s.produce("fenqi.payments", within, above, payNow, partner)
	s.eventually("the purchases applied", func() bool {
		u, err := in.store.User(context.Background(), "kai")
		return err == nil && u.Outstanding[1] == 200_000
	})
	u, err := in.store.User(context.Background(), "kai")
	if err != nil {
		t.Fatal(err)
	}
	if u.Outstanding[0] != within.Payment.AmountFen {
		t.Errorf("main outstanding %d, want the accepted purchase's %d (the refused one is not drawn)", u.Outstanding[0], within.Payment.AmountFen)
	}
	byCause := map[string][]events.Decision{}
	s.eventually("the refusal and the notice", func() bool {
		byCause = map[string][]events.Decision{}
		for _, d := range s.decisions()[events.TypeDecisionAlert] {
			byCause[d.Data.CausationID] = append(byCause[d.Data.CausationID], d)
		}
		return len(byCause[above.ID]) > 0 && len(byCause[payNow.ID]) > 0
	})
	var refusal *events.Decision
	for i, d := range byCause[above.ID] {
		if d.Data.Rule == "credit_refusal" {
			refusal = &byCause[above.ID][i]
		}
	}
	if refusal == nil || refusal.Data.Action != "REFUSE" || len(refusal.Data.ReasonCodes) != 1 ||
		refusal.Data.ReasonCodes[0].Code != "FENQI_QUOTA_EXCEEDED" || refusal.Data.ReasonCodes[0].Advice == "" {
		t.Fatalf("the purchase above the available quota: %+v", byCause[above.ID])
	}
	for _, id := range []string{within.ID, partner.ID} {
		for _, d := range byCause[id] {
			if d.Data.Rule == "credit_refusal" {
				t.Errorf("purchase %s within its pool was refused: %+v", id, d)
			}
		}
	}
	var notified bool
	for _, d := range byCause[payNow.ID] {
		if d.Data.Rule == "credit_refusal" || d.Data.Rule == "scene_limit" {
			t.Errorf("a pay-now payment was refused: %+v", d)
		}
		notified = notified || (d.Data.Rule == "alert_threshold" && d.Data.Action == "NOTIFY_USER")
	}
	if !notified {
		t.Errorf("a payment over the user's alert threshold notified nobody: %+v", byCause[payNow.ID])
	}
}
