package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/embedded"
)

// RedisOption adjusts the server or client that Redis, RedisAddr and
// RedisServer start.
type RedisOption func(*redisSetup)

type redisSetup struct {
	cfg    embedded.RedisConfig
	client []func(*redis.Options)
}

// WithRedisArgs appends redis-server command-line arguments, e.g.
// WithRedisArgs("--hash-max-listpack-entries", "128").
func WithRedisArgs(args ...string) RedisOption {
	return func(s *redisSetup) { s.cfg.Args = append(s.cfg.Args, args...) }
}

// WithRedisDataDir turns on append-only persistence in dir, so that a test
// can stop the server and start another one on the same data.
func WithRedisDataDir(dir string) RedisOption {
	return func(s *redisSetup) { s.cfg.DataDir = dir }
}

// WithRedisPort listens on a given port instead of a free one (to restart a
// server on the address a client already uses).
func WithRedisPort(port int) RedisOption {
	return func(s *redisSetup) { s.cfg.Port = port }
}

// WithRedisClientOptions edits the go-redis options of the client Redis
// returns (timeouts, pool size…).
func WithRedisClientOptions(fn func(*redis.Options)) RedisOption {
	return func(s *redisSetup) { s.client = append(s.client, fn) }
}

// RedisServer starts a real redis-server on a free 127.0.0.1 port and
// returns its handle; t.Cleanup stops it (a test may also Close it itself,
// e.g. to see how code copes with Redis going away). It fails the test if
// redis-server is not installed: there is no miniredis fallback here.
func RedisServer(t testing.TB, opts ...RedisOption) *embedded.Redis {
	t.Helper()
	s := redisSetup{}
	for _, o := range opts {
		o(&s)
	}
	return startRedis(t, s)
}

func startRedis(t testing.TB, s redisSetup) *embedded.Redis {
	t.Helper()
	s.cfg.NoFallback = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := embedded.StartRedis(ctx, s.cfg, t.Logf)
	if errors.Is(err, embedded.ErrRedisServerNotFound) {
		t.Fatalf("redis-server not on PATH: install it (apt-get install redis-server): %v", err)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return r
}

// RedisAddr starts a real redis-server (see RedisServer) and returns its
// host:port only, for tests that create their own clients or restart the
// processes under test against the same server.
func RedisAddr(t testing.TB, opts ...RedisOption) string {
	t.Helper()
	return RedisServer(t, opts...).Addr()
}

// Redis starts a real redis-server (see RedisServer) and returns a go-redis
// client connected to it; t.Cleanup closes both.
func Redis(t testing.TB, opts ...RedisOption) *redis.Client {
	t.Helper()
	s := redisSetup{}
	for _, o := range opts {
		o(&s)
	}
	srv := startRedis(t, s)
	o := &redis.Options{Addr: srv.Addr()}
	for _, fn := range s.client {
		fn(o)
	}
	c := redis.NewClient(o)
	// Registered after the server's cleanup, so it runs before it.
	t.Cleanup(func() { _ = c.Close() })
	return c
}
