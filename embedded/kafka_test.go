package embedded_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/internal/testenv"
)

func startKafka(t *testing.T, cfg embedded.KafkaConfig) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartKafka: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// consumeAndCommit reads n messages of topic in consumer group group with
// kafka-go, commits them and leaves the group.
func consumeAndCommit(t *testing.T, addrs []string, group, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     addrs,
		GroupID:     group,
		Topic:       topic,
		MinBytes:    1,
		MaxBytes:    10 << 20,
		MaxWait:     50 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
	})
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("close reader: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []kafka.Message
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("group %s: fetched %d of %d: %v", group, len(got), n, err)
		}
		got = append(got, m)
	}
	if err := r.CommitMessages(ctx, got...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return got
}

func committed(t *testing.T, addrs []string, group, topic string, parts int) map[int]int64 {
	t.Helper()
	ps := make([]int, parts)
	for i := range ps {
		ps[i] = i
	}
	// A Transport of its own: kafka.DefaultTransport pools connections by
	// address, and one pooled before a broker restart fails after it.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group,
		Topics:  map[string][]int{topic: ps},
	})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("offset fetch: %v", resp.Error)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch %s/%d: %v", topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

func TestStartKafkaProduceConsume(t *testing.T) {
	k := startKafka(t, embedded.KafkaConfig{Addr: "127.0.0.1:0", Topics: []string{"fenqi.payments"}})
	addrs := k.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs = %v, want one broker", addrs)
	}
	if _, port, _ := net.SplitHostPort(addrs[0]); port == "0" {
		t.Fatalf("Addrs = %v: port 0 not resolved", addrs)
	}
	if n := len(k.Cluster().PartitionInfos("fenqi.payments")); n != int(embedded.DefaultPartitions) {
		t.Fatalf("partitions = %d, want %d", n, embedded.DefaultPartitions)
	}

	testenv.Produce(t, addrs, "fenqi.payments", kafka.Message{Key: []byte("u000001"), Value: []byte(`{"x":1}`)})
	got := consumeAndCommit(t, addrs, "g1", "fenqi.payments", 1)
	if string(got[0].Key) != "u000001" || string(got[0].Value) != `{"x":1}` {
		t.Fatalf("got %q=%q", got[0].Key, got[0].Value)
	}
}

func TestStartKafkaExactAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// The address is taken: StartKafka must say so.
	if k, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Addr: addr}); err == nil {
		k.Close()
		t.Fatalf("StartKafka on a taken address %s succeeded", addr)
	}
	ln.Close()
	k := startKafka(t, embedded.KafkaConfig{Addr: addr, Topics: []string{"t"}, Partitions: 2})
	if got := k.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("Addrs = %v, want [%s]", got, addr)
	}
	if n := len(k.Cluster().PartitionInfos("t")); n != 2 {
		t.Fatalf("partitions = %d, want 2", n)
	}
}

func TestStartKafkaBadAddr(t *testing.T) {
	if _, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{Addr: "nonsense"}); err == nil {
		t.Fatal("StartKafka with a bad address succeeded")
	}
}

func TestKafkaDataDirSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	const topic = "fenqi.payments"
	k1, err := embedded.StartKafka(context.Background(), embedded.KafkaConfig{
		Addr: "127.0.0.1:0", DataDir: dir, Topics: []string{topic}, Partitions: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := k1.Addrs()[0]
	var msgs []kafka.Message
	for i := range 6 {
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "u%06d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	testenv.Produce(t, k1.Addrs(), topic, msgs...)
	consumeAndCommit(t, k1.Addrs(), "fenqi-processor", topic, len(msgs))
	before := committed(t, k1.Addrs(), "fenqi-processor", topic, 3)
	var sum int64
	for _, o := range before {
		sum += o
	}
	if sum != int64(len(msgs)) {
		t.Fatalf("committed before restart = %v (sum %d), want sum %d", before, sum, len(msgs))
	}
	k1.Close()

	// Restart on the same address and data dir, asking for one more topic:
	// kfake skips SeedTopics when it reloads a data dir, StartKafka must
	// still create it.
	var logs []string
	k2 := startKafka(t, embedded.KafkaConfig{
		Addr: addr, DataDir: dir, Topics: []string{topic, "fenqi.logins"}, Partitions: 3,
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
	})
	if n := len(k2.Cluster().PartitionInfos(topic)); n != 3 {
		t.Fatalf("after restart %s has %d partitions, want 3", topic, n)
	}
	if n := len(k2.Cluster().PartitionInfos("fenqi.logins")); n != 3 {
		t.Fatalf("after restart fenqi.logins has %d partitions, want 3", n)
	}
	after := committed(t, k2.Addrs(), "fenqi-processor", topic, 3)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("committed offsets after restart = %v, want %v", after, before)
	}
	if got := testenv.ReadAll(t, k2.Addrs(), topic); len(got) != len(msgs) {
		t.Fatalf("after restart %s holds %d records, want %d", topic, len(got), len(msgs))
	}
	// The group resumes after its commits: a new message is the next one read.
	testenv.Produce(t, k2.Addrs(), topic, kafka.Message{Key: []byte("u000009"), Value: []byte("new")})
	if got := consumeAndCommit(t, k2.Addrs(), "fenqi-processor", topic, 1); string(got[0].Value) != "new" {
		t.Fatalf("group resumed at %q, want the new message", got[0].Value)
	}
	if len(logs) != 0 {
		t.Fatalf("unexpected logs: %q", logs)
	}
	k2.Close()

	// A third start asking for another partition count keeps the data and
	// says so.
	logs = nil
	startKafka(t, embedded.KafkaConfig{
		Addr: "127.0.0.1:0", DataDir: dir, Topics: []string{topic}, Partitions: 6,
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
	})
	if len(logs) != 1 {
		t.Fatalf("logs = %q, want one line about the partition count", logs)
	}
}

func TestStartKafkaTopicConfigs(t *testing.T) {
	k := startKafka(t, embedded.KafkaConfig{
		Addr: "127.0.0.1:0", Topics: []string{"a", "b"}, Partitions: 2,
		TopicConfigs: map[string]string{"retention.ms": "3600000"},
	})
	for _, topic := range []string{"a", "b"} {
		info := k.Cluster().TopicInfo(topic)
		if info == nil {
			t.Fatalf("no topic %s", topic)
		}
		if v := info.Configs["retention.ms"]; v == nil || *v != "3600000" {
			t.Fatalf("%s retention.ms = %v", topic, v)
		}
		if n := len(k.Cluster().PartitionInfos(topic)); n != 2 {
			t.Fatalf("%s has %d partitions", topic, n)
		}
	}
}
