package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/state/engine"
)

// claimScript takes the due members of a schedule and pushes each one's
// score to the end of a lease, in one atomic step: among several fenqid
// instances, each due entry goes to exactly one of them. An instance that
// dies before finishing leaves the entry to be claimed again when the lease
// ends: late, never lost.
//
// With a second key (a hash), a claimed entry's original due time is kept
// there until the work is saved, and reported instead of the lease time
// when the entry is claimed again after its lease ran out.
var claimScript = redis.NewScript(`
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, tonumber(ARGV[2]))
if #due == 0 then return due end
local lease = {}
for i = 1, #due, 2 do
  lease[#lease + 1] = ARGV[3]
  lease[#lease + 1] = due[i]
end
if KEYS[2] then
  local members = {}
  for i = 1, #due, 2 do members[#members + 1] = due[i] end
  local orig = redis.call("HMGET", KEYS[2], unpack(members))
  local keep = {}
  for j, o in ipairs(orig) do
    if o then
      due[2 * j] = o
    else
      keep[#keep + 1] = due[2 * j - 1]
      keep[#keep + 1] = due[2 * j]
    end
  end
  if #keep > 0 then redis.call("HSET", KEYS[2], unpack(keep)) end
end
redis.call("ZADD", KEYS[1], "XX", unpack(lease))
return due
`)

// claim takes up to limit entries of key due at now, leasing them until
// now+lease.
func (s *Store) claim(ctx context.Context, keys []string, now time.Time, limit int, lease time.Duration) ([]Claim, error) {
	key := keys[0]
	// The script unpacks its entries (Lua's stack holds about 8,000): a
	// larger batch is claimed a part at a time.
	limit = min(limit, maxScriptUsers)
	res, err := claimScript.Run(ctx, s.rdb, keys,
		now.Unix(), limit, now.Add(lease).Unix()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("state: claim due entries of %s: %w", key, err)
	}
	out := make([]Claim, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		sc, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("state: bad score %q in %s: %w", res[i+1], key, err)
		}
		out = append(out, Claim{Member: res[i], Due: time.Unix(int64(sc), 0)})
	}
	return out, nil
}

// TimerClaim is a claimed overdue check of one bill.
type TimerClaim struct {
	UserID, BillID string
	Due            time.Time // when the check was due
}

// ClaimTimers claims the overdue checks due at now.
func (s *Store) ClaimTimers(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]TimerClaim, error) {
	cs, err := s.claim(ctx, []string{s.Key(TimersKey)}, now, limit, lease)
	if err != nil {
		return nil, err
	}
	out := make([]TimerClaim, 0, len(cs))
	for _, c := range cs {
		u, b, ok := splitTimerMember(c.Member)
		if !ok {
			// Not ours to interpret; drop it so it cannot block the schedule.
			if err := s.rdb.ZRem(ctx, s.Key(TimersKey), c.Member).Err(); err != nil {
				return nil, fmt.Errorf("state: drop bad timer %q: %w", c.Member, err)
			}
			continue
		}
		out = append(out, TimerClaim{UserID: u, BillID: b, Due: c.Due})
	}
	return out, nil
}

// ErrBillGone says the bill was settled (or never opened) when the check
// tried to advance it.
var ErrBillGone = engine.ErrBillGone

// BillStep is an overdue check's step to record: its bill reached Stage
// and, with Freeze, freezes its user.
type BillStep struct {
	UserID, BillID string
	Stage          int
	Freeze         bool
}

// BillResult is what recording a step did: Froze when it froze the user
// (not frozen before), Gone when the bill was no longer open (settled
// since it was read: nothing written for it).
type BillResult struct{ Froze, Gone bool }

// AdvanceBills records overdue checks' steps in their users' state, each
// user read and written once with the compare-and-set (so a repayment
// applied meanwhile is kept and decides). Publish the steps' decisions
// after it, then call ScheduleBills.
func (s *Store) AdvanceBills(ctx context.Context, steps []BillStep) ([]BillResult, error) {
	out := make([]BillResult, len(steps))
	var users []string
	of := map[string][]int{} // user -> its steps, in order
	for i, st := range steps {
		if _, ok := of[st.UserID]; !ok {
			users = append(users, st.UserID)
		}
		of[st.UserID] = append(of[st.UserID], i)
	}
	err := s.update(ctx, users, func(k int, st *engine.State) (bool, error) {
		write := false
		for _, i := range of[users[k]] {
			froze, err := engine.AdvanceBill(st, steps[i].BillID, steps[i].Stage, steps[i].Freeze)
			switch {
			case errors.Is(err, engine.ErrBillGone):
				out[i] = BillResult{Gone: true}
			case err != nil:
				return false, err
			default:
				out[i], write = BillResult{Froze: froze}, true
			}
		}
		return write, nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: advance %d bills: %w", len(steps), err)
	}
	return out, nil
}

// AdvanceBill is AdvanceBills for one step: it returns whether it froze
// the user, or ErrBillGone.
func (s *Store) AdvanceBill(ctx context.Context, userID, billID string, stage int, freeze bool) (froze bool, err error) {
	res, err := s.AdvanceBills(ctx, []BillStep{{UserID: userID, BillID: billID, Stage: stage, Freeze: freeze}})
	if err != nil {
		return false, err
	}
	if res[0].Gone {
		return false, ErrBillGone
	}
	return res[0].Froze, nil
}

// NextCheck is when a bill's overdue check comes next (zero: no more).
type NextCheck struct {
	UserID, BillID string
	Next           time.Time
}

// ScheduleBills moves bills' next overdue checks, in one round trip.
func (s *Store) ScheduleBills(ctx context.Context, checks []NextCheck) error {
	if len(checks) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, c := range checks {
		member := timerMember(c.UserID, c.BillID)
		if c.Next.IsZero() {
			pipe.ZRem(ctx, s.Key(TimersKey), member)
		} else {
			pipe.ZAddXX(ctx, s.Key(TimersKey), redis.Z{Score: float64(c.Next.Unix()), Member: member})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: schedule %d bill timers: %w", len(checks), err)
	}
	return nil
}

// ReleaseTimers ends the leases of claimed checks that this instance could
// not work (a Redis or Kafka fault mid-batch): each is due again at its due
// time, so that the retry claims it at once instead of after the lease. A
// check already moved on or removed is left as it is (ZADD XX LT: only an
// existing entry, only to an earlier time).
func (s *Store) ReleaseTimers(ctx context.Context, claims []TimerClaim) error {
	if len(claims) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, c := range claims {
		pipe.ZAddArgs(ctx, s.Key(TimersKey), redis.ZAddArgs{XX: true, LT: true,
			Members: []redis.Z{{Score: float64(c.Due.Unix()), Member: timerMember(c.UserID, c.BillID)}}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: release %d bill timers: %w", len(claims), err)
	}
	return nil
}

// OpenBills reads the bill of each claimed check in one round trip: nil
// where the bill is no longer open.
func (s *Store) OpenBills(ctx context.Context, claims []TimerClaim) ([]*Bill, error) {
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.UserID
	}
	sts, err := s.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*Bill, len(claims))
	for i, c := range claims {
		if sts[i] == nil {
			out[i] = &Bill{Quarantined: true}
			continue
		}
		if b := sts[i].OpenBill(c.BillID); b != nil {
			out[i] = &Bill{RemainingFen: b.Amount, DueAt: unix(b.DueAt), Stage: int(b.Stage)}
		}
	}
	return out, nil
}

// ScheduleStats counts a schedule's entries: due now, and in all.
func (s *Store) ScheduleStats(ctx context.Context, key string, now time.Time) (due, total int64, err error) {
	key = s.Key(key) // TimersKey or RecomputeKey, in this store's namespace
	pipe := s.rdb.Pipeline()
	d := pipe.ZCount(ctx, key, "-inf", strconv.FormatInt(now.Unix(), 10))
	t := pipe.ZCard(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("state: count %s: %w", key, err)
	}
	return d.Val(), t.Val(), nil
}
