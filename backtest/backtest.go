// Package backtest replays recorded input history through fenqi with the
// live policy and a candidate side by side, into a Redis namespace of its
// own, on a clock that follows event time, and returns the shadow records
// of every decision (see package shadow) for a report.
//
// The history is read partition by partition and merged in event-time
// order, ties broken by topic, partition and offset: the same recorded
// history always goes through in the same order, and gives the same
// records (a consumer group's fetches would interleave the partitions as
// they come). How far it is goes to a consumer group of its own (Group),
// so that Kafka's tools show its progress; fenqid's group is untouched. Before each
// batch the clock is set to the batch's first event time and the overdue
// checks and quota recomputes due by then run, as they would have; the
// batch is then processed at its last event time. A batch spans at most
// BatchSpan of event time, so no timer fires later than that after its time.
//
// Nothing is published: the decisions of both policies are collected (the
// live topic is untouched), and the namespace is deleted when Run returns
// (unless Keep).
package backtest

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
)

// Range is the records [From, To) of one input partition to replay.
type Range struct {
	Topic     string
	Partition int
	From, To  int64
}

// Config of a backtest.
type Config struct {
	// Brokers and Open read the history: Open returns a reader of one
	// partition (no group) positioned at offset.
	Brokers []string
	Open    func(topic string, partition int, offset int64) (*kafka.Reader, error)
	Ranges  []Range
	Topics  consumers.Topics // the input topics' names (their index order)
	// Client (may be nil: no group) commits the replay's position, every
	// second and at the end, to Group (default "fenqi-backtest-" and the
	// namespace's name), a consumer group of its own with no members: its
	// lag is the records left. The group is deleted at the end (unless
	// Keep). It must not be a group in use.
	Client *kafka.Client
	Group  string

	// Live decides (and drives the state), Candidate decides beside it.
	Live, Candidate *policy.Policy

	// Redis holds the namespace: every key under Prefix (default
	// "fenqi-backtest-<random>:"), which must be empty at the start.
	Redis  redis.UniversalClient
	Prefix string
	// Keep leaves the namespace in Redis (to look at the users' state);
	// by default it is deleted when Run returns.
	Keep bool

	DefaultZone *time.Location // default Asia/Shanghai
	Decoder     events.Decoder // its Now is the backtest's clock
	// BatchSize (default 500) and BatchSpan (default 1m of event time)
	// bound a batch.
	BatchSize int
	BatchSpan time.Duration
	// Progress (may be nil) hears how far the replay is, at most a few
	// times a second and once at the end.
	Progress func(Progress)
	Log      *slog.Logger
}

// Progress of a replay.
type Progress struct {
	Records, Total int64
	EventTime      time.Time // the clock
	Done           bool
}

// Result of a backtest.
type Result struct {
	// Records are the shadow records, one per decision id, in id order.
	Records []shadow.Record
	// Events counts the records replayed, DeadLetters those that would
	// have been dead-lettered, Decisions the live policy's decisions.
	Events, DeadLetters, Decisions int64
	// From and To are the first and last event times replayed.
	From, To time.Time
	Prefix   string
	Group    string // the consumer group of its progress
}

// Run replays the history and returns its records.
func Run(ctx context.Context, cfg Config) (_ *Result, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := empty(ctx, cfg.Redis, cfg.Prefix); err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer func() {
			if cerr := Clean(context.WithoutCancel(ctx), cfg.Redis, cfg.Prefix); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
	}
	liveRules, err := scoring.NewRules(cfg.Live)
	if err != nil {
		return nil, fmt.Errorf("backtest: live policy: %w", err)
	}
	candRules, err := scoring.NewRules(cfg.Candidate)
	if err != nil {
		return nil, fmt.Errorf("backtest: candidate policy: %w", err)
	}
	sc := jobs.StateConfig(cfg.Live, cfg.DefaultZone)
	if err := jobs.Servable(sc, cfg.Live); err != nil {
		return nil, fmt.Errorf("backtest: live policy %s: %w", cfg.Live.Version, err)
	}
	if err := jobs.ShadowServable(sc, cfg.Candidate); err != nil {
		return nil, fmt.Errorf("backtest: candidate policy %s: %w", cfg.Candidate.Version, err)
	}
	clk := &clock{}
	sc.Prefix, sc.Now = cfg.Prefix, clk.Now
	sc.Credit = jobs.CreditCheck(func() *policy.Policy { return cfg.Live })
	sc.ShadowCredit = jobs.CreditCheck(func() *policy.Policy { return cfg.Candidate })
	store, err := state.New(cfg.Redis, sc)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	sk := newSink()
	dec := cfg.Decoder
	dec.Now = clk.Now
	pipe, err := consumers.New(consumers.Config{
		Brokers: cfg.Brokers, GroupID: "fenqi-backtest", Topics: cfg.Topics, BatchSize: cfg.BatchSize,
		Decoder: dec, Now: clk.Now, Retry: retry.Policy{},
		ShadowRules: func() consumers.Rules { return candRules }, ShadowTopic: sinkShadow,
	}, store, func() consumers.Rules { return liveRules }, sk, nil, cfg.Log, nil)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	runner, err := jobs.New(jobs.Config{
		Now: clk.Now, Shadow: func() (*policy.Policy, *scoring.Rules) { return cfg.Candidate, candRules }, ShadowTopic: sinkShadow,
		// A claim is worked at once, by this process alone; the lease only
		// has to outlast a batch on the event clock, which does not move
		// while it is worked.
		Lease: time.Minute,
	}, store, sk, func() (*policy.Policy, *scoring.Rules) { return cfg.Live, liveRules }, cfg.Log, nil)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}

	var total int64
	for _, r := range cfg.Ranges {
		total += max(r.To-r.From, 0)
	}
	src, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer src.close()

	res := &Result{Prefix: cfg.Prefix, Group: cfg.Group}
	pos := positions{}
	lastCommit := time.Now()
	if cfg.Client != nil && !cfg.Keep {
		defer func() {
			if derr := deleteGroup(context.WithoutCancel(ctx), cfg.Client, cfg.Group); derr != nil {
				cfg.Log.Warn("backtest: the progress group was not deleted", "group", cfg.Group, "err", derr)
			}
		}()
	}
	var done int64
	lastReport := time.Time{}
	report := func(final bool) {
		if cfg.Progress != nil && (final || time.Since(lastReport) > 200*time.Millisecond) {
			lastReport = time.Now()
			cfg.Progress(Progress{Records: done, Total: total, EventTime: clk.Now(), Done: final})
		}
	}
	// runJobs works every overdue check and recompute due at the clock.
	runJobs := func() error {
		for {
			n, err := runner.RunOnce(ctx)
			if err != nil {
				return fmt.Errorf("backtest: jobs at %s: %w", clk.Now().UTC().Format(time.RFC3339), err)
			}
			if n == 0 {
				return nil
			}
		}
	}
	for {
		batch, first, last, err := src.next(ctx, cfg.BatchSize, cfg.BatchSpan)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		if res.From.IsZero() {
			res.From = first
		}
		if last.After(res.To) {
			res.To = last
		}
		clk.advance(first)
		if err := runJobs(); err != nil {
			return nil, err
		}
		clk.advance(last)
		if err := pipe.Process(ctx, batch); err != nil {
			return nil, fmt.Errorf("backtest: %w", err)
		}
		done += int64(len(batch))
		pos.add(batch)
		if cfg.Client != nil && time.Since(lastCommit) > time.Second {
			lastCommit = time.Now()
			if err := pos.commit(ctx, cfg.Client, cfg.Group); err != nil {
				return nil, err
			}
		}
		report(false)
	}
	if cfg.Client != nil {
		if err := pos.commit(ctx, cfg.Client, cfg.Group); err != nil {
			return nil, err
		}
	}
	if err := runJobs(); err != nil {
		return nil, err
	}
	st := pipe.Stats()
	res.Events, res.DeadLetters = st.Events.Load(), st.DeadLetters.Load()
	res.Decisions = st.Decisions.Load() + runner.Overdue.Decisions.Load() + runner.Recomp.Decisions.Load()
	res.Records = sk.sorted()
	report(true)
	return res, nil
}

func (c *Config) setDefaults() error {
	switch {
	case len(c.Brokers) == 0 || c.Open == nil:
		return errors.New("backtest: Brokers and Open are needed to read the history")
	case c.Live == nil || c.Candidate == nil:
		return errors.New("backtest: a live and a candidate policy are needed")
	case c.Live.Version == c.Candidate.Version:
		return fmt.Errorf("backtest: the candidate has the live policy's version %q: give it a version of its own", c.Live.Version)
	case c.Redis == nil:
		return errors.New("backtest: no Redis")
	}
	if c.Topics == (consumers.Topics{}) {
		c.Topics = consumers.DefaultTopics()
	}
	if c.Prefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Prefix = "fenqi-backtest-" + hex.EncodeToString(b[:]) + ":"
	}
	if c.Group == "" {
		c.Group = "fenqi-backtest-" + strings.TrimPrefix(strings.TrimSuffix(c.Prefix, ":"), "fenqi-backtest-")
	}
	if c.Group == consumers.DefaultGroupID {
		return fmt.Errorf("backtest: Group %q is fenqid's", c.Group)
	}
	if c.DefaultZone == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			return fmt.Errorf("backtest: load default zone: %w", err)
		}
		c.DefaultZone = loc
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.BatchSpan == 0 {
		c.BatchSpan = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// empty refuses a namespace that holds keys: a backtest must not mix with
// (or, cleaning up, delete) anything else.
func empty(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	n := 0
	err := scan(ctx, rdb, prefix, func(ctx context.Context, c redis.Cmdable, keys []string) error {
		n += len(keys)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backtest: look at namespace %q: %w", prefix, err)
	}
	if n > 0 {
		return fmt.Errorf("backtest: namespace %q already holds keys: choose another prefix (or delete them)", prefix)
	}
	return nil
}

// Clean deletes every key under prefix (a backtest's namespace).
func Clean(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if prefix == "" {
		return errors.New("backtest: refusing to clean the empty prefix (every key)")
	}
	err := scan(ctx, rdb, prefix, func(ctx context.Context, c redis.Cmdable, keys []string) error {
		return c.Unlink(ctx, keys...).Err()
	})
	if err != nil {
		return fmt.Errorf("backtest: clean namespace %q: %w", prefix, err)
	}
	return nil
}

// scan calls fn with the keys under prefix, on every master of a cluster.
func scan(ctx context.Context, rdb redis.UniversalClient, prefix string, fn func(context.Context, redis.Cmdable, []string) error) error {
	one := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				// Keys of one call share no slot in a cluster: one by one.
				for _, k := range keys {
					if err := fn(ctx, c, []string{k}); err != nil {
						return err
					}
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return one(ctx, c) })
	}
	return one(ctx, rdb)
}

// clock is the event-time clock: it only moves forward.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *clock) advance(t time.Time) {
	if n := t.UnixNano(); n > c.ns.Load() {
		c.ns.Store(n)
	}
}

// The sink's topic names: records never leave the process.
const (
	sinkDecisions = "backtest.decisions"
	sinkDLQ       = "backtest.dlq"
	sinkShadow    = "backtest.shadow"
)

// sink is the backtest's publisher: it encodes as fenqid's does and keeps
// the shadow records (the live decisions are in them, paired), one per id.
type sink struct {
	mu      sync.Mutex
	records map[string]shadow.Record
}

func newSink() *sink { return &sink{records: map[string]shadow.Record{}} }

func (s *sink) Topics() (string, string) { return sinkDecisions, sinkDLQ }

func (s *sink) DecisionMessage(d events.Decision) (kafka.Message, error) {
	return kafka.Message{Topic: sinkDecisions, Key: []byte(d.Subject)}, nil // the record pairs it: nothing to encode
}

func (s *sink) DecisionMessages(ds []events.Decision) ([]kafka.Message, error) {
	msgs := make([]kafka.Message, len(ds))
	for i, d := range ds {
		msgs[i], _ = s.DecisionMessage(d)
	}
	return msgs, nil
}

func (s *sink) DeadLetterMessage(dl producers.DeadLetter) kafka.Message {
	return kafka.Message{Topic: sinkDLQ, Key: dl.Msg.Key}
}

// Write keeps the shadow records, decoded as a reader of the shadow topic
// would decode them; a record written again (a recompute claimed again)
// replaces the first.
func (s *sink) Write(_ context.Context, msgs []kafka.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if m.Topic != sinkShadow {
			continue
		}
		r, err := shadow.Unmarshal(m.Value)
		if err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
		s.records[r.ID] = r
	}
	return nil
}

func (s *sink) sorted() []shadow.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]shadow.Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// source merges the partitions' records in event-time order.
type source struct {
	heads heads
	parts []*partition
	dec   events.Decoder
	topic map[string]int
}

// partition streams one range's records from a reader.
type partition struct {
	r    Range
	idx  int // the topic's index
	ch   chan item
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type item struct {
	msg kafka.Message
	at  time.Time // the event time (the record's time when it does not decode)
	err error
}

func open(ctx context.Context, cfg Config) (*source, error) {
	s := &source{dec: cfg.Decoder, topic: map[string]int{}}
	s.dec.Now = func() time.Time { return time.Unix(1<<40, 0) } // order only: no event is "in the future"
	for i, t := range cfg.Topics.List() {
		s.topic[t] = i + 1
	}
	ranges := append([]Range(nil), cfg.Ranges...)
	sort.Slice(ranges, func(i, j int) bool {
		a, b := ranges[i], ranges[j]
		return cmp.Or(cmp.Compare(s.topic[a.Topic], s.topic[b.Topic]), cmp.Compare(a.Partition, b.Partition)) < 0
	})
	for _, r := range ranges {
		if r.To <= r.From {
			continue
		}
		if _, ok := s.topic[r.Topic]; !ok {
			s.close()
			return nil, fmt.Errorf("backtest: %s is not an input topic", r.Topic)
		}
		rd, err := cfg.Open(r.Topic, r.Partition, r.From)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("backtest: %w", err)
		}
		pctx, stop := context.WithCancel(ctx)
		p := &partition{r: r, idx: s.topic[r.Topic], ch: make(chan item, 256), stop: stop}
		p.wg.Go(func() { s.read(pctx, p, rd) })
		s.parts = append(s.parts, p)
	}
	for _, p := range s.parts {
		if err := s.pull(p); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// read sends the range's records, then closes the channel.
func (s *source) read(ctx context.Context, p *partition, rd *kafka.Reader) {
	defer close(p.ch)
	defer func() { _ = rd.Close() }()
	// A record that does not decode has no event time: it goes where the
	// record before it in its partition went (it must not move the clock).
	var lastAt time.Time
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			select {
			case p.ch <- item{err: fmt.Errorf("backtest: read %s/%d: %w", p.r.Topic, p.r.Partition, err)}:
			case <-ctx.Done():
			}
			return
		}
		if m.Offset >= p.r.To {
			return
		}
		it := item{msg: m, at: lastAt}
		hs := make([]events.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = events.Header{Key: h.Key, Value: h.Value}
		}
		if ev, err := s.dec.Decode(m.Key, hs, m.Value); err == nil {
			it.at, lastAt = ev.Time, ev.Time
		}
		select {
		case p.ch <- it:
		case <-ctx.Done():
			return
		}
		if m.Offset+1 >= p.r.To {
			return
		}
	}
}

// pull puts the partition's next record among the heads (none: the range
// is done).
func (s *source) pull(p *partition) error {
	it, ok := <-p.ch
	if !ok {
		return nil
	}
	if it.err != nil {
		return it.err
	}
	heap.Push(&s.heads, head{item: it, p: p})
	return nil
}

// next returns the next batch: at most n records, spanning at most span of
// event time, with its first and last event times.
func (s *source) next(ctx context.Context, n int, span time.Duration) (batch []kafka.Message, first, last time.Time, err error) {
	for len(s.heads) > 0 && len(batch) < n {
		h := s.heads[0]
		if len(batch) > 0 && h.at.Sub(first) > span {
			break
		}
		heap.Pop(&s.heads)
		if len(batch) == 0 {
			first = h.at
		}
		if h.at.After(last) {
			last = h.at
		}
		batch = append(batch, h.msg)
		if err := s.pull(h.p); err != nil {
			return nil, first, last, err
		}
		if ctx.Err() != nil {
			return nil, first, last, ctx.Err()
		}
	}
	return batch, first, last, nil
}

func (s *source) close() {
	for _, p := range s.parts {
		p.stop()
		for range p.ch {
		}
		p.wg.Wait()
	}
}

// head is a partition's next record.
type head struct {
	item
	p *partition
}

// heads orders the partitions' next records by event time, then topic
// index, partition and offset: a total order fixed by the history.
type heads []head

func (h heads) Len() int { return len(h) }
func (h heads) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return cmp.Or(cmp.Compare(a.p.idx, b.p.idx), cmp.Compare(a.p.r.Partition, b.p.r.Partition), cmp.Compare(a.msg.Offset, b.msg.Offset)) < 0
}
func (h heads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)   { *h = append(*h, x.(head)) }
func (h *heads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Plan returns the ranges of the input topics' records whose Kafka
// timestamps are in [from, to) (to zero: up to the ends as they are now),
// every partition of each topic; a zero from means the oldest record kept.
func Plan(ctx context.Context, c *kafka.Client, topics []string, from, to time.Time) ([]Range, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("backtest: metadata of %v: %w", topics, err)
	}
	parts := map[string][]int{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("backtest: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
		}
	}
	var out []Range
	for _, topic := range topics {
		ps := parts[topic]
		if len(ps) == 0 {
			return nil, fmt.Errorf("backtest: topic %s: no partitions", topic)
		}
		sort.Ints(ps)
		ends, err := offsetsAt(ctx, c, topic, ps, kafka.LastOffset)
		if err != nil {
			return nil, err
		}
		starts, err := offsetsAt(ctx, c, topic, ps, kafka.FirstOffset)
		if err != nil {
			return nil, err
		}
		if !from.IsZero() {
			if starts, err = offsetsAt(ctx, c, topic, ps, from.UnixMilli()); err != nil {
				return nil, err
			}
		}
		if !to.IsZero() {
			if ends, err = offsetsAt(ctx, c, topic, ps, to.UnixMilli()); err != nil {
				return nil, err
			}
		}
		for _, p := range ps {
			out = append(out, Range{Topic: topic, Partition: p, From: starts[p], To: ends[p]})
		}
	}
	return out, nil
}

// offsetsAt lists, per partition, the first offset (kafka.FirstOffset),
// the end (kafka.LastOffset) or the first record at or after a timestamp
// in milliseconds (the end when none is that recent).
func offsetsAt(ctx context.Context, c *kafka.Client, topic string, ps []int, ts int64) (map[int]int64, error) {
	var ends map[int]int64
	if ts >= 0 {
		var err error
		if ends, err = offsetsAt(ctx, c, topic, ps, kafka.LastOffset); err != nil {
			return nil, err
		}
	}
	reqs := make([]kafka.OffsetRequest, len(ps))
	for i, p := range ps {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("backtest: list offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(ps))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("backtest: list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		switch ts {
		case kafka.FirstOffset:
			out[po.Partition] = po.FirstOffset
		case kafka.LastOffset:
			out[po.Partition] = po.LastOffset
		default:
			// The broker answers -1 when no record is that recent, which
			// kafka-go leaves out of Offsets.
			out[po.Partition] = ends[po.Partition]
			for off := range po.Offsets {
				if off >= 0 && off < out[po.Partition] {
					out[po.Partition] = off
				}
			}
		}
	}
	for _, p := range ps {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("backtest: list offsets of %s: no answer for partition %d", topic, p)
		}
	}
	return out, nil
}

// PartitionReader returns the Open of Config: a reader of one partition
// (no group, nothing committed) at offset, over dialer (nil: plaintext).
func PartitionReader(brokers []string, dialer *kafka.Dialer) func(topic string, partition int, offset int64) (*kafka.Reader, error) {
	return func(topic string, partition int, offset int64) (*kafka.Reader, error) {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: brokers, Dialer: dialer, Topic: topic, Partition: partition,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond,
		})
		if err := r.SetOffset(offset); err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("read %s/%d from offset %d: %w", topic, partition, offset, err)
		}
		return r, nil
	}
}

// positions are the next offsets to replay, by topic and partition.
type positions map[string]map[int]int64

func (p positions) add(batch []kafka.Message) {
	for _, m := range batch {
		if p[m.Topic] == nil {
			p[m.Topic] = map[int]int64{}
		}
		p[m.Topic][m.Partition] = max(p[m.Topic][m.Partition], m.Offset+1)
	}
}

// commit commits the positions to group, a group without members.
func (p positions) commit(ctx context.Context, c *kafka.Client, group string) error {
	if len(p) == 0 {
		return nil
	}
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for topic, ps := range p {
		for part, off := range ps {
			req.Topics[topic] = append(req.Topics[topic], kafka.OffsetCommit{Partition: part, Offset: off, Metadata: "fenqictl backtest"})
		}
	}
	resp, err := c.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("backtest: commit the progress to group %q: %w", group, err)
	}
	for topic, ps := range resp.Topics {
		for _, r := range ps {
			if r.Error != nil {
				return fmt.Errorf("backtest: commit the progress to group %q, %s/%d: %w (is the group in use?)", group, topic, r.Partition, r.Error)
			}
		}
	}
	return nil
}

// deleteGroup deletes the progress group.
func deleteGroup(ctx context.Context, c *kafka.Client, group string) error {
	resp, err := c.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return err
	}
	return resp.Errors[group]
}
