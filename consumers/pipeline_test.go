package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	"github.com/fenqi/fenqi/telemetry"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// A fixed clock: 2026-11-20 02:45 in Shanghai, so that payments "late at
// night" are also recent (older ones would be too late to judge).
var now = time.Date(2026, 11, 20, 2, 45, 0, 0, shanghai)

func clock() time.Time { return now }

type env struct {
	kafka   *testenv.KafkaCluster // nil on envOn's
	brokers []string
	rdb     *redis.Client
	store   *state.Store
	pub     *producers.Publisher
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	k := testenv.Kafka(t, benchTopics()...)
	e := envOn(t, k.Addrs())
	e.kafka = k
	return e
}

// envOn is an env over a broker of its own (kafka is nil): a fresh
// redis-server, its store and a publisher to brokers.
func envOn(t testing.TB, brokers []string) *env {
	t.Helper()
	rdb := testenv.Redis(t)
	// Credit payments judged as fenqid judges them (jobs.CreditCheck).
	wechat, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.New(rdb, state.Config{Credit: jobs.CreditCheck(func() *policy.Policy { return wechat })})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return &env{rdb: rdb, store: store, pub: pub, brokers: brokers}
}

// start runs a pipeline until the returned stop is called; stop returns Run's error.
func (e *env) start(t *testing.T, pub consumers.Publisher) (stop func() error) {
	t.Helper()
	_, stop = e.startWith(t, consumers.Config{}, nil, pub, nil)
	return stop
}

// runFor runs a pipeline over store, heard by obs (may be nil), until it
// has finished n records, and stops it.
func (e *env) runFor(t *testing.T, store consumers.Store, obs consumers.Observer, n int64) *consumers.Pipeline {
	t.Helper()
	p, stop := e.startWith(t, consumers.Config{}, store, nil, obs)
	waitFor(t, fmt.Sprintf("%d records", n), func() bool { return p.Stats().Events.Load() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return p
}

// startWith is start with cfg (its brokers and clock are the env's), over
// store (nil: the env's), heard by obs (may be nil).
func (e *env) startWith(t *testing.T, cfg consumers.Config, store consumers.Store, pub consumers.Publisher, obs consumers.Observer) (_ *consumers.Pipeline, stop func() error) {
	t.Helper()
	if store == nil {
		store = e.store
	}
	if pub == nil {
		pub = e.pub
	}
	cfg.Brokers, cfg.Now = e.kafka.Addrs(), clock
	rules := scoring.DefaultRules()
	p, err := consumers.New(cfg, store, func() consumers.Rules { return rules }, pub, obs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("pipeline did not stop within 30s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return p, stop
}

func record(t *testing.T, e events.Event) kafka.Message {
	t.Helper()
	v, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(e.Subject), Value: v,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}}
}

func pay(id, user string, at time.Time, fen int64) events.Event {
	return events.Event{ID: id, Type: events.TypePayment, Source: "test", Subject: user, Time: at,
		Payment: &events.Payment{UserID: user, AmountFen: fen, Currency: "CNY", Scene: events.SceneEcommerce,
			MerchantID: "jd", DeviceID: "dev-1", City: "shanghai", Auth: events.AuthFace}}
}

func loginEv(id, user string, at time.Time) events.Event {
	return events.Event{ID: id, Type: events.TypeLogin, Source: "test", Subject: user, Time: at,
		Login: &events.Login{UserID: user, DeviceID: "dev-1", City: "shanghai", IP: "10.1.2.3", Auth: events.AuthFingerprint}}
}

// spend returns the user's payments today and spend this month.
func spend(t *testing.T, s *state.Store, userID string) (int64, int64) {
	t.Helper()
	u, err := s.User(context.Background(), userID)
	if err != nil {
		t.Error(err) // not Fatal: atCrash calls it from the pipeline's goroutine
		return -1, -1
	}
	local := now.In(u.Zone)
	return u.Days[u.Day(now)].Payments, u.Months[local.Year()*100+int(local.Month())].SpendFen
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func decisions(t *testing.T, k *testenv.KafkaCluster, n int) []events.Decision {
	t.Helper()
	msgs := testenv.ReadN(t, k.Addrs(), "fenqi.decisions", n, 30*time.Second)
	out := make([]events.Decision, len(msgs))
	for i, m := range msgs {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			t.Fatalf("decision %d: %v", i, err)
		}
		if string(m.Key) != d.Subject {
			t.Fatalf("decision key %q, subject %q", m.Key, d.Subject)
		}
		out[i] = d
	}
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	night := time.Date(2026, 11, 20, 2, 30, 0, 0, shanghai)
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments",
		record(t, pay("p1", "alice", now, 1_000)),
		record(t, pay("p2", "alice", night, 300_000)), // night, large: alert
		kafka.Message{Key: []byte("alice"), Value: []byte(`{"specversion":"1.0","id":"bad","type":"fenqi.payment.v1"`)},
		record(t, pay("p3", "alice", now, 2_000)),
		record(t, pay("p4", "bob", night, 199_999)), // night, not large
	)
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.logins", record(t, loginEv("l1", "alice", now)))
	stop := e.start(t, nil)

	waitFor(t, "alice's three payments in Redis", func() bool { n, _ := spend(t, e.store, "alice"); return n == 3 })
	ds := decisions(t, e.kafka, 1)
	d := ds[0]
	if d.Type != events.TypeDecisionAlert || d.Subject != "alice" || d.Data.CausationID != "p2" ||
		d.Data.Action != scoring.ActionSMSVerify || d.Data.Rule != scoring.RuleNightLargePayment {
		t.Fatalf("alert: %+v", d)
	}
	dlq := testenv.ReadN(t, e.kafka.Addrs(), "fenqi.dlq", 1, 30*time.Second)
	if header(dlq[0], producers.HeaderError) == "" || header(dlq[0], producers.HeaderTopic) != "fenqi.payments" ||
		header(dlq[0], producers.HeaderOffset) == "" || header(dlq[0], producers.HeaderPartition) == "" {
		t.Fatalf("dead letter headers: %+v", dlq[0].Headers)
	}
	if !strings.Contains(string(dlq[0].Value), `"id":"bad"`) {
		t.Fatalf("dead letter lost the original value: %q", dlq[0].Value)
	}
	waitFor(t, "bob's payment", func() bool { n, _ := spend(t, e.store, "bob"); return n == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n, fen := spend(t, e.store, "alice"); n != 3 || fen != 303_000 {
		t.Fatalf("alice spend: %d payments, %d fen", n, fen)
	}
	u, err := e.store.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Devices["dev-1"].Logins; got != 1 {
		t.Fatalf("alice logins: %d", got)
	}
	if all := testenv.ReadAll(t, e.kafka.Addrs(), "fenqi.decisions"); len(all) != 1 {
		t.Fatalf("want exactly one decision, got %d", len(all))
	}
}

func TestDuplicateEventIDCountsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := record(t, pay("dup-1", "carol", now, 5_000))
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", ev, ev, record(t, pay("after", "carol", now, 1)))
	stop := e.start(t, nil)
	waitFor(t, "the event after the duplicates", func() bool { _, fen := spend(t, e.store, "carol"); return fen >= 5_001 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n, fen := spend(t, e.store, "carol"); n != 2 || fen != 5_001 {
		t.Fatalf("carol spend: %d payments, %d fen; want 2 and 5001", n, fen)
	}
}

// crashingPublisher stands for a process that dies in its first publish
// of a decision: before that batch's state is written and its offsets
// committed. Batches before it with nothing to decide (a pipeline that
// was idle sends the first record it sees at once) go through; from the
// crash on it fails every write. The broker and Redis are real.
type crashingPublisher struct {
	*producers.Publisher // encodes records as the real one does
	crashed              chan struct{}
	// atCrash, when set, runs at the crash: the state then is what the
	// batches before the crashed one wrote.
	atCrash func()
	mu      sync.Mutex
	down    bool
	wanted  []events.Decision // what the crashed run was about to publish
}

func (c *crashingPublisher) Write(ctx context.Context, msgs []kafka.Message) error {
	var ds []events.Decision
	for _, m := range msgs {
		if d, err := events.DecodeDecision(m.Value); err == nil {
			ds = append(ds, d)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.down && len(ds) == 0 {
		return c.Publisher.Write(ctx, msgs)
	}
	if !c.down {
		c.down, c.wanted = true, ds
		if c.atCrash != nil {
			c.atCrash()
		}
		close(c.crashed)
	}
	return errors.New("simulated crash before publish and commit")
}

func TestRedeliveryAfterCrashBeforeCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	night := time.Date(2026, 11, 20, 2, 30, 0, 0, shanghai)
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, record(t, pay(fmt.Sprintf("r%d", i), "dave", now, 100)))
	}
	msgs = append(msgs, record(t, pay("r-night", "dave", night, 250_000)))
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", msgs...)

	var n0, fen0 int64 // the state when the crash came
	crash := &crashingPublisher{Publisher: e.pub, crashed: make(chan struct{}),
		atCrash: func() { n0, fen0 = spend(t, e.store, "dave") }}
	stop := e.start(t, crash)
	select {
	case <-crash.crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first run never reached publish")
	}
	if err := stop(); err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("first run: want the crash error, got %v", err)
	}
	// The state is written only once the batch's decisions are
	// acknowledged: a crash at publish leaves it as it was, so the
	// redelivery computes the same events from the same state.
	n1, fen1 := spend(t, e.store, "dave")
	if n1 != n0 || fen1 != fen0 || n1 >= 21 {
		t.Fatalf("the crashed run wrote state before its decisions were acknowledged: %d payments, %d fen (%d, %d at the crash)", n1, fen1, n0, fen0)
	}

	// Restart: the uncommitted batch is delivered again, and its events
	// yield the same decisions, with the same ids, as the first time. The
	// crashed batch is whatever the reader had fetched (all 21 records or
	// a prefix of them), so the whole run must also end with what a
	// crash-free run publishes: 20 payments at once give velocity alerts
	// from the 10th on (r9..r19), and the night payment its alert.
	stop = e.start(t, nil)
	waitFor(t, "all 21 payments", func() bool { n, _ := spend(t, e.store, "dave"); return n == 21 })
	if len(crash.wanted) == 0 {
		t.Fatal("the crashed run had no decisions to publish: the test would prove nothing")
	}
	crashFree := map[string]bool{"night_large_payment on r-night": true}
	for i := 9; i < 20; i++ {
		crashFree[fmt.Sprintf("velocity on r%d", i)] = true
	}
	decisions(t, e.kafka, len(crashFree)) // waits until they are all out
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // id -> rule on causation
	seen := map[string]int{}   // rule on causation -> how many ids
	for _, d := range testenv.ReadAll(t, e.kafka.Addrs(), "fenqi.decisions") {
		dd, err := events.DecodeDecision(d.Value)
		if err != nil {
			t.Fatal(err)
		}
		what := dd.Data.Rule + " on " + dd.Data.CausationID
		if _, dup := got[dd.ID]; !dup {
			seen[what]++
		}
		got[dd.ID] = what
	}
	for _, d := range crash.wanted {
		if what := d.Data.Rule + " on " + d.Data.CausationID; got[d.ID] != what {
			t.Errorf("the crashed run's decision %s (%s) was not published again with its id: got %q", d.ID, what, got[d.ID])
		}
	}
	for what, n := range seen {
		if !crashFree[what] || n != 1 {
			t.Errorf("%s: %d decision ids, want %d", what, n, map[bool]int{true: 1}[crashFree[what]])
		}
	}
	for what := range crashFree {
		if seen[what] == 0 {
			t.Errorf("%s: never published", what)
		}
	}
	if t.Failed() {
		t.Fatalf("after redelivery (the crashed batch had %d decisions):\n got %v", len(crash.wanted), got)
	}
	if n, fen := spend(t, e.store, "dave"); n != 21 || fen != 20*100+250_000 {
		t.Fatalf("after redelivery: %d payments, %d fen (the crashed run had %d, %d)", n, fen, n1, fen1)
	}
}

// The first state engine's hole: with more than 32 of a user's events in
// flight when a consumer died, the redelivered repayment lost its
// "unfroze the user" fact (it came from a ring of the last 32 events), and
// the unfrozen decision never came. Now a crash before the state write
// leaves the state as it was, and the redelivery computes the same
// unfreeze from it.
func TestUnfreezeSurvivesACrashWithManyEventsInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.frozen(t, "fay")
	var pays []kafka.Message
	for i := range 40 {
		pays = append(pays, record(t, pay(fmt.Sprintf("fay-p%d", i), "fay", now.Add(-time.Duration(40-i)*time.Minute), 100)))
	}
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", pays...)
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.repayments", record(t, events.Event{ID: "paid-1", Type: events.TypeRepaymentPaid,
		Source: "test", Subject: "fay", Time: now, Paid: &events.RepaymentPaid{UserID: "fay", BillID: "b1", AmountFen: 80_000}}))

	crash := &crashingPublisher{Publisher: e.pub, crashed: make(chan struct{})}
	stop := e.start(t, crash)
	select {
	case <-crash.crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first run never reached publish")
	}
	_ = stop()
	if u, err := e.store.User(ctx, "fay"); err != nil || !u.FrozenOverdue {
		t.Fatalf("the crashed run changed the state: %+v, %v", u, err)
	}
	stop = e.start(t, nil)
	waitFor(t, "the repayment applied", func() bool {
		u, err := e.store.User(ctx, "fay")
		return err == nil && len(u.Bills) == 0 && u.Days[u.Day(now)].Payments == 40
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var unfrozen int
	for _, m := range testenv.ReadAll(t, e.kafka.Addrs(), "fenqi.decisions") {
		if d, err := events.DecodeDecision(m.Value); err == nil && d.Type == events.TypeDecisionUnfrozen && d.Subject == "fay" {
			unfrozen++
		}
	}
	if unfrozen != 1 {
		t.Fatalf("%d unfrozen decisions for fay, want 1", unfrozen)
	}
	if u, _ := e.store.User(ctx, "fay"); u.FrozenOverdue {
		t.Fatal("fay stays frozen")
	}
}

// outcomes records the outcome of every event.
type outcomes struct {
	consumers.NopObserver
	mu  sync.Mutex
	got []string
}

func (o *outcomes) Event(_ string, outcome string) {
	o.mu.Lock()
	o.got = append(o.got, outcome)
	o.mu.Unlock()
}

// A new event at an offset its user's state has passed (a topic whose
// offsets started over, its epoch not raised) is counted apart, as
// unknown_redelivery, not among the plain redeliveries.
func TestUnknownRedeliveryIsCountedApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var items []state.Item
	for part := range 16 { // whatever partition the record lands on
		ev := pay(fmt.Sprintf("old-%d", part), "una", now.Add(-time.Hour), 100)
		items = append(items, state.Item{Event: &ev, Topic: 1, Partition: part, Offset: 100})
	}
	if _, err := e.store.Apply(ctx, items); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", record(t, pay("new-1", "una", now, 100)))
	obs := &outcomes{}
	p := e.runFor(t, e.store, obs, 1)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if p.Stats().Unknown.Load() != 1 || !slices.Equal(obs.got, []string{telemetry.OutcomeUnknownRedelivery}) {
		t.Fatalf("unknown %d, outcomes %v; want 1 and [%s]", p.Stats().Unknown.Load(), obs.got, telemetry.OutcomeUnknownRedelivery)
	}
}

// TestBatchGoesOnceTheSecondStageIsFree: a batch waits for more records
// (BatchWait) only while the batch before it is being published and
// written; a record arriving at an idle pipeline is applied at once, not
// after BatchWait.
func TestBatchGoesOnceTheSecondStageIsFree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const wait = 10 * time.Second
	p, stop := e.startWith(t, consumers.Config{BatchWait: wait}, nil, nil, nil)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	for i, user := range []string{"linger-a", "linger-b"} {
		start := time.Now()
		testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", record(t, pay(fmt.Sprintf("linger-%d", i), user, now, 100)))
		waitFor(t, user+"'s payment", func() bool { return p.Stats().Events.Load() == int64(i+1) })
		// The first one includes the group join.
		if took := time.Since(start); i == 1 && took > wait/4 {
			t.Fatalf("a record at an idle pipeline took %v to be applied (BatchWait %v): the batch waited for more", took, wait)
		}
	}
}

// orderStore records the order of Commit and RecomputeSoon calls.
type orderStore struct {
	consumers.Store
	mu    sync.Mutex
	calls []string
}

func (o *orderStore) add(c string) {
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
}

func (o *orderStore) Commit(ctx context.Context, b *state.Batch, d *state.Drafts) error {
	o.add("commit")
	return o.Store.Commit(ctx, b, d)
}

func (o *orderStore) RecomputeSoon(ctx context.Context, at time.Time, users ...string) error {
	o.add(fmt.Sprintf("recompute %s at now + %v", strings.Join(users, ","), at.Sub(now)))
	return o.Store.RecomputeSoon(ctx, at, users...)
}

// frozen gives user a bill of 800 yuan, due 5 days ago, with its freeze
// (overdue step 4) applied: bill b1.
func (e *env) frozen(t *testing.T, user string) {
	t.Helper()
	ctx := context.Background()
	dueAt := now.Add(-5 * 24 * time.Hour)
	if _, err := e.store.Apply(ctx, []state.Item{{Topic: 3, Offset: -1, Event: &events.Event{ID: "due-" + user, Type: events.TypeRepaymentDue,
		Source: "test", Subject: user, Time: dueAt, Due: &events.RepaymentDue{UserID: user, BillID: "b1", AmountFen: 80_000, DueAt: dueAt}}}}); err != nil {
		t.Fatal(err)
	}
	if froze, err := e.store.AdvanceBill(ctx, user, "b1", 4, true); err != nil || !froze {
		t.Fatalf("freeze: %v, %v", froze, err)
	}
}

// An unfreeze schedules the user's recompute before its state is written
// (a crash cannot lose it), but not due yet (a job claiming it in between
// would compute on the frozen state), and makes it due once the state is
// written.
func TestUnfreezeRecomputesOnceTheStateIsWritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.frozen(t, "gus")
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.repayments", record(t, events.Event{ID: "paid-g", Type: events.TypeRepaymentPaid,
		Source: "test", Subject: "gus", Time: now, Paid: &events.RepaymentPaid{UserID: "gus", BillID: "b1", AmountFen: 80_000}}))
	store := &orderStore{Store: e.store}
	e.runFor(t, store, nil, 1)
	store.mu.Lock()
	defer store.mu.Unlock()
	if want := []string{"recompute gus at now + 1m0s", "commit", "recompute gus at now + 0s"}; !slices.Equal(store.calls, want) {
		t.Fatalf("calls %q, want %q", store.calls, want)
	}
}

// A user whose key holds something that is no state (here a hash) does
// not stall the pipeline: its events are dead-lettered, saying the user
// is quarantined, and the events after them go through. (Before, a
// standalone Redis read the key as a user never seen, the write of the
// new user failed as a conflict, and the batch was computed again for
// ever.)
func TestAKeyThatIsNoStateIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rdb.HSet(ctx, e.store.Key(state.UserKey("hashed")), "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	// 15 payments at once: computed from an empty state, the 10th on
	// would raise velocity alerts; none may be published.
	var msgs []kafka.Message
	for i := range 15 {
		msgs = append(msgs, record(t, pay(fmt.Sprintf("h%d", i), "hashed", now, 100)))
	}
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", append(msgs, record(t, pay("c1", "carol", now, 100)))...)
	stop := e.start(t, nil)
	waitFor(t, "carol's payment", func() bool { n, _ := spend(t, e.store, "carol"); return n == 1 })
	dlq := testenv.ReadN(t, e.kafka.Addrs(), "fenqi.dlq", 15, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range dlq {
		if why := header(m, producers.HeaderError); !strings.Contains(why, "quarantined") || !strings.Contains(string(m.Value), `"hashed"`) {
			t.Fatalf("dead letter %q: %s", why, m.Value)
		}
	}
	for _, m := range testenv.ReadAll(t, e.kafka.Addrs(), "fenqi.decisions") {
		if d, err := events.DecodeDecision(m.Value); err != nil || d.Subject == "hashed" {
			t.Fatalf("a decision for the quarantined user: %+v, %v", d, err)
		}
	}
	if v, err := e.rdb.HGet(ctx, e.store.Key(state.UserKey("hashed")), "f").Result(); err != nil || v != "v" {
		t.Fatalf("the hash: %q, %v", v, err)
	}
}
