// Package consumers runs fenqi's processing loop: Kafka in, decisions out.
//
// In: records of the input topics, read with a kafka-go consumer group.
// Out: users' state written to Redis (package state), decisions and dead letters
// published (package producers), offsets committed.
//
// One batch at a time, in this order:
//
//  1. fetch up to BatchSize records (FetchMessage): after the first, what
//     comes while the batch before is still in steps 5–7, and BatchWait at
//     most, so that an idle pipeline sends a record at once and a busy one
//     batches;
//  2. decode and validate each; a bad record becomes a dead letter;
//  3. read the users' state (one round trip; or the state the batch before
//     left, not yet written) and compute the events on it in Go
//     (state.Store.Prepare): nothing is written yet;
//  4. evaluate the rules on each event applied (scoring); a redelivered
//     event (its state already written) decides nothing: its decisions
//     were published before its state was written;
//  5. publish the decisions and dead letters and wait for the broker's
//     acknowledgement from all in-sync replicas;
//  6. write the users' state with a compare-and-set (state.Store.Commit),
//     and make the recomputes scheduled in 5 (a freeze, an unfreeze) due
//     again: a job may have claimed one in between, on the state before;
//  7. commit the batch's offsets, once.
//
// Steps 1–4 of batch N+1 run while steps 5–7 of batch N do (two stages,
// the second in one goroutine so writes and commits stay in order). The
// CPU-bound parts of steps 2–4 (decoding, each user's events, the rules,
// encoding the records) run on every core (internal/par).
//
// Why each crash point is safe (the crash simulation, TestCrashSimulation,
// injects each one over thousands of random streams):
//
//   - before or during 5: nothing of the batch is in state; it is
//     redelivered and computed again from the same state, into the same
//     decisions with the same ids (those already acknowledged are
//     published twice: at least once, never a different decision);
//   - after 5, before 6: the same — state is written only once every
//     decision of the batch is acknowledged;
//   - after 6, before 7: the batch is redelivered, its events are
//     Redelivered (their offsets are in state) and publish nothing, since
//     their decisions are out;
//   - after 7: nothing is redelivered.
//
// A user whose state another writer changed between 3 and 6 (the consumer
// that owned the partition before a rebalance, a job) fails the
// compare-and-set: its events are computed again from the fresh state,
// their decisions published, and written again; the batches computed on
// the lost state are computed again before they publish. Transient Redis
// and Kafka errors are retried with backoff and never skip a record; an
// event the state cannot keep (over a bound) and a panic while handling
// one record send that record to the dead-letter topic and the partition
// keeps moving.
package consumers
