package credit

import (
	"testing"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

func TestCheckScene(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	cases := []struct {
		name         string
		scene        events.Scene
		amount       int64
		payScore     int
		allowed      bool
		codes        []string
		verification string
		pool         string
	}{
		{"offline retail at the limit: 5,000 yuan", events.SceneOfflineRetail, 500_000, 700, true, nil, "", policy.PoolPayScore},
		{"offline retail over the limit: 5,000.01 yuan", events.SceneOfflineRetail, 500_001, 700, false, []string{policy.CodeOrderLimited}, "", policy.PoolPayScore},
		{"education at 599", events.SceneEducation, 100_000, 599, false, []string{policy.CodeCreditLow}, "", policy.PoolSpecialTemporary},
		{"education at 600, enough to be eligible", events.SceneEducation, 100_000, 600, false, []string{policy.CodeCreditLow}, "", policy.PoolSpecialTemporary},
		{"education needs 650", events.SceneEducation, 100_000, 649, false, []string{policy.CodeCreditLow}, "", policy.PoolSpecialTemporary},
		{"education with 650 needs an enrolment check", events.SceneEducation, 100_000, 650, true, nil, "enrolment_check", policy.PoolSpecialTemporary},
		{"medical at 620", events.SceneMedical, 100_000, 620, false, []string{policy.CodeCreditLow}, "", policy.PoolSpecialTemporary},
		{"medical needs a proof of visit", events.SceneMedical, 3_000_000, 700, true, nil, "proof_of_visit", policy.PoolSpecialTemporary},
		{"e-commerce has its own quota", events.SceneEcommerce, 9_000_000, 600, true, nil, "", policy.PoolIndependent},
		{"a scene without rules", events.SceneOther, 9_000_000, 0, true, nil, "", ""},
	}
	for _, tc := range cases {
		c := CheckScene(p, tc.scene, tc.amount, tc.payScore)
		var codes []string
		for _, r := range c.Reasons {
			codes = append(codes, r.Code)
		}
		if c.Allowed != tc.allowed || len(codes) != len(tc.codes) || (len(codes) > 0 && codes[0] != tc.codes[0]) ||
			c.SecondVerification != tc.verification || c.QuotaPool != tc.pool {
			t.Errorf("%s: %+v; want allowed %v codes %v verification %q pool %q", tc.name, c, tc.allowed, tc.codes, tc.verification, tc.pool)
		}
	}

	p.Risk.Rules.SceneLimit.Enabled = false
	p.Risk.Rules.SecondVerification.Enabled = false
	if c := CheckScene(p, events.SceneOfflineRetail, 900_000, 700); !c.Allowed {
		t.Errorf("scene_limit switched off still refuses: %+v", c)
	}
	if c := CheckScene(p, events.SceneMedical, 100_000, 700); c.SecondVerification != "" {
		t.Errorf("second_verification switched off still asks: %+v", c)
	}
}

// DOMAIN.md §5: each scene rule is a check with its code and detail, so
// the payment rules and the offer can say which one refused.
func TestDomain5SceneChecksNameTheirRule(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	c := CheckScene(p, events.SceneOfflineRetail, 600_000, 700)
	if c.Allowed || c.SinglePaymentMaxFen != 500_000 || len(c.Checks) != 1 {
		t.Fatalf("offline retail 6,000 yuan: %+v", c)
	}
	if ch := c.Checks[0]; ch.Name != SceneCheckLimit || ch.Passed || ch.Code != policy.CodeOrderLimited ||
		ch.Detail != "scene offline_retail allows at most 500000 fen a payment, asked 600000" {
		t.Errorf("check %+v", ch)
	}
	if rc := c.Reasons[0]; rc.Message == "" || rc.Advice == "" {
		t.Errorf("reason %+v without its text", rc)
	}

	c = CheckScene(p, events.SceneEducation, 100_000, 620)
	if c.Allowed || c.MinPayScore != 650 || len(c.Checks) != 1 || c.Checks[0].Name != SceneCheckPayScore ||
		c.Checks[0].Code != policy.CodeCreditLow || c.Detail[0] != "scene education needs pay score 650, have 620" {
		t.Errorf("education at 620: %+v", c)
	}
	c = CheckScene(p, events.SceneEducation, 100_000, 650)
	if !c.Allowed || len(c.Checks) != 1 || !c.Checks[0].Passed || c.Checks[0].Code != "" || len(c.Reasons) != 0 {
		t.Errorf("education at 650: %+v", c)
	}

	// A scene_limit rule whose action is not a refusal may name no code:
	// the check still carries WECHAT_ORDER_500.
	p.Risk.Rules.SceneLimit = policy.Rule{Enabled: true, Action: policy.ActionSMSVerify}
	if c := CheckScene(p, events.SceneOfflineRetail, 500_001, 700); c.Allowed || c.Reasons[0].Code != policy.CodeOrderLimited {
		t.Errorf("scene limit without a code: %+v", c)
	}
}
