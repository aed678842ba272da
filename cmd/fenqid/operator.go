package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/telemetry"
)

// operatorWriter publishes the admin API's operator events (overrides,
// special quotas, quota checks) to the operator topic, keyed by user, as
// structured CloudEvents: the pipeline applies them like any input event,
// so that a replay or a rebuild of state restores them. Safe for
// concurrent use.
type operatorWriter struct {
	w     *kafka.Writer
	topic string
	tel   *telemetry.Telemetry
}

// newOperatorWriter returns the writer of the operator topic, over the
// transport of the decision producer (TLS, SASL). Close it after the
// admin listener has stopped.
func newOperatorWriter(brokers []string, transport kafka.RoundTripper, topic string, tel *telemetry.Telemetry) *operatorWriter {
	if tel == nil {
		tel = telemetry.Nop()
	}
	return &operatorWriter{topic: topic, tel: tel, w: &kafka.Writer{
		Addr:      kafka.TCP(brokers...),
		Transport: transport,
		// The Java client's partitioner, as for every keyed record of fenqi.
		Balancer: &kafka.Murmur2Balancer{},
		// Acknowledged by every in-sync replica before the API answers 202.
		RequiredAcks: kafka.RequireAll,
		// One record per request: do not wait to fill a batch.
		BatchTimeout: time.Millisecond,
		WriteTimeout: 10 * time.Second,
	}}
}

// Submit publishes e and returns once the broker has acknowledged it (or
// ctx ends). It blocks for the write; a write that fails is not retried
// here: the caller (an HTTP client) is told and may send again.
func (o *operatorWriter) Submit(ctx context.Context, e events.Event) error {
	value, err := events.Marshal(e)
	if err != nil {
		return err
	}
	m := kafka.Message{Topic: o.topic, Key: []byte(e.Subject), Value: value,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}}
	pctx, span := o.tel.StartPublish(ctx, o.topic)
	defer span.End()
	o.tel.Inject(pctx, &m)
	if err := o.w.WriteMessages(ctx, m); err != nil {
		telemetry.Fail(span, err, "kafka")
		return fmt.Errorf("operator topic %s: %w", o.topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (o *operatorWriter) Close() error {
	if err := o.w.Close(); err != nil {
		return fmt.Errorf("close the operator topic writer: %w", err)
	}
	return nil
}
