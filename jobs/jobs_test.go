package jobs_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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

func TestOverdueStage(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	freeze := 72*time.Hour + time.Second // DOMAIN.md §6: overdue more than 72 h
	cases := []struct {
		name     string
		overdue  time.Duration
		done     int
		freezeOn bool
		want     jobs.Stage
	}{
		{"not yet a day overdue", 23 * time.Hour, 0, true, jobs.Stage{Stage: 0, Next: day}},
		{"day 1: first reminder", day, 0, true, jobs.Stage{Stage: 1, Remind: 1, Next: 2 * day}},
		{"day 2: the last reminder, the next check is the freeze", 2 * day, 1, true, jobs.Stage{Stage: 2, Remind: 2, Next: freeze}},
		{"71:59 overdue: nothing yet", 71*time.Hour + 59*time.Minute, 2, true, jobs.Stage{Stage: 2, Next: freeze}},
		{"72:00:00 overdue is not more than 72 h", 72 * time.Hour, 2, true, jobs.Stage{Stage: 2, Next: freeze}},
		{"72:00:01 overdue: frozen", freeze, 2, true, jobs.Stage{Stage: 4, Freeze: true, Done: true}},
		{"72:01 overdue: frozen", 72*time.Hour + time.Minute, 2, true, jobs.Stage{Stage: 4, Freeze: true, Done: true}},
		{"a bill whose 3rd reminder was sent before: frozen at 72 h", 72*time.Hour + time.Minute, 3, true, jobs.Stage{Stage: 4, Freeze: true, Done: true}},
		{"a bill whose 3rd reminder was sent before, early: the freeze is next", 72 * time.Hour, 3, true, jobs.Stage{Stage: 3, Next: freeze}},
		{"after a 10-day outage: only the freeze", 10 * day, 0, true, jobs.Stage{Stage: 4, Freeze: true, Done: true}},
		{"after a 2-day outage: only day 2's reminder", 2*day + time.Hour, 0, true, jobs.Stage{Stage: 2, Remind: 2, Next: freeze}},
		{"already done today (a second claim)", day + time.Hour, 1, true, jobs.Stage{Stage: 1, Next: 2 * day}},
		{"freeze switched off: reminders end at day 3", 5 * day, 3, false, jobs.Stage{Stage: 3, Done: true}},
		{"freeze switched off: day 3 is the last check", 3 * day, 2, false, jobs.Stage{Stage: 3, Remind: 3, Done: true}},
		{"freeze switched off: day 2 then day 3", 2 * day, 1, false, jobs.Stage{Stage: 2, Remind: 2, Next: 3 * day}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := jobs.OverdueStage(tc.overdue, tc.done, 3, tc.freezeOn); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNextDueIsSpreadAndInTheFuture(t *testing.T) {
	t.Parallel()
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)
	seen := map[int64]bool{}
	for i := range 1000 {
		id := "user-" + string(rune('a'+i%26)) + time.Duration(i).String()
		next := jobs.NextDue(p, id, now)
		if !next.After(now) || next.After(now.AddDate(0, 0, 90)) {
			t.Fatalf("%s: next %v not within (now, now+90d]", id, next)
		}
		if again := jobs.NextDue(p, id, now.Add(time.Hour)); !again.Equal(next) && !next.Before(now.Add(time.Hour+time.Second)) {
			t.Fatalf("%s: the due time moved from %v to %v within its cycle", id, next, again)
		}
		seen[next.Unix()/86400] = true
	}
	if len(seen) < 80 {
		t.Fatalf("1000 users fall on only %d distinct days of the 90-day cycle", len(seen))
	}
	q := *p
	q.Recompute.Mode = policy.RecomputeCalendarQuarter
	next := jobs.NextDue(&q, "u1", now)
	if next.Before(time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)) || !next.Before(time.Date(2026, 4, 8, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("calendar quarter: %v is not in the first 7 days of Q2 (from 12:00 UTC, when Q2 has begun everywhere)", next)
	}
}

// world is a real Redis and a real broker with a clock the test moves.
type world struct {
	t     *testing.T
	kafka *testenv.KafkaCluster
	store *state.Store
	rdb   *redis.Client
	pub   *producers.Publisher
	mu    sync.Mutex
	now   time.Time
}

func (w *world) clock() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now }
func (w *world) set(t time.Time)  { w.mu.Lock(); w.now = t; w.mu.Unlock() }

// newWorld starts the world; topics are more topics to create (the input
// topics, for a test that runs the consumer).
func newWorld(t *testing.T, start time.Time, topics ...string) *world {
	t.Helper()
	w := &world{t: t, now: start}
	w.kafka = testenv.Kafka(t, append([]string{"fenqi.decisions", "fenqi.dlq"}, topics...)...)
	w.rdb = testenv.Redis(t)
	store, err := state.New(w.rdb, state.Config{Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	w.store = store
	pub, err := producers.New(producers.Config{Brokers: w.kafka.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	w.pub = pub
	return w
}

func (w *world) runner() *jobs.Runner { return w.tracedRunner(nil) }

func (w *world) tracedRunner(tel *telemetry.Telemetry) *jobs.Runner {
	w.t.Helper()
	return w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, Telemetry: tel}, w.pub)
}

func (w *world) runnerWith(cfg jobs.Config, pub jobs.Publisher) *jobs.Runner {
	w.t.Helper()
	p, err := policy.Preset("wechat")
	if err != nil {
		w.t.Fatal(err)
	}
	rules, err := scoring.NewRules(p)
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := jobs.New(cfg, w.store, pub,
		func() (*policy.Policy, *scoring.Rules) { return p, rules }, nil, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) apply(evs ...*events.Event) {
	w.t.Helper()
	items := make([]state.Item, len(evs))
	for i, e := range evs {
		items[i] = state.Item{Event: e, Topic: 3, Offset: -1}
	}
	if _, err := w.store.Apply(context.Background(), items); err != nil {
		w.t.Fatal(err)
	}
}

// decisions returns every decision on the topic, by type.
func (w *world) decisions() map[string][]events.Decision {
	w.t.Helper()
	out := map[string][]events.Decision{}
	for _, m := range testenv.ReadAll(w.t, w.kafka.Addrs(), "fenqi.decisions") {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			w.t.Fatal(err)
		}
		out[d.Type] = append(out[d.Type], d)
	}
	return out
}

// produceAt writes events to the repayments topic as records stamped at
// (the time they reached the topic).
func (w *world) produceAt(t *testing.T, at time.Time, evs ...*events.Event) {
	t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		e.Source = "jobs-test"
		v, err := events.Marshal(*e)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(e.Subject), Value: v, Time: at}
	}
	testenv.Produce(t, w.kafka.Addrs(), events.TopicRepayments, msgs...)
}

// consume runs the consumer (group consumers.DefaultGroupID) on the
// world's clock until the returned stop is called.
func (w *world) consume() (stop func()) {
	w.t.Helper()
	p, err := policy.Preset("wechat")
	if err != nil {
		w.t.Fatal(err)
	}
	rules, err := scoring.NewRules(p)
	if err != nil {
		w.t.Fatal(err)
	}
	pipe, err := consumers.New(consumers.Config{Brokers: w.kafka.Addrs(), Now: w.clock}, w.store,
		func() consumers.Rules { return rules }, w.pub, nil, nil, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("consumer: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
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

func runOnce(t *testing.T, rs ...*jobs.Runner) {
	t.Helper()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			if _, err := r.RunOnce(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func due(id, user, bill string, fen int64, at time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentDue, Subject: user, Time: at,
		Due: &events.RepaymentDue{UserID: user, BillID: bill, AmountFen: fen, DueAt: at}}
}

func paid(id, user, bill string, fen int64, at time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentPaid, Subject: user, Time: at,
		Paid: &events.RepaymentPaid{UserID: user, BillID: bill, AmountFen: fen}}
}

func TestOverdueRemindersFreezeOnceWithTwoInstances(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour))
	w.apply(due("d1", "erin", "bill-1", 50_000, dueAt))
	a, b := w.runner(), w.runner() // two fenqid instances

	steps := []struct {
		at                time.Duration
		reminders, frozen int
	}{
		{23 * time.Hour, 0, 0},             // not a day overdue yet
		{24 * time.Hour, 1, 0},             // day 1
		{48*time.Hour + time.Minute, 2, 0}, // day 2: the last reminder
		{71*time.Hour + 59*time.Minute, 2, 0},
		{72 * time.Hour, 2, 0},             // 72 h: not yet more than 3 days
		{72*time.Hour + time.Second, 2, 1}, // more than 72 h: frozen
		{200 * time.Hour, 2, 1},            // nothing more
	}
	for _, s := range steps {
		w.set(dueAt.Add(s.at))
		runOnce(t, a, b)
		ds := w.decisions()
		if len(ds[events.TypeDecisionOverdue]) != s.reminders || len(ds[events.TypeDecisionFrozen]) != s.frozen {
			t.Fatalf("at due+%v: %d reminders and %d freezes, want %d and %d",
				s.at, len(ds[events.TypeDecisionOverdue]), len(ds[events.TypeDecisionFrozen]), s.reminders, s.frozen)
		}
	}
	u, err := w.store.User(context.Background(), "erin")
	if err != nil {
		t.Fatal(err)
	}
	if !u.FrozenOverdue {
		t.Fatal("the user is not marked frozen in state")
	}
	ds := w.decisions()
	for i, d := range ds[events.TypeDecisionOverdue] {
		if d.Subject != "erin" || d.Data.CausationID != "bill:bill-1" {
			t.Fatalf("reminder %d: %+v", i, d)
		}
	}

	// Paying the bill unfreezes: the repayment event's outcome says so.
	out, err := w.store.Apply(context.Background(), []state.Item{{Event: paid("p1", "erin", "bill-1", 50_000, w.clock()), Topic: 3, Offset: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Unfroze {
		t.Fatal("settling the only overdue bill did not unfreeze")
	}
	if u, _ := w.store.User(context.Background(), "erin"); u.FrozenOverdue || u.SettledEpisodes != 1 || len(u.RecentEpisodes) != 1 || u.RecentEpisodes[0].SettledAt.Sub(u.RecentEpisodes[0].DueAt)/(24*time.Hour) != 8 {
		t.Fatalf("after settlement: frozen %v, episodes %d %+v", u.FrozenOverdue, u.SettledEpisodes, u.RecentEpisodes)
	}
}

func TestPaymentBeforeTheTimerCancelsIt(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt)
	w.apply(due("d1", "fay", "bill-1", 10_000, dueAt), paid("p1", "fay", "bill-1", 4_000, dueAt.Add(time.Hour)))
	w.set(dueAt.Add(25 * time.Hour))
	runOnce(t, w.runner())
	if n := len(w.decisions()[events.TypeDecisionOverdue]); n != 1 {
		t.Fatalf("a partly paid bill: %d reminders, want 1", n)
	}
	w.apply(paid("p2", "fay", "bill-1", 6_000, w.clock()))
	w.set(dueAt.Add(10 * 24 * time.Hour))
	runOnce(t, w.runner())
	ds := w.decisions()
	if len(ds[events.TypeDecisionOverdue]) != 1 || len(ds[events.TypeDecisionFrozen]) != 0 {
		t.Fatalf("after settlement: %d reminders, %d freezes", len(ds[events.TypeDecisionOverdue]), len(ds[events.TypeDecisionFrozen]))
	}
	if _, total, _ := w.store.ScheduleStats(context.Background(), state.TimersKey, w.clock()); total != 0 {
		t.Fatalf("%d timers left", total)
	}
}

func TestRestartBetweenDueAndFiring(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt)
	w.apply(due("d1", "gus", "bill-1", 10_000, dueAt))
	first := w.runner()
	runOnce(t, first) // nothing due yet; then "first" goes away
	// Down for six days; a new instance comes back and fires late.
	w.set(dueAt.Add(6 * 24 * time.Hour))
	runOnce(t, w.runner())
	ds := w.decisions()
	if len(ds[events.TypeDecisionFrozen]) != 1 || len(ds[events.TypeDecisionOverdue]) != 0 {
		t.Fatalf("late firing: %d freezes, %d reminders; want the freeze only", len(ds[events.TypeDecisionFrozen]), len(ds[events.TypeDecisionOverdue]))
	}
}

func TestRecomputeOnFirstActivityOnceWithTwoInstances(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, now)
	w.apply(&events.Event{ID: "pr1", Type: events.TypeProfile, Subject: "hal", Time: now,
		Profile: &events.Profile{UserID: "hal", PayScore: 780, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2020-01-01", WealthBalanceFen: 6_000_000}})
	a, b := w.runner(), w.runner()
	runOnce(t, a, b)
	qs := w.decisions()[events.TypeDecisionQuota]
	if len(qs) != 1 {
		t.Fatalf("%d quota decisions, want 1", len(qs))
	}
	if qs[0].Subject != "hal" || qs[0].Data.PolicyVersion == "" {
		t.Fatalf("quota decision: %+v", qs[0])
	}
	// The next recompute is months away: running again now does nothing.
	w.set(now.Add(time.Hour))
	runOnce(t, a, b)
	if n := len(w.decisions()[events.TypeDecisionQuota]); n != 1 {
		t.Fatalf("%d quota decisions after a second run, want 1", n)
	}
	// A quarter later, once more.
	w.set(now.AddDate(0, 0, 91))
	runOnce(t, a, b)
	if n := len(w.decisions()[events.TypeDecisionQuota]); n != 2 {
		t.Fatalf("%d quota decisions a cycle later, want 2", n)
	}
}

// An override's end is a quota change: the user is recomputed when it ends,
// not a whole cycle later.
func TestOverrideEndSchedulesARecompute(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, now)
	w.apply(&events.Event{ID: "pr1", Type: events.TypeProfile, Subject: "ola", Time: now,
		Profile: &events.Profile{UserID: "ola", PayScore: 700}})
	ends := now.Add(5 * 24 * time.Hour)
	if err := w.store.SetOverride(context.Background(), "ola", &state.Override{QuotaFen: 1_000_000, Reason: "test", ExpiresAt: ends}); err != nil {
		t.Fatal(err)
	}
	runOnce(t, w.runner())
	if n := len(w.decisions()[events.TypeDecisionQuota]); n != 1 {
		t.Fatalf("%d quota decisions, want 1", n)
	}
	w.set(ends.Add(2 * time.Second))
	runOnce(t, w.runner())
	qs := w.decisions()[events.TypeDecisionQuota]
	if len(qs) != 2 {
		t.Fatalf("%d quota decisions once the override ended, want 2", len(qs))
	}
}

// A job's decisions are traced: each batch is a root span ("jobs recompute",
// "jobs overdue_checks") with one "fenqi.decisions publish" child per
// decision, whose context is in the decision's traceparent header; no span
// carries an attribute outside the allowed list.
func TestJobsAreTraced(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, start)
	tel, exp := testenv.Tracing(t)
	r := w.tracedRunner(tel)
	w.apply(due("d1", "ann", "bill-1", 10_000, start.Add(-25*time.Hour))) // a reminder is due, and a first recompute
	runOnce(t, r)

	msgs := testenv.ReadN(t, w.kafka.Addrs(), "fenqi.decisions", 2, 20*time.Second)
	spans := exp.GetSpans()
	if err := telemetry.CheckSpanAttributes(spans); err != nil {
		t.Error(err)
	}
	batches := map[string]tracetest.SpanStub{}
	publish := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		switch s.Name {
		case telemetry.SpanJobsRecompute, telemetry.SpanJobsOverdue:
			batches[s.Name] = s
		case "fenqi.decisions publish":
			publish[s.SpanContext.SpanID()] = s
		}
	}
	for _, name := range []string{telemetry.SpanJobsRecompute, telemetry.SpanJobsOverdue} {
		if _, ok := batches[name]; !ok {
			t.Fatalf("no %q span among %d spans", name, len(spans))
		}
	}
	for _, m := range msgs {
		var tp string
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				tp = string(h.Value)
			}
		}
		parts := strings.Split(tp, "-")
		if len(parts) != 4 {
			t.Fatalf("decision without a traceparent: headers %v", m.Headers)
		}
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		want := batches[telemetry.SpanJobsOverdue]
		if d.Type == events.TypeDecisionQuota {
			want = batches[telemetry.SpanJobsRecompute]
		}
		if parts[1] != want.SpanContext.TraceID().String() {
			t.Errorf("%s decision in trace %s, want the %q span's %s", d.Type, parts[1], want.Name, want.SpanContext.TraceID())
		}
		var sid trace.SpanID
		if _, err := hex.Decode(sid[:], []byte(parts[2])); err != nil {
			t.Fatal(err)
		}
		ps, ok := publish[sid]
		if !ok || ps.Parent.SpanID() != want.SpanContext.SpanID() {
			t.Errorf("%s decision: its publish span %s is not a child of %q", d.Type, parts[2], want.Name)
		}
	}
}

// profiles applies a first profile of n users (user-00, user-01…) at now:
// each makes the user's first recompute due.
func (w *world) profiles(now time.Time, n int) {
	evs := make([]*events.Event, n)
	for i := range evs {
		id := fmt.Sprintf("user-%02d", i)
		evs[i] = &events.Event{ID: "pr-" + id, Type: events.TypeProfile, Subject: id, Time: now,
			Profile: &events.Profile{UserID: id, PayScore: 700, RealNameVerified: true, IdentityComplete: true}}
	}
	w.apply(evs...)
}

// wantQuotaDecisions fails the test unless each of profiles' n users got
// want quota decisions (when says when, in the message).
func (w *world) wantQuotaDecisions(t *testing.T, n, want int, when string) {
	t.Helper()
	per := map[string]int{}
	for _, d := range w.decisions()[events.TypeDecisionQuota] {
		per[d.Subject]++
	}
	for i := range n {
		if id := fmt.Sprintf("user-%02d", i); per[id] != want {
			t.Errorf("%s: %d quota decisions%s, want %d", id, per[id], when, want)
		}
	}
}

// failingPublisher is a real publisher whose write number failAt fails
// with a permanent error, or whose encoding number failEncodeAt does.
type failingPublisher struct {
	*producers.Publisher
	mu           sync.Mutex
	writes       int
	failAt       int
	err          error // nil: a permanent refusal
	encodes      int
	failEncodeAt int
}

func (p *failingPublisher) DecisionMessages(ds []events.Decision) ([]kafka.Message, error) {
	p.mu.Lock()
	p.encodes++
	fail := p.encodes == p.failEncodeAt
	p.mu.Unlock()
	if fail {
		return nil, errors.New("test: a decision could not be encoded")
	}
	return p.Publisher.DecisionMessages(ds)
}

func (p *failingPublisher) Write(ctx context.Context, msgs []kafka.Message) error {
	p.mu.Lock()
	p.writes++
	fail := p.writes == p.failAt
	p.mu.Unlock()
	if fail && p.err != nil {
		return p.err
	}
	if fail {
		return errors.New("test: the broker refused the write")
	}
	return p.Publisher.Write(ctx, msgs)
}

// A recompute that fails half-way loses no user and doubles none: the
// batch whose publish failed and the batches already claimed ahead of it
// (the recompute claims and reads ahead of the batch it works) are
// recomputed once their lease ends, and every user gets exactly one quota
// decision.
func TestRecomputeFailingMidwayLosesNoUser(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, now)
	const users = 50
	w.profiles(now, users)
	pub := &failingPublisher{Publisher: w.pub, failAt: 2}
	r := w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, Batch: 10}, pub)
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("the failed write was not reported")
	}
	if n := len(w.decisions()[events.TypeDecisionQuota]); n != 10 {
		t.Fatalf("%d quota decisions after the failure, want the first batch's 10", n)
	}
	// Before the leases end only users never claimed are due; after, the
	// claimed but unfinished ones too.
	w.set(now.Add(30 * time.Second))
	runOnce(t, r)
	if n := len(w.decisions()[events.TypeDecisionQuota]); n >= users {
		t.Fatalf("%d quota decisions before the leases ended: the claimed users were not held back", n)
	}
	w.set(now.Add(2 * time.Minute))
	runOnce(t, r)
	w.wantQuotaDecisions(t, users, 1, "")
	cyc := state.Interval(90)
	if due, _, err := w.store.RecomputeStats(context.Background(), w.clock(), cyc); err != nil || due != 0 {
		t.Fatalf("%d recomputes still due (%v)", due, err)
	}

	// The same a cycle later, when the users come from the cycle's cursor
	// (batches leased whole) rather than from triggers.
	later := now.AddDate(0, 0, 91)
	w.set(later)
	pub = &failingPublisher{Publisher: w.pub, failAt: 2}
	r = w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, Batch: 10}, pub)
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("the failed write was not reported")
	}
	w.set(later.Add(2 * time.Minute))
	runOnce(t, r)
	w.wantQuotaDecisions(t, users, 2, " after a cycle")
	if due, _, err := w.store.RecomputeStats(context.Background(), w.clock(), cyc); err != nil || due != 0 {
		t.Fatalf("%d recomputes still due after the cycle (%v)", due, err)
	}
}

// A recompute batch whose decisions cannot be encoded (on the readers'
// goroutines, ahead of the batches being sent) is neither published nor
// saved: the recompute stops with the error, and once the leases end every
// user gets exactly one quota decision.
func TestRecomputeEncodingFailureLosesNoUser(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, now)
	const users = 50
	w.profiles(now, users)
	pub := &failingPublisher{Publisher: w.pub, failEncodeAt: 2}
	r := w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, Batch: 10}, pub)
	if _, err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "could not be encoded") {
		t.Fatalf("RunOnce: %v, want the encoding's error", err)
	}
	if n := len(w.decisions()[events.TypeDecisionQuota]); n > 10 {
		t.Fatalf("%d quota decisions after the failure: more than the one batch encoded before it", n)
	}
	w.set(now.Add(2 * time.Minute))
	runOnce(t, r)
	w.wantQuotaDecisions(t, users, 1, "")
	if due, _, err := w.store.RecomputeStats(context.Background(), w.clock(), state.Interval(90)); err != nil || due != 0 {
		t.Fatalf("%d recomputes still due (%v)", due, err)
	}
}

// A cycle batch saved whose lease outlived the save (the instance died
// between the two, or was slow past its lease while another claimed the
// batch again): claimed again, its users are skipped, not recomputed twice.
func TestCycleBatchClaimedAgainSkipsSavedUsers(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, now)
	ctx := context.Background()
	evs := make([]*events.Event, 40)
	for i := range evs {
		id := fmt.Sprintf("sk-%02d", i)
		evs[i] = &events.Event{ID: "pr-" + id, Type: events.TypeProfile, Subject: id, Time: now,
			Profile: &events.Profile{UserID: id, PayScore: 700}}
	}
	w.apply(evs...)
	r := w.runner()
	runOnce(t, r) // first activity
	// Another instance claims and saves the whole next cycle, but its
	// leases stay behind.
	later := now.AddDate(0, 0, 91)
	w.set(later)
	cyc := state.Interval(90)
	rdb := w.rdb
	var leases map[string]string
	n := 0
	for {
		b, err := w.store.ClaimRecomputes(ctx, later, 15, time.Minute, cyc)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Claims) == 0 {
			break
		}
		leases = rdb.HGetAll(ctx, state.LeasesKey).Val()
		qs := make([]state.Quota, len(b.Claims))
		for i, c := range b.Claims {
			qs[i] = state.Quota{UserID: c.Member, QuotaFen: 1, Seq: 2, CycleDone: c.Due}
		}
		if err := w.store.SaveQuotas(ctx, b, qs); err != nil {
			t.Fatal(err)
		}
		for f, v := range leases {
			if err := rdb.HSet(ctx, state.LeasesKey, f, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
		n += len(b.Claims)
	}
	if n != 40 {
		t.Fatalf("claimed %d users of the cycle, want 40", n)
	}
	w.set(later.Add(2 * time.Minute))
	runOnce(t, r)
	if got := len(w.decisions()[events.TypeDecisionQuota]); got != 40 {
		t.Fatalf("%d quota decisions, want the first activity's 40 and none again", got)
	}
	if left := rdb.HLen(ctx, state.LeasesKey).Val(); left != 0 {
		t.Fatalf("%d leases left", left)
	}
}

// watermark measures the repayments topic for the world's consumer group,
// on the world's clock.
func (w *world) watermark() *consumers.Watermark {
	w.t.Helper()
	wm, err := consumers.NewWatermark(consumers.WatermarkConfig{Brokers: w.kafka.Addrs(), Now: w.clock})
	if err != nil {
		w.t.Fatal(err)
	}
	return wm
}

// caughtUp waits until the consumer group has processed (committed) every
// record of the repayments topic.
func (w *world) caughtUp(wm *consumers.Watermark) {
	w.t.Helper()
	waitFor(w.t, "the repayments topic processed", func() bool {
		r, err := wm.Read(context.Background())
		return err == nil && r.Behind == 0
	})
}

func (w *world) watermarkRunner(wm *consumers.Watermark) *jobs.Runner {
	w.t.Helper()
	return w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, Watermark: wm.At}, w.pub)
}

func (w *world) openBill(user, bill string) bool {
	w.t.Helper()
	bs, err := w.store.OpenBills(context.Background(), []state.TimerClaim{{UserID: user, BillID: bill}})
	if err != nil {
		w.t.Fatal(err)
	}
	return bs[0] != nil
}

// DOMAIN §6: overdue is judged on the stream, not only on the clock. fenqid
// is down from before a bill's due time; the user pays 2 hours after it,
// and the repayment waits on the topic. fenqid comes back 5 days later and
// its jobs run before the consumer has caught up: no reminder, no freeze
// (and so no unfreeze either), the checks reported waiting. Once the
// backlog is processed the bill is settled and nothing is published for
// it; a bill in the same backlog that nobody paid is frozen then.
func TestOverdueWaitsForTheRepaymentsBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour), consumers.DefaultTopics().List()...)
	wm := w.watermark()
	billed := dueAt.Add(-time.Hour)
	d1, d2 := due("d1", "ida", "bill-1", 50_000, dueAt), due("d2", "jon", "bill-9", 30_000, dueAt)
	d1.Time, d2.Time = billed, billed
	w.produceAt(t, billed, d1, d2)
	stop := w.consume()
	w.caughtUp(wm)
	stop() // the downtime begins
	if !w.openBill("ida", "bill-1") || !w.openBill("jon", "bill-9") {
		t.Fatal("the bills are not open in state")
	}

	paidAt := dueAt.Add(2 * time.Hour)
	w.produceAt(t, paidAt, paid("p1", "ida", "bill-1", 50_000, paidAt))
	w.set(dueAt.Add(5 * 24 * time.Hour))
	r := w.watermarkRunner(wm)
	runOnce(t, r)
	ds := w.decisions()
	if n, m := len(ds[events.TypeDecisionOverdue]), len(ds[events.TypeDecisionFrozen]); n+m != 0 {
		t.Fatalf("the repayment waiting on the topic: %d reminders, %d freezes published, want none", n, m)
	}
	if !r.Overdue.Waiting.Load() || r.Overdue.Held.Load() != 2 {
		t.Fatalf("waiting %v, %d checks held; want waiting with both bills' checks held", r.Overdue.Waiting.Load(), r.Overdue.Held.Load())
	}
	if at := time.Unix(0, r.Overdue.JudgedAt.Load()); !at.Equal(paidAt) {
		t.Fatalf("judged at %v, want the waiting repayment's timestamp %v", at, paidAt)
	}
	if behind := time.Duration(r.Overdue.Behind.Load()); behind != w.clock().Sub(paidAt) {
		t.Fatalf("behind the clock by %v, want %v", behind, w.clock().Sub(paidAt))
	}
	if u, err := w.store.User(ctx, "ida"); err != nil || u.FrozenOverdue {
		t.Fatalf("ida frozen in state (%v)", err)
	}
	if _, total, _ := w.store.ScheduleStats(ctx, state.TimersKey, w.clock()); total != 2 {
		t.Fatalf("%d timers, want both bills' still scheduled", total)
	}

	// The consumer processes the backlog: ida's bill is settled.
	stop = w.consume()
	w.caughtUp(wm)
	stop()
	if w.openBill("ida", "bill-1") {
		t.Fatal("the repayment did not settle the bill")
	}
	runOnce(t, r)
	ds = w.decisions()
	for _, typ := range []string{events.TypeDecisionOverdue, events.TypeDecisionFrozen, events.TypeDecisionUnfrozen} {
		for _, d := range ds[typ] {
			if d.Subject == "ida" {
				t.Fatalf("a %s decision for the bill paid 2h after its due time: %+v", typ, d)
			}
		}
	}
	if fz := ds[events.TypeDecisionFrozen]; len(fz) != 1 || fz[0].Subject != "jon" || len(ds[events.TypeDecisionOverdue]) != 0 {
		t.Fatalf("the unpaid bill, once caught up: %d freezes %+v and %d reminders; want jon's freeze only",
			len(fz), fz, len(ds[events.TypeDecisionOverdue]))
	}
	if r.Overdue.Waiting.Load() || r.Overdue.Held.Load() != 0 || r.Overdue.Behind.Load() != 0 {
		t.Fatalf("still waiting after the backlog: %v, %d held, %v behind", r.Overdue.Waiting.Load(), r.Overdue.Held.Load(), time.Duration(r.Overdue.Behind.Load()))
	}
	if _, total, _ := w.store.ScheduleStats(ctx, state.TimersKey, w.clock()); total != 0 {
		t.Fatalf("%d timers left", total)
	}
}

// With the repayments topic processed up to the clock, the watermark is
// the clock and the checks run as without one: a reminder for a bill truly
// overdue.
func TestOverdueOnTheClockWhenTheRepaymentsAreProcessed(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour), consumers.DefaultTopics().List()...)
	wm := w.watermark()
	d := due("d1", "kim", "bill-1", 20_000, dueAt)
	d.Time = dueAt.Add(-time.Hour)
	w.produceAt(t, d.Time, d)
	stop := w.consume()
	w.caughtUp(wm)
	stop()

	w.set(dueAt.Add(25 * time.Hour))
	r := w.watermarkRunner(wm)
	runOnce(t, r)
	rs := w.decisions()[events.TypeDecisionOverdue]
	if len(rs) != 1 || rs[0].Subject != "kim" {
		t.Fatalf("%d reminders %+v, want kim's day-1 reminder", len(rs), rs)
	}
	if r.Overdue.Waiting.Load() || !time.Unix(0, r.Overdue.JudgedAt.Load()).Equal(w.clock()) {
		t.Fatalf("waiting %v, judged at %v; want the clock %v", r.Overdue.Waiting.Load(), time.Unix(0, r.Overdue.JudgedAt.Load()), w.clock())
	}
}

// A backlog whose first record is stamped after a check's due time holds
// back only what is due after it: the bill is judged at the watermark, a
// day overdue (day 1's reminder), not at the clock's two days.
func TestOverdueJudgedAtTheWatermark(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour), consumers.DefaultTopics().List()...)
	wm := w.watermark()
	d := due("d1", "lou", "bill-1", 20_000, dueAt)
	d.Time = dueAt.Add(-time.Hour)
	w.produceAt(t, d.Time, d)
	stop := w.consume()
	w.caughtUp(wm)
	stop()

	// Another user's bill, stamped 30 h after lou's due time, waits.
	later := dueAt.Add(30 * time.Hour)
	w.produceAt(t, later, due("d2", "max", "bill-2", 10_000, later))
	w.set(dueAt.Add(50 * time.Hour))
	r := w.watermarkRunner(wm)
	runOnce(t, r)
	rs := w.decisions()[events.TypeDecisionOverdue]
	if len(rs) != 1 || rs[0].Subject != "lou" || rs[0].ID != events.DecisionID(scoring.RuleOverdueReminder, "lou", "bill-1", "1") {
		t.Fatalf("reminders %+v, want lou's day-1 reminder only", rs)
	}
	if !time.Unix(0, r.Overdue.JudgedAt.Load()).Equal(later) {
		t.Fatalf("judged at %v, want %v", time.Unix(0, r.Overdue.JudgedAt.Load()), later)
	}
	// Day 2's check is due on the clock, not at the watermark: held.
	runOnce(t, r)
	if n := len(w.decisions()[events.TypeDecisionOverdue]); n != 1 {
		t.Fatalf("%d reminders, want day 2's held back", n)
	}
	if !r.Overdue.Waiting.Load() || r.Overdue.Held.Load() != 1 {
		t.Fatalf("waiting %v, %d held; want day 2's check held", r.Overdue.Waiting.Load(), r.Overdue.Held.Load())
	}
}

// A user whose state cannot be read is skipped by the overdue checks, not a
// reason for the jobs to stop (issue 12): its check waits an hour at a
// time, and the other users' checks fire.
func TestOverdueSkipsAQuarantinedUser(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour))
	w.apply(due("d1", "hal", "bill-1", 50_000, dueAt), due("d2", "ivy", "bill-2", 50_000, dueAt))
	if err := w.rdb.Set(context.Background(), state.UserKey("hal"), "\x09garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := w.runner()
	w.set(dueAt.Add(25 * time.Hour))
	runOnce(t, r)
	ds := w.decisions()[events.TypeDecisionOverdue]
	if len(ds) != 1 || ds[0].Subject != "ivy" {
		t.Fatalf("reminders %+v, want ivy's only", ds)
	}
	sc, err := w.rdb.ZScore(context.Background(), state.TimersKey, "3:halbill-1").Result()
	if err != nil {
		members, _ := w.rdb.ZRangeWithScores(context.Background(), state.TimersKey, 0, -1).Result()
		t.Fatalf("hal's check is gone (%v): %v", err, members)
	}
	if want := w.clock().Add(time.Hour).Unix(); int64(sc) != want {
		t.Errorf("hal's check at %d, want an hour later (%d)", int64(sc), want)
	}
}
