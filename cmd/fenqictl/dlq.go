package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/producers"
)

const dlqUsage = `Usage:
  fenqictl dlq list [flags]     print the dead letters
  fenqictl dlq replay [flags]   send dead letters back to the topic they came from

Run "fenqictl dlq list --help" or "fenqictl dlq replay --help" for the flags.
`

const dlqListAbout = `Print the dead letters of the dead-letter topic, one line each: where the
dead letter is (topic/partition@offset, the offset --offset-from/--offset-to
select), where the record came from (origin topic/partition@offset), when and
why it was refused (field and error), its key and the start of its value.`

const dlqReplayAbout = `Send dead letters back to the topic they were read from (their fenqi-topic
header), to the same partition when it still exists, with their original key,
value and headers minus the fenqi-* headers the dead-letter topic added. Each
is validated again first, as fenqid would (the event decoder, and, when the
origin is one of the --topic-* input topics, that its type belongs there); one
that is still invalid is reported and not sent, unless --force. Select with --all, or with
--offset-from/--offset-to (offsets in the dead-letter topic, as "dlq list"
prints them), optionally narrowed by --topic and --partition.

A replay is a new record: replaying the same dead letter twice sends it
twice (fenqid drops an event id it has seen among a user's last 32 events,
not older repeats), so select what you replay.`

// dlqSelection are the flags that select dead letters.
type dlqSelection struct {
	brokers, dlqTopic, origin string
	partition                 int
	from, to                  int64
}

func (s *dlqSelection) register(fs *flags) {
	fs.brokers(&s.brokers)
	fs.topic(&s.dlqTopic, "dlq", defaultDLQ, "dead-letter topic")
	fs.StringVar(&s.origin, "topic", "", "only dead letters that came from this topic (their fenqi-topic header)")
	fs.IntVar(&s.partition, "partition", -1, "only this partition of the dead-letter topic (-1 = all)")
	fs.Int64Var(&s.from, "offset-from", -1, "only dead letters at this offset of the dead-letter topic or later (-1 = from the oldest)")
	fs.Int64Var(&s.to, "offset-to", -1, "only dead letters at this offset of the dead-letter topic or earlier, inclusive (-1 = to the newest)")
}

func (s *dlqSelection) check() ([]string, error) {
	addrs, err := parseBrokers(s.brokers)
	if err != nil {
		return nil, err
	}
	if err := checkTopics(map[string]string{"topic-dlq": s.dlqTopic}); err != nil {
		return nil, err
	}
	switch {
	case s.from < -1:
		return nil, usageErrorf("--offset-from must be ≥ 0 (or -1), got %d", s.from)
	case s.to < -1:
		return nil, usageErrorf("--offset-to must be ≥ 0 (or -1), got %d", s.to)
	case s.from >= 0 && s.to >= 0 && s.to < s.from:
		return nil, usageErrorf("--offset-to %d is before --offset-from %d", s.to, s.from)
	case s.partition < -1:
		return nil, usageErrorf("--partition must be ≥ 0 (or -1), got %d", s.partition)
	}
	return addrs, nil
}

// deadLetter is a record of the dead-letter topic with its fenqi-* headers
// read. OriginPartition and OriginOffset are -1 when the headers are absent
// or unreadable.
type deadLetter struct {
	msg             kafka.Message
	origin          string
	originPartition int
	originOffset    int64
	reason, field   string
	failedAt        string
	truncated       string         // fenqi-truncated: the original size when the value is only a prefix
	originalHeaders []kafka.Header // the headers without fenqi-*
}

// isFenqiHeader reports whether a header was added by fenqi (fenqi-*).
func isFenqiHeader(key string) bool {
	return len(key) >= 6 && strings.EqualFold(key[:6], "fenqi-")
}

func parseDeadLetter(m kafka.Message) deadLetter {
	dl := deadLetter{msg: m, originPartition: -1, originOffset: -1}
	for _, h := range m.Headers {
		if !isFenqiHeader(h.Key) {
			dl.originalHeaders = append(dl.originalHeaders, h)
			continue
		}
		v := string(h.Value)
		switch strings.ToLower(h.Key) {
		case producers.HeaderTopic:
			dl.origin = v
		case producers.HeaderPartition:
			if p, err := strconv.Atoi(v); err == nil && p >= 0 {
				dl.originPartition = p
			}
		case producers.HeaderOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil && o >= 0 {
				dl.originOffset = o
			}
		case producers.HeaderError:
			dl.reason = v
		case producers.HeaderErrorField:
			dl.field = v
		case producers.HeaderFailedAt:
			dl.failedAt = v
		case producers.HeaderTruncated, producers.HeaderDroppedHeaders:
			dl.truncated = v
		}
	}
	return dl
}

// where is the position of the dead letter itself: "fenqi.dlq/0@12".
func (dl deadLetter) where() string {
	return fmt.Sprintf("%s/%d@%d", dl.msg.Topic, dl.msg.Partition, dl.msg.Offset)
}

// from is the position of the original record: "fenqi.payments/2@345".
func (dl deadLetter) from() string {
	if dl.origin == "" {
		return "?"
	}
	s := dl.origin
	if dl.originPartition >= 0 {
		s += "/" + strconv.Itoa(dl.originPartition)
	}
	if dl.originOffset >= 0 {
		s += "@" + strconv.FormatInt(dl.originOffset, 10)
	}
	return s
}

func (c *cli) dlq(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, dlqUsage)
		return usageErrorf("dlq: want list or replay")
	}
	switch args[0] {
	case "list":
		return c.dlqList(ctx, args[1:])
	case "replay":
		return c.dlqReplay(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, dlqUsage)
		return errHelp
	}
	fmt.Fprint(c.stderr, dlqUsage)
	return usageErrorf("dlq: unknown command %q (want list or replay)", args[0])
}

// readDeadLetters reads the selected dead letters present now.
func readDeadLetters(ctx context.Context, b *broker, sel dlqSelection) ([]deadLetter, error) {
	spans, err := b.spansOf(ctx, sel.dlqTopic, sel.partition, sel.from, sel.to)
	if err != nil {
		return nil, err
	}
	var out []deadLetter
	err = b.readSpans(ctx, sel.dlqTopic, spans, func(m kafka.Message) error {
		dl := parseDeadLetter(m)
		if sel.origin == "" || dl.origin == sel.origin {
			out = append(out, dl)
		}
		return nil
	})
	return out, err
}

func (c *cli) dlqList(ctx context.Context, args []string) error {
	var (
		sel     dlqSelection
		preview int
	)
	fs := c.flagSet("dlq list", "", dlqListAbout)
	sel.register(fs)
	fs.IntVar(&preview, "preview", 100, "characters of the value to show (0 = none)")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "dlq list: unexpected argument %q", operands[0])
	}
	addrs, err := sel.check()
	if err != nil {
		return err
	}
	b := newBroker(addrs, fs.kafka)
	defer b.close()
	dls, err := readDeadLetters(ctx, b, sel)
	if err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	for _, dl := range dls {
		line := fmt.Sprintf("%s from=%s failed_at=%s field=%s error=%q key=%q",
			dl.where(), dl.from(), orDash(dl.failedAt), orDash(dl.field), dl.reason, dl.msg.Key)
		if preview > 0 {
			line += " value=" + previewOf(dl.msg.Value, preview)
		}
		fmt.Fprintln(c.stdout, line)
	}
	fmt.Fprintf(c.stderr, "dlq list: %d dead letters\n", len(dls))
	return nil
}

// previewOf returns the start of a value on one line: runs of white space
// become one space, control characters and invalid UTF-8 are escaped, and
// "…" marks a cut.
func previewOf(v []byte, n int) string {
	var sb strings.Builder
	runes, space := 0, false
	for i := 0; i < len(v) && runes < n; {
		r, size := utf8.DecodeRune(v[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, v[i-size])
		case unicode.IsSpace(r):
			if space {
				continue
			}
			space = true
			sb.WriteByte(' ')
			runes++
			continue
		case !unicode.IsPrint(r):
			fmt.Fprintf(&sb, "%q", r)
		default:
			sb.WriteRune(r)
		}
		space = false
		runes++
		if runes == n && i < len(v) {
			sb.WriteString("…")
		}
	}
	if sb.Len() == 0 {
		return `""`
	}
	return sb.String()
}

func (c *cli) dlqReplay(ctx context.Context, args []string) error {
	var (
		sel                dlqSelection
		all, dryRun, force bool
		dec                events.Decoder
		inputs             inputTopics
	)
	fs := c.flagSet("dlq replay", "", dlqReplayAbout)
	sel.register(fs)
	fs.inputs(&inputs)
	fs.BoolVar(&all, "all", false, "replay every dead letter (narrowed by --topic and --partition)")
	fs.BoolVar(&dryRun, "dry-run", false, "report what would be replayed, send nothing")
	fs.BoolVar(&force, "force", false, "also send the dead letters that are still invalid")
	fs.decoder(&dec)
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "dlq replay: unexpected argument %q", operands[0])
	}
	ranged := sel.from >= 0 || sel.to >= 0
	switch {
	case all && ranged:
		return c.usageOf(fs, "dlq replay: --all and --offset-from/--offset-to exclude each other")
	case !all && !ranged:
		return c.usageOf(fs, "dlq replay: say which dead letters: --all, or --offset-from and/or --offset-to")
	}
	addrs, err := sel.check()
	if err != nil {
		return err
	}
	if err := checkTopics(map[string]string{
		"topic-payments": inputs.Payments, "topic-logins": inputs.Logins,
		"topic-repayments": inputs.Repayments, "topic-profiles": inputs.Profiles, "topic-operator": inputs.Operator, "topic-dlq": sel.dlqTopic,
	}); err != nil {
		return err
	}

	b := newBroker(addrs, fs.kafka)
	defer b.close()
	dls, err := readDeadLetters(ctx, b, sel)
	if err != nil {
		return fmt.Errorf("dlq replay: %w", err)
	}

	type item struct {
		msg       kafka.Message
		partition int // the original partition, -1 = unknown
	}
	var (
		plan                    []item
		noOrigin, invalid, sent int
	)
	verb := "replay"
	if dryRun {
		verb = "would replay"
	}
	for _, dl := range dls {
		if !inputs.isInput(dl.origin) {
			// Only to the configured input topics: the header is data from
			// the dead letter, not a destination to trust.
			noOrigin++
			fmt.Fprintf(c.stderr, "%s: skipped: its %s header (%q) is not one of the input topics (--topic-*)\n", dl.where(), producers.HeaderTopic, dl.origin)
			continue
		}
		if dl.truncated != "" {
			noOrigin++
			fmt.Fprintf(c.stderr, "%s: skipped: only a prefix of the record was kept (%s %s); the original is %s/%d@%d (fenqictl rewind)\n",
				dl.where(), producers.HeaderTruncated, dl.truncated, dl.origin, dl.originPartition, dl.originOffset)
			continue
		}
		hs := make([]events.Header, len(dl.originalHeaders))
		for i, h := range dl.originalHeaders {
			hs[i] = events.Header{Key: h.Key, Value: h.Value}
		}
		ev, err := dec.Decode(dl.msg.Key, hs, dl.msg.Value)
		if err == nil && inputs.isInput(dl.origin) && inputs.of(ev.Type) != dl.origin {
			// fenqid refuses an event on another type's topic, as it did.
			err = fmt.Errorf("events of type %q do not belong on topic %q", ev.Type, dl.origin)
		}
		if err != nil {
			if !force {
				invalid++
				fmt.Fprintf(c.stderr, "%s: skipped: still invalid: %v (--force sends it anyway)\n", dl.where(), err)
				continue
			}
			fmt.Fprintf(c.stderr, "%s: still invalid, sent anyway (--force): %v\n", dl.where(), err)
		}
		target := dl.origin
		if dl.originPartition >= 0 {
			target += "/" + strconv.Itoa(dl.originPartition)
		}
		id := ev.ID
		if err != nil {
			id = "?"
		}
		fmt.Fprintf(c.stdout, "%s %s -> %s key=%q event=%s\n", verb, dl.where(), target, dl.msg.Key, id)
		plan = append(plan, item{
			msg:       kafka.Message{Topic: dl.origin, Key: dl.msg.Key, Value: dl.msg.Value, Headers: dl.originalHeaders},
			partition: dl.originPartition,
		})
	}

	var werr error
	if !dryRun && len(plan) > 0 {
		// One write per run of records bound for the same partition, in
		// dead-letter order, so that a user's replayed events keep their order.
		bal := &pinnedBalancer{}
		w := b.writer(bal)
		for i := 0; i < len(plan) && werr == nil; {
			j := i + 1
			for j < len(plan) && plan[j].msg.Topic == plan[i].msg.Topic && plan[j].partition == plan[i].partition {
				j++
			}
			msgs := make([]kafka.Message, 0, j-i)
			for _, it := range plan[i:j] {
				msgs = append(msgs, it.msg)
			}
			bal.partition = plan[i].partition
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				werr = fmt.Errorf("write %d records to %s: %w", len(msgs), plan[i].msg.Topic, err)
				break
			}
			sent += len(msgs)
			i = j
		}
		if err := w.Close(); err != nil && werr == nil {
			werr = fmt.Errorf("close writer: %w", err)
		}
	}

	summary := fmt.Sprintf("dlq replay: %d selected, %d replayed, %d still invalid (skipped), %d without a usable origin (skipped)", len(dls), sent, invalid, noOrigin)
	if dryRun {
		summary = fmt.Sprintf("dlq replay: dry run: %d selected, %d would be replayed, %d still invalid (skipped), %d without a usable origin (skipped)", len(dls), len(plan), invalid, noOrigin)
	}
	fmt.Fprintln(c.stdout, summary)
	if werr != nil {
		return fmt.Errorf("dlq replay: %d of %d not sent: %w", len(plan)-sent, len(plan), werr)
	}
	return nil
}

// pinnedBalancer sends every record of a WriteMessages call to partition
// when the topic has it, else where murmur2 of the key puts it. A replayed
// event thus returns to the partition it was first written to, beside the
// user's other events, whatever partitioner the upstream producer used.
// The writer calls Balance inside WriteMessages, on the caller's goroutine,
// so partition may be changed between calls (never during one).
type pinnedBalancer struct {
	partition int
	fallback  kafka.Murmur2Balancer
}

func (b *pinnedBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if b.partition >= 0 && slices.Contains(partitions, b.partition) {
		return b.partition
	}
	return b.fallback.Balance(msg, partitions...)
}
