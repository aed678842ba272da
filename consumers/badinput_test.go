package consumers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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
	"github.com/fenqi/fenqi/state"
)

// biEnv is a broker, a Redis and a state store with the wechat preset's
// credit check and limits (limits.max_amount_fen, limits.max_open_bills),
// as fenqid builds them.
type biEnv struct {
	name  string
	kafka *testenv.KafkaCluster
	rdb   *redis.Client
	store *state.Store
	pub   *producers.Publisher

	// The pipelines run on it: one, unless Run returned before its time.
	pipes    []*consumers.Pipeline
	done     chan error
	cancel   context.CancelFunc
	restarts int
	runErrs  []error
}

func newBIEnv(t *testing.T, name string) *biEnv {
	t.Helper()
	topics := append(consumers.DefaultTopics().List(), events.TopicDecisions, events.TopicDLQ)
	k := testenv.Kafka(t, topics...)
	rdb := testenv.Redis(t)
	wechat, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	if wechat.Limits.MaxAmountFen != 100_000_000 || wechat.Limits.MaxOpenBills != 24 {
		t.Fatalf("the wechat preset's limits are %+v: the suite expects 100,000,000 fen and 24 bills", wechat.Limits)
	}
	store, err := state.New(rdb, state.Config{Credit: jobs.CreditCheck(func() *policy.Policy { return wechat }),
		MaxAmountFen: wechat.Limits.MaxAmountFen, MaxOpenBills: wechat.Limits.MaxOpenBills})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return &biEnv{name: name, kafka: k, rdb: rdb, store: store, pub: pub}
}

// run starts a pipeline.
func (e *biEnv) run(t *testing.T) {
	t.Helper()
	rules := scoring.DefaultRules()
	p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: clock}, e.store,
		func() consumers.Rules { return rules }, e.pub, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	e.pipes, e.done, e.cancel = append(e.pipes, p), done, cancel
	t.Cleanup(func() { e.stop() })
}

// events is the records the pipelines have finished (dead letters included).
func (e *biEnv) events() int64 {
	var n int64
	for _, p := range e.pipes {
		n += p.Stats().Events.Load()
	}
	return n
}

func (e *biEnv) stat(f func(*consumers.Stats) int64) int64 {
	var n int64
	for _, p := range e.pipes {
		n += f(p.Stats())
	}
	return n
}

// check notes a pipeline that returned before it was stopped, and starts
// another (a restart, as fenqid's supervisor would).
func (e *biEnv) check(t *testing.T) {
	t.Helper()
	select {
	case err := <-e.done:
		e.restarts++
		e.runErrs = append(e.runErrs, err)
		t.Errorf("%s: the pipeline stopped by itself (restart %d): %v", e.name, e.restarts, err)
		if e.restarts >= 10 {
			t.Fatalf("%s: a crash loop: %d restarts", e.name, e.restarts)
		}
		e.run(t)
	default:
	}
}

// stop stops the running pipeline and returns Run's error.
func (e *biEnv) stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: the pipeline did not stop within 30 s", e.name)
	}
}

func (e *biEnv) produce(t *testing.T, byTopic map[string][]kafka.Message) int {
	t.Helper()
	n := 0
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		// A record near 1 MiB goes in a produce request of its own (in
		// its place): beside others it would make the batch too large.
		var chunk []kafka.Message
		for _, m := range byTopic[topic] {
			if len(m.Value) > 512<<10 {
				testenv.Produce(t, e.kafka.Addrs(), topic, chunk...)
				testenv.Produce(t, e.kafka.Addrs(), topic, m)
				chunk = nil
				continue
			}
			chunk = append(chunk, m)
		}
		testenv.Produce(t, e.kafka.Addrs(), topic, chunk...)
		n += len(byTopic[topic])
	}
	return n
}

// biScale is FENQI_BADINPUT_N (default 1): the suite's size, in units of
// about 2,500 bad and 1,200 valid records.
func biScale(t *testing.T) int {
	s := os.Getenv("FENQI_BADINPUT_N")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		t.Fatalf("FENQI_BADINPUT_N=%q: want an integer in 1..1000", s)
	}
	return n
}

// Issue 12's generated bad-input suite: a few thousand bad records of
// every class, interleaved with valid ones on the input topics, through a
// real pipeline (a kfake broker over TCP, a real redis-server). Each bad
// record must be dead-lettered exactly once with its reason and change no
// state; every valid record must be applied as in a run of the valid
// records alone (the same users' state, the same decisions); the pipeline
// must never stop.
func TestBadInputSuite(t *testing.T) {
	t.Parallel()
	began := time.Now()
	scale := biScale(t)
	g := &biGen{rng: rand.New(rand.NewPCG(12, uint64(scale))), users: newBIUsers(80 * scale), now: now}
	valid, bad := g.generate(scale)
	mixed, only := g.interleave(valid, bad), validOnly(valid)

	mix, ref := newBIEnv(t, "mixed"), newBIEnv(t, "valid only")
	total := map[*biEnv]int{mix: mix.produce(t, mixed), ref: ref.produce(t, only)}
	if total[mix] != len(valid)+len(bad) || total[ref] != len(valid) {
		t.Fatalf("produced %d and %d records, generated %d valid and %d bad", total[mix], total[ref], len(valid), len(bad))
	}
	for _, e := range []*biEnv{mix, ref} {
		e.run(t)
	}
	deadline := time.Now().Add(time.Duration(60+30*scale) * time.Second)
	for mix.events() < int64(total[mix]) || ref.events() < int64(total[ref]) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d records finished with bad input, %d of %d without", mix.events(), total[mix], ref.events(), total[ref])
		}
		mix.check(t)
		ref.check(t)
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range []*biEnv{mix, ref} {
		e.check(t)
		if err := e.stop(); err != nil {
			t.Errorf("%s: Run: %v", e.name, err)
		}
	}
	drained := time.Since(began)

	// Dead letters: each bad record's exactly once, with its reason.
	byTag := map[string]*biRecord{}
	for i := range valid {
		byTag[valid[i].tag] = &valid[i]
	}
	for i := range bad {
		byTag[bad[i].tag] = &bad[i]
	}
	dead := map[string][]kafka.Message{}
	var untagged, validDead int
	for _, m := range biReadAll(t, mix, events.TopicDLQ) {
		tag := header(m, biTagHeader)
		r := byTag[tag]
		switch {
		case r == nil:
			untagged++
			t.Errorf("a dead letter of no generated record: headers %v", m.Headers)
		case !r.bad():
			validDead++
			t.Errorf("valid record %s (%s, user %s) dead-lettered: %s", tag, r.topic, r.user, header(m, producers.HeaderError))
		default:
			dead[tag] = append(dead[tag], m)
		}
	}
	if n := len(biReadAll(t, ref, events.TopicDLQ)); n != 0 {
		t.Errorf("the valid records alone made %d dead letters", n)
	}
	type figures struct{ tried, dead, once, wrongReason, missing, repeated int }
	var order []string
	byClass := map[string]*figures{}
	for i := range bad {
		r := &bad[i]
		f := byClass[r.class]
		if f == nil {
			f = &figures{}
			byClass[r.class] = f
			order = append(order, r.class)
		}
		f.tried++
		dls := dead[r.tag]
		switch {
		case len(dls) == 0:
			f.missing++
			if f.missing <= 3 {
				t.Errorf("%s: bad record %s on %s not dead-lettered: key %q headers %q value %.300q", r.class, r.tag, r.topic, r.msg.Key, r.msg.Headers, r.msg.Value)
			}
			continue
		case len(dls) > 1:
			f.repeated++
			if f.repeated <= 3 {
				t.Errorf("%s: bad record %s dead-lettered %d times", r.class, r.tag, len(dls))
			}
		}
		f.dead++
		if why := biWrongReason(r, dls[0]); why != "" {
			f.wrongReason++
			if f.wrongReason <= 3 {
				t.Errorf("%s: bad record %s (key %q, headers %q, value %.200q): %s", r.class, r.tag, r.msg.Key, r.msg.Headers, r.msg.Value, why)
			}
		} else if len(dls) == 1 {
			f.once++
		}
	}

	// State: every user the records name (and the ids a lax decoder would
	// have made of them) as in the valid-only run.
	users := map[string]bool{}
	for _, rs := range [][]biRecord{valid, bad} {
		for _, r := range rs {
			users[r.user] = true
			users[string(r.msg.Key)] = true
		}
	}
	delete(users, "")
	ids := slices.Sorted(maps.Keys(users))
	got, err := mix.store.Users(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.store.Users(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i, id := range ids {
		if a, b := biView(got[i]), biView(want[i]); a != b {
			changed++
			if changed <= 5 {
				t.Errorf("user %q: with bad input\n%s\nwithout\n%s", id, a, b)
			}
		}
	}
	// No state under any other name either.
	mixKeys, refKeys := biKeys(t, mix.rdb), biKeys(t, ref.rdb)
	extraKeys := 0
	for k := range mixKeys {
		if !refKeys[k] {
			extraKeys++
			if extraKeys <= 5 {
				t.Errorf("Redis key %q exists only with bad input", k)
			}
		}
	}
	for k := range refKeys {
		if !mixKeys[k] {
			t.Errorf("Redis key %q exists only without bad input", k)
		}
	}

	// Decisions: the same ones, none caused by a bad record.
	gotD, wantD := biDecisions(t, mix), biDecisions(t, ref)
	fromBad := 0 // every bad record's id starts with "bad-"
	for d := range gotD {
		if i := strings.Index(d, " on "); i >= 0 && strings.HasPrefix(d[i+4:], "bad-") {
			fromBad++
		}
	}
	var lostD, extraD []string
	for d, n := range wantD {
		if gotD[d] < n {
			lostD = append(lostD, d)
		}
	}
	for d, n := range gotD {
		if wantD[d] < n {
			extraD = append(extraD, d)
		}
	}
	if len(lostD)+len(extraD) > 0 {
		t.Errorf("decisions: %d lost (%.5q), %d extra (%.5q)", len(lostD), lostD, len(extraD), extraD)
	}
	if len(wantD) == 0 {
		t.Error("the valid records made no decision: the comparison proves nothing")
	}

	applied, deadN := mix.stat(func(s *consumers.Stats) int64 { return s.Applied.Load() }), mix.stat(func(s *consumers.Stats) int64 { return s.DeadLetters.Load() })
	refApplied := ref.stat(func(s *consumers.Stats) int64 { return s.Applied.Load() })
	if refApplied != int64(len(valid)) || applied != int64(len(valid)) {
		t.Errorf("applied: %d with bad input, %d without; %d valid records", applied, refApplied, len(valid))
	}

	// The figures for the closing note.
	t.Logf("bad-input suite (scale %d): %d valid and %d bad records; drained both runs in %s", scale, len(valid), len(bad), drained.Round(time.Millisecond))
	t.Logf("%-40s %7s %7s %7s %7s %7s %7s", "class", "tried", "dead", "once+ok", "reason", "missing", "repeat")
	sum := figures{}
	for _, c := range order {
		f := byClass[c]
		t.Logf("%-40s %7d %7d %7d %7d %7d %7d", c, f.tried, f.dead, f.once, f.wrongReason, f.missing, f.repeated)
		sum.tried, sum.dead, sum.once, sum.wrongReason, sum.missing, sum.repeated = sum.tried+f.tried, sum.dead+f.dead,
			sum.once+f.once, sum.wrongReason+f.wrongReason, sum.missing+f.missing, sum.repeated+f.repeated
	}
	t.Logf("%-40s %7d %7d %7d %7d %7d %7d", "total", sum.tried, sum.dead, sum.once, sum.wrongReason, sum.missing, sum.repeated)
	wrongly := int(applied) - len(valid) + fromBad + changed + extraKeys
	t.Logf("dead letters %d (pipeline count %d; of valid records %d, untagged %d); valid records applied %d of %d",
		sum.dead, deadN, validDead, untagged, applied, len(valid))
	t.Logf("applied wrongly: %d (users changed %d of %d, extra Redis keys %d, decisions from bad records %d, applied beyond the valid %d)",
		wrongly, changed, len(ids), extraKeys, fromBad, int(applied)-len(valid))
	t.Logf("decisions: %d, the same as without bad input: %v; restarts: %d", len(gotD), len(lostD)+len(extraD) == 0, mix.restarts+ref.restarts)
	if wrongly != 0 {
		t.Errorf("applied wrongly: %d, want 0", wrongly)
	}
	if mix.restarts+ref.restarts != 0 {
		t.Errorf("restarts: %d, want 0 (%v)", mix.restarts+ref.restarts, append(mix.runErrs, ref.runErrs...))
	}
	if sum.once != len(bad) {
		t.Errorf("%d of %d bad records dead-lettered exactly once with the right reason", sum.once, len(bad))
	}
}

// biWrongReason says what is wrong with bad record r's dead letter m, ""
// when nothing is.
func biWrongReason(r *biRecord, m kafka.Message) string {
	reason, field := header(m, producers.HeaderError), header(m, producers.HeaderErrorField)
	var faults []string
	if field != r.field {
		faults = append(faults, fmt.Sprintf("field %q, want %q", field, r.field))
	}
	for _, w := range r.words {
		if !strings.Contains(reason, w) {
			faults = append(faults, fmt.Sprintf("the reason does not say %q", w))
		}
	}
	if r.field != "" && !strings.Contains(reason, `"`+r.field+`"`) && r.field != "type" {
		faults = append(faults, "the reason does not name the field")
	}
	if got := header(m, producers.HeaderTopic); got != r.topic {
		faults = append(faults, fmt.Sprintf("fenqi-topic %q, want %q", got, r.topic))
	}
	if _, err := strconv.Atoi(header(m, producers.HeaderPartition)); err != nil {
		faults = append(faults, "no fenqi-partition")
	}
	if _, err := strconv.ParseInt(header(m, producers.HeaderOffset), 10, 64); err != nil {
		faults = append(faults, "no fenqi-offset")
	}
	if cut := header(m, producers.HeaderTruncated); cut != "" {
		if cut != strconv.Itoa(len(r.msg.Value)) || !bytes.HasPrefix(r.msg.Value, m.Value) || len(m.Value) > producers.DeadLetterPrefixBytes {
			faults = append(faults, fmt.Sprintf("truncated to %d bytes (fenqi-truncated %s) from %d", len(m.Value), cut, len(r.msg.Value)))
		}
	} else if len(r.msg.Value) >= producers.DefaultMaxRecordBytes {
		faults = append(faults, fmt.Sprintf("a dead letter of a %d-byte value is not cut (no fenqi-truncated)", len(r.msg.Value)))
	} else if !bytes.Equal(m.Value, r.msg.Value) || !bytes.Equal(m.Key, r.msg.Key) {
		faults = append(faults, "the dead letter's key or value is not the record's")
	}
	if len(faults) == 0 {
		return ""
	}
	return strings.Join(faults, "; ") + " (reason: " + reason + ")"
}

// biView is a user's state as text, to compare.
func biView(u *state.User) string {
	zone := u.Zone.String()
	c := *u
	c.Zone = nil
	b, err := json.Marshal(c)
	if err != nil {
		return "unmarshalable: " + err.Error()
	}
	return "zone " + zone + " " + string(b)
}

// biKeys is every key in Redis.
func biKeys(t *testing.T, rdb *redis.Client) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys[iter.Val()] = true
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// biDecisions is the multiset of an env's decisions: id, type, rule and
// the event that caused it.
func biDecisions(t *testing.T, e *biEnv) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range biReadAll(t, e, events.TopicDecisions) {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			t.Fatalf("%s: a decision does not decode: %v", e.name, err)
		}
		out[d.ID+" "+d.Type+" "+d.Data.Rule+" on "+d.Data.CausationID]++
	}
	return out
}

// biReadAll is testenv.ReadAll with fetches of at most 1 MiB and a long
// wait: with testenv's 10 MiB and 50 ms, kfake under -race answers a large
// partition's fetch later than the reader's read deadline (its MaxWait),
// and the read never gets a message (FENQI_BADINPUT_N=5 -race).
func biReadAll(t *testing.T, e *biEnv, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []kafka.Message
	for p := range int(testenv.DefaultPartitions) {
		conn, err := kafka.DialLeader(ctx, "tcp", e.kafka.Addr(), topic, p)
		if err != nil {
			t.Fatalf("%s: read %s/%d: %v", e.name, topic, p, err)
		}
		end, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatalf("%s: read %s/%d: %v", e.name, topic, p, err)
		}
		for off := int64(0); off < end; {
			if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
				t.Fatalf("%s: read %s/%d at %d: %v", e.name, topic, p, off, err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 2 * time.Second})
			for {
				m, err := b.ReadMessage()
				if err != nil {
					break
				}
				if m.Offset >= off {
					out = append(out, m)
					off = m.Offset + 1
				}
			}
			if err := b.Close(); err != nil {
				t.Fatalf("%s: read %s/%d at %d: %v", e.name, topic, p, off, err)
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: read %s/%d: stuck at %d of %d", e.name, topic, p, off, end)
			}
		}
		_ = conn.Close()
	}
	return out
}
