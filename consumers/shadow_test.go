package consumers_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
)

// shadowRun is one pipeline over the test's input topics, into a Redis
// namespace and a decisions topic of its own, with or without a shadow.
type shadowRun struct {
	prefix, decisions string
	store             *state.Store
	pipe              *consumers.Pipeline
}

func startShadowRun(t *testing.T, k *testenv.KafkaCluster, rdb *redis.Client, name string, live, cand *policy.Policy) *shadowRun {
	t.Helper()
	r := &shadowRun{prefix: name + ":", decisions: name + ".decisions"}
	cfg := state.Config{Prefix: r.prefix, Now: clock, Credit: jobs.CreditCheck(func() *policy.Policy { return live })}
	if cand != nil {
		cfg.ShadowCredit = jobs.CreditCheck(func() *policy.Policy { return cand })
	}
	var err error
	if r.store, err = state.New(rdb, cfg); err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: k.Addrs(), DecisionsTopic: r.decisions, DLQTopic: name + ".dlq"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	liveRules, err := scoring.NewRules(live)
	if err != nil {
		t.Fatal(err)
	}
	pc := consumers.Config{Brokers: k.Addrs(), GroupID: name, Now: clock}
	if cand != nil {
		candRules, err := scoring.NewRules(cand)
		if err != nil {
			t.Fatal(err)
		}
		pc.ShadowRules, pc.ShadowTopic = func() consumers.Rules { return candRules }, name+".shadow"
	}
	r.pipe, err = consumers.New(pc, r.store, func() consumers.Rules { return liveRules }, pub, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.pipe.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline %s: %v", name, err)
		}
	})
	return r
}

// dumpNamespace reads every key of a Redis namespace, without its prefix,
// comparably: a user's state as the store reads it (its bytes hold
// a random write token and the partitions in the order first seen), a
// sorted set's members and scores, a hash's fields.
func dumpNamespace(t *testing.T, rdb *redis.Client, prefix string, store *state.Store) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			id, ok := strings.CutPrefix(k[len(prefix):], "{u:")
			if !ok {
				t.Fatalf("key %s: a string not a user's state", k)
			}
			var u *state.User
			u, err = store.User(ctx, strings.TrimSuffix(id, "}"))
			v = u
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		default:
			t.Fatalf("key %s: type %s not compared", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k[len(prefix):]] = v
	}
	return out
}

// TestShadowLowerNightThreshold: a candidate that lowers the large-payment
// threshold of the night rule shows the extra night alerts, and nothing
// else; the live decisions and the live state are those of a run without
// a shadow, and no shadow record reaches the live topic.
func TestShadowLowerNightThreshold(t *testing.T) {
	t.Parallel()
	live, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	cand := *live
	cand.Version = "wechat-night-150k"
	cand.Risk.LargePaymentFen = 150_000 // live: 200,000
	if err := cand.Validate(); err != nil {
		t.Fatal(err)
	}

	k := testenv.Kafka(t, append(consumers.DefaultTopics().List(),
		"plain.decisions", "plain.dlq", "cand.decisions", "cand.dlq", "cand.shadow")...)
	rdb := testenv.Redis(t)
	night := time.Date(2026, 11, 20, 2, 30, 0, 0, shanghai)
	// Each user logs in (device and city known), then pays at night:
	// amounts below 150k (no alert either way), between (the candidate's
	// extra alerts) and above 200k (an alert both ways).
	var logins, payments []kafka.Message
	amounts := []int64{100_000, 160_000, 199_999, 250_000, 120_000, 180_000}
	var wantAdded []string
	for i, fen := range amounts {
		user := fmt.Sprintf("u%d", i)
		logins = append(logins, record(t, loginEv("l-"+user, user, night.Add(-time.Hour))))
		id := "p-" + user
		payments = append(payments, record(t, pay(id, user, night, fen)), record(t, pay(id+"-day", user, now, 1_000)))
		if fen >= 150_000 && fen < 200_000 {
			wantAdded = append(wantAdded, events.DecisionID(scoring.RuleNightLargePayment, id))
		}
	}
	testenv.Produce(t, k.Addrs(), "fenqi.logins", logins...)
	testenv.Produce(t, k.Addrs(), "fenqi.payments", payments...)

	plain := startShadowRun(t, k, rdb, "plain", live, nil)
	withShadow := startShadowRun(t, k, rdb, "cand", live, &cand)
	total := int64(len(logins) + len(payments))
	for _, r := range []*shadowRun{plain, withShadow} {
		waitFor(t, r.prefix+" applies every event", func() bool { return r.pipe.Stats().Applied.Load() == total })
	}

	// The live decisions: the same with and without the shadow.
	decs := func(topic string) map[string]events.Decision {
		out := map[string]events.Decision{}
		for _, m := range testenv.ReadAll(t, k.Addrs(), topic) {
			d, err := events.DecodeDecision(m.Value)
			if err != nil {
				t.Fatalf("%s: %v (a shadow record on the live topic?)", topic, err)
			}
			out[d.ID] = d
		}
		return out
	}
	plainDs, liveDs := decs("plain.decisions"), decs("cand.decisions")
	if len(plainDs) == 0 || !reflect.DeepEqual(plainDs, liveDs) {
		t.Fatalf("live decisions with a shadow differ from those without:\n%v\n%v", plainDs, liveDs)
	}
	// The live state: the same, key for key.
	if a, b := dumpNamespace(t, rdb, plain.prefix, plain.store), dumpNamespace(t, rdb, withShadow.prefix, withShadow.store); len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("state with a shadow differs from the state without:\n%v\n%v", a, b)
	}

	// The shadow records: every live decision "same", plus the extra
	// night alerts "added", marked with both versions.
	var added, same []string
	for _, m := range testenv.ReadAll(t, k.Addrs(), "cand.shadow") {
		r, err := shadow.Unmarshal(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if r.LivePolicyVersion != live.Version || r.ShadowPolicyVersion != cand.Version {
			t.Fatalf("record %s: versions %q, %q", r.ID, r.LivePolicyVersion, r.ShadowPolicyVersion)
		}
		if string(m.Key) != r.UserID || header(m, shadow.HeaderDiff) != r.Diff {
			t.Fatalf("record %s: key %q, diff header %q", r.ID, m.Key, header(m, shadow.HeaderDiff))
		}
		switch r.Diff {
		case shadow.Added:
			if r.Rule != scoring.RuleNightLargePayment || r.Shadow.Data.PolicyVersion != cand.Version {
				t.Fatalf("added record of rule %s: %+v", r.Rule, r.Shadow)
			}
			added = append(added, r.ID)
		case shadow.Same:
			if _, ok := liveDs[r.ID]; !ok {
				t.Fatalf("a 'same' record %s of no live decision", r.ID)
			}
			same = append(same, r.ID)
		default:
			t.Fatalf("record %s: diff %s, want only same and added", r.ID, r.Diff)
		}
	}
	sort.Strings(added)
	sort.Strings(wantAdded)
	if !slices.Equal(added, wantAdded) {
		t.Fatalf("added %v, want the night alerts %v", added, wantAdded)
	}
	if len(same) != len(liveDs) {
		t.Fatalf("%d same records, %d live decisions", len(same), len(liveDs))
	}
	if s := &withShadow.pipe.Stats().Shadow; s.Added.Load() != int64(len(wantAdded)) || s.Same.Load() != int64(len(liveDs)) {
		t.Fatalf("stats: added %d same %d", s.Added.Load(), s.Same.Load())
	}
}
