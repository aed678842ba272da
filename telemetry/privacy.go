package telemetry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// AllowedAttributes are the only attribute keys fenqi puts on spans, span
// events and links: the messaging ones, fenqi's own, error.type, and
// exception.* that RecordError adds (exception.type and exception.message;
// exception.stacktrace only with trace.WithStackTrace, which fenqi does not
// use, listed so that a test using it is not refused). Resource attributes
// (service.name, telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES) are not span
// attributes and are not checked.
//
// messaging.kafka.message.key is deliberately absent: it is the user id.
// Adding a key here is a privacy decision: say in its doc what it holds.
var AllowedAttributes = []attribute.Key{
	semconv.MessagingSystemKey,
	semconv.MessagingOperationNameKey,
	semconv.MessagingOperationTypeKey,
	semconv.MessagingDestinationNameKey,
	semconv.MessagingDestinationPartitionIDKey,
	semconv.MessagingKafkaOffsetKey,
	semconv.MessagingConsumerGroupNameKey,
	semconv.MessagingMessageIDKey,
	EventTypeKey,
	DecisionTypeKey,
	DecisionRuleKey,
	DeadLetterFieldKey,
	BatchSizeKey,
	UserHMACKey,
	semconv.ErrorTypeKey,
	semconv.ExceptionTypeKey,
	semconv.ExceptionMessageKey,
	semconv.ExceptionStacktraceKey,
}

// CheckSpanAttributes returns an error naming every attribute of the spans,
// their events and their links whose key is not in AllowedAttributes (one
// line per span and key), or nil.
func CheckSpanAttributes(spans tracetest.SpanStubs) error {
	var errs []error
	for _, s := range spans {
		var bad []attribute.Key
		check := func(kvs []attribute.KeyValue) {
			for _, kv := range kvs {
				if !slices.Contains(AllowedAttributes, kv.Key) && !slices.Contains(bad, kv.Key) {
					bad = append(bad, kv.Key)
				}
			}
		}
		check(s.Attributes)
		for _, e := range s.Events {
			check(e.Attributes)
		}
		for _, l := range s.Links {
			check(l.Attributes)
		}
		for _, k := range bad {
			errs = append(errs, fmt.Errorf("telemetry: span %q (%s) has attribute %s, not in AllowedAttributes", s.Name, s.SpanContext.SpanID(), k))
		}
	}
	return errors.Join(errs...)
}

// UserAttr returns fenqi.user.hmac, the hex HMAC-SHA256 of userID keyed
// with Config.UserIDKey, and true; or false when no key is set, in which
// case user ids must not be recorded at all. An operator who holds the key
// finds a user's spans by computing the same value, e.g.
// `printf %s "$USER_ID" | openssl dgst -sha256 -hmac "$KEY"` for a text key.
func (t *Telemetry) UserAttr(userID string) (attribute.KeyValue, bool) {
	if len(t.cfg.UserIDKey) == 0 {
		return attribute.KeyValue{}, false
	}
	mac := hmac.New(sha256.New, t.cfg.UserIDKey)
	mac.Write([]byte(userID))
	return UserHMACKey.String(hex.EncodeToString(mac.Sum(nil))), true
}
