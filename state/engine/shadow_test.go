package engine

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

// shadowPartnerCheck is a candidate's credit check unlike poolCheck (the
// live one here): every credit payment draws on the partner pool, and one
// above that pool's available quota is refused with a code of its own.
func shadowPartnerCheck(s *State, _ *time.Location, p *events.Payment, at time.Time) (Pool, []string) {
	if p.AmountFen > s.Available(PoolIndependent, at).AvailableFen {
		return PoolIndependent, []string{"SHADOW_QUOTA_EXCEEDED"}
	}
	return PoolIndependent, nil
}

// refuseAll is a candidate that refuses every credit payment.
func refuseAll(*State, *time.Location, *events.Payment, time.Time) (Pool, []string) {
	return PoolSpecialTemporary, []string{"SHADOW_REFUSES_ALL"}
}

// withoutShadow is outs with Outcome.Shadow cleared.
func withoutShadow(outs []Outcome) []Outcome {
	c := make([]Outcome, len(outs))
	for i, o := range outs {
		o.Shadow = nil
		c[i] = o
	}
	return c
}

// Config.ShadowCredit judges each credit payment again, on the same state
// before the live check's draw, and changes nothing: the state applied
// with it is byte for byte the state applied without it, and the outcomes
// are the same but for Outcome.Shadow, which holds the candidate's verdict
// (pool, that pool's quota before the payment, the refusal's codes).
func TestShadowCreditChangesNothing(t *testing.T) {
	live := testConfig()
	live.Credit = poolCheck
	shadowed := live
	shadowed.ShadowCredit = shadowPartnerCheck
	newState := func() *State {
		return &State{HasQuota: true, QuotaFen: 100_000, Profile: &Profile{PartnerLimitFen: 50_000, WeilidaiLimitFen: 30_000}}
	}
	var c counter
	items := []Item{
		noOff(creditEv(c.id(), t0, 40_000, events.SceneOfflineRetail, 3)),  // 1
		noOff(creditEv(c.id(), t0, 70_000, events.SceneOfflineRetail, 6)),  // 2
		noOff(creditEv(c.id(), t0, 20_000, events.SceneEcommerce, 12)),     // 3
		noOff(creditEv(c.id(), t0, 20_000, events.SceneLocalLife, 3)),      // 4
		noOff(creditEv(c.id(), t0, 35_000, events.SceneOfflineRetail, 3)),  // 5
		noOff(creditEv(c.id(), t0, 900_000, events.SceneOfflineRetail, 0)), // 6: pay now, no credit
		noOff(loginEv(c.id(), t0, "dev", "shanghai")),                      // 7
	}
	plain, withShadow := newState(), newState()
	outPlain := Apply(plain, items, live, t0)
	outShadow := Apply(withShadow, items, shadowed, t0)

	if !bytes.Equal(enc(plain), enc(withShadow)) {
		t.Fatalf("the state applied with a shadow check differs from the state without:\n%+v\n%+v", plain, withShadow)
	}
	if !reflect.DeepEqual(outPlain, withoutShadow(outShadow)) {
		t.Fatalf("the outcomes differ beyond Shadow:\n%+v\n%+v", outPlain, outShadow)
	}
	for i, o := range outPlain {
		if o.Shadow != nil {
			t.Errorf("item %d: a verdict %+v without a shadow check", i+1, o.Shadow)
		}
	}
	// The live books, by hand: main 40,000 + 20,000 (local life, also on
	// Weilidai) + 35,000; the partner 20,000; the 70,000 refused.
	if want := [NumLines]int64{LineMain: 95_000, LinePartner: 20_000, LineWeilidai: 20_000}; withShadow.Outstanding != want {
		t.Fatalf("outstanding %v, want %v", withShadow.Outstanding, want)
	}
	partner := func(outstanding int64) PoolQuota {
		return PoolQuota{Pool: PoolIndependent, LimitFen: 50_000, OutstandingFen: outstanding, AvailableFen: 50_000 - outstanding}
	}
	wants := []*CreditVerdict{
		// 1: the partner pool untouched; 40,000 ≤ 50,000
		{Pool: PoolIndependent, Quota: partner(0)},
		// 2: the candidate's acceptance of 1 drew nothing: 50,000 left, and
		// 70,000 is above it (the live check refuses it too, on main)
		{Pool: PoolIndependent, Quota: partner(0), Refused: []string{"SHADOW_QUOTA_EXCEEDED"}},
		// 3: judged before the live check's draw on the partner pool
		{Pool: PoolIndependent, Quota: partner(0)},
		// 4: after it: 20,000 of 50,000 outstanding
		{Pool: PoolIndependent, Quota: partner(20_000)},
		// 5: 35,000 above the 30,000 left (the live check takes it on main)
		{Pool: PoolIndependent, Quota: partner(20_000), Refused: []string{"SHADOW_QUOTA_EXCEEDED"}},
		nil, // 6: pay now: no credit, no verdict
		nil, // 7: a login
	}
	for i, want := range wants {
		if got := outShadow[i].Shadow; !reflect.DeepEqual(got, want) {
			t.Errorf("item %d: shadow verdict %+v, want %+v", i+1, got, want)
		}
	}
	// The live verdicts stay the live check's (the second refused on main).
	if o := outShadow[1]; o.Pool != PoolPayScore || !reflect.DeepEqual(o.CreditRefused, []string{"FENQI_QUOTA_EXCEEDED"}) {
		t.Errorf("item 2: live verdict %v %v, want refused on the pay-score pool", o.Pool, o.CreditRefused)
	}
	if o := outShadow[4]; o.Pool != PoolPayScore || o.CreditRefused != nil {
		t.Errorf("item 5: live verdict %v %v, want accepted on the pay-score pool", o.Pool, o.CreditRefused)
	}
}

// The same over generated histories with credit payments mixed in (of
// every scene, repeats and redeliveries among them), and a candidate that
// refuses everything: the state is the same bytes, the outcomes the same
// but Shadow, which is set exactly on the credit payments applied.
func TestShadowCreditRefusingEverythingChangesNothing(t *testing.T) {
	live := testConfig()
	live.Credit = poolCheck
	shadowed := live
	shadowed.ShadowCredit = refuseAll
	scenes := []events.Scene{events.SceneOfflineRetail, events.SceneEcommerce, events.SceneLocalLife, events.SceneMedical, events.SceneOther}
	for seed := range uint64(20) {
		now := nows[seed%uint64(len(nows))]
		base := seedState(t, seed+900, now)
		base.HasQuota, base.QuotaFen = true, 500_000
		base.Profile = &Profile{PartnerLimitFen: 200_000, WeilidaiLimitFen: 100_000}
		base.Special = &Special{QuotaFen: 50_000, ExpiresAt: now.Add(day).Unix()}
		g := newGen(seed, now)
		rng := rand.New(rand.NewPCG(seed, 7))
		items := g.stream(300, false)
		credits := 0
		for _, it := range items {
			if p := it.Event.Payment; p != nil && p.Installments == 0 && rng.IntN(2) == 0 {
				p.Installments = 1 + rng.IntN(12)
				p.Scene = scenes[rng.IntN(len(scenes))]
				credits++
			}
		}
		if credits == 0 {
			t.Fatalf("seed %d: no credit payment generated", seed)
		}
		plain, withShadow := base.Clone(), base.Clone()
		outPlain := Apply(plain, items, live, now)
		outShadow := Apply(withShadow, items, shadowed, now)
		if !bytes.Equal(enc(plain), enc(withShadow)) {
			t.Fatalf("seed %d: the state applied with a shadow check differs from the state without", seed)
		}
		if !reflect.DeepEqual(outPlain, withoutShadow(outShadow)) {
			t.Fatalf("seed %d: the outcomes differ beyond Shadow", seed)
		}
		judged := 0
		for i, o := range outShadow {
			if outPlain[i].Shadow != nil {
				t.Fatalf("seed %d item %d: a verdict without a shadow check", seed, i)
			}
			switch {
			case o.Status == Applied && o.Credit:
				if v := o.Shadow; v == nil || v.Pool != PoolSpecialTemporary || !reflect.DeepEqual(v.Refused, []string{"SHADOW_REFUSES_ALL"}) {
					t.Fatalf("seed %d item %d: a credit payment's shadow verdict %+v", seed, i, v)
				}
				judged++
			case o.Shadow != nil:
				t.Fatalf("seed %d item %d (%s, %v): a shadow verdict %+v on no credit payment applied", seed, i, items[i].Event.Type, o.Status, o.Shadow)
			}
		}
		if judged == 0 {
			t.Fatalf("seed %d: no credit payment applied", seed)
		}
	}
}
