package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/producers"
)

// scrape GETs /metrics from h and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type = %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sample finds the metric of family name whose labels are exactly want.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		names := make([]string, 0, len(mfs))
		for n := range mfs {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("no metric %s; have %v", name, names)
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if match {
			return m
		}
	}
	t.Fatalf("no %s with labels exactly %v; have %v", name, want, mf.GetMetric())
	return nil
}

func TestMetricsOnMetricsHandler(t *testing.T) {
	t.Parallel()
	tel, _ := newTestTelemetry(t, Config{ServiceVersion: "1.2.3"})
	m, err := tel.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := tel.Metrics(); again != m {
		t.Fatal("Metrics() made a second set of instruments")
	}

	for range 3 {
		m.Event("fenqi.payments", "applied")
	}
	m.Event("fenqi.payments", "redelivered")
	m.Event("fenqi.logins", "applied")
	m.Event("fenqi.payments", OutcomeDeadLettered)
	m.Decision(events.Decision{Type: events.TypeDecisionAlert, Data: events.DecisionData{Rule: "large_amount"}})
	m.Decision(events.Decision{Type: events.TypeDecisionAlert, Data: events.DecisionData{Rule: "large_amount"}})
	m.Decision(events.Decision{Type: events.TypeDecisionQuota, Data: events.DecisionData{Rule: "quota"}})
	m.DeadLetter(producers.DeadLetter{Msg: kafka.Message{Topic: "fenqi.payments"}, Field: "data.amount_fen"})
	m.DeadLetter(producers.DeadLetter{Msg: kafka.Message{Topic: "fenqi.payments"}})
	m.Retry("redis_apply", errors.New("connection refused"), 100*time.Millisecond)
	m.Retry("redis_apply", errors.New("connection refused"), 200*time.Millisecond)
	m.Retry("kafka_publish", errors.New("leader not available"), 0)
	m.Batch(500, 40*time.Millisecond)
	m.Batch(3, 2*time.Millisecond)
	m.Latency(ClockEventTime, 20*time.Millisecond)
	m.Latency(ClockEventTime, 3*time.Second)
	m.Latency(ClockAppendTime, 15*time.Millisecond)
	m.Latency(ClockAppendTime, -time.Second) // a producer clock ahead of ours
	m.JobDone(ScheduleOverdueChecks, 4)
	m.JobDone(ScheduleRecompute, 0)
	m.RegisterLag(func() map[TopicPartition]int64 {
		return map[TopicPartition]int64{{"fenqi.payments", 0}: 17, {"fenqi.payments", 5}: 0, {"fenqi.logins", 2}: 3}
	})
	m.RegisterJobs(func() map[string]int64 {
		return map[string]int64{ScheduleOverdueChecks: 12, ScheduleRecompute: 7}
	})
	m.RegisterJobsWatermarkLag(func() map[string]time.Duration {
		return map[string]time.Duration{ScheduleOverdueChecks: 90 * time.Minute}
	})
	m.Refused("fenqi.decisions", nil)

	mfs := scrape(t, tel.MetricsHandler())
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fenqi_events_total", map[string]string{"topic": "fenqi.payments", "outcome": "applied"}, 3},
		{"fenqi_events_total", map[string]string{"topic": "fenqi.payments", "outcome": "redelivered"}, 1},
		{"fenqi_events_total", map[string]string{"topic": "fenqi.logins", "outcome": "applied"}, 1},
		{"fenqi_events_total", map[string]string{"topic": "fenqi.payments", "outcome": "dead_lettered"}, 1},
		{"fenqi_decisions_total", map[string]string{"type": "fenqi.decision.alert.v1", "rule": "large_amount"}, 2},
		{"fenqi_decisions_total", map[string]string{"type": "fenqi.decision.quota.v1", "rule": "quota"}, 1},
		{"fenqi_dead_letters_total", map[string]string{"topic": "fenqi.payments", "field": "data.amount_fen"}, 1},
		{"fenqi_dead_letters_total", map[string]string{"topic": "fenqi.payments", "field": "unknown"}, 1},
		{"fenqi_records_refused_total", map[string]string{"topic": "fenqi.decisions"}, 1},
		{"fenqi_retries_total", map[string]string{"cause": "redis_apply"}, 2},
		{"fenqi_retries_total", map[string]string{"cause": "kafka_publish"}, 1},
		{"fenqi_jobs_done_total", map[string]string{"schedule": "overdue_checks"}, 4},
	}
	for _, c := range counters {
		if got := sample(t, mfs, c.name, c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if mfs["fenqi_events_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("fenqi_events_total is a %v", mfs["fenqi_events_total"].GetType())
	}
	if got := len(mfs["fenqi_jobs_done_total"].GetMetric()); got != 1 {
		t.Errorf("fenqi_jobs_done_total has %d series; JobDone(…, 0) must not make one", got)
	}

	gauges := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fenqi_consumer_lag", map[string]string{"topic": "fenqi.payments", "partition": "0"}, 17},
		{"fenqi_consumer_lag", map[string]string{"topic": "fenqi.payments", "partition": "5"}, 0},
		{"fenqi_consumer_lag", map[string]string{"topic": "fenqi.logins", "partition": "2"}, 3},
		{"fenqi_jobs_due", map[string]string{"schedule": "overdue_checks"}, 12},
		{"fenqi_jobs_due", map[string]string{"schedule": "recompute"}, 7},
		{"fenqi_jobs_watermark_lag_seconds", map[string]string{"schedule": "overdue_checks"}, 5400},
	}
	for _, g := range gauges {
		if got := sample(t, mfs, g.name, g.labels).GetGauge().GetValue(); got != g.want {
			t.Errorf("%s%v = %v, want %v", g.name, g.labels, got, g.want)
		}
	}

	lat := sample(t, mfs, "fenqi_event_to_decision_seconds", map[string]string{"clock": "event_time"}).GetHistogram()
	if lat.GetSampleCount() != 2 || lat.GetSampleSum() != 3.02 {
		t.Errorf("event_time latency: count %d sum %v, want 2 and 3.02", lat.GetSampleCount(), lat.GetSampleSum())
	}
	wantBuckets := map[float64]uint64{0.01: 0, 0.025: 1, 2.5: 1, 5: 2}
	for _, b := range lat.GetBucket() {
		if want, ok := wantBuckets[b.GetUpperBound()]; ok && b.GetCumulativeCount() != want {
			t.Errorf("event_time latency bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	app := sample(t, mfs, "fenqi_event_to_decision_seconds", map[string]string{"clock": "append_time"}).GetHistogram()
	if app.GetSampleCount() != 2 || app.GetSampleSum() != 0.015 {
		t.Errorf("append_time latency: count %d sum %v, want 2 and 0.015 (negative recorded as 0)", app.GetSampleCount(), app.GetSampleSum())
	}
	bs := sample(t, mfs, "fenqi_batch_size", map[string]string{}).GetHistogram()
	if bs.GetSampleCount() != 2 || bs.GetSampleSum() != 503 {
		t.Errorf("fenqi_batch_size: count %d sum %v, want 2 and 503", bs.GetSampleCount(), bs.GetSampleSum())
	}
	bd := sample(t, mfs, "fenqi_batch_duration_seconds", map[string]string{}).GetHistogram()
	if bd.GetSampleCount() != 2 || bd.GetSampleSum() != 0.042 {
		t.Errorf("fenqi_batch_duration_seconds: count %d sum %v, want 2 and 0.042", bd.GetSampleCount(), bd.GetSampleSum())
	}

	// Exactly the documented fenqi_* names, none with a doubled or unit
	// suffix, and no otel_scope_* labels.
	want := map[string]bool{
		MetricEvents: true, MetricDecisions: true, MetricEventToDecision: true, MetricBatchSize: true,
		MetricBatchDuration: true, MetricConsumerLag: true, MetricRetries: true, MetricJobsDue: true,
		MetricJobsDone: true, MetricDeadLetters: true, MetricJobsWatermarkLag: true, MetricRecordsRefused: true,
	}
	for name, mf := range mfs {
		if strings.HasPrefix(name, "fenqi") && !want[name] {
			t.Errorf("unexpected metric %s", name)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetName(), "otel_scope") {
					t.Fatalf("%s has label %s", name, l.GetName())
				}
			}
		}
	}
	for name := range want {
		if _, ok := mfs[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("go_goroutines missing: the Go collector is not registered")
	}
	if _, ok := mfs["target_info"]; !ok {
		t.Error("target_info missing")
	}

	// Replacing or removing a callback takes effect at the next scrape.
	m.RegisterLag(nil)
	if _, ok := scrape(t, tel.MetricsHandler())["fenqi_consumer_lag"]; ok {
		t.Error("fenqi_consumer_lag still reported after RegisterLag(nil)")
	}
}

// With a caller's meter provider (a ManualReader here), the instruments
// record there, and MetricsHandler does not pretend to serve them.
func TestMetricsWithAManualReader(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	tel, err := New(nil, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := tel.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	m.Event("fenqi.payments", "applied")
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name == MetricEvents {
				sum := md.Data.(metricdata.Sum[int64])
				found = len(sum.DataPoints) == 1 && sum.DataPoints[0].Value == 1
			}
		}
	}
	if !found {
		t.Errorf("%s = 1 not collected: %+v", MetricEvents, rm.ScopeMetrics)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("MetricsHandler with a caller's provider: %d, want 404", rec.Code)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMetricsEvent(b *testing.B) {
	tel, err := New(nil, nil, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	m, err := tel.Metrics()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Event("fenqi.payments", "applied")
		}
	})
}
