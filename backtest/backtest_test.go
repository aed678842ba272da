package backtest_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/backtest"
	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/simulator"
)

// history records a simulated history (40 users, 90 days, then refreshed
// profiles and some live traffic) on the input topics, and returns how
// many records it wrote.
func history(t *testing.T, k *testenv.KafkaCluster, now time.Time) int {
	t.Helper()
	var sc simulator.Config
	sc.Users, sc.Seed, sc.HistoryDays, sc.MalformedRatio = 40, 11, 90, 0.05
	sc.Now = func() time.Time { return now }
	sim := simulator.New(sc)
	byTopic := map[string][]kafka.Message{}
	n := 0
	for live := 0; live < 300; n++ {
		if !sim.InHistory() {
			live++
		}
		topic, key, value := sim.Next()
		byTopic[topic] = append(byTopic[topic], kafka.Message{Key: key, Value: value})
	}
	for topic, msgs := range byTopic {
		testenv.Produce(t, k.Addrs(), topic, msgs...)
	}
	return n
}

// candidate is the wechat preset with a lower large-payment threshold and
// other weights: it changes alerts and quotas.
func candidate(t *testing.T) (live, cand *policy.Policy) {
	t.Helper()
	live, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	c := *live
	c.Version = "wechat-candidate"
	c.Risk.LargePaymentFen = 100_000
	w := c.Quota.Weights
	w.PayScore, w.Stability = w.PayScore+0.1, w.Stability-0.1
	c.Quota.Weights = w
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return live, &c
}

// keys reads every key of Redis with its type and value as text.
func keys(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	ks, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// groupOffsets sums a group's committed offsets on the input topics (0:
// none committed).
func groupOffsets(t *testing.T, c *kafka.Client, group string) int64 {
	t.Helper()
	topics := map[string][]int{}
	for _, topic := range consumers.DefaultTopics().List() {
		for p := range testenv.DefaultPartitions {
			topics[topic] = append(topics[topic], int(p))
		}
	}
	resp, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, ps := range resp.Topics {
		for _, p := range ps {
			n += max(p.CommittedOffset, 0)
		}
	}
	return n
}

func TestBacktestIsDeterministicAndTouchesNothingLive(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, append(consumers.DefaultTopics().List(), "fenqi.decisions", "fenqi.dlq")...)
	rdb := testenv.Redis(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	n := history(t, k, now)
	// A live fenqid's keys, in the same Redis: the backtest must leave them.
	for _, kv := range [][2]string{{"{u:u000001}", "live state"}, {"{fenqi:timers}", "live timers"}} {
		if err := rdb.Set(ctx, kv[0], kv[1], 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := keys(t, rdb)

	live, cand := candidate(t)
	client := &kafka.Client{Addr: kafka.TCP(k.Addrs()...)}
	run := func(prefix string) *backtest.Result {
		t.Helper()
		ranges, err := backtest.Plan(ctx, client, consumers.DefaultTopics().List(), time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var last backtest.Progress
		group := "fenqi-backtest-" + prefix
		var committed int64 // the most records the progress group was seen to have passed
		res, err := backtest.Run(ctx, backtest.Config{
			Brokers: k.Addrs(), Open: backtest.PartitionReader(k.Addrs(), nil), Ranges: ranges,
			Live: live, Candidate: cand, Redis: rdb, Prefix: prefix, Client: client, Group: group,
			Progress: func(p backtest.Progress) {
				last = p
				committed = max(committed, groupOffsets(t, client, group))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if committed == 0 || committed > int64(n) {
			t.Fatalf("the progress group %s was seen at %d records of %d", group, committed, n)
		}
		if got := groupOffsets(t, client, group); got != 0 {
			t.Fatalf("the progress group %s is left with %d records committed", group, got)
		}
		if !last.Done || last.Records != int64(n) || last.Total != int64(n) {
			t.Fatalf("last progress %+v, want %d records done", last, n)
		}
		return res
	}
	a, b := run("bt-a:"), run("bt-b:")
	if a.Events != int64(n) || a.DeadLetters == 0 || a.Decisions == 0 {
		t.Fatalf("events %d (want %d), dead letters %d, decisions %d", a.Events, n, a.DeadLetters, a.Decisions)
	}
	diffs := map[string]int{}
	types := map[string]int{}
	for _, r := range a.Records {
		diffs[r.Diff]++
		types[r.Type]++
	}
	t.Logf("%d records: %v; %v; event times %s .. %s", len(a.Records), diffs, types, a.From, a.To)
	if diffs[shadow.Added] == 0 || diffs[shadow.Same] == 0 || types["fenqi.decision.quota.v1"] == 0 {
		t.Fatalf("the candidate should add alerts and keep others, and quotas be recomputed: %v %v", diffs, types)
	}
	if days := a.To.Sub(a.From).Hours() / 24; days < 80 {
		t.Fatalf("event times span %.0f days, want the 90-day history", days)
	}
	// Twice the same records, byte for byte.
	if len(a.Records) != len(b.Records) {
		t.Fatalf("%d records, then %d", len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		ra, err := shadow.Marshal(a.Records[i])
		if err != nil {
			t.Fatal(err)
		}
		rb, err := shadow.Marshal(b.Records[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ra, rb) {
			t.Fatalf("record %d differs:\n%s\n%s", i, ra, rb)
		}
	}
	// And so the same report.
	if ra, rb := shadow.Build(a.Records), shadow.Build(b.Records); !reflect.DeepEqual(ra, rb) {
		t.Fatalf("two reports of one history differ:\n%+v\n%+v", ra, rb)
	}
	// The namespaces are gone, the live keys untouched, nothing published.
	if after := keys(t, rdb); !reflect.DeepEqual(before, after) {
		t.Fatalf("Redis after the backtests differs from before: %d keys, then %d", len(before), len(after))
	}
	for _, topic := range []string{"fenqi.decisions", "fenqi.dlq"} {
		if got := testenv.ReadAll(t, k.Addrs(), topic); len(got) != 0 {
			t.Fatalf("the backtest wrote %d records to %s", len(got), topic)
		}
	}
}

func TestBacktestRefusesANamespaceInUse(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "bt:{u:x}", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	live, cand := candidate(t)
	_, err := backtest.Run(ctx, backtest.Config{
		Brokers: []string{"127.0.0.1:1"}, Open: backtest.PartitionReader([]string{"127.0.0.1:1"}, nil),
		Live: live, Candidate: cand, Redis: rdb, Prefix: "bt:",
	})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("already holds keys")) {
		t.Fatalf("err = %v", err)
	}
	if v, _ := rdb.Get(ctx, "bt:{u:x}").Result(); v != "1" {
		t.Fatalf("the key in the namespace was changed: %q", v)
	}
	_, err = backtest.Run(ctx, backtest.Config{
		Brokers: []string{"127.0.0.1:1"}, Open: backtest.PartitionReader([]string{"127.0.0.1:1"}, nil),
		Live: live, Candidate: live, Redis: rdb,
	})
	if want := fmt.Sprintf("version %q", live.Version); err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("same versions: err = %v", err)
	}
}
