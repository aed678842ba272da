package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
)

func decision(t *testing.T, typ, user, cause string, at time.Time, codes ...string) kafka.Message {
	t.Helper()
	d := events.Decision{
		ID: events.DecisionID(typ, cause), Type: typ, Subject: user, Time: at,
		Data: events.DecisionData{UserID: user, CausationID: cause, Rule: "rule." + cause, Action: "act-" + cause, PolicyVersion: "test-1"},
	}
	for _, c := range codes {
		d.Data.ReasonCodes = append(d.Data.ReasonCodes, events.ReasonCode{Code: c, Message: "m"})
	}
	v, err := events.MarshalDecision(d)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(user), Value: v,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}}
}

func TestTailFromBeginning(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, defaultDecisions)
	at := time.Date(2025, 3, 1, 18, 2, 3, 612e6, time.UTC)
	// One user: one partition, so the order is the publishing order.
	testenv.Produce(t, k.Addrs(), defaultDecisions,
		decision(t, events.TypeDecisionAlert, "u-1", "pay-1", at, "FENQI_LATE_NIGHT_LARGE"),
		decision(t, events.TypeDecisionFrozen, "u-1", "due-1", at.Add(time.Second), "FENQI_OVERDUE_NOW", "WECHAT_CREDIT_401"),
		decision(t, events.TypeDecisionUnfrozen, "u-1", "paid-1", at.Add(2*time.Second)),
	)

	r := runCmd(t, nil, "", "tail", "--brokers", k.Addr(), "--from-beginning", "--n", "3", "--timezone", "Asia/Shanghai")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []string{
		"2025-03-02T02:02:03.612+08:00 alert    user=u-1 action=act-pay-1 rule=rule.pay-1 reasons=FENQI_LATE_NIGHT_LARGE cause=pay-1",
		"2025-03-02T02:02:04.612+08:00 frozen   user=u-1 action=act-due-1 rule=rule.due-1 reasons=FENQI_OVERDUE_NOW,WECHAT_CREDIT_401 cause=due-1",
		"2025-03-02T02:02:05.612+08:00 unfrozen user=u-1 action=act-paid-1 rule=rule.paid-1 reasons=- cause=paid-1",
	}
	if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = runCmd(t, nil, "", "tail", "--brokers", k.Addr(), "--from-beginning", "--n", "1", "--json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	d, err := events.DecodeDecision([]byte(strings.TrimSpace(r.stdout)))
	if err != nil || d.Data.CausationID != "pay-1" {
		t.Errorf("--json printed %q: %+v, %v", r.stdout, d, err)
	}
}

// By default tail starts at the end: only what is published after it
// started is printed.
func TestTailFromEnd(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, defaultDecisions)
	now := time.Now()
	testenv.Produce(t, k.Addrs(), defaultDecisions, decision(t, events.TypeDecisionAlert, "u-1", "old-1", now))

	c, out, errb := newTestCLI(nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, []string{"tail", "--brokers", k.Addr(), "--n", "2", "--json"}) }()
	waitForOutput(t, errb, "tail: reading fenqi.decisions (3 partitions) from the end", done)
	testenv.Produce(t, k.Addrs(), defaultDecisions,
		decision(t, events.TypeDecisionQuota, "u-2", "new-1", now),
		decision(t, events.TypeDecisionOverdue, "u-3", "new-2", now))
	if err := <-done; err != nil {
		t.Fatalf("tail: %v\n%s", err, errb)
	}
	causes := map[string]bool{}
	for line := range strings.Lines(out.String()) {
		var ce struct {
			Data struct {
				CausationID string `json:"causation_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ce); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		causes[ce.Data.CausationID] = true
	}
	if len(causes) != 2 || !causes["new-1"] || !causes["new-2"] {
		t.Errorf("printed decisions caused by %v, want new-1 and new-2", causes)
	}
}

// Interrupting tail is its normal end.
func TestTailInterrupted(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, defaultDecisions)
	c, _, errb := newTestCLI(nil, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, []string{"tail", "--brokers", k.Addr()}) }()
	waitForOutput(t, errb, "tail: reading", done)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interrupted tail returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop within 10s of the interrupt")
	}
}
