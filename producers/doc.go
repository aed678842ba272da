// Package producers publishes fenqi's outputs to Kafka.
//
// In: decisions from scoring and dead letters from the consumer.
// Out: records on the decisions topic (structured CloudEvents, key = user id)
// and the dead-letter topic (the original key, value and headers, plus
// headers naming the error and where the record came from).
//
// Publish is synchronous: it returns once every record is acknowledged by
// all in-sync replicas (RequiredAcks = RequireAll), so a caller that commits
// its input offsets after Publish never commits an event whose decisions
// could still be lost. Transient broker errors are retried by the one retry
// path (package retry) until ctx ends. kafka-go has no idempotent producer:
// a retried write can duplicate a record, which is why every decision has a
// stable id for downstream consumers to drop repeats.
package producers
