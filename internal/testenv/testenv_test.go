package testenv_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/internal/testenv"
)

func TestRedis(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t, testenv.WithRedisArgs("--hash-max-listpack-entries", "128"),
		testenv.WithRedisClientOptions(func(o *redis.Options) { o.ReadTimeout = 2 * time.Second }))
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.ConfigGet(ctx, "hash-max-listpack-entries").Result(); err != nil || v["hash-max-listpack-entries"] != "128" {
		t.Fatalf("hash-max-listpack-entries = %v, %v", v, err)
	}
	// Each call gets its own server.
	other := testenv.Redis(t)
	if n, err := other.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("second server sees k: %d, %v", n, err)
	}
}

func TestRedisRestartOnSameAddr(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := testenv.RedisServer(t, testenv.WithRedisDataDir(dir))
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, ps, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(ps)
	testenv.RedisServer(t, testenv.WithRedisDataDir(dir), testenv.WithRedisPort(port))
	// The same client reconnects and finds the data.
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after restart GET = %q, %v", v, err)
	}
}

func TestRedisAddr(t *testing.T) {
	addr := testenv.RedisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestKafkaProduceRead(t *testing.T) {
	k := testenv.Kafka(t, "a", "b")
	if len(k.Addrs()) != 1 || k.Addr() == "" {
		t.Fatalf("Addrs = %v", k.Addrs())
	}
	if n := len(k.PartitionInfos("a")); n != int(testenv.DefaultPartitions) {
		t.Fatalf("a has %d partitions, want %d", n, testenv.DefaultPartitions)
	}
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, kafka.Message{
			Key:     fmt.Appendf(nil, "u%06d", i%5),
			Value:   fmt.Appendf(nil, "%d", i),
			Headers: []kafka.Header{{Key: "h", Value: []byte("x")}},
		})
	}
	testenv.Produce(t, k.Addrs(), "a", msgs...)

	got := testenv.ReadN(t, k.Addrs(), "a", len(msgs), 10*time.Second)
	if len(got) != len(msgs) {
		t.Fatalf("ReadN returned %d", len(got))
	}
	// Keys stick to partitions, order within a key is kept, headers arrive.
	partOf := map[string]int{}
	last := map[string]int{}
	for _, m := range got {
		if p, ok := partOf[string(m.Key)]; ok && p != m.Partition {
			t.Fatalf("key %s on partitions %d and %d", m.Key, p, m.Partition)
		}
		partOf[string(m.Key)] = m.Partition
		v, _ := strconv.Atoi(string(m.Value))
		if prev, ok := last[string(m.Key)]; ok && v < prev {
			t.Fatalf("key %s: %d after %d", m.Key, v, prev)
		}
		last[string(m.Key)] = v
		if len(m.Headers) != 1 || string(m.Headers[0].Value) != "x" {
			t.Fatalf("headers = %v", m.Headers)
		}
	}
	if all := testenv.ReadAll(t, k.Addrs(), "a"); len(all) != len(msgs) {
		t.Fatalf("ReadAll = %d messages, want %d", len(all), len(msgs))
	}
	if all := testenv.ReadAll(t, k.Addrs(), "b"); len(all) != 0 {
		t.Fatalf("ReadAll(b) = %d messages, want 0", len(all))
	}
}

func TestReadNTimeout(t *testing.T) {
	k := testenv.Kafka(t, "a")
	testenv.Produce(t, k.Addrs(), "a", kafka.Message{Value: []byte("only")})
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		testenv.ReadN(ft, k.Addrs(), "a", 2, 300*time.Millisecond)
	}()
	if !ft.failed || ft.msg == "" {
		t.Fatal("ReadN did not fail on timeout")
	}
	t.Logf("failure message: %s", ft.msg)
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

func TestKafkaWithDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	k1 := testenv.KafkaWith(t, embedded.KafkaConfig{DataDir: dir, Topics: []string{"a"}, Partitions: 2})
	testenv.Produce(t, k1.Addrs(), "a", kafka.Message{Key: []byte("k"), Value: []byte("v")})
	k1.Close()
	k2 := testenv.KafkaWith(t, embedded.KafkaConfig{Addr: k1.Addr(), DataDir: dir, Topics: []string{"a"}, Partitions: 2})
	if got := testenv.ReadAll(t, k2.Addrs(), "a"); len(got) != 1 || string(got[0].Value) != "v" {
		t.Fatalf("after restart: %v", got)
	}
}

func TestRedisMissingServerFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server there
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		testenv.RedisServer(ft)
	}()
	if !ft.failed || !strings.Contains(ft.msg, "redis-server not on PATH: install it (apt-get install redis-server)") {
		t.Fatalf("failed=%v msg=%q", ft.failed, ft.msg)
	}
}
