// Package ratelog is a logger for a dependency's own messages (kafka-go's
// reader, go-redis): each kind of message, its format, once, then at most
// once a period with the count of those left out, so that an outage is a
// few lines, not hundreds.
package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Logger logs each kind of message (its
// format) at most once per every, counting the ones it leaves out.
type Logger struct {
	log    *slog.Logger
	prefix string
	every  time.Duration
	now    func() time.Time // the clock (tests)
	mu     sync.Mutex
	last   map[string]time.Time
	left   map[string]int
}

func New(log *slog.Logger, prefix string, every time.Duration) *Logger {
	return &Logger{log: log, prefix: prefix, every: every, now: time.Now,
		last: map[string]time.Time{}, left: map[string]int{}}
}

// Printf logs msg unless one of its kind was logged less than every ago.
func (l *Logger) Printf(msg string, args ...any) {
	l.mu.Lock()
	now := l.now()
	if at, ok := l.last[msg]; ok && now.Sub(at) < l.every {
		l.left[msg]++
		l.mu.Unlock()
		return
	}
	left := l.left[msg]
	l.last[msg], l.left[msg] = now, 0
	if len(l.last) > 256 { // formats are few; never grow without bound
		clear(l.last)
		clear(l.left)
	}
	l.mu.Unlock()
	if left > 0 {
		l.log.Warn(l.prefix+fmt.Sprintf(msg, args...), "repeats_left_out", left, "per", l.every.String())
		return
	}
	l.log.Warn(l.prefix + fmt.Sprintf(msg, args...))
}

// Context adapts l to go-redis's logger (redis.SetLogger).
func (l *Logger) Context() ContextLogger { return ContextLogger{l} }

// ContextLogger is a Logger whose Printf takes a context.
type ContextLogger struct{ l *Logger }

// Printf logs as Logger.Printf.
func (c ContextLogger) Printf(ctx context.Context, msg string, args ...any) { c.l.Printf(msg, args...) }
