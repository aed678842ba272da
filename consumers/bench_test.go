package consumers_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/telemetry"
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
		fill(b, e, total, simNow)
		rules := scoring.DefaultRules()
		p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: func() time.Time { return simNow }},
			e.store, func() consumers.Rules { return rules }, e.pub, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		took := drain(b, p, total)
		s := p.Stats()
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(float64(s.Decisions.Load()), "decisions")
		b.ReportMetric(float64(s.DeadLetters.Load()), "dead_letters")
		b.ReportMetric(float64(total)/float64(s.Batches.Load()), "events/batch")
	}
}

func newEnvB(b *testing.B) *env { return newEnvTB(b) }

// BenchmarkPipelineTracing measures the throughput cost of tracing: the
// same drain (events already on the broker) with tracing off, and with the
// SDK sampling ratios 0, 0.01 and 1 (parent-based, as OTEL_TRACES_SAMPLER=
// parentbased_traceidratio does; the records carry no traceparent), spans
// going through a batch processor to an exporter that drops them. Read
// events/s of each sub-benchmark side by side.
func BenchmarkPipelineTracing(b *testing.B) {
	const total = 50_000
	for _, mode := range []struct {
		name  string
		ratio float64 // < 0: tracing off
	}{{"off", -1}, {"ratio_0", 0}, {"ratio_0.01", 0.01}, {"ratio_1", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				e := newEnvB(b)
				simNow := time.Now()
				fill(b, e, total, simNow)
				var tel *telemetry.Telemetry
				var err error
				if mode.ratio < 0 {
					tel, err = telemetry.New(nil, nil, telemetry.Config{Disabled: true})
				} else {
					tp := sdktrace.NewTracerProvider(
						sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(mode.ratio))),
						sdktrace.WithBatcher(tracetest.NewNoopExporter()),
						sdktrace.WithSpanLimits(sdktrace.SpanLimits{LinkCountLimit: 10_000, AttributeCountLimit: 128,
							EventCountLimit: 128, AttributePerEventCountLimit: 128, AttributePerLinkCountLimit: 128, AttributeValueLengthLimit: -1}))
					tel, err = telemetry.New(tp, nil, telemetry.Config{})
				}
				if err != nil {
					b.Fatal(err)
				}
				rules := scoring.DefaultRules()
				p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: func() time.Time { return simNow }},
					e.store, func() consumers.Rules { return rules }, e.pub, nil, nil, tel)
				if err != nil {
					b.Fatal(err)
				}
				took := drain(b, p, total)
				_ = tel.Shutdown(context.Background())
				b.ReportMetric(float64(total)/took.Seconds(), "events/s")
			}
		})
	}
}

// fill puts total simulated events on the broker (fillTo's).
func fill(b *testing.B, e *env, total int, simNow time.Time) {
	b.Helper()
	w := benchWriter(e.kafka.Addrs(), fillBatch)
	defer w.Close()
	if _, err := fillTo(context.Background(), w, total, simNow); err != nil {
		b.Fatal(err)
	}
}

// drain runs p until it has processed total records and returns how long
// that took.
func drain(b *testing.B, p *consumers.Pipeline, total int64) time.Duration {
	b.Helper()
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
	return took
}
