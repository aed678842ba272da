package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// Explaining wraps rt (a Transport of c's) so that a request that fails
// on its connection says why: kafka-go's Transport reports a password or
// a certificate the broker refused as the connection ending ("unexpected
// EOF"). The first such failure runs a Check of the brokers, which sees
// the handshakes' own errors; its outcome is kept, and joined to every
// such failure while it is one. Safe for concurrent use.
func (c *KafkaConn) Explaining(rt kafka.RoundTripper, brokers []string) kafka.RoundTripper {
	return &explaining{rt: rt, c: c, brokers: brokers}
}

type explaining struct {
	rt      kafka.RoundTripper
	c       *KafkaConn
	brokers []string

	mu      sync.Mutex
	checked bool
	why     error // the Check's error: nil when the brokers accept c
}

func (e *explaining) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	resp, err := e.rt.RoundTrip(ctx, addr, req)
	if err == nil || !connectionEnded(err) {
		return resp, err
	}
	if why := e.check(ctx); why != nil {
		return resp, fmt.Errorf("%w: %w", err, why)
	}
	return resp, err
}

// check runs the Check once (again if the context ended it).
func (e *explaining) check(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.checked {
		why := e.c.Check(ctx, e.brokers)
		if ctx.Err() != nil {
			return nil
		}
		e.checked, e.why = true, why
	}
	return e.why
}

func connectionEnded(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
