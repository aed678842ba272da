package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/internal/testenv"
)

// groupReader returns a consumer-group reader of topic, as fenqid's (from
// the oldest record when the group has no offset; each ReadMessage commits
// synchronously). It joins the group on its first fetch.
func groupReader(t *testing.T, addrs []string, group, topic string) *kafka.Reader {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           addrs,
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           100 * time.Millisecond,
		CommitInterval:    0,
		HeartbeatInterval: 200 * time.Millisecond,
	})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// consume reads n records with r (committing each) and returns them.
func consume(t *testing.T, r *kafka.Reader, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of %d records: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// committedOffsets returns group's committed offset of every partition of
// topic that has one.
func committedOffsets(t *testing.T, addrs []string, group, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addrs...), Transport: tr}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("offset fetch of %s: %v", group, err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch of %s on %s/%d: %v", group, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// keyOn returns a key murmur2 puts on a partition (of three) other than
// those given.
func keyOn(not ...int) (string, int) {
	for i := 0; ; i++ {
		k := fmt.Sprintf("u-%d", i)
		p := kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2)
		if !slices.Contains(not, p) {
			return k, p
		}
	}
}

func wantOffsets(t *testing.T, got, want map[int]int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("committed offsets %v, want %v", got, want)
	}
}

func TestRewind(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	const group = "fenqi-rewind"

	// Ten records a minute apart on partition p, from 30 minutes ago; four
	// older ones on partition q; nothing on the third partition.
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Millisecond)
	keyP, p := keyOn()
	keyQ, q := keyOn(p)
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, kafka.Message{Key: []byte(keyP), Value: fmt.Appendf(nil, "p-%d", i), Time: base.Add(time.Duration(i) * time.Minute)})
	}
	for i := range 4 {
		msgs = append(msgs, kafka.Message{Key: []byte(keyQ), Value: fmt.Appendf(nil, "q-%d", i), Time: base.Add(-time.Hour + time.Duration(i)*time.Minute)})
	}
	testenv.Produce(t, k.Addrs(), defaultPayments, msgs...)

	// fenqid consumed and committed everything, then was stopped.
	r := groupReader(t, k.Addrs(), group, defaultPayments)
	consume(t, r, len(msgs))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 10, q: 4})

	brokers := []string{"--brokers", k.Addr()}
	moved := fmt.Sprintf("%s[%d]: 10 -> 5 (replays 5)\n", defaultPayments, p)
	keptQ := fmt.Sprintf("%s[%d]: 4 unchanged", defaultPayments, q)

	// The subtests run in order: each sees the offsets the previous left.
	t.Run("dry run", func(t *testing.T) {
		at := base.Add(4*time.Minute + 30*time.Second).In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
		r := runCmd(t, nil, "", append([]string{"rewind", "--group", group, "--to", at, "--dry-run"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, want := range []string{
			moved, keptQ,
			fmt.Sprintf("%s[%d]: unchanged (no committed offset", defaultPayments, 3-p-q),
			fmt.Sprintf("%s[0]: unchanged (no committed offset", defaultLogins),
			"rewind: dry run, nothing was changed: 1 of 15 partitions would move back, 5 records would be replayed",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q", want)
			}
		}
		wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 10, q: 4})
	})

	t.Run("rewind", func(t *testing.T) {
		// A duration back from now, and the group from FENQI_GROUP_ID: record
		// 5 is 25 minutes old, record 4 26.
		r := runCmd(t, map[string]string{"FENQI_GROUP_ID": group}, "", append([]string{"rewind", "--to", "-25m30s"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, want := range []string{
			fmt.Sprintf("rewind: group %q to the first record at or after", group),
			moved, keptQ,
			"rewind: 1 of 15 partitions moved back, 5 records to replay",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q", want)
			}
		}
		wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 5, q: 4})
	})

	t.Run("never forward", func(t *testing.T) {
		at := base.Add(7*time.Minute + 30*time.Second).UTC().Format(time.RFC3339Nano)
		r := runCmd(t, nil, "", append([]string{"rewind", "--group", group, "--to", at}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, want := range []string{
			fmt.Sprintf("%s[%d]: 5 unchanged (--to points at 8: never moved forward)", defaultPayments, p),
			keptQ,
			"rewind: nothing to change: 0 of 15 partitions move back",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q", want)
			}
		}
		wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 5, q: 4})
	})

	t.Run("the group resumes there", func(t *testing.T) {
		r := groupReader(t, k.Addrs(), group, defaultPayments)
		got := consume(t, r, 5)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for i, m := range got {
			if m.Partition != p || m.Offset != int64(5+i) || string(m.Value) != fmt.Sprintf("p-%d", 5+i) {
				t.Errorf("record %d: %s/%d@%d %q, want partition %d offset %d", i, m.Topic, m.Partition, m.Offset, m.Value, p, 5+i)
			}
		}
		wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 10, q: 4})
	})

	t.Run("earliest", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"rewind", "--group", group, "--to", "earliest"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, want := range []string{
			fmt.Sprintf("rewind: group %q to the oldest record kept", group),
			fmt.Sprintf("%s[%d]: 10 -> 0 (replays 10)", defaultPayments, p),
			fmt.Sprintf("%s[%d]: 4 -> 0 (replays 4)", defaultPayments, q),
			"rewind: 2 of 15 partitions moved back, 14 records to replay",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q", want)
			}
		}
		wantOffsets(t, committedOffsets(t, k.Addrs(), group, defaultPayments), map[int]int64{p: 0, q: 0})
	})

	t.Run("unknown group", func(t *testing.T) {
		r := runCmd(t, nil, "", append([]string{"rewind", "--group", "no-such-group", "--to", "earliest"}, brokers...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !strings.Contains(r.stderr, "no committed offset on these topics") || !strings.Contains(r.stdout, "0 of 15 partitions move back") {
			t.Errorf("an unknown group is not reported")
		}
	})
}

func TestRewindRefusesActiveGroup(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	const group = "fenqi-active"
	testenv.Produce(t, k.Addrs(), defaultLogins,
		kafka.Message{Key: []byte("u-1"), Value: []byte("a")},
		kafka.Message{Key: []byte("u-1"), Value: []byte("b")})
	r := groupReader(t, k.Addrs(), group, defaultLogins)
	consume(t, r, 1) // it has joined and committed offset 1

	brokers := []string{"--brokers", k.Addr(), "--group", group}
	res := runCmd(t, nil, "", append([]string{"rewind", "--to", "earliest"}, brokers...)...)
	if res.code() != 1 {
		t.Fatalf("exit status %d, want 1", res.code())
	}
	if msg := res.err.Error(); !strings.Contains(msg, "stop every fenqid of the group first") || !strings.Contains(msg, "with 1 active member (") {
		t.Errorf("error %q", msg)
	}
	if res.stdout != "" {
		t.Errorf("a refused rewind printed a plan")
	}

	// A dry run still shows the plan, with a warning.
	res = runCmd(t, nil, "", append([]string{"rewind", "--to", "earliest", "--dry-run"}, brokers...)...)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !strings.Contains(res.stderr, "warning") || !strings.Contains(res.stdout, "1 of 15 partitions would move back, 1 records would be replayed") {
		t.Errorf("dry run while active")
	}

	// Once the member has left, the rewind goes through.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	res = runCmd(t, nil, "", append([]string{"rewind", "--to", "earliest"}, brokers...)...)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := committedOffsets(t, k.Addrs(), group, defaultLogins); len(got) != 1 || got[kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte("u-1")}, 0, 1, 2)] != 0 {
		t.Errorf("committed offsets %v after the rewind", got)
	}
}

func TestRewindUsage(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: a usage mistake is found before any connection.
	brokers := []string{"--brokers", "127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "say where to with --to"},
		{[]string{"--to", "yesterday"}, "want an RFC 3339 time"},
		{[]string{"--to", "10m"}, "must be negative (-10m"},
		{[]string{"--to", "0s"}, "must be negative"},
		{[]string{"--to", "2025-03-01 10:00:00"}, "want an RFC 3339 time"},
		{[]string{"--to", time.Now().Add(time.Hour).Format(time.RFC3339)}, "in the future"},
		{[]string{"--to", "1969-12-31T23:59:59Z"}, "before 1970"},
		{[]string{"--to", "earliest", "extra"}, `unexpected argument "extra"`},
		{[]string{"--to", "earliest", "--group", ""}, "--group must not be empty"},
		{[]string{"--to", "earliest", "--topic-logins", defaultPayments}, "are both"},
	} {
		r := runCmd(t, nil, "", append(append([]string{"rewind"}, brokers...), tc.args...)...)
		if r.code() != 2 {
			t.Errorf("rewind %q: exit status %d, want 2", tc.args, r.code())
		}
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("rewind %q: error %v, want %q", tc.args, r.err, tc.want)
		}
	}
	if r := runCmd(t, nil, "", "rewind", "--help"); r.code() != 0 || !strings.Contains(r.stderr, "never moved forward") {
		t.Errorf("rewind --help: exit status %d\n%s", r.code(), r.stderr)
	}
}

func TestParseRewindTo(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]rewindTo{
		"earliest":                  {earliest: true},
		"-10m":                      {at: now.Add(-10 * time.Minute)},
		"-1h30m":                    {at: now.Add(-90 * time.Minute)},
		"2025-03-01T17:55:00+08:00": {at: now.Add(-5 * time.Minute)},
		"2025-03-01T09:59:59.250Z":  {at: now.Add(-750 * time.Millisecond)},
		" 2025-03-01T09:00:00Z ":    {at: now.Add(-time.Hour)},
		"1970-01-01T00:00:00Z":      {at: time.Unix(0, 0)},
	} {
		got, err := parseRewindTo(in, now)
		if err != nil || got.earliest != want.earliest || !got.at.Equal(want.at) {
			t.Errorf("parseRewindTo(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}
