package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
)

const produceAbout = `Read CloudEvents JSON from FILE (or standard input for -): one event object
per line (blank lines are skipped), or one JSON array of events. Every event is
validated with the decoder fenqid uses before anything is sent; each invalid
one is reported as FILE:LINE: error. If any is invalid nothing is sent, unless
--skip-invalid. Each valid event goes to its input topic by type (payment,
login, repayment.due/paid, profile), keyed by its subject (the user id), in
structured mode (content-type application/cloudevents+json), acknowledged by
all in-sync replicas.`

// rawEvent is one event of the input and the line it starts on.
type rawEvent struct {
	line  int
	value []byte
}

func (c *cli) produce(ctx context.Context, args []string) error {
	var (
		brokers     string
		topics      inputTopics
		skipInvalid bool
		dryRun      bool
		dec         events.Decoder
	)
	fs := c.flagSet("produce", "FILE|-", produceAbout)
	fs.brokers(&brokers)
	fs.inputs(&topics)
	fs.BoolVar(&skipInvalid, "skip-invalid", false, "send the valid events even when some are invalid (the invalid ones are reported and not sent)")
	fs.BoolVar(&dryRun, "dry-run", false, "validate and report only, send nothing")
	fs.decoder(&dec)
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 1 {
		return c.usageOf(fs, "produce: want one FILE (or - for standard input), got %d arguments", len(operands))
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := topics.check(); err != nil {
		return err
	}

	name, data, err := c.readInput(operands[0])
	if err != nil {
		return err
	}
	raws, err := splitEvents(data)
	if err != nil {
		return fmt.Errorf("produce: %s:%w", name, err)
	}
	if len(raws) == 0 {
		fmt.Fprintf(c.stdout, "produce: no events in %s\n", name)
		return nil
	}

	headers := []events.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}
	msgs := make([]kafka.Message, 0, len(raws))
	invalid := 0
	for _, r := range raws {
		ev, err := dec.Decode(nil, headers, r.value)
		if err != nil {
			invalid++
			fmt.Fprintf(c.stderr, "%s:%d: %v\n", name, r.line, err)
			continue
		}
		msgs = append(msgs, kafka.Message{
			Topic:   topics.of(ev.Type),
			Key:     []byte(ev.Subject),
			Value:   r.value,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}},
		})
	}
	fmt.Fprintf(c.stdout, "produce: read %d events from %s: %d valid, %d invalid\n", len(raws), name, len(msgs), invalid)
	if invalid > 0 && !skipInvalid {
		return fmt.Errorf("produce: %d of %d events are invalid; nothing sent (--skip-invalid sends the %d valid ones)", invalid, len(raws), len(msgs))
	}
	if dryRun {
		fmt.Fprintf(c.stdout, "produce: dry run, would send %d events: %s\n", len(msgs), topics.count(msgs))
		return nil
	}
	if len(msgs) == 0 {
		fmt.Fprintln(c.stdout, "produce: nothing to send")
		return nil
	}

	b := newBroker(addrs, fs.kafka)
	defer b.close()
	w := b.writer(nil)
	sent, werr := writeChunks(ctx, w, msgs, 1000)
	if err := w.Close(); err != nil && werr == nil {
		werr = fmt.Errorf("close writer: %w", err)
	}
	fmt.Fprintf(c.stdout, "produce: sent %d events: %s\n", sent, topics.count(msgs[:sent]))
	if werr != nil {
		return fmt.Errorf("produce: %d of %d events not sent: %w", len(msgs)-sent, len(msgs), werr)
	}
	return nil
}

// writeChunks writes msgs chunk by chunk and returns how many were
// acknowledged before the first failure.
func writeChunks(ctx context.Context, w *kafka.Writer, msgs []kafka.Message, chunk int) (int, error) {
	sent := 0
	for sent < len(msgs) {
		end := min(sent+chunk, len(msgs))
		if err := w.WriteMessages(ctx, msgs[sent:end]...); err != nil {
			return sent, fmt.Errorf("write events %d..%d to %v: %w", sent+1, end, w.Addr, err)
		}
		sent = end
	}
	return sent, nil
}

// readInput reads the whole input file, or standard input for "-".
func (c *cli) readInput(arg string) (name string, data []byte, err error) {
	if arg == "-" {
		data, err = io.ReadAll(c.stdin)
		if err != nil {
			return "", nil, fmt.Errorf("produce: read standard input: %w", err)
		}
		return "stdin", data, nil
	}
	data, err = os.ReadFile(arg)
	if err != nil {
		return "", nil, fmt.Errorf("produce: %w", err)
	}
	return arg, data, nil
}

// of returns the topic of an input event type.
func (t inputTopics) of(typ string) string {
	switch typ {
	case events.TypePayment:
		return t.Payments
	case events.TypeLogin:
		return t.Logins
	case events.TypeRepaymentDue, events.TypeRepaymentPaid:
		return t.Repayments
	case events.TypeProfile:
		return t.Profiles
	case events.TypeOperator:
		return t.Operator
	}
	return "" // not an input type: the decoder refused it already
}

// isInput reports whether topic is one of the input topics.
func (t inputTopics) isInput(topic string) bool {
	return slices.Contains(t.list(), topic)
}

// count says how many of msgs go to each topic ("fenqi.payments 3, …").
func (t inputTopics) count(msgs []kafka.Message) string {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.Topic]++
	}
	var parts []string
	for _, topic := range t.list() {
		if n[topic] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", topic, n[topic]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

var utf8BOM = []byte("\xef\xbb\xbf")

// splitEvents splits the input into events: a JSON array of events when
// the first non-blank character is '[', otherwise one event per non-blank
// line. Array elements are compacted. A malformed array is an error
// ("LINE: reason", the caller prefixes the file name); a malformed line is
// left for the decoder to report.
func splitEvents(data []byte) ([]rawEvent, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		return splitArray(data)
	}
	var out []rawEvent
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		out = append(out, rawEvent{line: i + 1, value: line})
	}
	return out, nil
}

func splitArray(data []byte) ([]rawEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) error {
		off := dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		return fmt.Errorf("%d: not a JSON array of events: %w", lineAt(data, off), err)
	}
	if _, err := dec.Token(); err != nil { // '['
		return nil, fail(err)
	}
	var out []rawEvent
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(err)
		}
		start := dec.InputOffset() - int64(len(raw))
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fail(err)
		}
		out = append(out, rawEvent{line: lineAt(data, start), value: buf.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fail(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("unexpected data after the closing ]")
		}
		return nil, fail(err)
	}
	return out, nil
}

// lineAt returns the 1-based line of byte offset off of data.
func lineAt(data []byte, off int64) int {
	off = max(0, min(off, int64(len(data))))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}
