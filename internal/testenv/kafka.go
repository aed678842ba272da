package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fenqi/fenqi/embedded"
)

// DefaultPartitions is the partition count of the topics Kafka creates.
const DefaultPartitions int32 = 3

// KafkaCluster is an in-process one-broker Kafka for one test. The embedded
// *kfake.Cluster gives tests fault injection (ControlKey), group and topic
// inspection; Addrs gives the bootstrap addresses for clients.
type KafkaCluster struct {
	*kfake.Cluster
	addrs []string
}

// Addrs returns the broker addresses (host:port).
func (k *KafkaCluster) Addrs() []string { return append([]string(nil), k.addrs...) }

// Addr returns the first broker address, convenient for kafka.TCP.
func (k *KafkaCluster) Addr() string { return k.addrs[0] }

// Kafka starts an in-process Kafka on a free 127.0.0.1 port with the given
// topics, each of DefaultPartitions partitions; t.Cleanup closes it.
func Kafka(t testing.TB, topics ...string) *KafkaCluster {
	t.Helper()
	return KafkaWith(t, embedded.KafkaConfig{Topics: topics})
}

// KafkaWith is Kafka with a full configuration: an empty Addr means
// 127.0.0.1:0 (a free port), zero Partitions means DefaultPartitions. With
// a DataDir, a test can Close the cluster and start another one with the
// same DataDir (and the same Addr, to keep clients' addresses) to see what
// survives a restart.
func KafkaWith(t testing.TB, cfg embedded.KafkaConfig) *KafkaCluster {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := embedded.StartKafka(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(k.Close)
	return &KafkaCluster{Cluster: k.Cluster(), addrs: k.Addrs()}
}

// ClosedAddr is a 127.0.0.1 address nothing listens on (a broker or an API
// that is down).
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
