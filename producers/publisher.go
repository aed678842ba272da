package producers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/retry"
)

// Dead-letter headers, documented in docs/events.md.
const (
	HeaderError      = "fenqi-error"
	HeaderErrorField = "fenqi-error-field"
	HeaderTopic      = "fenqi-topic"
	HeaderPartition  = "fenqi-partition"
	HeaderOffset     = "fenqi-offset"
	HeaderFailedAt   = "fenqi-failed-at"
)

// Config of the publisher.
type Config struct {
	Brokers        []string
	DecisionsTopic string // default fenqi.decisions
	DLQTopic       string // default fenqi.dlq
	// BatchTimeout is how long the writer waits to fill a batch. kafka-go's
	// default is 1 s, which would add a second to every synchronous publish
	// of a small batch (kafka-go #1180); a few milliseconds keep latency low
	// while a busy consumer still fills batches by itself.
	BatchTimeout time.Duration // default 2ms
	// WriteTimeout bounds one produce request (default 10 s).
	WriteTimeout time.Duration
	// Compression of produced batches: "none" (the default), "gzip",
	// "snappy", "lz4" or "zstd". A quota decision is ~3 KB of JSON whose
	// keys repeat from one decision to the next: lz4 shrinks a batch of
	// them about 16 times, zstd about 30, for a few µs of CPU a decision.
	Compression string
	Retry       retry.Policy
	// OnRetry is told of each retried publish (may be nil).
	OnRetry retry.Notify
}

func (c *Config) setDefaults() {
	if c.DecisionsTopic == "" {
		c.DecisionsTopic = events.TopicDecisions
	}
	if c.DLQTopic == "" {
		c.DLQTopic = events.TopicDLQ
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 2 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("producers: Brokers is empty")
	case c.DecisionsTopic == c.DLQTopic:
		return fmt.Errorf("producers: the decisions and dead-letter topics must differ (both %q)", c.DLQTopic)
	case c.BatchTimeout < 0 || c.BatchTimeout > time.Second:
		return fmt.Errorf("producers: BatchTimeout must be 0..1s, got %v", c.BatchTimeout)
	}
	if _, err := ParseCompression(c.Compression); err != nil {
		return err
	}
	return nil
}

// ParseCompression reads a Config.Compression name.
func ParseCompression(name string) (kafka.Compression, error) {
	switch name {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("producers: Compression must be none, gzip, snappy, lz4 or zstd, got %q", name)
}

// DeadLetter is an input record that cannot be processed.
type DeadLetter struct {
	Msg   kafka.Message // the original record
	Err   error         // why; a *events.DecodeError names its field
	Field string        // the offending field, if known
	At    time.Time
}

// Publisher writes decisions and dead letters. Safe for concurrent use.
type Publisher struct {
	cfg Config
	w   *kafka.Writer
}

// New returns a Publisher; it connects lazily on the first write.
func New(cfg Config) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, _ := ParseCompression(cfg.Compression) // validated
	w := &kafka.Writer{
		Addr:        kafka.TCP(cfg.Brokers...),
		Compression: codec,
		// Topic is left empty: each record names its own.
		// Murmur2 is the Java client's partitioner: a user's decisions land
		// on the same partition as any Java producer would put them.
		Balancer: &kafka.Murmur2Balancer{},
		// A zero Writer{} would not wait for any acknowledgement (acks=0)
		// and lose writes silently; wait for all in-sync replicas.
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    1000,
		WriteTimeout: cfg.WriteTimeout,
		// Synchronous: WriteMessages returns the outcome of every record.
		// (Async would drop errors unless Completion is set.)
		Async: false,
		// kafka-go retries inside WriteMessages a few times; longer
		// outages are retried by retry.Do around it.
		MaxAttempts:            3,
		AllowAutoTopicCreation: false,
	}
	return &Publisher{cfg: cfg, w: w}, nil
}

// Topics returns the decisions and dead-letter topic names.
func (p *Publisher) Topics() (decisions, dlq string) { return p.cfg.DecisionsTopic, p.cfg.DLQTopic }

// DecisionMessage encodes a decision as the record Publish writes.
func (p *Publisher) DecisionMessage(d events.Decision) (kafka.Message, error) {
	v, err := events.MarshalDecision(d)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("producers: encode decision %s: %w", d.ID, err)
	}
	return kafka.Message{
		Topic: p.cfg.DecisionsTopic,
		Key:   []byte(d.Subject),
		Value: v,
		Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)},
		},
	}, nil
}

// DeadLetterMessage builds the dead-letter record of an input record.
func (p *Publisher) DeadLetterMessage(dl DeadLetter) kafka.Message {
	hs := make([]kafka.Header, 0, len(dl.Msg.Headers)+6)
	hs = append(hs, dl.Msg.Headers...)
	reason := "unknown error"
	if dl.Err != nil {
		reason = dl.Err.Error()
	}
	at := dl.At
	if at.IsZero() {
		at = time.Now()
	}
	hs = append(hs,
		kafka.Header{Key: HeaderError, Value: []byte(reason)},
		kafka.Header{Key: HeaderErrorField, Value: []byte(dl.Field)},
		kafka.Header{Key: HeaderTopic, Value: []byte(dl.Msg.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(dl.Msg.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(dl.Msg.Offset, 10))},
		kafka.Header{Key: HeaderFailedAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	)
	return kafka.Message{Topic: p.cfg.DLQTopic, Key: dl.Msg.Key, Value: dl.Msg.Value, Headers: hs}
}

// Write writes records and returns when all are acknowledged, retrying
// transient failures until ctx ends. Records must name their topic.
func (p *Publisher) Write(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	err := retry.Do(ctx, p.cfg.Retry, "kafka_publish", p.cfg.OnRetry, func(ctx context.Context) error {
		return p.w.WriteMessages(ctx, msgs...)
	})
	if err != nil {
		return fmt.Errorf("producers: write %d records: %w", len(msgs), err)
	}
	return nil
}

// Publish encodes decisions and dead letters and writes them in one call.
func (p *Publisher) Publish(ctx context.Context, decisions []events.Decision, dead []DeadLetter) error {
	msgs := make([]kafka.Message, 0, len(decisions)+len(dead))
	for _, d := range decisions {
		m, err := p.DecisionMessage(d)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	for _, dl := range dead {
		msgs = append(msgs, p.DeadLetterMessage(dl))
	}
	return p.Write(ctx, msgs)
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("producers: close writer: %w", err)
	}
	return nil
}
