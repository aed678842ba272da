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
	"github.com/fenqi/fenqi/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// recomputeChunk is a batch of claimed users, read.
type recomputeChunk struct {
	now   time.Time
	batch *state.RecomputeBatch
	users []*state.User
	ec    *evaluatedChunk // the batch evaluated
	err   error
}

// recomputeOnce recomputes every user whose quota is due now, a batch at a
// time, in three stages that overlap: one goroutine claims the next batch
// while Config.RecomputeReaders others read and evaluate the batches
// claimed before it, while a last one publishes and saves the batches
// evaluated.
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
					c.users, c.err = r.store.ReadBatch(ctx, c.batch)
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
	shadow []shadow.Record // the candidate policy's quotas, paired with ds
	quotas []state.Quota
}

// finishChunk publishes a batch's decisions, then saves its quotas.
func (r *Runner) finishChunk(ec *evaluatedChunk) error {
	if ec.err = r.publish(ec.ctx, ec.ds, ec.shadow, &r.Recomp); ec.err != nil {
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
	for i, u := range c.users {
		cl := c.batch.Claims[i]
		if u == nil {
			continue // quarantined (state.ErrQuarantined): skipped
		}
		if c.batch.Done(cl, u) {
			continue // done by the instance whose lease ran out
		}
		res := credit.Evaluate(pol, Facts(u, pol, c.now))
		q := state.Quota{UserID: u.ID, QuotaFen: res.QuotaFen, Seq: u.Recomputes + 1, CycleDone: u.CycleDone}
		if c.batch.Periodic() {
			q.CycleDone = cl.Due
		}
		next := cl.Next
		if ov := u.Override; ov != nil && ov.ExpiresAt.After(c.now) && ov.ExpiresAt.Before(next) {
			// The quota changes when the override ends: recompute then.
			next = ov.ExpiresAt.Add(time.Second)
			q.Wake = next
		}
		// The id names the user, the recompute's number and when the claim
		// was due: two recomputes claimed at different times (a trigger
		// during another's lease) never share an id.
		cause := "recompute:" + u.ID + ":" + strconv.FormatInt(q.Seq, 10) + ":" + strconv.FormatInt(cl.Due.Unix(), 10)
		d := scoring.WithPools(rules.Quota(u.ID, cause, u.QuotaFen, res, next), PoolViews(u, res.QuotaFen, c.now))
		ds = append(ds, d)
		quotas = append(quotas, q)
		if spol != nil {
			// The candidate's quota of the same user, state and time; the
			// previous quota (its guardrail's) is the live one.
			sres := credit.Evaluate(spol, Facts(u, spol, c.now))
			sd := scoring.WithPools(srules.Quota(u.ID, cause, u.QuotaFen, sres, next), PoolViews(u, sres.QuotaFen, c.now))
			shadows = append(shadows, shadow.Pair(rules.PolicyVersion(), srules.PolicyVersion(), []events.Decision{d}, []events.Decision{sd})...)
		}
	}
	return &evaluatedChunk{ctx: ctx, span: span, batch: c.batch, ds: ds, shadow: shadows, quotas: quotas}
}

// PoolViews are user u's quota pools at now with quotaFen as the quota
// (the one a recompute is about to save, or the one saved).
func PoolViews(u *state.User, quotaFen int64, now time.Time) []scoring.PoolView {
	v := *u
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

// Facts turns a user's rolling state into the credit model's input, with
// the windows DOMAIN.md gives, read in the user's zone at now.
func Facts(u *state.User, p *policy.Policy, now time.Time) credit.Facts {
	loc := u.Zone
	f := credit.Facts{Now: now, Location: loc}
	if pr := u.Profile; pr != nil {
		f.PayScore = pr.PayScore
		f.RealNameVerified, f.IdentityComplete = pr.RealNameVerified, pr.IdentityComplete
		f.CardBankBlacklisted, f.WealthBalanceFen = pr.CardBankBlacklisted, pr.WealthBalanceFen
		f.JudicialDefaulter, f.LinkedAccountNegative = pr.JudicialDefaulter, pr.LinkedAccountNegative
		if pr.CardBoundSince != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.CardBoundSince, loc); err == nil {
				f.CardBoundSince = t
			}
		}
		if pr.SeriousDefaultElsewhereOn != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.SeriousDefaultElsewhereOn, loc); err == nil {
				f.DefaultElsewhere = t
			}
		}
	}
	today := u.Day(now)
	window := p.Eligibility.ActivityWindowDays
	if window <= 0 {
		window = 30
	}
	for day, c := range u.Days {
		if day > today-window && day <= today {
			f.Payments30d += int(c.Payments)
		}
	}
	// The three full calendar months before the current one, oldest first.
	y, m, _ := now.In(loc).Date()
	for i := range 3 {
		mt := time.Date(y, m-time.Month(3-i), 1, 0, 0, 0, 0, loc)
		c := u.Months[mt.Year()*100+int(mt.Month())]
		f.MonthlySpendFen[i] = c.SpendFen
		f.MonthlyLoginDays[i] = int(c.LoginDays)
		f.MonthlySocial[i] = int(c.SocialN)
	}
	// Distinct days with a login in the window: the months' login masks.
	for day := today - window + 1; day <= today; day++ {
		y, m, d := time.Unix(int64(day)*86400, 0).UTC().Date()
		if u.Months[y*100+int(m)].LoginMask&(1<<(d-1)) != 0 {
			f.LoginDays30d++
		}
	}
	// Logins of the last window_days (90) days by device; the usual one has
	// the most.
	devWindow := p.Quota.Factors.Device.WindowDays
	if devWindow <= 0 {
		devWindow = 90
	}
	for _, d := range u.Devices {
		n := int(d.LoginsSince(today - devWindow + 1))
		f.Logins90d += n
		f.UsualDeviceLogins90d = max(f.UsualDeviceLogins90d, n)
	}
	// Overdue: open bills past due now, and settled episodes. A bill counts
	// for the serious-default gate when it was overdue at some moment of the
	// window: open now, or settled inside it, however long ago it fell due.
	months := p.Eligibility.SeriousDefaultWindowMonths
	if months <= 0 {
		months = 6
	}
	from := now.In(loc).AddDate(0, -months, 0)
	f.OverdueEpisodes = u.SettledEpisodes
	for _, b := range u.Bills {
		if now.After(b.DueAt) {
			f.OverdueNow = true
			f.OverdueEpisodes++
			f.MaxOverdue6m = max(f.MaxOverdue6m, now.Sub(b.DueAt))
		}
	}
	for _, ep := range u.RecentEpisodes {
		if ep.SettledAt.After(from) {
			f.MaxOverdue6m = max(f.MaxOverdue6m, ep.SettledAt.Sub(ep.DueAt))
		}
	}
	for _, c := range u.QuotaChecks {
		if now.Sub(c) < 30*24*time.Hour && !c.After(now) {
			f.QuotaChecks30d++
		}
	}
	f.PreviousQuotaFen, f.HasPreviousQuota = u.QuotaFen, u.HasQuota
	if ov := u.Override; ov != nil {
		f.Override = &credit.Override{QuotaFen: ov.QuotaFen, Reason: ov.Reason, Operator: ov.Operator, ExpiresAt: ov.ExpiresAt}
	}
	return f
}
