package testenv

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fenqi/fenqi/telemetry"
)

// Tracing returns a Telemetry that samples every span into the returned
// in-memory exporter (read it with GetSpans), with its own Prometheus
// registry for the metrics; it is shut down when the test ends.
func Tracing(t testing.TB) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	tel, err := telemetry.New(tp, nil, telemetry.Config{ServiceName: "fenqid-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, exp
}
