package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

var _ redis.Error = redisErr("")

func TestRetryable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"unexpected EOF", fmt.Errorf("state: %w", io.ErrUnexpectedEOF), true},
		{"redis LOADING", redisErr("LOADING Redis is loading the dataset in memory"), true},
		{"redis TRYAGAIN", redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"redis CLUSTERDOWN", redisErr("CLUSTERDOWN The cluster is down"), true},
		{"redis BUSY", redisErr("BUSY Redis is busy running a script"), true},
		{"redis script error", redisErr("ERR user_script:1: attempt to index a nil value"), false},
		{"redis OOM", redisErr("OOM command not allowed when used memory > 'maxmemory'."), true},
		{"redis MISCONF", redisErr("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk"), true},
		{"redis MOVED (a plain client pointed at a cluster)", redisErr("MOVED 3999 127.0.0.1:6381"), false},
		{"redis WRONGTYPE", redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"redis pool timeout", redis.ErrPoolTimeout, true},
		{"kafka leader not available", kafka.LeaderNotAvailable, true},
		{"kafka request timed out", fmt.Errorf("write: %w", kafka.RequestTimedOut), true},
		{"kafka message too large", kafka.MessageSizeTooLarge, false},
		{"kafka unknown server error (a broker starting on its data)", fmt.Errorf("list offsets: %w", kafka.Unknown), true},
		{"kafka topic authorization", kafka.TopicAuthorizationFailed, false},
		{"kafka partly failed write, all transient", kafka.WriteErrors{nil, kafka.NotLeaderForPartition}, true},
		{"kafka partly failed write, one permanent", kafka.WriteErrors{kafka.NotLeaderForPartition, kafka.MessageSizeTooLarge}, false},
		{"context canceled", context.Canceled, false},
		{"a plain error", errors.New("bad input"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Retryable(tc.err); got != tc.want {
				t.Fatalf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestDoRetriesTransientUntilSuccess(t *testing.T) {
	t.Parallel()
	calls := 0
	var notified []string
	err := Do(context.Background(), Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond}, "redis_apply",
		func(cause string, err error, _ time.Duration) { notified = append(notified, cause) },
		func(context.Context) error {
			calls++
			if calls < 4 {
				return syscall.ECONNREFUSED
			}
			return nil
		})
	if err != nil || calls != 4 || len(notified) != 3 || notified[0] != "redis_apply" {
		t.Fatalf("err %v, %d calls, notified %v", err, calls, notified)
	}
}

func TestDoStopsOnPermanent(t *testing.T) {
	t.Parallel()
	calls := 0
	bad := errors.New("bad input")
	err := Do(context.Background(), Policy{Initial: time.Millisecond}, "x", nil, func(context.Context) error {
		calls++
		return bad
	})
	if !errors.Is(err, bad) || calls != 1 {
		t.Fatalf("err %v after %d calls; want the permanent error after 1", err, calls)
	}
}

func TestDoEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	calls := 0
	err := Do(ctx, Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond}, "x", nil, func(context.Context) error {
		calls++
		return syscall.ECONNREFUSED
	})
	if err == nil || calls < 2 {
		t.Fatalf("err %v after %d calls: want an error once ctx ended, after several tries", err, calls)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v says neither the deadline nor the cause", err)
	}
}
