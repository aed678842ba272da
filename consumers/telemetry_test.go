package consumers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/telemetry"
)

const (
	upstreamTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	upstreamSpan  = "00f067aa0ba902b7"
)

// An event with a known traceparent: its process span continues the
// upstream trace, the apply and scoring spans link to it, the decision's
// publish span is its child and its context is in the decision's headers;
// the dead letter's span is marked an error; no span carries an attribute
// outside the allowed list. Then /metrics holds the right counts.
func TestTracesAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tel, exp := testenv.Tracing(t)
	metrics, err := tel.Metrics()
	if err != nil {
		t.Fatal(err)
	}

	night := time.Date(2026, 11, 20, 2, 30, 0, 0, shanghai)
	traced := record(t, pay("traced", "kim", night, 300_000))
	traced.Headers = append(traced.Headers, kafka.Header{Key: "traceparent", Value: []byte("00-" + upstreamTrace + "-" + upstreamSpan + "-01")})
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", traced,
		kafka.Message{Key: []byte("kim"), Value: []byte(`{"specversion":"1.0"}`)}, // dead letter, no traceparent
		record(t, pay("plain", "kim", now, 1_000)))
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.logins", record(t, loginEv("l1", "kim", now)))

	rules := scoring.DefaultRules()
	p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: clock}, e.store,
		func() consumers.Rules { return rules }, e.pub, metrics, nil, tel)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "all four records", func() bool { return p.Stats().Events.Load() == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	if err := telemetry.CheckSpanAttributes(spans); err != nil {
		t.Fatalf("a span carries an attribute outside the allowed list: %v", err)
	}
	var process, apply, evaluate, publish, dead []tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case "fenqi.payments process":
			if s.SpanContext.TraceID().String() == upstreamTrace {
				process = append(process, s)
			} else if s.Status.Code == codes.Error {
				dead = append(dead, s)
			}
		case telemetry.SpanStateApply:
			apply = append(apply, s)
		case telemetry.SpanScoringEvaluate:
			evaluate = append(evaluate, s)
		case "fenqi.decisions publish":
			publish = append(publish, s)
		}
	}
	if len(process) != 1 {
		t.Fatalf("%d process spans in the upstream trace, want 1 (spans: %v)", len(process), names(spans))
	}
	ps := process[0]
	if ps.Parent.SpanID().String() != upstreamSpan || ps.SpanKind != trace.SpanKindConsumer {
		t.Fatalf("process span: parent %s, kind %v", ps.Parent.SpanID(), ps.SpanKind)
	}
	attrs := map[string]string{}
	for _, kv := range ps.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{"messaging.system": "kafka", "messaging.destination.name": "fenqi.payments",
		"messaging.consumer.group.name": "fenqi", "messaging.message.id": "traced"} {
		if attrs[k] != v {
			t.Errorf("process span attribute %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	if _, ok := attrs["messaging.kafka.offset"]; !ok {
		t.Errorf("process span lacks the offset: %v", attrs)
	}
	linked := func(s tracetest.SpanStub) bool {
		for _, l := range s.Links {
			if l.SpanContext.SpanID() == ps.SpanContext.SpanID() {
				return true
			}
		}
		return false
	}
	if len(apply) == 0 || len(evaluate) == 0 || !linked(apply[0]) && !(len(apply) > 1 && linked(apply[1])) {
		t.Fatalf("apply/scoring spans missing or not linked to the event: %d apply, %d evaluate", len(apply), len(evaluate))
	}
	var pub *tracetest.SpanStub
	for i := range publish {
		if publish[i].Parent.SpanID() == ps.SpanContext.SpanID() {
			pub = &publish[i]
		}
	}
	if pub == nil || pub.SpanKind != trace.SpanKindProducer {
		t.Fatalf("no producer publish span under the process span (publish spans: %d)", len(publish))
	}
	if len(dead) != 1 {
		t.Fatalf("%d error process spans for the dead letter, want 1", len(dead))
	}

	// The decision carries the publish span's context.
	msgs := testenv.ReadN(t, e.kafka.Addrs(), "fenqi.decisions", 1, 10*time.Second)
	tp0 := header(msgs[0], "traceparent")
	if !strings.Contains(tp0, upstreamTrace) || !strings.Contains(tp0, pub.SpanContext.SpanID().String()) {
		t.Fatalf("decision traceparent %q, want trace %s and span %s", tp0, upstreamTrace, pub.SpanContext.SpanID())
	}

	// Metrics after this known set of records.
	mfs := scrape(t, tel.MetricsHandler())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fenqi_events_total", map[string]string{"topic": "fenqi.payments", "outcome": "applied"}, 2},
		{"fenqi_events_total", map[string]string{"topic": "fenqi.payments", "outcome": "dead_lettered"}, 1},
		{"fenqi_events_total", map[string]string{"topic": "fenqi.logins", "outcome": "applied"}, 1},
		{"fenqi_decisions_total", map[string]string{"type": events.TypeDecisionAlert, "rule": scoring.RuleNightLargePayment}, 1},
		{"fenqi_dead_letters_total", map[string]string{"topic": "fenqi.payments", "field": "id"}, 1},
	} {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := histCount(t, mfs, "fenqi_event_to_decision_seconds", map[string]string{"clock": "event_time"}); n != 1 {
		t.Errorf("latency observations: %d, want 1", n)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

func find(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	for _, m := range mfs[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(want)
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return m
		}
	}
	t.Fatalf("no %s%v on /metrics", name, want)
	return nil
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	return find(t, mfs, name, labels).GetCounter().GetValue()
}

func histCount(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	t.Helper()
	return find(t, mfs, name, labels).GetHistogram().GetSampleCount()
}
