package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/state/engine"
)

// The recompute schedule has two parts:
//
//   - the cycle (PhaseKey, CursorKey, LeasesKey): every known user has a
//     fixed phase (see Cycle), written once. A pass claims the users whose
//     phase the clock has passed by moving a shared cursor over the
//     phase index, one batch at a time, and leases the batch (one entry
//     per batch, not per user) until it is saved. Nothing is written per
//     user but the quota itself, so a recompute pass costs little more
//     than reading the users.
//   - triggers (RecomputeKey, RecomputeDueKey): a user whose recompute is
//     due at once (first activity, profile change, freeze or unfreeze, an
//     override ending) is in a sorted set by when, claimed and leased one
//     entry per user like the overdue checks, and removed once recomputed.
//
// Claims serve triggers first.

// claimCycleScript claims the next batch of the cycle, atomically among
// fenqid instances: an expired lease's batch first (its instance died),
// else the next users after the cursor whose phase is due, about limit of
// them, the cursor moved past them and the batch leased. A batch is a
// range of phases, (from, to], sized from the number of known users
// (phases are uniform, so a batch holds limit users give or take a few
// dozen) and so found without walking the index; it holds every user
// sharing its last phase, so the cursor is a phase alone. The caller
// reads the range's members (ZRANGEBYSCORE outside the script: the reply
// is then Redis's own, not a Lua table's).
//
// When the cursor is a cycle behind (fenqid was down past a cycle's end),
// a user is claimed once for the latest of its due times that has passed:
// in the previous cycle only those whose phase is not due again in the
// current one. More than a cycle behind, the cursor starts over at the
// previous cycle.
//
// Reply: {} when nothing is due; {"retag", cursor} when the cursor was
// written under another cycle (the caller carries it over and claims
// again); else {lease field, cycle tag, cycle, from, to}, with a sixth
// element "again" for an expired lease's batch. RecomputeStats counts the
// ranges it would claim: a change to the choice of ranges is a change to
// both.
var claimCycleScript = redis.NewScript(`
local tag, know, reached, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now, deadline = tonumber(ARGV[5]), ARGV[6]
local leases = redis.call("HGETALL", KEYS[3])
for i = 1, #leases, 2 do
  local t, k, lo, hi, untl = string.match(leases[i + 1], "^(%S+) (%S+) (%S+) (%S+) (%S+)$")
  if untl and tonumber(untl) <= now then
    local lk, ours = tonumber(k), t == tag
    -- After a downtime its users may be due again: in the current cycle
    -- those up to reached (the cursor claims them there), more than a
    -- cycle later all of them. A lease ahead of the clock waits.
    if ours and lk == know - 1 and tonumber(reached) > tonumber(lo) then lo = reached end
    if not (ours and lk > know) then
      if not (ours and lk < know - 1) and tonumber(lo) < tonumber(hi)
          and #redis.call("ZRANGEBYSCORE", KEYS[1], "(" .. lo, hi, "LIMIT", 0, 1) > 0 then
        redis.call("HSET", KEYS[3], leases[i], t .. " " .. k .. " " .. lo .. " " .. hi .. " " .. deadline)
        return {leases[i], t, k, lo, hi, "again"}
      end
      redis.call("HDEL", KEYS[3], leases[i])
    end
  end
end
local k, lo
local cur = redis.call("GET", KEYS[2])
if cur then
  local t, ks, f = string.match(cur, "^(%S+) (%S+) (%S+)$")
  if t ~= tag then return {"retag", cur} end
  k, lo = tonumber(ks), f
else
  k, lo = know, reached -- a new schedule begins now
end
if k > know then return {} end -- the clock is behind the cursor
local step = limit / math.max(1, redis.call("ZCARD", KEYS[1]))
if k < know - 1 then k, lo = know - 1, "-1" end
while true do
  local from, hi = lo, "1"
  if k == know then
    hi = reached
  elseif tonumber(reached) > tonumber(lo) then
    from = reached -- due again in the current cycle: claimed there
  end
  -- Slices of the phase range that hold about limit users each (phases
  -- are uniform): counted, not walked.
  while tonumber(from) < tonumber(hi) do
    local to = hi
    local top = math.max(tonumber(from), 0) + step -- phases are in [0, 1)
    if top < tonumber(hi) then to = string.format("%.17g", top) end
    if redis.call("ZCOUNT", KEYS[1], "(" .. from, to) > 0 then
      redis.call("SET", KEYS[2], tag .. " " .. k .. " " .. to)
      local id = tag .. " " .. k .. " " .. from
      redis.call("HSET", KEYS[3], id, tag .. " " .. k .. " " .. from .. " " .. to .. " " .. deadline)
      return {id, tag, tostring(k), from, to}
    end
    from = to
  end
  if k == know then
    if tonumber(hi) > tonumber(lo) or not cur then redis.call("SET", KEYS[2], tag .. " " .. k .. " " .. hi) end
    return {}
  end
  k, lo = know, "-1"
end
`)

// cursorCASScript sets a key to ARGV[2] if it holds ARGV[1].
var cursorCASScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2]) return 1 end
return 0
`)

// doneTriggersScript ends claimed triggers, those still holding the
// claim's lease (ARGV[1]): a trigger made due again meanwhile (a profile
// changed during the recompute) stays. The users join the cycle's index
// if they were not in it (a user seen before the index existed).
// ARGV: lease, then member and phase pairs.
var doneTriggersScript = redis.NewScript(`
local members, phases = {}, {}
for i = 2, #ARGV, 2 do
  members[#members + 1] = ARGV[i]
  phases[#phases + 1] = ARGV[i + 1]
  phases[#phases + 1] = ARGV[i]
end
local scores = redis.call("ZMSCORE", KEYS[1], unpack(members))
local done = {}
for j, cur in ipairs(scores) do
  if cur and tonumber(cur) == tonumber(ARGV[1]) then done[#done + 1] = members[j] end
end
if #done > 0 then redis.call("ZREM", KEYS[1], unpack(done)) end
redis.call("HDEL", KEYS[2], unpack(members))
redis.call("ZADD", KEYS[3], "NX", unpack(phases))
return #done
`)

// knownScript makes users known to the schedule: each one not yet in the
// cycle's index joins it at its phase and gets a trigger due at once
// ("recompute on the user's first activity"), unless it has a trigger
// already: a user scheduled in the layout before the cycle's index keeps
// its due time (ZADD NX). ARGV: now, then member and phase pairs.
var knownScript = redis.NewScript(`
local members = {}
for i = 2, #ARGV, 2 do members[#members + 1] = ARGV[i] end
local scores = redis.call("ZMSCORE", KEYS[1], unpack(members))
local add, due = {}, {}
for j, cur in ipairs(scores) do
  if not cur then
    add[#add + 1] = ARGV[2 * j + 1]
    add[#add + 1] = members[j]
    due[#due + 1] = ARGV[1]
    due[#due + 1] = members[j]
  end
end
if #add > 0 then
  redis.call("ZADD", KEYS[1], "NX", unpack(add))
  redis.call("ZADD", KEYS[2], "NX", unpack(due))
end
return #add / 2
`)

// maxScriptUsers bounds the users of one call of the scripts above, which
// unpack their arguments (Lua's stack holds about 8,000).
const maxScriptUsers = 1000

// Claim is one user whose recompute is claimed.
type Claim struct {
	Member string
	// Due is when the recompute was due: a decision id names it, so a
	// recompute claimed again (its instance died) publishes the same id.
	Due time.Time
	// Next is when the cycle next recomputes the user.
	Next time.Time
}

// RecomputeBatch is a batch of claimed recomputes, to save with
// SaveQuotas: either triggers or a slice of the cycle.
type RecomputeBatch struct {
	Claims []Claim
	lease  string // a cycle batch's lease field; "" for triggers
	again  bool   // a cycle batch claimed again after its lease ran out
	until  int64  // a trigger batch's lease score (Unix seconds)
	// read are the states ReadStates (or ReadBatch) read: SaveQuotas writes over them.
	read map[string]*engine.State
	// unwritten are the claimed users ReadStates found no value of: a
	// trigger's claim of theirs is not ended (see ReadBatch).
	unwritten map[string]bool
}

// ReadBatch reads the claimed users of a batch in one round trip, and
// remembers which of them have a value, which SaveQuotas patches in place.
// A user with no value yet is nil, as a quarantined one is: the schedule
// learns a user (and its first trigger) with the write of its first
// events, in the same round trip but before it, so a claim in between
// finds nothing to compute on. Its trigger's claim is not ended: claimed
// again once its lease runs out, it is computed on the value written by
// then.
func (s *Store) ReadBatch(ctx context.Context, b *RecomputeBatch) ([]*User, error) {
	sts, err := s.ReadStates(ctx, b)
	if err != nil {
		return nil, err
	}
	out := make([]*User, len(sts))
	for i, st := range sts {
		if st != nil {
			out[i] = s.view(b.Claims[i].Member, st)
		}
	}
	return out, nil
}

// ReadStates is ReadBatch without the read views: the claimed users'
// compact states (nil as in ReadBatch), which a recompute computes on
// (see ZoneOf for a state's zone).
func (s *Store) ReadStates(ctx context.Context, b *RecomputeBatch) ([]*engine.State, error) {
	ids := make([]string, len(b.Claims))
	for i, c := range b.Claims {
		ids[i] = c.Member
	}
	sts, err := s.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	b.read = make(map[string]*engine.State, len(ids))
	b.unwritten = nil
	for i, id := range ids {
		switch {
		case sts[i] == nil:
			// quarantined: skipped (nil), its claim ends with the batch
		case sts[i].Rev == 0:
			if b.unwritten == nil {
				b.unwritten = map[string]bool{}
			}
			b.unwritten[id] = true
			sts[i] = nil
		default:
			b.read[id] = sts[i]
		}
	}
	return sts, nil
}

// ZoneOf is the zone a user's state is read in: its profile's, else the
// store's default.
func (s *Store) ZoneOf(st *engine.State) *time.Location { return s.ecfg.ZoneOf(st) }

// Periodic says whether the batch is a slice of the cycle (else triggers).
func (b *RecomputeBatch) Periodic() bool { return b.lease != "" }

// Done says whether a user of a cycle batch claimed again after its lease
// ran out was already recomputed under that lease (its instance saved but
// died before ending the claim, or outlived its lease): skip it.
func (b *RecomputeBatch) Done(c Claim, st *engine.State) bool {
	return b.again && st.CycleDone != 0 && !time.Unix(st.CycleDone, 0).Before(c.Due)
}

// ClaimRecomputes claims about limit users whose recompute is due at now,
// leased until now+lease: up to limit due triggers, else the next slice of
// cycle cyc (a range of phases holding limit users on average). An empty batch means nothing is due. Each due recompute is
// claimed by one caller among many; a batch not saved before its lease
// ends is claimed again.
func (s *Store) ClaimRecomputes(ctx context.Context, now time.Time, limit int, lease time.Duration, cyc Cycle) (*RecomputeBatch, error) {
	until := now.Add(lease)
	cs, err := s.claim(ctx, []string{s.Key(RecomputeKey), s.Key(RecomputeDueKey)}, now, limit, lease)
	if err != nil {
		return nil, err
	}
	if len(cs) > 0 {
		for i := range cs {
			cs[i].Next = cyc.Next(cs[i].Member, now)
		}
		return &RecomputeBatch{Claims: cs, until: until.Unix()}, nil
	}
	if err := cyc.Validate(); err != nil {
		return nil, err
	}
	t := now.Unix()
	k := cyc.index(t)
	args := []any{cyc.tag(), k, fmtPhase(cyc.reached(k, t)), limit, t, until.Unix()}
	keys := []string{s.Key(PhaseKey), s.Key(CursorKey), s.Key(LeasesKey)}
	for range 3 {
		res, err := claimCycleScript.Run(ctx, s.rdb, keys, args...).Slice()
		if err != nil {
			return nil, fmt.Errorf("state: claim recompute cycle: %w", err)
		}
		if len(res) == 2 && res[0] == "retag" {
			if err := s.carryCursor(ctx, fmt.Sprint(res[1]), cyc, t); err != nil {
				return nil, err
			}
			continue
		}
		return s.cycleBatch(ctx, res)
	}
	return nil, errors.New("state: the recompute cursor keeps changing cycle")
}

// cycleBatch reads a claimCycleScript reply and the members of the range
// it claimed.
func (s *Store) cycleBatch(ctx context.Context, res []any) (*RecomputeBatch, error) {
	if len(res) == 0 {
		return &RecomputeBatch{}, nil
	}
	bad := func() error { return fmt.Errorf("state: bad recompute claim reply %v", res) }
	if len(res) != 5 && len(res) != 6 {
		return nil, bad()
	}
	var f [5]string
	for i := range f {
		f[i], _ = res[i].(string)
	}
	cyc, ok := parseCycleTag(f[1])
	k, err := strconv.ParseInt(f[2], 10, 64)
	if !ok || err != nil || f[0] == "" || f[3] == "" || f[4] == "" {
		return nil, bad()
	}
	members, err := s.rdb.ZRangeByScore(ctx, s.Key(PhaseKey), &redis.ZRangeBy{Min: "(" + f[3], Max: f[4]}).Result()
	if err != nil {
		return nil, fmt.Errorf("state: read claimed recompute batch %q: %w", f[0], err)
	}
	b := &RecomputeBatch{lease: f[0], again: len(res) == 6, Claims: make([]Claim, len(members))}
	start, next := cyc.start(k), cyc.start(k+1)
	for i, m := range members {
		off := cyc.offset(Phase(m)) // the index holds each user at Phase(id)
		b.Claims[i] = Claim{Member: m, Due: time.Unix(start+off, 0), Next: time.Unix(next+off, 0)}
	}
	return b, nil
}

// carryCursor rewrites a cursor written under another cycle (the policy
// changed its recompute mode or interval) for cyc: the users due before
// the old cursor's time count as done.
func (s *Store) carryCursor(ctx context.Context, cur string, cyc Cycle, now int64) error {
	next := cyc.tag() + " " + strconv.FormatInt(cyc.index(0), 10) + " -1"
	if old, k, lo, ok := parseCursor(cur); ok {
		// The cursor's time: a phase's due time, or, past the window's end,
		// up to the next cycle's start (calendar quarters leave a gap).
		t := old.due(k, lo)
		if lo >= 1 {
			t = min(now, old.start(k+1))
		}
		nk := cyc.index(t)
		next = cyc.tag() + " " + strconv.FormatInt(nk, 10) + " " + fmtPhase(cyc.reached(nk, t))
	}
	if err := cursorCASScript.Run(ctx, s.rdb, []string{s.Key(CursorKey)}, cur, next).Err(); err != nil {
		return fmt.Errorf("state: carry the recompute cursor over to %v: %w", cyc, err)
	}
	return nil
}

// parseCursor reads CursorKey's value: "<cycle tag> <cycle> <phase>".
func parseCursor(cur string) (cyc Cycle, k int64, phase float64, ok bool) {
	f := strings.Fields(cur)
	if len(f) != 3 {
		return Cycle{}, 0, 0, false
	}
	cyc, ok = parseCycleTag(f[0])
	k, err1 := strconv.ParseInt(f[1], 10, 64)
	phase, err2 := strconv.ParseFloat(f[2], 64)
	return cyc, k, phase, ok && err1 == nil && err2 == nil
}

func fmtPhase(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Quota is a recompute's outcome to save.
type Quota struct {
	UserID   string
	QuotaFen int64
	// Seq is the recompute's number (User.Recomputes+1): the claim is this
	// instance's alone, so it is written as it is.
	Seq int64
	// CycleDone is the user's User.CycleDone to keep: a cycle batch's
	// claim's Due, else the user's as it was read.
	CycleDone time.Time
	// Wake, if set, is a trigger to add (an override ends then).
	Wake time.Time
}

// SaveQuotas stores the quotas of a claimed batch (each patched into its
// user's value: an event applied meanwhile is kept, and a batch computed
// on the value before conflicts and computes again) and then ends its
// claim: a trigger batch's entries are removed (those made
// due again meanwhile stay), a cycle batch's lease is dropped.
func (s *Store) SaveQuotas(ctx context.Context, b *RecomputeBatch, qs []Quota) error {
	if b == nil || len(b.Claims) == 0 {
		return nil
	}
	// Each quota is patched into its user's value in place (SETRANGE of
	// the fixed-width quota and a new write token: a writer that read the
	// value before fails its compare-and-set and computes again, keeping
	// the quota), with no read, no encoding and no script. A user the
	// batch did not read with a value (ReadStates) is written through
	// update.
	var again []int
	pipe := s.rdb.Pipeline()
	for i, q := range qs {
		if b.read[q.UserID] == nil {
			again = append(again, i)
			continue
		}
		pipe.SetRange(ctx, s.userKey(q.UserID), 1, string(engine.QuotaPatch(newRev(), q.QuotaFen, q.Seq, q.CycleDone)))
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("state: save %d quotas: %w", len(qs), err)
		}
	}
	ids := make([]string, len(again))
	for k, i := range again {
		ids[k] = qs[i].UserID
	}
	err := s.update(ctx, ids, func(k int, st *engine.State) (bool, error) {
		q := qs[again[k]]
		engine.SaveQuota(st, q.QuotaFen, q.Seq, q.CycleDone)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("state: save %d quotas: %w", len(qs), err)
	}
	var scriptArgs [][]any
	if !b.Periodic() {
		claims := b.Claims
		if len(b.unwritten) > 0 {
			claims = slices.DeleteFunc(slices.Clone(claims), func(c Claim) bool { return b.unwritten[c.Member] })
		}
		for lo := 0; lo < len(claims); lo += maxScriptUsers {
			part := claims[lo:min(lo+maxScriptUsers, len(claims))]
			a := make([]any, 0, 1+2*len(part))
			a = append(a, b.until)
			for _, c := range part {
				a = append(a, c.Member, fmtPhase(Phase(c.Member)))
			}
			scriptArgs = append(scriptArgs, a)
		}
	}
	exec := func() error {
		pipe := s.rdb.Pipeline()
		if b.Periodic() {
			pipe.HDel(ctx, s.Key(LeasesKey), b.lease)
		}
		for _, a := range scriptArgs {
			doneTriggersScript.EvalSha(ctx, pipe, []string{s.Key(RecomputeKey), s.Key(RecomputeDueKey), s.Key(PhaseKey)}, a...)
		}
		for _, q := range qs {
			if !q.Wake.IsZero() {
				s.dueAt(ctx, pipe, q.Wake, q.UserID)
			}
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err = exec()
	if isNoScript(err) {
		// Redis forgot the scripts (a restart): load them and send it all
		// again; the writes before the script repeat harmlessly.
		if err = s.Load(ctx); err == nil {
			err = exec()
		}
	}
	if err != nil {
		return fmt.Errorf("state: end the claim of %d quotas: %w", len(qs), err)
	}
	return nil
}

// RecomputeGrace is how far ahead a recompute that a batch's events make
// due is scheduled before the batch's state is written: the entry is there
// before the write, so that a crash after the write cannot lose it, but
// not due yet, so that no job claims it and computes on the state before
// the write; once the state is written, it is made due at once. A crash
// between the write and that makes the recompute this much late. (A user
// whose recompute was already due, a job may still claim in between: the
// trigger made due after the write recomputes it again on the new state.)
const RecomputeGrace = time.Minute

// RecomputeSoon makes users' recomputes due at (or before) at, in one
// round trip: a freeze or unfreeze changes eligibility at once.
func (s *Store) RecomputeSoon(ctx context.Context, at time.Time, userIDs ...string) error {
	if len(userIDs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	s.dueAt(ctx, pipe, at, userIDs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: schedule recompute of %d users: %w", len(userIDs), err)
	}
	return nil
}

// dueAt queues on pipe what makes users' recomputes due at (or before) at:
// a new trigger, so a new due time and a new decision id.
func (s *Store) dueAt(ctx context.Context, pipe redis.Pipeliner, at time.Time, userIDs ...string) {
	zs := make([]redis.Z, len(userIDs))
	for i, id := range userIDs {
		zs[i] = redis.Z{Score: float64(at.Unix()), Member: id}
	}
	pipe.ZAddLT(ctx, s.Key(RecomputeKey), zs...)
	pipe.HDel(ctx, s.Key(RecomputeDueKey), userIDs...)
}

// known queues on pipe what makes users known to the schedule (see
// knownScript), in calls of at most maxScriptUsers. EVAL, not EVALSHA:
// these go with the write of the users' first state (which marks them
// known), and a NOSCRIPT here after a Redis restart, with the script's
// reload then failing, would leave users whose state says known and whose
// schedule entries were never made. The body is sent once a batch.
func (s *Store) known(ctx context.Context, pipe redis.Pipeliner, now time.Time, userIDs []string) (cmds []*redis.Cmd) {
	for lo := 0; lo < len(userIDs); lo += maxScriptUsers {
		part := userIDs[lo:min(lo+maxScriptUsers, len(userIDs))]
		args := make([]any, 0, 1+2*len(part))
		args = append(args, now.Unix())
		for _, id := range part {
			args = append(args, id, fmtPhase(Phase(id)))
		}
		cmds = append(cmds, knownScript.Eval(ctx, pipe, []string{s.Key(PhaseKey), s.Key(RecomputeKey)}, args...))
	}
	return cmds
}

// NextRecompute is when the user's quota is next recomputed under cycle
// cyc: a pending trigger, else the cycle's next pass over the user (in
// the past while fenqid catches up after being down); false for a user
// not in the schedule (never seen).
func (s *Store) NextRecompute(ctx context.Context, userID string, cyc Cycle) (time.Time, bool, error) {
	pipe := s.rdb.Pipeline()
	trig := pipe.ZScore(ctx, s.Key(RecomputeKey), userID)
	ph := pipe.ZScore(ctx, s.Key(PhaseKey), userID)
	cur := pipe.Get(ctx, s.Key(CursorKey))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, false, fmt.Errorf("state: next recompute of %s: %w", userID, err)
	}
	var next time.Time
	if f, err := ph.Result(); err == nil {
		if old, k, lo, ok := parseCursor(cur.Val()); ok && old == cyc {
			if f <= lo {
				k++
			}
			next = time.Unix(cyc.due(k, f), 0)
		} else {
			next = cyc.Next(userID, s.cfg.Now())
		}
	}
	if t, err := trig.Result(); err == nil && (next.IsZero() || int64(t) < next.Unix()) {
		next = time.Unix(int64(t), 0)
	}
	if next.IsZero() {
		return time.Time{}, false, nil
	}
	return next.UTC(), true, nil
}

// RecomputeStats counts the users whose recompute is due at now under
// cycle cyc (triggers and the cycle's users past the cursor), and the
// users the cycle knows.
func (s *Store) RecomputeStats(ctx context.Context, now time.Time, cyc Cycle) (due, known int64, err error) {
	pipe := s.rdb.Pipeline()
	trig := pipe.ZCount(ctx, s.Key(RecomputeKey), "-inf", strconv.FormatInt(now.Unix(), 10))
	card := pipe.ZCard(ctx, s.Key(PhaseKey))
	cur := pipe.Get(ctx, s.Key(CursorKey))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("state: count due recomputes: %w", err)
	}
	due, known = trig.Val(), card.Val()
	old, k, lo, ok := parseCursor(cur.Val())
	if !ok || old != cyc {
		return due, known, nil
	}
	// The ranges claimCycleScript would claim: its choice of ranges,
	// written again in Go; a change to one is a change to both.
	t := now.Unix()
	kn := cyc.index(t)
	reached := cyc.reached(kn, t)
	if k > kn { // the clock is behind the cursor: nothing of the cycle is due
		return due, known, nil
	}
	if k < kn-1 {
		k, lo = kn-1, -1
	}
	pipe = s.rdb.Pipeline()
	var counts []*redis.IntCmd
	count := func(from, hi float64) {
		if from < hi {
			counts = append(counts, pipe.ZCount(ctx, s.Key(PhaseKey), "("+fmtPhase(from), fmtPhase(hi)))
		}
	}
	if k < kn {
		count(max(lo, reached), 1)
		lo = -1
	}
	count(lo, reached)
	if len(counts) == 0 {
		return due, known, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("state: count due recomputes: %w", err)
	}
	for _, c := range counts {
		due += c.Val()
	}
	return due, known, nil
}

// RecomputeAll makes every known user's periodic recompute due at now,
// once (after a model change that should reach everyone at once): the
// cursor goes back to the start of the previous cycle, so each user is
// claimed for the latest of its due times that has passed; unsaved
// batches' leases are dropped (their users are claimed again anyway).
func (s *Store) RecomputeAll(ctx context.Context, now time.Time, cyc Cycle) error {
	if err := cyc.Validate(); err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.Key(CursorKey), cyc.tag()+" "+strconv.FormatInt(cyc.index(now.Unix())-1, 10)+" -1", 0)
	pipe.Del(ctx, s.Key(LeasesKey))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: make every recompute due: %w", err)
	}
	return nil
}
