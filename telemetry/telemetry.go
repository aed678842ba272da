package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
)

// ScopeName is the instrumentation scope of fenqi's tracer and meter.
const ScopeName = "github.com/fenqi/fenqi/telemetry"

// MinUserIDKeyBytes is the shortest Config.UserIDKey accepted: a short key
// can be guessed, and then every user id hashed with it.
const MinUserIDKeyBytes = 16

// Config of the telemetry. The zero value is valid: service "fenqid",
// exporters chosen by the OTEL_* variables, user ids never recorded.
type Config struct {
	// ServiceName is service.name (default "fenqid"); OTEL_SERVICE_NAME
	// overrides it.
	ServiceName string
	// ServiceVersion is service.version and the instrumentation scope's
	// version (may be empty).
	ServiceVersion string
	// SpansFile, when set, makes Setup also write every span as one JSON
	// object per line to this file (appended to, created 0600 if missing),
	// whatever OTEL_TRACES_EXPORTER says: traces for `make run` without a
	// collector.
	SpansFile string
	// UserIDKey, when set (at least MinUserIDKeyBytes bytes), lets UserAttr
	// return a keyed HMAC-SHA256 of a user id as fenqi.user.hmac. Nil: user
	// ids are never recorded.
	UserIDKey []byte
	// Disabled turns tracing off entirely (a no-op tracer provider).
	// Metrics stay on.
	Disabled bool
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "fenqid"
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if n := len(c.UserIDKey); n > 0 && n < MinUserIDKeyBytes {
		return fmt.Errorf("telemetry: UserIDKey must be at least %d bytes, got %d", MinUserIDKeyBytes, n)
	}
	return nil
}

// Telemetry holds fenqi's tracer, propagator and meter. Its methods are safe
// for concurrent use.
type Telemetry struct {
	cfg    Config
	tp     trace.TracerProvider
	mp     metric.MeterProvider
	tracer trace.Tracer
	// off: tracing is off (a no-op provider), so spans are started without
	// building their names and attributes, which the no-op tracer drops.
	off     bool
	meter   metric.Meter
	prop    propagation.TextMapPropagator
	handler http.Handler
	closers []io.Closer // closed after the providers, in order

	metricsOnce sync.Once
	metrics     *Metrics
	metricsErr  error

	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the tracer provider from cfg and the OTEL_* variables (see
// the package doc), and a meter provider whose metrics MetricsHandler
// serves. It does not connect to a collector: the OTLP exporters dial
// lazily. It sets no global (otel.SetTracerProvider and friends are left to
// main). Call Shutdown to flush and close.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tp, closers, err := newTracerProvider(ctx, cfg, res)
	if err != nil {
		return nil, err
	}
	t, err := newTelemetry(tp, nil, cfg, res)
	if err != nil {
		_ = shutdownProvider(ctx, tp)
		return nil, errors.Join(err, closeAll(closers))
	}
	t.closers = closers
	return t, nil
}

// New returns a Telemetry over the given providers, for tests that use an
// sdktrace provider with a tracetest.InMemoryExporter and an sdkmetric
// provider with a ManualReader. A nil tp, or cfg.Disabled (which then
// ignores tp and leaves it running), means tracing off (no-op). A nil
// mp makes New build its own meter provider and Prometheus registry, which
// MetricsHandler then serves; with a non-nil mp, MetricsHandler answers 404
// (the metrics go to mp's readers). The OTEL_* variables are not read,
// except OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES when New builds the
// meter provider. Shutdown shuts the given providers down too when they
// have a Shutdown(context.Context) error method (the SDK's do).
func New(tp trace.TracerProvider, mp metric.MeterProvider, cfg Config) (*Telemetry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var res *resource.Resource
	if mp == nil {
		var err error
		if res, err = newResource(context.Background(), cfg); err != nil {
			return nil, err
		}
	}
	return newTelemetry(tp, mp, cfg, res)
}

// Nop is a Telemetry that records nothing: no-op tracer and meter, nothing
// read from the environment. For a component given no Telemetry.
func Nop() *Telemetry {
	t, err := New(noop.NewTracerProvider(), metricnoop.NewMeterProvider(), Config{Disabled: true})
	if err != nil { // no-op providers and a fixed Config: cannot happen
		panic("telemetry: no-op setup: " + err.Error())
	}
	return t
}

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.ServiceVersion)))
	}
	// Later detectors win: the environment overrides the Config.
	attrs = append(attrs, resource.WithTelemetrySDK(), resource.WithFromEnv())
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, cfg Config, res *resource.Resource) (*Telemetry, error) {
	if tp == nil || cfg.Disabled {
		tp = noop.NewTracerProvider()
	}
	_, off := tp.(noop.TracerProvider)
	t := &Telemetry{
		cfg:  cfg,
		tp:   tp,
		off:  off,
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	if mp == nil {
		reg := prometheus.NewRegistry()
		exp, err := promexp.New(
			promexp.WithRegisterer(reg),
			// Names as written, no unit or _total suffix added: what the
			// code says is what the dashboard queries, even if a unit
			// changes. Pinned, as the exporter's default may change.
			promexp.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
			// No otel_scope_* labels: they would change every series when
			// the scope version (ServiceVersion) changes.
			promexp.WithoutScopeInfo(),
		)
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("telemetry: register go collector: %w", err)
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("telemetry: register process collector: %w", err)
		}
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
		t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	} else {
		t.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "telemetry: metrics go to the MeterProvider given to telemetry.New", http.StatusNotFound)
		})
	}
	t.mp = mp
	t.tracer = tp.Tracer(ScopeName, trace.WithInstrumentationVersion(cfg.ServiceVersion), trace.WithSchemaURL(semconv.SchemaURL))
	t.meter = mp.Meter(ScopeName, metric.WithInstrumentationVersion(cfg.ServiceVersion), metric.WithSchemaURL(semconv.SchemaURL))
	return t, nil
}

// Tracer returns fenqi's tracer.
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// TracerProvider returns the tracer provider (for otel.SetTracerProvider).
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the meter provider (for otel.SetMeterProvider).
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// MetricsHandler serves the metrics in the Prometheus text format, from a
// registry of its own (not prometheus.DefaultRegisterer) that holds fenqi's
// metrics and the go_* and process_* collectors. It answers on any path:
// mount it at /metrics.
func (t *Telemetry) MetricsHandler() http.Handler { return t.handler }

// Shutdown flushes and closes the tracer provider, the meter provider and
// the spans file, in that order, and returns the errors joined. Spans
// started after it are dropped. Calling it again returns the first
// result. It should be the last step of shutdown, after the Kafka writer
// is closed, so that the spans of the last batch are exported.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		t.shutdownErr = errors.Join(
			shutdownProvider(ctx, t.tp),
			shutdownProvider(ctx, t.mp),
			closeAll(t.closers),
		)
	})
	return t.shutdownErr
}

func shutdownProvider(ctx context.Context, p any) error {
	s, ok := p.(interface{ Shutdown(context.Context) error })
	if !ok {
		return nil
	}
	if err := s.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shut down %T: %w", p, err)
	}
	return nil
}

func closeAll(cs []io.Closer) error {
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: close: %w", err))
		}
	}
	return errors.Join(errs...)
}
