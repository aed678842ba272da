package credit

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// The true annual rates of the wechat base table, for a 12,000-yuan
// purchase (1,200,000 fen), fee on the original principal every period.
//
// Worked by hand for 12 periods at 1.0%: each installment is
// 1,200,000/12 + 1% × 1,200,000 = 100,000 + 12,000 = 112,000 fen, so the
// monthly IRR r solves 1,200,000 = 112,000 × a(r), a(r) = (1 − (1+r)^−12)/r,
// i.e. a(r) = 10.714286.
//
//	r = 1.75%: 1.0175^12 = 1.231439, a = (1 − 0.812058)/0.0175 = 10.7395
//	r = 1.80%: 1.0180^12 = 1.238721, a = (1 − 0.807284)/0.0180 = 10.7064
//	interpolating: r ≈ 1.75% + 0.05% × (10.7395 − 10.7143)/(10.7395 − 10.7064) ≈ 1.788%
//
// so the nominal annual rate is 12 × 1.788% ≈ 21.5% and the effective
// rate (1.01788)^12 − 1 ≈ 23.7%. (The brief's "≈ 17.9% nominal" does not
// hold: 17.9 is the monthly rate in per mille, 1.79%; and the source's
// "12.6%" does not follow from its fee either — DOMAIN.md §4.) A rough
// check: the user pays 12% of the principal in fees over a loan whose
// average balance is 13/24 of the principal for one year: 12/(13/24) =
// 22.2% simple interest, close to the IRR.
//
// The figures below were computed to 7 digits with an independent bisection
// on the same schedules.
var baseRates = []struct {
	periods                   int
	feeBP                     int
	monthly, nominal, effect  float64
	totalFeeFen, firstPayment int64
}{
	{3, 150, 0.0223356, 0.2680266, 0.3035316, 54_000, 418_000},
	{6, 120, 0.0202337, 0.2428050, 0.2717338, 86_400, 214_400},
	{12, 100, 0.0178810, 0.2145718, 0.2369838, 144_000, 112_000},
	{24, 80, 0.0145553, 0.1746641, 0.1893479, 230_400, 59_600},
}

func TestQuoteTrueAnnualRate(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	for _, w := range baseRates {
		q, err := Quote(p, 1_200_000, w.periods, PromoContext{})
		if err != nil {
			t.Fatalf("%d periods: %v", w.periods, err)
		}
		if q.FeeBP != w.feeBP || q.Promotion != "" || q.TotalFeeFen != w.totalFeeFen ||
			q.TotalPaymentFen != 1_200_000+w.totalFeeFen || q.Schedule[0].PaymentFen != w.firstPayment {
			t.Errorf("%d periods: fee %d bp (%q), total fee %d, total %d, first payment %d; want %d bp, %d, %d, %d",
				w.periods, q.FeeBP, q.Promotion, q.TotalFeeFen, q.TotalPaymentFen, q.Schedule[0].PaymentFen,
				w.feeBP, w.totalFeeFen, 1_200_000+w.totalFeeFen, w.firstPayment)
		}
		if !near(q.MonthlyIRR, w.monthly, 1e-7) || !near(q.NominalAnnualRate, w.nominal, 1e-6) ||
			!near(q.EffectiveAnnualRate, w.effect, 1e-6) {
			t.Errorf("%d periods at %d bp: monthly %.7f nominal %.7f effective %.7f; want %.7f %.7f %.7f",
				w.periods, w.feeBP, q.MonthlyIRR, q.NominalAnnualRate, q.EffectiveAnnualRate, w.monthly, w.nominal, w.effect)
		}
		// The IRR discounts the schedule back to the amount lent.
		var pv float64
		for _, in := range q.Schedule {
			pv += float64(in.PaymentFen) / math.Pow(1+q.MonthlyIRR, float64(in.Period))
		}
		if !near(pv, 1_200_000, 1e-4) {
			t.Errorf("%d periods: the schedule discounted at the IRR is worth %f fen", w.periods, pv)
		}
	}
}

func TestQuotePromotions(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	cases := []struct {
		name    string
		periods int
		promo   PromoContext
		feeBP   int
		applied string
	}{
		{"3 periods in an e-commerce promotion", 3, PromoContext{Scene: events.SceneEcommerce}, 80, "ecommerce_promotion"},
		{"3 periods offline", 3, PromoContext{Scene: events.SceneOfflineRetail, NewUser: true, Invited: true}, 150, ""},
		{"6 periods for a new user", 6, PromoContext{NewUser: true}, 60, "new_user"},
		{"6 periods for a returning user", 6, PromoContext{Scene: events.SceneEcommerce, Invited: true}, 120, ""},
		{"12 periods for an invited user", 12, PromoContext{Invited: true}, 90, "invited_user"},
		{"12 periods for a new user", 12, PromoContext{NewUser: true}, 100, ""},
		{"24 periods have no promotion", 24, PromoContext{Scene: events.SceneEcommerce, NewUser: true, Invited: true}, 80, ""},
	}
	for _, tc := range cases {
		q, err := Quote(p, 600_000, tc.periods, tc.promo)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if q.FeeBP != tc.feeBP || q.Promotion != tc.applied || q.BaseFeeBP < q.FeeBP {
			t.Errorf("%s: %d bp (%q), base %d; want %d bp (%q)", tc.name, q.FeeBP, q.Promotion, q.BaseFeeBP, tc.feeBP, tc.applied)
		}
	}
	// The 3-period promotion: 0.8% on 1,200,000 fen is 9,600 fen a period.
	q, _ := Quote(p, 1_200_000, 3, PromoContext{Scene: events.SceneEcommerce})
	if q.TotalFeeFen != 28_800 || !near(q.NominalAnnualRate, 0.1434319, 1e-6) {
		t.Errorf("promotional 3 periods: fee %d, nominal %.7f; want 28800, 0.1434319", q.TotalFeeFen, q.NominalAnnualRate)
	}
}

func TestQuoteScheduleInWholeFen(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	// 1,000 fen over 3: 334 + 333 + 333, the remainder on the first.
	q, err := Quote(p, 1_000, 3, PromoContext{})
	if err != nil {
		t.Fatal(err)
	}
	got := []int64{q.Schedule[0].PrincipalFen, q.Schedule[1].PrincipalFen, q.Schedule[2].PrincipalFen}
	if got[0] != 334 || got[1] != 333 || got[2] != 333 || q.Schedule[0].FeeFen != 15 {
		t.Errorf("principal %v fee %d, want [334 333 333] and 15", got, q.Schedule[0].FeeFen)
	}
	// Fees round half up: 1.5% of 100 fen is 1.5 fen → 2 fen; of 33 fen, 0.495 → 0.
	if q, _ := Quote(p, 100, 3, PromoContext{}); q.Schedule[0].FeeFen != 2 {
		t.Errorf("fee on 100 fen = %d, want 2", q.Schedule[0].FeeFen)
	}
	if q, _ := Quote(p, 33, 3, PromoContext{}); q.Schedule[0].FeeFen != 0 || q.MonthlyIRR != 0 {
		t.Errorf("fee on 33 fen = %d (IRR %g), want 0 and 0", q.Schedule[0].FeeFen, q.MonthlyIRR)
	}

	rng := rand.New(rand.NewPCG(4, 5))
	for range 5_000 {
		amount := 1 + rng.Int64N(10_000_000)
		plan := p.Pricing.Plans[rng.IntN(len(p.Pricing.Plans))]
		q, err := Quote(p, amount, plan.Periods, PromoContext{})
		if err != nil {
			t.Fatal(err)
		}
		var principal, fees int64
		for i, in := range q.Schedule {
			principal += in.PrincipalFen
			fees += in.FeeFen
			if in.Period != i+1 || in.PaymentFen != in.PrincipalFen+in.FeeFen || in.FeeFen != q.Schedule[0].FeeFen {
				t.Fatalf("%d fen over %d: installment %+v", amount, plan.Periods, in)
			}
			if i > 0 && in.PrincipalFen != amount/int64(plan.Periods) {
				t.Fatalf("%d fen over %d: only the first installment carries the remainder: %+v", amount, plan.Periods, in)
			}
		}
		if principal != amount || fees != q.TotalFeeFen || principal+fees != q.TotalPaymentFen {
			t.Fatalf("%d fen over %d: principal %d, fees %d of %d", amount, plan.Periods, principal, fees, q.TotalFeeFen)
		}
		if math.IsNaN(q.MonthlyIRR) || q.MonthlyIRR < 0 || q.MonthlyIRR > 0.1 {
			t.Fatalf("%d fen over %d: IRR %g", amount, plan.Periods, q.MonthlyIRR)
		}
	}
}

func TestQuoteRefuses(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	cases := []struct {
		amount  int64
		periods int
		want    error
	}{
		{0, 12, ErrInvalidAmount},
		{-100, 12, ErrInvalidAmount},
		{1 << 62, 12, ErrInvalidAmount},
		{100_000, 9, ErrPeriodsNotOffered},
		{100_000, 0, ErrPeriodsNotOffered},
		{100_000, 36, ErrPeriodsNotOffered},
	}
	for _, tc := range cases {
		if _, err := Quote(p, tc.amount, tc.periods, PromoContext{}); !errors.Is(err, tc.want) {
			t.Errorf("Quote(%d, %d) = %v, want %v", tc.amount, tc.periods, err, tc.want)
		}
	}
	_, err := Quote(p, 100_000, 9, PromoContext{})
	if want := "credit: quote 100000 fen over 9 periods: period count not offered by the policy (wechat offers [1 3 6 12 24])"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestQuoteOtherProducts(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"huabei", "baitiao"} {
		p, err := policy.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, plan := range p.Pricing.Plans {
			q, err := Quote(p, 1_200_000, plan.Periods, PromoContext{})
			if err != nil {
				t.Fatalf("%s %d periods: %v", name, plan.Periods, err)
			}
			if q.FeeBP < p.Pricing.MinFeeBP || q.FeeBP > p.Pricing.MaxFeeBP || q.Product != name {
				t.Errorf("%s %d periods: %d bp outside [%d, %d]", name, plan.Periods, q.FeeBP, p.Pricing.MinFeeBP, p.Pricing.MaxFeeBP)
			}
		}
	}
}

func BenchmarkQuote(b *testing.B) {
	p := wechat(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Quote(p, 1_234_567, 24, PromoContext{}); err != nil {
			b.Fatal(err)
		}
	}
}
