package telemetry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fenqi/fenqi/events"
)

// newTestTelemetry returns a Telemetry over an SDK tracer provider that
// records into memory (synchronously) and its own Prometheus registry.
func newTestTelemetry(t *testing.T, cfg Config) (*Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	tel, err := New(tp, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel, exp
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d spans", name, len(spans))
	return tracetest.SpanStub{}
}

const (
	upstreamTraceID = "0af7651916cd43dd8448eb211c80319c"
	upstreamSpanID  = "b7ad6b7169203331"
)

func TestStartProcessContinuesTheProducersTrace(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	m := &kafka.Message{
		Topic: "fenqi.payments", Partition: 3, Offset: 42, Key: []byte("u-1001"),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + upstreamTraceID + "-" + upstreamSpanID + "-01")}},
	}
	// A span already in ctx (a loop's) must not become the parent.
	ctx, loop := tel.Tracer().Start(context.Background(), "loop")
	_, span := tel.StartProcess(ctx, m, "fenqi")
	SetMessageID(span, "evt-1")
	span.End()
	loop.End()

	s := spanNamed(t, exp.GetSpans(), "fenqi.payments process")
	if got := s.SpanContext.TraceID().String(); got != upstreamTraceID {
		t.Errorf("trace id = %s, want the producer's %s", got, upstreamTraceID)
	}
	if got := s.Parent.SpanID().String(); got != upstreamSpanID || !s.Parent.IsRemote() {
		t.Errorf("parent = %s (remote %v), want the producer's span %s", got, s.Parent.IsRemote(), upstreamSpanID)
	}
	if s.SpanKind != trace.SpanKindConsumer {
		t.Errorf("kind = %v, want consumer", s.SpanKind)
	}
	want := map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("kafka"),
		"messaging.operation.name":           attribute.StringValue("process"),
		"messaging.operation.type":           attribute.StringValue("process"),
		"messaging.destination.name":         attribute.StringValue("fenqi.payments"),
		"messaging.destination.partition.id": attribute.StringValue("3"),
		"messaging.kafka.offset":             attribute.Int64Value(42),
		"messaging.consumer.group.name":      attribute.StringValue("fenqi"),
		"messaging.message.id":               attribute.StringValue("evt-1"),
	}
	got := attrMap(s.Attributes)
	if len(got) != len(want) {
		t.Errorf("attributes = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, got[k].Emit(), v.Emit())
		}
	}
	if err := CheckSpanAttributes(exp.GetSpans()); err != nil {
		t.Error(err)
	}
}

func TestStartProcessWithoutTraceparentStartsANewTrace(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	ctx, loop := tel.Tracer().Start(context.Background(), "loop")
	_, span := tel.StartProcess(ctx, &kafka.Message{Topic: "fenqi.logins"}, "")
	span.End()
	loop.End()

	s := spanNamed(t, exp.GetSpans(), "fenqi.logins process")
	if s.Parent.IsValid() {
		t.Errorf("parent = %v, want none (a new trace)", s.Parent.SpanID())
	}
	if s.SpanContext.TraceID() == loop.SpanContext().TraceID() {
		t.Error("the process span joined the trace of the span in ctx")
	}
	if _, ok := attrMap(s.Attributes)["messaging.consumer.group.name"]; ok {
		t.Error("an empty group must not be recorded")
	}
}

func TestPublishSpanIsInjected(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	in := &kafka.Message{Topic: "fenqi.payments",
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + upstreamTraceID + "-" + upstreamSpanID + "-01")}}}
	pctx, process := tel.StartProcess(context.Background(), in, "fenqi")
	ctx, publish := tel.StartPublish(pctx, "fenqi.decisions")
	SetMessageID(publish, "dec-1")
	out := kafka.Message{Topic: "fenqi.decisions", Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}}}
	tel.Inject(ctx, &out)
	publish.End()
	process.End()

	s := spanNamed(t, exp.GetSpans(), "fenqi.decisions publish")
	if s.SpanKind != trace.SpanKindProducer {
		t.Errorf("kind = %v, want producer", s.SpanKind)
	}
	if s.Parent.SpanID() != process.SpanContext().SpanID() {
		t.Errorf("publish parent = %v, want the process span %v", s.Parent.SpanID(), process.SpanContext().SpanID())
	}
	wantTP := "00-" + upstreamTraceID + "-" + s.SpanContext.SpanID().String() + "-01"
	if got := (HeaderCarrier{Msg: &out}).Get("traceparent"); got != wantTP {
		t.Errorf("traceparent header = %q, want %q", got, wantTP)
	}
	if got := (HeaderCarrier{Msg: &out}).Get("content-type"); got != "application/cloudevents+json" {
		t.Errorf("content-type header = %q, want it kept", got)
	}
	a := attrMap(s.Attributes)
	if a["messaging.destination.name"].AsString() != "fenqi.decisions" || a["messaging.system"].AsString() != "kafka" ||
		a["messaging.operation.type"].AsString() != "send" || a["messaging.message.id"].AsString() != "dec-1" {
		t.Errorf("publish attributes = %v", a)
	}
	if err := CheckSpanAttributes(exp.GetSpans()); err != nil {
		t.Error(err)
	}
}

func TestStartBatchLinksTheRecords(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	var links []trace.Link
	for i := range 3 {
		ctx, s := tel.StartProcess(context.Background(), &kafka.Message{Topic: "fenqi.payments", Offset: int64(i)}, "fenqi")
		links = append(links, trace.LinkFromContext(ctx))
		defer s.End()
	}
	_, b := tel.StartBatch(context.Background(), SpanStateApply, links)
	b.End()

	s := spanNamed(t, exp.GetSpans(), "state apply")
	if len(s.Links) != 3 || s.DroppedLinks != 0 {
		t.Fatalf("links = %d (dropped %d), want 3", len(s.Links), s.DroppedLinks)
	}
	for i, l := range s.Links {
		if l.SpanContext.SpanID() != links[i].SpanContext.SpanID() {
			t.Errorf("link %d = %v, want %v", i, l.SpanContext.SpanID(), links[i].SpanContext.SpanID())
		}
	}
	if got := attrMap(s.Attributes)[BatchSizeKey].AsInt64(); got != 3 {
		t.Errorf("fenqi.batch.size = %d, want 3", got)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	_, span := tel.StartProcess(context.Background(), &kafka.Message{Topic: "fenqi.payments"}, "fenqi")
	span.SetAttributes(DeadLetterFieldKey.String("data.amount_fen"), EventTypeKey.String(events.TypePayment))
	Fail(span, &events.DecodeError{Field: "data.amount_fen", Reason: "must be positive"}, "decode")
	span.End()

	s := spanNamed(t, exp.GetSpans(), "fenqi.payments process")
	if s.Status.Code != codes.Error || s.Status.Description != "decode" {
		t.Errorf("status = %v %q, want Error %q", s.Status.Code, s.Status.Description, "decode")
	}
	if got := attrMap(s.Attributes)["error.type"].AsString(); got != "decode" {
		t.Errorf("error.type = %q, want decode", got)
	}
	if len(s.Events) != 1 || s.Events[0].Name != "exception" {
		t.Fatalf("events = %v, want one exception", s.Events)
	}
	ev := attrMap(s.Events[0].Attributes)
	if got := ev["exception.message"].AsString(); got != `events: field "data.amount_fen": must be positive` {
		t.Errorf("exception.message = %q", got)
	}
	if got := ev["exception.type"].AsString(); got != "*events.DecodeError" && !strings.HasSuffix(got, "events.DecodeError") {
		t.Errorf("exception.type = %q", got)
	}
	// What RecordError adds is allowed.
	if err := CheckSpanAttributes(exp.GetSpans()); err != nil {
		t.Error(err)
	}
}

func TestCheckSpanAttributesFlagsForbiddenKeys(t *testing.T) {
	t.Parallel()
	tel, exp := newTestTelemetry(t, Config{})
	ctx, span := tel.StartProcess(context.Background(), &kafka.Message{Topic: "fenqi.payments", Key: []byte("u-1001")}, "fenqi")
	span.SetAttributes(attribute.String("messaging.kafka.message.key", "u-1001"))
	_, b := tel.StartBatch(context.Background(), SpanScoringEvaluate,
		[]trace.Link{trace.LinkFromContext(ctx, attribute.String("user.id", "u-1001"))})
	b.AddEvent("note", trace.WithAttributes(attribute.Int64("amount_fen", 5000)))
	b.End()
	span.End()

	err := CheckSpanAttributes(exp.GetSpans())
	if err == nil {
		t.Fatal("CheckSpanAttributes accepted messaging.kafka.message.key")
	}
	for _, k := range []string{"messaging.kafka.message.key", "user.id", "amount_fen"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
	if strings.Contains(err.Error(), "messaging.destination.name") {
		t.Errorf("error names an allowed key: %v", err)
	}
	if CheckSpanAttributes(nil) != nil {
		t.Error("no spans must pass")
	}
}

func TestUserAttr(t *testing.T) {
	t.Parallel()
	t.Run("no key: never recorded", func(t *testing.T) {
		t.Parallel()
		tel, _ := newTestTelemetry(t, Config{})
		if kv, ok := tel.UserAttr("u-1001"); ok || kv.Valid() {
			t.Fatalf("UserAttr = %v, %v without a key", kv, ok)
		}
	})
	t.Run("key: HMAC-SHA256", func(t *testing.T) {
		t.Parallel()
		key := []byte("0123456789abcdef0123")
		tel, _ := newTestTelemetry(t, Config{UserIDKey: key})
		kv, ok := tel.UserAttr("u-1001")
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("u-1001"))
		if want := hex.EncodeToString(mac.Sum(nil)); !ok || kv.Key != UserHMACKey || kv.Value.AsString() != want {
			t.Fatalf("UserAttr = %v, %v; want %s=%s", kv, ok, UserHMACKey, want)
		}
		if other, _ := tel.UserAttr("u-1002"); other.Value.AsString() == kv.Value.AsString() {
			t.Fatal("two users share an HMAC")
		}
	})
	t.Run("short key refused", func(t *testing.T) {
		t.Parallel()
		_, err := New(nil, nil, Config{UserIDKey: []byte("short")})
		if err == nil || !strings.Contains(err.Error(), "UserIDKey") {
			t.Fatalf("New with a 5-byte key: err = %v, want one naming UserIDKey", err)
		}
	})
}

func TestDisabledTracingIsNoop(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tel, err := New(tp, nil, Config{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &kafka.Message{Topic: "fenqi.payments",
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + upstreamTraceID + "-" + upstreamSpanID + "-01")}}}
	ctx, span := tel.StartProcess(context.Background(), in, "fenqi")
	if span.IsRecording() {
		t.Error("a disabled Telemetry records spans")
	}
	Fail(span, errors.New("x"), "x")
	span.End()
	// The upstream context still flows through to what we write.
	var out kafka.Message
	tel.Inject(ctx, &out)
	if got, want := (HeaderCarrier{Msg: &out}).Get("traceparent"), "00-"+upstreamTraceID+"-"+upstreamSpanID+"-01"; got != want {
		t.Errorf("traceparent = %q, want the upstream's %q passed through", got, want)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported while disabled", n)
	}
}

// With a user-id key, a record's process span carries the keyed HMAC of its
// key (the user id), never the id; without one, nothing of the user.
func TestProcessSpanCarriesTheUserHMACOnlyWithAKey(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef")
	for _, withKey := range []bool{false, true} {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		cfg := Config{}
		if withKey {
			cfg.UserIDKey = key
		}
		tel, err := New(tp, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.StartProcess(context.Background(), &kafka.Message{Topic: "fenqi.payments", Key: []byte("u-1001")}, "fenqi")
		span.End()
		var got string
		for _, kv := range exp.GetSpans()[0].Attributes {
			if kv.Value.AsString() == "u-1001" {
				t.Errorf("key %v: the user id itself is recorded as %s", withKey, kv.Key)
			}
			if kv.Key == UserHMACKey {
				got = kv.Value.AsString()
			}
		}
		want := ""
		if withKey {
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte("u-1001"))
			want = hex.EncodeToString(mac.Sum(nil))
		}
		if got != want {
			t.Errorf("key %v: %s = %q, want %q", withKey, UserHMACKey, got, want)
		}
		_ = tel.Shutdown(context.Background())
	}
}
