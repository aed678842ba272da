package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/simulator"
)

// BenchmarkPipelineDrain measures sustained events per second through the
// whole pipeline: simulated events are already on the broker (kfake over
// TCP), and one pipeline drains them — decode, apply to a real
// redis-server in one round trip per batch, rules, publish decisions and
// dead letters with acks from all replicas, commit. Read events/s.
func BenchmarkPipelineDrain(b *testing.B) {
	const total = 100_000
	b.StopTimer()
	for range b.N {
		e := newEnvB(b)
		simNow := time.Now()
		sim := simulator.New(simulator.Config{Users: 20_000, Seed: 42, Now: func() time.Time { return simNow }})
		w := &kafka.Writer{Addr: kafka.TCP(e.kafka.Addrs()...), Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 5000}
		msgs := make([]kafka.Message, 0, 5000)
		for i := 0; i < total; i++ {
			topic, key, value := sim.Next()
			msgs = append(msgs, kafka.Message{Topic: topic, Key: key, Value: value})
			if len(msgs) == cap(msgs) || i == total-1 {
				if err := w.WriteMessages(context.Background(), msgs...); err != nil {
					b.Fatal(err)
				}
				msgs = msgs[:0]
			}
		}
		_ = w.Close()
		rules := scoring.DefaultRules()
		p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: func() time.Time { return simNow }},
			e.store, func() consumers.Rules { return rules }, e.pub, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- p.Run(ctx) }()
		for p.Stats().Events.Load() < total {
			time.Sleep(2 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		s := p.Stats()
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(float64(s.Decisions.Load()), "decisions")
		b.ReportMetric(float64(s.DeadLetters.Load()), "dead_letters")
		b.ReportMetric(float64(total)/float64(s.Batches.Load()), "events/batch")
	}
}

func newEnvB(b *testing.B) *env { return newEnvTB(b) }
