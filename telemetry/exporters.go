package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The standard variables Setup reads itself (the exporters and the SDK read
// the rest).
const (
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envLinkCountLimit = "OTEL_SPAN_LINK_COUNT_LIMIT"
)

// Values of OTEL_TRACES_EXPORTER and of the OTLP protocol variables.
const (
	exporterOTLP      = "otlp"
	exporterConsole   = "console"
	exporterNone      = "none"
	protocolGRPC      = "grpc"
	protocolHTTPProto = "http/protobuf"
)

// maxLinksPerSpan is the link limit Setup sets unless
// OTEL_SPAN_LINK_COUNT_LIMIT does: consumers.Config.BatchSize is at most
// 10000, and a batch span links to each of its records.
const maxLinksPerSpan = 10000

// samplers are the OTEL_TRACES_SAMPLER values the SDK understands
// (sdk/trace/sampler_env.go); it would fall back to parentbased_always_on
// on any other value, reporting it only to the global error handler.
var samplers = map[string]bool{
	"always_on": true, "always_off": true, "traceidratio": true,
	"parentbased_always_on": true, "parentbased_always_off": true, "parentbased_traceidratio": true,
}

// tracesExporters returns the exporter names chosen by OTEL_TRACES_EXPORTER
// (a comma-separated list), without "none".
func tracesExporters() ([]string, error) {
	v := strings.TrimSpace(os.Getenv(envTracesExporter))
	if v == "" {
		if os.Getenv(envEndpoint) != "" || os.Getenv(envTracesEndpoint) != "" {
			return []string{exporterOTLP}, nil
		}
		return nil, nil
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(v, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case exporterNone, "":
		case exporterOTLP, exporterConsole:
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		default:
			return nil, fmt.Errorf("telemetry: %s: unsupported exporter %q (want otlp, console or none)", envTracesExporter, n)
		}
	}
	return names, nil
}

// otlpProtocol returns the OTLP protocol for traces.
func otlpProtocol() (string, error) {
	name, v := envTracesProtocol, strings.TrimSpace(os.Getenv(envTracesProtocol))
	if v == "" {
		name, v = envProtocol, strings.TrimSpace(os.Getenv(envProtocol))
	}
	switch strings.ToLower(v) {
	case "", protocolGRPC:
		return protocolGRPC, nil
	case protocolHTTPProto:
		return protocolHTTPProto, nil
	}
	return "", fmt.Errorf("telemetry: %s: unsupported protocol %q (want grpc or http/protobuf)", name, v)
}

func checkSampler() error {
	v := strings.ToLower(strings.TrimSpace(os.Getenv(envSampler)))
	if v == "" || samplers[v] {
		return nil
	}
	return fmt.Errorf("telemetry: %s: unsupported sampler %q", envSampler, v)
}

// newTracerProvider returns the tracer provider cfg and the environment ask
// for, and what must be closed after it is shut down.
func newTracerProvider(ctx context.Context, cfg Config, res *resource.Resource) (tp trace.TracerProvider, closers []io.Closer, err error) {
	if cfg.Disabled {
		return noop.NewTracerProvider(), nil, nil
	}
	names, err := tracesExporters()
	if err != nil {
		return nil, nil, err
	}
	if len(names) == 0 && cfg.SpansFile == "" {
		return noop.NewTracerProvider(), nil, nil
	}
	if err := checkSampler(); err != nil {
		return nil, nil, err
	}

	var exps []sdktrace.SpanExporter
	defer func() {
		if err != nil {
			for _, e := range exps {
				err = errors.Join(err, e.Shutdown(ctx))
			}
			err = errors.Join(err, closeAll(closers))
		}
	}()
	for _, n := range names {
		switch n {
		case exporterOTLP:
			proto, err := otlpProtocol()
			if err != nil {
				return nil, nil, err
			}
			var e sdktrace.SpanExporter
			if proto == protocolHTTPProto {
				e, err = otlptracehttp.New(ctx)
			} else {
				e, err = otlptracegrpc.New(ctx)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("telemetry: OTLP %s trace exporter: %w", proto, err)
			}
			exps = append(exps, e)
		case exporterConsole:
			e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
			if err != nil {
				return nil, nil, fmt.Errorf("telemetry: console trace exporter: %w", err)
			}
			exps = append(exps, e)
		}
	}
	if cfg.SpansFile != "" {
		f, err := os.OpenFile(cfg.SpansFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: SpansFile: %w", err)
		}
		closers = append(closers, f)
		// Without WithPrettyPrint the exporter writes one JSON object and a
		// newline per span.
		e, err := stdouttrace.New(stdouttrace.WithWriter(f))
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: SpansFile exporter: %w", err)
		}
		exps = append(exps, e)
	}

	limits := sdktrace.NewSpanLimits() // reads OTEL_SPAN_*_LIMIT
	if os.Getenv(envLinkCountLimit) == "" {
		limits.LinkCountLimit = maxLinksPerSpan
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(limits),
		// No WithSampler: the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself
		// and defaults to parentbased_always_on.
	}
	for _, e := range exps {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	return sdktrace.NewTracerProvider(opts...), closers, nil
}
