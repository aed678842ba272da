package jobs

import (
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// Purchase is what the payment rules and the offer judge of a credit
// purchase (installments ≥ 1; DOMAIN.md §3 "available quota", §5 scenes
// and pools), made of one user's state at one time.
type Purchase struct {
	Pool engine.Pool
	// Request is the offer's verdict input: the user's frozen flag,
	// eligibility now (an active override makes the user eligible, as it
	// wins over the gates for the quota) and the pool's available quota.
	Request credit.OfferRequest
	Quota   engine.PoolQuota
}

// JudgePurchase gathers what judging a credit purchase of amountFen in
// scene at needs from user u under policy pl: the scene's pool, whether the
// user is frozen, eligible now (the credit model on u's state at that
// time), and the pool's available quota (its limit less the principal
// outstanding on it). The verdict is credit.MakeOffer's (the offer) and
// CreditCheck's (the stream): the same codes for the same purchase.
func JudgePurchase(pl *policy.Policy, u *state.User, scene events.Scene, amountFen int64, at time.Time) Purchase {
	return JudgePurchaseOf(pl, u.Compact(), u.Zone, scene, amountFen, at)
}

// JudgePurchaseOf is JudgePurchase on a user's compact state st, read in
// the user's zone loc (the stream's credit check judges the state being
// applied, with no read view).
func JudgePurchaseOf(pl *policy.Policy, st *engine.State, loc *time.Location, scene events.Scene, amountFen int64, at time.Time) Purchase {
	score := 0
	if st.Profile != nil {
		score = int(st.Profile.PayScore)
	}
	sc := credit.CheckScene(pl, scene, amountFen, score)
	pool, ok := engine.PoolNamed(sc.QuotaPool)
	if !ok {
		pool = engine.PoolPayScore // a validated policy names known pools
	}
	eligible, reasons := credit.Eligible(pl, FactsOf(st, loc, pl, at))
	q := st.Available(pool, at)
	return Purchase{Pool: pool, Quota: q, Request: credit.OfferRequest{
		AmountFen:         amountFen,
		Context:           credit.PromoContext{Scene: scene, PayScore: score, At: at},
		Eligible:          eligible,
		IneligibleReasons: reasons,
		Frozen:            st.FrozenOverdue || st.FrozenJudicial,
		AvailableFen:      q.AvailableFen,
	}}
}

// CreditCheck is the state engine's judge of credit payments under the
// policy pol returns when the payment is applied: refused, with every code
// that applies, as the offer refuses it (credit.Verdict): by a frozen user
// (FENQI_FROZEN), by a user not eligible at the payment's time (the failing
// gates' codes), by the scene's rules (WECHAT_CREDIT_401 for education and
// medical below 650, WECHAT_ORDER_500 over the single-payment limit), above
// the pool's available quota (FENQI_QUOTA_EXCEEDED, for an eligible user).
// With the policy's credit_refusal rule off every credit payment is
// accepted on its pool.
func CreditCheck(pol func() *policy.Policy) engine.CreditCheck {
	return func(s *engine.State, loc *time.Location, p *events.Payment, at time.Time) (engine.Pool, []string) {
		pl := pol()
		j := JudgePurchaseOf(pl, s, loc, p.Scene, p.AmountFen, at)
		if !pl.Risk.Rules.CreditRefusal.Enabled {
			return j.Pool, nil
		}
		refusal, ok := credit.Verdict(pl, j.Request)
		if ok {
			return j.Pool, nil
		}
		codes := make([]string, len(refusal.Reasons))
		for i, rc := range refusal.Reasons {
			codes[i] = rc.Code
		}
		return j.Pool, codes
	}
}
