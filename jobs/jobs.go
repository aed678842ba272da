package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/telemetry"
)

// Config of the workers.
type Config struct {
	// Interval between looks at the schedules when nothing was due (default 1s).
	Interval time.Duration
	// Batch is the most entries claimed at once (default 500).
	Batch int
	// RecomputeReaders is how many batches of a recompute are read from
	// Redis at once (default 2): while Redis answers one read, Go parses
	// another.
	RecomputeReaders int
	// Lease is how long a claimed entry is this instance's before another
	// may take it (default 10s: what a crashed instance's claims, and a
	// recompute batch cut by a fault, wait at most). A batch takes
	// milliseconds; one that outlives its lease (a
	// stopping instance finishing within a longer ShutdownGrace, a stall)
	// may be claimed again, and its decisions published again with the
	// same ids.
	Lease time.Duration
	// ShutdownGrace bounds how long the batch in flight may take to
	// finish once Run's context ends (default 10s).
	ShutdownGrace time.Duration
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
	// Watermark (may be nil: judge on the clock alone) returns the time up
	// to which every record of the repayments topic has been processed by
	// the consumer group (consumers.Watermark.At). Overdue checks are then
	// judged at min(now, watermark): a check is claimed only once due at
	// that time, and a bill's days overdue (reminders and the freeze
	// threshold alike) are counted up to it, so that no reminder or freeze
	// goes out for a bill whose repayment still waits on the topic (after
	// a downtime, during a backlog or a replay). Its errors go through
	// Retry like Redis's: transient ones are retried, others stop Run.
	Watermark func(ctx context.Context) (time.Time, error)
	Retry     retry.Policy
	// OnDone (may be nil) hears how many entries of a schedule
	// ("overdue_checks" or "recompute") were finished.
	OnDone func(schedule string, n int)
	// Telemetry (may be nil: no tracing) traces each batch: a "jobs
	// recompute" or "jobs overdue_checks" span, with one "<topic> publish"
	// child per decision whose context goes in the decision's headers.
	Telemetry *telemetry.Telemetry
	// Shadow (nil: none) gives a candidate policy (fenqid -shadow-policy):
	// every recompute evaluates the user's quota under it too, from the
	// same state at the same time, and every overdue step judges the bill
	// under its freeze rule at the same check; the decisions, paired with
	// the live ones by id (shadow.Pair), go to ShadowTopic in the same
	// write as the live ones. Nothing of them is saved.
	Shadow Policy
	// ShadowTopic is where the shadow records go (default shadow.DefaultTopic).
	ShadowTopic string
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.RecomputeReaders == 0 {
		c.RecomputeReaders = 2
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OnDone == nil {
		c.OnDone = func(string, int) {}
	}
	if c.ShadowTopic == "" {
		c.ShadowTopic = shadow.DefaultTopic
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("jobs: Interval must be > 0, got %v", c.Interval)
	case c.Batch < 1 || c.Batch > 10000:
		return fmt.Errorf("jobs: Batch must be 1..10000, got %d", c.Batch)
	case c.RecomputeReaders < 1 || c.RecomputeReaders > 16:
		return fmt.Errorf("jobs: RecomputeReaders must be 1..16, got %d", c.RecomputeReaders)
	case c.Lease < time.Second:
		return fmt.Errorf("jobs: Lease must be ≥ 1s, got %v", c.Lease)
	}
	return nil
}

// Publisher encodes decisions as records and writes records, returning once
// the broker acknowledged them (producers.Publisher).
type Publisher interface {
	Topics() (decisions, dlq string)
	// DecisionMessages encodes decisions as their records, one each.
	DecisionMessages(ds []events.Decision) ([]kafka.Message, error)
	Write(ctx context.Context, msgs []kafka.Message) error
}

// Policy gives the policy and the rules in force (they may be reloaded).
type Policy func() (*policy.Policy, *scoring.Rules)

// Progress counts a worker's work, safe to read at any time.
type Progress struct {
	Due, Done atomic.Int64 // entries due (on the clock) at the last look; entries finished
	Decisions atomic.Int64
	Shadow    shadow.Counts // shadow records published, by diff (Config.Shadow)

	// Overdue checks only (with Config.Watermark), at the last look:
	// Waiting is set while checks due on the clock are held back because
	// the repayments topic is not processed up to the clock; Held is how
	// many; JudgedAt (Unix nanoseconds) is the time the checks were judged
	// at, min(now, watermark); Behind is how far (nanoseconds) that was
	// behind the clock.
	Waiting          atomic.Bool
	Held             atomic.Int64
	JudgedAt, Behind atomic.Int64
}

// Runner runs both workers.
type Runner struct {
	cfg      Config
	store    *state.Store
	pub      Publisher
	policy   Policy
	log      *slog.Logger
	Overdue  Progress
	Recomp   Progress
	onDecide func(events.Decision)
	stopping atomic.Bool // Run's context ended: finish, claim no more
}

// New returns a Runner. onDecision (may be nil) hears each decision once
// the broker acknowledged it.
func New(cfg Config, store *state.Store, pub Publisher, pol Policy, log *slog.Logger, onDecision func(events.Decision)) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.Nop()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onDecision == nil {
		onDecision = func(events.Decision) {}
	}
	return &Runner{cfg: cfg, store: store, pub: pub, policy: pol, log: log, onDecide: onDecision}, nil
}

// Run works both schedules until ctx ends. Transient errors are retried;
// it returns an error only when it cannot go on.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	// The batch in flight when ctx ends finishes (within ShutdownGrace):
	// its steps written are then published and its checks moved on, not
	// left to be claimed again when their leases end.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		r.stopping.Store(true) // claim no more
		g := time.AfterFunc(r.cfg.ShutdownGrace, cancelWork)
		context.AfterFunc(work, func() { g.Stop() })
	})
	defer stop()
	for {
		// Keep going while there is a backlog; wait a tick when idle.
		for ctx.Err() == nil {
			n, err := r.RunOnce(work)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce claims and works one batch of each schedule due at the clock's
// now (the overdue checks: due at min(now, watermark), see
// Config.Watermark), and returns how many entries it worked.
func (r *Runner) RunOnce(ctx context.Context) (int, error) {
	var n1, n2 int
	err := retry.Do(ctx, r.cfg.Retry, "overdue_timers", r.notify, func(ctx context.Context) error {
		var err error
		n1, err = r.overdueOnce(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("jobs: overdue checks: %w", err)
	}
	err = retry.Do(ctx, r.cfg.Retry, "recompute", r.notify, func(ctx context.Context) error {
		var err error
		n2, err = r.recomputeOnce(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("jobs: recompute: %w", err)
	}
	return n1 + n2, nil
}

func (r *Runner) notify(cause string, err error, wait time.Duration) {
	r.log.Warn("transient error; retrying", "cause", cause, "err", err, "wait", wait)
}

// publish writes decisions, and the shadow records paired with them, and
// returns once the broker acknowledged them. Each decision gets a publish
// span, child of the job's span in ctx, injected into its record's headers
// so that a notifier continues the trace.
func (r *Runner) publish(ctx context.Context, ds []events.Decision, shadows []shadow.Record, p *Progress) error {
	msgs, err := r.messages(ds)
	if err != nil {
		return err
	}
	return r.send(ctx, ds, msgs, shadows, p)
}

// messages encodes decisions as their records (the recompute encodes a
// batch while the batch before it is sent).
func (r *Runner) messages(ds []events.Decision) ([]kafka.Message, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	msgs, err := r.pub.DecisionMessages(ds)
	if err == nil && len(msgs) != len(ds) {
		err = fmt.Errorf("jobs: %d records for %d decisions", len(msgs), len(ds))
	}
	return msgs, err
}

// send is publish of decisions already encoded (msgs: messages(ds)).
func (r *Runner) send(ctx context.Context, ds []events.Decision, msgs []kafka.Message, shadows []shadow.Record, p *Progress) error {
	if len(ds) == 0 && len(shadows) == 0 {
		return nil
	}
	tel := r.cfg.Telemetry
	topic, _ := r.pub.Topics()
	spans := make([]trace.Span, 0, len(ds))
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for i, d := range ds {
		spans = append(spans, tel.StartDecisionPublish(ctx, topic, d.Type, d.Data.Rule, &msgs[i]))
	}
	for _, sr := range shadows {
		m, err := shadow.Message(r.cfg.ShadowTopic, sr)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := r.pub.Write(ctx, msgs); err != nil {
		for _, s := range spans {
			telemetry.Fail(s, err, "kafka")
		}
		return err
	}
	for _, d := range ds {
		r.onDecide(d)
	}
	p.Decisions.Add(int64(len(ds)))
	for _, sr := range shadows {
		p.Shadow.Add(sr.Diff)
	}
	return nil
}

// shadowRules returns the candidate policy, or nils without one.
func (r *Runner) shadowPolicy() (*policy.Policy, *scoring.Rules) {
	if r.cfg.Shadow == nil {
		return nil, nil
	}
	return r.cfg.Shadow()
}

// startBatch starts the span of one batch of a job; end it with endBatch.
func (r *Runner) startBatch(ctx context.Context, name string, n int) (context.Context, trace.Span) {
	ctx, span := r.cfg.Telemetry.StartBatch(ctx, name, nil)
	span.SetAttributes(telemetry.BatchSizeKey.Int(n))
	return ctx, span
}

// endBatch ends a batch span, failed when *err is not nil.
func endBatch(span trace.Span, err *error, reason string) {
	if *err != nil {
		telemetry.Fail(span, *err, reason)
	}
	span.End()
}

// judgeAt returns the time overdue checks are judged at:
// min(now, watermark), or now without a Config.Watermark.
func (r *Runner) judgeAt(ctx context.Context, now time.Time) (time.Time, error) {
	if r.cfg.Watermark == nil {
		return now, nil
	}
	wm, err := r.cfg.Watermark(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("jobs: repayments watermark: %w", err)
	}
	if wm.Before(now) {
		return wm, nil
	}
	return now, nil
}

// noteWaiting records whether checks due on the clock are held back by
// the watermark, and says so in the log when that changes.
func (r *Runner) noteWaiting(now, at time.Time, held int64) {
	p := &r.Overdue
	p.Held.Store(held)
	p.JudgedAt.Store(at.UnixNano())
	p.Behind.Store(int64(now.Sub(at)))
	was := p.Waiting.Swap(held > 0)
	switch {
	case held > 0 && !was:
		r.log.Warn("overdue checks wait for the repayments topic", "watermark", at, "behind", now.Sub(at).Round(time.Second), "checks_held", held)
	case held == 0 && was:
		r.log.Info("overdue checks caught up with the repayments topic", "watermark", at)
	}
}

// overdueOnce works the overdue checks due at min(now, watermark): a bill
// is judged on the stream, not only on the clock (Config.Watermark).
func (r *Runner) overdueOnce(ctx context.Context) (_ int, err error) {
	now := r.cfg.Now()
	// The watermark before anything is read from Redis: every repayment
	// stamped before it is applied to state by now, so the bills read
	// below reflect them.
	at, err := r.judgeAt(ctx, now)
	if err != nil {
		return 0, err
	}
	due, _, err := r.store.ScheduleStats(ctx, state.TimersKey, now)
	if err != nil {
		return 0, err
	}
	r.Overdue.Due.Store(due)
	var held int64
	if at.Before(now) && due > 0 {
		ready, _, err := r.store.ScheduleStats(ctx, state.TimersKey, at)
		if err != nil {
			return 0, err
		}
		held = max(due-ready, 0)
	}
	r.noteWaiting(now, at, held)
	// Claimed when due at the time judged at, leased until now+Lease on
	// the clock (the lease is about this instance, not about the stream):
	// a check held back by the watermark is not claimed, and one claimed
	// is not claimed again by another instance before its lease ends.
	claims, err := r.store.ClaimTimers(ctx, at, r.cfg.Batch, r.cfg.Lease+now.Sub(at))
	if err != nil || len(claims) == 0 {
		return 0, err
	}
	defer func() {
		// A fault mid-batch: the checks are due again now, not when their
		// lease ends, so that the retry works them (at most once more each:
		// a step already written is published again with the same id).
		// Past ctx's end (shutdown), the lease brings them back.
		if err != nil && ctx.Err() == nil {
			if rerr := r.store.ReleaseTimers(context.WithoutCancel(ctx), claims); rerr != nil {
				r.log.Warn("overdue checks kept leased after a failed batch", "checks", len(claims), "err", rerr)
			}
		}
	}()
	ctx, span := r.startBatch(ctx, telemetry.SpanJobsOverdue, len(claims))
	defer endBatch(span, &err, "overdue_checks")
	_, rules := r.policy()
	freezeAfter, freezeOn := rules.OverdueFreeze()
	_, srules := r.shadowPolicy()
	bills, err := r.store.OpenBills(ctx, claims)
	if err != nil {
		return 0, err
	}
	type step struct {
		c      state.TimerClaim
		stage  int
		freeze bool
		next   time.Time
		d      *events.Decision
		shadow []shadow.Record
	}
	var steps []step
	var gone []state.TimerClaim
	var waiting []state.NextCheck
	for i, c := range claims {
		if bills[i] == nil {
			// Settled before its check: the repayment cancelled the timer.
			gone = append(gone, c)
			continue
		}
		if bills[i].Quarantined {
			// The user's state cannot be read (state.ErrQuarantined): the
			// check waits an hour at a time for the repair, and fires nothing.
			waiting = append(waiting, state.NextCheck{UserID: c.UserID, BillID: c.BillID, Next: now.Add(time.Hour)})
			continue
		}
		bill := *bills[i]
		overdue := at.Sub(bill.DueAt) // at the time judged at
		days := int(overdue / (24 * time.Hour))
		st := OverdueStage(overdue, bill.Stage, freezeAfter, freezeOn)
		s := step{c: c, stage: st.Stage, freeze: st.Freeze}
		if !st.Done {
			s.next = bill.DueAt.Add(st.Next)
		}
		remind, freeze := st.Remind, st.Freeze
		if remind == 0 && !freeze && bill.Stage >= 1 {
			// Nothing new: the check was claimed again after its lease ran
			// out (the instance died after writing the stage, maybe before
			// publishing it). Publish the stage's decision again, with the
			// same id: a notifier drops the repeat, and none is lost.
			if freezeOn && bill.Stage == freezeAfter+1 {
				freeze = true
			} else {
				remind = min(bill.Stage, freezeAfter)
			}
		}
		switch {
		case freeze:
			d := rules.Frozen(c.UserID, "bill:"+c.BillID, scoring.CauseOverdue, bill.DueAt.Add(FreezeDelay(freezeAfter)),
				map[string]any{"bill_id": c.BillID, "days_overdue": days, "amount_fen": bill.RemainingFen, "due_at": bill.DueAt.UTC().Format(time.RFC3339)})
			s.d = &d
		case remind > 0:
			var freezeAt time.Time
			if freezeOn {
				freezeAt = bill.DueAt.Add(FreezeDelay(freezeAfter))
			}
			d := rules.Overdue(c.UserID, c.BillID, bill.RemainingFen, bill.DueAt, remind, freezeAt)
			s.d = &d
		}
		if srules != nil && s.d != nil {
			s.shadow = shadow.Pair(rules.PolicyVersion(), srules.PolicyVersion(), []events.Decision{*s.d},
				shadowOverdue(srules, c, bill, overdue))
		}
		steps = append(steps, s)
	}
	// Write each step to the user's state before publishing it: a freeze
	// is in state before any notifier hears of it, so the repayment that
	// settles the bill finds the user frozen and unfreezes; a bill settled
	// since it was read publishes nothing. The timer moves on only once the
	// decision is acknowledged: a crash in between leaves the check to be
	// claimed again, and its decision published again (above).
	bsteps := make([]state.BillStep, len(steps))
	for i, s := range steps {
		bsteps[i] = state.BillStep{UserID: s.c.UserID, BillID: s.c.BillID, Stage: s.stage, Freeze: s.freeze}
	}
	res, err := r.store.AdvanceBills(ctx, bsteps)
	if err != nil {
		return 0, err
	}
	var ds []events.Decision
	var shadows []shadow.Record
	var froze []string
	// Each check's next time, in one round trip once the decisions are
	// acknowledged; zero (no more checks) for a bill settled before its
	// check or since it was read (nothing published for it).
	next := make([]state.NextCheck, 0, len(claims))
	next = append(next, waiting...)
	for _, c := range gone {
		next = append(next, state.NextCheck{UserID: c.UserID, BillID: c.BillID})
	}
	for i, s := range steps {
		if res[i].Gone {
			next = append(next, state.NextCheck{UserID: s.c.UserID, BillID: s.c.BillID})
			continue
		}
		if res[i].Froze {
			froze = append(froze, s.c.UserID)
		}
		if s.d != nil {
			ds = append(ds, *s.d)
			shadows = append(shadows, s.shadow...)
		}
		next = append(next, state.NextCheck{UserID: s.c.UserID, BillID: s.c.BillID, Next: s.next})
	}
	if err := r.publish(ctx, ds, shadows, &r.Overdue); err != nil {
		return 0, err
	}
	if err := r.store.RecomputeSoon(ctx, now, froze...); err != nil {
		return 0, err
	}
	if err := r.store.ScheduleBills(ctx, next); err != nil {
		return 0, err
	}
	r.Overdue.Done.Add(int64(len(next)))
	r.cfg.OnDone(telemetry.ScheduleOverdueChecks, len(next))
	return len(claims), nil
}

// shadowOverdue is what the candidate rules decide at a live overdue check
// of a bill overdue by overdue, by whole days overdue (the live checks fall
// on whole days, and its freeze a second after one): the freeze once the
// bill has been open the candidate's freeze_after days, else the reminder of
// that day, or nothing when the candidate's reminders ended on an earlier
// day (it sent its last one then). It has no stages of its own (nothing of
// the shadow is saved), so it judges at the live policy's checks only: a
// candidate freezing later than the live policy shows a reminder at the
// live freeze, not a freeze at its own time.
func shadowOverdue(rules *scoring.Rules, c state.TimerClaim, bill state.Bill, overdue time.Duration) []events.Decision {
	freezeAfter, freezeOn := rules.OverdueFreeze()
	days := int(overdue / (24 * time.Hour))
	reminders := freezeAfter
	if freezeOn {
		reminders = max(freezeAfter-1, 0)
	}
	switch {
	case days < 1:
		return nil
	case freezeOn && days >= freezeAfter:
		return []events.Decision{rules.Frozen(c.UserID, "bill:"+c.BillID, scoring.CauseOverdue, bill.DueAt.Add(FreezeDelay(freezeAfter)),
			map[string]any{"bill_id": c.BillID, "days_overdue": days, "amount_fen": bill.RemainingFen, "due_at": bill.DueAt.UTC().Format(time.RFC3339)})}
	case days > reminders:
		return nil
	}
	var freezeAt time.Time
	if freezeOn {
		freezeAt = bill.DueAt.Add(FreezeDelay(freezeAfter))
	}
	return []events.Decision{rules.Overdue(c.UserID, c.BillID, bill.RemainingFen, bill.DueAt, days, freezeAt)}
}

// Stage is what an overdue check does now.
type Stage struct {
	Stage  int  // the stage the bill reaches (1..freezeAfter the reminders, freezeAfter+1 the freeze)
	Remind int  // the day of the reminder to publish (0: none)
	Freeze bool // publish the freeze
	Done   bool // no check after this one
	// Next, when not Done: the next check, as a time after the due time.
	Next time.Duration
}

// FreezeDelay is when an overdue bill freezes the user, after its due time:
// "overdue more than freezeAfter days" (DOMAIN.md §6, "逾期超3天"), so one
// second past freezeAfter × 24 h (72 h: open at 72:00:00 is not yet more).
func FreezeDelay(freezeAfter int) time.Duration {
	return time.Duration(freezeAfter)*24*time.Hour + time.Second
}

// OverdueStage decides an overdue check for a bill overdue by overdue (the
// time judged at minus its due time) whose checks reached stage done.
// Reminders come on whole days overdue: days 1..freezeAfter−1 when the
// freeze is on (the check at freezeAfter days is the freeze itself, at
// FreezeDelay; a reminder one second before it would tell nobody anything),
// days 1..freezeAfter when it is off. The freeze is stage freezeAfter+1.
// After an outage only the latest step is published: the freeze, or the
// latest day's reminder (a notifier should not send three reminders at once).
func OverdueStage(overdue time.Duration, done, freezeAfter int, freezeOn bool) Stage {
	reminders, last := freezeAfter, freezeAfter
	if freezeOn {
		reminders, last = max(freezeAfter-1, 0), freezeAfter+1
	}
	// at is when stage k falls due, after the due time.
	at := func(k int) time.Duration {
		if k > reminders {
			return FreezeDelay(freezeAfter)
		}
		return time.Duration(k) * 24 * time.Hour
	}
	days := int(overdue / (24 * time.Hour))
	target := min(max(days, 0), reminders)
	if freezeOn && overdue >= FreezeDelay(freezeAfter) {
		target = last
	}
	if target <= done || target < 1 {
		// Early (a check claimed before its time) or already done.
		st := Stage{Stage: done, Done: done >= last}
		if !st.Done {
			st.Next = at(done + 1)
		}
		return st
	}
	st := Stage{Stage: target, Done: target >= last}
	if freezeOn && target == last {
		st.Freeze = true
	} else {
		st.Remind = target
	}
	if !st.Done {
		st.Next = at(target + 1)
	}
	return st
}
