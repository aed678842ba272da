package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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
	cs, err := s.claim(ctx, []string{TimersKey}, now, limit, lease)
	if err != nil {
		return nil, err
	}
	out := make([]TimerClaim, 0, len(cs))
	for _, c := range cs {
		u, b, ok := splitTimerMember(c.Member)
		if !ok {
			// Not ours to interpret; drop it so it cannot block the schedule.
			if err := s.rdb.ZRem(ctx, TimersKey, c.Member).Err(); err != nil {
				return nil, fmt.Errorf("state: drop bad timer %q: %w", c.Member, err)
			}
			continue
		}
		out = append(out, TimerClaim{UserID: u, BillID: b, Due: c.Due})
	}
	return out, nil
}

// advanceScript records that a bill's overdue check reached a stage, if the
// bill is still open, and freezes the user when asked. It returns -1 when
// the bill is gone (settled since it was read), else 1 when this call froze
// the user, else 0.
var advanceScript = redis.NewScript(`
local cur = redis.call("HGET", KEYS[1], ARGV[1])
if not cur or string.sub(cur, 1, 1) == "P" or string.sub(cur, 1, 1) == "S" then return -1 end
local rem, due, stage = string.match(cur, "^(%-?%d+):(%-?%d+):(%d+)$")
if tonumber(ARGV[2]) > tonumber(stage) then
  redis.call("HSET", KEYS[1], ARGV[1], rem .. ":" .. due .. ":" .. ARGV[2])
end
if ARGV[3] == "1" and redis.call("HGET", KEYS[2], "fz") ~= "1" then
  redis.call("HSET", KEYS[2], "fz", "1")
  return 1
end
return 0
`)

// ErrBillGone says the bill was settled (or never opened) when the check
// tried to advance it.
var ErrBillGone = errors.New("state: bill no longer open")

// AdvanceBill records that the overdue check of a bill reached stage and,
// with freeze, marks the user frozen; then it schedules the next check at
// next (or ends the bill's checks when next is zero). It returns whether
// this call froze the user, and ErrBillGone (with the timer removed) when
// the bill was settled meanwhile.
func (s *Store) AdvanceBill(ctx context.Context, userID, billID string, stage int, freeze bool, next time.Time) (froze bool, err error) {
	k := userKeys(userID)
	fz := "0"
	if freeze {
		fz = "1"
	}
	member := timerMember(userID, billID)
	n, err := advanceScript.Run(ctx, s.rdb, []string{k[keyBills], k[keyMeta]}, billID, stage, fz).Int()
	if err != nil {
		return false, fmt.Errorf("state: advance bill: %w", err)
	}
	if n < 0 || next.IsZero() {
		if err := s.DropTimers(ctx, TimerClaim{UserID: userID, BillID: billID}); err != nil {
			return false, err
		}
		if n < 0 {
			return false, ErrBillGone
		}
		return n == 1, nil
	}
	if err := s.rdb.ZAddXX(ctx, TimersKey, redis.Z{Score: float64(next.Unix()), Member: member}).Err(); err != nil {
		return false, fmt.Errorf("state: schedule bill timer: %w", err)
	}
	return n == 1, nil
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
	if err := s.rdb.ZRem(ctx, TimersKey, members...).Err(); err != nil {
		return fmt.Errorf("state: drop %d bill timers: %w", len(timers), err)
	}
	return nil
}

// OpenBills reads the bill of each claimed check in one round trip: nil
// where the bill is no longer open.
func (s *Store) OpenBills(ctx context.Context, claims []TimerClaim) ([]*Bill, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(claims))
	for i, c := range claims {
		cmds[i] = pipe.HGet(ctx, userKeys(c.UserID)[keyBills], c.BillID)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("state: read %d bills: %w", len(claims), err)
	}
	out := make([]*Bill, len(claims))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		b, open, err := parseBill(v)
		if err != nil {
			return nil, fmt.Errorf("%w of %s", err, claims[i].UserID)
		}
		if open {
			out[i] = &b
		}
	}
	return out, nil
}

// ScheduleStats counts a schedule's entries: due now, and in all.
func (s *Store) ScheduleStats(ctx context.Context, key string, now time.Time) (due, total int64, err error) {
	pipe := s.rdb.Pipeline()
	d := pipe.ZCount(ctx, key, "-inf", strconv.FormatInt(now.Unix(), 10))
	t := pipe.ZCard(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("state: count %s: %w", key, err)
	}
	return d.Val(), t.Val(), nil
}
