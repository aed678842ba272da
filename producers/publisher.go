package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	// HeaderTruncated is set on a dead letter whose value was cut to a
	// prefix to fit (see Config.MaxRecordBytes): the original size in bytes.
	HeaderTruncated = "fenqi-truncated"
	// HeaderDroppedHeaders is set when the original record's headers did not
	// fit either: how many of them were left out.
	HeaderDroppedHeaders = "fenqi-dropped-headers"
	// HeaderDecisionID is set on the stand-in of a decision the broker
	// refused: the decision's id.
	HeaderDecisionID = "fenqi-decision-id"
)

// Record size bounds.
const (
	// DefaultMaxRecordBytes bounds every record fenqi produces: under
	// kafka-go's 1 MiB batch limit (which refuses a larger record for good,
	// before sending it) and the broker's default message.max.bytes.
	DefaultMaxRecordBytes = 1000000
	// DeadLetterPrefixBytes is how much of an oversized dead letter's value
	// is kept. The fenqi-topic/partition/offset headers point at the whole
	// original, which stays on its input topic.
	DeadLetterPrefixBytes = 64 << 10
)

// Config of the publisher.
type Config struct {
	Brokers []string
	// Transport carries the writer's requests (conn.KafkaConn.Transport:
	// TLS, SASL); nil = kafka-go's default, plaintext.
	Transport      kafka.RoundTripper
	DecisionsTopic string // default fenqi.decisions
	DLQTopic       string // default fenqi.dlq
	// BatchTimeout is how long the writer waits to fill a batch. kafka-go's
	// default is 1 s, which would add a second to every synchronous publish
	// of a small batch (kafka-go #1180). Every Write here is already a whole
	// batch (a consumer batch's decisions, a job's), and a synchronous
	// WriteMessages appends all its records under the partition writer's
	// lock before the timer can fire, so waiting longer only adds latency:
	// the default sends at once. (2 ms, the default before, was 2 ms of
	// every batch's publish: draining 100,000 events, publishing took
	// 784 ms at 2 ms and 336 ms at 50 µs, and the drain went from 51,870 to
	// 55,402 events/s, two runs back to back.)
	BatchTimeout time.Duration // default 50µs
	// WriteTimeout bounds one produce request (default 10 s).
	WriteTimeout time.Duration
	// Compression of produced batches: "none" (the default), "gzip",
	// "snappy", "lz4" or "zstd". A quota decision is ~3 KB of JSON whose
	// keys repeat from one decision to the next: lz4 shrinks a batch of
	// them about 16 times, zstd about 30, for a few µs of CPU a decision.
	Compression string
	// MaxRecordBytes bounds the size of every produced record, headers
	// included (default DefaultMaxRecordBytes). A dead letter above it keeps
	// a prefix of its value; see DeadLetterMessage.
	MaxRecordBytes int
	Retry          retry.Policy
	// OnRetry is told of each retried publish (may be nil).
	OnRetry retry.Notify
	// OnRefused is told of each record refused for good and replaced by
	// its stand-in (may be nil): the record's topic and why.
	OnRefused func(topic string, err error)
}

func (c *Config) setDefaults() {
	if c.DecisionsTopic == "" {
		c.DecisionsTopic = events.TopicDecisions
	}
	if c.DLQTopic == "" {
		c.DLQTopic = events.TopicDLQ
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 50 * time.Microsecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
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
	case c.MaxRecordBytes != 0 && (c.MaxRecordBytes < 2*DeadLetterPrefixBytes || c.MaxRecordBytes > 1<<20):
		return fmt.Errorf("producers: MaxRecordBytes must be %d..%d, got %d", 2*DeadLetterPrefixBytes, 1<<20, c.MaxRecordBytes)
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
		Transport:   cfg.Transport,
		Compression: codec,
		// Topic is left empty: each record names its own.
		// Murmur2 is the Java client's partitioner: a user's decisions land
		// on the same partition as any Java producer would put them.
		Balancer: &kafka.Murmur2Balancer{},
		// A zero Writer{} would not wait for any acknowledgement (acks=0)
		// and lose writes silently; wait for all in-sync replicas.
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		// The most records of one partition in one produce request. kafka-go
		// allocates room for this many records for every partition batch
		// (writeBatch.add): at 1,000 that was ~150 KB per partition per
		// Write, 20% of all bytes allocated draining 100,000 events, and
		// the time to clear them. A consumer batch of 500 events brings a
		// few dozen decisions to each partition; more go in several
		// requests.
		BatchSize:    100,
		BatchBytes:   1 << 20,
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
		Topic:   p.cfg.DecisionsTopic,
		Key:     []byte(d.Subject),
		Value:   v,
		Headers: []kafka.Header{contentTypeHeader},
	}, nil
}

// DecisionMessages encodes decisions as DecisionMessage does, into one
// buffer for the lot (values and keys are slices of it): a recompute
// batch's 500 quota decisions of ~4 KB each cost 500 allocations fewer,
// and no copy. An error names the decision that failed.
func (p *Publisher) DecisionMessages(ds []events.Decision) ([]kafka.Message, error) {
	const chunk = 64 << 10 // a new buffer when less than a decision's worth is left
	msgs := make([]kafka.Message, len(ds), len(ds)+1)
	headers := make([]kafka.Header, len(ds)) // one each: a tracer may set its own
	var buf []byte
	for i, d := range ds {
		if cap(buf)-len(buf) < 8<<10 {
			buf = make([]byte, 0, chunk)
		}
		start := len(buf)
		var err error
		if buf, err = events.AppendDecision(buf, d); err != nil {
			return nil, fmt.Errorf("producers: encode decision %s: %w", d.ID, err)
		}
		value := buf[start:len(buf):len(buf)]
		buf = append(buf, d.Subject...)
		key := buf[start+len(value) : len(buf) : len(buf)]
		headers[i] = contentTypeHeader
		msgs[i] = kafka.Message{Topic: p.cfg.DecisionsTopic, Key: key, Value: value, Headers: headers[i : i+1 : i+1]}
	}
	return msgs, nil
}

// contentTypeHeader is every decision record's header (its value is
// shared: nothing writes into it).
var contentTypeHeader = kafka.Header{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}

// DeadLetterMessage builds the dead-letter record of an input record: its
// key, value and headers, plus the fenqi-* headers that say why and where
// from. A dead letter always fits in Config.MaxRecordBytes: above it the
// value is cut to its first DeadLetterPrefixBytes (fenqi-truncated gives
// the original size) and, if the original headers still do not fit, the
// last of them are left out (fenqi-dropped-headers gives how many).
func (p *Publisher) DeadLetterMessage(dl DeadLetter) kafka.Message {
	reason := "unknown error"
	if dl.Err != nil {
		reason = dl.Err.Error()
	}
	at := dl.At
	if at.IsZero() {
		at = time.Now()
	}
	ours := []kafka.Header{
		{Key: HeaderError, Value: []byte(truncate(reason, 4096))},
		{Key: HeaderErrorField, Value: []byte(dl.Field)},
		{Key: HeaderTopic, Value: []byte(dl.Msg.Topic)},
		{Key: HeaderPartition, Value: []byte(strconv.Itoa(dl.Msg.Partition))},
		{Key: HeaderOffset, Value: []byte(strconv.FormatInt(dl.Msg.Offset, 10))},
		{Key: HeaderFailedAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	}
	key, value, orig := dl.Msg.Key, dl.Msg.Value, dl.Msg.Headers
	limit := p.cfg.MaxRecordBytes
	if recordSize(key, value, orig, ours) > limit {
		ours = append(ours, kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))})
		if len(value) > DeadLetterPrefixBytes {
			value = value[:DeadLetterPrefixBytes]
		}
		if len(key) > DeadLetterPrefixBytes {
			key = key[:DeadLetterPrefixBytes]
		}
		kept := len(orig)
		for kept > 0 && recordSize(key, value, orig[:kept], ours)+headerSize(HeaderDroppedHeaders, "0000000000") > limit {
			kept--
		}
		if kept < len(orig) {
			ours = append(ours, kafka.Header{Key: HeaderDroppedHeaders, Value: []byte(strconv.Itoa(len(orig) - kept))})
			orig = orig[:kept]
		}
	}
	hs := make([]kafka.Header, 0, len(orig)+len(ours))
	hs = append(append(hs, orig...), ours...)
	return kafka.Message{Topic: p.cfg.DLQTopic, Key: key, Value: value, Headers: hs}
}

// recordSize is an upper bound of a record's size on the wire (kafka-go's
// own count, plus a few bytes of varints per field).
func recordSize(key, value []byte, hss ...[]kafka.Header) int {
	n := 32 + len(key) + len(value)
	for _, hs := range hss {
		for _, h := range hs {
			n += headerSize(h.Key, string(h.Value))
		}
	}
	return n
}

func headerSize(key, value string) int { return 10 + len(key) + len(value) }

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Write writes records and returns when all are acknowledged, retrying
// transient failures until ctx ends. Records must name their topic.
//
// A record refused for good, by kafka-go or by the broker (too large,
// invalid), must not stop every partition behind it: it is replaced by a
// stand-in on the dead-letter topic that says why (see standIn) and
// written again, with the records that failed beside it. OnRefused, if
// set, is told of each. Other permanent errors (authorization, a topic
// that does not exist) are returned: they need the operator.
func (p *Publisher) Write(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs = p.fit(msgs)
	err := p.write(ctx, msgs)
	var werrs kafka.WriteErrors
	if err == nil || !errors.As(err, &werrs) || len(werrs) != len(msgs) || !anyRefused(werrs) {
		return err
	}
	// The broker refuses a whole batch when it is over its limit: try each
	// refused record alone before replacing it, and write again as they
	// are the records that failed beside them for a transient reason.
	var again []kafka.Message
	for i, e := range werrs {
		switch {
		case e == nil:
		case refusedForGood(e):
			if err := p.writeAlone(ctx, msgs[i]); err != nil {
				return err
			}
		default:
			again = append(again, msgs[i])
		}
	}
	return p.write(ctx, again)
}

// write is one WriteMessages with the retry path around it.
func (p *Publisher) write(ctx context.Context, msgs []kafka.Message) error {
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

// writeAlone writes one record in a request of its own and, if the broker
// refuses it for good there too, its stand-in.
func (p *Publisher) writeAlone(ctx context.Context, m kafka.Message) error {
	err := p.write(ctx, []kafka.Message{m})
	if err == nil || !refusedForGood(err) {
		return err
	}
	if p.cfg.OnRefused != nil {
		p.cfg.OnRefused(m.Topic, err)
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		err = werrs[0] // one record
	}
	return p.write(ctx, []kafka.Message{p.standIn(m, err)})
}

// fit replaces the records that kafka-go would refuse for their size (it
// refuses the whole call, before sending anything) by their stand-ins.
func (p *Publisher) fit(msgs []kafka.Message) []kafka.Message {
	var out []kafka.Message
	for i := range msgs {
		m := &msgs[i]
		if recordSize(m.Key, m.Value, m.Headers) <= p.cfg.MaxRecordBytes {
			continue
		}
		if out == nil {
			out = append([]kafka.Message(nil), msgs...) // the caller's slice stays as it was
		}
		err := fmt.Errorf("the record is over %d bytes", p.cfg.MaxRecordBytes)
		if p.cfg.OnRefused != nil {
			p.cfg.OnRefused(m.Topic, err)
		}
		out[i] = p.standIn(*m, err)
	}
	if out == nil {
		return msgs
	}
	return out
}

// refusedForGood reports whether a record's write error is about the record
// itself and permanent: writing it again as it is cannot succeed.
func refusedForGood(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return werrs.Count() > 0 && !slices.ContainsFunc(werrs, func(e error) bool { return e != nil && !refusedForGood(e) })
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) ||
		errors.Is(err, kafka.InvalidRecord) || errors.Is(err, kafka.InvalidMessage) ||
		errors.Is(err, kafka.InvalidMessageSize) || errors.Is(err, kafka.InvalidTimestamp)
}

func anyRefused(werrs kafka.WriteErrors) bool {
	for _, e := range werrs {
		if e != nil && refusedForGood(e) {
			return true
		}
	}
	return false
}

// standIn is what is written instead of a record refused for good: a
// dead letter on the dead-letter topic naming the record's topic and the
// reason, with no value and only the fenqi-* headers (the original
// headers may be what made it too large). For a dead letter (already on
// that topic) the stand-in keeps its fenqi-* headers, which point at the
// original input record; for a decision it keeps the decision's key and
// id, so that the gap can be found and the decision recomputed (fenqictl
// explain).
func (p *Publisher) standIn(m kafka.Message, why error) kafka.Message {
	var hs []kafka.Header
	if m.Topic == p.cfg.DLQTopic {
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "fenqi-") && h.Key != HeaderError && h.Key != HeaderTruncated && h.Key != HeaderDroppedHeaders {
				hs = append(hs, h)
			}
		}
		hs = append(hs, kafka.Header{Key: HeaderError, Value: []byte("the dead letter was refused (" + why.Error() + "): its value and headers are left out; fenqi-topic/partition/offset name the original")})
	} else {
		hs = append(hs,
			kafka.Header{Key: HeaderError, Value: []byte("the record was refused (" + why.Error() + ") and is replaced by this dead letter")},
			kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
			kafka.Header{Key: HeaderFailedAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		)
		if id := decisionID(m.Value); id != "" {
			hs = append(hs, kafka.Header{Key: HeaderDecisionID, Value: []byte(id)})
		}
	}
	hs = append(hs, kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(m.Value)))})
	key := m.Key
	if len(key) > DeadLetterPrefixBytes {
		key = key[:DeadLetterPrefixBytes]
	}
	return kafka.Message{Topic: p.cfg.DLQTopic, Key: key, Headers: hs}
}

// decisionID reads the "id" of a CloudEvents JSON record, "" when there is
// none to read.
func decisionID(v []byte) string {
	var env struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(v, &env) != nil || len(env.ID) > 256 {
		return ""
	}
	return env.ID
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
