package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/producers"
)

// deadLetterOf builds the dead letter fenqid writes for a record read from
// topic/partition@offset.
func deadLetterOf(t *testing.T, pub *producers.Publisher, topic string, partition int, offset int64, key, value string, cause error, field string) kafka.Message {
	t.Helper()
	m := pub.DeadLetterMessage(producers.DeadLetter{
		Msg: kafka.Message{Topic: topic, Partition: partition, Offset: offset, Key: []byte(key), Value: []byte(value),
			Headers: []kafka.Header{
				{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)},
				{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
			}},
		Err: cause, Field: field, At: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
	})
	m.Topic = "" // testenv.Produce names it
	return m
}

func TestDLQListAndReplay(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	// The dead-letter topic has one partition, as in docker-compose.yml
	// (testenv makes three).
	if err := k.CreateTopic(defaultDLQ, 1, nil); err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })

	// The original partition of u-1's payment is not where murmur2 would put
	// it: replay must return it to its partition all the same.
	hashed := kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte("u-1")}, 0, 1, 2)
	orig := (hashed + 1) % 3

	good := marshal(t, payment("pay-1", "u-1", 12345))
	badEvent := payment("pay-2", "u-1", 100)
	badEvent.Payment.Currency = "cny"
	bad := marshal(t, badEvent)
	_, decodeErr := events.Decoder{}.Decode([]byte("u-1"), nil, []byte(bad))
	var de *events.DecodeError
	if !errors.As(decodeErr, &de) {
		t.Fatalf("the bad payment decodes: %v", decodeErr)
	}
	loginValue := marshal(t, login("login-1", "u-5"))
	testenv.Produce(t, k.Addrs(), defaultDLQ,
		deadLetterOf(t, pub, defaultPayments, orig, 17, "u-1", good, errors.New("panic: handler failed"), ""),
		deadLetterOf(t, pub, defaultPayments, 0, 18, "u-1", bad, de, de.Field),
		deadLetterOf(t, pub, defaultLogins, 1, 4, "u-5", loginValue, errors.New("panic: handler failed"), ""),
		// A login written to the payments topic: fenqid refuses it there.
		deadLetterOf(t, pub, defaultPayments, 1, 19, "u-5", loginValue, errors.New("consumers: events of type ... do not belong"), "type"),
	)
	brokers := []string{"--brokers", k.Addr()}

	t.Run("list", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "list"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 4 {
			t.Fatalf("%d lines, want 4", len(lines))
		}
		for i, want := range []string{
			fmt.Sprintf(`fenqi.dlq/0@0 from=fenqi.payments/%d@17 failed_at=2025-03-01T10:00:00Z field=- error="panic: handler failed" key="u-1" value={"specversion":"1.0","id":"pay-1"`, orig),
			`fenqi.dlq/0@1 from=fenqi.payments/0@18 failed_at=2025-03-01T10:00:00Z field=data.currency error="events: field \"data.currency\": must be \"CNY\"" key="u-1" value={`,
			`fenqi.dlq/0@2 from=fenqi.logins/1@4 `,
		} {
			if !strings.HasPrefix(lines[i], want) {
				t.Errorf("line %d:\n%s\nwant prefix\n%s", i, lines[i], want)
			}
		}
		if !strings.HasSuffix(lines[0], "…") {
			t.Errorf("the preview is not cut: %s", lines[0])
		}

		r = runCmd(t, nil, "", append([]string{"dlq", "list", "--topic", defaultLogins, "--preview", "0"}, brokers...)...)
		if r.err != nil || strings.TrimSpace(r.stdout) != `fenqi.dlq/0@2 from=fenqi.logins/1@4 failed_at=2025-03-01T10:00:00Z field=- error="panic: handler failed" key="u-5"` {
			t.Errorf("--topic: %q, %v", r.stdout, r.err)
		}
	})

	t.Run("replay needs a selection", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--all", "--offset-from", "1"}} {
			r := runCmd(t, nil, "", append(append([]string{"dlq", "replay"}, brokers...), args...)...)
			if r.code() != 2 {
				t.Errorf("dlq replay %v: exit status %d, want 2", args, r.code())
			}
		}
	})

	t.Run("dry run", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "replay", "--all", "--dry-run"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !strings.Contains(r.stdout, "dry run: 4 selected, 2 would be replayed, 2 still invalid (skipped)") {
			t.Errorf("summary missing")
		}
		for _, topic := range []string{defaultPayments, defaultLogins} {
			if got := testenv.ReadAll(t, k.Addrs(), topic); len(got) != 0 {
				t.Errorf("%s: %d records after a dry run", topic, len(got))
			}
		}
	})

	// The subtests below run in order: each sees what the previous replayed.
	t.Run("replay a range", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "replay", "--offset-from", "0", "--offset-to", "1"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !strings.Contains(r.stdout, "2 selected, 1 replayed, 1 still invalid (skipped), 0 without a usable origin") {
			t.Errorf("summary missing")
		}
		if !strings.Contains(r.stderr, `fenqi.dlq/0@1: skipped: still invalid: events: field "data.currency"`) {
			t.Errorf("the still invalid dead letter is not reported")
		}
		got := testenv.ReadAll(t, k.Addrs(), defaultPayments)
		if len(got) != 1 {
			t.Fatalf("payments: %d records, want 1", len(got))
		}
		m := got[0]
		if m.Partition != orig || string(m.Key) != "u-1" || string(m.Value) != good {
			t.Errorf("replayed to partition %d (want %d), key %q, value %s", m.Partition, orig, m.Key, m.Value)
		}
		var keys []string
		for _, h := range m.Headers {
			keys = append(keys, h.Key)
		}
		if !slices.Equal(keys, []string{"content-type", "traceparent"}) {
			t.Errorf("replayed headers %v, want content-type and traceparent only", keys)
		}
		decode(t, m)
	})

	t.Run("replay by origin topic", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "replay", "--all", "--topic", defaultLogins}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := testenv.ReadAll(t, k.Addrs(), defaultLogins)
		if len(got) != 1 || got[0].Partition != 1 || string(got[0].Value) != loginValue {
			t.Fatalf("logins: %+v", got)
		}
		if got := testenv.ReadAll(t, k.Addrs(), defaultPayments); len(got) != 1 {
			t.Errorf("payments: %d records, want still 1", len(got))
		}
	})

	t.Run("type on the wrong topic", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "replay", "--offset-from", "3"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !strings.Contains(r.stderr, `fenqi.dlq/0@3: skipped: still invalid: events of type "fenqi.login.v1" do not belong on topic "fenqi.payments"`) {
			t.Errorf("not reported as still invalid")
		}
		if !strings.Contains(r.stdout, "1 selected, 0 replayed, 1 still invalid") {
			t.Errorf("summary missing")
		}
	})

	t.Run("force", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"dlq", "replay", "--offset-from", "1", "--offset-to", "1", "--force"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := testenv.ReadAll(t, k.Addrs(), defaultPayments)
		if len(got) != 2 {
			t.Fatalf("payments: %d records, want 2", len(got))
		}
		var forced []kafka.Message
		for _, m := range got {
			if string(m.Value) == bad {
				forced = append(forced, m)
			}
		}
		if len(forced) != 1 || forced[0].Partition != 0 {
			t.Errorf("the forced dead letter: %+v", forced)
		}
	})
}

func TestPreviewOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", `{"a":1}`, 10, `{"a":1}`},
		{"cut", `{"abc":1}`, 4, `{"ab…`},
		{"exact", `abcd`, 4, `abcd`},
		{"white space", "{\n  \"a\":\t1\n}", 20, `{ "a": 1 }`},
		{"control", "a\x00b", 10, `a'\x00'b`},
		{"invalid utf-8", "a\xffb", 10, `a\xffb`},
		{"chinese", "分期付款", 2, "分期…"},
		{"empty", "", 10, `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := previewOf([]byte(tt.in), tt.n); got != tt.want {
				t.Errorf("previewOf(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

// A dead letter's fenqi-topic header is data, not a destination: replay
// sends only to the configured input topics, and never a dead letter
// whose value was cut to a prefix.
func TestDLQReplayOnlyToInputTopics(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, append(inputTopicNames, defaultDLQ, defaultDecisions)...)
	pub, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	good := marshal(t, payment("pay-1", "u-1", 12345))
	truncated := deadLetterOf(t, pub, defaultPayments, 0, 5, "u-1", good, errors.New("too large"), "value")
	truncated.Headers = append(truncated.Headers, kafka.Header{Key: producers.HeaderTruncated, Value: []byte("1040000")})
	testenv.Produce(t, k.Addrs(), defaultDLQ,
		deadLetterOf(t, pub, defaultDecisions, 0, 3, "u-1", good, errors.New("panic"), ""),
		deadLetterOf(t, pub, "attacker.topic", 0, 3, "u-1", good, errors.New("panic"), ""),
		truncated,
	)
	r := runCmd(t, nil, "", "dlq", "replay", "--all", "--brokers", k.Addr())
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stdout, "3 selected, 0 replayed, 0 still invalid (skipped), 3 without a usable origin") {
		t.Errorf("summary: %s", r.stdout)
	}
	for _, want := range []string{`header ("fenqi.decisions") is not one of the input topics`, `header ("attacker.topic") is not one of the input topics`, "only a prefix of the record was kept"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, topic := range []string{defaultPayments, defaultDecisions} {
		if got := testenv.ReadAll(t, k.Addrs(), topic); len(got) != 0 {
			t.Errorf("%s: %d records after the replay", topic, len(got))
		}
	}
}
