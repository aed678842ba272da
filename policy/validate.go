package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Validate checks the whole policy and returns every problem found, joined
// (errors.Join); each is a *FieldError naming the file, the line (when the
// policy was read from YAML) and the field. Parse, Load and Preset call it;
// call it again after changing a policy in code.
func (p *Policy) Validate() error {
	fes := p.validate()
	if len(fes) == 0 {
		return nil
	}
	errs := make([]error, len(fes))
	for i, fe := range fes {
		errs[i] = fe
	}
	sortByLine(errs)
	return errors.Join(errs...)
}

// weightTolerance is how far the weights may sum from 1 (float rounding).
const weightTolerance = 1e-9

type checker struct {
	src  *source
	errs []*FieldError
}

// add reports a problem with a field's own value.
func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, c.src.errorf(field, true, format, args...))
}

// addRef reports a problem that is not about the field's value being unset
// (a reference to a missing catalogue entry).
func (c *checker) addRef(field, format string, args ...any) {
	c.errs = append(c.errs, c.src.errorf(field, false, format, args...))
}

func (c *checker) required(field, value string) {
	if value == "" {
		c.add(field, "required")
	}
}

func (c *checker) positive(field string, v int64) {
	if v <= 0 {
		c.add(field, "must be > 0 (got %d)", v)
	}
}

func (c *checker) nonNegative(field string, v int64) {
	if v < 0 {
		c.add(field, "must be >= 0 (got %d)", v)
	}
}

// between checks lo <= v <= hi for a float (NaN and ±Inf fail).
func (c *checker) between(field string, v, lo, hi float64) {
	if math.IsNaN(v) || v < lo || v > hi {
		c.add(field, "must be in [%g, %g] (got %g)", lo, hi, v)
	}
}

func (p *Policy) validate() []*FieldError {
	c := &checker{src: p.src}
	c.required("version", p.Version)
	c.required("product", p.Product)
	c.required("model_version", p.ModelVersion)
	if p.Timezone == "" {
		c.add("timezone", "required")
	} else if _, err := time.LoadLocation(p.Timezone); err != nil {
		c.add("timezone", "unknown time zone %q", p.Timezone)
	}
	p.validateEligibility(c)
	p.validateQuota(c)
	p.validateRecompute(c)
	p.validatePricing(c)
	p.validateScenes(c)
	p.validateRisk(c)
	p.validateLimits(c)
	p.validateReasons(c)
	return c.errs
}

func (p *Policy) validateLimits(c *checker) {
	l := p.Limits
	if l.MaxAmountFen < 1 || l.MaxAmountFen > events.MaxAmountFen {
		c.add("limits.max_amount_fen", "must be in [1, %d] (got %d)", int64(events.MaxAmountFen), l.MaxAmountFen)
	}
	if l.MaxOpenBills < 1 || l.MaxOpenBills > MaxOpenBillsKept {
		c.add("limits.max_open_bills", "must be in [1, %d], what the state keeps (got %d)", MaxOpenBillsKept, l.MaxOpenBills)
	}
}

func (p *Policy) validateEligibility(c *checker) {
	e := p.Eligibility
	c.positive("eligibility.pay_score_min", int64(e.PayScoreMin))
	c.nonNegative("eligibility.card_bound_min_months", int64(e.CardBoundMinMonths))
	c.positive("eligibility.serious_default_overdue_days", int64(e.SeriousDefaultOverdueDays))
	c.positive("eligibility.serious_default_window_months", int64(e.SeriousDefaultWindowMonths))
	c.between("eligibility.activity_min_payments_per_day", e.ActivityMinPaymentsPerDay, 0, 1e6)
	c.positive("eligibility.activity_window_days", int64(e.ActivityWindowDays))
	if e.ActivityMinLoginDays < 0 || e.ActivityMinLoginDays > e.ActivityWindowDays {
		c.add("eligibility.activity_min_login_days", "must be in [0, eligibility.activity_window_days (%d)] (got %d)", e.ActivityWindowDays, e.ActivityMinLoginDays)
	}

	q := p.Quality
	if q.PayScoreMin < e.PayScoreMin {
		c.add("quality_user.pay_score_min", "must be >= eligibility.pay_score_min (%d), got %d", e.PayScoreMin, q.PayScoreMin)
	}
	if q.LoginDaysPerMonth < 0 || q.LoginDaysPerMonth > 31 {
		c.add("quality_user.login_days_per_month", "must be in [0, 31] (got %d)", q.LoginDaysPerMonth)
	}
	if q.LoginMonths < 1 || q.LoginMonths > 3 {
		c.add("quality_user.login_months", "must be in [1, 3] (got %d)", q.LoginMonths)
	}
	c.between("quality_user.min_payments_per_day", q.MinPaymentsPerDay, 0, 1e6)
	c.nonNegative("quality_user.max_overdue_episodes", int64(q.MaxOverdueEpisodes))
}

func (p *Policy) validateQuota(c *checker) {
	q := p.Quota
	w := q.Weights
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"pay_score", w.PayScore}, {"assets", w.Assets}, {"stability", w.Stability},
		{"social", w.Social}, {"device", w.Device},
	} {
		c.between("quota.weights."+f.name, f.v, 0, 1)
	}
	if sum := w.Sum(); math.IsNaN(sum) || math.Abs(sum-1) > weightTolerance {
		c.add("quota.weights", "weights must sum to 1.0 (got %.4g)", sum)
	}

	f := q.Factors
	if f.PayScore.ZeroAt < 0 {
		c.add("quota.factors.pay_score.zero_at", "must be >= 0 (got %d)", f.PayScore.ZeroAt)
	}
	if f.PayScore.FullAt <= f.PayScore.ZeroAt {
		c.add("quota.factors.pay_score.full_at", "must be above zero_at (%d), got %d", f.PayScore.ZeroAt, f.PayScore.FullAt)
	}
	c.positive("quota.factors.assets.full_at_fen", f.Assets.FullAtFen)
	c.between("quota.factors.stability.full_below_cv", f.Stability.FullBelowCV, 0, 10)
	if !(f.Stability.ZeroAtCV > f.Stability.FullBelowCV) || f.Stability.ZeroAtCV > 10 {
		c.add("quota.factors.stability.zero_at_cv", "must be above full_below_cv (%g) and at most 10, got %g", f.Stability.FullBelowCV, f.Stability.ZeroAtCV)
	}
	if !(f.Social.FullAtPerMonth > 0) || math.IsInf(f.Social.FullAtPerMonth, 0) {
		c.add("quota.factors.social.full_at_per_month", "must be > 0 (got %g)", f.Social.FullAtPerMonth)
	}
	if !(f.Device.FullAtShare > 0 && f.Device.FullAtShare <= 1) {
		c.add("quota.factors.device.full_at_share", "must be in (0, 1] (got %g)", f.Device.FullAtShare)
	}
	c.positive("quota.factors.device.window_days", int64(f.Device.WindowDays))

	cp := q.CheckPenalty
	c.positive("quota.check_penalty.window_days", int64(cp.WindowDays))
	c.nonNegative("quota.check_penalty.free_checks", int64(cp.FreeChecks))
	c.between("quota.check_penalty.per_check", cp.PerCheck, 0, 1)
	c.between("quota.check_penalty.max", cp.Max, 0, 1)

	c.positive("quota.max_fen", q.MaxFen)
	if q.StandardCapFen <= 0 || (q.MaxFen > 0 && q.StandardCapFen > q.MaxFen) {
		c.add("quota.standard_cap_fen", "must be in (0, max_fen=%d] (got %d)", q.MaxFen, q.StandardCapFen)
	}
	c.positive("quota.round_fen", q.RoundFen)
	if q.RoundFen > 0 {
		if q.MaxFen%q.RoundFen != 0 {
			c.add("quota.max_fen", "must be a multiple of round_fen (%d), got %d", q.RoundFen, q.MaxFen)
		}
		if q.StandardCapFen%q.RoundFen != 0 {
			c.add("quota.standard_cap_fen", "must be a multiple of round_fen (%d), got %d", q.RoundFen, q.StandardCapFen)
		}
	}
	p.validateCurve(c)
	if !(q.Guardrail.MaxChangeShare > 0 && q.Guardrail.MaxChangeShare <= 1) {
		c.add("quota.guardrail.max_change_share", "must be in (0, 1] (got %g)", q.Guardrail.MaxChangeShare)
	}
}

func (p *Policy) validateCurve(c *checker) {
	curve := p.Quota.Curve
	if len(curve) < 2 {
		c.add("quota.curve", "needs at least two points, from score 0 to score 1 (got %d)", len(curve))
		return
	}
	if curve[0].Score != 0 {
		c.add("quota.curve[0].score", "the first point must be at score 0 (got %g)", curve[0].Score)
	}
	last := len(curve) - 1
	if curve[last].Score != 1 {
		c.add(fmt.Sprintf("quota.curve[%d].score", last), "the last point must be at score 1 (got %g)", curve[last].Score)
	}
	for i, pt := range curve {
		field := fmt.Sprintf("quota.curve[%d]", i)
		if pt.QuotaFen < 0 || (p.Quota.MaxFen > 0 && pt.QuotaFen > p.Quota.MaxFen) {
			c.add(field+".quota_fen", "must be in [0, max_fen=%d] (got %d)", p.Quota.MaxFen, pt.QuotaFen)
		}
		if math.IsNaN(pt.Score) || pt.Score < 0 || pt.Score > 1 {
			c.add(field+".score", "must be in [0, 1] (got %g)", pt.Score)
		}
		if i == 0 {
			continue
		}
		prev := curve[i-1]
		if !(pt.Score > prev.Score) {
			c.add(field+".score", "scores must rise strictly (%g after %g)", pt.Score, prev.Score)
		}
		if pt.QuotaFen < prev.QuotaFen {
			c.add(field+".quota_fen", "quotas must never fall as the score rises (%d after %d)", pt.QuotaFen, prev.QuotaFen)
		}
	}
}

func (p *Policy) validateRecompute(c *checker) {
	switch p.Recompute.Mode {
	case RecomputeInterval:
		c.positive("recompute.interval_days", int64(p.Recompute.IntervalDays))
	case RecomputeCalendarQuarter:
	default:
		c.add("recompute.mode", "must be %q or %q (got %q)", RecomputeInterval, RecomputeCalendarQuarter, p.Recompute.Mode)
	}
}

func (p *Policy) validatePricing(c *checker) {
	pr := p.Pricing
	p.validatePayLater(c)
	p.validateAdjustments(c)
	c.positive("pricing.max_periods", int64(pr.MaxPeriods))
	c.nonNegative("pricing.min_fee_bp", int64(pr.MinFeeBP))
	if pr.MaxFeeBP < pr.MinFeeBP || pr.MaxFeeBP > 10_000 {
		c.add("pricing.max_fee_bp", "must be in [min_fee_bp=%d, 10000] (got %d)", pr.MinFeeBP, pr.MaxFeeBP)
	}
	if len(pr.Plans) == 0 {
		c.add("pricing.plans", "at least one plan is required")
	}
	inRange := func(field string, bp int) {
		if bp < pr.MinFeeBP || bp > pr.MaxFeeBP {
			c.add(field, "must be within the product's range [%d, %d] bp (got %d)", pr.MinFeeBP, pr.MaxFeeBP, bp)
		}
	}
	seen := map[int]int{}
	for i, plan := range pr.Plans {
		field := fmt.Sprintf("pricing.plans[%d]", i)
		if plan.Periods < 2 || (pr.MaxPeriods > 0 && plan.Periods > pr.MaxPeriods) {
			c.add(field+".periods", "must be in [2, max_periods=%d] (got %d; 1 period is pay later, pricing.pay_later)", pr.MaxPeriods, plan.Periods)
		}
		if j, dup := seen[plan.Periods]; dup {
			c.add(field+".periods", "%d periods already offered by plans[%d]", plan.Periods, j)
		}
		seen[plan.Periods] = i
		inRange(field+".fee_bp", plan.FeeBP)
		for k, promo := range plan.Promotions {
			pf := fmt.Sprintf("%s.promotions[%d]", field, k)
			c.required(pf+".name", promo.Name)
			inRange(pf+".fee_bp", promo.FeeBP)
			if promo.FeeBP >= plan.FeeBP {
				c.add(pf+".fee_bp", "a promotional rate must be below the base rate %d bp (got %d)", plan.FeeBP, promo.FeeBP)
			}
			w := promo.When
			if w.Scene == "" && !w.NewUser && !w.Invited {
				c.add(pf+".when", "a promotion needs a condition (scene, new_user or invited)")
			}
			if w.Scene != "" && !w.Scene.Valid() {
				c.add(pf+".when.scene", "unknown scene %q", w.Scene)
			}
		}
	}
}

// validatePayLater checks the pay-later cycle against the interest-free
// period the product promises (DOMAIN.md §4, §8).
func (p *Policy) validatePayLater(c *checker) {
	pr, pl := p.Pricing, p.Pricing.PayLater
	c.nonNegative("pricing.interest_free_days", int64(pr.InterestFreeDays))
	if pl.StatementDay < 0 || pl.StatementDay > 28 {
		c.add("pricing.pay_later.statement_day", "must be a day of the month in [1, 28], or 0 for no pay later (got %d)", pl.StatementDay)
		return
	}
	if pl.DaysToDue < 0 || pl.DaysToDue > 28 {
		c.add("pricing.pay_later.days_to_due", "must be in [0, 28] days after the statement date (got %d)", pl.DaysToDue)
		return
	}
	if !pl.Offered() {
		if pl.DaysToDue != 0 {
			c.add("pricing.pay_later.statement_day", "required (a day in [1, 28]) when days_to_due is set")
		}
		if pr.InterestFreeDays != 0 {
			c.add("pricing.interest_free_days", "%d interest-free days are promised but pay later is not offered: "+
				"set pricing.pay_later.statement_day and days_to_due (the longest free period is 30 + days_to_due), or promise 0",
				pr.InterestFreeDays)
		}
		return
	}
	if longest := pl.LongestFreeDays(); longest != pr.InterestFreeDays {
		hint := "no days_to_due in [0, 28] gives it: a monthly statement gives 30 to 58 days"
		if want := pr.InterestFreeDays - 30; want >= 0 && want <= 28 {
			hint = fmt.Sprintf("days_to_due: %d gives it", want)
		}
		c.add("pricing.pay_later.days_to_due", "the longest interest-free period is 30 + days_to_due = %d days, "+
			"but pricing.interest_free_days promises %d (%s)", longest, pr.InterestFreeDays, hint)
	}
}

// validateAdjustments checks the pay-score bands and merchant subsidies.
func (p *Policy) validateAdjustments(c *checker) {
	a := p.Pricing.Adjustments
	names := map[string]string{}
	name := func(field, n string) {
		c.required(field+".name", n)
		if prev, dup := names[n]; dup && n != "" {
			c.add(field+".name", "name %q already used by %s", n, prev)
		}
		names[n] = field
	}
	bp := func(field string, v int) {
		if v < 1 || v > 10_000 {
			c.add(field, "must be in [1, 10000] bp (got %d)", v)
		}
	}
	for i, b := range a.PayScoreBands {
		field := fmt.Sprintf("pricing.adjustments.pay_score_bands[%d]", i)
		name(field, b.Name)
		if b.MinPayScore < 0 {
			c.add(field+".min_pay_score", "must be >= 0 (got %d)", b.MinPayScore)
		}
		if b.MaxPayScore < b.MinPayScore {
			c.add(field+".max_pay_score", "must be >= min_pay_score (%d), got %d", b.MinPayScore, b.MaxPayScore)
		}
		bp(field+".add_bp", b.AddBP)
		for j, o := range a.PayScoreBands[:i] {
			if b.MinPayScore <= o.MaxPayScore && o.MinPayScore <= b.MaxPayScore {
				c.add(field, "[%d, %d] overlaps pay_score_bands[%d] [%d, %d]", b.MinPayScore, b.MaxPayScore, j, o.MinPayScore, o.MaxPayScore)
			}
		}
	}
	merchants := map[string]string{}
	for i, s := range a.MerchantSubsidies {
		field := fmt.Sprintf("pricing.adjustments.merchant_subsidies[%d]", i)
		name(field, s.Name)
		if len(s.Merchants) == 0 {
			c.add(field+".merchants", "at least one merchant id is required")
		}
		for k, m := range s.Merchants {
			mf := fmt.Sprintf("%s.merchants[%d]", field, k)
			if m == "" {
				c.add(mf, "required")
				continue
			}
			if prev, dup := merchants[m]; dup {
				c.add(mf, "merchant %q already subsidised by %s", m, prev)
			}
			merchants[m] = field
		}
		bp(field+".subsidy_bp", s.SubsidyBP)
	}
}

func (p *Policy) validateScenes(c *checker) {
	names := make([]events.Scene, 0, len(p.Scenes))
	for s := range p.Scenes {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		rule := p.Scenes[s]
		field := "scenes." + string(s)
		if !s.Valid() {
			c.add(field, "unknown scene %q", s)
		}
		switch rule.QuotaPool {
		case "", PoolPayScore, PoolIndependent, PoolSharedWeilidai, PoolSpecialTemporary:
		default:
			c.add(field+".quota_pool", "unknown quota pool %q", rule.QuotaPool)
		}
		if rule.MinPayScore != 0 && rule.MinPayScore < p.Eligibility.PayScoreMin {
			c.add(field+".min_pay_score", "must be 0 or >= eligibility.pay_score_min (%d), got %d", p.Eligibility.PayScoreMin, rule.MinPayScore)
		}
		c.nonNegative(field+".single_payment_max_fen", rule.SinglePaymentMaxFen)
	}
}

func (p *Policy) validateRisk(c *checker) {
	r := p.Risk
	if _, err := clockMinute(r.NightStart); err != nil {
		c.add("risk.night_start", "%v", err)
	}
	if _, err := clockMinute(r.NightEnd); err != nil {
		c.add("risk.night_end", "%v", err)
	}
	c.positive("risk.large_payment_fen", r.LargePaymentFen)
	c.positive("risk.other_city_window_days", int64(r.OtherCityWindowDays))
	c.positive("risk.velocity_count", int64(r.VelocityCount))
	if r.VelocityWindow <= 0 {
		c.add("risk.velocity_window", "must be > 0 (got %s)", r.VelocityWindow)
	}
	if r.OtherCityThenLargeWindow <= 0 {
		c.add("risk.other_city_then_large_window", "must be > 0 (got %s)", r.OtherCityThenLargeWindow)
	}
	if r.AllowedLateness < 0 {
		c.add("risk.allowed_lateness", "must be >= 0 (got %s)", r.AllowedLateness)
	}
	c.nonNegative("risk.overdue_freeze_after_days", int64(r.OverdueFreezeAfterDays))
	for _, rule := range r.Rules.Named() {
		field := "risk.rules." + rule.Name
		switch rule.Rule.Action {
		case ActionSMSVerify, ActionFaceVerify, ActionDocumentVerify, ActionNotifyUser:
		case ActionRefuse, ActionFreeze:
			// a credit refusal's codes are those of the checks that fail
			if rule.Rule.Code == "" && rule.Name != "credit_refusal" {
				c.add(field+".code", "action %s needs a reason code", rule.Rule.Action)
			}
		default:
			c.add(field+".action", "unknown action %q (want %s, %s, %s, %s, %s or %s)", rule.Rule.Action,
				ActionSMSVerify, ActionFaceVerify, ActionDocumentVerify, ActionRefuse, ActionFreeze, ActionNotifyUser)
		}
		if rule.Name == "credit_refusal" && rule.Rule.Action != ActionRefuse {
			c.add(field+".action", "must be %s (got %q): it refuses credit payments", ActionRefuse, rule.Rule.Action)
		}
		if rule.Rule.Code != "" {
			if _, ok := p.Reason(rule.Rule.Code); !ok {
				c.addRef(field+".code", "code %s is not in the reasons catalogue", rule.Rule.Code)
			}
		}
	}
}

func (p *Policy) validateReasons(c *checker) {
	seen := map[string]int{}
	for i, r := range p.Reasons {
		field := fmt.Sprintf("reasons[%d]", i)
		c.required(field+".code", r.Code)
		c.required(field+".message", r.Message)
		c.required(field+".advice", r.Advice)
		if j, dup := seen[r.Code]; dup && r.Code != "" {
			c.add(field+".code", "code %s already defined by reasons[%d]", r.Code, j)
		}
		seen[r.Code] = i
	}
	for _, code := range RequiredCodes {
		if _, ok := seen[code]; !ok {
			c.addRef("reasons", "missing required code %s", code)
		}
	}
}
