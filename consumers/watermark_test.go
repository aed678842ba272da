package consumers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/retry"
)

// wmEnv is a broker with the repayments topic, a group that commits
// offsets by hand, and a clock.
type wmEnv struct {
	t     *testing.T
	kafka *testenv.KafkaCluster
	mu    sync.Mutex
	now   time.Time
	wm    *consumers.Watermark
}

const wmGroup = "wm-test"

func newWMEnv(t *testing.T, now time.Time) *wmEnv {
	t.Helper()
	e := &wmEnv{t: t, kafka: testenv.Kafka(t, events.TopicRepayments), now: now}
	wm, err := consumers.NewWatermark(consumers.WatermarkConfig{Brokers: e.kafka.Addrs(), GroupID: wmGroup, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.wm = wm
	return e
}

func (e *wmEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }

// produce writes one record per key, stamped at, and returns where each
// landed (by key).
func (e *wmEnv) produce(at time.Time, keys ...string) map[string]kafka.Message {
	e.t.Helper()
	msgs := make([]kafka.Message, len(keys))
	for i, k := range keys {
		msgs[i] = kafka.Message{Key: []byte(k), Value: []byte(`{}`), Time: at}
	}
	testenv.Produce(e.t, e.kafka.Addrs(), events.TopicRepayments, msgs...)
	out := map[string]kafka.Message{}
	for _, m := range testenv.ReadAll(e.t, e.kafka.Addrs(), events.TopicRepayments) {
		if m.Time.Equal(at) {
			out[string(m.Key)] = m
		}
	}
	if len(out) != len(keys) {
		e.t.Fatalf("read back %d of the %d records stamped %v", len(out), len(keys), at)
	}
	return out
}

// commit commits offset for a partition, as the group's consumer does
// after processing the records below it.
func (e *wmEnv) commit(partition int, offset int64) {
	e.t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(e.kafka.Addrs()...), Transport: &kafka.Transport{}}
	resp, err := c.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: wmGroup, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{events.TopicRepayments: {{Partition: partition, Offset: offset}}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				e.t.Fatalf("commit %d/%d: %v", p.Partition, offset, p.Error)
			}
		}
	}
}

func (e *wmEnv) read() consumers.WatermarkReading {
	e.t.Helper()
	r, err := e.wm.Read(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// The watermark is the clock while nothing waits, the earliest timestamp
// of the first unprocessed record of each partition otherwise: counted
// from a partition's first record while the group never committed it, from
// the committed offset once it did.
func TestWatermark(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 6, 10, 0, 0, 0, time.UTC)
	e := newWMEnv(t, now)

	if r := e.read(); !r.At.Equal(now) || r.Behind != 0 || r.Lagging != 0 || r.Lag() != 0 {
		t.Fatalf("an empty topic: %+v, want the clock and nothing behind", r)
	}

	// Two records of one user (one partition), one of another user
	// (find one that lands elsewhere), none processed.
	t1, t2, t3 := now.Add(-5*24*time.Hour), now.Add(-4*24*time.Hour), now.Add(-3*24*time.Hour)
	a1 := e.produce(t1, "ann")["ann"]
	a2 := e.produce(t2, "ann")["ann"]
	var other string
	for _, k := range []string{"bob", "cai", "dan", "eve", "fu", "gao", "hu"} {
		if testPartition(k) != a1.Partition {
			other = k
			break
		}
	}
	b := e.produce(t3, other)[other]
	if a1.Partition != a2.Partition || b.Partition == a1.Partition {
		t.Fatalf("partitions: %d %d %d", a1.Partition, a2.Partition, b.Partition)
	}
	r := e.read()
	if !r.At.Equal(t1) || r.Behind != 3 || r.Lagging != 2 || r.Lag() != now.Sub(t1) {
		t.Fatalf("never committed: %+v, want the first record's %v, 3 behind on 2 partitions", r, t1)
	}
	if last := e.wm.Last(); last != r {
		t.Fatalf("Last %+v, want the reading %+v", last, r)
	}

	// ann's first record processed: the earliest first unprocessed record
	// is now ann's second.
	e.commit(a1.Partition, a1.Offset+1)
	if r := e.read(); !r.At.Equal(t2) || r.Behind != 2 || r.Lagging != 2 {
		t.Fatalf("one record processed: %+v, want %v, 2 behind", r, t2)
	}
	// ann's partition done: the other user's record holds the watermark.
	e.commit(a1.Partition, a2.Offset+1)
	if at, err := e.wm.At(context.Background()); err != nil || !at.Equal(t3) {
		t.Fatalf("At = %v, %v; want %v", at, err, t3)
	}
	// All processed: the clock.
	e.commit(b.Partition, b.Offset+1)
	if r := e.read(); !r.At.Equal(now) || r.Behind != 0 || r.Lagging != 0 {
		t.Fatalf("all processed: %+v, want the clock", r)
	}

	// A record stamped ahead of our clock (a producer's clock ahead)
	// caps at the clock.
	ahead := e.produce(now.Add(time.Hour), "ann")["ann"]
	if r := e.read(); !r.At.Equal(now) || r.Behind != 1 {
		t.Fatalf("a record stamped ahead: %+v, want the clock, 1 behind", r)
	}
	e.commit(ahead.Partition, ahead.Offset+1)
}

// The watermark of a group that a real consumer (the pipeline) commits:
// behind while records wait, the clock once they are processed.
func TestWatermarkFollowsThePipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wm, err := consumers.NewWatermark(consumers.WatermarkConfig{Brokers: e.kafka.Addrs(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	due := events.Event{ID: "wd1", Type: events.TypeRepaymentDue, Source: "test", Subject: "ivy", Time: now.Add(-time.Hour),
		Due: &events.RepaymentDue{UserID: "ivy", BillID: "b1", AmountFen: 100, DueAt: now.Add(24 * time.Hour)}}
	m := record(t, due)
	m.Time = now.Add(-time.Hour)
	testenv.Produce(t, e.kafka.Addrs(), events.TopicRepayments, m)
	if at, err := wm.At(context.Background()); err != nil || !at.Equal(now.Add(-time.Hour)) {
		t.Fatalf("before the consumer runs: %v, %v; want the record's time", at, err)
	}
	stop := e.start(t, nil)
	waitFor(t, "the watermark at the clock", func() bool {
		r, err := wm.Read(context.Background())
		return err == nil && r.Behind == 0 && r.At.Equal(now)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestNewWatermarkNeedsBrokers(t *testing.T) {
	t.Parallel()
	if _, err := consumers.NewWatermark(consumers.WatermarkConfig{}); err == nil {
		t.Fatal("no brokers accepted")
	}
}

// An unreachable broker is a transient error (the jobs retry it).
func TestWatermarkBrokerDown(t *testing.T) {
	t.Parallel()
	wm, err := consumers.NewWatermark(consumers.WatermarkConfig{Brokers: []string{testenv.ClosedAddr(t)}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := wm.Read(ctx); err == nil {
		t.Fatal("no error with the broker down")
	} else if !retry.Retryable(err) {
		t.Fatalf("not retryable: %v", err)
	}
}

// testPartition is the partition testenv.Produce's murmur2 balancer picks
// for key among testenv.DefaultPartitions.
func testPartition(key string) int {
	parts := make([]int, testenv.DefaultPartitions)
	for i := range parts {
		parts[i] = i
	}
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(key)}, parts...)
}
