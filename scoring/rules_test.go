package scoring

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

var (
	shanghai = mustZone("Asia/Shanghai")
	newYork  = mustZone("America/New_York")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// noon is a plain daytime moment in Shanghai; at builds others that day.
var noon = at(12, 0, 0)

func at(h, m, s int) time.Time { return time.Date(2026, 11, 20, h, m, s, 0, shanghai) }

const (
	wechatVersion = "wechat-2025.1"
	user          = "u1"
	loginIP       = "203.0.113.77"
)

func wechat(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// presetRules is a preset's policy and its rules.
func presetRules(t testing.TB, name string) (*policy.Policy, *Rules) {
	t.Helper()
	p, err := policy.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRules(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

// rulesOf builds the rules of the wechat preset changed by mod (nil: as is).
func rulesOf(t testing.TB, mod func(*policy.Policy)) *Rules {
	t.Helper()
	p := wechat(t)
	if mod != nil {
		mod(p)
	}
	r, err := NewRules(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type payOpt func(*events.Payment)

func scene(s events.Scene) payOpt { return func(p *events.Payment) { p.Scene = s } }
func periods(n int) payOpt        { return func(p *events.Payment) { p.Installments = n } }

func payment(id string, when time.Time, fen int64, opts ...payOpt) *events.Event {
	p := &events.Payment{UserID: user, AmountFen: fen, Currency: "CNY", Scene: events.SceneEcommerce,
		MerchantID: "m-1", DeviceID: "dev-1", City: "Shanghai", Auth: events.AuthFace}
	for _, o := range opts {
		o(p)
	}
	return &events.Event{ID: id, Type: events.TypePayment, Source: "test", Subject: user, Time: when, Payment: p}
}

func login(id string, when time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeLogin, Source: "test", Subject: user, Time: when,
		Login: &events.Login{UserID: user, DeviceID: "dev-9", City: "Urumqi", IP: loginIP, Auth: events.AuthPassword}}
}

func profile(id string, when time.Time, judicial bool) *events.Event {
	return &events.Event{ID: id, Type: events.TypeProfile, Source: "test", Subject: user, Time: when,
		Profile: &events.Profile{UserID: user, PayScore: 700, JudicialDefaulter: judicial}}
}

// in is the input of an event processed as it happens (not late).
func in(e *events.Event) Input { return Input{Event: e, Zone: shanghai, Now: e.Time} }

// before returns n payment times, newest first: step apart, the newest step
// before t.
func before(t time.Time, n int, step time.Duration) []time.Time {
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = t.Add(-time.Duration(i+1) * step)
	}
	return ts
}

// wantAction is each rule's action and reason code under the wechat preset.
var wantAction = map[string]struct{ action, code string }{
	RuleOtherCityLogin:     {ActionSMSVerify, CodeOtherCityLogin},
	RuleNightLargePayment:  {ActionSMSVerify, CodeNightLarge},
	RuleOtherCityThenLarge: {ActionFaceVerify, CodeOtherCityLarge},
	RuleNewDeviceLarge:     {ActionSMSVerify, CodeNewDeviceLarge},
	RuleVelocity:           {ActionSMSVerify, CodeVelocity},
	RuleCreditRefusal:      {ActionRefuse, policy.CodeOrderLimited}, // the tests' refusals: over a scene limit
	RuleAlertThreshold:     {ActionNotifyUser, policy.CodeAlertThreshold},
	RuleTransactionLimit:   {ActionRefuse, policy.CodeUserLimit},
	RuleSecondVerification: {ActionDocumentVerify, CodeSecondVerification},
}

func rulesFired(ds []events.Decision) []string {
	names := []string{}
	for _, d := range ds {
		names = append(names, d.Data.Rule)
	}
	return names
}

// checkAlert checks what every alert of Evaluate must carry.
func checkAlert(t *testing.T, d events.Decision, e *events.Event) {
	t.Helper()
	want, ok := wantAction[d.Data.Rule]
	if !ok {
		t.Fatalf("unexpected rule %q", d.Data.Rule)
	}
	if d.Type != events.TypeDecisionAlert || d.Data.Action != want.action {
		t.Errorf("%s: type %s action %s, want alert %s", d.Data.Rule, d.Type, d.Data.Action, want.action)
	}
	if d.ID != events.DecisionID(d.Data.Rule, e.ID) {
		t.Errorf("%s: id %s, want DecisionID(rule, event id)", d.Data.Rule, d.ID)
	}
	if d.Subject != user || d.Data.UserID != user || d.Data.CausationID != e.ID || !d.Time.Equal(e.Time) ||
		d.Data.PolicyVersion != wechatVersion {
		t.Errorf("%s: identity fields %+v", d.Data.Rule, d)
	}
	if len(d.Data.ReasonCodes) != 1 || d.Data.ReasonCodes[0].Code != want.code ||
		d.Data.ReasonCodes[0].Message == "" || d.Data.ReasonCodes[0].Advice == "" {
		t.Errorf("%s: reason codes %+v, want one %s with message and advice", d.Data.Rule, d.Data.ReasonCodes, want.code)
	}
	raw, err := events.MarshalDecision(d)
	if err != nil {
		t.Fatalf("%s: marshal: %v", d.Data.Rule, err)
	}
	if strings.Contains(string(raw), loginIP) || strings.Contains(string(raw), `"ip"`) {
		t.Errorf("%s: the decision carries an IP: %s", d.Data.Rule, raw)
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	retail, edu, med := scene(events.SceneOfflineRetail), scene(events.SceneEducation), scene(events.SceneMedical)
	withLimit := func(fen int64) func(*Input) { return func(i *Input) { i.TransactionLimitFen = fen } }
	newDevice := func(i *Input) { i.NewDevice = true }
	newCity := func(i *Input) { i.NewCity = true }
	otherCityAgo := func(d time.Duration) func(*Input) {
		return func(i *Input) { i.LastOtherCityLogin = i.Event.Time.Add(-d) }
	}
	recent := func(n int, step time.Duration) func(*Input) {
		return func(i *Input) { i.RecentPayments = before(i.Event.Time, n, step) }
	}
	// refused is the state layer's verdict on a credit payment (see
	// jobs.CreditCheck, which applies the scene limits, the gates and the
	// available quota; here only its outcome).
	refused := func(i *Input) {
		i.CreditRefused, i.Pool, i.AvailableFen = []string{policy.CodeOrderLimited}, "pay_score", 900_000
	}
	threshold := func(fen int64) func(*Input) { return func(i *Input) { i.AlertThresholdFen = fen } }
	cases := []struct {
		name   string
		policy func(*policy.Policy)
		event  *events.Event
		facts  []func(*Input)
		want   []string
	}{
		// Credit refusals (DOMAIN.md §3, §5): a scene's limit binds credit
		// payments only; the state layer refused the payment.
		{name: "a pay-now offline payment of 5,000.01 yuan is not refused", event: payment("e", noon, 500_001, retail)},
		{name: "a refused credit payment", event: payment("e", noon, 800_000, retail, periods(3)),
			facts: []func(*Input){refused}, want: []string{RuleCreditRefusal}},
		{name: "an accepted credit payment", event: payment("e", noon, 800_000, retail, periods(3))},
		{name: "credit refusals switched off", event: payment("e", noon, 800_000, retail, periods(3)), facts: []func(*Input){refused},
			policy: func(p *policy.Policy) { p.Risk.Rules.CreditRefusal.Enabled = false }},

		// The user's alert threshold (信用守护): at or above it.
		{name: "a payment at the alert threshold", event: payment("e", noon, 100_000), facts: []func(*Input){threshold(100_000)},
			want: []string{RuleAlertThreshold}},
		{name: "a payment one fen under the alert threshold", event: payment("e", noon, 99_999), facts: []func(*Input){threshold(100_000)}},
		{name: "no alert threshold set", event: payment("e", noon, 4_000_000), facts: []func(*Input){threshold(0)}},
		{name: "alert threshold switched off", event: payment("e", noon, 100_000), facts: []func(*Input){threshold(100_000)},
			policy: func(p *policy.Policy) { p.Risk.Rules.AlertThreshold.Enabled = false }},

		// The user's own limit (信用守护).
		{name: "at the user's own limit", event: payment("e", noon, 100_000), facts: []func(*Input){withLimit(100_000)}},
		{name: "one fen over the user's own limit", event: payment("e", noon, 100_001), facts: []func(*Input){withLimit(100_000)},
			want: []string{RuleTransactionLimit}},
		{name: "no own limit set", event: payment("e", noon, 4_000_000), facts: []func(*Input){withLimit(0)}},
		{name: "own limit and a credit refusal both refuse", event: payment("e", noon, 600_000, retail, periods(3)),
			facts: []func(*Input){withLimit(550_000), refused}, want: []string{RuleCreditRefusal, RuleTransactionLimit}},
		{name: "own limit switched off", event: payment("e", noon, 100_001), facts: []func(*Input){withLimit(100_000)},
			policy: func(p *policy.Policy) { p.Risk.Rules.TransactionLimit.Enabled = false }},

		// Second verification (education, medical installments).
		{name: "education on installments", event: payment("e", noon, 50_000, edu, periods(3)),
			want: []string{RuleSecondVerification}},
		{name: "medical on installments", event: payment("e", noon, 50_000, med, periods(12)),
			want: []string{RuleSecondVerification}},
		{name: "education paid at once", event: payment("e", noon, 50_000, edu)},
		{name: "e-commerce on installments", event: payment("e", noon, 50_000, periods(3))},
		{name: "second verification switched off", event: payment("e", noon, 50_000, med, periods(3)),
			policy: func(p *policy.Policy) { p.Risk.Rules.SecondVerification.Enabled = false }},
		{name: "a refused payment needs no second verification", event: payment("e", noon, 50_000, edu, periods(3)),
			facts: []func(*Input){withLimit(10_000)}, want: []string{RuleTransactionLimit}},

		// Night large payment (00:00–05:59 local, from 2,000 yuan).
		{name: "00:00:00, exactly 2,000.00 yuan", event: payment("e", at(0, 0, 0), 200_000), want: []string{RuleNightLargePayment}},
		{name: "05:59:59 is night", event: payment("e", at(5, 59, 59), 500_000), want: []string{RuleNightLargePayment}},
		{name: "06:00:00 is morning", event: payment("e", at(6, 0, 0), 500_000)},
		{name: "23:59:59 is evening", event: payment("e", at(23, 59, 59), 500_000)},
		{name: "03:00, 1,999.99 yuan is not large", event: payment("e", at(3, 0, 0), 199_999)},
		{name: "03:00 Shanghai written as 19:00 UTC the day before",
			event: payment("e", time.Date(2026, 11, 19, 19, 0, 0, 0, time.UTC), 200_000), want: []string{RuleNightLargePayment}},
		{name: "night switched off", event: payment("e", at(3, 0, 0), 500_000),
			policy: func(p *policy.Policy) { p.Risk.Rules.NightLarge.Enabled = false }},
		{name: "a lower large threshold from the policy", event: payment("e", at(3, 0, 0), 150_000),
			policy: func(p *policy.Policy) { p.Risk.LargePaymentFen = 100_000 }, want: []string{RuleNightLargePayment}},
		{name: "a night window across midnight: 22:30", event: payment("e", at(22, 30, 0), 300_000),
			policy: func(p *policy.Policy) { p.Risk.NightStart, p.Risk.NightEnd = "22:00", "01:59" },
			want:   []string{RuleNightLargePayment}},
		{name: "a night window across midnight: 03:00 is outside", event: payment("e", at(3, 0, 0), 300_000),
			policy: func(p *policy.Policy) { p.Risk.NightStart, p.Risk.NightEnd = "22:00", "01:59" }},

		// New device, large payment.
		{name: "new device, 2,000.00 yuan", event: payment("e", noon, 200_000), facts: []func(*Input){newDevice},
			want: []string{RuleNewDeviceLarge}},
		{name: "new device, 1,999.99 yuan", event: payment("e", noon, 199_999), facts: []func(*Input){newDevice}},
		{name: "known device, large", event: payment("e", noon, 900_000)},
		{name: "a login from a new device is not a payment", event: login("e", noon), facts: []func(*Input){newDevice}},

		// Other-city login.
		{name: "login from another city", event: login("e", noon), facts: []func(*Input){newCity},
			want: []string{RuleOtherCityLogin}},
		{name: "login from a usual city", event: login("e", noon)},
		{name: "other-city login switched off", event: login("e", noon), facts: []func(*Input){newCity},
			policy: func(p *policy.Policy) { p.Risk.Rules.OtherCityLogin.Enabled = false }},
		{name: "a login at night is not a payment", event: login("e", at(2, 0, 0))},

		// Large payment after an other-city login (24 h).
		{name: "large payment 23h59m after an other-city login", event: payment("e", noon, 200_000),
			facts: []func(*Input){otherCityAgo(23*time.Hour + 59*time.Minute)}, want: []string{RuleOtherCityThenLarge}},
		{name: "large payment exactly 24h after", event: payment("e", noon, 200_000),
			facts: []func(*Input){otherCityAgo(24 * time.Hour)}, want: []string{RuleOtherCityThenLarge}},
		{name: "large payment 24h01m after", event: payment("e", noon, 200_000),
			facts: []func(*Input){otherCityAgo(24*time.Hour + time.Minute)}},
		{name: "small payment 1h after", event: payment("e", noon, 199_999),
			facts: []func(*Input){otherCityAgo(time.Hour)}},
		{name: "large payment before the other-city login", event: payment("e", noon, 200_000),
			facts: []func(*Input){otherCityAgo(-time.Minute)}},
		{name: "other-city-then-large switched off", event: payment("e", noon, 200_000),
			facts:  []func(*Input){otherCityAgo(time.Hour)},
			policy: func(p *policy.Policy) { p.Risk.Rules.OtherCityThenLarge.Enabled = false }},
		{name: "a shorter window from the policy", event: payment("e", noon, 200_000),
			facts:  []func(*Input){otherCityAgo(2 * time.Hour)},
			policy: func(p *policy.Policy) { p.Risk.OtherCityThenLargeWindow = time.Hour }},

		// Velocity: 10 payments in 10 minutes, this one included.
		{name: "9 payments in 10 minutes", event: payment("e", noon, 100), facts: []func(*Input){recent(8, time.Minute)}},
		{name: "10 payments in 9 minutes", event: payment("e", noon, 100), facts: []func(*Input){recent(9, time.Minute)},
			want: []string{RuleVelocity}},
		{name: "the 10th payment exactly 10m after the first", event: payment("e", noon, 100),
			facts: []func(*Input){func(i *Input) {
				i.RecentPayments = append(before(noon, 8, time.Minute), noon.Add(-10*time.Minute))
			}},
			want: []string{RuleVelocity}},
		{name: "the 10th payment 10m01s after the first", event: payment("e", noon, 100),
			facts: []func(*Input){func(i *Input) {
				i.RecentPayments = append(before(noon, 8, time.Minute), noon.Add(-10*time.Minute-time.Second))
			}}},
		{name: "15 recent payments, all in the window", event: payment("e", noon, 100), facts: []func(*Input){recent(15, 30*time.Second)},
			want: []string{RuleVelocity}},
		{name: "the state keeps whole seconds: 10m00.9s is 10m", event: payment("e", noon.Add(900*time.Millisecond), 100),
			facts: []func(*Input){func(i *Input) {
				i.RecentPayments = append(before(noon, 8, time.Minute), noon.Add(-10*time.Minute))
			}},
			want: []string{RuleVelocity}},
		{name: "10m01s at the second", event: payment("e", noon.Add(999*time.Millisecond), 100),
			facts: []func(*Input){func(i *Input) {
				i.RecentPayments = append(before(noon, 8, time.Minute), noon.Add(-10*time.Minute-time.Second))
			}}},
		{name: "payments later than this one do not count", event: payment("e", noon, 100),
			facts: []func(*Input){func(i *Input) {
				i.RecentPayments = append(before(noon, 8, time.Minute), noon.Add(time.Second))
			}}},
		{name: "velocity switched off", event: payment("e", noon, 100), facts: []func(*Input){recent(9, time.Minute)},
			policy: func(p *policy.Policy) { p.Risk.Rules.Velocity.Enabled = false }},
		{name: "3 in 1 minute from the policy", event: payment("e", noon, 100), facts: []func(*Input){recent(2, 20*time.Second)},
			policy: func(p *policy.Policy) { p.Risk.VelocityCount, p.Risk.VelocityWindow = 3, time.Minute },
			want:   []string{RuleVelocity}},

		// Several rules on one event: one decision each, refusals first.
		{name: "every payment rule at once", event: payment("e", at(2, 0, 0), 600_000, retail, periods(3)),
			facts: []func(*Input){withLimit(300_000), newDevice, otherCityAgo(time.Hour), recent(9, time.Second), refused, threshold(1)},
			want: []string{RuleCreditRefusal, RuleTransactionLimit, RuleAlertThreshold, RuleNightLargePayment, RuleNewDeviceLarge,
				RuleOtherCityThenLarge, RuleVelocity}},

		// Events without rules.
		{name: "a bill falling due", event: &events.Event{ID: "e", Type: events.TypeRepaymentDue, Subject: user, Time: noon,
			Due: &events.RepaymentDue{UserID: user, BillID: "b1", AmountFen: 50_000, DueAt: noon}}},
		{name: "a bill paid", event: &events.Event{ID: "e", Type: events.TypeRepaymentPaid, Subject: user, Time: noon,
			Paid: &events.RepaymentPaid{UserID: user, BillID: "b1", AmountFen: 50_000}}},
		{name: "a profile not on the judicial list", event: profile("e", noon, false)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rulesOf(t, tc.policy)
			input := in(tc.event)
			for _, f := range tc.facts {
				f(&input)
			}
			got := r.Evaluate(input)
			if want := append([]string{}, tc.want...); !slices.Equal(rulesFired(got), want) {
				t.Fatalf("rules fired %v, want %v", rulesFired(got), want)
			}
			ids := map[string]bool{}
			for _, d := range got {
				checkAlert(t, d, tc.event)
				if ids[d.ID] {
					t.Errorf("two decisions share id %s", d.ID)
				}
				ids[d.ID] = true
			}
			if r.Late(input) {
				t.Error("an event processed as it happens is late")
			}
			// The same input gives the same decisions.
			again := r.Evaluate(input)
			for i := range again {
				if again[i].ID != got[i].ID {
					t.Fatalf("decision id not stable: %s then %s", got[i].ID, again[i].ID)
				}
			}
			// Another event with the same facts gets other ids.
			other := *tc.event
			other.ID = "e-other"
			input.Event = &other
			for i, d := range r.Evaluate(input) {
				if d.ID == got[i].ID {
					t.Fatalf("two events share decision id %s", d.ID)
				}
			}
		})
	}
}

func TestDetail(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	detail := func(t *testing.T, input Input, rule string) map[string]any {
		t.Helper()
		for _, d := range r.Evaluate(input) {
			if d.Data.Rule == rule {
				raw, err := json.Marshal(d.Data.Detail)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
		t.Fatalf("rule %s did not fire", rule)
		return nil
	}
	night := in(payment("e", at(2, 30, 0), 250_000))
	night.NewDevice = true
	night.LastOtherCityLogin = at(0, 30, 0)
	night.RecentPayments = before(at(2, 30, 0), 9, time.Second)
	lg := in(login("l", noon))
	lg.NewCity = true
	edu := in(payment("e", noon, 30_000, scene(events.SceneEducation), periods(6)))
	retail := in(payment("e", noon, 600_000, scene(events.SceneOfflineRetail), periods(3)))
	retail.CreditRefused, retail.Pool, retail.AvailableFen = []string{policy.CodeOrderLimited}, "pay_score", 900_000
	own := in(payment("e", noon, 100_001))
	own.TransactionLimitFen = 100_000

	cases := []struct {
		name  string
		input Input
		rule  string
		want  map[string]any
	}{
		{"night", night, RuleNightLargePayment, map[string]any{"amount_fen": 250000.0, "scene": "ecommerce",
			"local_time": "2026-11-20T02:30:00+08:00", "large_fen": 200000.0, "night": "00:00-05:59"}},
		{"new device", night, RuleNewDeviceLarge, map[string]any{"amount_fen": 250000.0, "scene": "ecommerce",
			"local_time": "2026-11-20T02:30:00+08:00", "large_fen": 200000.0}},
		{"other city then large", night, RuleOtherCityThenLarge, map[string]any{"amount_fen": 250000.0, "scene": "ecommerce",
			"local_time": "2026-11-20T02:30:00+08:00", "large_fen": 200000.0,
			"other_city_login_at": "2026-11-20T00:30:00+08:00", "since": "2h0m0s", "window": "24h0m0s"}},
		{"velocity", night, RuleVelocity, map[string]any{"amount_fen": 250000.0, "scene": "ecommerce",
			"local_time": "2026-11-20T02:30:00+08:00", "count": 10.0, "threshold": 10.0, "window": "10m0s",
			"first_at": "2026-11-20T02:29:51+08:00"}},
		{"other-city login: the city, not the IP", lg, RuleOtherCityLogin, map[string]any{"city": "Urumqi",
			"local_time": "2026-11-20T12:00:00+08:00", "window_days": 90.0}},
		{"second verification", edu, RuleSecondVerification, map[string]any{"amount_fen": 30000.0, "scene": "education",
			"local_time": "2026-11-20T12:00:00+08:00", "installments": 6.0, "verification": "enrolment_check"}},
		{"credit refusal", retail, RuleCreditRefusal, map[string]any{"amount_fen": 600000.0, "scene": "offline_retail",
			"local_time": "2026-11-20T12:00:00+08:00", "installments": 3.0, "pool": "pay_score", "available_fen": 900000.0}},
		{"own limit", own, RuleTransactionLimit, map[string]any{"amount_fen": 100001.0, "scene": "ecommerce",
			"local_time": "2026-11-20T12:00:00+08:00", "limit_fen": 100000.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := detail(t, tc.input, tc.rule)
			if len(got) != len(tc.want) {
				t.Errorf("detail %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("detail[%s] = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestUserZone(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	cases := []struct {
		name  string
		zone  *time.Location
		when  time.Time
		fires bool
	}{
		{"02:00 in New York is night for a New York user", newYork, time.Date(2026, 11, 20, 2, 0, 0, 0, newYork), true},
		{"02:00 in New York is 15:00 in Shanghai", shanghai, time.Date(2026, 11, 20, 2, 0, 0, 0, newYork), false},
		{"03:00 UTC is 11:00 in Shanghai", shanghai, time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC), false},
		{"no zone: the policy's (Asia/Shanghai)", nil, time.Date(2026, 11, 19, 19, 0, 0, 0, time.UTC), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := payment("e", tc.when, 300_000)
			got := r.Evaluate(Input{Event: e, Zone: tc.zone, Now: tc.when})
			if fired := slices.Equal(rulesFired(got), []string{RuleNightLargePayment}); fired != tc.fires {
				t.Fatalf("rules fired %v, want night %v", rulesFired(got), tc.fires)
			}
		})
	}
}

func TestLate(t *testing.T) {
	t.Parallel()
	night := at(2, 0, 0)
	// A payment that fires every payment rule when on time, and a login
	// that fires the other-city rule.
	pay := Input{Event: payment("p", night, 600_000, scene(events.SceneOfflineRetail)), Zone: shanghai,
		NewDevice: true, LastOtherCityLogin: night.Add(-time.Hour), RecentPayments: before(night, 9, time.Second),
		TransactionLimitFen: 300_000, AlertThresholdFen: 1}
	// a credit payment the state layer refused: the refusal is a state
	// (its principal was not drawn) and is published however late
	refusedPay := Input{Event: payment("p", night, 600_000, scene(events.SceneOfflineRetail), periods(3)), Zone: shanghai,
		CreditRefused: []string{policy.CodeOrderLimited}}
	edu := Input{Event: payment("p", night, 1_000, scene(events.SceneEducation), periods(3)), Zone: shanghai}
	lg := Input{Event: login("l", night), Zone: shanghai, NewCity: true}
	judicial := Input{Event: profile("pr", night, true), Zone: shanghai}

	cases := []struct {
		name     string
		input    Input
		now      time.Time
		lateness time.Duration // 0: the policy's (1h)
		late     bool
		want     int // decisions
	}{
		{"payment 1h01m late fires nothing", pay, night.Add(time.Hour + time.Minute), 0, true, 0},
		{"payment exactly 1h late is judged", pay, night.Add(time.Hour), 0, false, 6},
		{"payment on time", pay, night, 0, false, 6},
		{"payment from the future is not late", pay, night.Add(-time.Minute), 0, false, 6},
		{"no Now: lateness not tracked", pay, time.Time{}, 0, false, 6},
		{"second verification 1h01m late", edu, night.Add(time.Hour + time.Minute), 0, true, 0},
		{"a credit refusal 1h01m late is still published", refusedPay, night.Add(time.Hour + time.Minute), 0, true, 1},
		{"a credit refusal on time, and the night rule", refusedPay, night, 0, false, 2},
		{"login 1h01m late fires nothing", lg, night.Add(time.Hour + time.Minute), 0, true, 0},
		{"login 59m late", lg, night.Add(59 * time.Minute), 0, false, 1},
		{"a longer lateness from the policy", lg, night.Add(2 * time.Hour), 3 * time.Hour, false, 1},
		{"a judicial listing freezes however late", judicial, night.Add(48 * time.Hour), 0, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rulesOf(t, func(p *policy.Policy) {
				if tc.lateness > 0 {
					p.Risk.AllowedLateness = tc.lateness
				}
			})
			input := tc.input
			input.Now = tc.now
			if got := r.Late(input); got != tc.late {
				t.Errorf("Late = %v, want %v", got, tc.late)
			}
			if got := r.Evaluate(input); len(got) != tc.want {
				t.Errorf("%d decisions %v, want %d", len(got), rulesFired(got), tc.want)
			}
		})
	}
	if (&Rules{}).Late(Input{}) {
		t.Error("an input without an event is late")
	}
}

func TestJudicialProfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		policy func(*policy.Policy)
		event  *events.Event
		want   bool
	}{
		{"on the list: frozen", nil, profile("pr-1", noon, true), true},
		{"not on the list", nil, profile("pr-1", noon, false), false},
		{"judicial freeze switched off", func(p *policy.Policy) { p.Risk.Rules.JudicialFreeze.Enabled = false },
			profile("pr-1", noon, true), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rulesOf(t, tc.policy)
			got := r.Evaluate(in(tc.event))
			if !tc.want {
				if len(got) != 0 {
					t.Fatalf("want nothing, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("want one freeze, got %+v", got)
			}
			d := got[0]
			if d.ID != r.Frozen(user, "pr-1", CauseJudicialDefaulter, noon, nil).ID {
				t.Fatalf("not the Frozen builder's decision: %+v", d)
			}
			if d.Type != events.TypeDecisionFrozen || d.Data.Action != ActionInstallmentsSuspended ||
				d.Data.Rule != RuleJudicialFreeze || d.Data.CausationID != "pr-1" || !d.Time.Equal(noon) ||
				len(d.Data.ReasonCodes) != 1 || d.Data.ReasonCodes[0].Code != policy.CodeJudicialDefaulter ||
				d.Data.PolicyVersion != wechatVersion {
				t.Fatalf("freeze: %+v", d)
			}
			if _, err := events.MarshalDecision(d); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mod     func(*policy.Policy)
		wantErr string
	}{
		{name: "the wechat preset"},
		{name: "an invalid policy", mod: func(p *policy.Policy) { p.Risk.VelocityCount = 0 }, wantErr: "risk.velocity_count"},
		{name: "velocity needing more history than the state keeps",
			mod: func(p *policy.Policy) { p.Risk.VelocityCount = MaxRecentPayments + 2 }, wantErr: "keeps 15"},
		{name: "the same, with velocity off",
			mod: func(p *policy.Policy) {
				p.Risk.VelocityCount = MaxRecentPayments + 2
				p.Risk.Rules.Velocity.Enabled = false
			}},
		{name: "the largest velocity count", mod: func(p *policy.Policy) { p.Risk.VelocityCount = MaxRecentPayments + 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := wechat(t)
			if tc.mod != nil {
				tc.mod(p)
			}
			r, err := NewRules(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.PolicyVersion() != wechatVersion {
					t.Fatalf("policy version %q", r.PolicyVersion())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
	if _, err := NewRules(nil); err == nil {
		t.Error("nil policy accepted")
	}
}

func TestPresets(t *testing.T) {
	t.Parallel()
	for _, name := range policy.Presets() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, r := presetRules(t, name)
			d := r.Evaluate(in(payment("e", at(3, 0, 0), p.Risk.LargePaymentFen)))
			if len(d) != 1 || d[0].Data.PolicyVersion != p.Version {
				t.Fatalf("night rule under %s: %+v", name, d)
			}
		})
	}
	if v := DefaultRules().PolicyVersion(); v != wechatVersion {
		t.Fatalf("DefaultRules is policy %q, want the wechat preset", v)
	}
}

func TestReasonCodesFromPolicy(t *testing.T) {
	t.Parallel()
	custom := policy.Reason{Code: CodeNightLarge, Message: "late and large", Advice: "call us"}
	cases := []struct {
		name string
		mod  func(*policy.Policy)
		want string // the night alert's code and message
	}{
		{"built-in text when the catalogue lacks the code", func(p *policy.Policy) { p.Reasons = withoutCode(p.Reasons, CodeNightLarge) },
			CodeNightLarge + ": " + builtin[CodeNightLarge].Message},
		{"the catalogue's text wins", func(p *policy.Policy) { p.Reasons = append(withoutCode(p.Reasons, CodeNightLarge), custom) },
			CodeNightLarge + ": late and large"},
		{"the rule's own code", func(p *policy.Policy) { p.Risk.Rules.NightLarge.Code = policy.CodeOrderLimited },
			policy.CodeOrderLimited + ": Merchant quota limited (商户额度受限)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rulesOf(t, tc.mod)
			d := r.Evaluate(in(payment("e", at(3, 0, 0), 300_000)))
			if len(d) != 1 {
				t.Fatalf("want the night alert, got %+v", d)
			}
			if rc := d[0].Data.ReasonCodes[0]; rc.Code+": "+rc.Message != tc.want || rc.Advice == "" {
				t.Fatalf("reason %+v, want %q with advice", rc, tc.want)
			}
		})
	}
}

func withoutCode(rs []policy.Reason, code string) []policy.Reason {
	var out []policy.Reason
	for _, r := range rs {
		if r.Code != code {
			out = append(out, r)
		}
	}
	return out
}

// The rules keep no reference to the policy they were built from.
func TestPolicyCopied(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	r, err := NewRules(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Risk.Rules.NightLarge.Enabled = false
	p.Risk.LargePaymentFen = 1
	delete(p.Scenes, events.SceneOfflineRetail)
	p.Reasons[0].Message = "changed"
	if got := r.Evaluate(in(payment("e", at(3, 0, 0), 600_000, scene(events.SceneOfflineRetail)))); len(got) != 1 {
		t.Fatalf("changing the policy changed the rules: %v", rulesFired(got))
	}
}

func TestBuiltinCodes(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	for _, code := range []string{CodeOtherCityLogin, CodeNightLarge, CodeOtherCityLarge, CodeNewDeviceLarge,
		CodeVelocity, CodeSecondVerification} {
		rc, ok := Builtin(code)
		if !ok || rc.Code != code || rc.Message == "" || rc.Advice == "" {
			t.Errorf("built-in %s: %+v", code, rc)
		}
		if _, clash := p.Reason(code); clash {
			t.Logf("%s is now catalogued by the wechat preset; the catalogue's text is used", code)
		}
	}
	if _, ok := Builtin(policy.CodeCreditLow); ok {
		t.Error("a catalogue code has a built-in text")
	}
}

func TestFreezeTransitions(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	paid := &events.Event{ID: "pay-bill", Type: events.TypeRepaymentPaid, Subject: user, Time: noon,
		Paid: &events.RepaymentPaid{UserID: user, BillID: "b1", AmountFen: 100}}
	cases := []struct {
		name     string
		input    Input
		wantType string // "" = no decision
	}{
		{"flag stays on: no second freeze", Input{Event: profile("pr-2", noon, true), Zone: shanghai, WasJudicialDefaulter: true}, ""},
		{"flag turns off: unfrozen", Input{Event: profile("pr-3", noon, false), Zone: shanghai, WasJudicialDefaulter: true}, events.TypeDecisionUnfrozen},
		{"flag stays off", Input{Event: profile("pr-4", noon, false), Zone: shanghai}, ""},
		{"last overdue bill settled: unfrozen", Input{Event: paid, Zone: shanghai, SettledLastOverdue: true}, events.TypeDecisionUnfrozen},
		{"a repayment that settles nothing overdue", Input{Event: paid, Zone: shanghai}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.Evaluate(tc.input)
			if tc.wantType == "" {
				if len(got) != 0 {
					t.Fatalf("want nothing, got %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Type != tc.wantType || got[0].Data.Action != ActionInstallmentsResumed ||
				got[0].Data.CausationID != tc.input.Event.ID {
				t.Fatalf("want one %s, got %+v", tc.wantType, got)
			}
		})
	}
}
