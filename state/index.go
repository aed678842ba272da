package state

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The two schedules are sorted sets scored by unix seconds, so the due
// entries are found with one range query, never a key scan.
const (
	// TimersKey holds one member per open bill's next overdue check:
	// member = timerMember(user, bill), score = when to check.
	TimersKey = "fenqi:timers"
	// RecomputeKey holds the recompute triggers: member = user id, score =
	// when the recompute is due (first activity, a profile, a freeze or
	// unfreeze, an override's end); the entry is removed once recomputed.
	RecomputeKey = "{fenqi:recompute}"
	// RecomputeDueKey remembers, while a trigger is claimed, when it was
	// originally due (member = user id): a recompute claimed again after
	// its lease ran out (the instance died) keeps its due time, and so its
	// decision id. The recompute keys share one hash tag (one cluster slot).
	RecomputeDueKey = "{fenqi:recompute}:due"
	// PhaseKey indexes every known user for the periodic recompute:
	// member = user id, score = its phase in [0, 1) (see Cycle). Written
	// once per user, never moved.
	PhaseKey = "{fenqi:recompute}:phase"
	// CursorKey is how far the periodic recompute has claimed:
	// "<cycle tag> <cycle number> <phase>".
	CursorKey = "{fenqi:recompute}:cursor"
	// LeasesKey holds the claimed, unsaved batches of the cycle: field =
	// "<cycle tag> <cycle> <phase from>", value = "<cycle tag> <cycle>
	// <phase from> <phase to> <lease end>" (phases from excluded, to
	// included).
	LeasesKey = "{fenqi:recompute}:leases"
	// EpochsKey holds the input topics' offset epochs: field = topic index,
	// value = epoch (see Store.RaiseEpoch).
	EpochsKey = "fenqi:epochs"
	// QuarantineKey is a hash of the users whose state cannot be read
	// (user id → when and why; see Store.Quarantined): their events are
	// dead-lettered and the jobs skip them until an operator repairs or
	// deletes the value and removes the entry.
	QuarantineKey = "fenqi:quarantine"
)

// timerMember joins a user id and a bill id unambiguously.
func timerMember(userID, billID string) string {
	return strconv.Itoa(len(userID)) + ":" + userID + billID
}

// splitTimerMember is the inverse of timerMember.
func splitTimerMember(m string) (userID, billID string, ok bool) {
	n := 0
	i := 0
	for i < len(m) && m[i] >= '0' && m[i] <= '9' {
		n = n*10 + int(m[i]-'0')
		i++
	}
	if i == 0 || i >= len(m) || m[i] != ':' || len(m) < i+1+n {
		return "", "", false
	}
	return m[i+1 : i+1+n], m[i+1+n:], true
}

// indexUpdates queues, before a batch's compare-and-set, the schedule
// entries its applied events imply (a repeat implies none: its entries were
// made the first time). They are idempotent, so a batch written again
// after a conflict or a crash changes nothing more:
//   - a user with no state before becomes known to the recompute
//     schedule, with a trigger due at once ("recompute on the user's first
//     activity"; see knownScript);
//   - a profile, and an operator's override set or cleared
//     (Outcome.RecomputeNow), make the user's recompute due RecomputeGrace
//     from now (ZADD LT), and Commit makes it due at once after the write;
//   - a bill falling due gets an overdue check one day after its due time
//     (ZADD NX: a check already scheduled, maybe advanced, is kept).
//
// Queued before the write, they may outlive a write that fails (a
// conflict): the worst is a recompute sooner than needed.
func (s *Store) indexUpdates(ctx context.Context, pipe redis.Pipeliner, b *Batch) []*redis.Cmd {
	now := s.cfg.Now()
	cmds := s.known(ctx, pipe, now, b.newUsers)
	for i, it := range b.items {
		if e := it.Event; b.Outcomes[i].Status == Applied && e.Due != nil {
			first := e.Due.DueAt.Add(24 * time.Hour).Unix()
			pipe.ZAddNX(ctx, s.Key(TimersKey), redis.Z{Score: float64(first), Member: timerMember(e.UserID(), e.Due.BillID)})
		}
	}
	if due := b.recomputeNow(); len(due) > 0 {
		s.dueAt(ctx, pipe, now.Add(RecomputeGrace), due...)
	}
	return cmds
}

// recomputeNow is the users whose recompute the batch's applied events
// make due at once: a profile, an override set or cleared.
func (b *Batch) recomputeNow() []string {
	var users []string
	for i, it := range b.items {
		if b.Outcomes[i].Status == Applied && (it.Event.Profile != nil || b.Outcomes[i].RecomputeNow) {
			users = append(users, it.Event.UserID())
		}
	}
	return users
}
