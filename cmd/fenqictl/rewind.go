package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
)

const rewindAbout = `Move the consumer group's committed offsets on the five input topics back to
--to, so that fenqid, once started again, replays the records from there on.

--to is an RFC 3339 time (2025-03-01T10:00:00+08:00), a negative duration back
from now (-10m, -1h30m) or "earliest" (the oldest record each partition still
keeps). For every input partition the new offset is the first record whose
Kafka timestamp is at or after --to, or the end of the partition when no
record is that recent. A partition is never moved forward: one whose committed
offset is already at or before that point is left unchanged, and so is one
without a committed offset (fenqid starts those at the oldest record anyway).

Every fenqid of the group must be stopped first: the command refuses while the
group has members. Replaying is safe: fenqid keeps, per user, input topic and
partition, the last offset it applied, so a replayed record whose state is
already in Redis is a redelivery and publishes nothing (its decisions were
published before its state was written). Only what Redis lost is applied
again, and its decisions are published again with the same ids.

A rewind does not republish the decisions of a stretch of the log. For that (a
backtest, a new notifier), replay into a fresh namespace instead: a second
fenqid with its own -group-id and -redis-prefix (for a backtest, its own
-topic-decisions and -topic-dlq too) reads the input topics from the oldest
record they keep and publishes every decision again. A topic whose own offsets
started over (it was recreated) needs its epoch raised first, or its new
records are taken for redeliveries too: see fenqictl epoch.`

// rewindMetadata is the metadata of the offsets the command commits, for
// whoever wonders later where they came from.
const rewindMetadata = "fenqictl rewind"

// rewindTimeFormat prints a --to time: Kafka timestamps are milliseconds.
const rewindTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// rewindTo is a parsed --to: the oldest record kept, or a time.
type rewindTo struct {
	earliest bool
	at       time.Time
}

func (t rewindTo) String() string {
	if t.earliest {
		return "the oldest record kept"
	}
	return "the first record at or after " + t.at.UTC().Format(rewindTimeFormat)
}

// parseRewindTo parses --to relative to now.
func parseRewindTo(s string, now time.Time) (rewindTo, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return rewindTo{}, errors.New("empty")
	case s == "earliest":
		return rewindTo{earliest: true}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d >= 0 {
			return rewindTo{}, fmt.Errorf("a duration goes back from now and must be negative (-%s, not %s)", strings.TrimPrefix(s, "+"), s)
		}
		return rewindTo{at: now.Add(d)}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return rewindTo{}, errors.New(`want an RFC 3339 time (2025-03-01T10:00:00+08:00), a negative duration (-10m) or "earliest"`)
	}
	switch {
	case at.Before(time.UnixMilli(0)):
		return rewindTo{}, errors.New("before 1970: Kafka timestamps start at the Unix epoch")
	case at.After(now):
		return rewindTo{}, fmt.Errorf("in the future (now is %s): nothing to replay", now.UTC().Format(time.RFC3339))
	}
	return rewindTo{at: at}, nil
}

// rewindStep is the plan for one input partition.
type rewindStep struct {
	topic     string
	partition int
	committed int64 // the group's committed offset; -1 = none
	target    int64 // the offset --to points at
}

// moves reports whether the step moves the committed offset (always back).
func (s rewindStep) moves() bool { return s.committed >= 0 && s.target < s.committed }

func (s rewindStep) String() string {
	where := fmt.Sprintf("%s[%d]", s.topic, s.partition)
	switch {
	case s.committed < 0:
		return fmt.Sprintf("%s: unchanged (no committed offset: fenqid starts at the oldest record; --to points at %d)", where, s.target)
	case s.moves():
		return fmt.Sprintf("%s: %d -> %d (replays %d)", where, s.committed, s.target, s.committed-s.target)
	}
	return fmt.Sprintf("%s: %d unchanged (--to points at %d: never moved forward)", where, s.committed, s.target)
}

func (c *cli) rewind(ctx context.Context, args []string) error {
	var (
		brokers, group, to string
		topics             inputTopics
		dryRun             bool
	)
	fs := c.flagSet("rewind", "--to T", rewindAbout)
	fs.brokers(&brokers)
	fs.inputs(&topics)
	fs.StringVar(&group, "group", consumers.DefaultGroupID, "fenqid's consumer group, as fenqid's -group-id (env FENQI_GROUP_ID)")
	fs.env["group"] = "FENQI_GROUP_ID"
	fs.StringVar(&to, "to", "", `where to: an RFC 3339 time, a negative duration back from now (-10m) or "earliest" (required)`)
	fs.BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "rewind: unexpected argument %q", operands[0])
	}
	if to == "" {
		return c.usageOf(fs, "rewind: say where to with --to (an RFC 3339 time, -10m or earliest)")
	}
	target, err := parseRewindTo(to, time.Now())
	if err != nil {
		return c.usageOf(fs, "rewind: --to %q: %v", to, err)
	}
	if strings.TrimSpace(group) == "" {
		return c.usageOf(fs, "rewind: --group must not be empty")
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := topics.check(); err != nil {
		return err
	}

	b := newBroker(addrs, fs.kafka)
	defer b.close()
	if err := groupIdle(ctx, b, group); err != nil {
		if !dryRun {
			return fmt.Errorf("rewind: %w", err)
		}
		fmt.Fprintf(c.stderr, "rewind: warning: %v (a dry run goes on; the rewind itself would be refused)\n", err)
	}
	plan, err := planRewind(ctx, b, group, topics.list(), target)
	if err != nil {
		return fmt.Errorf("rewind: %w", err)
	}

	fmt.Fprintf(c.stdout, "rewind: group %q to %s\n", group, target)
	var (
		moves     []rewindStep
		replays   int64
		committed int
	)
	for _, s := range plan {
		fmt.Fprintln(c.stdout, s)
		if s.committed >= 0 {
			committed++
		}
		if s.moves() {
			moves = append(moves, s)
			replays += s.committed - s.target
		}
	}
	if committed == 0 {
		fmt.Fprintf(c.stderr, "rewind: group %q has no committed offset on these topics: is --group (or FENQI_GROUP_ID) fenqid's -group-id?\n", group)
	}
	if dryRun {
		fmt.Fprintf(c.stdout, "rewind: dry run, nothing was changed: %d of %d partitions would move back, %d records would be replayed\n", len(moves), len(plan), replays)
		return nil
	}
	if len(moves) == 0 {
		fmt.Fprintf(c.stdout, "rewind: nothing to change: 0 of %d partitions move back\n", len(plan))
		return nil
	}
	if err := commitRewind(ctx, b, group, moves); err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	fmt.Fprintf(c.stdout, "rewind: %d of %d partitions moved back, %d records to replay: start fenqid to replay them\n", len(moves), len(plan), replays)
	return nil
}

// groupIdle returns an error unless group has no members: an offset
// committed from outside the group is only accepted while it is empty, and
// a running member would commit over it anyway.
func groupIdle(ctx context.Context, b *broker, group string) error {
	resp, err := b.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return fmt.Errorf("describe group %q: %w", group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != "" && g.GroupID != group {
			continue
		}
		if g.Error != nil {
			if errors.Is(g.Error, kafka.GroupIdNotFound) {
				return nil // no such group (yet): no member either
			}
			return fmt.Errorf("describe group %q: %w", group, g.Error)
		}
		if len(g.Members) == 0 && (g.GroupState == "Empty" || g.GroupState == "Dead" || g.GroupState == "") {
			return nil
		}
		who := make([]string, 0, len(g.Members))
		for _, m := range g.Members {
			who = append(who, m.ClientID+"@"+m.ClientHost)
		}
		members := fmt.Sprintf("%d active members", len(g.Members))
		if len(g.Members) == 1 {
			members = "1 active member"
		}
		return fmt.Errorf("group %q is %s with %s (%s): stop every fenqid of the group first",
			group, g.GroupState, members, strings.Join(who, ", "))
	}
	return nil
}

// planRewind returns a step for every partition of topics, in topic then
// partition order.
func planRewind(ctx context.Context, b *broker, group string, topics []string, to rewindTo) ([]rewindStep, error) {
	parts := make(map[string][]int, len(topics))
	targets := make(map[string]map[int]int64, len(topics))
	for _, topic := range topics {
		ps, err := b.partitions(ctx, topic)
		if err != nil {
			return nil, err
		}
		parts[topic] = ps
		if to.earliest {
			targets[topic], err = b.offsets(ctx, topic, ps, kafka.FirstOffset)
		} else {
			targets[topic], err = b.offsetsAt(ctx, topic, ps, to.at)
		}
		if err != nil {
			return nil, err
		}
	}
	committed, err := b.committed(ctx, group, parts)
	if err != nil {
		return nil, err
	}
	var plan []rewindStep
	for _, topic := range topics {
		for _, p := range parts[topic] {
			s := rewindStep{topic: topic, partition: p, committed: -1, target: targets[topic][p]}
			if o, ok := committed[topic][p]; ok && o >= 0 {
				s.committed = o
			}
			plan = append(plan, s)
		}
	}
	return plan, nil
}

// offsetsAt returns, for each partition, the offset of the first record
// whose timestamp is at or after at (to the millisecond), or the end of the
// partition (the high watermark) when no record is that recent.
func (b *broker) offsetsAt(ctx context.Context, topic string, ps []int, at time.Time) (map[int]int64, error) {
	// A partition may appear once per ListOffsets request: the ends are a
	// request of their own.
	ends, err := b.offsets(ctx, topic, ps, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	ms := at.UnixMilli()
	reqs := make([]kafka.OffsetRequest, len(ps))
	for i, p := range ps {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: ms}
	}
	resp, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s at %s: %w", topic, at.UTC().Format(rewindTimeFormat), err)
	}
	out := make(map[int]int64, len(ps))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d at %s: %w", topic, po.Partition, at.UTC().Format(rewindTimeFormat), po.Error)
		}
		end, ok := ends[po.Partition]
		if !ok {
			continue
		}
		// The broker answers offset -1 (timestamp -1) when no record is that
		// recent, which kafka-go leaves out of Offsets.
		out[po.Partition] = end
		for off := range po.Offsets {
			if off >= 0 && off < out[po.Partition] {
				out[po.Partition] = off
			}
		}
	}
	for _, p := range ps {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets of %s at %s: no answer for partition %d", topic, at.UTC().Format(rewindTimeFormat), p)
		}
	}
	return out, nil
}

// committed returns group's committed offsets on the given partitions; a
// partition without one is absent or -1.
func (b *broker) committed(ctx context.Context, group string, parts map[string][]int) (map[string]map[int]int64, error) {
	resp, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %q: %w", group, err)
	}
	if errors.Is(resp.Error, kafka.GroupIdNotFound) {
		return nil, nil // no such group: no committed offset (kfake answers this; Kafka offsets -1)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %q: %w", group, resp.Error)
	}
	out := make(map[string]map[int]int64, len(resp.Topics))
	for topic, ps := range resp.Topics {
		out[topic] = make(map[int]int64, len(ps))
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of group %q on %s/%d: %w", group, topic, p.Partition, p.Error)
			}
			out[topic][p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// commitRewind commits the targets of steps for group, from outside the
// group (generation -1, no member id): the broker accepts that only while
// the group has no member, so a fenqid that joined since groupIdle makes
// the commit fail rather than be overwritten.
func commitRewind(ctx context.Context, b *broker, group string, steps []rewindStep) error {
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, s := range steps {
		req.Topics[s.topic] = append(req.Topics[s.topic], kafka.OffsetCommit{Partition: s.partition, Offset: s.target, Metadata: rewindMetadata})
	}
	resp, err := b.client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: nothing was changed: %w", group, err)
	}
	answered := map[string]map[int]error{}
	for topic, ps := range resp.Topics {
		answered[topic] = map[int]error{}
		for _, p := range ps {
			answered[topic][p.Partition] = p.Error
		}
	}
	var failed []string
	for _, s := range steps {
		perr, ok := answered[s.topic][s.partition]
		switch {
		case !ok:
			failed = append(failed, fmt.Sprintf("%s[%d]: no answer", s.topic, s.partition))
		case errors.Is(perr, kafka.UnknownMemberId), errors.Is(perr, kafka.IllegalGeneration), errors.Is(perr, kafka.RebalanceInProgress):
			failed = append(failed, fmt.Sprintf("%s[%d]: %v (a member joined the group: stop every fenqid of the group)", s.topic, s.partition, perr))
		case perr != nil:
			failed = append(failed, fmt.Sprintf("%s[%d]: %v", s.topic, s.partition, perr))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("commit offsets of group %q: %d of %d partitions not moved (the others were; running the command again is safe): %s",
			group, len(failed), len(steps), strings.Join(failed, "; "))
	}
	return nil
}
