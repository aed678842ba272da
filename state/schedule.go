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

// AdvanceBill records in the user's state that the overdue check of a
// bill reached stage and, with freeze, freezes the user for it (written
// with the compare-and-set, so a repayment applied meanwhile is kept and
// decides). It returns whether this call froze the user, or ErrBillGone
// when the bill was settled meanwhile (nothing written). Publish the
// check's decision after it, then call ScheduleBill.
func (s *Store) AdvanceBill(ctx context.Context, userID, billID string, stage int, freeze bool) (froze bool, err error) {
	var gone bool
	err = s.update(ctx, []string{userID}, func(_ int, st *engine.State) (bool, error) {
		var err error
		froze, err = engine.AdvanceBill(st, billID, stage, freeze)
		gone = errors.Is(err, engine.ErrBillGone)
		if gone {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return false, fmt.Errorf("state: advance bill %s of %s: %w", billID, userID, err)
	}
	if gone {
		return false, ErrBillGone
	}
	return froze, nil
}

// ScheduleBill moves a bill's next overdue check to next, or ends its
// checks when next is zero.
func (s *Store) ScheduleBill(ctx context.Context, userID, billID string, next time.Time) error {
	if next.IsZero() {
		return s.DropTimers(ctx, TimerClaim{UserID: userID, BillID: billID})
	}
	member := timerMember(userID, billID)
	if err := s.rdb.ZAddXX(ctx, s.Key(TimersKey), redis.Z{Score: float64(next.Unix()), Member: member}).Err(); err != nil {
		return fmt.Errorf("state: schedule bill timer: %w", err)
	}
	return nil
}

// DropTimers removes bills' overdue checks (the bills are gone), in one
// call.
func (s *Store) DropTimers(ctx context.Context, timers ...TimerClaim) error {
	if len(timers) == 0 {
		return nil
	}
	members := make([]any, len(timers))
	for i, t := range timers {
		members[i] = timerMember(t.UserID, t.BillID)
	}
	if err := s.rdb.ZRem(ctx, s.Key(TimersKey), members...).Err(); err != nil {
		return fmt.Errorf("state: drop %d bill timers: %w", len(timers), err)
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
