package telemetry

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier carries trace context in a Kafka record's headers. It holds
// a pointer to the record, so a copy of the carrier still writes to the
// same record (a carrier over a value would drop injected headers
// silently). Header keys are compared exactly (Kafka header keys are
// case-sensitive; the W3C propagators use lower case).
type HeaderCarrier struct {
	Msg *kafka.Message
}

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the value of the first header named key, or "".
func (c HeaderCarrier) Get(key string) string {
	if c.Msg == nil {
		return ""
	}
	for _, h := range c.Msg.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set sets the header key to value, replacing every header of that key.
// It builds a new header slice rather than writing into the old one: a
// record copied by value shares its header array with the original, which
// must not change.
func (c HeaderCarrier) Set(key, value string) {
	if c.Msg == nil {
		return
	}
	hs := make([]kafka.Header, 0, len(c.Msg.Headers)+1)
	for _, h := range c.Msg.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	c.Msg.Headers = append(hs, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the header keys, each once, in order of first appearance.
func (c HeaderCarrier) Keys() []string {
	if c.Msg == nil {
		return nil
	}
	keys := make([]string, 0, len(c.Msg.Headers))
	seen := make(map[string]bool, len(c.Msg.Headers))
	for _, h := range c.Msg.Headers {
		if !seen[h.Key] {
			seen[h.Key] = true
			keys = append(keys, h.Key)
		}
	}
	return keys
}

// Extract returns ctx with the trace context and baggage found in m's
// headers (traceparent, tracestate, baggage). Without them it returns ctx
// as it is.
func (t *Telemetry) Extract(ctx context.Context, m *kafka.Message) context.Context {
	return t.prop.Extract(ctx, HeaderCarrier{Msg: m})
}

// Inject writes the trace context and baggage of ctx into m's headers,
// replacing any there. Call it after StartPublish, with the context it
// returned, and before the record is written.
func (t *Telemetry) Inject(ctx context.Context, m *kafka.Message) {
	t.prop.Inject(ctx, HeaderCarrier{Msg: m})
}
