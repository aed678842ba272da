package credit

import (
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// Scene check names (Check.Name in SceneCheck.Checks).
const (
	SceneCheckPayScore = "scene_pay_score" // the pay score the scene requires
	SceneCheckLimit    = "scene_limit"     // the scene's single-payment limit
)

// SceneCheck is the verdict on one credit payment (installments ≥ 1) in a
// scene.
type SceneCheck struct {
	Scene   events.Scene `json:"scene"`
	Allowed bool         `json:"allowed"`
	// SecondVerification names the check the payment needs before it is
	// confirmed ("proof_of_visit", "enrolment_check"); "" = none. It is
	// set only when the payment is otherwise allowed and the policy's
	// second_verification rule is enabled.
	SecondVerification string `json:"second_verification,omitempty"`
	// QuotaPool is the quota the scene draws on.
	QuotaPool string `json:"quota_pool,omitempty"`
	// MinPayScore and SinglePaymentMaxFen are the scene's rules (0 = none;
	// the limit is 0 too when the scene_limit rule is off).
	MinPayScore         int   `json:"min_pay_score,omitempty"`
	SinglePaymentMaxFen int64 `json:"single_payment_max_fen,omitempty"`
	// Checks lists each rule the scene has, passed or not, in a fixed
	// order: scene_pay_score, then scene_limit.
	Checks []Check `json:"checks"`
	// Reasons are the catalogue entries of the failing checks' codes.
	Reasons []events.ReasonCode `json:"reason_codes"`
	// Detail is each failing check's Detail, in order.
	Detail []string `json:"detail,omitempty"`
}

// CheckScene applies a scene's rules (DOMAIN.md §5) to one credit payment
// (installments ≥ 1; a payment with the user's own funds has no scene
// rule): the pay score the scene requires (WECHAT_CREDIT_401: education
// and medical need 650) and its single-payment limit when the scene_limit
// rule is on (the rule's code, WECHAT_ORDER_500 in the presets: offline
// retail allows at most 5,000 yuan), and says which second verification it
// needs. Scenes the policy does not list have no rules of their own.
//
// It does not look at the user's quota or eligibility (Evaluate's), and
// is what both the payment rules and the offer (Offer) apply, so that the
// two refuse the same payments with the same codes.
func CheckScene(p *policy.Policy, scene events.Scene, amountFen int64, payScore int) SceneCheck {
	c := SceneCheck{Scene: scene, Allowed: true, Checks: []Check{}, Reasons: []events.ReasonCode{}}
	rule, ok := p.Scenes[scene]
	if !ok {
		return c
	}
	c.QuotaPool = rule.QuotaPool
	check := func(name string, passed bool, code, detail string) {
		ch := Check{Name: name, Passed: passed, Detail: detail}
		if !passed {
			ch.Code = code
			c.Allowed = false
			c.Reasons = append(c.Reasons, p.ReasonCode(code))
			c.Detail = append(c.Detail, detail)
		}
		c.Checks = append(c.Checks, ch)
	}
	if rule.MinPayScore > 0 {
		c.MinPayScore = rule.MinPayScore
		check(SceneCheckPayScore, payScore >= rule.MinPayScore, policy.CodeCreditLow,
			txt().s("scene ").s(string(scene)).s(" needs pay score ").d(rule.MinPayScore).s(", have ").d(payScore).String())
	}
	if limit := p.Risk.Rules.SceneLimit; limit.Enabled && rule.SinglePaymentMaxFen > 0 {
		c.SinglePaymentMaxFen = rule.SinglePaymentMaxFen
		code := limit.Code
		if code == "" { // a rule whose action is not REFUSE may leave it out
			code = policy.CodeOrderLimited
		}
		check(SceneCheckLimit, amountFen <= rule.SinglePaymentMaxFen, code,
			txt().s("scene ").s(string(scene)).s(" allows at most ").d64(rule.SinglePaymentMaxFen).s(" fen a payment, asked ").d64(amountFen).String())
	}
	if c.Allowed && p.Risk.Rules.SecondVerification.Enabled {
		c.SecondVerification = rule.SecondVerification
	}
	return c
}
