package credit

import (
	"fmt"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// SceneCheck is the verdict on one installment payment in a scene.
type SceneCheck struct {
	Scene   events.Scene `json:"scene"`
	Allowed bool         `json:"allowed"`
	// SecondVerification names the check the payment needs before it is
	// confirmed ("proof_of_visit", "enrolment_check"); "" = none. It is
	// set only when the payment is otherwise allowed and the policy's
	// second_verification rule is enabled.
	SecondVerification string `json:"second_verification,omitempty"`
	// QuotaPool is the quota the scene draws on.
	QuotaPool string              `json:"quota_pool,omitempty"`
	Reasons   []events.ReasonCode `json:"reason_codes"`
	Detail    []string            `json:"detail,omitempty"`
}

// CheckScene applies a scene's rules (DOMAIN.md §5) to one payment: the
// pay score the scene requires (WECHAT_CREDIT_401) and its single-payment
// limit (the scene_limit rule's code, WECHAT_ORDER_500), and says which
// second verification it needs. Scenes the policy does not list have no
// rules of their own. It does not look at the user's quota or eligibility:
// that is Evaluate's.
func CheckScene(p *policy.Policy, scene events.Scene, amountFen int64, payScore int) SceneCheck {
	c := SceneCheck{Scene: scene, Allowed: true, Reasons: []events.ReasonCode{}}
	rule, ok := p.Scenes[scene]
	if !ok {
		return c
	}
	c.QuotaPool = rule.QuotaPool
	if rule.MinPayScore > 0 && payScore < rule.MinPayScore {
		c.Allowed = false
		c.Reasons = append(c.Reasons, p.ReasonCode(policy.CodeCreditLow))
		c.Detail = append(c.Detail, fmt.Sprintf("scene %s needs pay score %d, have %d", scene, rule.MinPayScore, payScore))
	}
	limit := p.Risk.Rules.SceneLimit
	if limit.Enabled && rule.SinglePaymentMaxFen > 0 && amountFen > rule.SinglePaymentMaxFen {
		c.Allowed = false
		c.Reasons = append(c.Reasons, p.ReasonCode(limit.Code))
		c.Detail = append(c.Detail, fmt.Sprintf("scene %s allows at most %d fen a payment, asked %d", scene, rule.SinglePaymentMaxFen, amountFen))
	}
	if c.Allowed && p.Risk.Rules.SecondVerification.Enabled {
		c.SecondVerification = rule.SecondVerification
	}
	return c
}
