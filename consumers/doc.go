// Package consumers runs fenqi's processing loop: Kafka in, decisions out.
//
// In: records of the input topics, read with a kafka-go consumer group.
// Out: state applied to Redis (package state), decisions and dead letters
// published (package producers), offsets committed.
//
// One batch at a time, in this order:
//
//  1. fetch up to BatchSize records (FetchMessage, waiting at most
//     BatchWait after the first);
//  2. decode and validate each; a bad record becomes a dead letter;
//  3. apply the good events to Redis in one round trip (state.Store.Apply);
//  4. evaluate the rules on each applied or redelivered event (scoring);
//  5. publish the decisions and dead letters and wait for the broker's
//     acknowledgement from all in-sync replicas;
//  6. commit the batch's offsets, once.
//
// Steps 1–4 of batch N+1 run while steps 5–6 of batch N do (two stages,
// the second in one goroutine so commits stay in order); Redis and the
// broker work at the same time.
//
// A crash anywhere before 6 redelivers the batch (and the one behind it); state recognises what it
// already applied, and the rules publish the same decisions with the same
// ids again, so state counts every event exactly once and decisions are
// delivered at least once. Transient Redis and Kafka errors are retried with
// backoff and never skip a record; a panic while handling one record sends
// that record to the dead-letter topic and the partition keeps moving.
package consumers
