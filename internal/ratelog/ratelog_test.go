package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The reader's errors are logged once per kind, then once every period with
// the count left out: a broker restart is a few lines, not hundreds.
func TestLimitedLogger(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), "kafka reader: ", 10*time.Second)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for p := range 4 {
		for range 50 {
			l.Printf("error reading partition %d: %v", p, "i/o timeout")
		}
	}
	l.Printf("failed to join group: %v", "unknown member")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 200 errors of one kind and one of another, want 2:\n%s", n, buf.String())
	}
	now = now.Add(11 * time.Second)
	l.Printf("error reading partition %d: %v", 0, "i/o timeout")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "repeats_left_out=199") || !strings.Contains(lines[2], "partition 0") {
		t.Fatalf("after the period: %q", lines)
	}
}
