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
		{"offline retail at the limit", events.SceneOfflineRetail, 500_000, 700, true, nil, "", policy.PoolPayScore},
		{"offline retail over the limit", events.SceneOfflineRetail, 500_001, 700, false, []string{policy.CodeOrderLimited}, "", policy.PoolPayScore},
		{"education needs 650", events.SceneEducation, 100_000, 649, false, []string{policy.CodeCreditLow}, "", policy.PoolSpecialTemporary},
		{"education with 650 needs an enrolment check", events.SceneEducation, 100_000, 650, true, nil, "enrolment_check", policy.PoolSpecialTemporary},
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
