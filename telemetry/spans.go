package telemetry

import (
	"context"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// fenqi's own span attribute keys. Only these and the messaging ones in
// AllowedAttributes may appear on spans.
const (
	// EventTypeKey is the input event's CloudEvents type, e.g. fenqi.payment.v1.
	EventTypeKey = attribute.Key("fenqi.event.type")
	// DecisionTypeKey is a decision's CloudEvents type, e.g. fenqi.decision.alert.v1.
	DecisionTypeKey = attribute.Key("fenqi.decision.type")
	// DecisionRuleKey is the rule that made a decision.
	DecisionRuleKey = attribute.Key("fenqi.decision.rule")
	// DeadLetterFieldKey is the field a dead-lettered record was refused for.
	DeadLetterFieldKey = attribute.Key("fenqi.dead_letter.field")
	// BatchSizeKey is the number of records a batch span covers.
	BatchSizeKey = attribute.Key("fenqi.batch.size")
	// UserHMACKey is the keyed HMAC of a user id (see UserAttr).
	UserHMACKey = attribute.Key("fenqi.user.hmac")
)

// Span names of the per-batch spans.
const (
	SpanStateApply      = "state apply"
	SpanScoringEvaluate = "scoring evaluate"
	// A job's batch: the root of the trace of the decisions it publishes
	// (a scheduled job has no upstream trace to continue).
	SpanJobsRecompute = "jobs recompute"
	SpanJobsOverdue   = "jobs overdue_checks"
)

const (
	operationProcess = "process"
	operationPublish = "publish"
)

// StartProcess starts the span of processing one consumed record:
// "<topic> process", kind Consumer, child of the span context found in the
// record's headers (the producer's). A record without a valid traceparent
// starts a new trace, even if ctx already holds a span. The returned
// context also carries the record's baggage. The caller ends the span once
// the record is done with (after its decisions are acknowledged, or after
// it is dead-lettered), calling Fail first if it failed.
//
// The attributes are messaging.system, messaging.operation.name/type,
// messaging.destination.name, messaging.destination.partition.id,
// messaging.kafka.offset and messaging.consumer.group.name (if group is not
// empty); never the record key, which is the user id, but its keyed HMAC
// fenqi.user.hmac when Config.UserIDKey is set (UserAttr).
func (t *Telemetry) StartProcess(ctx context.Context, m *kafka.Message, group string) (context.Context, trace.Span) {
	// Drop any span of ctx first, so that only the record's headers decide
	// the parent.
	ctx = t.Extract(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), m)
	if t.off {
		return t.tracer.Start(ctx, "") // the upstream span context passes through
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationName(operationProcess),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(m.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(m.Partition)),
		semconv.MessagingKafkaOffsetKey.Int64(m.Offset),
	)
	if group != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(group))
	}
	if len(m.Key) > 0 { // the key is the user id: only its keyed HMAC, and only with a key set
		if kv, ok := t.UserAttr(string(m.Key)); ok {
			attrs = append(attrs, kv)
		}
	}
	return t.tracer.Start(ctx, m.Topic+" "+operationProcess,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// SetMessageID records the CloudEvents id of the record a span is about
// (messaging.message.id). The id is the upstream's opaque event id or a
// decision's id, not a user id.
func SetMessageID(span trace.Span, id string) {
	if id != "" {
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
}

// StartPublish starts the span of producing one record to topic:
// "<topic> publish", kind Producer, child of the span in ctx (the process
// span of the event that caused it, or a job's span). Inject the returned
// context into the record's headers, then end the span once the write is
// acknowledged (Fail first if it failed).
func (t *Telemetry) StartPublish(ctx context.Context, topic string) (context.Context, trace.Span) {
	if t.off {
		return t.tracer.Start(ctx, "")
	}
	return t.tracer.Start(ctx, topic+" "+operationPublish,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationName(operationPublish),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(topic),
		))
}

// StartDecisionPublish starts the publish span of a decision's record m
// (StartPublish, with the decision's type and rule) and injects its
// context into m's headers; end the span once the write is acknowledged.
func (t *Telemetry) StartDecisionPublish(ctx context.Context, topic, decisionType, rule string, m *kafka.Message) trace.Span {
	pctx, span := t.StartPublish(ctx, topic)
	if !t.off {
		span.SetAttributes(DecisionTypeKey.String(decisionType), DecisionRuleKey.String(rule))
	}
	t.Inject(pctx, m)
	return span
}

// StartBatch starts an internal span for work done once for a whole batch,
// such as SpanStateApply or SpanScoringEvaluate, child of the span in ctx
// (usually none: a batch belongs to many traces) and linked to the spans of
// the batch's records (trace.LinkFromContext of each StartProcess context).
// fenqi.batch.size is set to len(links); set it again with
// span.SetAttributes(BatchSizeKey.Int(n)) if they differ.
func (t *Telemetry) StartBatch(ctx context.Context, name string, links []trace.Link) (context.Context, trace.Span) {
	if t.off {
		return t.tracer.Start(ctx, "")
	}
	return t.tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(links...),
		trace.WithAttributes(BatchSizeKey.Int(len(links))))
}

// Fail marks span as failed: it records err as an "exception" event
// (exception.type and exception.message, the error's text: see the package
// doc on what that text may hold), sets the status to Error with reason as
// its description, and sets error.type to reason. reason must be a short,
// low-cardinality cause such as "decode", "redis_apply" or "publish",
// never data.
func Fail(span trace.Span, err error, reason string) {
	if err != nil {
		span.RecordError(err)
	}
	if reason == "" {
		reason = semconv.ErrorTypeOther.Value.AsString()
	}
	span.SetAttributes(semconv.ErrorTypeKey.String(reason))
	span.SetStatus(codes.Error, reason)
}
