// Package embedded starts the infrastructure fenqi needs inside the current
// process, for `make run`, demos and tests: a one-broker Kafka (franz-go's
// kfake, spoken to over real TCP by any Kafka client) and a Redis server
// (a real redis-server child process from PATH, or, where none is
// installed, the in-process miniredis).
//
// Nothing here is meant for production: kfake keeps no replicas and
// miniredis keeps nothing on disk. With a data directory, both keep their
// state across restarts of the process so that `make run` can be stopped
// and started again without losing topics, committed offsets or Redis keys.
package embedded
