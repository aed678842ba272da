package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultKafkaAddr is where StartKafka listens when KafkaConfig.Addr is empty.
const DefaultKafkaAddr = "127.0.0.1:9092"

// DefaultPartitions is the partition count of the topics StartKafka creates
// when KafkaConfig.Partitions is not set.
const DefaultPartitions int32 = 6

// KafkaConfig configures StartKafka.
type KafkaConfig struct {
	// Addr is the host:port the broker listens on; "" means
	// DefaultKafkaAddr. A port of 0 picks a free port (see Kafka.Addrs).
	Addr string
	// DataDir, when set, makes the cluster persist topics, records and
	// committed group offsets there and reload them on the next start.
	// "" keeps everything in memory.
	DataDir string
	// Topics are created at start when they do not exist yet (also when
	// DataDir already holds a cluster: existing topics are kept as they
	// are, missing ones are added).
	Topics []string
	// Partitions is the partition count of created topics; 0 means
	// DefaultPartitions.
	Partitions int32
	// TopicConfigs are topic configs (e.g. "retention.ms") given to the
	// topics StartKafka creates; topics already in DataDir keep theirs.
	// kfake enforces retention only on topics with retention.ms or
	// retention.bytes set explicitly (checked hourly, or every
	// log.cleaner.backoff.ms of the broker configs): without them a
	// long-running cluster keeps every record.
	TopicConfigs map[string]string
	// Logf, if set, receives notable events (e.g. a persisted topic whose
	// partition count differs from Partitions). nil discards them.
	Logf func(format string, args ...any)
}

// Kafka is a running in-process one-broker Kafka cluster.
type Kafka struct {
	cluster *kfake.Cluster
	addrs   []string
}

// StartKafka starts a one-broker kfake cluster listening on cfg.Addr and
// makes sure every topic of cfg.Topics exists. The cluster runs until
// Close; ctx only bounds the start-up.
func StartKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start kafka: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultKafkaAddr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("start kafka: bad address %q: %w", addr, err)
	}
	parts := cfg.Partitions
	if parts <= 0 {
		parts = DefaultPartitions
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake asks to listen on 127.0.0.1:<port>; bind the exact
		// address we were given instead (host and port, 0 = free port).
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, addr)
		}),
		kfake.DefaultNumPartitions(int(parts)),
	}
	if len(cfg.Topics) > 0 && len(cfg.TopicConfigs) == 0 {
		// (SeedTopics takes no configs: with configs, the loop below
		// creates the topics.)
		opts = append(opts, kfake.SeedTopics(parts, cfg.Topics...))
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("start kafka: create data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka on %s (data dir %q): %w", addr, cfg.DataDir, err)
	}
	k := &Kafka{cluster: c, addrs: c.ListenAddrs()}

	// kfake ignores SeedTopics when it reloads a data dir: add the topics
	// that the persisted cluster does not have yet (and all of them when
	// they take configs).
	for _, t := range cfg.Topics {
		if c.TopicInfo(t) != nil {
			if n := len(c.PartitionInfos(t)); int32(n) != parts {
				logf("kafka: topic %s has %d partitions (kept from %s), not %d", t, n, cfg.DataDir, parts)
			}
			continue
		}
		if err := c.CreateTopic(t, parts, cfg.TopicConfigs); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			c.Close()
			return nil, fmt.Errorf("start kafka: create topic %s: %w", t, err)
		}
	}
	return k, nil
}

// Addrs returns the bootstrap addresses (host:port) of the cluster, with
// the real port when Addr asked for port 0.
func (k *Kafka) Addrs() []string { return append([]string(nil), k.addrs...) }

// Cluster returns the underlying kfake cluster, for tests that inject
// faults or inspect topics and groups.
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the cluster; with a data dir it first saves its state there.
// Calling Close more than once is harmless.
func (k *Kafka) Close() { k.cluster.Close() }
