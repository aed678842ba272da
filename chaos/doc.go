// Package chaos is fenqi's own crash-and-restart suite (issue 14).
//
// Its tests build the real fenqid binary and run it as a process, one or
// two instances in one consumer group, against a kfake broker that runs in
// a process of its own on a data dir (chaos/internal/broker, so that it can
// be killed and started again on the same address and data) and a
// redis-server with an append-only file fsynced on every write. They write
// a known workload into the input topics — payments, logins, bills falling
// due and paid, profiles, upstream re-sends, bills that freeze their user
// and bills that unfreeze them, malformed records — inject faults while it
// is processed, and compare the final state and the decisions with those
// of a fault-free run of the same input: nothing lost, nothing doubled,
// every decision of the clean run present, and how many decision ids were
// published more than once. For each fault they measure the recovery: from
// the moment the fault ends (the process restarted, Redis or the broker
// back) to the group's lag at 0 and a decision caused by a record written
// after the fault seen on the decisions topic (and, separately, to the
// freeze of a bill written after the fault: the overdue checks working).
//
// Settings: FENQI_CHAOS_ONLY=<part of a fault's name> runs one fault;
// FENQI_CHAOS_<FAULT>_TIMES (SIGKILL, SIGTERM, REDIS_KILL, BROKER_KILL,
// SECOND_KILL, REDIS_AWAY, REDIS_SLEEP, PARTITION) how often each is
// injected; FENQI_CHAOS_REDIS_AWAY, _REDIS_SLEEP, _PARTITION their length
// in seconds; FENQI_CHAOS_USERS the workload's users;
// FENQI_CHAOS_KEEP=1 keeps each run's logs and data (the path is logged);
// FENQI_CHAOS_REPORT=<file> writes the table there too.
//
//	go test ./chaos/                       the short suite (part of make test)
//	FENQI_CHAOS=long go test -v ./chaos/   every fault, several times (make chaos)
//
// The workload is arranged so that a fault-free run is deterministic even
// though fenqid consumes four topics concurrently and runs its overdue
// checks on the clock: each user's events of one phase are on one topic
// (profiles, then logins, then payments, then bills), and the suite waits
// for the group to have committed everything before it writes the next
// phase; the repayments that settle frozen bills are written only once
// every bill that must freeze has frozen; payments are paid with the
// user's own funds (no installments), since whether a credit purchase is
// accepted depends on the quota saved by the user's last recompute, which
// runs on the clock. Quota decisions are the one kind
// whose ids and values depend on when the recompute ran (their id names
// the time the recompute was due): for them the suite checks that every
// user the clean run gave a quota has one, and compares the quota the
// model gives each user's final state at a fixed time.
package chaos
