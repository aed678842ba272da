// Package retry is fenqi's one retry path: a single classification of errors
// into transient and permanent (Retryable) and a single backoff loop (Do)
// around github.com/cenkalti/backoff/v4.
//
// Transient errors (network faults, Kafka errors that say they are
// temporary, Redis LOADING/TRYAGAIN/CLUSTERDOWN/BUSY/MASTERDOWN/READONLY…)
// are retried without limit while the context lives: a transient fault is
// never a reason to skip an event. Anything else is permanent and is
// returned at once, for the caller to dead-letter or fail on.
package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// Policy shapes the backoff. The zero value is usable (Defaults apply).
type Policy struct {
	Initial time.Duration // first wait; default 50ms
	Max     time.Duration // longest wait; default 1s (a dependency back is used within a second)
	// MaxElapsed bounds the whole loop; 0 = retry until ctx ends.
	MaxElapsed time.Duration
}

func (p Policy) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	if p.Initial > 0 {
		b.InitialInterval = p.Initial
	}
	b.MaxInterval = time.Second
	if p.Max > 0 {
		b.MaxInterval = p.Max
	}
	b.RandomizationFactor = 0.5 // jitter, so that instances do not retry in step
	b.Multiplier = 2
	b.MaxElapsedTime = p.MaxElapsed
	return b
}

// Notify is told of each failed attempt before the wait: the cause (a short
// label for metrics), the error and the wait.
type Notify func(cause string, err error, wait time.Duration)

// Do runs op until it succeeds, returns a permanent error, or ctx ends.
// Transient errors (Retryable) are retried with capped, jittered exponential
// backoff; notify (may be nil) sees each retry. It returns op's last error
// wrapped with ctx's error when ctx ends first.
func Do(ctx context.Context, p Policy, cause string, notify Notify, op func(context.Context) error) error {
	var last error
	err := backoff.RetryNotify(func() error {
		err := op(ctx)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil || !Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(p.backoff(), ctx), func(err error, wait time.Duration) {
		if notify != nil {
			notify(cause, err, wait)
		}
	})
	if err != nil && ctx.Err() != nil && last != nil && !errors.Is(err, ctx.Err()) {
		return errors.Join(err, ctx.Err())
	}
	return err
}

// Retryable reports whether err is transient: worth retrying as it is.
// It is fenqi's only error classification.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The caller's context ended: not the dependency's fault, and
		// retrying with a dead context cannot help.
		return false
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		// A partly failed write: retry when every failure is transient.
		any := false
		for _, e := range werrs {
			if e != nil {
				if !Retryable(e) {
					return false
				}
				any = true
			}
		}
		return any
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		// Unknown ("an unexpected server error") is what a broker answers
		// while it starts on its data (make chaos: ListOffsets after a
		// restart); it is not a verdict on the request.
		return kerr.Temporary() || kerr == kafka.Unknown
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		// OOM (maxmemory reached), MISCONF (persistence failing) and
		// NOREPLICAS pass when the operator or Redis fixes the server: wait,
		// never skip. MOVED/ASK are not here: a cluster client follows them
		// itself, and a plain client pointed at a cluster must fail loudly.
		for _, prefix := range []string{"LOADING", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "MASTERDOWN", "READONLY", "NOSCRIPT",
			"OOM", "MISCONF", "NOREPLICAS"} {
			if strings.HasPrefix(msg, prefix) {
				return true
			}
		}
		return false
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) {
		return tmp.Temporary()
	}
	return false
}
