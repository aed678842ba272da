// Package jobs runs fenqi's time-driven work: the work that must happen
// when nothing arrives.
//
//   - Overdue checks: a bill still open 1, 2 and 3 days after its due time
//     gets a reminder (fenqi.decision.overdue.v1); open more than the
//     policy's freeze threshold (3 days), the user is frozen
//     (fenqi.decision.frozen.v1). Settling the last overdue bill unfreezes
//     (published by the consumer, which sees the repayment).
//   - Quota recomputes: every known user is recomputed once per cycle
//     (default every 90 days, or at the start of each calendar quarter),
//     at a time spread across the cycle by a hash of the user id, and at
//     once on first activity, on a profile change and on a freeze or
//     unfreeze; each publishes fenqi.decision.quota.v1.
//
// In: the two schedules in Redis (sorted sets scored by due time; see
// state.TimersKey and state.RecomputeKey) and users' state. Out: decisions,
// and the schedules moved on.
//
// Each due entry is claimed atomically with a lease (state.Store.Claim*),
// so with several fenqid instances each entry is worked by one of them;
// an instance that dies leaves its entries to be claimed again when the
// lease ends. Entries missed while every instance was down are due the
// moment one comes back: late, never lost. Decisions are published before
// the schedule moves on, and their ids are stable, so a retried step
// publishes the same ids again (at least once, never lost).
package jobs
