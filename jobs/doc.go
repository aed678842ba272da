// Package jobs runs fenqi's time-driven work: the work that must happen
// when nothing arrives.
//
//   - Overdue checks: a bill still open 1, 2 and 3 days after its due time
//     gets a reminder (fenqi.decision.overdue.v1); open more than the
//     policy's freeze threshold (3 days), the user is frozen
//     (fenqi.decision.frozen.v1). Settling the last overdue bill unfreezes
//     (published by the consumer, which sees the repayment). Overdue is
//     judged on the stream, not only on the clock: with
//     Config.Watermark, checks are due and days overdue counted at
//     min(now, the time up to which the repayments topic is processed),
//     so that no reminder or freeze goes out for a bill whose repayment
//     still waits on the topic (after a downtime, a backlog, a replay).
//   - Quota recomputes: every known user is recomputed once per cycle
//     (default every 90 days, or in the first 7 days of each calendar
//     quarter), at a time spread across the cycle by a hash of the user id
//     (state.Cycle), and at once on first activity, on a profile change, on
//     a freeze or unfreeze and when an override ends; each publishes
//     fenqi.decision.quota.v1.
//
// In: the schedules in Redis (state.TimersKey, the recompute triggers
// state.RecomputeKey and the cycle's phase index state.PhaseKey) and
// users' state. Out: decisions, and the schedules moved on.
//
// Due work is claimed atomically with a lease (state.Store.Claim*): each
// overdue check and each trigger alone, the cycle a batch at a time by
// moving a shared cursor over the phase index. With several fenqid
// instances each is worked by one of them; an instance that dies leaves
// its claims to be claimed again when the lease ends. Work missed while
// every instance was down is due the moment one comes back: late, never
// lost (after a downtime longer than a cycle, once per user). Decisions
// are published before the schedule moves on, and their ids are stable,
// so a retried step publishes the same ids again (at least once, never
// lost).
package jobs
