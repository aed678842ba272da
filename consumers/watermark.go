package consumers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"golang.org/x/sync/errgroup"
)

// Watermark measures how far the consumer group has processed one input
// topic (the repayments topic) in time: the time up to which every record
// of the topic has been processed. The overdue checks judge a bill at
// min(now, watermark) (jobs.Config.Watermark), so that no reminder or
// freeze is published for a bill whose repayment is still on the topic,
// waiting to be processed after a downtime, during a backlog or a replay.
//
// A record counts as processed once the group committed an offset past
// it: the pipeline commits a batch only after its state is written, so a
// repayment below the committed offset has settled its bill in Redis.
//
// Each Read asks the broker, in this order: the clock's now; the
// partitions of the topic (Metadata); their first and end offsets
// (ListOffsets); the group's committed offsets (OffsetFetch); and, for
// each partition that lags (committed offset below the end offset), the
// record at the committed offset, the first one not processed (Fetch). A
// partition the group never committed (or committed below the log start,
// records since deleted) counts from its first record. The watermark is
// the clock's now when no partition lags, else the earliest timestamp of
// those first unprocessed records (capped at now).
//
// Record timestamps are the producer's CreateTime (kafka-go, franz-go and
// the Java client stamp records when they are written) or the broker's
// LogAppendTime: the time the record reached the topic. The watermark
// takes one record per partition, so it assumes that timestamps do not go
// backwards within a partition by more than the slack the operator
// accepts (true of LogAppendTime, and of producers whose clocks agree).
// A lagging partition whose pending records are all control records
// (transaction markers, which a consumer never sees and never commits
// past) does not hold the watermark back.
//
// Errors are those of kafka-go (transient ones say so: retry.Retryable),
// wrapped; a Read that fails changes nothing. Safe for concurrent use.
type Watermark struct {
	client *kafka.Client
	group  string
	topic  string
	now    func() time.Time

	mu   sync.Mutex
	last WatermarkReading
}

// WatermarkConfig configures a Watermark.
type WatermarkConfig struct {
	Brokers []string
	GroupID string // default DefaultGroupID
	Topic   string // default DefaultTopics().Repayments
	// Now is the clock (default time.Now): the watermark when nothing lags.
	Now func() time.Time
	// Timeout bounds each request to the broker (default 10s).
	Timeout time.Duration
	// Transport carries the requests (conn.KafkaConn.Transport: TLS,
	// SASL): give it one of its own, as for LagConfig.Transport. nil = a
	// plaintext kafka.Transport of its own.
	Transport kafka.RoundTripper
}

// WatermarkReading is one measurement of a Watermark.
type WatermarkReading struct {
	// At is the watermark: every record of the topic stamped before At has
	// been processed. Equal to Now when nothing lags.
	At time.Time
	// Now is the clock when the measurement began.
	Now time.Time
	// Behind is how many records of the topic are not processed yet
	// (end offset less committed offset, summed over the partitions).
	Behind int64
	// Lagging is how many partitions have records not processed yet.
	Lagging int
}

// Lag is how far the watermark is behind the clock (0 when caught up).
func (r WatermarkReading) Lag() time.Duration { return max(r.Now.Sub(r.At), 0) }

// NewWatermark returns the watermark of cfg.GroupID on cfg.Topic.
func NewWatermark(cfg WatermarkConfig) (*Watermark, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("consumers: watermark: Brokers is empty")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = DefaultGroupID
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopics().Repayments
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = &kafka.Transport{}
	}
	return &Watermark{
		// Its own transport, as the LagMonitor's: connections shared with
		// no one, and new ones after a broker restart.
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.Timeout, Transport: cfg.Transport},
		group:  cfg.GroupID,
		topic:  cfg.Topic,
		now:    cfg.Now,
	}, nil
}

// At returns the watermark now: the signature of jobs.Config.Watermark.
func (w *Watermark) At(ctx context.Context) (time.Time, error) {
	r, err := w.Read(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return r.At, nil
}

// Last returns the last successful measurement (zero before the first).
func (w *Watermark) Last() WatermarkReading {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Read measures the watermark now (see the type's doc for how).
func (w *Watermark) Read(ctx context.Context) (WatermarkReading, error) {
	// The clock first: a record appended after the offsets are listed
	// below is stamped after this now, so "nothing lags" means "nothing
	// stamped before now is unprocessed".
	now := w.now()
	r := WatermarkReading{At: now, Now: now}
	offs, err := groupOffsets(ctx, w.client, w.group, []string{w.topic})
	if err != nil {
		return r, fmt.Errorf("consumers: watermark of %s: %w", w.topic, err)
	}
	if len(offs[w.topic]) == 0 {
		return r, fmt.Errorf("consumers: watermark of %s: metadata: %w", w.topic, kafka.UnknownTopicOrPartition)
	}
	type lagging struct {
		partition int
		from      int64
	}
	var lags []lagging
	for _, p := range offs[w.topic] {
		if n := p.lag(); n > 0 {
			lags = append(lags, lagging{p.partition, p.next()})
			r.Behind += n
		}
	}
	if len(lags) == 0 {
		w.keep(r)
		return r, nil
	}
	stamps := make([]time.Time, len(lags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, l := range lags {
		g.Go(func() error {
			var err error
			stamps[i], err = w.firstStamp(gctx, l.partition, l.from)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	for _, ts := range stamps {
		if ts.IsZero() {
			continue // control records only: nothing to process
		}
		r.Lagging++
		r.At = minTime(r.At, ts)
	}
	w.keep(r)
	return r, nil
}

func (w *Watermark) keep(r WatermarkReading) {
	w.mu.Lock()
	w.last = r
	w.mu.Unlock()
}

// firstStamp returns the timestamp of the first data record at or after
// offset from in partition p, or the zero time when only control records
// (transaction markers) are there.
func (w *Watermark) firstStamp(ctx context.Context, p int, from int64) (time.Time, error) {
	resp, err := w.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: w.topic, Partition: p, Offset: from,
		// One record is enough, but a broker returns whole batches: the
		// first batch comes whatever its size (KIP-74).
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second,
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("consumers: watermark of %s/%d: fetch at %d: %w", w.topic, p, from, err)
	}
	if resp.Error != nil {
		if errors.Is(resp.Error, kafka.OffsetOutOfRange) {
			// Deleted by retention since the offsets were listed: the next
			// Read lists them again. (%v: kafka-go calls OffsetOutOfRange
			// permanent, and retry.Retryable would find it wrapped.)
			return time.Time{}, transient{fmt.Errorf("consumers: watermark of %s/%d: fetch at %d: %v", w.topic, p, from, resp.Error)}
		}
		return time.Time{}, fmt.Errorf("consumers: watermark of %s/%d: fetch at %d: %w", w.topic, p, from, resp.Error)
	}
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return time.Time{}, transient{fmt.Errorf("consumers: watermark of %s/%d: read record at %d: %w", w.topic, p, from, err)}
		}
		if rec.Offset >= from { // a batch may start before the offset asked
			return rec.Time, nil
		}
	}
	// No data record: only control batches (a kafka-go RecordStream skips
	// them), or nothing at all, which a broker holding records past from
	// should not answer (MinBytes 1): try again rather than guess.
	if s, ok := resp.Records.(*protocol.RecordStream); ok {
		for _, b := range s.Records {
			if _, ctl := b.(*protocol.ControlBatch); ctl {
				return time.Time{}, nil
			}
		}
	}
	return time.Time{}, transient{fmt.Errorf("consumers: watermark of %s/%d: no record at offset %d (high watermark %d)", w.topic, p, from, resp.HighWatermark)}
}

// transient marks an error worth retrying as it is (retry.Retryable).
type transient struct{ error }

func (transient) Temporary() bool { return true }
func (e transient) Unwrap() error { return e.error }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
