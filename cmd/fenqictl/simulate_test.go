package main

import (
	"strings"
	"testing"

	"github.com/fenqi/fenqi/internal/testenv"
)

// simulate sends events that fenqid accepts, to their topics.
func TestSimulate(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	r := runCmd(t, nil, "", "simulate", "--brokers", k.Addr(), "--users", "40", "--rate", "400", "--events", "300",
		"--duration", "30s", "--seed", "7", "--malformed-ratio", "0", "--progress", "100ms")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stderr, "simulate: sent 300 events in ") {
		t.Errorf("no final count on stderr")
	}
	if !strings.Contains(r.stderr, "events sent, ") {
		t.Errorf("no progress line on stderr")
	}
	total := 0
	for _, topic := range inputTopicNames {
		got := testenv.ReadAll(t, k.Addrs(), topic)
		total += len(got)
		for _, m := range got {
			e := decode(t, m)
			if want := (inputTopics{defaultPayments, defaultLogins, defaultRepayments, defaultProfiles, defaultOperator}).of(e.Type); want != topic {
				t.Errorf("%s event %s on %s", e.Type, e.ID, topic)
			}
			if string(m.Key) != e.Subject {
				t.Errorf("%s: key %q, subject %q", e.ID, m.Key, e.Subject)
			}
		}
		if len(got) == 0 && topic != defaultOperator { // the simulator writes no operator events
			t.Errorf("%s: no events", topic)
		}
	}
	if total != 300 {
		t.Errorf("%d events on the topics, want 300", total)
	}
}

// A short --duration ends the run by itself.
func TestSimulateDuration(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	r := runCmd(t, nil, "", "simulate", "--brokers", k.Addr(), "--users", "10", "--rate", "100", "--duration", "500ms", "--progress", "0")
	if r.err != nil {
		t.Fatal(r.err)
	}
	total := 0
	for _, topic := range inputTopicNames {
		total += len(testenv.ReadAll(t, k.Addrs(), topic))
	}
	if total == 0 {
		t.Error("no events sent")
	}
}
