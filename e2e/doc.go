// Package e2e holds fenqi's end-to-end stories: events produced with a
// Kafka client to an in-process Kafka-protocol broker (kfake) over TCP, the
// pipeline and the jobs running against a real redis-server, decisions read
// back from the decisions topic. Time is an injected clock: no test sleeps
// to wait for a deadline.
package e2e
