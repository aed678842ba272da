package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
)

// logBuffer collects a logger's JSON lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the log records whose msg is msg.
func (l *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	lb := &logBuffer{}
	return lb, slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wechatYAML is the shipped wechat preset, as an operator would copy it to
// start a policy file of their own.
func wechatYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "policy", "presets", "wechat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces the one occurrence of old in doc.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("%q occurs %d times in the policy, want once", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// policyFile writes the wechat preset to a temporary file.
func policyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, wechatYAML(t))
	return path
}

const (
	wechatVersion   = "wechat-2025.1"
	thresholdV1     = "large_payment_fen: 200000"
	thresholdV2     = "large_payment_fen: 500000"
	versionV1       = `version: "wechat-2025.1"`
	versionV2       = `version: "wechat-2025.2"`
	weightsValid    = "pay_score: 0.35"
	weightsTooHeavy = "pay_score: 0.45" // the weights then sum to 1.10
)

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// nightPayment is a payment at 02:30 in Shanghai, late at night under
// every preset.
func nightPayment(amountFen int64) scoring.Input {
	at := time.Date(2026, 3, 17, 2, 30, 0, 0, shanghai)
	return scoring.Input{
		Event: &events.Event{ID: "pay-night", Type: events.TypePayment, Source: "//test", Subject: "u-night", Time: at,
			Payment: &events.Payment{UserID: "u-night", AmountFen: amountFen, Currency: "CNY", Scene: events.SceneEcommerce,
				MerchantID: "m-1", DeviceID: "dev-1", City: "Shanghai", Auth: events.AuthPassword}},
		Zone: shanghai,
		Now:  at.Add(time.Second),
	}
}

// firedRules names the rules that fire on in.
func firedRules(r *scoring.Rules, in scoring.Input) []string {
	var names []string
	for _, d := range r.Evaluate(in) {
		names = append(names, d.Data.Rule)
	}
	return names
}

// A policy in force: its version, and whether a 3,000 yuan payment at night
// is large (it is under the preset's 2,000 yuan threshold, not under 5,000).
func checkInForce(t *testing.T, ps *policies, version string, nightLargeFires bool) {
	t.Helper()
	p, rules := ps.get()
	if p.Version != version || rules.PolicyVersion() != version {
		t.Errorf("policy %q with rules of %q, want both %q", p.Version, rules.PolicyVersion(), version)
	}
	got := firedRules(rules, nightPayment(300_000))
	fires := len(got) == 1 && got[0] == scoring.RuleNightLargePayment
	if fires != nightLargeFires || (!fires && len(got) > 0) {
		t.Errorf("a 3,000 yuan payment at night fires %q, want night_large_payment: %v", got, nightLargeFires)
	}
	// Over both thresholds it is large either way.
	if got := firedRules(rules, nightPayment(600_000)); len(got) != 1 || got[0] != scoring.RuleNightLargePayment {
		t.Errorf("a 6,000 yuan payment at night fires %q, want night_large_payment", got)
	}
}

func TestPolicyReloadTakesNewThreshold(t *testing.T) {
	t.Parallel()
	path := policyFile(t)
	logs, log := newLogBuffer()
	ps, err := newPolicies(path, log)
	if err != nil {
		t.Fatal(err)
	}
	if ps.path != path {
		t.Errorf("watched path %q, want %q", ps.path, path)
	}
	checkInForce(t, ps, wechatVersion, true)
	before, beforeRules := ps.get()

	doc := edit(t, wechatYAML(t), thresholdV1, thresholdV2)
	writeFile(t, path, edit(t, doc, versionV1, versionV2))
	ps.reload("test")

	checkInForce(t, ps, "wechat-2025.2", false)
	if p, _ := ps.get(); p.Risk.LargePaymentFen != 500_000 {
		t.Errorf("large payment %d fen, want 500000", p.Risk.LargePaymentFen)
	}
	// A snapshot taken before the reload (a batch in flight) is unchanged.
	if before.Version != wechatVersion || before.Risk.LargePaymentFen != 200_000 {
		t.Errorf("the old snapshot changed: %s, %d fen", before.Version, before.Risk.LargePaymentFen)
	}
	if got := firedRules(beforeRules, nightPayment(300_000)); len(got) != 1 {
		t.Errorf("the old rules fire %q on 3,000 yuan at night, want night_large_payment", got)
	}

	recs := logs.records(t, "policy reloaded")
	if len(recs) != 1 {
		t.Fatalf("%d 'policy reloaded' records, want 1", len(recs))
	}
	want := map[string]any{"level": "INFO", "why": "test", "path": path, "from": wechatVersion, "to": "wechat-2025.2"}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("log %s = %v, want %v (record %v)", k, recs[0][k], v, recs[0])
		}
	}
}

func TestPolicyReloadRefusesInvalidFile(t *testing.T) {
	t.Parallel()
	path := policyFile(t)
	logs, log := newLogBuffer()
	ps, err := newPolicies(path, log)
	if err != nil {
		t.Fatal(err)
	}
	inForce, _ := ps.get()

	// Weights summing to 1.10, with the threshold change that would have
	// come with them: none of it is taken.
	doc := edit(t, wechatYAML(t), weightsValid, weightsTooHeavy)
	writeFile(t, path, edit(t, doc, thresholdV1, thresholdV2))
	ps.reload("test")

	if p, _ := ps.get(); p != inForce {
		t.Error("the policy in force was replaced by an invalid one")
	}
	checkInForce(t, ps, wechatVersion, true)
	recs := logs.records(t, "policy reload refused; keeping the policy in force")
	if len(recs) != 1 {
		t.Fatalf("%d refusals logged, want 1", len(recs))
	}
	errText, _ := recs[0]["err"].(string)
	for _, want := range []string{path, "quota.weights", "weights must sum to 1.0 (got 1.1)"} {
		if !strings.Contains(errText, want) {
			t.Errorf("refusal err %q lacks %q", errText, want)
		}
	}
	if recs[0]["level"] != "ERROR" || recs[0]["version"] != wechatVersion || recs[0]["path"] != path {
		t.Errorf("refusal record %v: want level ERROR, version %s, path %s", recs[0], wechatVersion, path)
	}
	if n := len(logs.records(t, "policy reloaded")); n != 0 {
		t.Errorf("%d 'policy reloaded' records after a refusal", n)
	}

	// The file disappears (an editor's rename, a bad deploy): refused too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ps.reload("test")
	checkInForce(t, ps, wechatVersion, true)
	if n := len(logs.records(t, "policy reload refused; keeping the policy in force")); n != 2 {
		t.Errorf("%d refusals logged, want 2", n)
	}

	// Fixed: the next reload takes it.
	writeFile(t, path, edit(t, edit(t, wechatYAML(t), thresholdV1, thresholdV2), versionV1, versionV2))
	ps.reload("fixed")
	checkInForce(t, ps, "wechat-2025.2", false)
}

// A preset is compiled in: nothing to watch; watch only holds SIGHUP.
func TestPolicyPresetNotWatched(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"wechat", "huabei", "baitiao", "baitiao.yaml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, log := newLogBuffer()
			ps, err := newPolicies(name, log)
			if err != nil {
				t.Fatal(err)
			}
			if ps.path != "" {
				t.Errorf("preset %s watched as file %q", name, ps.path)
			}
			want, err := policy.Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			if p, rules := ps.get(); p.Version != want.Version || rules.PolicyVersion() != want.Version {
				t.Errorf("version %q / rules %q, want %q", p.Version, rules.PolicyVersion(), want.Version)
			}
			// Nothing to reload, but watch still holds SIGHUP (Go's default
			// for it is to exit) until its context ends.
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- ps.watch(ctx) }()
			select {
			case err := <-done:
				t.Fatalf("watch of a preset returned before its context ended: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("watch: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("watch of a preset did not return once its context ended")
			}
		})
	}
}

func TestPolicyUnknownOrInvalid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.yaml")
	writeFile(t, invalid, edit(t, wechatYAML(t), weightsValid, weightsTooHeavy))
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"unknown preset", "alipay", []string{`"alipay"`, "baitiao", "huabei", "wechat"}},
		{"missing file", filepath.Join(dir, "missing.yaml"), []string{"missing.yaml", "baitiao", "huabei", "wechat"}},
		{"invalid file", invalid, []string{invalid, "quota.weights", "weights must sum to 1.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, log := newLogBuffer()
			ps, err := newPolicies(tt.spec, log)
			if err == nil {
				p, _ := ps.get()
				t.Fatalf("accepted, policy %s", p.Version)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// watch polls the file: a change is taken within a few seconds, without a
// signal.
func TestPolicyWatchReloadsChangedFile(t *testing.T) {
	t.Parallel()
	path := policyFile(t)
	logs, log := newLogBuffer()
	ps, err := newPolicies(path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ps.watch(ctx) }()

	writeFile(t, path, edit(t, edit(t, wechatYAML(t), thresholdV1, thresholdV2), versionV1, versionV2))
	// Make the change visible however coarse the file system's clock is.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	waitForVersion(t, ps, "wechat-2025.2", 10*time.Second)
	checkInForce(t, ps, "wechat-2025.2", false)
	if recs := logs.records(t, "policy reloaded"); len(recs) != 1 || recs[0]["why"] != "file changed" {
		t.Errorf("reload records %v, want one with why=file changed", recs)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not return after its context ended")
	}
}

func waitForVersion(t *testing.T, ps *policies, version string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p, _ := ps.get(); p.Version == version {
			return
		}
		if time.Now().After(deadline) {
			p, _ := ps.get()
			t.Fatalf("policy %s after %s, want %s", p.Version, timeout, version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGHUP reloads at once, even when the file's time did not change. Not
// parallel: the signal goes to the whole test process. The test holds a
// SIGHUP subscription of its own throughout, so the signal can never take
// the default action (ending the process) before watch subscribes.
func TestPolicyReloadOnSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 16)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	path := policyFile(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	logs, log := newLogBuffer()
	ps, err := newPolicies(path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ps.watch(ctx) }()

	writeFile(t, path, edit(t, edit(t, wechatYAML(t), thresholdV1, thresholdV2), versionV1, versionV2))
	// Same modification time as before: only the signal can cause a reload.
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p, _ := ps.get(); p.Version != "wechat-2025.2"; p, _ = ps.get() {
		if time.Now().After(deadline) {
			t.Fatalf("no reload within 10s of SIGHUP; policy %s", p.Version)
		}
		// Repeated until taken: watch may not have subscribed yet.
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkInForce(t, ps, "wechat-2025.2", false)
	recs := logs.records(t, "policy reloaded")
	if len(recs) == 0 || recs[0]["why"] != "SIGHUP" {
		t.Errorf("reload records %v, want why=SIGHUP", recs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
}
