package credit

import (
	"errors"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

func preset(t *testing.T, name string) *policy.Policy {
	t.Helper()
	p, err := policy.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// DOMAIN.md §4 pay later: 1 period is one bill of the whole amount, fee 0,
// and the longest free period of each preset is 50 / 40 / 30 days: a
// purchase on the day after the statement day, in a 31-day month.
func TestDomain4PayLaterLongestFreePeriod(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]int{"wechat": 50, "huabei": 40, "baitiao": 30} {
		p := preset(t, name)
		day := p.Pricing.PayLater.StatementDay + 1
		longest := 0
		// Every purchase day of 2026: none is longer than the promise, and
		// the day after the statement day of a 31-day month reaches it.
		for d := time.Date(2026, 1, 1, 12, 0, 0, 0, shanghai); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
			longest = max(longest, PayLaterBillOf(p, d).InterestFreeDays)
		}
		q, err := Quote(p, 123_456, 1, PromoContext{At: time.Date(2026, 1, day, 9, 0, 0, 0, shanghai)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if longest != want || q.PayLater == nil || q.PayLater.InterestFreeDays != want || q.PayLater.LongestFreeDays != want {
			t.Errorf("%s: longest free period over 2026 %d days, quote %+v; want %d", name, longest, q.PayLater, want)
		}
		if q.FeeBP != 0 || q.BaseFeeBP != 0 || q.TotalFeeFen != 0 || q.TotalPaymentFen != 123_456 || len(q.Adjustments) != 0 ||
			len(q.Schedule) != 1 || q.Schedule[0] != (Installment{Period: 1, PrincipalFen: 123_456, PaymentFen: 123_456}) ||
			q.MonthlyIRR != 0 || q.NominalAnnualRate != 0 || q.EffectiveAnnualRate != 0 {
			t.Errorf("%s: pay later quote %+v, want one bill of 123456 fen, no fee, rate 0", name, q)
		}
	}
}

// The due date comes from the purchase time, the statement day and the
// days to the due date, read in the policy's zone.
func TestDomain4PayLaterDueDate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, preset   string
		at             time.Time
		statement, due string
		overdueFrom    time.Time
		freeDays       int
	}{
		{"wechat: on the statement day, on that statement", "wechat", time.Date(2026, 1, 10, 23, 59, 0, 0, shanghai),
			"2026-01-10", "2026-01-30", time.Date(2026, 1, 31, 0, 0, 0, 0, shanghai), 20},
		{"wechat: the day after, due across the end of February", "wechat", time.Date(2026, 1, 11, 0, 0, 0, 0, shanghai),
			"2026-02-10", "2026-03-02", time.Date(2026, 3, 3, 0, 0, 0, 0, shanghai), 50},
		{"wechat: February is short", "wechat", time.Date(2026, 2, 11, 8, 0, 0, 0, shanghai),
			"2026-03-10", "2026-03-30", time.Date(2026, 3, 31, 0, 0, 0, 0, shanghai), 47},
		{"wechat: 23:59 in Shanghai is 15:59 UTC, still the statement day", "wechat", time.Date(2026, 1, 10, 15, 59, 0, 0, time.UTC),
			"2026-01-10", "2026-01-30", time.Date(2026, 1, 31, 0, 0, 0, 0, shanghai), 20},
		{"wechat: 16:30 UTC is already the next day in Shanghai", "wechat", time.Date(2026, 1, 10, 16, 30, 0, 0, time.UTC),
			"2026-02-10", "2026-03-02", time.Date(2026, 3, 3, 0, 0, 0, 0, shanghai), 50},
		{"wechat: across the year end", "wechat", time.Date(2025, 12, 20, 12, 0, 0, 0, shanghai),
			"2026-01-10", "2026-01-30", time.Date(2026, 1, 31, 0, 0, 0, 0, shanghai), 41},
		{"huabei: due on the 11th", "huabei", time.Date(2026, 1, 2, 12, 0, 0, 0, shanghai),
			"2026-02-01", "2026-02-11", time.Date(2026, 2, 12, 0, 0, 0, 0, shanghai), 40},
		{"huabei: on the 1st itself", "huabei", time.Date(2026, 3, 1, 12, 0, 0, 0, shanghai),
			"2026-03-01", "2026-03-11", time.Date(2026, 3, 12, 0, 0, 0, 0, shanghai), 10},
		{"baitiao: due on the statement date", "baitiao", time.Date(2026, 1, 31, 12, 0, 0, 0, shanghai),
			"2026-02-01", "2026-02-01", time.Date(2026, 2, 2, 0, 0, 0, 0, shanghai), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := Quote(preset(t, tc.preset), 50_000, 1, PromoContext{At: tc.at})
			if err != nil {
				t.Fatal(err)
			}
			b := q.PayLater
			if b == nil || b.StatementDate != tc.statement || b.DueDate != tc.due || !b.OverdueFrom.Equal(tc.overdueFrom) ||
				b.InterestFreeDays != tc.freeDays || b.PurchaseDate != tc.at.In(shanghai).Format(time.DateOnly) {
				t.Errorf("bill %+v; want statement %s due %s overdue from %v, %d free days", b, tc.statement, tc.due, tc.overdueFrom, tc.freeDays)
			}
			if q.TotalFeeFen != 0 {
				t.Errorf("fee %d, want 0", q.TotalFeeFen)
			}
		})
	}
}

// The policy's zone decides, not the zone of the time given: the same
// instant in a policy read in UTC is on the other side of midnight.
func TestPayLaterInThePolicysZone(t *testing.T) {
	t.Parallel()
	p := preset(t, "wechat")
	at := time.Date(2026, 1, 10, 16, 30, 0, 0, time.UTC) // 00:30 on the 11th in Shanghai
	if b := PayLaterBillOf(p, at); b.StatementDate != "2026-02-10" {
		t.Errorf("Shanghai: statement %s, want 2026-02-10", b.StatementDate)
	}
	p.Timezone = "UTC"
	if b := PayLaterBillOf(p, at); b.StatementDate != "2026-01-10" || !b.OverdueFrom.Equal(time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("UTC: bill %+v, want the 2026-01-10 statement", b)
	}
}

func TestPayLaterNeedsThePurchaseTime(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	if _, err := Quote(p, 10_000, 1, PromoContext{}); !errors.Is(err, ErrNoPurchaseTime) {
		t.Errorf("error %v, want ErrNoPurchaseTime", err)
	}
	p.Pricing.PayLater = policy.PayLater{}
	p.Pricing.InterestFreeDays = 0
	if _, err := Quote(p, 10_000, 1, PromoContext{At: time.Now()}); !errors.Is(err, ErrPeriodsNotOffered) {
		t.Errorf("error %v, want ErrPeriodsNotOffered without pay later", err)
	}
}

// DOMAIN.md §4 adjustments: the pay-score band raises, the merchant's
// subsidy lowers, always within the product's range; the quote shows each
// line, and the lines add up to the fee charged.
func TestDomain4PricingAdjustments(t *testing.T) {
	t.Parallel()
	p := wechat(t) // range [60, 150]; bands 600–649 +20, 650–699 +10; m-jd and m-pinduoduo −20
	type line struct {
		kind, name string
		delta      int
	}
	cases := []struct {
		name    string
		periods int
		promo   PromoContext
		feeBP   int
		lines   []line
	}{
		{"pay score 780: no band", 24, PromoContext{PayScore: 780}, 80, nil},
		{"pay score 700: no band", 24, PromoContext{PayScore: 700}, 80, nil},
		{"pay score 699: +10", 24, PromoContext{PayScore: 699}, 90, []line{{LinePayScoreBand, "pay_score_650_699", 10}}},
		{"pay score 650: +10", 24, PromoContext{PayScore: 650}, 90, []line{{LinePayScoreBand, "pay_score_650_699", 10}}},
		{"pay score 649: +20", 24, PromoContext{PayScore: 649}, 100, []line{{LinePayScoreBand, "pay_score_600_649", 20}}},
		{"pay score 600: +20", 12, PromoContext{PayScore: 600}, 120, []line{{LinePayScoreBand, "pay_score_600_649", 20}}},
		{"band clamped at the highest fee", 3, PromoContext{PayScore: 620}, 150,
			[]line{{LinePayScoreBand, "pay_score_600_649", 20}, {LineClamp, "max_fee_bp", -20}}},
		{"subsidised merchant", 12, PromoContext{PayScore: 780, MerchantID: "m-pinduoduo"}, 80,
			[]line{{LineMerchantSubsidy, "jd_pinduoduo_subsidy", -20}}},
		{"subsidy down to the lowest fee exactly", 24, PromoContext{MerchantID: "m-jd"}, 60,
			[]line{{LineMerchantSubsidy, "jd_pinduoduo_subsidy", -20}}},
		{"subsidy clamped at the lowest fee", 6, PromoContext{NewUser: true, MerchantID: "m-jd"}, 60,
			[]line{{LinePromotion, "new_user", -60}, {LineMerchantSubsidy, "jd_pinduoduo_subsidy", -20}, {LineClamp, "min_fee_bp", 20}}},
		{"merchant without a subsidy", 12, PromoContext{MerchantID: "m-vipshop"}, 100, nil},
		{"promotion, band and subsidy", 3, PromoContext{Scene: events.SceneEcommerce, PayScore: 620, MerchantID: "m-jd"}, 80,
			[]line{{LinePromotion, "ecommerce_promotion", -70}, {LinePayScoreBand, "pay_score_600_649", 20}, {LineMerchantSubsidy, "jd_pinduoduo_subsidy", -20}}},
		{"band and subsidy at the top: the clamp comes last", 3, PromoContext{PayScore: 620, MerchantID: "m-jd"}, 150,
			[]line{{LinePayScoreBand, "pay_score_600_649", 20}, {LineMerchantSubsidy, "jd_pinduoduo_subsidy", -20}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := Quote(p, 1_200_000, tc.periods, tc.promo)
			if err != nil {
				t.Fatal(err)
			}
			plan, _ := p.Plan(tc.periods)
			sum := q.BaseFeeBP
			var got []line
			for _, l := range q.Adjustments {
				sum += l.DeltaBP
				got = append(got, line{l.Kind, l.Name, l.DeltaBP})
				if l.Detail == "" {
					t.Errorf("line %+v has no detail", l)
				}
			}
			if q.BaseFeeBP != plan.FeeBP || q.FeeBP != tc.feeBP || sum != q.FeeBP || !equalLines(got, tc.lines) {
				t.Errorf("base %d fee %d lines %+v; want base %d fee %d lines %+v", q.BaseFeeBP, q.FeeBP, got, plan.FeeBP, tc.feeBP, tc.lines)
			}
			fee := (1_200_000*int64(tc.feeBP) + 5_000) / 10_000
			if q.Schedule[0].FeeFen != fee || q.TotalFeeFen != fee*int64(tc.periods) {
				t.Errorf("fee %d fen a period (%d in all), want %d", q.Schedule[0].FeeFen, q.TotalFeeFen, fee)
			}
		})
	}
}

func equalLines[L comparable](a, b []L) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Each adjustment meets the clamp at both ends of the range: one basis
// point inside the range is charged as is, one beyond is brought back.
func TestPricingAdjustmentsClampAtBothEnds(t *testing.T) {
	t.Parallel()
	p := wechat(t) // 24 periods: 80 bp, range [60, 150]
	cases := []struct {
		name      string
		band      int // added at pay score 600
		subsidy   int // taken at m-test
		feeBP     int
		clamp     string
		clampedBP int
	}{
		{"band up to the highest fee", 70, 0, 150, "", 0},
		{"band 1 bp past the highest fee", 71, 0, 150, "max_fee_bp", -1},
		{"band far past the highest fee", 5_000, 0, 150, "max_fee_bp", -4_930},
		{"subsidy down to the lowest fee", 0, 20, 60, "", 0},
		{"subsidy 1 bp past the lowest fee", 0, 21, 60, "min_fee_bp", 1},
		{"subsidy far past the lowest fee", 0, 5_000, 60, "min_fee_bp", 4_980},
		{"band and subsidy past the highest fee", 200, 10, 150, "max_fee_bp", -120},
		{"band and subsidy past the lowest fee", 10, 200, 60, "min_fee_bp", 170},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pp := *p
			pp.Pricing.Adjustments = policy.Adjustments{}
			if tc.band > 0 {
				pp.Pricing.Adjustments.PayScoreBands = []policy.PayScoreBand{{Name: "test_band", MinPayScore: 600, MaxPayScore: 600, AddBP: tc.band}}
			}
			if tc.subsidy > 0 {
				pp.Pricing.Adjustments.MerchantSubsidies = []policy.MerchantSubsidy{{Name: "test_subsidy", Merchants: []string{"m-test"}, SubsidyBP: tc.subsidy}}
			}
			if err := pp.Validate(); err != nil {
				t.Fatal(err)
			}
			q, err := Quote(&pp, 1_000_000, 24, PromoContext{PayScore: 600, MerchantID: "m-test"})
			if err != nil {
				t.Fatal(err)
			}
			last := q.Adjustments[len(q.Adjustments)-1]
			clamped := last.Kind == LineClamp
			if q.FeeBP != tc.feeBP || clamped != (tc.clamp != "") || (clamped && (last.Name != tc.clamp || last.DeltaBP != tc.clampedBP)) {
				t.Errorf("fee %d bp, lines %+v; want %d bp, clamp %q by %d", q.FeeBP, q.Adjustments, tc.feeBP, tc.clamp, tc.clampedBP)
			}
			if q.FeeBP < pp.Pricing.MinFeeBP || q.FeeBP > pp.Pricing.MaxFeeBP {
				t.Errorf("fee %d bp outside the range", q.FeeBP)
			}
		})
	}
}

// The true annual rate follows the fee charged: a raised fee raises it,
// a subsidy lowers it, and each equals the rate of a plan charging that
// fee outright.
func TestAdjustedFeeKeepsTheTrueAnnualRate(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	raised, _ := Quote(p, 1_200_000, 24, PromoContext{PayScore: 620})
	plain, _ := Quote(p, 1_200_000, 24, PromoContext{})
	subsidised, _ := Quote(p, 1_200_000, 24, PromoContext{MerchantID: "m-jd"})
	if !(raised.NominalAnnualRate > plain.NominalAnnualRate && plain.NominalAnnualRate > subsidised.NominalAnnualRate) {
		t.Errorf("rates raised %v plain %v subsidised %v", raised.NominalAnnualRate, plain.NominalAnnualRate, subsidised.NominalAnnualRate)
	}
	// 12 periods at 1.0% is the base table's 1.0%: the 24-period quote
	// raised to 100 bp has the rate of a 24-period plan at 100 bp.
	pp := *p
	pp.Pricing.Adjustments = policy.Adjustments{}
	pp.Pricing.Plans = []policy.Plan{{Periods: 24, FeeBP: 100}}
	outright, _ := Quote(&pp, 1_200_000, 24, PromoContext{})
	if raised.FeeBP != 100 || !near(raised.MonthlyIRR, outright.MonthlyIRR, 1e-12) {
		t.Errorf("raised to %d bp: IRR %v, a plan at 100 bp %v", raised.FeeBP, raised.MonthlyIRR, outright.MonthlyIRR)
	}
}
