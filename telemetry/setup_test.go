package telemetry

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// clearOTELEnv unsets the variables Setup reads, for the test's duration.
// Tests that call it change the process environment: not parallel.
func clearOTELEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "") // restores the old value after the test
			os.Unsetenv(k)
		}
	}
}

func shutdown(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestSetupWithExporterNone(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // "none" wins
	tel, err := Setup(context.Background(), Config{ServiceName: "fenqid"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tel.TracerProvider().(*sdktrace.TracerProvider); ok {
		t.Error("exporter none built an SDK tracer provider")
	}
	_, span := tel.StartProcess(context.Background(), &kafka.Message{Topic: "fenqi.payments"}, "fenqi")
	if span.IsRecording() {
		t.Error("spans are recorded with no exporter")
	}
	span.End()
	m, err := tel.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	m.Event("fenqi.payments", "applied")
	if got := sample(t, scrape(t, tel.MetricsHandler()), "fenqi_events_total",
		map[string]string{"topic": "fenqi.payments", "outcome": "applied"}).GetCounter().GetValue(); got != 1 {
		t.Errorf("fenqi_events_total = %v, want 1: metrics stay on without traces", got)
	}
	shutdown(t, tel)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestSetupChoosesExporters(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		sdk     bool   // an SDK tracer provider is built
		wantErr string // part of Setup's error
	}{
		{name: "nothing set: no tracing", env: nil},
		{name: "endpoint set: otlp grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, sdk: true},
		{name: "traces endpoint set: otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, sdk: true},
		{name: "otlp http/protobuf", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, sdk: true},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, sdk: true},
		{name: "sampler parentbased_traceidratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "console",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, sdk: true},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, sdk: true},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "jaeger_remote"},
			wantErr: "OTEL_TRACES_SAMPLER"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearOTELEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			tel, err := Setup(context.Background(), Config{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Setup: err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, sdk := tel.TracerProvider().(*sdktrace.TracerProvider); sdk != c.sdk {
				t.Errorf("SDK tracer provider = %v, want %v", sdk, c.sdk)
			}
			shutdown(t, tel) // no span was started: nothing to send to the dead endpoint
		})
	}
}

// spanLine is the part of stdouttrace's JSON that the tests read.
type spanLine struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Type, Value any }
	}
	Resource []struct {
		Key   string
		Value struct{ Type, Value any }
	}
}

func readSpansFile(t *testing.T, path string) []spanLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var spans []spanLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s spanLine
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", len(spans)+1, err, sc.Bytes())
		}
		spans = append(spans, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return spans
}

func TestSpansFileWritesJSONLines(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "none") // the file is written whatever this says
	t.Setenv("OTEL_SERVICE_NAME", "fenqid-test")
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	tel, err := Setup(context.Background(), Config{ServiceName: "fenqid", ServiceVersion: "v0.0.1", SpansFile: path})
	if err != nil {
		t.Fatal(err)
	}
	in := &kafka.Message{Topic: "fenqi.payments", Partition: 1, Offset: 9, Key: []byte("u-1001"),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + upstreamTraceID + "-" + upstreamSpanID + "-01")}}}
	ctx, process := tel.StartProcess(context.Background(), in, "fenqi")
	_, publish := tel.StartPublish(ctx, "fenqi.decisions")
	publish.End()
	process.End()
	shutdown(t, tel)

	spans := readSpansFile(t, path)
	if len(spans) != 2 {
		t.Fatalf("%d spans in the file, want 2", len(spans))
	}
	byName := map[string]spanLine{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	p, ok := byName["fenqi.payments process"]
	if !ok || p.SpanContext.TraceID != upstreamTraceID || p.Parent.SpanID != upstreamSpanID {
		t.Errorf("process span = %+v, want trace %s parent %s", p, upstreamTraceID, upstreamSpanID)
	}
	if pub, ok := byName["fenqi.decisions publish"]; !ok || pub.Parent.SpanID != p.SpanContext.SpanID {
		t.Errorf("publish span = %+v, want child of the process span", pub)
	}
	var service string
	for _, kv := range p.Resource {
		if kv.Key == "service.name" {
			service, _ = kv.Value.Value.(string)
		}
	}
	if service != "fenqid-test" {
		t.Errorf("service.name = %q, want OTEL_SERVICE_NAME's fenqid-test", service)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "u-1001") {
		t.Error("the user id (the record key) is in the spans file")
	}

	// A second run appends.
	tel, err = Setup(context.Background(), Config{SpansFile: path})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.StartPublish(context.Background(), "fenqi.decisions")
	s.End()
	shutdown(t, tel)
	if n := len(readSpansFile(t, path)); n != 3 {
		t.Errorf("%d spans after a second run, want 3 (appended)", n)
	}
}

func TestSetupSamplerFromEnvironment(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	tel, err := Setup(context.Background(), Config{SpansFile: path})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.StartPublish(context.Background(), "fenqi.decisions")
	if s.IsRecording() {
		t.Error("always_off: span is recording")
	}
	s.End()
	shutdown(t, tel)
	if n := len(readSpansFile(t, path)); n != 0 {
		t.Errorf("always_off wrote %d spans", n)
	}
}

func TestSetupDisabled(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	tel, err := Setup(context.Background(), Config{Disabled: true, SpansFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, sdk := tel.TracerProvider().(*sdktrace.TracerProvider); sdk {
		t.Error("Disabled built an SDK tracer provider")
	}
	shutdown(t, tel)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Disabled still created the spans file (stat: %v)", err)
	}
}

func TestSetupRaisesTheLinkLimit(t *testing.T) {
	clearOTELEnv(t)
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	tel, err := Setup(context.Background(), Config{SpansFile: path})
	if err != nil {
		t.Fatal(err)
	}
	_, b := tel.StartBatch(context.Background(), SpanStateApply, make500Links(t))
	b.End()
	shutdown(t, tel)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for line := range strings.Lines(string(raw)) {
		var s struct {
			Name         string
			Links        []json.RawMessage
			DroppedLinks int
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if s.Name == SpanStateApply {
			found = true
			if len(s.Links) != 500 || s.DroppedLinks != 0 {
				t.Errorf("batch span has %d links, %d dropped; want 500, 0", len(s.Links), s.DroppedLinks)
			}
		}
	}
	if !found {
		t.Fatal("no batch span in the file")
	}
}

// make500Links returns links to 500 distinct (made-up) record spans.
func make500Links(t *testing.T) []trace.Link {
	t.Helper()
	links := make([]trace.Link, 500)
	for i := range links {
		var tid trace.TraceID
		var sid trace.SpanID
		binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
		binary.BigEndian.PutUint64(sid[:], uint64(i+1))
		links[i] = trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})}
	}
	return links
}
