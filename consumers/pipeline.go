package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/par"
	"github.com/fenqi/fenqi/internal/ratelog"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/telemetry"
)

// Topics are the input topic names.
type Topics struct {
	Payments, Logins, Repayments, Profiles string
	// Operator carries the operators' changes (fenqi.operator.v1: overrides,
	// special quotas, quota checks), written by the admin API.
	Operator string
}

// DefaultTopics are the documented defaults.
func DefaultTopics() Topics {
	return Topics{events.TopicPayments, events.TopicLogins, events.TopicRepayments, events.TopicProfiles, events.TopicOperator}
}

// List returns the topics in their fixed index order (index = position + 1).
// The index names the per-topic offset in each user's state: never reorder.
func (t Topics) List() []string {
	return []string{t.Payments, t.Logins, t.Repayments, t.Profiles, t.Operator}
}

// accepts reports which event types belong on topic index i.
func acceptsType(i int, typ string) bool {
	switch i {
	case 1:
		return typ == events.TypePayment
	case 2:
		return typ == events.TypeLogin
	case 3:
		return typ == events.TypeRepaymentDue || typ == events.TypeRepaymentPaid
	case 4:
		return typ == events.TypeProfile
	case 5:
		return typ == events.TypeOperator
	}
	return false
}

// DefaultGroupID is fenqid's Kafka consumer group unless configured.
const DefaultGroupID = "fenqi"

// DefaultBatchSize is Config.BatchSize's default. A batch is only as big
// as the records that came while the one before it was being finished
// (see fetch): the cap matters under a backlog, where each batch's fixed
// costs (four round trips, a script call per 1,000 users) are shared by
// more records. Draining 100,000 simulated events, interleaved runs gave
// 66,233 / 62,984 / 58,634 events/s with 500 and 89,114 / 87,927 / 75,800
// with 2,000; at 55,000 events/s offered, 500 kept up with ~48,000.
const DefaultBatchSize = 2000

// Config of the pipeline.
type Config struct {
	Brokers []string
	// Dialer makes the reader's connections (conn.KafkaConn.Dialer: TLS,
	// SASL); nil = kafka.DefaultDialer, plaintext.
	Dialer  *kafka.Dialer
	GroupID string // default DefaultGroupID
	Topics  Topics
	// BatchSize is the most records in one batch (default
	// DefaultBatchSize): one Redis round trip and one produce request per
	// batch.
	BatchSize int
	// BatchWait is the longest a batch waits for more records after its
	// first (default 10ms). It waits only while the batch before it is
	// being published and written: once that one is done, the batch goes
	// at once with what it has (see fetch).
	BatchWait time.Duration
	// BufferBytes bounds the memory of records read ahead and batched, by
	// bytes rather than by count (default 64 MiB): a batch is cut at half
	// of it, and the reader queues at most half of it of records as large
	// as Kafka's default largest (1 MiB: message.max.bytes), each
	// partition fetching at most 1 MiB at a time. Draining 1,000 records
	// of 1 MB, fenqid's peak RSS went from 1,003 MB to 324 MB (GOGC=100;
	// 1,016 to 699 MB at fenqid's default GOGC=400: set GOMEMLIMIT).
	BufferBytes int
	// ShutdownGrace bounds how long the in-flight batch may take to finish
	// once Run's context ends (default 30s).
	ShutdownGrace time.Duration
	Retry         retry.Policy
	Decoder       events.Decoder
	Now           func() time.Time

	// ShadowRules (nil: no shadow) gives a candidate policy's rules
	// (fenqid -shadow-policy), evaluated on every applied event beside the
	// live ones, on the same outcome of the same state (a credit payment's
	// verdict: the state's ShadowCredit). Its decisions, paired with the
	// live ones by id (shadow.Pair), go to ShadowTopic in the batch's one
	// write, so they are published, and republished on a redelivery, with
	// the live ones; they never go to the decisions topic and change no
	// state.
	ShadowRules func() Rules
	// ShadowTopic is where the shadow records go (default
	// shadow.DefaultTopic).
	ShadowTopic string
}

func (c *Config) setDefaults() {
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.Topics == (Topics{}) {
		c.Topics = DefaultTopics()
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait == 0 {
		c.BatchWait = 10 * time.Millisecond
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = 64 << 20
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Decoder.Now == nil {
		c.Decoder.Now = c.Now
	}
	if c.ShadowTopic == "" {
		c.ShadowTopic = shadow.DefaultTopic
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("consumers: Brokers is empty")
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("consumers: BatchSize must be 1..10000, got %d", c.BatchSize)
	case c.BufferBytes < 4<<20:
		return fmt.Errorf("consumers: BufferBytes must be at least 4 MiB, got %d", c.BufferBytes)
	case c.BatchWait < 0 || c.BatchWait > 10*time.Second:
		return fmt.Errorf("consumers: BatchWait must be 0..10s, got %v", c.BatchWait)
	}
	seen := map[string]bool{}
	if c.ShadowRules != nil {
		seen[c.ShadowTopic] = true // an input topic must not be it
	}
	for _, t := range c.Topics.List() {
		if t == "" {
			return errors.New("consumers: an input topic name is empty")
		}
		if seen[t] {
			return fmt.Errorf("consumers: input topic %q is named twice", t)
		}
		seen[t] = true
	}
	return nil
}

// Store computes events on users' state and writes it (implemented by
// *state.Store): Prepare reads and computes, Commit writes with a
// compare-and-set (see the package doc for the order).
type Store interface {
	Prepare(ctx context.Context, items []state.Item, d *state.Drafts) (*state.Batch, error)
	Reprepare(ctx context.Context, b *state.Batch, users []string, d *state.Drafts) (*state.Batch, error)
	Commit(ctx context.Context, b *state.Batch, d *state.Drafts) error
	// RecomputeSoon makes users' quota recomputes due at once (after a
	// freeze or unfreeze), in one call.
	RecomputeSoon(ctx context.Context, at time.Time, userIDs ...string) error
}

// Rules evaluates one event (implemented by *scoring.Rules). It must be pure.
type Rules interface {
	Evaluate(in scoring.Input) []events.Decision
	// Late reports an event that arrived too late to be judged.
	Late(in scoring.Input) bool
	// PolicyVersion is the version of the rules' policy.
	PolicyVersion() string
}

// Publisher encodes decisions and dead letters as records and writes
// records, returning once all are acknowledged (implemented by
// *producers.Publisher).
type Publisher interface {
	Topics() (decisions, dlq string)
	DecisionMessage(d events.Decision) (kafka.Message, error)
	DeadLetterMessage(dl producers.DeadLetter) kafka.Message
	Write(ctx context.Context, msgs []kafka.Message) error
}

// Observer hears what the pipeline does; every method must be cheap and
// safe for concurrent use. Embed NopObserver to implement only some.
type Observer interface {
	Batch(size int, took time.Duration)
	Event(topic string, outcome string) // outcome: applied, redelivered, duplicate, dead_lettered
	Decision(d events.Decision)         // after the broker acknowledged it
	DeadLetter(dl producers.DeadLetter) // after the broker acknowledged it
	Retry(cause string, err error, wait time.Duration)
	// Latency is the time from the event (clock "event_time") or from the
	// broker's record timestamp ("append_time") to its decision acknowledged.
	Latency(clock string, d time.Duration)
}

// NopObserver does nothing.
type NopObserver struct{}

func (NopObserver) Batch(int, time.Duration)           {}
func (NopObserver) Event(string, string)               {}
func (NopObserver) Decision(events.Decision)           {}
func (NopObserver) DeadLetter(producers.DeadLetter)    {}
func (NopObserver) Retry(string, error, time.Duration) {}
func (NopObserver) Latency(string, time.Duration)      {}

// Stats are running totals, safe to read at any time.
type Stats struct {
	Batches, Events, Applied, Repeats, DeadLetters, Decisions atomic.Int64
	// Unknown counts redelivered events not among their users' latest
	// (see state.Outcome.Unknown).
	Unknown atomic.Int64
	// Shadow counts the shadow records published, by diff (Config.ShadowRules).
	Shadow shadow.Counts
}

// Pipeline is the processing loop. Run it once.
type Pipeline struct {
	cfg      Config
	store    Store
	rules    func() Rules
	pub      Publisher
	obs      Observer
	log      *slog.Logger
	topicIdx map[string]int
	stats    Stats
	reader   *kafka.Reader
	started  atomic.Pointer[kafka.Reader] // the reader, for Lag from other goroutines
	tel      *telemetry.Telemetry
	// drafts are the users' states computed by batches not yet written:
	// the next batch starts from them.
	drafts state.Drafts
	// commitMessages commits offsets: the reader's, or a test's.
	commitMessages func(ctx context.Context, msgs ...kafka.Message) error
	// step, when set (tests), runs at each step of finish and may stop it
	// there with an error: a crash between two steps.
	step func(name string) error
	// linger ends a batch's wait for more records when the batches before
	// it are finished.
	linger linger
}

// linger is the wait of a batch being fetched for more records: it lasts
// while batches handed to the second stage are not finished yet, and at
// most the wait given.
type linger struct {
	mu       sync.Mutex
	inFlight int                // batches handed to the second stage, not finished
	cancel   context.CancelFunc // ends the current wait; nil when none
}

// start begins a wait of at most max; it is over at once when no batch is
// in flight. Call the returned function when the batch closes.
func (l *linger) start(ctx context.Context, max time.Duration) (context.Context, context.CancelFunc) {
	wait, cancel := context.WithTimeout(ctx, max)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight == 0 {
		cancel()
		return wait, cancel
	}
	l.cancel = cancel
	return wait, func() {
		l.mu.Lock()
		l.cancel = nil
		l.mu.Unlock()
		cancel()
	}
}

// handed counts a batch handed to the second stage.
func (l *linger) handed() {
	l.mu.Lock()
	l.inFlight++
	l.mu.Unlock()
}

// finished counts a batch finished, ending the wait when none is left.
func (l *linger) finished() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight--; l.inFlight == 0 && l.cancel != nil {
		l.cancel()
	}
}

// The steps of finish, in order, as step hears them.
const (
	stepPublished = "published" // decisions acknowledged, state not written
	stepWritten   = "written"   // state written, offsets not committed
	stepCommitted = "committed" // offsets committed
)

func (p *Pipeline) at(name string) error {
	if p.step == nil {
		return nil
	}
	return p.step(name)
}

// New returns a pipeline. rules is called once per batch, so a policy
// reload takes effect at the next batch; obs, log and tel may be nil (no
// metrics, no logs, no traces).
func New(cfg Config, store Store, rules func() Rules, pub Publisher, obs Observer, log *slog.Logger, tel *telemetry.Telemetry) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tel == nil {
		tel = telemetry.Nop()
	}
	if obs == nil {
		obs = NopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idx := map[string]int{}
	for i, t := range cfg.Topics.List() {
		idx[t] = i + 1
	}
	return &Pipeline{cfg: cfg, store: store, rules: rules, pub: pub, obs: obs, log: log, topicIdx: idx, tel: tel}, nil
}

// Stats returns the running totals.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Lag returns the reader's lag (records behind the high watermark); 0 before Run.
func (p *Pipeline) Lag() int64 {
	if r := p.started.Load(); r != nil {
		return r.Stats().Lag
	}
	return 0
}

func (p *Pipeline) newReader() *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:     p.cfg.Brokers,
		Dialer:      p.cfg.Dialer,
		GroupID:     p.cfg.GroupID,
		GroupTopics: p.cfg.Topics.List(),
		// A new group starts at the oldest record: nothing upstream wrote
		// before fenqi's first start is lost.
		StartOffset: kafka.FirstOffset,
		MinBytes:    1,
		MaxBytes:    fetchMaxBytes,
		// How long the broker holds a fetch when there is nothing to read:
		// short, so that a quiet topic's first record is seen at once.
		MaxWait: 100 * time.Millisecond,
		// CommitInterval 0 makes CommitMessages synchronous. The loop calls
		// it once per batch, after the batch's decisions are acknowledged
		// and its state is written, so a commit never runs ahead of the
		// work. (Calling it per message would cap reads at a few hundred
		// records a second, kafka-go #789.)
		CommitInterval: 0,
		// Prefetch up to two batches so that fetching overlaps work, and
		// at most half of BufferBytes of the largest records.
		QueueCapacity: p.queueCapacity(),
		// Pick up partitions added to the input topics (kafka-go #1262).
		WatchPartitionChanges: true,
		ReadBackoffMin:        50 * time.Millisecond,
		ReadBackoffMax:        time.Second,
		// Recovery in seconds (issue 14, measured by make chaos): a member
		// that dies is noticed after SessionTimeout, not kafka-go's 30 s, so
		// a restarted instance or the survivors take its partitions over in
		// ~6 s; a rebalance waits RebalanceTimeout at most for members to
		// rejoin; a refused join is tried again after 0.5 s, not 5 s. The
		// cost: a member whose heartbeats (their own goroutine, not the
		// batch loop) stop for 6 s loses its partitions to a rebalance, and
		// each member sends a heartbeat a second. 6 s is also real Kafka's
		// smallest allowed session (group.min.session.timeout.ms).
		HeartbeatInterval: GroupHeartbeatInterval,
		SessionTimeout:    GroupSessionTimeout,
		RebalanceTimeout:  GroupRebalanceTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		// One line per kind of reader error, then one every 10 s with the
		// count of those left out: a broker restart is not 200 lines.
		ErrorLogger: ratelog.New(p.log, "kafka reader: ", 10*time.Second),
	})
}

// fetchMaxBytes is the most bytes one partition's fetch asks for (a record
// larger than it still comes, alone); recordMaxBytes is the largest record
// the queue is sized for: Kafka's default message.max.bytes.
const (
	fetchMaxBytes  = 1 << 20
	recordMaxBytes = 1 << 20
)

// queueCapacity is the reader's queue, in records: two batches, or fewer
// when half of BufferBytes would not hold that many of the largest records.
func (p *Pipeline) queueCapacity() int {
	return max(16, min(2*p.cfg.BatchSize, p.cfg.BufferBytes/2/recordMaxBytes))
}

// The consumer group's timing (see newReader).
const (
	GroupHeartbeatInterval = time.Second
	GroupSessionTimeout    = 6 * time.Second
	GroupRebalanceTimeout  = 10 * time.Second
)

// Run consumes until ctx ends, then finishes the batch in flight (within
// ShutdownGrace), commits it and closes the reader. It returns nil on a
// clean shutdown and an error when it cannot go on (a permanent Kafka or
// Redis error, which must not be skipped).
func (p *Pipeline) Run(ctx context.Context) (err error) {
	p.reader = p.newReader()
	p.commitMessages = p.reader.CommitMessages
	p.started.Store(p.reader)
	defer func() {
		if cerr := p.reader.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("consumers: close reader: %w", cerr))
		}
	}()

	// Work on a batch goes on after ctx ends, up to ShutdownGrace, so that
	// a shutdown does not throw away a batch already half done.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.ShutdownGrace, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	// Two stages: while batch N is published and committed (below, in
	// order, by one goroutine), batch N+1 is fetched, decoded, applied to
	// Redis and evaluated. A crash redelivers both; state recognises them.
	fetchCtx, stopFetching := context.WithCancel(ctx) // a failed publish or commit stops fetching
	defer stopFetching()
	ready := make(chan *pending, 1)
	finished := make(chan error, 1)
	go func() {
		var ferr error
		for pb := range ready {
			if ferr == nil {
				if ferr = p.finish(work, pb); ferr != nil {
					stopFetching()
				}
			}
			pb.endSpans()
			p.linger.finished()
		}
		finished <- ferr
	}()

	var runErr error
	for {
		batch, ferr := p.fetch(fetchCtx, make([]kafka.Message, 0, p.cfg.BatchSize))
		if len(batch) > 0 {
			pb, perr := p.prepare(work, batch)
			if perr != nil {
				runErr = perr
				break
			}
			p.linger.handed()
			ready <- pb
		}
		if ferr != nil {
			if fetchCtx.Err() == nil {
				runErr = ferr // the broker refused for good
			}
			break
		}
	}
	close(ready)
	return errors.Join(runErr, <-finished)
}

// Process computes one batch of records the caller read, publishes its
// decisions and writes its state, as Run does with the batches it fetches,
// but commits no offsets: the caller keeps its own place (fenqictl
// backtest reads history itself, in event-time order). Batches go through
// one at a time; do not call it while Run runs.
func (p *Pipeline) Process(ctx context.Context, batch []kafka.Message) error {
	if len(batch) == 0 {
		return nil
	}
	if p.commitMessages == nil {
		p.commitMessages = func(context.Context, ...kafka.Message) error { return nil }
	}
	pb, err := p.prepare(ctx, batch)
	if err != nil {
		return err
	}
	defer pb.endSpans()
	return p.finish(ctx, pb)
}

// fetch fills batch: it blocks for the first record, then takes what comes
// while the batches before it are being finished (published, written,
// committed), for BatchWait at most, up to BatchSize records or half of
// BufferBytes. A batch thus closes as soon as the second stage can take
// it: under a backlog batches fill up at once (the reader's queue holds
// two), at a trickle they go without waiting, and in between they grow
// with the load, each while the one before is written.
func (p *Pipeline) fetch(ctx context.Context, batch []kafka.Message) ([]kafka.Message, error) {
	for {
		m, err := p.reader.FetchMessage(ctx)
		if err == nil {
			batch = append(batch, m)
			break
		}
		if ctx.Err() != nil {
			return batch, ctx.Err()
		}
		if !retry.Retryable(err) {
			return batch, fmt.Errorf("consumers: fetch: %w", err)
		}
		p.obs.Retry("kafka_fetch", err, 0)
		p.log.Warn("fetch failed; retrying", "err", err)
	}
	linger, cancel := p.linger.start(ctx, p.cfg.BatchWait)
	defer cancel()
	size := len(batch[0].Key) + len(batch[0].Value)
	for len(batch) < p.cfg.BatchSize && size < p.cfg.BufferBytes/2 {
		m, err := p.reader.FetchMessage(linger)
		if err != nil {
			break // the linger ended (or ctx did: the batch is still processed)
		}
		batch = append(batch, m)
		size += len(m.Key) + len(m.Value)
	}
	return batch, nil
}

// handled is one record on its way through a batch.
type handled struct {
	msg       kafka.Message
	ctx       context.Context // carries the record's process span
	span      trace.Span
	event     events.Event
	dead      *producers.DeadLetter
	decisions []events.Decision
	shadow    []shadow.Record // the live and shadow decisions paired (Config.ShadowRules)
	status    state.Status    // what state did with it (its last computation)
	unknown   bool            // a redelivery not among its user's latest events
	decoded   bool            // a state.Item of the batch
}

// pending is a batch applied to state and evaluated, waiting to be
// published and committed.
type pending struct {
	start    time.Time
	batch    []kafka.Message
	hs       []handled
	items    []state.Item
	itemOf   []int // item -> index in hs
	sb       *state.Batch
	msgs     []kafka.Message // decisions and dead letters, each with its publish span's context
	pspans   []trace.Span
	refreeze []string // users frozen or unfrozen: recompute their quota now
	// rescheduled are the users of refreeze whose recompute is scheduled
	// state.RecomputeGrace ahead (before the write, so that a crash cannot
	// lose it, and not due, so that no job computes it on the state
	// before): made due at once when the state is written.
	rescheduled []string
}

func (pb *pending) endSpans() {
	for i := range pb.hs {
		if pb.hs[i].span != nil {
			pb.hs[i].span.End()
		}
	}
}

// prepare decodes a batch, computes it on the users' state (read in one
// round trip, or left by the batch before), evaluates the rules and builds
// the records to publish. Nothing is written yet: finish publishes, then
// writes the state, then commits.
func (p *Pipeline) prepare(ctx context.Context, batch []kafka.Message) (_ *pending, err error) {
	pb := &pending{start: time.Now(), batch: batch}
	hs := make([]handled, len(batch))
	pb.hs = hs
	defer func() {
		if err != nil {
			pb.endSpans()
		}
	}()
	par.For(len(batch), func(i int) {
		h := &hs[i]
		h.msg = batch[i]
		// One span per record, continuing the producer's trace when the
		// record carries a traceparent.
		h.ctx, h.span = p.tel.StartProcess(ctx, &h.msg, p.cfg.GroupID)
		ev, dl := p.decode(h.msg)
		if dl != nil {
			h.dead = dl
			return
		}
		telemetry.SetMessageID(h.span, ev.ID)
		h.span.SetAttributes(telemetry.EventTypeKey.String(ev.Type))
		h.event, h.decoded = ev, true
	})
	pb.items = make([]state.Item, 0, len(batch))
	pb.itemOf = make([]int, 0, len(batch))
	for i := range hs {
		if h := &hs[i]; h.decoded {
			pb.items = append(pb.items, state.Item{Event: &h.event, Topic: p.topicIdx[h.msg.Topic], Partition: h.msg.Partition, Offset: h.msg.Offset})
			pb.itemOf = append(pb.itemOf, i)
		}
	}
	all := make([]int, len(pb.items))
	for j := range all {
		all[j] = j
	}
	sb, err := p.compute(ctx, pb, all, nil)
	if err != nil {
		return nil, err
	}
	pb.sb = sb
	hsAll := make([]int, len(hs))
	for i := range hsAll {
		hsAll[i] = i
	}
	if err := p.records(pb, hsAll); err != nil {
		return nil, err
	}
	return pb, nil
}

// compute computes items js of the batch (indexes into pb.items) on the
// users' state and evaluates the rules on the events applied: a
// redelivered event's decisions were published before its state was
// written, and an upstream duplicate's original decided. With again, it
// computes again (from Redis) those items of the batch again, which must
// be the items of again's users (nil: all).
func (p *Pipeline) compute(ctx context.Context, pb *pending, js []int, again *redo) (*state.Batch, error) {
	items := make([]state.Item, len(js))
	links := make([]trace.Link, len(js))
	for k, j := range js {
		items[k] = pb.items[j]
		links[k] = trace.LinkFromContext(pb.hs[pb.itemOf[j]].ctx)
	}
	actx, aspan := p.tel.StartBatch(ctx, telemetry.SpanStateApply, links)
	aspan.SetAttributes(telemetry.BatchSizeKey.Int(len(items)))
	var sb *state.Batch
	err := retry.Do(actx, p.cfg.Retry, "redis_apply", p.notify, func(ctx context.Context) error {
		var err error
		if again != nil {
			sb, err = p.store.Reprepare(ctx, again.batch, again.users, &p.drafts)
		} else {
			sb, err = p.store.Prepare(ctx, items, &p.drafts)
		}
		return err
	})
	if err != nil {
		telemetry.Fail(aspan, err, "redis")
		aspan.End()
		return nil, fmt.Errorf("consumers: read the state of %d events: %w", len(items), err)
	}
	aspan.End()

	_, sspan := p.tel.StartBatch(ctx, telemetry.SpanScoringEvaluate, links)
	defer sspan.End()
	rules := p.rules()
	var shadowRules Rules
	if p.cfg.ShadowRules != nil {
		shadowRules = p.cfg.ShadowRules()
	}
	// The rules on each event, on every core (they are pure); the users
	// frozen or unfrozen are gathered after, in the batch's order.
	par.For(len(js), func(k int) {
		it, o := items[k], sb.Outcomes[k]
		h := &pb.hs[pb.itemOf[js[k]]]
		h.decisions, h.shadow, h.dead, h.status, h.unknown = nil, nil, nil, o.Status, o.Unknown
		if o.Status == state.Refused {
			h.dead = &producers.DeadLetter{Msg: h.msg, Err: fmt.Errorf("state refused the event: %w", o.Err), At: p.cfg.Now()}
			return
		}
		if o.Status != state.Applied {
			if o.Unknown {
				p.log.WarnContext(h.ctx, "an event at an offset already applied is not among its user's latest events: "+
					"if the topic was recreated or its offsets reset, raise its epoch (fenqictl epoch) or it is never applied",
					"topic", h.msg.Topic, "partition", h.msg.Partition, "offset", h.msg.Offset, "id", it.Event.ID)
			}
			return
		}
		ds, dl := p.evaluate(rules, it, o, h.msg, true)
		if dl != nil {
			h.dead = dl
			return
		}
		h.decisions = ds
		if shadowRules != nil {
			h.shadow = p.shadow(rules, shadowRules, it, o, h.msg, ds)
		}
	})
	for _, j := range js {
		for _, d := range pb.hs[pb.itemOf[j]].decisions {
			if d.Type == events.TypeDecisionFrozen || d.Type == events.TypeDecisionUnfrozen {
				pb.refreeze = append(pb.refreeze, d.Subject)
			}
		}
	}
	return sb, nil
}

// shadow evaluates the candidate rules on the event's outcome, with the
// candidate's credit verdict, and pairs their decisions with the live
// ones. A panic in them is logged and yields no records: the live policy
// goes on.
func (p *Pipeline) shadow(live, cand Rules, it state.Item, o state.Outcome, m kafka.Message, ds []events.Decision) []shadow.Record {
	if v := o.Shadow; v != nil {
		o.Pool, o.PoolQuota, o.CreditRefused = v.Pool, v.Quota, v.Refused
	}
	sds, dl := p.evaluate(cand, it, o, m, false)
	if dl != nil {
		p.log.Error("the shadow policy's rules failed on an event; no shadow records for it", "err", dl.Err)
		return nil
	}
	return shadow.Pair(live.PolicyVersion(), cand.PolicyVersion(), ds, sds)
}

// redo names a batch to compute again, for some users (nil: all).
type redo struct {
	batch *state.Batch
	users []string
}

// recompute computes again the events of users (nil: all) of pb from
// Redis, and builds their records anew.
func (p *Pipeline) recompute(ctx context.Context, pb *pending, users []string) error {
	var js, is []int
	if users == nil {
		for j := range pb.items {
			js = append(js, j)
		}
		for i := range pb.hs {
			is = append(is, i)
		}
	} else {
		again := make(map[string]bool, len(users))
		for _, u := range users {
			again[u] = true
		}
		for j, it := range pb.items {
			if again[it.Event.UserID()] {
				js, is = append(js, j), append(is, pb.itemOf[j])
			}
		}
	}
	sb, err := p.compute(ctx, pb, js, &redo{batch: pb.sb, users: users})
	if err != nil {
		return err
	}
	pb.sb = sb
	return p.records(pb, is)
}

// records builds the records of records hs[is] to publish: one per
// decision and dead letter, each with its own publish span, child of its
// event's span, injected into the record's headers so that a notifier
// continues the same trace. They replace pb's records.
func (p *Pipeline) records(pb *pending, is []int) error {
	decisionsTopic, dlqTopic := p.pub.Topics()
	// Each record's own, on every core (encoding them is most of the
	// cost); joined after in the batch's order.
	type built struct {
		msgs   []kafka.Message
		pspans []trace.Span
		err    error
	}
	each := make([]built, len(is))
	par.For(len(is), func(k int) {
		h, out := &pb.hs[is[k]], &each[k]
		for _, d := range h.decisions {
			m, err := p.pub.DecisionMessage(d)
			if err != nil {
				out.err = fmt.Errorf("consumers: %w", err)
				return
			}
			ps := p.tel.StartDecisionPublish(h.ctx, decisionsTopic, d.Type, d.Data.Rule, &m)
			out.msgs, out.pspans = append(out.msgs, m), append(out.pspans, ps)
		}
		for _, r := range h.shadow {
			m, err := shadow.Message(p.cfg.ShadowTopic, r)
			if err != nil {
				out.err = fmt.Errorf("consumers: %w", err)
				return
			}
			out.msgs = append(out.msgs, m)
		}
		if h.dead != nil {
			telemetry.Fail(h.span, h.dead.Err, "dead_letter")
			h.span.SetAttributes(telemetry.DeadLetterFieldKey.String(h.dead.Field))
			m := p.pub.DeadLetterMessage(*h.dead)
			pctx, ps := p.tel.StartPublish(h.ctx, dlqTopic)
			p.tel.Inject(pctx, &m)
			out.msgs, out.pspans = append(out.msgs, m), append(out.pspans, ps)
		}
	})
	var msgs []kafka.Message
	var pspans []trace.Span
	for _, b := range each {
		if b.err != nil {
			for _, b := range each {
				for _, ps := range b.pspans {
					ps.End()
				}
			}
			return b.err
		}
		msgs, pspans = append(msgs, b.msgs...), append(pspans, b.pspans...)
	}
	pb.msgs, pb.pspans = msgs, pspans
	return nil
}

// publish writes pb's records and waits for the broker's acknowledgement.
func (p *Pipeline) publish(ctx context.Context, pb *pending) error {
	err := p.pub.Write(ctx, pb.msgs)
	for _, ps := range pb.pspans {
		if err != nil {
			telemetry.Fail(ps, err, "kafka")
		}
		ps.End()
	}
	pb.pspans = nil
	if err != nil {
		return fmt.Errorf("consumers: publish %d records: %w", len(pb.msgs), err)
	}
	if len(pb.refreeze) > 0 {
		if err := p.recomputeSoon(ctx, p.cfg.Now().Add(state.RecomputeGrace), pb.refreeze); err != nil {
			return err
		}
		pb.rescheduled, pb.refreeze = append(pb.rescheduled, pb.refreeze...), nil
	}
	return nil
}

// recomputeSoon makes users' recomputes due at (or before) at, retried
// like every Redis call.
func (p *Pipeline) recomputeSoon(ctx context.Context, at time.Time, users []string) error {
	err := retry.Do(ctx, p.cfg.Retry, "redis_schedule", p.notify, func(ctx context.Context) error {
		return p.store.RecomputeSoon(ctx, at, users...)
	})
	if err != nil {
		return fmt.Errorf("consumers: schedule a recompute: %w", err)
	}
	return nil
}

// finish publishes a prepared batch's records and waits for the broker's
// acknowledgement, schedules the recomputes it implies, writes the users'
// state (compare-and-set) and commits the offsets: in this order, so that
// a crash at any point redelivers events whose state was not written, to
// be computed again from the same state into the same decisions (see the
// package doc). A user whose state another writer changed meanwhile (a
// consumer that owned the partition before a rebalance, a job) is
// computed again from fresh state, its new decisions published, and
// written again.
func (p *Pipeline) finish(ctx context.Context, pb *pending) error {
	if pb.sb.Stale(&p.drafts) {
		// Computed on a state a conflict has since replaced (see
		// state.Drafts): every batch before it is written, so compute it
		// again from Redis before publishing anything of it.
		p.log.Info("a batch was computed on a state that changed; computing it again", "events", len(pb.items))
		pb.msgs, pb.refreeze = nil, nil
		for _, ps := range pb.pspans {
			ps.End()
		}
		if err := p.recompute(ctx, pb, nil); err != nil {
			return err
		}
	}
	if err := p.publish(ctx, pb); err != nil {
		return err
	}
	acked := p.cfg.Now()
	for {
		if err := p.at(stepPublished); err != nil {
			return err
		}
		err := retry.Do(ctx, p.cfg.Retry, "redis_apply", p.notify, func(ctx context.Context) error {
			return p.store.Commit(ctx, pb.sb, &p.drafts)
		})
		var conflict *state.ConflictError
		if !errors.As(err, &conflict) {
			if err != nil {
				return fmt.Errorf("consumers: write the state of %d events: %w", len(pb.items), err)
			}
			break
		}
		p.obs.Retry("state_conflict", err, 0)
		p.log.Info("users' state changed since it was read; computing their events again", "users", len(conflict.Users), "err", err)
		if err := p.recompute(ctx, pb, conflict.Users); err != nil {
			return err
		}
		if err := p.publish(ctx, pb); err != nil {
			return err
		}
	}
	if len(pb.rescheduled) > 0 {
		if err := p.recomputeSoon(ctx, p.cfg.Now(), pb.rescheduled); err != nil {
			return err
		}
	}
	// What the batch did, from each record's last computation.
	var ndecisions, ndead int
	for i := range pb.hs {
		h := &pb.hs[i]
		switch {
		case h.dead != nil:
			ndead++
			p.obs.Event(h.msg.Topic, telemetry.OutcomeDeadLettered)
		case h.status == state.Applied:
			p.stats.Applied.Add(1)
			p.obs.Event(h.msg.Topic, h.status.String())
		case h.unknown:
			p.stats.Repeats.Add(1)
			p.stats.Unknown.Add(1)
			p.obs.Event(h.msg.Topic, telemetry.OutcomeUnknownRedelivery)
		default:
			p.stats.Repeats.Add(1)
			p.obs.Event(h.msg.Topic, h.status.String())
		}
		ndecisions += len(h.decisions)
		for _, r := range h.shadow {
			p.stats.Shadow.Add(r.Diff)
		}
		for _, d := range h.decisions {
			p.obs.Decision(d)
			p.obs.Latency(telemetry.ClockEventTime, acked.Sub(h.event.Time))
			p.obs.Latency(telemetry.ClockAppendTime, acked.Sub(h.msg.Time))
		}
		if dl := h.dead; dl != nil {
			p.obs.DeadLetter(*dl)
			p.log.WarnContext(h.ctx, "dead-lettered a record", "topic", dl.Msg.Topic, "partition", dl.Msg.Partition,
				"offset", dl.Msg.Offset, "field", dl.Field, "err", dl.Err)
		}
	}

	if err := p.at(stepWritten); err != nil {
		return err
	}
	if err := p.commit(ctx, pb.batch); err != nil {
		return err
	}
	if err := p.at(stepCommitted); err != nil {
		return err
	}
	p.stats.Batches.Add(1)
	p.stats.Events.Add(int64(len(pb.batch)))
	p.stats.DeadLetters.Add(int64(ndead))
	p.stats.Decisions.Add(int64(ndecisions))
	p.obs.Batch(len(pb.batch), time.Since(pb.start))
	return nil
}

// decode turns a record into an event, or a dead letter saying why not.
func (p *Pipeline) decode(m kafka.Message) (ev events.Event, dl *producers.DeadLetter) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic decoding a record", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
				"panic", r, "stack", string(debug.Stack()))
			dl = &producers.DeadLetter{Msg: m, Err: fmt.Errorf("panic while decoding: %v", r), At: p.cfg.Now()}
		}
	}()
	hs := make([]events.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = events.Header{Key: h.Key, Value: h.Value}
	}
	ev, err := p.cfg.Decoder.Decode(m.Key, hs, m.Value)
	if err != nil {
		dl := &producers.DeadLetter{Msg: m, Err: err, At: p.cfg.Now()}
		var de *events.DecodeError
		if errors.As(err, &de) {
			dl.Field = de.Field
		}
		return ev, dl
	}
	if !acceptsType(p.topicIdx[m.Topic], ev.Type) {
		return ev, &producers.DeadLetter{Msg: m, Field: "type", At: p.cfg.Now(),
			Err: fmt.Errorf("consumers: events of type %q do not belong on topic %q", ev.Type, m.Topic)}
	}
	return ev, nil
}

// evaluate runs the rules on one event, turning a panic into a dead letter;
// live says the rules are the live policy's (a late event is counted once,
// under them).
func (p *Pipeline) evaluate(rules Rules, it state.Item, o state.Outcome, m kafka.Message, live bool) (ds []events.Decision, dl *producers.DeadLetter) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in rules", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
				"panic", r, "stack", string(debug.Stack()))
			ds, dl = nil, &producers.DeadLetter{Msg: m, Err: fmt.Errorf("panic while evaluating rules: %v", r), At: p.cfg.Now()}
		}
	}()
	in := scoring.Input{
		Event: it.Event, Zone: o.Zone, Now: p.cfg.Now(),
		NewCity: o.NewCity, NewDevice: o.NewDevice,
		RecentPayments: o.RecentPayments, LastOtherCityLogin: o.LastOtherCityLogin,
		TransactionLimitFen: o.TransactionLimitFen, AlertThresholdFen: o.AlertThresholdFen,
		SettledLastOverdue: o.Unfroze,
	}
	if o.Credit {
		in.CreditRefused, in.Pool, in.AvailableFen = o.CreditRefused, o.Pool.String(), o.PoolQuota.AvailableFen
	}
	if pr := it.Event.Profile; pr != nil {
		// Before this profile: set if it did not just turn the flag on, or
		// if it just cleared it.
		in.WasJudicialDefaulter = (pr.JudicialDefaulter && !o.BecameJudicialDefaulter) || o.ClearedJudicialDefaulter
	}
	if live && rules.Late(in) {
		p.obs.Event(m.Topic, telemetry.OutcomeLate)
	}
	return rules.Evaluate(in), nil
}

// commit commits the batch's offsets. A commit refused because the group is
// rebalancing is not an error: the partitions' new owner will redeliver
// the records, and state recognises them.
func (p *Pipeline) commit(ctx context.Context, batch []kafka.Message) error {
	var refused error
	err := retry.Do(ctx, p.cfg.Retry, "kafka_commit", p.notify, func(ctx context.Context) error {
		err := p.commitMessages(ctx, batch...)
		if isRebalance(err) {
			refused = err
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("consumers: commit %d records: %w", len(batch), err)
	case refused != nil:
		p.log.Info("commit refused during a rebalance; the records will be redelivered and recognised", "err", refused)
	}
	return nil
}

func isRebalance(err error) bool {
	return errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.NotCoordinatorForGroup)
}

func (p *Pipeline) notify(cause string, err error, wait time.Duration) {
	p.obs.Retry(cause, err, wait)
	p.log.Warn("transient error; retrying", "cause", cause, "err", err, "wait", wait)
}
