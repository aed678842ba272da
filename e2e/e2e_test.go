package e2e

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// clock is a test clock shared by every part of one story.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// policyBox holds the policy in force; swap changes it mid-stream.
type policyBox struct {
	cur atomic.Pointer[struct {
		p *policy.Policy
		r *scoring.Rules
	}]
}

func newPolicyBox(t *testing.T, p *policy.Policy) *policyBox {
	b := &policyBox{}
	b.swap(t, p)
	return b
}

func (b *policyBox) swap(t *testing.T, p *policy.Policy) {
	r, err := scoring.NewRules(p)
	if err != nil {
		t.Fatal(err)
	}
	b.cur.Store(&struct {
		p *policy.Policy
		r *scoring.Rules
	}{p, r})
}

func (b *policyBox) get() (*policy.Policy, *scoring.Rules) { c := b.cur.Load(); return c.p, c.r }

// system is one fenqi deployment: a broker, a Redis, and any number of
// instances (pipeline + jobs) started on them.
type system struct {
	t      *testing.T
	kafka  *testenv.KafkaCluster
	redis  string
	clock  *clock
	policy *policyBox
}

func newSystem(t *testing.T, start time.Time) *system {
	t.Helper()
	topics := append(consumers.DefaultTopics().List(), "fenqi.decisions", "fenqi.dlq")
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	return &system{t: t, kafka: testenv.Kafka(t, topics...), redis: testenv.RedisAddr(t),
		clock: &clock{t: start}, policy: newPolicyBox(t, p)}
}

// instance is one running fenqid: a pipeline in the group and a jobs runner.
type instance struct {
	pipe   *consumers.Pipeline
	runner *jobs.Runner
	store  *state.Store
	stop   func()
}

func (s *system) start() *instance {
	t := s.t
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.redis})
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := state.New(rdb, state.Config{Now: s.clock.Now,
		Credit: jobs.CreditCheck(func() *policy.Policy { p, _ := s.policy.get(); return p })})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := producers.New(producers.Config{Brokers: s.kafka.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := consumers.New(consumers.Config{Brokers: s.kafka.Addrs(), Now: s.clock.Now}, store,
		func() consumers.Rules { _, r := s.policy.get(); return r }, pub, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := jobs.New(jobs.Config{Now: s.clock.Now, Interval: 20 * time.Millisecond}, store, pub, s.policy.get, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- pipe.Run(ctx) })
	wg.Go(func() { errs <- runner.Run(ctx) })
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("instance: %v", err)
				}
			}
			_ = pub.Close()
		})
	}
	t.Cleanup(stop)
	return &instance{pipe: pipe, runner: runner, store: store, stop: stop}
}

func (s *system) produce(topic string, evs ...events.Event) {
	s.t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		v, err := events.Marshal(e)
		if err != nil {
			s.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(e.Subject), Value: v}
	}
	testenv.Produce(s.t, s.kafka.Addrs(), topic, msgs...)
}

// decisions returns the decisions on the topic now, by type, repeats
// (the same id twice) counted once: that is what a notifier sees.
func (s *system) decisions() map[string][]events.Decision {
	s.t.Helper()
	out := map[string][]events.Decision{}
	seen := map[string]bool{}
	for _, m := range testenv.ReadAll(s.t, s.kafka.Addrs(), "fenqi.decisions") {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			s.t.Fatal(err)
		}
		if !seen[d.ID] {
			seen[d.ID] = true
			out[d.Type] = append(out[d.Type], d)
		}
	}
	return out
}

// records counts the records on the decisions topic, repeats included.
func (s *system) records() int {
	return len(testenv.ReadAll(s.t, s.kafka.Addrs(), "fenqi.decisions"))
}

// eventually polls cond (the pipeline and jobs run in the background).
func (s *system) eventually(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ev(id, typ, user string, at time.Time) events.Event {
	return events.Event{ID: id, Type: typ, Source: "e2e", Subject: user, Time: at}
}
