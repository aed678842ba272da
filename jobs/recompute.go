package jobs

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
	"github.com/fenqi/fenqi/telemetry"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

// recomputeChunk is a batch of claimed users, read.
type recomputeChunk struct {
	now   time.Time
	batch *state.RecomputeBatch
	users []*engine.State // the claimed users' states (nil: skipped), as Claims
	ec    *evaluatedChunk // the batch evaluated
	err   error
}

// recomputeOnce recomputes every user whose quota is due now, a batch at a
// time, in three stages that overlap: one goroutine claims the next batch
// while Config.RecomputeReaders others read, evaluate and encode the
// batches claimed before it, while a last one publishes and saves the
// batches evaluated.
// Reading is the larger part of a recompute, and claiming and the rest of
// the work stay off its path (see BenchmarkRecompute1M). It returns how
// many users it recomputed.
func (r *Runner) recomputeOnce(ctx context.Context) (int, error) {
	now := r.cfg.Now()
	pol, _ := r.policy()
	cyc := CycleOf(pol)
	due, _, err := r.store.RecomputeStats(ctx, now, cyc)
	if err != nil {
		return 0, err
	}
	r.Recomp.Due.Store(due)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// send hands c on unless the work was abandoned: what is claimed but
	// not worked is due again when its lease ends.
	send := func(ch chan<- recomputeChunk, c recomputeChunk) bool {
		select {
		case ch <- c:
			return c.err == nil
		case <-ctx.Done():
			return false
		}
	}
	claimed := make(chan recomputeChunk, r.cfg.RecomputeReaders)
	wg.Go(func() {
		defer close(claimed)
		for !r.stopping.Load() {
			c := recomputeChunk{now: r.cfg.Now()}
			c.batch, c.err = r.store.ClaimRecomputes(ctx, c.now, r.cfg.Batch, r.cfg.Lease, cyc)
			if c.err == nil && len(c.batch.Claims) == 0 || !send(claimed, c) {
				return
			}
		}
	})
	// Readers read a batch (one round trip, then Go's parsing of the
	// reply) and evaluate it: with more than one, Redis answers one while
	// Go parses and evaluates others, on every core.
	read := make(chan recomputeChunk, r.cfg.RecomputeReaders)
	var readers sync.WaitGroup
	for range r.cfg.RecomputeReaders {
		readers.Go(func() {
			for c := range claimed {
				if c.err == nil {
					c.users, c.err = r.store.ReadStates(ctx, c.batch)
				}
				if c.err == nil {
					c.ec = r.evaluateChunk(ctx, c)
				}
				if !send(read, c) {
					if c.ec != nil {
						endBatch(c.ec.span, &c.ec.err, "recompute")
					}
					return
				}
			}
		})
	}
	wg.Go(func() {
		readers.Wait()
		close(read)
	})
	// The last stage publishes and saves the batches evaluated (waits on
	// the broker and on Redis), one at a time.
	evaluated := make(chan *evaluatedChunk, 1)
	var finishErr error
	var finishing sync.WaitGroup
	finishing.Go(func() {
		for ec := range evaluated {
			if finishErr == nil {
				finishErr = r.finishChunk(ec)
				if finishErr != nil {
					cancel() // claim and read no more
				}
			}
			endBatch(ec.span, &ec.err, "recompute")
		}
	})
	n := 0
	var readErr error
	for c := range read {
		if c.err != nil {
			readErr = c.err
			break
		}
		ec := c.ec
		select {
		case evaluated <- ec:
			n += len(c.users)
		case <-ctx.Done():
			endBatch(ec.span, &ec.err, "recompute")
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(evaluated)
	finishing.Wait()
	return n, errors.Join(readErr, finishErr)
}

// evaluatedChunk is a batch of users evaluated, to publish and save.
type evaluatedChunk struct {
	ctx    context.Context // carries the batch's span
	span   trace.Span
	err    error // the batch's outcome, for its span
	batch  *state.RecomputeBatch
	ds     []events.Decision
	msgs   []kafka.Message // ds encoded (nil when encoding failed: err)
	shadow []shadow.Record // the candidate policy's quotas, paired with ds
	quotas []state.Quota
}

// finishChunk publishes a batch's decisions, then saves its quotas.
func (r *Runner) finishChunk(ec *evaluatedChunk) error {
	if ec.err != nil { // encoding failed
		return ec.err
	}
	if ec.err = r.send(ec.ctx, ec.ds, ec.msgs, ec.shadow, &r.Recomp); ec.err != nil {
		return ec.err
	}
	if ec.err = r.store.SaveQuotas(ec.ctx, ec.batch, ec.quotas); ec.err != nil {
		return ec.err
	}
	r.Recomp.Done.Add(int64(len(ec.quotas)))
	r.cfg.OnDone(telemetry.ScheduleRecompute, len(ec.quotas))
	return nil
}

// evaluateChunk evaluates one batch of users.
func (r *Runner) evaluateChunk(ctx context.Context, c recomputeChunk) *evaluatedChunk {
	ctx, span := r.startBatch(ctx, telemetry.SpanJobsRecompute, len(c.users))
	pol, rules := r.policy()
	spol, srules := r.shadowPolicy()
	var shadows []shadow.Record
	ds := make([]events.Decision, 0, len(c.users))
	quotas := make([]state.Quota, 0, len(c.users))
	for i, st := range c.users {
		cl := c.batch.Claims[i]
		if st == nil {
			continue // quarantined (state.ErrQuarantined), or not written yet: skipped
		}
		if c.batch.Done(cl, st) {
			continue // done by the instance whose lease ran out
		}
		id, loc := cl.Member, r.store.ZoneOf(st)
		res := credit.Evaluate(pol, FactsOf(st, loc, pol, c.now))
		q := state.Quota{UserID: id, QuotaFen: res.QuotaFen, Seq: st.Recomputes + 1}
		if st.CycleDone != 0 {
			q.CycleDone = time.Unix(st.CycleDone, 0)
		}
		if c.batch.Periodic() {
			q.CycleDone = cl.Due
		}
		next := cl.Next
		if ov := st.Override; ov != nil {
			// The quota changes when the override ends: recompute then.
			if ends := time.Unix(ov.ExpiresAt, 0).UTC(); ends.After(c.now) && ends.Before(next) {
				next = ends.Add(time.Second)
				q.Wake = next
			}
		}
		// The id names the user, the recompute's number and when the claim
		// was due: two recomputes claimed at different times (a trigger
		// during another's lease) never share an id.
		cause := "recompute:" + id + ":" + strconv.FormatInt(q.Seq, 10) + ":" + strconv.FormatInt(cl.Due.Unix(), 10)
		d := scoring.WithPools(rules.Quota(id, cause, st.QuotaFen, res, next), PoolViewsOf(st, res.QuotaFen, c.now))
		ds = append(ds, d)
		quotas = append(quotas, q)
		if spol != nil {
			// The candidate's quota of the same user, state and time; the
			// previous quota (its guardrail's) is the live one.
			sres := credit.Evaluate(spol, FactsOf(st, loc, spol, c.now))
			sd := scoring.WithPools(srules.Quota(id, cause, st.QuotaFen, sres, next), PoolViewsOf(st, sres.QuotaFen, c.now))
			shadows = append(shadows, shadow.Pair(rules.PolicyVersion(), srules.PolicyVersion(), []events.Decision{d}, []events.Decision{sd})...)
		}
	}
	ec := &evaluatedChunk{ctx: ctx, span: span, batch: c.batch, ds: ds, shadow: shadows, quotas: quotas}
	// Encoded here, on the readers' goroutines, not in the last stage:
	// the quota decision's encoding costs about what evaluating it costs.
	ec.msgs, ec.err = r.messages(ds)
	return ec
}

// PoolViews are user u's quota pools at now with quotaFen as the quota
// (the one a recompute is about to save, or the one saved).
func PoolViews(u *state.User, quotaFen int64, now time.Time) []scoring.PoolView {
	return PoolViewsOf(u.Compact(), quotaFen, now)
}

// PoolViewsOf is PoolViews of a user's compact state.
func PoolViewsOf(st *engine.State, quotaFen int64, now time.Time) []scoring.PoolView {
	v := *st
	v.HasQuota, v.QuotaFen = true, quotaFen
	pools := v.Pools(now)
	out := make([]scoring.PoolView, len(pools))
	for i, p := range pools {
		out[i] = scoring.PoolView{Pool: p.Pool.String(), LimitFen: p.LimitFen, OutstandingFen: p.OutstandingFen, AvailableFen: p.AvailableFen}
	}
	return out
}

// Explain evaluates a user's quota now, as a recompute would, without
// publishing or saving anything: what `GET /v1/users/{id}/quota` and
// `fenqictl explain` show.
func Explain(ctx context.Context, store *state.Store, pol *policy.Policy, userID string, now time.Time) (credit.Result, *state.User, error) {
	u, err := store.User(ctx, userID)
	if err != nil {
		return credit.Result{}, nil, err
	}
	return credit.Evaluate(pol, Facts(u, pol, now)), u, nil
}

// CycleOf is the periodic recompute cycle of a policy (see state.Cycle):
// in interval mode every IntervalDays, cycles aligned to the Unix epoch,
// each user at a fixed phase of the cycle from a hash of its id; in
// calendar-quarter mode spread over the first 7 days of each quarter (from
// 12:00 UTC on its first day, when the quarter has begun in every zone).
func CycleOf(p *policy.Policy) state.Cycle {
	if p.Recompute.Mode == policy.RecomputeCalendarQuarter {
		return state.Quarterly
	}
	days := p.Recompute.IntervalDays
	if days <= 0 {
		days = 90
	}
	return state.Interval(days)
}

// NextDue is when the cycle of policy p next recomputes a user after now.
func NextDue(p *policy.Policy, userID string, now time.Time) time.Time {
	return CycleOf(p).Next(userID, now)
}
