// Package state keeps fenqi's per-user state in Redis.
//
// In: batches of decoded events with their Kafka coordinates (Item).
// Out: for each event, whether it was applied, was a repeat or was refused,
// and the facts the rules need that only the state before the event can
// tell (Outcome); read views of a user's state (User) for scoring and
// explanations; and the schedules of the overdue checks and recomputes.
//
// # One value per user
//
// A user's whole state is one Redis string, {u:<user id>} (behind
// Config.Prefix), under the user's own hash tag so that Redis Cluster
// places it by user. The value is the binary encoding of engine.State
// (package state/engine): a version byte, an 8-byte write token, the last
// saved quota at fixed width (so that SaveQuotas patches it in place with
// SETRANGE and a new token), then varint-packed lists, each bounded
// (engine's limits, each tested):
//
//   - daily payment counts over the activity window (Config.Days, from the
//     policy), monthly spend, social count and login days (Config.Months
//     full months and the current one);
//   - devices and cities seen in the other-city window (Config.GeoDays, at
//     most Config.GeoMax together), the 15 latest payment times and the 5
//     latest logins from another city;
//   - the last offset applied per (input topic, partition) with its epoch
//     (at most 16 partitions), and the fingerprints of the user's 32 latest
//     events' (source, id);
//   - bills (at most 32: open, prepaid, or settled within 90 days), with the
//     repayments applied to each, their overdue stage and whether they
//     froze the user; overdue history; the profile's fields the model reads;
//   - an override and the quota checks; whether the recompute schedule
//     knows the user (set by its first applied event).
//
// A typical user takes about 700 bytes of Redis memory, and about 900 with
// its share of the schedules (TestMemoryPerUser asserts ≤ 1,024).
//
// # Apply in Go, write with a compare-and-set
//
// Prepare reads the users of a batch in one round trip (MGET; a GET per
// user in a cluster), applies the events in Go (engine.Apply: pure, no
// I/O) and encodes the new values; nothing is written. Commit writes them
// in one round trip, each only if the stored value still carries the token
// it was read with (a few lines of Lua, casScript), with the schedule
// entries the applied events imply queued before it. A user whose value
// changed meanwhile is not written: Commit names it (ConflictError) and
// the caller computes that user's events again from the fresh value
// (Reprepare). Jobs change users through the same compare-and-set (the
// overdue stage and freeze, the saved quota). Overrides, special quotas
// and quota checks are events (fenqi.operator.v1, on the operator topic,
// index 5) applied like the others; an override set or cleared
// (Outcome.RecomputeNow) makes the recompute due at once.
//
// Drafts chain batches: a batch prepared while the one before it is not
// yet written starts from that batch's computed states, not from Redis;
// a conflict makes the batches computed on the lost draft stale, and a
// stale batch is computed again before its decisions are published.
//
// # Exactly once
//
// An event is applied once per (topic, partition, offset): its offset at
// or below the last applied on its partition in the same epoch makes it
// Redelivered, and every partition a user was seen on is remembered. A
// topic whose offsets start over gets a new epoch (RaiseEpoch; fenqictl
// epoch) so that its events count as new; a redelivery not among the
// user's latest events is flagged Unknown, the sign of a reset whose epoch
// was not raised. An upstream retry, the same CloudEvents (source, id)
// again, is Duplicate while among the user's 32 latest events, and for a
// repayment while its bill is kept (its repayments' fingerprints stay
// with the bill). The pipeline's order — read, compute, publish and wait
// for the acks, write, commit offsets — makes a redelivered event computed
// again from the very state it was first computed from, so that it yields
// the same decisions with the same ids; once its state is written, its
// decisions are out, and a redelivery publishes nothing (see package
// consumers).
//
// The schedules are global keys (index.go): fenqi:timers, a sorted set of
// the overdue checks of open bills scored by due time; {fenqi:recompute},
// the triggered quota recomputes scored by due time; and the periodic
// recompute's cycle (recompute.go): {fenqi:recompute}:phase, every known
// user at its fixed phase, written once, {fenqi:recompute}:cursor, how far
// the cycle has been claimed, and {fenqi:recompute}:leases, the batches
// claimed and not yet saved; fenqi:epochs, the input topics' offset epochs.
//
// Days and months are in the user's time zone (the profile's timezone,
// Asia/Shanghai by default), at each event's own offset.
package state
