// Package telemetry gives fenqi its traces and metrics.
//
// In: the pipeline's records (kafka.Message, by pointer) and what the
// consumer, the producer and the jobs tell it (the Observer methods of
// Metrics). Out: spans, exported by the exporters the standard OTEL_*
// variables choose (OTLP gRPC or HTTP, console, a JSON-lines file, or
// none), and Prometheus text on MetricsHandler.
//
// # Setup
//
// Setup reads the standard variables:
//
//   - OTEL_TRACES_EXPORTER: otlp, console or none, or a comma-separated
//     list. Unset: otlp when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, none otherwise.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     grpc (default) or http/protobuf. Endpoint, headers, TLS and timeout
//     come from the exporters' own OTEL_EXPORTER_OTLP_* handling.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: read by the SDK
//     itself (always_on, always_off, traceidratio, parentbased_always_on,
//     parentbased_always_off, parentbased_traceidratio; default
//     parentbased_always_on). Setup refuses any other name rather than let
//     the SDK fall back silently.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: override
//     Config.ServiceName and add resource attributes.
//   - OTEL_SPAN_LINK_COUNT_LIMIT: unset, Setup raises the SDK's default of
//     128 links per span to 10000 (the largest consumer batch), so that a
//     batch span links to every event of the batch.
//
// When no exporter is chosen (and Config.SpansFile is empty) or
// Config.Disabled is set, the tracer provider is a no-op one: spans cost
// next to nothing, and Inject passes an incoming traceparent through
// unchanged, so downstream still joins the upstream trace. Metrics are on in
// every case.
//
// # Spans
//
// The consumer calls StartProcess for each record (it extracts the
// producer's context from the record's headers, so the trace goes on; a
// record without a traceparent starts a new trace), StartBatch for the
// per-batch work ("state apply", "scoring evaluate") linked to the records'
// spans, and StartPublish then Inject for each record it writes. Span
// names and attributes follow the OpenTelemetry messaging conventions
// (semconv v1.43.0, the version the SDK v1.47.0 uses): "<topic> process"
// (kind Consumer) and "<topic> publish" (kind Producer).
//
// # Privacy
//
// Spans carry only the attribute keys in AllowedAttributes;
// CheckSpanAttributes lets a test prove it. The Kafka key
// (messaging.kafka.message.key) is the user id and is never recorded.
// A user id appears only as fenqi.user.hmac, a keyed HMAC-SHA256, and
// only when Config.UserIDKey is set (UserAttr): a plain hash of a small,
// predictable id could be reversed by hashing every candidate.
//
// Fail records the error as a span event whose exception.message is the
// error text. Decode errors (events.DecodeError) name a field and echo at
// most 64 bytes of a CloudEvents attribute (specversion, type, content
// type), never the key or subject; callers must not pass errors whose
// text holds user ids, amounts or IPs.
//
// # Metrics
//
// Metric names are chosen to be printed verbatim: the Prometheus exporter
// runs with the UnderscoreEscapingWithoutSuffixes strategy and without
// otel_scope_* labels, so the names in this package are the names on
// /metrics and in the Grafana dashboard, whatever the instrument's unit.
// See the Metric* constants.
package telemetry
