package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

func TestPresetsLoadAndValidate(t *testing.T) {
	t.Parallel()
	// The figures of DOMAIN.md §8 that each preset must carry.
	want := map[string]struct {
		maxFen           int64
		minBP, maxBP     int
		interestFreeDays int
	}{
		"wechat":  {5_000_000, 60, 150, 50},
		"huabei":  {10_000_000, 50, 120, 40},
		"baitiao": {3_000_000, 50, 100, 30},
	}
	names := Presets()
	if len(names) != len(want) {
		t.Fatalf("Presets() = %v, want the %d of DOMAIN.md §8", names, len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := Preset(name)
			if err != nil {
				t.Fatalf("Preset(%q): %v", name, err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			w := want[name]
			if p.Product != name {
				t.Errorf("product = %q, want %q", p.Product, name)
			}
			if p.Quota.MaxFen != w.maxFen {
				t.Errorf("quota.max_fen = %d, want %d", p.Quota.MaxFen, w.maxFen)
			}
			if p.Pricing.MinFeeBP != w.minBP || p.Pricing.MaxFeeBP != w.maxBP {
				t.Errorf("fee range = [%d, %d] bp, want [%d, %d]", p.Pricing.MinFeeBP, p.Pricing.MaxFeeBP, w.minBP, w.maxBP)
			}
			if p.Pricing.InterestFreeDays != w.interestFreeDays {
				t.Errorf("interest_free_days = %d, want %d", p.Pricing.InterestFreeDays, w.interestFreeDays)
			}
			for _, periods := range []int{3, 6, 12, 24} {
				if _, ok := p.Plan(periods); !ok {
					t.Errorf("no %d-period plan", periods)
				}
			}
			if p.Location().String() != "Asia/Shanghai" {
				t.Errorf("Location() = %v", p.Location())
			}
			if p.Name() != name+".yaml" {
				t.Errorf("Name() = %q", p.Name())
			}
		})
	}
}

// TestWechatFigures pins the wechat preset to DOMAIN.md §1, §3, §4, §5, §6.
func TestWechatFigures(t *testing.T) {
	t.Parallel()
	p, err := Preset(DefaultPreset)
	if err != nil {
		t.Fatal(err)
	}
	e, q, qu := p.Eligibility, p.Quality, p.Quota
	checks := []struct {
		name      string
		got, want any
	}{
		{"pay_score_min", e.PayScoreMin, 600},
		{"card_bound_min_months", e.CardBoundMinMonths, 6},
		{"serious_default_overdue_days", e.SeriousDefaultOverdueDays, 30},
		{"serious_default_window_months", e.SeriousDefaultWindowMonths, 6},
		{"activity_min_payments_per_day", e.ActivityMinPaymentsPerDay, 3.0},
		{"activity_window_days", e.ActivityWindowDays, 30},
		{"quality pay_score_min", q.PayScoreMin, 750},
		{"quality login days", q.LoginDaysPerMonth, 10},
		{"quality login months", q.LoginMonths, 3},
		{"quality payments", q.MinPaymentsPerDay, 5.0},
		{"quality overdue", q.MaxOverdueEpisodes, 2},
		{"weights", qu.Weights, Weights{0.35, 0.25, 0.20, 0.15, 0.05}},
		{"pay score points", qu.Factors.PayScore, PayScoreFactor{550, 750}},
		{"assets", qu.Factors.Assets.FullAtFen, int64(5_000_000)},
		{"stability", qu.Factors.Stability, StabilityFactor{0.30, 1.00}},
		{"social", qu.Factors.Social.FullAtPerMonth, 20.0},
		{"device", qu.Factors.Device, DeviceFactor{0.90, 90}},
		{"max", qu.MaxFen, int64(5_000_000)},
		{"standard cap", qu.StandardCapFen, int64(2_000_000)},
		{"guardrail", qu.Guardrail.MaxChangeShare, 0.5},
		{"recompute", p.Recompute, Recompute{RecomputeInterval, 90}},
		{"offline retail", p.Scenes[events.SceneOfflineRetail].SinglePaymentMaxFen, int64(500_000)},
		{"education", p.Scenes[events.SceneEducation].SecondVerification, "enrolment_check"},
		{"medical", p.Scenes[events.SceneMedical].SecondVerification, "proof_of_visit"},
		{"risk", p.Risk, DefaultRisk()},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	fees := map[int][2]int{3: {150, 80}, 6: {120, 60}, 12: {100, 90}, 24: {80, 0}}
	for periods, f := range fees {
		plan, _ := p.Plan(periods)
		promo := 0
		if len(plan.Promotions) > 0 {
			promo = plan.Promotions[0].FeeBP
		}
		if plan.FeeBP != f[0] || promo != f[1] {
			t.Errorf("%d periods: fee %d bp promo %d bp, want %d and %d", periods, plan.FeeBP, promo, f[0], f[1])
		}
	}
	for _, code := range RequiredCodes {
		r, ok := p.Reason(code)
		if !ok || r.Message == "" || r.Advice == "" {
			t.Errorf("reason %s = %+v, %v", code, r, ok)
		}
	}
}

func wechatText(t *testing.T) string {
	t.Helper()
	data, err := presets.ReadFile("presets/wechat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// lineOf is the 1-based line where s (which may span lines) first starts.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	i := strings.Index(text, s)
	if i < 0 {
		t.Fatalf("%q not in the policy", s)
	}
	return strings.Count(text[:i], "\n") + 1
}

func TestParseRefusesInvalidPolicies(t *testing.T) {
	t.Parallel()
	type want struct {
		at    string // the text of the line the error must cite
		field string
		msg   string
	}
	cases := []struct {
		name     string
		old, new string // one replacement in wechat.yaml
		want     []want
	}{
		{"weights do not sum to 1",
			"    device: 0.05", "    device: 0.00",
			[]want{{"  weights:", "quota.weights", "weights must sum to 1.0 (got 0.95)"}}},
		{"negative weight",
			"    social: 0.15", "    social: -0.15",
			[]want{{"    social: -0.15", "quota.weights.social", "must be in [0, 1]"},
				{"  weights:", "quota.weights", "weights must sum to 1.0 (got 0.7)"}}},
		{"unknown field",
			"quota:\n", "quota:\n  wieghts: {pay_score: 1}\n",
			[]want{{"  wieghts:", "quota.wieghts", `unknown field "wieghts"`}}},
		{"unknown top-level field",
			"product: wechat\n", "product: wechat\nprodcut: wechat\n",
			[]want{{"prodcut:", "prodcut", `unknown field "prodcut"`}}},
		{"wrong type",
			"  max_fen: 5000000", "  max_fen: lots",
			[]want{{"  max_fen: lots", "quota.max_fen", "cannot unmarshal !!str `lots` into int64"}}},
		{"wrong type in a flow mapping",
			"{score: 1.0, quota_fen: 5000000}", "{score: 1.0, quota_fen: all}",
			[]want{{"quota_fen: all", "quota.curve[1].quota_fen", "cannot unmarshal"}}},
		{"duplicate key",
			"product: wechat\n", "product: wechat\nproduct: huabei\n",
			[]want{{"product: huabei", "product", "already defined"}}},
		{"pay score minimum zero",
			"  pay_score_min: 600", "  pay_score_min: 0",
			[]want{{"  pay_score_min: 0", "eligibility.pay_score_min", "must be > 0 (got 0)"}}},
		{"quality pay score under the eligibility minimum",
			"  pay_score_min: 750", "  pay_score_min: 500",
			[]want{{"  pay_score_min: 500", "quality_user.pay_score_min", "must be >= eligibility.pay_score_min (600)"}}},
		{"four login months",
			"  login_months: 3", "  login_months: 4",
			[]want{{"  login_months: 4", "quality_user.login_months", "must be in [1, 3]"}}},
		{"pay score full marks below zero marks",
			"pay_score: {zero_at: 550, full_at: 750}", "pay_score: {zero_at: 550, full_at: 500}",
			[]want{{"zero_at: 550", "quota.factors.pay_score.full_at", "must be above zero_at (550)"}}},
		{"stability points reversed",
			"{full_below_cv: 0.30, zero_at_cv: 1.00}", "{full_below_cv: 0.30, zero_at_cv: 0.20}",
			[]want{{"full_below_cv:", "quota.factors.stability.zero_at_cv", "must be above full_below_cv (0.3)"}}},
		{"standard cap above the highest quota",
			"  standard_cap_fen: 2000000", "  standard_cap_fen: 6000000",
			[]want{{"  standard_cap_fen: 6000000", "quota.standard_cap_fen", "must be in (0, max_fen=5000000]"}}},
		{"caps not multiples of the unit",
			"  round_fen: 10000", "  round_fen: 30000",
			[]want{{"  max_fen:", "quota.max_fen", "must be a multiple of round_fen (30000)"},
				{"  standard_cap_fen:", "quota.standard_cap_fen", "must be a multiple of round_fen (30000)"}}},
		{"curve falls",
			"    - {score: 1.0, quota_fen: 5000000}", "    - {score: 0.5, quota_fen: 3000000}\n    - {score: 1.0, quota_fen: 2000000}",
			[]want{{"{score: 1.0, quota_fen: 2000000}", "quota.curve[2].quota_fen", "quotas must never fall"}}},
		{"curve stops short of 1",
			"    - {score: 1.0, quota_fen: 5000000}", "    - {score: 0.9, quota_fen: 5000000}",
			[]want{{"{score: 0.9", "quota.curve[1].score", "the last point must be at score 1"}}},
		{"curve above the highest quota",
			"    - {score: 1.0, quota_fen: 5000000}", "    - {score: 1.0, quota_fen: 9000000}",
			[]want{{"{score: 1.0, quota_fen: 9000000}", "quota.curve[1].quota_fen", "must be in [0, max_fen=5000000]"}}},
		{"guardrail above 100%",
			"    max_change_share: 0.5", "    max_change_share: 1.5",
			[]want{{"max_change_share: 1.5", "quota.guardrail.max_change_share", "must be in (0, 1]"}}},
		{"check penalty above 1",
			"    max: 0.05", "    max: 2",
			[]want{{"    max: 2", "quota.check_penalty.max", "must be in [0, 1]"}}},
		{"unknown recompute mode",
			"  mode: interval", "  mode: weekly",
			[]want{{"  mode: weekly", "recompute.mode", `must be "interval" or "calendar_quarter"`}}},
		{"promotion dearer than the base rate",
			"{name: ecommerce_promotion, fee_bp: 80,", "{name: ecommerce_promotion, fee_bp: 160,",
			[]want{{"fee_bp: 160", "pricing.plans[0].promotions[0].fee_bp", "must be within the product's range [60, 150] bp"},
				{"fee_bp: 160", "pricing.plans[0].promotions[0].fee_bp", "must be below the base rate 150 bp"}}},
		{"promotion without a condition",
			"{name: new_user, fee_bp: 60, when: {new_user: true}}", "{name: new_user, fee_bp: 60}",
			[]want{{"{name: new_user", "pricing.plans[1].promotions[0].when", "a promotion needs a condition"}}},
		{"duplicate period count",
			"    - periods: 24", "    - periods: 12",
			[]want{{"    - periods: 12\n      fee_bp: 80", "pricing.plans[3].periods", "12 periods already offered by plans[2]"}}},
		{"plan longer than the maximum",
			"    - periods: 24", "    - periods: 36",
			[]want{{"    - periods: 36", "pricing.plans[3].periods", "must be in [2, max_periods=24] (got 36; 1 period is pay later"}}},
		{"base fee outside the range",
			"      fee_bp: 150", "      fee_bp: 200",
			[]want{{"      fee_bp: 200", "pricing.plans[0].fee_bp", "must be within the product's range"}}},
		{"missing field",
			"  max_periods: 24\n", "",
			[]want{{"pricing:", "pricing.max_periods", "missing; must be > 0 (got 0)"}}},
		{"unknown scene",
			"  ecommerce: {quota_pool: independent}", "  e_commerce: {quota_pool: independent}",
			[]want{{"  e_commerce:", "scenes.e_commerce", `unknown scene "e_commerce"`}}},
		{"unknown quota pool",
			"  local_life: {quota_pool: shared_weilidai}", "  local_life: {quota_pool: weilidai}",
			[]want{{"  local_life:", "scenes.local_life.quota_pool", `unknown quota pool "weilidai"`}}},
		{"night window not a time",
			`  night_end: "05:59"`, `  night_end: "25:00"`,
			[]want{{"  night_end:", "risk.night_end", `want a time of day HH:MM, got "25:00"`}}},
		{"bad duration",
			"  velocity_window: 10m", "  velocity_window: ten minutes",
			[]want{{"  velocity_window:", "risk.velocity_window", "cannot unmarshal !!str `ten min...` into time.Duration"}}},
		{"unknown action",
			"night_large: {enabled: true, action: SMS_VERIFY}", "night_large: {enabled: true, action: SMS}",
			[]want{{"night_large:", "risk.rules.night_large.action", `unknown action "SMS"`}}},
		{"unknown action of the new-device rule",
			"new_device_large: {enabled: true, action: SMS_VERIFY}", "new_device_large: {enabled: true, action: BOGUS}",
			[]want{{"new_device_large:", "risk.rules.new_device_large.action", `unknown action "BOGUS"`}}},
		{"refusal without a code",
			"scene_limit: {enabled: true, action: REFUSE, code: WECHAT_ORDER_500}", "scene_limit: {enabled: true, action: REFUSE, code: \"\"}",
			[]want{{"scene_limit:", "risk.rules.scene_limit.code", "action REFUSE needs a reason code"}}},
		{"unknown time zone",
			"timezone: Asia/Shanghai", "timezone: Mars/Olympus",
			[]want{{"timezone:", "timezone", `unknown time zone "Mars/Olympus"`}}},
		{"catalogue lacks a required code",
			"  - code: FENQI_OVERDUE_NOW\n", "  - code: FENQI_OVERDUE_LATER\n",
			[]want{{"    overdue_freeze:", "risk.rules.overdue_freeze.code", "code FENQI_OVERDUE_NOW is not in the reasons catalogue"},
				{"reasons:", "reasons", "missing required code FENQI_OVERDUE_NOW"}}},
		{"duplicate reason code",
			"  - code: FENQI_USER_LIMIT\n", "  - code: FENQI_ACTIVITY_LOW\n",
			[]want{{"  - code: FENQI_ACTIVITY_LOW\n    message: \"Over", "reasons[9].code", "code FENQI_ACTIVITY_LOW already defined by reasons[5]"},
				{"reasons:", "reasons", "missing required code FENQI_USER_LIMIT"},
				{"    transaction_limit:", "risk.rules.transaction_limit.code", "code FENQI_USER_LIMIT is not in the reasons catalogue"}}},
		{"reason without advice",
			`    advice: "Try another partner platform (更换其他合作平台尝试)"`, `    advice: ""`,
			[]want{{`    advice: ""`, "reasons[2].advice", "required"}}},
		{"YAML syntax error",
			"  weights:\n", "  weights: [\n",
			[]want{{"", "", "did not find expected"}}},
	}
	base := wechatText(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if strings.Count(base, tc.old) != 1 {
				t.Fatalf("%q occurs %d times in wechat.yaml", tc.old, strings.Count(base, tc.old))
			}
			text := strings.Replace(base, tc.old, tc.new, 1)
			p, err := Parse([]byte(text), "wechat.yaml")
			if err == nil {
				t.Fatalf("Parse accepted the policy: %+v", p.Quota)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with the error")
			}
			for _, w := range tc.want {
				prefix := "wechat.yaml:"
				if w.at != "" {
					prefix = fmt.Sprintf("wechat.yaml:%d: %s: ", lineOf(t, text, w.at), w.field)
				}
				found := false
				for _, l := range strings.Split(err.Error(), "\n") {
					if strings.HasPrefix(l, prefix) && strings.Contains(l, w.msg) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error %q…%q in:\n%v", prefix, w.msg, err)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", n, len(tc.want), err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestParseCollectsEveryError(t *testing.T) {
	t.Parallel()
	text := wechatText(t)
	for _, r := range [][2]string{
		{"  pay_score_min: 600", "  pay_score_min: -1"},
		{"    device: 0.05", "    device: 0.00"},
		{"  velocity_count: 10", "  velocity_count: 0"},
		{"quota:\n", "quota:\n  colour: blue\n"},
	} {
		text = strings.Replace(text, r[0], r[1], 1)
	}
	_, err := Parse([]byte(text), "wechat.yaml")
	if err == nil {
		t.Fatal("Parse accepted four errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		fmt.Sprintf("wechat.yaml:%d: eligibility.pay_score_min: must be > 0 (got -1)", lineOf(t, text, "pay_score_min: -1")),
		fmt.Sprintf(`wechat.yaml:%d: quota.colour: unknown field "colour"`, lineOf(t, text, "colour:")),
		fmt.Sprintf("wechat.yaml:%d: quota.weights: weights must sum to 1.0 (got 0.95)", lineOf(t, text, "  weights:")),
		fmt.Sprintf("wechat.yaml:%d: risk.velocity_count: must be > 0 (got 0)", lineOf(t, text, "velocity_count:")),
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors, in line order:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestParseDocumentShape(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, text, want string }{
		{"empty", "", "p.yaml: empty policy document"},
		{"comment only", "# nothing\n", "p.yaml: empty policy document"},
		{"not a mapping", "- a\n- b\n", "p.yaml:1: a policy is a YAML mapping"},
		{"two documents", wechatText(t) + "---\nversion: x\n", "p.yaml:%d: a policy file holds one YAML document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.text), "p.yaml")
			want := tc.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, lineOf(t, tc.text, "---\nversion: x"))
			}
			if err == nil || err.Error() != want {
				t.Errorf("Parse = %v, want %q", err, want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	text := wechatText(t)
	start, end := strings.Index(text, "# §6 anomaly rules"), strings.Index(text, "# §7 reason codes")
	noRisk := text[:start] + text[end:]
	noRisk = strings.Replace(noRisk, "  guardrail:\n    max_change_share: 0.5          # one recompute moves a quota by at most 50%\n", "", 1)
	p, err := Parse([]byte(noRisk), "norisk.yaml")
	if err != nil {
		t.Fatalf("a policy without a risk section: %v", err)
	}
	if fmt.Sprint(p.Risk) != fmt.Sprint(DefaultRisk()) {
		t.Errorf("risk = %+v, want the defaults %+v", p.Risk, DefaultRisk())
	}
	if p.Quota.Guardrail.MaxChangeShare != 0.5 {
		t.Errorf("guardrail default = %g, want 0.5", p.Quota.Guardrail.MaxChangeShare)
	}

	partial := text[:start] + "risk:\n  large_payment_fen: 300000\n  rules:\n    velocity: {enabled: false}\n" + text[end:]
	p, err = Parse([]byte(partial), "partial.yaml")
	if err != nil {
		t.Fatalf("a partial risk section: %v", err)
	}
	if p.Risk.LargePaymentFen != 300_000 || p.Risk.VelocityCount != 10 {
		t.Errorf("large = %d, velocity count = %d: want the file's 300000 and the default 10", p.Risk.LargePaymentFen, p.Risk.VelocityCount)
	}
	v := p.Risk.Rules.Velocity
	if v.Enabled || v.Action != ActionSMSVerify || !p.Risk.Rules.NightLarge.Enabled {
		t.Errorf("velocity = %+v, night = %+v: want velocity switched off, its action and the others kept", v, p.Risk.Rules.NightLarge)
	}
}

func TestValidateAfterChangesInCode(t *testing.T) {
	t.Parallel()
	p, err := Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	p.Quota.Weights.Device = 0
	want := fmt.Sprintf("wechat.yaml:%d: quota.weights: weights must sum to 1.0 (got 0.95)", lineOf(t, wechatText(t), "  weights:"))
	if err := p.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}

	var empty Policy
	err = empty.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "policy: version: required\n") {
		t.Errorf("Validate of an empty policy = %v", err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mine.yaml")
	text := strings.Replace(wechatText(t), "    social: 0.15", "    social: 0.10", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := fmt.Sprintf("%s:%d: quota.weights: weights must sum to 1.0 (got 0.95)", path, lineOf(t, text, "  weights:"))
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %q", err, want)
	}
	if err := os.WriteFile(path, []byte(wechatText(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(path); err != nil || p.Name() != path {
		t.Errorf("Load = %v, %v", p, err)
	}
	if _, err := Load(filepath.Join(dir, "absent.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := Preset("alipay"); err == nil || !strings.Contains(err.Error(), "baitiao, huabei, wechat") {
		t.Errorf("Preset(alipay) = %v", err)
	}
}

func TestRiskIsNight(t *testing.T) {
	t.Parallel()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	r := DefaultRisk()
	at := func(h, m int) time.Time { return time.Date(2025, 6, 1, h, m, 0, 0, sh) }
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{at(0, 0), true}, {at(5, 59), true}, {at(6, 0), false}, {at(23, 59), false},
		{at(3, 0).UTC(), true}, // 19:00 UTC the day before is 03:00 in Shanghai
	} {
		if got := r.IsNight(c.t, sh); got != c.want {
			t.Errorf("IsNight(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	r.NightStart, r.NightEnd = "23:00", "01:30"
	if !r.IsNight(at(23, 30), sh) || !r.IsNight(at(1, 30), sh) || r.IsNight(at(1, 31), sh) {
		t.Error("a window across midnight")
	}
}

// Every rule of RiskRules is listed by Named, with its YAML name, so that
// validation sees each one.
func TestNamedListsEveryRule(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeOf(RiskRules{})
	named := RiskRules{}.Named()
	if len(named) != typ.NumField() {
		t.Fatalf("Named lists %d rules, RiskRules has %d", len(named), typ.NumField())
	}
	for i, n := range named {
		if want, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); n.Name != want || n.Name == "" {
			t.Errorf("rule %d named %q, want %q", i, n.Name, want)
		}
	}
}
