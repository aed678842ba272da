package consumers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/state"
)

// The deterministic crash simulation: random event streams (every type,
// upstream duplicates, repayments before their bill, several partitions,
// users moving to other partitions when the partition count is raised)
// go through the pipeline's own prepare and finish, batch N+1 prepared
// while batch N finishes as Run does, with a crash injected at random: in
// the middle of a publish, after the publish, after the state write, after
// the offset commit. After a crash a new pipeline (no drafts) starts from
// the committed offsets, as a restarted fenqid would. Now and then a job
// changes a user between prepare and finish (a quota check), so that the
// compare-and-set conflicts. The final state must equal the crash-free
// run's, and every decision id of the crash-free run must be published.
var (
	crashSeed  = flag.Int64("seed", -1, "crash simulation: run only this seed")
	crashSeeds = flag.Int("seeds", 2000, "crash simulation: how many seeds")
)

var errCrash = errors.New("simulated crash")

// recorder is the publisher: the real encoder, and a log of what the
// broker acknowledged (a crash may cut a write after some records).
type recorder struct {
	*producers.Publisher
	acked []kafka.Message
	cut   int // > 0: the next write acknowledges this many records, then fails
}

func (r *recorder) Write(_ context.Context, msgs []kafka.Message) error {
	if r.cut > 0 {
		n := min(r.cut-1, len(msgs))
		r.cut = 0
		r.acked = append(r.acked, msgs[:n]...)
		return errCrash
	}
	r.acked = append(r.acked, msgs...)
	return nil
}

// log is the input: records per (topic, partition), and the committed
// offsets of the group.
type simLog struct {
	records   []kafka.Message // in the order a consumer reads them
	committed map[string]int64
}

func tpKey(topic string, partition int) string { return fmt.Sprintf("%s/%d", topic, partition) }

func (l *simLog) commit(_ context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		if k := tpKey(m.Topic, m.Partition); m.Offset+1 > l.committed[k] {
			l.committed[k] = m.Offset + 1
		}
	}
	return nil
}

// unread is what a consumer starting now reads, in order.
func (l *simLog) unread() []kafka.Message {
	var out []kafka.Message
	for _, m := range l.records {
		if m.Offset >= l.committed[tpKey(m.Topic, m.Partition)] {
			out = append(out, m)
		}
	}
	return out
}

// stream draws a random stream for the seed's users.
func stream(t *testing.T, r *rand.Rand, prefix string, at time.Time) []kafka.Message {
	t.Helper()
	topics := DefaultTopics()
	users := make([]string, 1+r.IntN(4))
	for i := range users {
		users[i] = fmt.Sprintf("%s-u%d", prefix, i)
	}
	next := map[string]int64{}
	var out []kafka.Message
	var sent []events.Event
	cities := []string{"shanghai", "beijing", "shenzhen"}
	n := 5 + r.IntN(45)
	moveAt := n // no move
	if r.IntN(3) == 0 {
		moveAt = r.IntN(n)
	}
	for i := range n {
		u := users[r.IntN(len(users))]
		ev := events.Event{ID: fmt.Sprintf("%s-e%d", prefix, i), Source: "sim/" + []string{"pay", "bank"}[r.IntN(2)], Subject: u,
			Time: at.Add(time.Duration(i-n) * time.Minute)}
		var topic string
		bill := fmt.Sprintf("b%d", r.IntN(3))
		switch k := r.IntN(10); {
		case k < 4:
			hour := r.IntN(24)
			ev.Time = time.Date(at.Year(), at.Month(), at.Day()-r.IntN(3), hour, r.IntN(60), 0, 0, at.Location())
			ev.Type, topic = events.TypePayment, topics.Payments
			ev.Payment = &events.Payment{UserID: u, AmountFen: int64(100 + r.IntN(400_000)), Currency: "CNY",
				Scene:      []events.Scene{events.SceneEcommerce, events.SceneTransfer, events.SceneBillPay}[r.IntN(3)],
				MerchantID: "m1", Installments: 1, DeviceID: fmt.Sprintf("d%d", r.IntN(3)), City: cities[r.IntN(3)], Auth: events.AuthFace}
		case k < 6:
			ev.Type, topic = events.TypeLogin, topics.Logins
			ev.Login = &events.Login{UserID: u, DeviceID: fmt.Sprintf("d%d", r.IntN(3)), City: cities[r.IntN(3)], IP: "10.0.0.1", Auth: events.AuthPassword}
		case k < 7:
			ev.Type, topic = events.TypeRepaymentDue, topics.Repayments
			ev.Due = &events.RepaymentDue{UserID: u, BillID: bill, AmountFen: 50_000, DueAt: at.Add(-time.Duration(r.IntN(200)) * time.Hour)}
		case k < 9:
			ev.Type, topic = events.TypeRepaymentPaid, topics.Repayments
			ev.Paid = &events.RepaymentPaid{UserID: u, BillID: bill, AmountFen: int64(10_000 + r.IntN(50_000))}
		default:
			ev.Type, topic = events.TypeProfile, topics.Profiles
			ev.Profile = &events.Profile{UserID: u, PayScore: 550 + r.IntN(200), RealNameVerified: true, IdentityComplete: r.IntN(2) == 0,
				JudicialDefaulter: r.IntN(4) == 0, TransactionLimitFen: int64(r.IntN(2)) * 100_000}
		}
		if len(sent) > 0 && r.IntN(8) == 0 { // an upstream duplicate of an earlier event
			ev = sent[r.IntN(len(sent))]
			topic = map[string]string{events.TypePayment: topics.Payments, events.TypeLogin: topics.Logins,
				events.TypeRepaymentDue: topics.Repayments, events.TypeRepaymentPaid: topics.Repayments, events.TypeProfile: topics.Profiles}[ev.Type]
		}
		sent = append(sent, ev)
		raw, err := events.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// A user's events stay on one partition, until the partition
		// count is raised (at moveAt, in some streams): from then on on
		// another one.
		part := int(ev.Subject[len(ev.Subject)-1]-'0') % 2
		if i >= moveAt {
			part += 2
		}
		k := tpKey(topic, part)
		out = append(out, kafka.Message{Topic: topic, Partition: part, Offset: next[k], Key: []byte(ev.Subject), Value: raw, Time: ev.Time,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}}})
		next[k]++
	}
	return out
}

type simEnv struct {
	store *state.Store
	pub   *producers.Publisher
	rules scoring.Rules
	now   time.Time
}

// run processes l to its end, crashing where crash says, and returns the
// acknowledged records.
func (e *simEnv) run(t *testing.T, l *simLog, r *rand.Rand, crashes bool, users []string) []kafka.Message {
	t.Helper()
	ctx := context.Background()
	rec := &recorder{Publisher: e.pub}
	jobDone := false
	for restarts := 0; ; restarts++ {
		if restarts > 200 {
			t.Fatal("the simulation does not finish")
		}
		todo := l.unread()
		if len(todo) == 0 {
			if !jobDone { // the job runs once in every run, here if not before
				if _, err := e.store.RecordQuotaCheck(ctx, users[0], e.now); err != nil {
					t.Fatal(err)
				}
			}
			return rec.acked
		}
		p, err := New(Config{Brokers: []string{"sim:9092"}, Now: func() time.Time { return e.now }}, e.store,
			func() Rules { return &e.rules }, rec, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.commitMessages = l.commit
		p.step = func(name string) error {
			if crashes && r.IntN(6) == 0 {
				return errCrash
			}
			return nil
		}
		var batches [][]kafka.Message
		for len(todo) > 0 {
			n := min(len(todo), 1+r.IntN(12))
			batches, todo = append(batches, todo[:n]), todo[n:]
		}
		crashed := false
		var inflight *pending
		for i := 0; i <= len(batches) && !crashed; i++ {
			var next *pending
			if i < len(batches) {
				if next, err = p.prepare(ctx, batches[i]); err != nil {
					t.Fatal(err)
				}
			}
			if inflight != nil {
				if !jobDone && r.IntN(3) == 0 {
					// A job changes a user meanwhile: the write conflicts.
					jobDone = true
					if _, err := e.store.RecordQuotaCheck(ctx, users[0], e.now); err != nil {
						t.Fatal(err)
					}
				}
				if crashes && r.IntN(10) == 0 {
					rec.cut = 1 + r.IntN(3)
				}
				err := p.finish(ctx, inflight)
				inflight.endSpans()
				if errors.Is(err, errCrash) {
					crashed = true
					rec.cut = 0
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			inflight = next
		}
		if inflight != nil && crashed {
			inflight.endSpans()
		}
	}
}

// states reads users' states, without the write tokens.
func states(t *testing.T, s *state.Store, users []string) []*state.User {
	t.Helper()
	us, err := s.Users(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func TestCrashSimulation(t *testing.T) {
	rdb := testenv.Redis(t)
	now := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	store, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	e := &simEnv{store: store, pub: pub, rules: *scoring.DefaultRules(), now: now}
	seeds := make([]int64, 0, *crashSeeds)
	if *crashSeed >= 0 {
		seeds = append(seeds, *crashSeed)
	} else {
		n := *crashSeeds
		if testing.Short() {
			n = 200
		}
		for s := range n {
			seeds = append(seeds, int64(s))
		}
	}
	crashes := 0
	for _, seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		records := stream(t, r, fmt.Sprintf("s%d", seed), now)
		var users []string
		for _, m := range records {
			if u := string(m.Key); !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
		// Crash-free, then (on a flushed Redis) with crashes.
		flush := func() {
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}
		flush()
		refAcked := e.run(t, &simLog{records: records, committed: map[string]int64{}}, rand.New(rand.NewPCG(uint64(seed), 8)), false, users)
		want := states(t, store, users)
		flush()
		got := e.run(t, &simLog{records: records, committed: map[string]int64{}}, rand.New(rand.NewPCG(uint64(seed), 9)), true, users)

		published := map[string]bool{}
		for _, m := range got {
			published[decisionID(t, m)] = true
		}
		for _, m := range refAcked {
			if id := decisionID(t, m); !published[id] {
				t.Fatalf("seed %d (-seed %d to replay): decision %s of the crash-free run was never published after crashes", seed, seed, id)
			}
		}
		for i, u := range states(t, store, users) {
			if !reflect.DeepEqual(want[i], u) {
				t.Fatalf("seed %d (-seed %d to replay): user %s differs after crashes:\n crash-free %+v\n crashes    %+v", seed, seed, users[i], want[i], u)
			}
		}
		if len(got) > len(refAcked) {
			crashes++
		}
	}
	t.Logf("%d seeds; %d published more records than the crash-free run (repeats after crashes)", len(seeds), crashes)
}

func decisionID(t *testing.T, m kafka.Message) string {
	t.Helper()
	d, err := events.DecodeDecision(m.Value)
	if err != nil {
		// a dead letter: named by its record
		return "dlq:" + string(m.Key)
	}
	return d.ID
}
