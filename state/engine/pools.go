package engine

import (
	"fmt"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Quota pools (DOMAIN.md §5 "额度共享规则"): each scene's credit purchases
// draw on a pool the policy names; each pool has its own outstanding
// principal and available quota. The four pools read four lines of credit:
//
//	pool                line(s) drawn on          limit
//	pay_score           main                      the user's quota (QuotaFen)
//	independent         partner                   the profile's partner limit
//	shared_weilidai     main and weilidai         both: a purchase uses both
//	special_temporary   special                   an operator's grant, until it expires
type Pool uint8

const (
	PoolPayScore Pool = iota
	PoolIndependent
	PoolSharedWeilidai
	PoolSpecialTemporary
	numPools
)

// PoolNamed is the pool of a policy's or an event's pool name ("" is the
// pay-score pool); false for an unknown name.
func PoolNamed(name string) (Pool, bool) {
	switch name {
	case "", events.PoolPayScore:
		return PoolPayScore, true
	case events.PoolIndependent:
		return PoolIndependent, true
	case events.PoolSharedWeilidai:
		return PoolSharedWeilidai, true
	case events.PoolSpecialTemporary:
		return PoolSpecialTemporary, true
	}
	return 0, false
}

// String is the pool's name, as the policy and the events spell it.
func (p Pool) String() string {
	switch p {
	case PoolPayScore:
		return events.PoolPayScore
	case PoolIndependent:
		return events.PoolIndependent
	case PoolSharedWeilidai:
		return events.PoolSharedWeilidai
	case PoolSpecialTemporary:
		return events.PoolSpecialTemporary
	}
	return fmt.Sprintf("pool(%d)", uint8(p))
}

// Lines of credit, the indices of State.Outstanding.
const (
	LineMain = iota
	LinePartner
	LineWeilidai
	LineSpecial
	NumLines
)

// lines are the lines a pool's purchases draw on.
func (p Pool) lines() []int {
	switch p {
	case PoolIndependent:
		return []int{LinePartner}
	case PoolSharedWeilidai:
		return []int{LineMain, LineWeilidai}
	case PoolSpecialTemporary:
		return []int{LineSpecial}
	}
	return []int{LineMain}
}

// Special is an operator's special temporary quota (education and medical
// scenes, DOMAIN.md §5), granted per user until it expires.
type Special struct {
	QuotaFen  int64
	Reason    string
	Operator  string
	ExpiresAt int64 // Unix s
}

// Limit is a line's limit at now: the quota, the profile's partner or
// Weilidai limit, the special quota while it lasts; 0 when none.
func (s *State) Limit(line int, now time.Time) int64 {
	switch line {
	case LineMain:
		if s.HasQuota {
			return max(s.QuotaFen, 0)
		}
	case LinePartner:
		if s.Profile != nil {
			return s.Profile.PartnerLimitFen
		}
	case LineWeilidai:
		if s.Profile != nil {
			return s.Profile.WeilidaiLimitFen
		}
	case LineSpecial:
		if s.Special != nil && now.Unix() < s.Special.ExpiresAt {
			return s.Special.QuotaFen
		}
	}
	return 0
}

// PoolQuota is one pool's limit, outstanding principal and available quota.
type PoolQuota struct {
	Pool                                   Pool
	LimitFen, OutstandingFen, AvailableFen int64
}

// Available is what a purchase from pool may borrow at now: over every
// line the pool draws on, the least of limit − outstanding (never below 0).
// Limit and Outstanding are those of the pool's tightest line.
func (s *State) Available(pool Pool, now time.Time) PoolQuota {
	q := PoolQuota{Pool: pool}
	for i, l := range pool.lines() {
		limit, out := s.Limit(l, now), s.Outstanding[l]
		if avail := max(limit-out, 0); i == 0 || avail < q.AvailableFen {
			q.LimitFen, q.OutstandingFen, q.AvailableFen = limit, out, avail
		}
	}
	return q
}

// Pools lists every pool's quota at now.
func (s *State) Pools(now time.Time) []PoolQuota {
	out := make([]PoolQuota, 0, numPools)
	for p := range numPools {
		out = append(out, s.Available(p, now))
	}
	return out
}

// CreditCheck judges a credit payment (installments ≥ 1, DOMAIN.md §3
// "available quota") on the state just before it: the pool its scene draws
// on and, when it is refused, the reason codes (none: accepted). It must be
// pure: Apply may run it again on a state read again. The policy's scene
// rules, the eligibility gates and the pool's available quota are its
// business (see jobs.CreditCheck); the engine only keeps the books.
// loc is the user's zone (Config.ZoneOf).
type CreditCheck func(s *State, loc *time.Location, p *events.Payment, at time.Time) (pool Pool, refused []string)

// CreditVerdict is a credit check's verdict on a payment: the pool it
// draws on, that pool's quota before the payment, and the reason codes of
// a refusal (none: accepted).
type CreditVerdict struct {
	Pool    Pool
	Quota   PoolQuota
	Refused []string
}

// credit applies a credit payment's draw: the check's verdict, and for an
// accepted one the principal added to its pool's lines.
func (a *applier) credit(ts int64, p *events.Payment, o *Outcome) error {
	pool, refused := PoolPayScore, []string(nil)
	if a.cfg.Credit != nil {
		pool, refused = a.cfg.Credit(a.s, a.loc, p, time.Unix(ts, 0))
	}
	o.Credit, o.Pool, o.PoolQuota = true, pool, a.s.Available(pool, time.Unix(ts, 0))
	if a.cfg.ShadowCredit != nil {
		// The candidate policy's verdict on the same state, before the
		// live one changes it; it changes nothing.
		sp, sr := a.cfg.ShadowCredit(a.s, a.loc, p, time.Unix(ts, 0))
		o.Shadow = &CreditVerdict{Pool: sp, Quota: a.s.Available(sp, time.Unix(ts, 0)), Refused: sr}
	}
	if len(refused) > 0 {
		o.CreditRefused = refused
		return nil
	}
	next := a.s.Outstanding
	for _, l := range pool.lines() {
		v, ok := addFen(next[l], p.AmountFen)
		if !ok {
			return fmt.Errorf("engine: outstanding %d fen plus %d fen overflows a 64-bit sum", next[l], p.AmountFen)
		}
		next[l] = v
	}
	a.s.Outstanding = next
	return nil
}

// repaid frees the quota a repayment pays back on its bill's pool: as much
// as it pays, at most what is outstanding (a bill does not say which part
// of it is fee: a repayment frees slightly early, never late).
func (a *applier) repaid(pool Pool, fen int64) {
	for _, l := range pool.lines() {
		a.s.Outstanding[l] = max(a.s.Outstanding[l]-fen, 0)
	}
}

// SetSpecial sets (nil: removes) an operator's special temporary quota.
func SetSpecial(s *State, sp *Special) error {
	if sp != nil {
		if err := checkLen("special quota reason", sp.Reason); err != nil {
			return err
		}
		if err := checkLen("special quota operator", sp.Operator); err != nil {
			return err
		}
		c := *sp
		sp = &c
	}
	s.Special = sp
	return nil
}
