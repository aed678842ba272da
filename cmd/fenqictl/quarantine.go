package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

const quarantineAbout = `List the users whose state fenqid cannot read (quarantined), with when and
why, from Redis directly (fenqid's Redis settings: --redis-addr, --redis-prefix,
… or the FENQI_REDIS_* variables).

A user's value that does not decode (written by something else, corrupted, a
version this fenqid does not read) is never a reason for fenqid to stop: its
events are dead-lettered with the reason (none is lost: fenqictl dlq replay
brings them back), the overdue checks and recomputes skip it, and the value is
kept as it was. To release a user: repair or delete its key ({u:<id>}, with
the prefix), HDEL fenqi:quarantine <id>, then replay its dead letters.`

// quarantine lists the quarantined users (state.QuarantineKey).
func (c *cli) quarantine(ctx context.Context, args []string) error {
	var (
		rf      redisFlags
		timeout time.Duration
	)
	fs := c.flagSet("quarantine", "", quarantineAbout)
	fs.redis(&rf)
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for Redis")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 0 {
		return c.usageOf(fs, "quarantine: unexpected argument %q", operands[0])
	}
	rdb, store, err := rf.store()
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q, err := store.Quarantined(qctx)
	if err != nil {
		return fmt.Errorf("quarantine: redis at %s (--redis-addr, FENQI_REDIS_ADDR): %w", rf.addr, rf.sec.Explain(err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d quarantined users\n", len(q))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, id := range slices.Sorted(maps.Keys(q)) {
		when, why, _ := strings.Cut(q[id], " ")
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", id, when, why)
	}
	_ = tw.Flush()
	_, err = fmt.Fprint(c.stdout, b.String())
	return err
}
