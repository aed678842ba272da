// Package state keeps fenqi's per-user rolling state in Redis.
//
// In: batches of decoded events with their Kafka coordinates (Item).
// Out: for each event, whether it was applied or was a repeat, and the facts
// the rules need that only the state before the event can tell (Outcome);
// and read views of a user's state (User) for scoring and explanations.
//
// Layout. Every key of a user is under the hash tag {u:<user id>}, so one
// user's keys live in one Redis Cluster slot and a script may touch them all:
//
//	{u:ID}:a  hash   "d<day>" daily buckets (last 35 local days) and
//	                 "m<yyyymm>" monthly buckets (last 6 full months and the
//	                 current one); each value packs the counters
//	                 "spendN:spendFen:socialN:socialFen:finN:finFen:logins"
//	                 (months add ":loginDays:loginDayMask"); and the places
//	                 of the last 90 days: "c:<city>" = last login day,
//	                 "d:<device>" = "last day:logins" (at most 48)
//	{u:ID}:m  hash   meta: last applied offset per input topic ("o<t>" =
//	                 "partition:offset"), time zone name and offset, prune
//	                 day, own limit, freeze flags, latest other-city login
//	                 and the 4 before it, overdue history, quota, recompute
//	                 count, override
//	{u:ID}:x  string "<payment times>|<dedup ring>": the times of the last 15
//	                 payments (6 base-36 digits each, newest first), then for
//	                 each of the last 32 events its id's fingerprint and the
//	                 facts it had when applied (13 characters each)
//	{u:ID}:p  string the latest profile (JSON)
//	{u:ID}:b  hash   open bills: bill id = "remaining fen:due unix time:timer stage";
//	                 a bill repaid before its due event arrived (upstream may send
//	                 the two in either order) is "P<paid fen>:<unix time>" until it does,
//	                 then counts against the amount due; a settled bill is
//	                 "S<unix time>", so that a due event re-sent after settlement
//	                 opens nothing; both are dropped after 90 days
//
// The schedules are global keys (index.go): fenqi:timers, a sorted set of
// the overdue checks of open bills scored by due time; {fenqi:recompute},
// the triggered quota recomputes scored by due time; and the periodic
// recompute's cycle (recompute.go): {fenqi:recompute}:phase, every known
// user at its fixed phase, written once, {fenqi:recompute}:cursor, how far
// the cycle has been claimed, and {fenqi:recompute}:leases, the batches
// claimed and not yet saved. Meta "q" is the last saved recompute:
// "<quota fen>:<recompute count>:<due time of the last periodic one>".
//
// Days and months are in the user's time zone (the profile's timezone,
// Asia/Shanghai by default). A user's zone offset is taken when the profile
// arrives; for zones with daylight saving time the buckets follow the offset
// of that moment until the next profile (rules that need the exact local
// time, such as the night window, use the zone itself).
//
// Every value is a few counters, so the hashes stay in Redis's compact
// listpack encoding (under 64 bytes a value, under 128 entries). A user
// with six months of typical activity takes about 2.9 KB
// (TestMemoryPerUser prints it).
//
// Exactly once. Apply is idempotent: an event whose offset is at or below
// the last offset applied for the user on that topic-partition is a
// redelivery (status Redelivered), and an event whose id is among the
// user's last 32 event ids is an upstream duplicate (status Duplicate);
// neither changes a counter. A redelivered event gets back the facts it had
// the first time (new city or device, payments seen, freeze transitions),
// so it yields the same decisions with the same ids. Both checks live in the user's own bounded
// keys, so nothing grows per event. A batch may therefore be retried whole
// after any failure.
//
// The facts come from the event's dedup-ring entry. A user with more than
// 32 events in flight (applied, not yet committed) when a consumer dies
// has the oldest ones' entries pushed out; such an event, redelivered, still
// gets the payment times before it that are among the last 15 kept, and the
// other-city login before it (from the latest five), so its payment rules
// decide as before unless later payments pushed the times it saw out; a
// login no longer knows that its city or device was new.
//
// Round trips. Apply sends one Lua script per batch (one per cluster slot
// group in Redis Cluster, pipelined), never one per event.
package state
