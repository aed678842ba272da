package credit

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/policy"
)

var shanghai = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// now is the evaluation time of every scenario: a Saturday morning in
// Shanghai. The last three full months are February, March and April 2025.
var now = time.Date(2025, 5, 17, 10, 0, 0, 0, shanghai)

func wechat(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// standardUser is eligible but not a quality user (pay score 700, 4
// payments a day). Score: pay 0.75×0.35 + assets 0.2×0.25 + stability
// 1×0.20 + social 0.5×0.15 + device 1×0.05 = 0.6375 → 3,180,000 fen on the
// curve, capped at the standard 2,000,000.
func standardUser() Facts {
	return Facts{
		Now:                  now,
		PayScore:             700,
		RealNameVerified:     true,
		IdentityComplete:     true,
		CardBoundSince:       time.Date(2024, 1, 1, 0, 0, 0, 0, shanghai),
		WealthBalanceFen:     1_000_000,
		Payments30d:          120,
		LoginDays30d:         14,
		MonthlySpendFen:      [3]int64{300_000, 320_000, 310_000},
		MonthlyLoginDays:     [3]int{12, 15, 20},
		MonthlySocial:        [3]int{10, 12, 8},
		UsualDeviceLogins90d: 45,
		Logins90d:            50,
		QuotaChecks30d:       1,
	}
}

// modestUser is eligible with a score of 0.2625 (pay 0.5×0.35, no wealth,
// no spending history, social 0.25×0.15, device 1×0.05): 1,310,000 fen,
// under every cap, so the guardrail has room to act.
func modestUser() Facts {
	f := standardUser()
	f.PayScore = 650
	f.WealthBalanceFen = 0
	f.MonthlySpendFen = [3]int64{}
	f.MonthlySocial = [3]int{5, 5, 5}
	return f
}

// qualityUser meets every quality standard and every factor's full marks.
func qualityUser() Facts {
	f := standardUser()
	f.PayScore = 780
	f.WealthBalanceFen = 6_000_000
	f.Payments30d = 180 // 6 a day
	f.MonthlySocial = [3]int{20, 25, 30}
	f.OverdueEpisodes = 2
	return f
}

func TestEvaluateScenarios(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	type want struct {
		eligible  bool
		codes     []string // exact, in order
		failed    []string // gates that failed
		quality   bool
		quotaFen  int64
		decidedBy string
		tier      string
	}
	ineligible := func(codes []string, gates ...string) want {
		return want{codes: codes, failed: gates, quotaFen: 0, decidedBy: DecidedIneligible, tier: TierNone}
	}
	standard := want{eligible: true, codes: []string{CodeTierCap}, quotaFen: 2_000_000, decidedBy: DecidedTierCap, tier: TierStandard}
	cases := []struct {
		name string
		f    func(*Facts)
		want want
	}{
		{"standard user capped at the standard tier", func(f *Facts) {}, standard},

		// Each gate failing alone (DOMAIN.md §1).
		{"pay score 599", func(f *Facts) { f.PayScore = 599 },
			ineligible([]string{policy.CodeCreditLow}, GatePayScore)},
		{"pay score 600 is enough", func(f *Facts) { f.PayScore = 600 }, standard},
		{"real name not verified", func(f *Facts) { f.RealNameVerified = false },
			ineligible([]string{policy.CodeAuthIncomplete}, GateRealName)},
		{"occupation and education missing", func(f *Facts) { f.IdentityComplete = false },
			ineligible([]string{policy.CodeAuthIncomplete}, GateIdentityComplete)},
		{"no card bound", func(f *Facts) { f.CardBoundSince = time.Time{} },
			ineligible([]string{policy.CodeAuthIncomplete}, GateCardBound)},
		{"card bound 5 months", func(f *Facts) { f.CardBoundSince = time.Date(2024, 12, 17, 0, 0, 0, 0, shanghai) },
			ineligible([]string{policy.CodeAuthIncomplete}, GateCardBound)},
		{"card bound a day short of 6 months", func(f *Facts) { f.CardBoundSince = time.Date(2024, 11, 18, 0, 0, 0, 0, shanghai) },
			ineligible([]string{policy.CodeAuthIncomplete}, GateCardBound)},
		{"card bound exactly 6 months", func(f *Facts) { f.CardBoundSince = time.Date(2024, 11, 17, 0, 0, 0, 0, shanghai) }, standard},
		{"bank on the blacklist", func(f *Facts) { f.CardBankBlacklisted = true },
			ineligible([]string{policy.CodeBankBlacklisted}, GateBankBlacklist)},
		{"overdue 31 days in the last 6 months", func(f *Facts) { f.MaxOverdue6m = 31 * 24 * time.Hour },
			ineligible([]string{policy.CodeDefaultRecent}, GateSeriousDefault)},
		{"overdue 30 days and a second is serious", func(f *Facts) { f.MaxOverdue6m = 30*24*time.Hour + time.Second },
			ineligible([]string{policy.CodeDefaultRecent}, GateSeriousDefault)},
		{"overdue 30 days is not serious", func(f *Facts) { f.MaxOverdue6m = 30 * 24 * time.Hour }, standard},
		{"9 login days in 30 (DOMAIN.md §1 basic gate)", func(f *Facts) { f.LoginDays30d = 9 },
			ineligible([]string{policy.CodeActivityLow}, GateLoginDays)},
		{"10 login days in 30 is enough", func(f *Facts) { f.LoginDays30d = 10 }, standard},
		{"89 payments in 30 days", func(f *Facts) { f.Payments30d = 89 },
			ineligible([]string{policy.CodeActivityLow}, GateActivity)},
		{"90 payments in 30 days is enough", func(f *Facts) { f.Payments30d = 90 }, standard},
		{"a bill overdue now", func(f *Facts) { f.OverdueNow = true },
			ineligible([]string{policy.CodeOverdueNow}, GateOverdueNow)},
		{"judgement defaulter", func(f *Facts) { f.JudicialDefaulter = true },
			ineligible([]string{policy.CodeJudicialDefaulter}, GateJudicial)},
		{"negative linked account", func(f *Facts) { f.LinkedAccountNegative = true },
			ineligible([]string{policy.CodeLinkedAccountNegative}, GateLinkedAccount)},
		{"no profile and no activity: every failing gate, each code once",
			func(f *Facts) { *f = Facts{Now: now} },
			ineligible([]string{policy.CodeCreditLow, policy.CodeAuthIncomplete, policy.CodeActivityLow},
				GatePayScore, GateRealName, GateIdentityComplete, GateCardBound, GateActivity, GateLoginDays)},

		// Tiers (DOMAIN.md §3).
		{"quality user reaches the highest quota", func(f *Facts) { *f = qualityUser() },
			want{eligible: true, codes: []string{}, quality: true, quotaFen: 5_000_000, decidedBy: DecidedScore, tier: TierHigh}},
		{"pay score 749: high tier closed", func(f *Facts) { *f = qualityUser(); f.PayScore = 749 }, standard},
		{"9 login days in one month: high tier closed", func(f *Facts) { *f = qualityUser(); f.MonthlyLoginDays[0] = 9 }, standard},
		{"4.97 payments a day: high tier closed", func(f *Facts) { *f = qualityUser(); f.Payments30d = 149 }, standard},
		{"3 overdue episodes: high tier closed", func(f *Facts) { *f = qualityUser(); f.OverdueEpisodes = 3 }, standard},
		{"quality user but ineligible", func(f *Facts) { *f = qualityUser(); f.CardBankBlacklisted = true },
			ineligible([]string{policy.CodeBankBlacklisted}, GateBankBlacklist)},
		{"modest user: the curve decides", func(f *Facts) { *f = modestUser() },
			want{eligible: true, codes: []string{}, quotaFen: 1_310_000, decidedBy: DecidedScore, tier: TierStandard}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := standardUser()
			tc.f(&f)
			r := Evaluate(p, f)
			w := tc.want
			if r.Eligible != w.eligible || r.QualityUser != w.quality || r.QuotaFen != w.quotaFen ||
				r.DecidedBy != w.decidedBy || r.Tier != w.tier {
				t.Errorf("eligible %v quality %v quota %d by %s tier %s; want %v %v %d %s %s",
					r.Eligible, r.QualityUser, r.QuotaFen, r.DecidedBy, r.Tier,
					w.eligible, w.quality, w.quotaFen, w.decidedBy, w.tier)
			}
			var codes []string
			for _, rc := range r.Reasons {
				codes = append(codes, rc.Code)
				if rc.Message == "" || rc.Advice == "" {
					t.Errorf("reason %s has no message or advice: %+v", rc.Code, rc)
				}
			}
			if !slices.Equal(codes, w.codes) && len(codes)+len(w.codes) > 0 {
				t.Errorf("codes = %v, want %v", codes, w.codes)
			}
			var failed []string
			for _, g := range r.Gates {
				if !g.Passed {
					failed = append(failed, g.Name)
					if g.Code == "" {
						t.Errorf("failed gate %s has no code", g.Name)
					}
				}
			}
			if !slices.Equal(failed, w.failed) {
				t.Errorf("failed gates = %v, want %v", failed, w.failed)
			}
			if len(r.Gates) != 11 || len(r.Factors) != 6 {
				t.Errorf("%d gates, %d factors: want all 11 and 6 listed", len(r.Gates), len(r.Factors))
			}
			if r.Product != "wechat" || r.PolicyVersion != p.Version || r.ModelVersion != p.ModelVersion {
				t.Errorf("provenance %q %q %q", r.Product, r.PolicyVersion, r.ModelVersion)
			}
		})
	}
}

func factor(t *testing.T, r Result, name string) Factor {
	t.Helper()
	for _, f := range r.Factors {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no factor %s", name)
	return Factor{}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestFactors(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	r := Evaluate(p, standardUser())
	want := map[string][3]float64{ // raw, normalised, contribution
		FactorPayScore:    {700, 0.75, 0.2625},
		FactorAssets:      {1_000_000, 0.2, 0.05},
		FactorSocial:      {10, 0.5, 0.075},
		FactorDevice:      {0.9, 1, 0.05},
		FactorQuotaChecks: {1, 0, 0},
	}
	for name, w := range want {
		f := factor(t, r, name)
		if !near(f.Raw, w[0], 1e-9) || !near(f.Normalised, w[1], 1e-9) || !near(f.Contribution, w[2], 1e-9) {
			t.Errorf("%s = %+v, want raw %g normalised %g contribution %g", name, f, w[0], w[1], w[2])
		}
	}
	if st := factor(t, r, FactorStability); st.Normalised != 1 || st.Weight != 0.20 {
		t.Errorf("stability = %+v", st)
	}
	if !near(r.Score, 0.6375, 1e-9) || r.RawQuotaFen != 3_180_000 || r.TierCapFen != 2_000_000 {
		t.Errorf("score %g raw %d cap %d, want 0.6375, 3180000, 2000000", r.Score, r.RawQuotaFen, r.TierCapFen)
	}
	// Pay score factor: 0 at 550, linear to 1 at 750.
	for score, norm := range map[int]float64{500: 0, 550: 0, 650: 0.5, 750: 1, 900: 1} {
		f := standardUser()
		f.PayScore = score
		if got := factor(t, Evaluate(p, f), FactorPayScore).Normalised; got != norm {
			t.Errorf("pay score %d normalised %g, want %g", score, got, norm)
		}
	}
	// A quality user's weights sum to exactly 1, not 0.9999999999999999.
	if q := Evaluate(p, qualityUser()); q.Score != 1 {
		t.Errorf("full marks score = %v, want 1", q.Score)
	}
}

func TestStabilityAroundThirtyPercent(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	// Months m−d, m, m+d have a population CV of d·√(2/3)/m.
	const m = 1_000_000
	spend := func(d int64) [3]int64 { return [3]int64{m - d, m, m + d} }
	cases := []struct {
		name     string
		months   [3]int64
		cv, norm float64
	}{
		{"CV 29%: full marks", spend(355_176), 0.29, 1},
		{"CV 31%: (1.00−0.31)/(1.00−0.30)", spend(379_671), 0.31, 0.69 / 0.70},
		{"CV 65%: half marks", spend(796_084), 0.65, 0.5},
		{"CV over 100%: zero", [3]int64{0, 0, 3 * m}, math.Sqrt2, 0},
		{"steady spending", [3]int64{m, m, m}, 0, 1},
	}
	var scores []float64
	for _, tc := range cases {
		f := standardUser()
		f.MonthlySpendFen = tc.months
		r := Evaluate(p, f)
		st := factor(t, r, FactorStability)
		if !near(st.Raw, tc.cv, 1e-6) || !near(st.Normalised, tc.norm, 1e-5) {
			t.Errorf("%s: cv %.6f normalised %.6f, want %.2f and %.6f", tc.name, st.Raw, st.Normalised, tc.cv, tc.norm)
		}
		scores = append(scores, r.Score)
	}
	if !near(scores[0]-scores[1], 0.20*(1-0.69/0.70), 1e-6) {
		t.Errorf("29%% vs 31%% moves the score by %g, want %g", scores[0]-scores[1], 0.20*(1-0.69/0.70))
	}
	f := standardUser()
	f.MonthlySpendFen = [3]int64{}
	if st := factor(t, Evaluate(p, f), FactorStability); st.Normalised != 0 || st.Note == "" {
		t.Errorf("no spending = %+v, want 0 with a note", st)
	}
}

func TestQuotaCheckPenalty(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	base := Evaluate(p, modestUser()).Score
	for checks, penalty := range map[int]float64{0: 0, 3: 0, 4: 0.01, 5: 0.02, 8: 0.05, 50: 0.05} {
		f := modestUser()
		f.QuotaChecks30d = checks
		r := Evaluate(p, f)
		pf := factor(t, r, FactorQuotaChecks)
		if !near(pf.Contribution, -penalty, 1e-12) || !near(base-r.Score, penalty, 1e-9) || pf.Weight != -0.05 {
			t.Errorf("%d checks: %+v score %g, want a penalty of %g off %g", checks, pf, r.Score, penalty, base)
		}
	}
}

func TestGuardrail(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	cases := []struct {
		name      string
		f         func(*Facts)
		quota     int64
		decidedBy string
		applied   bool
	}{
		{"first quota is unlimited", func(f *Facts) {}, 1_310_000, DecidedScore, false},
		{"first quota of a quality user is unlimited", func(f *Facts) { *f = qualityUser() }, 5_000_000, DecidedScore, false},
		{"within ±50%", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 1_000_000 }, 1_310_000, DecidedScore, true},
		{"rise limited to +50%", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 500_000 }, 750_000, DecidedGuardrailCeiling, true},
		{"fall limited to −50%", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 3_000_000 }, 1_500_000, DecidedGuardrailFloor, true},
		{"quality user's rise limited to +50%", func(f *Facts) {
			*f = qualityUser()
			f.HasPreviousQuota, f.PreviousQuotaFen = true, 2_000_000
		}, 3_000_000, DecidedGuardrailCeiling, true},
		{"the tier cap wins over the floor", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 5_000_000 }, 2_000_000, DecidedTierCap, true},
		{"after a quota of 0 the next is unlimited", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 0 }, 1_310_000, DecidedScore, false},
		{"ineligible drops to 0 at once", func(f *Facts) {
			f.HasPreviousQuota, f.PreviousQuotaFen = true, 3_000_000
			f.OverdueNow = true
		}, 0, DecidedIneligible, false},
		{"bounds rounded inward to 100 yuan", func(f *Facts) { f.HasPreviousQuota, f.PreviousQuotaFen = true, 3_012_345 }, 1_510_000, DecidedGuardrailFloor, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := modestUser()
			tc.f(&f)
			r := Evaluate(p, f)
			if r.QuotaFen != tc.quota || r.DecidedBy != tc.decidedBy || r.Guardrail.Applied != tc.applied {
				t.Errorf("quota %d by %s, guardrail %+v; want %d by %s, applied %v",
					r.QuotaFen, r.DecidedBy, r.Guardrail, tc.quota, tc.decidedBy, tc.applied)
			}
			if r.Guardrail.Note == "" {
				t.Error("the guardrail result carries no note")
			}
		})
	}
}

func TestOverride(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	o := func(q int64, expires time.Time) *Override {
		return &Override{QuotaFen: q, Reason: "manual review #42", Operator: "ops", ExpiresAt: expires}
	}
	cases := []struct {
		name      string
		f         func(*Facts)
		quota     int64
		decidedBy string
		status    string
		eligible  bool
	}{
		{"active override wins over the standard cap", func(f *Facts) { f.Override = o(3_000_000, now.Add(24*time.Hour)) },
			3_000_000, DecidedOverride, OverrideActive, true},
		{"active override can lower the quota", func(f *Facts) { f.Override = o(0, now.Add(time.Hour)) },
			0, DecidedOverride, OverrideActive, true},
		{"active override wins over a failing gate", func(f *Facts) {
			f.CardBankBlacklisted = true
			f.Override = o(500_000, now.Add(time.Hour))
		}, 500_000, DecidedOverride, OverrideActive, false},
		{"active override wins over the guardrail", func(f *Facts) {
			f.HasPreviousQuota, f.PreviousQuotaFen = true, 100_000
			f.Override = o(1_000_000, now.Add(time.Hour))
		}, 1_000_000, DecidedOverride, OverrideActive, true},
		{"override clamped to the highest quota", func(f *Facts) { f.Override = o(9_000_000, now.Add(time.Hour)) },
			5_000_000, DecidedOverride, OverrideActive, true},
		{"expired override is ignored", func(f *Facts) { f.Override = o(3_000_000, now.Add(-time.Hour)) },
			2_000_000, DecidedTierCap, OverrideExpired, true},
		{"override expiring now has expired", func(f *Facts) { f.Override = o(3_000_000, now) },
			2_000_000, DecidedTierCap, OverrideExpired, true},
		{"override without an expiry is not applied", func(f *Facts) { f.Override = o(3_000_000, time.Time{}) },
			2_000_000, DecidedTierCap, OverrideExpired, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := standardUser()
			tc.f(&f)
			r := Evaluate(p, f)
			if r.QuotaFen != tc.quota || r.DecidedBy != tc.decidedBy || r.Override == nil ||
				r.Override.Status != tc.status || r.Eligible != tc.eligible {
				t.Errorf("quota %d by %s, override %+v, eligible %v; want %d by %s, %s, %v",
					r.QuotaFen, r.DecidedBy, r.Override, r.Eligible, tc.quota, tc.decidedBy, tc.status, tc.eligible)
			}
			if r.Override.Reason != "manual review #42" {
				t.Errorf("the override's reason is lost: %+v", r.Override)
			}
		})
	}
	if r := Evaluate(p, standardUser()); r.Override != nil {
		t.Errorf("no override given, got %+v", r.Override)
	}
}

func TestEvaluateReadsTimeInTheUsersZone(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	f := standardUser()
	f.Now = now.UTC()
	if r := Evaluate(p, f); r.EvaluatedAt.Location().String() != "Asia/Shanghai" || !r.EvaluatedAt.Equal(now) {
		t.Errorf("without a zone: evaluated at %v, want %v in the policy's zone", r.EvaluatedAt, now)
	}
	f.Location = mustZone("America/New_York")
	if r := Evaluate(p, f); r.EvaluatedAt.Location() != f.Location {
		t.Errorf("with the profile's zone: evaluated at %v", r.EvaluatedAt)
	}
}

// randomFacts draws facts over and around every threshold.
func randomFacts(rng *rand.Rand) Facts {
	f := Facts{
		Now:                   now,
		PayScore:              rng.IntN(500) + 400,
		RealNameVerified:      rng.IntN(10) > 0,
		IdentityComplete:      rng.IntN(10) > 0,
		CardBankBlacklisted:   rng.IntN(20) == 0,
		WealthBalanceFen:      rng.Int64N(8_000_000) - 100_000,
		JudicialDefaulter:     rng.IntN(30) == 0,
		LinkedAccountNegative: rng.IntN(30) == 0,
		Payments30d:           rng.IntN(250),
		LoginDays30d:          rng.IntN(31),
		MonthlySpendFen:       [3]int64{rng.Int64N(2_000_000), rng.Int64N(2_000_000), rng.Int64N(2_000_000)},
		MonthlyLoginDays:      [3]int{rng.IntN(31), rng.IntN(31), rng.IntN(31)},
		MonthlySocial:         [3]int{rng.IntN(40), rng.IntN(40), rng.IntN(40)},
		Logins90d:             rng.IntN(100),
		OverdueNow:            rng.IntN(15) == 0,
		MaxOverdue6m:          time.Duration(rng.IntN(40*24)*rng.IntN(2)) * time.Hour,
		OverdueEpisodes:       rng.IntN(5),
		QuotaChecks30d:        rng.IntN(12),
		HasPreviousQuota:      rng.IntN(2) == 0,
		PreviousQuotaFen:      rng.Int64N(500) * 10_000,
	}
	f.UsualDeviceLogins90d = rng.IntN(f.Logins90d + 1)
	if rng.IntN(10) > 0 {
		f.CardBoundSince = now.AddDate(0, -rng.IntN(24), -rng.IntN(28))
	}
	return f
}

func TestPropertyQuotaNeverExceedsTheCap(t *testing.T) {
	t.Parallel()
	for _, name := range policy.Presets() {
		p, err := policy.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(name))))
		for i := range 20_000 {
			f := randomFacts(rng)
			r := Evaluate(p, f)
			switch {
			case r.QuotaFen < 0 || r.QuotaFen > r.TierCapFen || r.TierCapFen > p.Quota.MaxFen:
				t.Fatalf("%s #%d: quota %d, tier cap %d, max %d: %+v", name, i, r.QuotaFen, r.TierCapFen, p.Quota.MaxFen, f)
			case !r.QualityUser && r.QuotaFen > p.Quota.StandardCapFen:
				t.Fatalf("%s #%d: a user who is not a quality user got %d: %+v", name, i, r.QuotaFen, f)
			case !r.Eligible && r.QuotaFen != 0:
				t.Fatalf("%s #%d: ineligible with quota %d", name, i, r.QuotaFen)
			case r.QuotaFen%p.Quota.RoundFen != 0:
				t.Fatalf("%s #%d: quota %d is not a multiple of %d", name, i, r.QuotaFen, p.Quota.RoundFen)
			case r.Score < 0 || r.Score > 1:
				t.Fatalf("%s #%d: score %g", name, i, r.Score)
			}
			if r.Guardrail.Applied && r.DecidedBy != DecidedTierCap &&
				(r.QuotaFen < r.Guardrail.MinFen || r.QuotaFen > r.Guardrail.MaxFen) {
				t.Fatalf("%s #%d: quota %d outside the guardrail %+v", name, i, r.QuotaFen, r.Guardrail)
			}
			if i%1000 == 0 {
				if _, err := json.Marshal(r); err != nil {
					t.Fatalf("%s #%d: the result does not marshal: %v", name, i, err)
				}
				if again := Evaluate(p, f); !reflect.DeepEqual(again, r) {
					t.Fatalf("%s #%d: two evaluations differ", name, i)
				}
			}
		}
	}
}

func TestPropertyHigherPayScoreNeverLowersTheQuota(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	rng := rand.New(rand.NewPCG(2, 3))
	for i := range 20_000 {
		f := randomFacts(rng)
		lower := Evaluate(p, f)
		g := f
		g.PayScore += 1 + rng.IntN(200)
		higher := Evaluate(p, g)
		if higher.QuotaFen < lower.QuotaFen || higher.Score < lower.Score {
			t.Fatalf("#%d: pay score %d → %d lowered quota %d → %d (score %g → %g)\n%+v",
				i, f.PayScore, g.PayScore, lower.QuotaFen, higher.QuotaFen, lower.Score, higher.Score, f)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := wechat(b)
	f := standardUser()
	f.HasPreviousQuota, f.PreviousQuotaFen = true, 1_500_000
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(p, f)
	}
}

// A quota held back says so and what would unlock more (DOMAIN.md §3): the
// standard tier's cap names the quality standards not met; the guardrail
// names the score's quota and the step.
func TestHeldBackSaysWhy(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	r := Evaluate(p, standardUser())
	if len(r.Reasons) != 1 || r.Reasons[0].Code != CodeTierCap || !strings.Contains(r.Reasons[0].Advice, "50000 yuan") ||
		!strings.Contains(r.Reasons[0].Advice, "pay score 700, quality 750") {
		t.Errorf("tier cap: %+v", r.Reasons)
	}
	f := modestUser()
	f.PreviousQuotaFen, f.HasPreviousQuota = 500_000, true
	r = Evaluate(p, f)
	if r.DecidedBy != DecidedGuardrailCeiling || len(r.Reasons) != 1 || r.Reasons[0].Code != CodeGuardrail ||
		!strings.Contains(r.Reasons[0].Advice, "the score gives 13100 yuan") {
		t.Errorf("guardrail: decided by %s, %+v", r.DecidedBy, r.Reasons)
	}
	// a score's own quota, and a fall held by the guardrail, are not held back
	f.PreviousQuotaFen = 1_310_000
	if r := Evaluate(p, f); len(r.Reasons) != 0 {
		t.Errorf("the score's quota: decided by %s, %+v", r.DecidedBy, r.Reasons)
	}
}

// DOMAIN.md §3: each factor at its ends — 0 at or below its zero, 1 at or
// above its full mark, linear between.
func TestDomain3FactorEnds(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	for _, c := range []struct {
		factor, name string
		set          func(*Facts)
		want         float64
	}{
		{FactorAssets, "0", func(f *Facts) { f.WealthBalanceFen = 0 }, 0},
		{FactorAssets, "25,000 yuan", func(f *Facts) { f.WealthBalanceFen = 2_500_000 }, 0.5},
		{FactorAssets, "50,000 yuan", func(f *Facts) { f.WealthBalanceFen = 5_000_000 }, 1},
		{FactorAssets, "80,000 yuan", func(f *Facts) { f.WealthBalanceFen = 8_000_000 }, 1},
		{FactorSocial, "0 a month", func(f *Facts) { f.MonthlySocial = [3]int{} }, 0},
		{FactorSocial, "20 a month", func(f *Facts) { f.MonthlySocial = [3]int{20, 20, 20} }, 1},
		{FactorSocial, "30 a month", func(f *Facts) { f.MonthlySocial = [3]int{30, 30, 30} }, 1},
		{FactorDevice, "no login", func(f *Facts) { f.Logins90d, f.UsualDeviceLogins90d = 0, 0 }, 0},
		{FactorDevice, "45 of 50 (90%)", func(f *Facts) { f.Logins90d, f.UsualDeviceLogins90d = 50, 45 }, 1},
		{FactorDevice, "30 of 30", func(f *Facts) { f.Logins90d, f.UsualDeviceLogins90d = 30, 30 }, 1},
		{FactorDevice, "27 of 60 (45%)", func(f *Facts) { f.Logins90d, f.UsualDeviceLogins90d = 60, 27 }, 0.5},
		{FactorStability, "no spending", func(f *Facts) { f.MonthlySpendFen = [3]int64{} }, 0},
		{FactorStability, "steady", func(f *Facts) { f.MonthlySpendFen = [3]int64{100_000, 100_000, 100_000} }, 1},
		{FactorStability, "all in one month (cv 141%)", func(f *Facts) { f.MonthlySpendFen = [3]int64{0, 0, 300_000} }, 0},
	} {
		f := standardUser()
		c.set(&f)
		if got := factor(t, Evaluate(p, f), c.factor).Normalised; !near(got, c.want, 1e-9) {
			t.Errorf("%s %s: normalised %g, want %g", c.factor, c.name, got, c.want)
		}
	}
}

// Eligible is Evaluate's verdict on the gates, an active override counting
// as a pass, on random facts.
func TestEligibleIsEvaluatesVerdict(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	rng := rand.New(rand.NewPCG(11, 11))
	for i := range 2000 {
		f := randomFacts(rng)
		if i%7 == 0 {
			f.Override = &Override{QuotaFen: 100, Reason: "r", ExpiresAt: f.Now.Add(time.Duration(rng.IntN(3)-1) * time.Hour)}
		}
		r := Evaluate(p, f)
		ok, reasons := Eligible(p, f)
		if want := r.Eligible || r.DecidedBy == DecidedOverride; ok != want {
			t.Fatalf("facts %+v: Eligible %v, Evaluate eligible %v decided by %s", f, ok, r.Eligible, r.DecidedBy)
		}
		if !r.Eligible && !slices.Equal(codesOf(reasons), codesOf(r.Reasons)) {
			t.Fatalf("codes %v, Evaluate's %v", codesOf(reasons), codesOf(r.Reasons))
		}
	}
}
