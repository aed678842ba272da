package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/simulator"
)

// candidateFile writes the wechat preset with a lower large-payment
// threshold, velocity payments verified by face rather than SMS, and its own
// version.
func candidateFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../policy/presets/wechat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), `version: "wechat-2025.1"`, `version: "wechat-candidate-1"`, 1)
	y = strings.Replace(y, "large_payment_fen: 200000", "large_payment_fen: 80000", 1)
	y = strings.Replace(y, "velocity: {enabled: true, action: SMS_VERIFY}", "velocity: {enabled: true, action: FACE_VERIFY}", 1)
	if y == string(b) {
		t.Fatal("the preset changed: fix the replacements")
	}
	p := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBacktestCommand replays a simulated history with a candidate in a
// scratch Redis, writes the report, the page and the records, and the
// records give the same report again through shadow report.
func TestBacktestCommand(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, append(inputTopicNames, defaultDecisions, defaultDLQ)...)
	var sc simulator.Config
	sc.Users, sc.Seed, sc.HistoryDays, sc.MalformedRatio = 25, 3, 90, -1
	sim := simulator.New(sc)
	byTopic := map[string][]kafka.Message{}
	// The history, then live traffic (its night payments are what the
	// candidate's threshold changes).
	for live := 0; live < 400; {
		if !sim.InHistory() {
			live++
		}
		topic, key, value := sim.Next()
		byTopic[topic] = append(byTopic[topic], kafka.Message{Key: key, Value: value})
	}
	for topic, msgs := range byTopic {
		testenv.Produce(t, k.Addrs(), topic, msgs...)
	}
	dir := t.TempDir()
	page, recs := filepath.Join(dir, "report.html"), filepath.Join(dir, "records.jsonl")
	res := runCmd(t, nil, "", "backtest", "--brokers", k.Addr(), "--scratch-redis", "--from", "earliest",
		"--policy", candidateFile(t), "--html", page, "--records", recs)
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, want := range []string{"wechat-2025.1", "wechat-candidate-1", "Decisions by rule and action", "Quota moves"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("the report does not say %q", want)
		}
	}
	// Velocity alerts change action: each is removed from SMS_VERIFY and
	// added to FACE_VERIFY, as many on both rows.
	var sms, refuse []string
	for _, line := range strings.Split(res.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[0] == scoring.RuleVelocity {
			switch f[1] {
			case "SMS_VERIFY":
				sms = f
			case "FACE_VERIFY":
				refuse = f
			}
		}
	}
	// RULE ACTION LIVE SHADOW SAME CHANGED ADDED REMOVED
	if sms == nil || refuse == nil || sms[2] == "0" || sms[3] != "0" || refuse[2] != "0" || refuse[3] != sms[2] || sms[7] != sms[2] || refuse[6] != sms[2] {
		t.Fatalf("velocity rows: %v %v", sms, refuse)
	}
	if !strings.Contains(res.stderr, "100%") || !strings.Contains(res.stderr, "records replayed") {
		t.Fatalf("no progress to the end on stderr: %q", res.stderr)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), "<svg") {
		t.Fatalf("the page: %v, %.200q", err, html)
	}
	again := runCmd(t, nil, "", "shadow", "report", "--records", recs)
	if again.err != nil || again.stdout != res.stdout {
		t.Fatalf("shadow report --records gives another report (err %v)", again.err)
	}
	// Nothing was published.
	for _, topic := range []string{defaultDecisions, defaultDLQ} {
		if got := testenv.ReadAll(t, k.Addrs(), topic); len(got) != 0 {
			t.Fatalf("the backtest published %d records to %s", len(got), topic)
		}
	}
}

// TestShadowReportFromTopic reads the records fenqid publishes.
func TestShadowReportFromTopic(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, shadow.DefaultTopic)
	at := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
	alert := func(id, user, rule, action, version string) events.Decision {
		return events.Decision{ID: id, Type: events.TypeDecisionAlert, Subject: user, Time: at,
			Data: events.DecisionData{UserID: user, CausationID: "p-" + user, Rule: rule, Action: action, ReasonCodes: []events.ReasonCode{}, PolicyVersion: version}}
	}
	var msgs []kafka.Message
	for _, r := range append(
		shadow.Pair("live-1", "cand-1", nil, []events.Decision{alert("d1", "u1", scoring.RuleNightLargePayment, "SMS_VERIFY", "cand-1")}),
		shadow.Pair("live-1", "cand-1", []events.Decision{alert("d2", "u2", scoring.RuleVelocity, "SMS_VERIFY", "live-1")}, nil)...) {
		m, err := shadow.Message("", r)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, kafka.Message{Key: []byte("u3"), Value: []byte(`{"not":"a record"}`)})
	testenv.Produce(t, k.Addrs(), shadow.DefaultTopic, msgs...)
	res := runCmd(t, nil, "", "shadow", "report", "--brokers", k.Addr())
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !strings.Contains(res.stdout, "1 / 0 / 1 / 1") && !strings.Contains(res.stdout, "0 / 0 / 1 / 1") {
		t.Fatalf("want one added and one removed record in the report")
	}
	if !strings.Contains(res.stderr, "2 records read") || !strings.Contains(res.stderr, "(1 unreadable)") {
		t.Fatalf("stderr: %q", res.stderr)
	}
}

func TestBacktestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backtest", "--from", "earliest"}, "--policy (the candidate) is required"},
		{[]string{"backtest", "--policy", "huabei"}, "--from is required"},
		{[]string{"backtest", "--policy", "nope", "--from", "earliest"}, `policy "nope" is neither a file nor a preset`},
		{[]string{"backtest", "--policy", "huabei", "--from", "-1h", "--to", "-2h"}, "is not after --from"},
		{[]string{"shadow"}, "want a subcommand: report"},
	} {
		res := runCmd(t, nil, "", tc.args...)
		if res.code() != 2 || !strings.Contains(res.err.Error()+res.stderr, tc.want) {
			t.Errorf("%v: exit %d, err %v; want %q", tc.args, res.code(), res.err, tc.want)
		}
	}
}
