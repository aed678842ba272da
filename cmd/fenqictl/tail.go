package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/fenqi/fenqi/events"
)

const tailAbout = `Print the decisions published on the decisions topic, one line each: time,
type, user, action, rule, reason codes and the id of the event that caused it
(--json: the CloudEvent as published). Reads every partition without a
consumer group (nothing is committed), from the end unless --from-beginning,
until interrupted or until --n decisions were printed.`

func (c *cli) tail(ctx context.Context, args []string) error {
	var (
		brokers, topic, zone string
		fromBeginning, raw   bool
		n                    int
	)
	fs := c.flagSet("tail", "", tailAbout)
	fs.brokers(&brokers)
	fs.topic(&topic, "decisions", defaultDecisions, "topic of decisions")
	fs.BoolVar(&fromBeginning, "from-beginning", false, "start at the oldest decision kept instead of the end")
	fs.IntVar(&n, "n", 0, "stop after printing this many decisions (0 = until interrupted)")
	fs.BoolVar(&raw, "json", false, "print each decision as its raw CloudEvent JSON, one per line")
	fs.StringVar(&zone, "timezone", "Local", "time zone of the printed times (IANA name, UTC or Local)")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "tail: unexpected argument %q", operands[0])
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := checkTopics(map[string]string{"topic-decisions": topic}); err != nil {
		return err
	}
	if n < 0 {
		return usageErrorf("tail: --n must be ≥ 0, got %d", n)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return usageErrorf("tail: --timezone: %w", err)
	}

	b := newBroker(addrs, fs.kafka)
	defer b.close()
	ps, err := b.partitions(ctx, topic)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	which, where := int64(kafka.LastOffset), "the end"
	if fromBeginning {
		which, where = kafka.FirstOffset, "the beginning"
	}
	start, err := b.offsets(ctx, topic, ps, which)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(rctx)
	ch := make(chan kafka.Message)
	for _, p := range ps {
		r, err := b.reader(topic, p, start[p])
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("tail: %w", err)
		}
		g.Go(func() error {
			defer r.Close()
			for {
				m, err := r.ReadMessage(gctx)
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("read %s/%d: %w", topic, p, err)
				}
				select {
				case ch <- m:
				case <-gctx.Done():
					return nil
				}
			}
		})
	}
	// Positions are fixed from here on: what is published now is printed.
	fmt.Fprintf(c.stderr, "tail: reading %s (%d partitions) from %s\n", topic, len(ps), where)

	printed := 0
loop:
	for n == 0 || printed < n {
		select {
		case <-gctx.Done():
			break loop
		case m := <-ch:
			if raw {
				c.printRaw(m.Value)
				printed++
				continue
			}
			d, err := events.DecodeDecision(m.Value)
			if err != nil {
				fmt.Fprintf(c.stderr, "tail: %s/%d@%d is not a decision: %v\n", m.Topic, m.Partition, m.Offset, err)
				continue
			}
			fmt.Fprintln(c.stdout, formatDecision(d, loc))
			printed++
		}
	}
	cancel()
	if err := g.Wait(); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// printRaw prints a record value as one line of JSON.
func (c *cli) printRaw(v []byte) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		buf.Reset()
		buf.Write(bytes.ReplaceAll(v, []byte("\n"), []byte(" ")))
	}
	buf.WriteByte('\n')
	_, _ = c.stdout.Write(buf.Bytes())
}

// formatDecision is the one-line form of a decision tail prints.
func formatDecision(d events.Decision, loc *time.Location) string {
	codes := make([]string, 0, len(d.Data.ReasonCodes))
	for _, rc := range d.Data.ReasonCodes {
		codes = append(codes, rc.Code)
	}
	reasons := strings.Join(codes, ",")
	if reasons == "" {
		reasons = "-"
	}
	typ := strings.TrimSuffix(strings.TrimPrefix(d.Type, "fenqi.decision."), ".v1")
	return fmt.Sprintf("%s %-8s user=%s action=%s rule=%s reasons=%s cause=%s",
		d.Time.In(loc).Format("2006-01-02T15:04:05.000Z07:00"), typ, d.Subject,
		orDash(d.Data.Action), orDash(d.Data.Rule), reasons, orDash(d.Data.CausationID))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
