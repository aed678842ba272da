package telemetry

import (
	"context"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrier(t *testing.T) {
	t.Parallel()
	t.Run("set on a copy of the carrier changes the message", func(t *testing.T) {
		t.Parallel()
		m := &kafka.Message{Topic: "fenqi.payments"}
		c := HeaderCarrier{Msg: m}
		cp := c // a value copy, as a TextMapCarrier interface holds it
		cp.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		if got := (HeaderCarrier{Msg: m}).Get("traceparent"); got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
			t.Fatalf("message header traceparent = %q after Set on a copy", got)
		}
	})
	t.Run("set replaces every header of the key and keeps the others", func(t *testing.T) {
		t.Parallel()
		m := &kafka.Message{Headers: []kafka.Header{
			{Key: "traceparent", Value: []byte("old")},
			{Key: "content-type", Value: []byte("application/cloudevents+json")},
			{Key: "traceparent", Value: []byte("older")},
		}}
		c := HeaderCarrier{Msg: m}
		c.Set("traceparent", "new")
		want := []kafka.Header{
			{Key: "content-type", Value: []byte("application/cloudevents+json")},
			{Key: "traceparent", Value: []byte("new")},
		}
		if !slices.EqualFunc(m.Headers, want, func(a, b kafka.Header) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
			t.Fatalf("headers = %q, want %q", m.Headers, want)
		}
		if got, want := c.Keys(), []string{"content-type", "traceparent"}; !slices.Equal(got, want) {
			t.Fatalf("Keys() = %q, want %q", got, want)
		}
	})
	t.Run("set does not write into a header array shared with a copied record", func(t *testing.T) {
		t.Parallel()
		orig := kafka.Message{Headers: []kafka.Header{{Key: "traceparent", Value: []byte("upstream")}}}
		out := orig // shares orig.Headers' array
		HeaderCarrier{Msg: &out}.Set("traceparent", "ours")
		if got := (HeaderCarrier{Msg: &orig}).Get("traceparent"); got != "upstream" {
			t.Fatalf("original record's traceparent = %q, want it untouched", got)
		}
	})
	t.Run("nil message", func(t *testing.T) {
		t.Parallel()
		var c HeaderCarrier
		c.Set("k", "v")
		if c.Get("k") != "" || c.Keys() != nil {
			t.Fatal("a carrier without a message must be empty")
		}
	})
}

func TestInjectExtractRoundTrip(t *testing.T) {
	t.Parallel()
	tel, _ := newTestTelemetry(t, Config{})
	ctx, span := tel.Tracer().Start(context.Background(), "upstream")
	defer span.End()

	var m kafka.Message
	tel.Inject(ctx, &m)
	if (HeaderCarrier{Msg: &m}).Get("traceparent") == "" {
		t.Fatalf("no traceparent header after Inject: %q", m.Headers)
	}
	got := trace.SpanContextFromContext(tel.Extract(context.Background(), &m))
	want := span.SpanContext()
	if got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || got.TraceFlags() != want.TraceFlags() {
		t.Fatalf("extracted %v/%v, want %v/%v", got.TraceID(), got.SpanID(), want.TraceID(), want.SpanID())
	}
	if !got.IsRemote() {
		t.Fatal("an extracted span context must be remote")
	}
}
