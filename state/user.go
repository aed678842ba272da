package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/state/engine"
)

// DayCounts are one local day's counters.
type DayCounts struct {
	Payments int64 // payments of every scene
}

// MonthCounts are one calendar month's counters.
type MonthCounts struct {
	SpendFen  int64 // consumption payments
	SocialN   int64 // transfers and red packets
	LoginDays int64 // distinct local days with a login
	// LoginMask has bit d−1 set when there was a login on day d of the month.
	LoginMask uint32
}

// Bill is an open bill.
type Bill struct {
	RemainingFen int64
	DueAt        time.Time
	// Stage is how many overdue checks have fired: 1–3 the reminders of
	// days 1–3 (day 3 only with the freeze off), 4 the freeze.
	Stage int
	// Quarantined: the user's state cannot be read (OpenBills): the check
	// waits (ErrQuarantined).
	Quarantined bool
}

// Episode is a settled overdue bill: not fully repaid by its due time.
type Episode struct {
	DueAt, SettledAt time.Time
}

// Place is a device or city last seen on a local day.
type Place struct {
	LastDay int // days since 1970-01-01 in the user's zone
	// Devices only: the logins from it kept (those of the last
	// engine.Config.GeoDays days, by buckets of engine.LoginBucketDays days),
	// and LoginsByBucket the same by bucket (local day ÷ LoginBucketDays).
	Logins         int64
	LoginsByBucket map[int]int64
}

// LoginsSince counts a device's logins from the bucket holding local day
// first on: the last N days, to within engine.LoginBucketDays.
func (p Place) LoginsSince(first int) int64 {
	from := int(engine.LoginBucketOf(int32(first)))
	var n int64
	for b, c := range p.LoginsByBucket {
		if b >= from {
			n += c
		}
	}
	return n
}

// User is a read view of one user's state.
type User struct {
	ID      string
	Zone    *time.Location
	Days    map[int]DayCounts   // local day number (days since 1970-01-01) -> counters
	Months  map[int]MonthCounts // yyyymm -> counters
	Devices map[string]Place
	Cities  map[string]Place
	Bills   map[string]Bill // open bills
	Profile *events.Profile // nil before the first profile

	FrozenOverdue   bool // installments suspended: a bill overdue too long
	FrozenJudicial  bool // installments suspended: on the judgement-defaulter list
	SettledEpisodes int  // settled overdue episodes, lifetime
	// RecentEpisodes are the overdue episodes settled in the last
	// engine.OverdueHistoryDays (200) days, oldest settlement first.
	RecentEpisodes []Episode
	// QuotaFen is the last published quota; HasQuota false before the first.
	QuotaFen int64
	HasQuota bool
	// Recomputes counts the user's saved recomputes: a recompute's decision
	// id includes it, so a replay of one recompute repeats its id and the
	// next recompute, even at the same instant, gets a new one.
	Recomputes int64
	// CycleDone is when the last periodic recompute saved was due (zero:
	// none yet): a cycle batch claimed again skips the users it has.
	CycleDone time.Time
	// Override is an operator's fixed quota, nil when none was set.
	Override *Override
	// QuotaChecks are the times of the user's latest quota checks (at most
	// 16, newest first; see RecordQuotaCheck).
	QuotaChecks []time.Time
	// Special is an operator's special temporary quota, nil when none.
	Special *Special
	// Outstanding is the principal of accepted credit purchases not yet
	// repaid, by line of credit (engine.LineMain…).
	Outstanding [engine.NumLines]int64
}

// Special is an operator's special temporary quota (education and medical).
type Special struct {
	QuotaFen  int64     `json:"quota_fen"`
	Reason    string    `json:"reason"`
	Operator  string    `json:"operator,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Pools is each quota pool's limit, outstanding principal and available
// quota at now (DOMAIN.md §3, §5).
func (u *User) Pools(now time.Time) []engine.PoolQuota { return u.Compact().Pools(now) }

// Available is one pool's quota at now (Pools' entry for it).
func (u *User) Available(pool engine.Pool, now time.Time) engine.PoolQuota {
	return u.Compact().Available(pool, now)
}

// Compact is the compact state as far as the view holds it: what the
// credit model's facts, the frozen flags and the pools read (jobs.FactsOf,
// jobs.JudgePurchaseOf), not the offsets, fingerprints or places' history.
// A view built by hand, as tests and the API's callers do, has no state
// behind it: this is one.
func (u *User) Compact() *engine.State {
	st := &engine.State{SettledEpisodes: int32(u.SettledEpisodes), HasQuota: u.HasQuota, QuotaFen: u.QuotaFen,
		FrozenOverdue: u.FrozenOverdue, FrozenJudicial: u.FrozenJudicial, Outstanding: u.Outstanding}
	if pr := u.Profile; pr != nil {
		st.Profile = &engine.Profile{PayScore: int32(pr.PayScore), RealNameVerified: pr.RealNameVerified,
			IdentityComplete: pr.IdentityComplete, CardBankBlacklisted: pr.CardBankBlacklisted,
			JudicialDefaulter: pr.JudicialDefaulter, LinkedAccountNegative: pr.LinkedAccountNegative,
			WealthBalanceFen: pr.WealthBalanceFen, CardBoundSince: pr.CardBoundSince, DefaultElsewhereOn: pr.SeriousDefaultElsewhereOn,
			PartnerLimitFen: pr.PartnerLimitFen, WeilidaiLimitFen: pr.WeilidaiLimitFen}
	}
	if sp := u.Special; sp != nil {
		st.Special = &engine.Special{QuotaFen: sp.QuotaFen, ExpiresAt: sp.ExpiresAt.Unix()}
	}
	for day, c := range u.Days {
		st.Days = append(st.Days, engine.Day{Day: int32(day), Payments: int32(c.Payments)})
	}
	for ym, c := range u.Months {
		st.Months = append(st.Months, engine.Month{YM: int32(ym), SpendFen: c.SpendFen, SocialN: int32(c.SocialN),
			LoginDays: int32(c.LoginDays), LoginMask: c.LoginMask})
	}
	for name, d := range u.Devices {
		pl := engine.Place{Name: name, LastDay: int32(d.LastDay)}
		if len(d.LoginsByBucket) > 0 {
			lo, hi := math.MaxInt, math.MinInt
			for b := range d.LoginsByBucket {
				lo, hi = min(lo, b), max(hi, b)
			}
			pl.LoginBucket, pl.Logins = int32(hi), make([]int32, hi-lo+1) // newest first
			for b, c := range d.LoginsByBucket {
				pl.Logins[hi-b] = int32(c)
			}
		}
		st.Devices = append(st.Devices, pl)
	}
	for id, b := range u.Bills {
		st.Bills = append(st.Bills, engine.Bill{ID: id, Status: engine.BillOpen, Amount: b.RemainingFen, DueAt: b.DueAt.Unix(), Stage: int8(b.Stage)})
	}
	for _, ep := range u.RecentEpisodes {
		st.Episodes = append(st.Episodes, engine.Episode{DueAt: ep.DueAt.Unix(), SettledAt: ep.SettledAt.Unix()})
	}
	for _, c := range u.QuotaChecks {
		st.QuotaChecks = append(st.QuotaChecks, c.Unix())
	}
	if ov := u.Override; ov != nil {
		st.Override = &engine.Override{QuotaFen: ov.QuotaFen, Reason: ov.Reason, Operator: ov.Operator, ExpiresAt: ov.ExpiresAt.Unix()}
	}
	return st
}

// ViewState is the read view of a user's state st in the user's zone loc,
// as Users gives it (for tests that build a state and check what its view
// shows).
func ViewState(userID string, st *engine.State, loc *time.Location) *User {
	return viewOf(userID, st, loc)
}

// Override is an operator's fixed quota: it wins over the model until it
// expires.
type Override struct {
	QuotaFen  int64     `json:"quota_fen"`
	Reason    string    `json:"reason"`
	Operator  string    `json:"operator,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Day is the local day number of t in the user's zone.
func (u *User) Day(t time.Time) int {
	return int(engine.LocalDay(u.Zone, t.Unix()))
}

// User reads a user's whole state in one round trip. A user never seen has
// empty maps and a nil Profile.
func (s *Store) User(ctx context.Context, userID string) (*User, error) {
	us, err := s.Users(ctx, []string{userID})
	if err != nil {
		return nil, err
	}
	return us[0], nil
}

// Users reads several users' state in one round trip.
func (s *Store) Users(ctx context.Context, userIDs []string) ([]*User, error) {
	sts, err := s.read(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	out := make([]*User, len(userIDs))
	for i, id := range userIDs {
		if sts[i] == nil {
			return nil, fmt.Errorf("user %s: %w", id, ErrQuarantined)
		}
		out[i] = s.view(id, sts[i])
	}
	return out, nil
}

func unix(t int64) time.Time { return time.Unix(t, 0).UTC() }

// view is the read view of a user's state.
func (s *Store) view(userID string, st *engine.State) *User {
	return viewOf(userID, st, s.ecfg.ZoneOf(st))
}

func viewOf(userID string, st *engine.State, loc *time.Location) *User {
	u := &User{ID: userID, Zone: loc, Outstanding: st.Outstanding,
		Days: make(map[int]DayCounts, len(st.Days)), Months: make(map[int]MonthCounts, len(st.Months)),
		Devices: make(map[string]Place, len(st.Devices)), Cities: make(map[string]Place, len(st.Cities)),
		Bills:         map[string]Bill{},
		FrozenOverdue: st.FrozenOverdue, FrozenJudicial: st.FrozenJudicial, SettledEpisodes: int(st.SettledEpisodes),
		HasQuota: st.HasQuota, QuotaFen: st.QuotaFen, Recomputes: st.Recomputes,
	}
	for _, d := range st.Days {
		u.Days[int(d.Day)] = DayCounts{Payments: int64(d.Payments)}
	}
	for _, m := range st.Months {
		u.Months[int(m.YM)] = MonthCounts{SpendFen: m.SpendFen, SocialN: int64(m.SocialN), LoginDays: int64(m.LoginDays), LoginMask: m.LoginMask}
	}
	for _, p := range st.Devices {
		d := Place{LastDay: int(p.LastDay)}
		for i, c := range p.Logins {
			if d.LoginsByBucket == nil {
				d.LoginsByBucket = make(map[int]int64, len(p.Logins))
			}
			d.LoginsByBucket[int(p.LoginBucket)-i] = int64(c)
			d.Logins += int64(c)
		}
		u.Devices[p.Name] = d
	}
	for _, p := range st.Cities {
		u.Cities[p.Name] = Place{LastDay: int(p.LastDay)}
	}
	for _, b := range st.Bills {
		if b.Status == engine.BillOpen {
			u.Bills[b.ID] = Bill{RemainingFen: b.Amount, DueAt: unix(b.DueAt), Stage: int(b.Stage)}
		}
	}
	for _, e := range st.Episodes {
		u.RecentEpisodes = append(u.RecentEpisodes, Episode{DueAt: unix(e.DueAt), SettledAt: unix(e.SettledAt)})
	}
	if st.CycleDone != 0 {
		u.CycleDone = time.Unix(st.CycleDone, 0)
	}
	if p := st.Profile; p != nil {
		u.Profile = &events.Profile{UserID: userID, PayScore: int(p.PayScore), RealNameVerified: p.RealNameVerified,
			IdentityComplete: p.IdentityComplete, CardBoundSince: p.CardBoundSince, CardBankBlacklisted: p.CardBankBlacklisted,
			WealthBalanceFen: p.WealthBalanceFen, JudicialDefaulter: p.JudicialDefaulter,
			LinkedAccountNegative: p.LinkedAccountNegative, TransactionLimitFen: p.TransactionLimitFen, Timezone: st.Zone,
			PartnerLimitFen: p.PartnerLimitFen, WeilidaiLimitFen: p.WeilidaiLimitFen, AlertThresholdFen: p.AlertThresholdFen,
			SeriousDefaultElsewhereOn: p.DefaultElsewhereOn}
	}
	if o := st.Override; o != nil {
		u.Override = &Override{QuotaFen: o.QuotaFen, Reason: o.Reason, Operator: o.Operator, ExpiresAt: unix(o.ExpiresAt)}
	}
	if sp := st.Special; sp != nil {
		u.Special = &Special{QuotaFen: sp.QuotaFen, Reason: sp.Reason, Operator: sp.Operator, ExpiresAt: unix(sp.ExpiresAt)}
	}
	for _, t := range st.QuotaChecks {
		u.QuotaChecks = append(u.QuotaChecks, time.Unix(t, 0))
	}
	return u
}

// MemoryUsage is Redis's MEMORY USAGE of the user's state, in bytes (0 for
// a user never seen).
func (s *Store) MemoryUsage(ctx context.Context, userID string) (int64, error) {
	n, err := s.rdb.MemoryUsage(ctx, s.userKey(userID), 0).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("state: memory usage of %s: %w", userID, err)
	}
	return n, nil
}

// SetOverride stores an operator override for a user (nil removes it) and
// makes the user's recompute due now, so the new quota is published at once.
func (s *Store) SetOverride(ctx context.Context, userID string, ov *Override) error {
	var eo *engine.Override
	if ov != nil {
		eo = &engine.Override{QuotaFen: ov.QuotaFen, Reason: ov.Reason, Operator: ov.Operator, ExpiresAt: ov.ExpiresAt.Unix()}
	}
	err := s.update(ctx, []string{userID}, func(_ int, st *engine.State) (bool, error) {
		return true, engine.SetOverride(st, eo)
	})
	if err != nil {
		return fmt.Errorf("state: set override of %s: %w", userID, err)
	}
	return s.RecomputeSoon(ctx, s.cfg.Now(), userID)
}

// SetSpecial sets (nil: removes) a user's special temporary quota, the
// pool education and medical purchases draw on (DOMAIN.md §5).
func (s *Store) SetSpecial(ctx context.Context, userID string, sp *Special) error {
	var es *engine.Special
	if sp != nil {
		es = &engine.Special{QuotaFen: sp.QuotaFen, Reason: sp.Reason, Operator: sp.Operator, ExpiresAt: sp.ExpiresAt.Unix()}
	}
	err := s.update(ctx, []string{userID}, func(_ int, st *engine.State) (bool, error) {
		return true, engine.SetSpecial(st, es)
	})
	if err != nil {
		return fmt.Errorf("state: set special quota of %s: %w", userID, err)
	}
	return nil
}

// QuotaCheckWindow is how far back quota checks count (DOMAIN.md §3).
const QuotaCheckWindow = engine.QuotaCheckWindow

// RecordQuotaCheck counts a quota check by the user at now (DOMAIN.md §3:
// repeated checks within 30 days lower the score) and returns how many the
// user made in the last 30 days, this one included.
func (s *Store) RecordQuotaCheck(ctx context.Context, userID string, now time.Time) (int, error) {
	var n int
	err := s.update(ctx, []string{userID}, func(_ int, st *engine.State) (bool, error) {
		n = engine.RecordQuotaCheck(st, now, QuotaCheckWindow)
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("state: record quota check of %s: %w", userID, err)
	}
	return n, nil
}
