package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/producers"
)

// Metric names, exactly as /metrics prints them (see the package doc on why
// no suffix is added by the exporter).
const (
	MetricEvents          = "fenqi_events_total"              // counter {topic, outcome}
	MetricDecisions       = "fenqi_decisions_total"           // counter {type, rule}
	MetricEventToDecision = "fenqi_event_to_decision_seconds" // histogram {clock}
	MetricBatchSize       = "fenqi_batch_size"                // histogram
	MetricBatchDuration   = "fenqi_batch_duration_seconds"    // histogram
	MetricConsumerLag     = "fenqi_consumer_lag"              // gauge {topic, partition}
	MetricRetries         = "fenqi_retries_total"             // counter {cause}
	MetricJobsDue         = "fenqi_jobs_due"                  // gauge {schedule}
	MetricJobsDone        = "fenqi_jobs_done_total"           // counter {schedule}
	MetricDeadLetters     = "fenqi_dead_letters_total"        // counter {topic, field}
	// MetricRecordsRefused: records the broker or the client refused for
	// good, each replaced by a stand-in dead letter (producers.Publisher).
	MetricRecordsRefused = "fenqi_records_refused_total" // counter {topic}

	// MetricJobsWatermarkLag: how far behind the clock a schedule's work is
	// judged, waiting for its input to be processed (overdue_checks: the
	// repayments topic's watermark; 0 when judged on the clock).
	MetricJobsWatermarkLag = "fenqi_jobs_watermark_lag_seconds" // gauge {schedule}

	// MetricShadowRecords: the shadow policy's records published
	// (fenqid -shadow-policy), by diff (same, changed, added, removed).
	MetricShadowRecords = "fenqi_shadow_records_total" // counter {diff}
)

// Label names.
const (
	labelTopic     = "topic"
	labelOutcome   = "outcome"
	labelType      = "type"
	labelRule      = "rule"
	labelClock     = "clock"
	labelPartition = "partition"
	labelCause     = "cause"
	labelSchedule  = "schedule"
	labelDiff      = "diff"
	labelField     = "field"
)

// Values of the clock label of fenqi_event_to_decision_seconds.
const (
	// ClockEventTime: from the event's own time (CloudEvents time).
	ClockEventTime = "event_time"
	// ClockAppendTime: from the Kafka record's timestamp (kafka.Message.Time).
	ClockAppendTime = "append_time"
)

// Values of the schedule label of the jobs metrics.
const (
	ScheduleOverdueChecks = "overdue_checks"
	ScheduleRecompute     = "recompute"
)

// Values of the outcome label of fenqi_events_total besides the state
// statuses (applied, redelivered, duplicate).
const (
	OutcomeDeadLettered = "dead_lettered"
	OutcomeLate         = "late"
	// OutcomeUnknownRedelivery: a redelivered record whose event is not
	// among its user's latest (state.Outcome.Unknown): an offset reset
	// without a raised epoch, or more of the user's events in flight than
	// the dedup ring holds. Counted instead of redelivered.
	OutcomeUnknownRedelivery = "unknown_redelivery"
)

// Bucket boundaries. Latency spans milliseconds (the normal path) to hours
// (a backlog replayed after downtime).
var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600}
	batchBuckets   = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	tookBuckets    = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// TopicPartition names one input partition.
type TopicPartition struct {
	Topic     string
	Partition int
}

// Metrics records fenqi's metrics. Its methods are cheap and safe for
// concurrent use; its method set includes consumers.Observer. Methods that
// take no context record without exemplars.
type Metrics struct {
	events        metric.Int64Counter
	decisions     metric.Int64Counter
	latency       metric.Float64Histogram
	batchSize     metric.Int64Histogram
	batchDuration metric.Float64Histogram
	retries       metric.Int64Counter
	jobsDone      metric.Int64Counter
	deadLetters   metric.Int64Counter
	refused       metric.Int64Counter

	lag    atomic.Pointer[func() map[TopicPartition]int64]
	jobs   atomic.Pointer[func() map[string]int64]
	shadow atomic.Pointer[func() map[string]int64]
	behind atomic.Pointer[func() map[string]time.Duration]

	sets sync.Map // setKey -> metric.MeasurementOption (a cached attribute set)
}

// setKey names a cached attribute set: the instrument's labels and values.
type setKey struct{ k1, v1, k2, v2 string }

// attrs returns the attribute set {k1=v1[, k2=v2]}, built once per
// distinct value so that the hot path does not allocate.
func (m *Metrics) attrs(k1, v1, k2, v2 string) metric.MeasurementOption {
	key := setKey{k1, v1, k2, v2}
	if o, ok := m.sets.Load(key); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{attribute.String(k1, v1)}
	if k2 != "" {
		kvs = append(kvs, attribute.String(k2, v2))
	}
	o, _ := m.sets.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}

// Metrics returns the Metrics of t's meter provider, creating its
// instruments on the first call; later calls return the same Metrics.
func (t *Telemetry) Metrics() (*Metrics, error) {
	t.metricsOnce.Do(func() { t.metrics, t.metricsErr = newMetrics(t.meter) })
	return t.metrics, t.metricsErr
}

func newMetrics(meter metric.Meter) (*Metrics, error) {
	m := &Metrics{}
	var errs []error
	note := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("telemetry: instrument %s: %w", name, err))
		}
	}
	var err error
	m.events, err = meter.Int64Counter(MetricEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Input records handled, by topic and outcome (applied, redelivered, duplicate, dead_lettered, late)."))
	note(MetricEvents, err)
	m.decisions, err = meter.Int64Counter(MetricDecisions, metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions acknowledged by the broker, by CloudEvents type and rule."))
	note(MetricDecisions, err)
	m.latency, err = meter.Float64Histogram(MetricEventToDecision, metric.WithUnit("s"),
		metric.WithDescription("Time from an event (clock=event_time: its own time; clock=append_time: its Kafka record timestamp) to its decision acknowledged."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	note(MetricEventToDecision, err)
	m.batchSize, err = meter.Int64Histogram(MetricBatchSize, metric.WithUnit("{record}"),
		metric.WithDescription("Records per processed batch."),
		metric.WithExplicitBucketBoundaries(batchBuckets...))
	note(MetricBatchSize, err)
	m.batchDuration, err = meter.Float64Histogram(MetricBatchDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to process a batch, from its first record decoded to its offsets committed."),
		metric.WithExplicitBucketBoundaries(tookBuckets...))
	note(MetricBatchDuration, err)
	m.retries, err = meter.Int64Counter(MetricRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("Transient errors retried, by cause."))
	note(MetricRetries, err)
	m.jobsDone, err = meter.Int64Counter(MetricJobsDone, metric.WithUnit("{entry}"),
		metric.WithDescription("Schedule entries worked, by schedule (overdue_checks, recompute)."))
	note(MetricJobsDone, err)
	m.deadLetters, err = meter.Int64Counter(MetricDeadLetters, metric.WithUnit("{record}"),
		metric.WithDescription("Records written to the dead-letter topic, by input topic and refused field."))
	note(MetricDeadLetters, err)
	m.refused, err = meter.Int64Counter(MetricRecordsRefused, metric.WithUnit("{record}"),
		metric.WithDescription("Records refused for good by the broker or the client (too large, invalid), each replaced by a stand-in dead letter, by the record's topic."))
	note(MetricRecordsRefused, err)
	_, err = meter.Int64ObservableGauge(MetricConsumerLag, metric.WithUnit("{record}"),
		metric.WithDescription("Records behind the high watermark, by input topic and partition."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if f := m.lag.Load(); f != nil {
				for tp, lag := range (*f)() {
					o.Observe(lag, metric.WithAttributes(
						attribute.String(labelTopic, tp.Topic), attribute.String(labelPartition, strconv.Itoa(tp.Partition))))
				}
			}
			return nil
		}))
	note(MetricConsumerLag, err)
	_, err = meter.Int64ObservableGauge(MetricJobsDue, metric.WithUnit("{entry}"),
		metric.WithDescription("Schedule entries due now, by schedule (overdue_checks, recompute)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if f := m.jobs.Load(); f != nil {
				for schedule, n := range (*f)() {
					o.Observe(n, metric.WithAttributes(attribute.String(labelSchedule, schedule)))
				}
			}
			return nil
		}))
	note(MetricJobsDue, err)
	_, err = meter.Int64ObservableCounter(MetricShadowRecords, metric.WithUnit("{record}"),
		metric.WithDescription("Shadow records published (fenqid -shadow-policy), by diff: same, changed, added (only the candidate decides), removed (only the live policy decides)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if f := m.shadow.Load(); f != nil {
				for diff, n := range (*f)() {
					o.Observe(n, metric.WithAttributes(attribute.String(labelDiff, diff)))
				}
			}
			return nil
		}))
	note(MetricShadowRecords, err)
	_, err = meter.Float64ObservableGauge(MetricJobsWatermarkLag, metric.WithUnit("s"),
		metric.WithDescription("How far behind the clock a schedule's entries are judged, waiting for their input topic to be processed (overdue_checks: min(now, the repayments topic's watermark)); 0 when judged on the clock."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if f := m.behind.Load(); f != nil {
				for schedule, d := range (*f)() {
					o.Observe(max(d, 0).Seconds(), metric.WithAttributes(attribute.String(labelSchedule, schedule)))
				}
			}
			return nil
		}))
	note(MetricJobsWatermarkLag, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// Batch records one processed batch: its size and how long it took.
func (m *Metrics) Batch(size int, took time.Duration) {
	ctx := context.Background()
	m.batchSize.Record(ctx, int64(size))
	m.batchDuration.Record(ctx, took.Seconds())
}

// Event counts one input record by topic and outcome (applied,
// redelivered, duplicate, dead_lettered, late).
func (m *Metrics) Event(topic, outcome string) {
	m.events.Add(context.Background(), 1, m.attrs(labelTopic, topic, labelOutcome, outcome))
}

// Decision counts one decision acknowledged by the broker, by type (the
// CloudEvents type, e.g. fenqi.decision.alert.v1) and rule.
func (m *Metrics) Decision(d events.Decision) {
	m.decisions.Add(context.Background(), 1, m.attrs(labelType, d.Type, labelRule, d.Data.Rule))
}

// DeadLetter counts one dead letter acknowledged by the broker, by the
// input topic and the refused field ("unknown" when none is known).
func (m *Metrics) DeadLetter(dl producers.DeadLetter) {
	field := dl.Field
	if field == "" {
		field = "unknown"
	}
	m.deadLetters.Add(context.Background(), 1, m.attrs(labelTopic, dl.Msg.Topic, labelField, field))
}

// Refused counts one record refused for good and replaced by its stand-in
// (producers.Config.OnRefused).
func (m *Metrics) Refused(topic string, _ error) {
	m.refused.Add(context.Background(), 1, m.attrs(labelTopic, topic, "", ""))
}

// Retry counts one retried transient error by cause. The error's text is
// not recorded (it would make a series per message).
func (m *Metrics) Retry(cause string, _ error, _ time.Duration) {
	m.retries.Add(context.Background(), 1, m.attrs(labelCause, cause, "", ""))
}

// Latency records the time from an event to its decision acknowledged, by
// clock (ClockEventTime or ClockAppendTime). A negative d (a clock ahead
// of ours) is recorded as 0.
func (m *Metrics) Latency(clock string, d time.Duration) {
	m.latency.Record(context.Background(), max(d, 0).Seconds(), m.attrs(labelClock, clock, "", ""))
}

// JobDone counts n schedule entries worked by schedule
// (ScheduleOverdueChecks or ScheduleRecompute).
func (m *Metrics) JobDone(schedule string, n int) {
	if n > 0 {
		m.jobsDone.Add(context.Background(), int64(n), m.attrs(labelSchedule, schedule, "", ""))
	}
}

// RegisterLag sets the function fenqi_consumer_lag reads at each scrape;
// it replaces any earlier one, and nil removes it. f runs on the scraping
// goroutine: it must be quick and safe for concurrent use, and should
// return cached figures rather than ask the broker.
func (m *Metrics) RegisterLag(f func() map[TopicPartition]int64) {
	if f == nil {
		m.lag.Store(nil)
		return
	}
	m.lag.Store(&f)
}

// RegisterJobs sets the function fenqi_jobs_due reads at each scrape (due
// entries by schedule), with the same rules as RegisterLag.
func (m *Metrics) RegisterJobs(f func() map[string]int64) {
	if f == nil {
		m.jobs.Store(nil)
		return
	}
	m.jobs.Store(&f)
}

// RegisterShadow sets the function fenqi_shadow_records_total reads at
// each scrape (records published so far, by diff), with the same rules as
// RegisterLag.
func (m *Metrics) RegisterShadow(f func() map[string]int64) {
	if f == nil {
		m.shadow.Store(nil)
		return
	}
	m.shadow.Store(&f)
}

// RegisterJobsWatermarkLag sets the function
// fenqi_jobs_watermark_lag_seconds reads at each scrape (how far behind
// the clock each schedule's entries were last judged), with the same rules
// as RegisterLag.
func (m *Metrics) RegisterJobsWatermarkLag(f func() map[string]time.Duration) {
	if f == nil {
		m.behind.Store(nil)
		return
	}
	m.behind.Store(&f)
}
