package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
)

// A shadow policy with the live policy's version is refused, naming the
// version: its records would not say which policy decided what. One with
// a version of its own is taken.
func TestShadowPolicyNeedsAVersionOfItsOwn(t *testing.T) {
	t.Parallel()
	_, log := newLogBuffer()
	live, err := newPolicies("wechat", log)
	if err != nil {
		t.Fatal(err)
	}
	sameVersion := policyFile(t) // the preset copied, version and all
	for _, spec := range []string{"wechat", sameVersion} {
		if _, err := newShadowPolicies(spec, live, log); err == nil ||
			!strings.Contains(err.Error(), `the shadow and the live policy would both have version "wechat-2025.1"`) {
			t.Errorf("shadow %s with the live version: %v", spec, err)
		}
	}
	own := filepath.Join(t.TempDir(), "candidate.yaml")
	writeFile(t, own, edit(t, wechatYAML(t), versionV1, versionV2))
	sp, err := newShadowPolicies(own, live, log)
	if err != nil {
		t.Fatal(err)
	}
	if p, rules := sp.get(); p.Version != "wechat-2025.2" || rules.PolicyVersion() != "wechat-2025.2" {
		t.Errorf("shadow policy %s, rules %s", p.Version, rules.PolicyVersion())
	}
	if lp, _ := live.get(); lp.Version != wechatVersion {
		t.Errorf("the live policy became %s", lp.Version)
	}
}

// jobs.ShadowServable: a shadow policy reads the live policy's state, so
// its activity window may be shorter than the days kept (it reads fewer of
// them), never longer, and its other-city window and limits must be the
// live policy's (state judges new cities and refuses amounts by them as it
// applies events). Each refusal says what differs, and why.
func TestShadowPolicyServableByTheLiveState(t *testing.T) {
	t.Parallel()
	live, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	live.Eligibility.ActivityWindowDays = 60
	st := jobs.StateConfig(live, shanghai) // 61 days of counts, 90 of places
	if st.Days != 61 || st.GeoDays != 90 {
		t.Fatalf("live state %+v", st)
	}
	const why = "a shadow policy reads the live policy's state: "
	tests := []struct {
		name   string
		change func(p *policy.Policy)
		want   string // "" accepted
	}{
		{"the live windows", func(*policy.Policy) {}, ""},
		{"a shorter activity window", func(p *policy.Policy) { p.Eligibility.ActivityWindowDays = 30 }, ""},
		{"a longer activity window", func(p *policy.Policy) { p.Eligibility.ActivityWindowDays = 90 },
			why + "eligibility.activity_window_days 90 needs 91 days of counts kept, and state keeps 61: restart fenqid to change the state's windows"},
		{"another other-city window", func(p *policy.Policy) { p.Risk.OtherCityWindowDays = 30 },
			why + "risk.other_city_window_days 30 differs from the 90 days state keeps places for: restart fenqid to change the state's windows"},
		{"another amount limit", func(p *policy.Policy) { p.Limits.MaxAmountFen = 50_000_000 },
			why + "limits (max_amount_fen 50000000, max_open_bills 24) differ from the ones in force (100000000, 24): restart fenqid to change them"},
		{"another open-bill limit", func(p *policy.Policy) { p.Limits.MaxOpenBills = 12 },
			why + "limits (max_amount_fen 100000000, max_open_bills 12) differ from the ones in force (100000000, 24): restart fenqid to change them"},
		{"a device window longer than the places kept", func(p *policy.Policy) { p.Quota.Factors.Device.WindowDays = 120 },
			why + "quota.factors.device.window_days 120 is longer than the 90 days state keeps logins for (risk.other_city_window_days)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := policy.Preset("wechat")
			if err != nil {
				t.Fatal(err)
			}
			p.Version = "candidate"
			p.Eligibility.ActivityWindowDays = 60
			tt.change(p)
			err = jobs.ShadowServable(st, p)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
	// The shorter window is the shadow's privilege: as the live policy it
	// would need the state's windows changed.
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	p.Eligibility.ActivityWindowDays = 30
	if err := jobs.Servable(st, p); err == nil || !strings.Contains(err.Error(), "activity_window_days 30 needs 35 days") {
		t.Fatalf("a 30-day window as the live policy over 61 days kept: %v", err)
	}
}

// A shadow policy's reload is checked as a shadow's (jobs.ShadowServable
// against the live state), not as a live policy's: under a live policy
// keeping 61 days of counts (a 60-day activity window), another
// other-city window is refused and logged, a 30-day activity window (35
// days: a live policy's reload would be refused) is taken.
func TestShadowPolicyReloadCheckedAgainstTheLiveState(t *testing.T) {
	t.Parallel()
	lb, log := newLogBuffer()
	window60 := edit(t, wechatYAML(t), "activity_window_days: 30", "activity_window_days: 60")
	livePath := filepath.Join(t.TempDir(), "live.yaml")
	writeFile(t, livePath, window60)
	live, err := newPolicies(livePath, log)
	if err != nil {
		t.Fatal(err)
	}
	lp, _ := live.get()
	live.state = jobs.StateConfig(lp, shanghai)
	if live.state.Days != 61 {
		t.Fatalf("live state %+v", live.state)
	}
	path := policyFile(t)
	writeFile(t, path, edit(t, window60, versionV1, versionV2))
	sp, err := newShadowPolicies(path, live, log)
	if err != nil {
		t.Fatal(err)
	}
	sp.state = live.state // as fenqid does: the shadow reads the live state

	writeFile(t, path, edit(t, edit(t, window60, versionV1, `version: "wechat-2025.3"`), "other_city_window_days: 90", "other_city_window_days: 30"))
	sp.reload("test")
	if p, _ := sp.get(); p.Version != "wechat-2025.2" {
		t.Fatalf("a shadow with another other-city window was taken: %s", p.Version)
	}
	recs := lb.records(t, "policy reload refused; keeping the policy in force")
	if len(recs) != 1 || recs[0]["policy"] != "shadow" ||
		!strings.Contains(recs[0]["err"].(string), "a shadow policy reads the live policy's state: risk.other_city_window_days 30 differs") {
		t.Fatalf("refusal logs: %v", recs)
	}

	writeFile(t, path, edit(t, wechatYAML(t), versionV1, `version: "wechat-2025.4"`)) // a 30-day window
	sp.reload("test")
	if p, _ := sp.get(); p.Version != "wechat-2025.4" || p.Eligibility.ActivityWindowDays != 30 {
		t.Fatalf("a shadow with a 30-day activity window was refused: %s", p.Version)
	}
	if n := len(lb.records(t, "policy reload refused; keeping the policy in force")); n != 1 {
		t.Fatalf("%d refusals logged, want the one", n)
	}
	// The same file as the live policy's reload: refused.
	writeFile(t, livePath, edit(t, wechatYAML(t), versionV1, `version: "wechat-2025.5"`))
	live.reload("test")
	if p, _ := live.get(); p.Version != wechatVersion {
		t.Fatalf("the live policy took a 30-day window over 61 days kept: %s", p.Version)
	}
	// A reload of either to the other's version: refused, both ways.
	writeFile(t, path, window60) // the live file's version
	sp.reload("test")
	if p, _ := sp.get(); p.Version != "wechat-2025.4" {
		t.Fatalf("the shadow took the live version: %s", p.Version)
	}
	writeFile(t, livePath, edit(t, window60, versionV1, `version: "wechat-2025.4"`)) // the shadow's version
	live.reload("test")
	if p, _ := live.get(); p.Version != wechatVersion {
		t.Fatalf("the live policy took the shadow's version: %s", p.Version)
	}
	recs = lb.records(t, "policy reload refused; keeping the policy in force")
	var same int
	for _, r := range recs {
		if strings.Contains(r["err"].(string), "would both have version") {
			same++
		}
	}
	if same != 2 {
		t.Fatalf("%d refusals for the same version, want 2: %v", same, recs)
	}
}

// The shadow topic is an output of its own: one shared with the live
// decisions (or any other topic) is refused, naming both settings,
// whether -shadow-policy is set or not.
func TestShadowTopicOfItsOwn(t *testing.T) {
	t.Parallel()
	const want = `setting -topic-shadow (FENQI_TOPIC_SHADOW): topic "fenqi.decisions" is also the value of -topic-decisions`
	for _, tt := range []struct {
		name string
		args []string
		env  env
		want string
	}{
		{"flag", []string{"-topic-shadow", "fenqi.decisions"}, nil, want},
		{"flag, with a shadow policy", []string{"-shadow-policy", "huabei", "-topic-shadow", "fenqi.decisions"}, nil, want},
		{"variable", nil, env{"FENQI_TOPIC_SHADOW": "fenqi.decisions", "FENQI_SHADOW_POLICY": "huabei"}, want},
		{"decisions moved onto the shadow topic", []string{"-shadow-policy", "huabei", "-topic-decisions", "fenqi.shadow.decisions"}, nil,
			`setting -topic-shadow (FENQI_TOPIC_SHADOW): topic "fenqi.shadow.decisions" is also the value of -topic-decisions`},
		{"an input topic", []string{"-topic-shadow", "fenqi.payments"}, nil,
			`setting -topic-shadow (FENQI_TOPIC_SHADOW): topic "fenqi.payments" is also the value of -topic-payments`},
		{"empty", []string{"-shadow-policy", "huabei", "-topic-shadow="}, nil,
			"setting -topic-shadow (FENQI_TOPIC_SHADOW): must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, tt.args, tt.env)
			if err == nil {
				t.Fatalf("accepted: %+v", *c)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
	// Its own topic is accepted, and created in embedded mode.
	c, _, err := parse(t, []string{"-shadow-policy", "huabei", "-topic-shadow", "candidate.decisions"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts := c.allTopics(); !slices.Contains(ts, "candidate.decisions") || !slices.Contains(ts, "fenqi.decisions") {
		t.Errorf("all topics %q", ts)
	}
}
