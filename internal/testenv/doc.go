// Package testenv gives other packages' tests hermetic infrastructure: a
// real redis-server per test on a free port, an in-process Kafka (kfake)
// per test on a free port, and helpers to produce and read raw Kafka
// messages over TCP with kafka-go.
//
// Everything a helper starts is stopped by t.Cleanup. Helpers fail the test
// (never skip it) when something they need is missing, so that a test that
// looks green really ran.
package testenv
