package credit

import (
	"math"
	"strings"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// Gate and quality-standard names (Check.Name).
const (
	GatePayScore         = "pay_score"
	GateRealName         = "real_name"
	GateIdentityComplete = "identity_complete"
	GateCardBound        = "card_bound"
	GateBankBlacklist    = "bank_blacklist"
	GateSeriousDefault   = "serious_default"
	GateActivity         = "activity"
	GateLoginDays        = "login_days"
	GateOverdueNow       = "overdue_now"
	GateJudicial         = "judicial_defaulter"
	GateLinkedAccount    = "linked_account"

	QualityPayScore       = "pay_score"
	QualityLoginDays      = "login_days"
	QualityPayments       = "payments_per_day"
	QualityOverdueHistory = "overdue_episodes"
	QualityAllSettled     = "all_settled"
)

// Factor names (Factor.Name).
const (
	FactorPayScore    = "pay_score"
	FactorAssets      = "assets"
	FactorStability   = "stability"
	FactorSocial      = "social"
	FactorDevice      = "device"
	FactorQuotaChecks = "quota_checks" // the penalty: weight ≤ 0
)

// What fixed the final quota (Result.DecidedBy).
const (
	DecidedIneligible       = "ineligible"        // a gate failed: 0
	DecidedScore            = "score"             // the curve, untouched
	DecidedTierCap          = "tier_cap"          // the standard cap or the highest quota
	DecidedGuardrailFloor   = "guardrail_floor"   // fell more than the guardrail allows
	DecidedGuardrailCeiling = "guardrail_ceiling" // rose more than the guardrail allows
	DecidedOverride         = "override"          // an operator's override
)

// Tiers (Result.Tier).
const (
	TierNone     = "none"     // quota 0
	TierStandard = "standard" // up to quota.standard_cap_fen
	TierHigh     = "high"     // above it: quality users (or an override)
)

// Result is one quota decision with everything needed to explain it. It
// marshals to JSON as the Detail of a quota decision.
type Result struct {
	Product       string    `json:"product"`
	PolicyVersion string    `json:"policy_version"`
	ModelVersion  string    `json:"model_version"`
	EvaluatedAt   time.Time `json:"evaluated_at"`

	// Eligible: every gate passed. An ineligible user's quota is 0 unless
	// an override is active.
	Eligible bool `json:"eligible"`
	// Gates lists every eligibility gate, passed or not, in a fixed order.
	Gates []Check `json:"gates"`
	// Reasons are the catalogue entries of the failing gates' codes, each
	// code once, in gate order; empty when eligible.
	Reasons []events.ReasonCode `json:"reason_codes,omitempty"`

	// QualityUser: eligible and meets every quality standard; only a
	// quality user reaches the high tier.
	QualityUser bool    `json:"quality_user"`
	Quality     []Check `json:"quality"`

	// Factors are the five weighted factors and the quota-check penalty.
	Factors []Factor `json:"factors"`
	// Score is the sum of the contributions, clamped to [0, 1] and rounded
	// to 9 decimals.
	Score float64 `json:"score"`

	// RawQuotaFen is the curve's quota for Score, rounded down to
	// quota.round_fen, before any cap.
	RawQuotaFen int64 `json:"raw_quota_fen"`
	// TierCapFen is the cap that applies to the user: the highest quota for
	// a quality user, the standard cap otherwise.
	TierCapFen int64           `json:"tier_cap_fen"`
	Guardrail  GuardrailResult `json:"guardrail"`
	Override   *OverrideResult `json:"override,omitempty"`

	// QuotaFen is the final quota.
	QuotaFen int64 `json:"quota_fen"`
	// Tier is the tier of QuotaFen.
	Tier string `json:"tier"`
	// DecidedBy names the step that fixed QuotaFen (the Decided constants).
	DecidedBy string `json:"decided_by"`
}

// Check is one eligibility gate or quality standard.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Code   string `json:"code,omitempty"` // the reason code when a gate fails
	Detail string `json:"detail"`         // the value against the threshold
}

// Factor is one term of the score: Contribution = Normalised × Weight.
type Factor struct {
	Name         string  `json:"name"`
	Raw          float64 `json:"raw"`
	Unit         string  `json:"unit"`
	Normalised   float64 `json:"normalised"` // in [0, 1]
	Weight       float64 `json:"weight"`
	Contribution float64 `json:"contribution"`
	Note         string  `json:"note,omitempty"`
}

// GuardrailResult says whether and how the guardrail held the quota.
type GuardrailResult struct {
	// Applied: there was a previous positive quota and the user is
	// eligible, so the move was bounded by [MinFen, MaxFen].
	Applied     bool   `json:"applied"`
	PreviousFen int64  `json:"previous_fen"`
	MinFen      int64  `json:"min_fen,omitempty"`
	MaxFen      int64  `json:"max_fen,omitempty"`
	Note        string `json:"note"`
}

// Override statuses.
const (
	OverrideActive  = "active"
	OverrideExpired = "expired"
)

// OverrideResult reports the operator override the facts carried.
type OverrideResult struct {
	Override
	Status string `json:"status"` // active or expired
	// Clamped: the override asked for more than the product's highest quota.
	Clamped bool `json:"clamped,omitempty"`
}

// scoreDecimals is the precision the score is rounded to, so that float
// sums such as 0.35+0.25+0.20+0.15+0.05 land exactly on 1.
const scoreDecimals = 1e9

// Evaluate decides a user's quota under a validated policy. It is pure and
// deterministic: the same policy and facts always give the same Result,
// and it is safe for concurrent use.
//
// The steps: every eligibility gate; the quality standards; the five
// factors and the quota-check penalty; the score; the curve's quota,
// rounded down to quota.round_fen; the tier cap (the standard cap unless
// the user is a quality user); the guardrail (at most
// quota.guardrail.max_change_share of the previous quota up or down, unless
// there is no previous positive quota or the user became ineligible); the
// tier cap again (it wins over the guardrail's floor); then an active
// operator override replaces the result.
func Evaluate(p *policy.Policy, f Facts) Result {
	loc := f.Location
	if loc == nil {
		loc = p.Location()
	}
	now := f.Now.In(loc)
	r := Result{
		Product:       p.Product,
		PolicyVersion: p.Version,
		ModelVersion:  p.ModelVersion,
		EvaluatedAt:   now,
		Reasons:       []events.ReasonCode{},
	}

	r.Gates = gates(p, f, now, loc)
	r.Eligible, r.Reasons = failing(p, r.Gates, r.Reasons)
	r.Quality = quality(p, f)
	r.QualityUser = r.Eligible && allPassed(r.Quality)

	r.Factors = factors(p, f)
	var sum float64
	for _, fc := range r.Factors {
		sum += fc.Contribution
	}
	r.Score = math.Round(clamp01(sum)*scoreDecimals) / scoreDecimals
	r.RawQuotaFen = curveQuota(p, r.Score)

	r.TierCapFen = p.Quota.StandardCapFen
	if r.QualityUser {
		r.TierCapFen = p.Quota.MaxFen
	}
	r.QuotaFen, r.DecidedBy = r.RawQuotaFen, DecidedScore
	if r.QuotaFen > r.TierCapFen {
		r.QuotaFen, r.DecidedBy = r.TierCapFen, DecidedTierCap
	}
	r.Guardrail = GuardrailResult{PreviousFen: f.PreviousQuotaFen}
	switch {
	case !r.Eligible:
		r.QuotaFen, r.DecidedBy = 0, DecidedIneligible
		r.Guardrail.Note = "not applied: the user is not eligible"
	case !f.HasPreviousQuota:
		r.Guardrail.PreviousFen = 0
		r.Guardrail.Note = "not applied: first quota"
	case f.PreviousQuotaFen <= 0:
		r.Guardrail.Note = "not applied: the previous quota was 0"
	default:
		guard(p, &r)
	}

	if o := f.Override; o != nil {
		or := &OverrideResult{Override: *o, Status: OverrideExpired}
		if now.Before(o.ExpiresAt) {
			or.Status = OverrideActive
			q := max(o.QuotaFen, 0)
			if q > p.Quota.MaxFen {
				q, or.Clamped = p.Quota.MaxFen, true
			}
			r.QuotaFen, r.DecidedBy = q, DecidedOverride
		}
		r.Override = or
	}

	switch {
	case r.QuotaFen <= 0:
		r.Tier = TierNone
	case r.QuotaFen > p.Quota.StandardCapFen:
		r.Tier = TierHigh
	default:
		r.Tier = TierStandard
	}
	heldBack(p, &r)
	return r
}

// heldBack says, with a reason code, when the tier cap or the guardrail
// holds the quota below what the score gives (DOMAIN.md §3), and what
// would unlock more: the quality standards not met, or the next recompute.
func heldBack(p *policy.Policy, r *Result) {
	switch {
	case r.DecidedBy == DecidedTierCap && !r.QualityUser && r.TierCapFen < p.Quota.MaxFen:
		rc := ReasonOf(p, CodeTierCap)
		t := txt().s(rc.Advice).s(": up to ").d64(p.Quota.MaxFen / 100).s(" yuan for a quality user; not met:")
		for _, q := range r.Quality {
			if !q.Passed {
				t = t.s(" ").s(q.Detail).s(";")
			}
		}
		rc.Advice = strings.TrimSuffix(t.String(), ";")
		r.Reasons = append(r.Reasons, rc)
	case r.DecidedBy == DecidedGuardrailCeiling:
		rc := ReasonOf(p, CodeGuardrail)
		rc.Advice = txt().s(rc.Advice).s(": the score gives ").d64(min(r.RawQuotaFen, r.TierCapFen) / 100).
			s(" yuan; this recompute moves at most ").g(p.Quota.Guardrail.MaxChangeShare).s(" of the previous quota").String()
		r.Reasons = append(r.Reasons, rc)
	}
}

// failing reports whether every gate passed, and appends to reasons the
// catalogue entry of each failing gate's code, once each.
func failing(p *policy.Policy, gs []Check, reasons []events.ReasonCode) (bool, []events.ReasonCode) {
	ok := true
	for _, g := range gs {
		if g.Passed {
			continue
		}
		ok = false
		if !hasCode(reasons, g.Code) {
			reasons = append(reasons, p.ReasonCode(g.Code))
		}
	}
	return ok, reasons
}

// Eligible is Evaluate's verdict on the eligibility gates alone (DOMAIN.md
// §1), what a credit purchase is judged on: whether the user passes them,
// an active operator override counting as a pass (it wins over the gates
// for the quota too), and the codes of the gates that fail, each once. It
// skips the factors, the score and the caps.
func Eligible(p *policy.Policy, f Facts) (bool, []events.ReasonCode) {
	loc := f.Location
	if loc == nil {
		loc = p.Location()
	}
	now := f.Now.In(loc)
	ok, reasons := failing(p, gates(p, f, now, loc), nil)
	if o := f.Override; o != nil && now.Before(o.ExpiresAt) {
		ok = true
	}
	return ok, reasons
}

// guard bounds the move from a positive previous quota, then re-applies
// the tier cap.
func guard(p *policy.Policy, r *Result) {
	prev, unit := r.Guardrail.PreviousFen, p.Quota.RoundFen
	shareBP := int64(math.Round(p.Quota.Guardrail.MaxChangeShare * 10_000))
	delta := prev * shareBP / 10_000
	// Bounds are rounded inward to the quota unit; when that leaves no
	// room (a tiny or odd previous quota) the quota stays where it was.
	lo := ceilTo(prev-delta, unit)
	hi := floorTo(prev+delta, unit)
	if lo > hi {
		lo, hi = prev, prev
	}
	r.Guardrail.Applied, r.Guardrail.MinFen, r.Guardrail.MaxFen = true, lo, hi
	r.Guardrail.Note = txt().s("at most ").g(p.Quota.Guardrail.MaxChangeShare).s(" of the previous quota either way").String()
	switch {
	case r.QuotaFen < lo:
		r.QuotaFen, r.DecidedBy = lo, DecidedGuardrailFloor
	case r.QuotaFen > hi:
		r.QuotaFen, r.DecidedBy = hi, DecidedGuardrailCeiling
	}
	if r.QuotaFen > r.TierCapFen {
		r.QuotaFen, r.DecidedBy = r.TierCapFen, DecidedTierCap
		r.Guardrail.Note += "; the tier cap is lower than the floor and wins"
	}
}

func gates(p *policy.Policy, f Facts, now time.Time, loc *time.Location) []Check {
	e := p.Eligibility
	gs := make([]Check, 0, 11) // every gate below
	add := func(name string, passed bool, code, detail string) {
		gs = append(gs, Check{Name: name, Passed: passed, Code: failCode(passed, code), Detail: detail})
	}
	add(GatePayScore, f.PayScore >= e.PayScoreMin, policy.CodeCreditLow,
		txt().s("pay score ").d(f.PayScore).s(", minimum ").d(e.PayScoreMin).String())
	add(GateRealName, f.RealNameVerified, policy.CodeAuthIncomplete,
		yesNo(f.RealNameVerified, "real-name verified", "real-name verification not complete"))
	add(GateIdentityComplete, f.IdentityComplete, policy.CodeAuthIncomplete,
		yesNo(f.IdentityComplete, "occupation and education complete", "occupation or education missing"))

	if f.CardBoundSince.IsZero() {
		add(GateCardBound, false, policy.CodeAuthIncomplete, "no bank card bound")
	} else {
		since := f.CardBoundSince.In(loc)
		due := since.AddDate(0, e.CardBoundMinMonths, 0)
		add(GateCardBound, !now.Before(due), policy.CodeAuthIncomplete,
			txt().s("card bound since ").date(since).s("; ").d(e.CardBoundMinMonths).s(" months reached on ").date(due).String())
	}
	add(GateBankBlacklist, !f.CardBankBlacklisted, policy.CodeBankBlacklisted,
		yesNo(!f.CardBankBlacklisted, "card bank not blacklisted", "card bank on the blacklist"))
	serious := time.Duration(e.SeriousDefaultOverdueDays) * 24 * time.Hour
	detail := txt().s("longest overdue in ").d(e.SeriousDefaultWindowMonths).s(" months: ").s(overdueDays(f.MaxOverdue6m)).
		s(", serious when over ").d(e.SeriousDefaultOverdueDays).s(" days")
	elsewhere := !f.DefaultElsewhere.IsZero() && f.DefaultElsewhere.After(now.AddDate(0, -e.SeriousDefaultWindowMonths, 0))
	if !f.DefaultElsewhere.IsZero() {
		detail = detail.s("; serious default reported elsewhere on ").date(f.DefaultElsewhere.In(loc))
	}
	add(GateSeriousDefault, f.MaxOverdue6m <= serious && !elsewhere, policy.CodeDefaultRecent, detail.String())
	perDay := float64(f.Payments30d) / float64(e.ActivityWindowDays)
	add(GateActivity, perDay >= e.ActivityMinPaymentsPerDay, policy.CodeActivityLow,
		txt().d(f.Payments30d).s(" payments in ").d(e.ActivityWindowDays).s(" days = ").f2(perDay).
			s(" a day, minimum ").g(e.ActivityMinPaymentsPerDay).String())
	if e.ActivityMinLoginDays > 0 {
		add(GateLoginDays, f.LoginDays30d >= e.ActivityMinLoginDays, policy.CodeActivityLow,
			txt().d(f.LoginDays30d).s(" days with a login in the last ").d(e.ActivityWindowDays).s(", minimum ").d(e.ActivityMinLoginDays).String())
	}
	add(GateOverdueNow, !f.OverdueNow, policy.CodeOverdueNow,
		yesNo(!f.OverdueNow, "no bill overdue", "a bill is overdue"))
	add(GateJudicial, !f.JudicialDefaulter, policy.CodeJudicialDefaulter,
		yesNo(!f.JudicialDefaulter, "not a judgement defaulter", "on the judgement-defaulter list"))
	add(GateLinkedAccount, !f.LinkedAccountNegative, policy.CodeLinkedAccountNegative,
		yesNo(!f.LinkedAccountNegative, "no negative linked-account record", "negative record on a linked account"))
	return gs
}

func quality(p *policy.Policy, f Facts) []Check {
	q, e := p.Quality, p.Eligibility
	cs := make([]Check, 0, 5)
	add := func(name string, passed bool, detail string) {
		cs = append(cs, Check{Name: name, Passed: passed, Detail: detail})
	}
	add(QualityPayScore, f.PayScore >= q.PayScoreMin,
		txt().s("pay score ").d(f.PayScore).s(", quality ").d(q.PayScoreMin).String())

	months := f.MonthlyLoginDays[len(f.MonthlyLoginDays)-q.LoginMonths:]
	fewest := months[0]
	for _, d := range months {
		fewest = min(fewest, d)
	}
	add(QualityLoginDays, fewest >= q.LoginDaysPerMonth,
		txt().s("login days in the last ").d(q.LoginMonths).s(" full months ").ints(months).
			s(", at least ").d(q.LoginDaysPerMonth).s(" in each").String())

	perDay := float64(f.Payments30d) / float64(e.ActivityWindowDays)
	add(QualityPayments, perDay >= q.MinPaymentsPerDay,
		txt().f2(perDay).s(" payments a day over ").d(e.ActivityWindowDays).s(" days, quality ").g(q.MinPaymentsPerDay).String())
	add(QualityOverdueHistory, f.OverdueEpisodes <= q.MaxOverdueEpisodes,
		txt().d(f.OverdueEpisodes).s(" overdue episodes, at most ").d(q.MaxOverdueEpisodes).String())
	if q.RequireAllSettled {
		add(QualityAllSettled, !f.OverdueNow,
			yesNo(!f.OverdueNow, "every overdue bill settled", "an overdue bill is unsettled"))
	}
	return cs
}

func factors(p *policy.Policy, f Facts) []Factor {
	w, fp := p.Quota.Weights, p.Quota.Factors
	fs := make([]Factor, 0, 6)
	add := func(name string, raw float64, unit string, norm, weight float64, note string) {
		norm = clamp01(norm)
		fs = append(fs, Factor{Name: name, Raw: raw, Unit: unit, Normalised: norm,
			Weight: weight, Contribution: norm * weight, Note: note})
	}

	ps := fp.PayScore
	add(FactorPayScore, float64(f.PayScore), "points",
		float64(f.PayScore-ps.ZeroAt)/float64(ps.FullAt-ps.ZeroAt), w.PayScore, "")

	add(FactorAssets, float64(f.WealthBalanceFen), "fen",
		float64(f.WealthBalanceFen)/float64(fp.Assets.FullAtFen), w.Assets, "")

	st := fp.Stability
	if cv, ok := coefficientOfVariation(f.MonthlySpendFen[:]); ok {
		norm := 1.0
		if cv >= st.FullBelowCV {
			norm = (st.ZeroAtCV - cv) / (st.ZeroAtCV - st.FullBelowCV)
		}
		add(FactorStability, cv, "cv", norm, w.Stability, "")
	} else {
		add(FactorStability, 0, "cv", 0, w.Stability, "no spending in the last 3 full months")
	}

	social := float64(f.MonthlySocial[0]+f.MonthlySocial[1]+f.MonthlySocial[2]) / 3
	add(FactorSocial, social, "per_month", social/fp.Social.FullAtPerMonth, w.Social, "")

	if f.Logins90d > 0 {
		share := clamp01(float64(f.UsualDeviceLogins90d) / float64(f.Logins90d))
		add(FactorDevice, share, "share", share/fp.Device.FullAtShare, w.Device, "")
	} else {
		add(FactorDevice, 0, "share", 0, w.Device,
			txt().s("no logins in the last ").d(fp.Device.WindowDays).s(" days").String())
	}

	cp := p.Quota.CheckPenalty
	excess := max(f.QuotaChecks30d-cp.FreeChecks, 0)
	penalty := min(float64(excess)*cp.PerCheck, cp.Max)
	norm, weight := 0.0, 0.0
	if cp.Max > 0 {
		norm = penalty / cp.Max
		weight = -cp.Max // a penalty: contributes between -Max and 0
	}
	add(FactorQuotaChecks, float64(f.QuotaChecks30d), "checks", norm, weight,
		txt().d(f.QuotaChecks30d).s(" checks in ").d(cp.WindowDays).s(" days, ").d(cp.FreeChecks).s(" free, ").
			g(cp.PerCheck).s(" off the score per extra check, at most ").g(cp.Max).String())
	return fs
}

// coefficientOfVariation is the population standard deviation over the
// mean of the monthly amounts (negative months count as 0); false when
// there was no spending at all.
// overdueDays says a time overdue in days: whole days as "31 days", a part
// of a day to the hour ("30 days 5 h").
func overdueDays(d time.Duration) string {
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	t := txt().d(days).s(" days")
	if hours > 0 {
		t = t.s(" ").d(hours).s(" h")
	}
	return t.String()
}

func coefficientOfVariation(xs []int64) (float64, bool) {
	var sum float64
	for _, x := range xs {
		sum += float64(max(x, 0))
	}
	if sum <= 0 {
		return 0, false
	}
	mean := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		d := float64(max(x, 0)) - mean
		ss += d * d
	}
	return math.Sqrt(ss/float64(len(xs))) / mean, true
}

// curveQuota reads the policy's piecewise-linear curve at score, rounds
// to the fen, then down to the quota unit.
func curveQuota(p *policy.Policy, score float64) int64 {
	curve := p.Quota.Curve
	q := float64(curve[len(curve)-1].QuotaFen)
	for i := 1; i < len(curve); i++ {
		a, b := curve[i-1], curve[i]
		if score <= b.Score {
			t := (score - a.Score) / (b.Score - a.Score)
			q = float64(a.QuotaFen) + t*float64(b.QuotaFen-a.QuotaFen)
			break
		}
	}
	return floorTo(int64(math.Round(q)), p.Quota.RoundFen)
}

func floorTo(v, unit int64) int64 {
	if v <= 0 {
		return 0
	}
	return v / unit * unit
}

func ceilTo(v, unit int64) int64 {
	if v <= 0 {
		return 0
	}
	return (v + unit - 1) / unit * unit
}

func clamp01(x float64) float64 {
	switch {
	case math.IsNaN(x) || x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}

func failCode(passed bool, code string) string {
	if passed {
		return ""
	}
	return code
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func allPassed(cs []Check) bool {
	for _, c := range cs {
		if !c.Passed {
			return false
		}
	}
	return true
}

func hasCode(rs []events.ReasonCode, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}
