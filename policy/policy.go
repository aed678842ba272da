package policy

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Policy is one product's credit policy: every threshold, weight, curve, fee
// table and reason text the scoring core applies. A Policy returned by Parse,
// Load or Preset has been validated; it is read-only afterwards and safe for
// concurrent use by any number of goroutines.
type Policy struct {
	// Version identifies this revision of the file; it is copied into every
	// decision (events.DecisionData.PolicyVersion).
	Version string `yaml:"version"`
	// Product is the product the policy prices ("wechat", "huabei", "baitiao").
	Product string `yaml:"product"`
	// ModelVersion names the quota model the weights belong to.
	ModelVersion string `yaml:"model_version"`
	// Timezone is the IANA zone of users whose profile names none
	// (default Asia/Shanghai). Windows counted in days or months use it.
	Timezone string `yaml:"timezone"`

	Eligibility Eligibility                `yaml:"eligibility"`
	Quality     Quality                    `yaml:"quality_user"`
	Quota       Quota                      `yaml:"quota"`
	Recompute   Recompute                  `yaml:"recompute"`
	Pricing     Pricing                    `yaml:"pricing"`
	Scenes      map[events.Scene]SceneRule `yaml:"scenes"`
	Risk        Risk                       `yaml:"risk"`
	// Limits bound what one event and one user may hold; every field has
	// a default, so a policy may leave the section out.
	Limits Limits `yaml:"limits"`
	// Reasons is the reason-code catalogue (DOMAIN.md §7 and fenqi's own
	// codes): the message and advice a notifier shows for each code.
	Reasons []Reason `yaml:"reasons"`

	src *source        // where the policy was read from; nil when built in code
	loc *time.Location // Timezone, loaded by Parse
}

// Limits are the realistic bounds of hostile or broken input (issue 12): an
// event beyond them is refused by the state engine and dead-lettered with
// the reason. They are fixed when fenqid starts (a reload with others is
// refused until a restart).
type Limits struct {
	// MaxAmountFen is the largest amount of one payment, bill or repayment
	// (default 100,000,000 fen: 1,000,000 yuan, twenty times the highest
	// quota of the presets).
	MaxAmountFen int64 `yaml:"max_amount_fen"`
	// MaxOpenBills is the most bills a user may have open at once (default
	// 24, a 24-period plan's; at most 32, what the state keeps).
	MaxOpenBills int `yaml:"max_open_bills"`
}

// MaxOpenBillsKept is the most open bills the state engine keeps per user
// (engine.MaxBills); Limits.MaxOpenBills may not be more.
const MaxOpenBillsKept = 32

// Eligibility holds the gates of DOMAIN.md §1; a user failing any of them
// is not eligible and gets quota 0.
type Eligibility struct {
	// PayScoreMin is the lowest pay score that may open installments (600).
	// Scenes may require more (SceneRule.MinPayScore).
	PayScoreMin int `yaml:"pay_score_min"`
	// CardBoundMinMonths is how long a bank card must have been bound (6).
	CardBoundMinMonths int `yaml:"card_bound_min_months"`
	// SeriousDefaultOverdueDays: a bill overdue more than this many days is
	// a serious default (30).
	SeriousDefaultOverdueDays int `yaml:"serious_default_overdue_days"`
	// SeriousDefaultWindowMonths: a serious default within this many months
	// makes the user ineligible (6).
	SeriousDefaultWindowMonths int `yaml:"serious_default_window_months"`
	// ActivityMinPaymentsPerDay is the lowest average number of payments a
	// day over ActivityWindowDays (3).
	ActivityMinPaymentsPerDay float64 `yaml:"activity_min_payments_per_day"`
	// ActivityWindowDays is the window of the activity averages (30); the
	// quality standard's payments-per-day uses the same window.
	ActivityWindowDays int `yaml:"activity_window_days"`
	// ActivityMinLoginDays is the least number of distinct local days with
	// a login in the last ActivityWindowDays (10: the source's basic
	// "每月登录≥10天"); fewer fails with FENQI_ACTIVITY_LOW. 0 = no gate.
	ActivityMinLoginDays int `yaml:"activity_min_login_days"`
}

// Quality holds the quality-user standards of DOMAIN.md §1; only a quality
// user may reach the high quota tier.
type Quality struct {
	// PayScoreMin is the quality pay score (750).
	PayScoreMin int `yaml:"pay_score_min"`
	// LoginDaysPerMonth is the least number of distinct login days in each
	// of the last LoginMonths full calendar months (10).
	LoginDaysPerMonth int `yaml:"login_days_per_month"`
	// LoginMonths is how many full calendar months the login standard
	// covers (3; at most 3).
	LoginMonths int `yaml:"login_months"`
	// MinPaymentsPerDay is the least average number of payments a day over
	// Eligibility.ActivityWindowDays (5).
	MinPaymentsPerDay float64 `yaml:"min_payments_per_day"`
	// MaxOverdueEpisodes is the most overdue episodes in the user's history (2).
	MaxOverdueEpisodes int `yaml:"max_overdue_episodes"`
	// RequireAllSettled: every overdue episode must be settled (no bill
	// overdue now).
	RequireAllSettled bool `yaml:"require_all_settled"`
}

// Quota is the quota model of DOMAIN.md §3.
type Quota struct {
	// Weights of the five factors; they sum to 1.
	Weights Weights `yaml:"weights"`
	// Factors says where each factor earns full (and zero) marks.
	Factors Factors `yaml:"factors"`
	// CheckPenalty lowers the score of users who check their quota often.
	CheckPenalty CheckPenalty `yaml:"check_penalty"`
	// MaxFen is the product's highest quota (wechat 5,000,000 fen).
	MaxFen int64 `yaml:"max_fen"`
	// StandardCapFen caps the quota of users who are not quality users;
	// quotas above it are the high tier.
	StandardCapFen int64 `yaml:"standard_cap_fen"`
	// RoundFen is the unit quotas are rounded down to (10,000 fen = 100 yuan).
	RoundFen int64 `yaml:"round_fen"`
	// Curve maps the weighted score to a quota, linearly between points.
	// Scores rise strictly from 0 to 1; quotas never fall.
	Curve []CurvePoint `yaml:"curve"`
	// Guardrail limits how far one recompute may move a quota.
	Guardrail Guardrail `yaml:"guardrail"`
}

// Weights are the factor weights (0.35/0.25/0.20/0.15/0.05 for wechat).
type Weights struct {
	PayScore  float64 `yaml:"pay_score"`
	Assets    float64 `yaml:"assets"`
	Stability float64 `yaml:"stability"`
	Social    float64 `yaml:"social"`
	Device    float64 `yaml:"device"`
}

// Sum is the total of the five weights.
func (w Weights) Sum() float64 {
	return w.PayScore + w.Assets + w.Stability + w.Social + w.Device
}

// Factors holds each factor's normalisation points.
type Factors struct {
	PayScore  PayScoreFactor  `yaml:"pay_score"`
	Assets    AssetsFactor    `yaml:"assets"`
	Stability StabilityFactor `yaml:"stability"`
	Social    SocialFactor    `yaml:"social"`
	Device    DeviceFactor    `yaml:"device"`
}

// PayScoreFactor: 0 at or below ZeroAt, 1 at or above FullAt, linear between.
type PayScoreFactor struct {
	ZeroAt int `yaml:"zero_at"` // 550
	FullAt int `yaml:"full_at"` // 750
}

// AssetsFactor: the wealth balance over FullAtFen, at most 1.
type AssetsFactor struct {
	FullAtFen int64 `yaml:"full_at_fen"` // 5,000,000 fen = 50,000 yuan
}

// StabilityFactor scores the coefficient of variation (population standard
// deviation / mean) of monthly spend: 1 below FullBelowCV, 0 at or above
// ZeroAtCV, linear between.
type StabilityFactor struct {
	FullBelowCV float64 `yaml:"full_below_cv"` // 0.30
	ZeroAtCV    float64 `yaml:"zero_at_cv"`    // 1.00
}

// SocialFactor: transfers and red packets a month over FullAtPerMonth, at most 1.
type SocialFactor struct {
	FullAtPerMonth float64 `yaml:"full_at_per_month"` // 20
}

// DeviceFactor: the share of the logins of the last WindowDays that came
// from the usual device, over FullAtShare, at most 1.
type DeviceFactor struct {
	FullAtShare float64 `yaml:"full_at_share"` // 0.90
	WindowDays  int     `yaml:"window_days"`   // 90
}

// CheckPenalty is DOMAIN.md §3's "frequent applications lower the composite
// score": every quota check beyond FreeChecks inside WindowDays takes
// PerCheck off the score, at most Max.
type CheckPenalty struct {
	WindowDays int     `yaml:"window_days"` // default 30
	FreeChecks int     `yaml:"free_checks"` // default 3
	PerCheck   float64 `yaml:"per_check"`   // default 0.01
	Max        float64 `yaml:"max"`         // default 0.05
}

// CurvePoint is one point of the score → quota curve.
type CurvePoint struct {
	Score    float64 `yaml:"score"`
	QuotaFen int64   `yaml:"quota_fen"`
}

// Guardrail limits the move of a recomputed quota.
type Guardrail struct {
	// MaxChangeShare is the largest share of the previous quota one
	// recompute may add or remove (default 0.5). It does not hold a user
	// who became ineligible (quota 0) and does not apply to a first quota.
	MaxChangeShare float64 `yaml:"max_change_share"`
}

// Recompute modes.
const (
	RecomputeInterval        = "interval"
	RecomputeCalendarQuarter = "calendar_quarter"
)

// Recompute says when the state layer recomputes a user's quota.
type Recompute struct {
	// Mode is "interval" (every IntervalDays, the default) or
	// "calendar_quarter" (in the first 7 days of each calendar quarter,
	// from 12:00 UTC on its first day, when the quarter has begun in every
	// zone). Either way each user has a fixed place in the cycle from a hash
	// of its id (see jobs.CycleOf and state.Cycle).
	Mode string `yaml:"mode"`
	// IntervalDays is the interval of mode "interval" (default 90).
	IntervalDays int `yaml:"interval_days"`
}

// Pricing is the fee table of DOMAIN.md §4. Rates are basis points per
// period (100 bp = 1%) charged on the original principal each period.
type Pricing struct {
	// InterestFreeDays is the longest interest-free period the product
	// promises (DOMAIN.md §8: wechat 50, huabei 40, baitiao 30 days). It is
	// not a setting of its own: validation requires it to equal
	// PayLater.LongestFreeDays(), the period the statement day and the days
	// to the due date give; 0 when the product offers no pay later.
	InterestFreeDays int `yaml:"interest_free_days"`
	// PayLater is the one-period purchase (installments = 1, 先消费后还款):
	// one bill, no fee when repaid by its due date.
	PayLater PayLater `yaml:"pay_later"`
	// MaxPeriods is the longest plan (24).
	MaxPeriods int `yaml:"max_periods"`
	// MinFeeBP and MaxFeeBP are the product's advertised range of fees per
	// period; every rate in Plans lies inside it, and the fee a quote
	// charges after Adjustments is clamped to it.
	MinFeeBP int `yaml:"min_fee_bp"`
	MaxFeeBP int `yaml:"max_fee_bp"`
	// Plans are the period counts on offer (2 periods or more; 1 period is
	// PayLater).
	Plans []Plan `yaml:"plans"`
	// Adjustments move a plan's fee per period by the user's pay score and
	// the merchant's subsidy ("实际利率可能上浮，取决于用户画像与商户补贴").
	// Optional: a policy without them charges the plan's rate.
	Adjustments Adjustments `yaml:"adjustments"`
}

// PayLater is the billing cycle of a pay-later purchase, read in the
// policy's Timezone. A purchase made up to the end of the statement day is
// on that day's statement; a later one on next month's. The bill is due
// DaysToDue days after its statement date and is free of any fee when
// repaid by the end of that day.
type PayLater struct {
	// StatementDay is the day of the month statements are drawn up, 1–28
	// (so that every month has one); 0 = the product offers no pay later.
	StatementDay int `yaml:"statement_day"`
	// DaysToDue is the number of days from the statement date to the due
	// date (0–28; 0 = due on the statement date).
	DaysToDue int `yaml:"days_to_due"`
}

// Offered reports whether the product has pay later at all.
func (pl PayLater) Offered() bool { return pl.StatementDay > 0 }

// LongestFreeDays is the longest interest-free period of a pay-later
// purchase, in days from the purchase date to the due date: a purchase on
// the day after a statement waits for next month's statement, at most 30
// days later (after a 31-day month), then DaysToDue more. 0 when pay later
// is not offered.
func (pl PayLater) LongestFreeDays() int {
	if !pl.Offered() {
		return 0
	}
	return 30 + pl.DaysToDue
}

// PeriodsOffered lists the period counts a quote may ask for, rising: 1
// when pay later is offered, then every plan's.
func (pr Pricing) PeriodsOffered() []int {
	out := make([]int, 0, len(pr.Plans)+1)
	if pr.PayLater.Offered() {
		out = append(out, 1)
	}
	for _, plan := range pr.Plans {
		out = append(out, plan.Periods)
	}
	slices.Sort(out)
	return out
}

// Offers reports whether a quote for this many periods can be given.
func (pr Pricing) Offers(periods int) bool {
	return slices.Contains(pr.PeriodsOffered(), periods)
}

// Plan is one period count and its rates.
type Plan struct {
	Periods    int         `yaml:"periods"`
	FeeBP      int         `yaml:"fee_bp"` // base fee per period
	Promotions []Promotion `yaml:"promotions"`
}

// Promotion is a promotional rate and the condition under which it applies.
type Promotion struct {
	Name  string    `yaml:"name"`
	FeeBP int       `yaml:"fee_bp"`
	When  Condition `yaml:"when"`
}

// Condition: every field that is set must hold.
type Condition struct {
	Scene   events.Scene `yaml:"scene"`    // the payment's scene
	NewUser bool         `yaml:"new_user"` // the user's first installment
	Invited bool         `yaml:"invited"`  // the user was invited to the offer
}

// Adjustments are the fee adjustments a quote applies after the plan's (or
// the promotion's) rate, in this order: the pay-score band's raise, then
// the merchant's subsidy; the result is clamped to [MinFeeBP, MaxFeeBP].
// They do not apply to pay later, which has no fee.
type Adjustments struct {
	// PayScoreBands raise the fee for pay scores inside a band; bands do
	// not overlap, and a score in no band is not raised.
	PayScoreBands []PayScoreBand `yaml:"pay_score_bands"`
	// MerchantSubsidies lower the fee of purchases at the merchants they
	// name; a merchant is in at most one subsidy.
	MerchantSubsidies []MerchantSubsidy `yaml:"merchant_subsidies"`
}

// PayScoreBand raises the fee per period by AddBP for a pay score in
// [MinPayScore, MaxPayScore].
type PayScoreBand struct {
	Name        string `yaml:"name"`
	MinPayScore int    `yaml:"min_pay_score"`
	MaxPayScore int    `yaml:"max_pay_score"`
	AddBP       int    `yaml:"add_bp"` // > 0
}

// MerchantSubsidy lowers the fee per period by SubsidyBP for purchases at
// one of Merchants (merchant ids, as on the payment event).
type MerchantSubsidy struct {
	Name      string   `yaml:"name"`
	Merchants []string `yaml:"merchants"`
	SubsidyBP int      `yaml:"subsidy_bp"` // > 0
}

// Band returns the pay-score band of a score, and false when none holds it.
func (a Adjustments) Band(payScore int) (PayScoreBand, bool) {
	for _, b := range a.PayScoreBands {
		if payScore >= b.MinPayScore && payScore <= b.MaxPayScore {
			return b, true
		}
	}
	return PayScoreBand{}, false
}

// Subsidy returns the subsidy of a merchant, and false when none names it
// (or merchantID is empty).
func (a Adjustments) Subsidy(merchantID string) (MerchantSubsidy, bool) {
	if merchantID == "" {
		return MerchantSubsidy{}, false
	}
	for _, s := range a.MerchantSubsidies {
		if slices.Contains(s.Merchants, merchantID) {
			return s, true
		}
	}
	return MerchantSubsidy{}, false
}

// Quota pools of a scene (DOMAIN.md §5); informational for downstream.
const (
	PoolPayScore         = "pay_score"
	PoolIndependent      = "independent"
	PoolSharedWeilidai   = "shared_weilidai"
	PoolSpecialTemporary = "special_temporary"
)

// SceneRule is the rule of one scene (DOMAIN.md §5).
type SceneRule struct {
	// QuotaPool is the quota the scene draws on (see the Pool constants).
	QuotaPool string `yaml:"quota_pool"`
	// MinPayScore is the pay score the scene requires; 0 = the
	// eligibility minimum.
	MinPayScore int `yaml:"min_pay_score"`
	// SinglePaymentMaxFen is the largest single payment; 0 = no limit.
	SinglePaymentMaxFen int64 `yaml:"single_payment_max_fen"`
	// SecondVerification names the check a payment needs before it is
	// confirmed ("proof_of_visit", "enrolment_check"); "" = none.
	SecondVerification string `yaml:"second_verification"`
}

// Risk actions.
const (
	ActionSMSVerify      = "SMS_VERIFY"
	ActionFaceVerify     = "FACE_VERIFY"
	ActionDocumentVerify = "DOCUMENT_VERIFY"
	ActionRefuse         = "REFUSE"
	ActionFreeze         = "FREEZE"
	// ActionNotifyUser tells the user, and asks nothing of them (the
	// alert_threshold rule: 信用守护).
	ActionNotifyUser = "NOTIFY_USER"
)

// Risk holds the anomaly rules of DOMAIN.md §6. Every field has a default,
// so a policy file may leave the section out.
type Risk struct {
	// NightStart and NightEnd ("HH:MM", both minutes included) bound late
	// night in the user's zone (00:00–05:59). A window may wrap midnight.
	NightStart string `yaml:"night_start"`
	NightEnd   string `yaml:"night_end"`
	// LargePaymentFen: a payment of at least this much is large (200,000).
	LargePaymentFen int64 `yaml:"large_payment_fen"`
	// OtherCityWindowDays: a city is "other" when none of the user's logins
	// in this many days came from it (90).
	OtherCityWindowDays int `yaml:"other_city_window_days"`
	// VelocityCount payments inside VelocityWindow trigger the velocity
	// rule (10 in 10m).
	VelocityCount  int           `yaml:"velocity_count"`
	VelocityWindow time.Duration `yaml:"velocity_window"`
	// OtherCityThenLargeWindow: a large payment this soon after a login from
	// another city (24h).
	OtherCityThenLargeWindow time.Duration `yaml:"other_city_then_large_window"`
	// AllowedLateness is how late (event time behind the watermark) an
	// event may arrive and still be judged by the windowed rules (1h).
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// OverdueFreezeAfterDays: a bill overdue more than this many days
	// freezes installments (3).
	OverdueFreezeAfterDays int `yaml:"overdue_freeze_after_days"`
	// Rules switches each rule on or off and names its action.
	Rules RiskRules `yaml:"rules"`
}

// RiskRules is the per-rule switchboard.
type RiskRules struct {
	NightLarge         Rule `yaml:"night_large"`           // large payment late at night
	OtherCityLogin     Rule `yaml:"other_city_login"`      // login from another city
	OtherCityThenLarge Rule `yaml:"other_city_then_large"` // large payment soon after an other-city login
	NewDeviceLarge     Rule `yaml:"new_device_large"`      // large payment from a device not seen in 90 days
	Velocity           Rule `yaml:"velocity"`              // too many payments too fast
	SceneLimit         Rule `yaml:"scene_limit"`           // payment over the scene's single-payment limit
	SecondVerification Rule `yaml:"second_verification"`   // education / medical proof
	TransactionLimit   Rule `yaml:"transaction_limit"`     // over the user's own limit (信用守护)
	// CreditRefusal refuses a credit payment (installments ≥ 1) above its
	// pool's available quota, by a frozen or an ineligible user, or that its
	// scene's rules refuse (DOMAIN.md §3, §5); its reason codes are those
	// that apply, so it needs no code of its own. Off: every credit payment
	// is accepted and drawn on its pool.
	CreditRefusal Rule `yaml:"credit_refusal"`
	// AlertThreshold notifies the user of every payment at or above the
	// alert threshold on their profile (DOMAIN.md §6, 信用守护).
	AlertThreshold Rule `yaml:"alert_threshold"`
	OverdueFreeze  Rule `yaml:"overdue_freeze"`  // bill overdue > OverdueFreezeAfterDays
	JudicialFreeze Rule `yaml:"judicial_freeze"` // on the judgement-defaulter list
}

// NamedRule is a rule of RiskRules with its YAML name.
type NamedRule struct {
	Name string
	Rule Rule
}

// Named lists every rule of r with its YAML name, in field order: a rule
// added to RiskRules is validated without another list to keep in step.
func (r RiskRules) Named() []NamedRule {
	v := reflect.ValueOf(r)
	out := make([]NamedRule, v.NumField())
	for i := range out {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		out[i] = NamedRule{Name: name, Rule: v.Field(i).Interface().(Rule)}
	}
	return out
}

// Rule is one anomaly rule's switch.
type Rule struct {
	Enabled bool   `yaml:"enabled"`
	Action  string `yaml:"action"` // one of the Action constants
	// Code is the reason code the decision carries; required for REFUSE
	// and FREEZE, and always one of the catalogue's codes.
	Code string `yaml:"code"`
}

// Reason is one entry of the reason-code catalogue.
type Reason struct {
	Code    string `yaml:"code"`
	Message string `yaml:"message"`
	Advice  string `yaml:"advice"`
}

// Reason codes the scoring core emits; every policy's catalogue holds them.
const (
	CodeCreditLow             = "WECHAT_CREDIT_401"
	CodeAuthIncomplete        = "WECHAT_AUTH_403"
	CodeOrderLimited          = "WECHAT_ORDER_500"
	CodeBankBlacklisted       = "WECHAT_BANK_404"
	CodeDefaultRecent         = "FENQI_DEFAULT_RECENT"
	CodeActivityLow           = "FENQI_ACTIVITY_LOW"
	CodeOverdueNow            = "FENQI_OVERDUE_NOW"
	CodeJudicialDefaulter     = "FENQI_JUDICIAL_DEFAULTER"
	CodeUserLimit             = "FENQI_USER_LIMIT"
	CodeLinkedAccountNegative = "FENQI_LINKED_ACCOUNT_NEGATIVE"
	// The codes below have built-in texts (scoring.Builtin); a catalogue
	// may define them and then wins.
	CodeFrozen         = "FENQI_FROZEN"          // a credit payment by a frozen user
	CodeQuotaExceeded  = "FENQI_QUOTA_EXCEEDED"  // a credit payment above the available quota
	CodeAlertThreshold = "FENQI_ALERT_THRESHOLD" // a payment at or above the user's alert threshold
)

// RequiredCodes are the codes every catalogue must define.
var RequiredCodes = []string{
	CodeCreditLow, CodeAuthIncomplete, CodeOrderLimited, CodeBankBlacklisted,
	CodeDefaultRecent, CodeActivityLow, CodeOverdueNow,
	CodeJudicialDefaulter, CodeLinkedAccountNegative, CodeUserLimit,
}
