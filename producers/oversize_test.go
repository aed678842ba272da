package producers_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/producers"
)

// A ~1 MiB input record (under the broker's limit) made a dead letter over
// kafka-go's 1 MiB batch limit, refused for good before it was sent: the
// dead letter now keeps a prefix of the value and says so.
func TestDeadLetterOfAHugeRecordFits(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, "fenqi.decisions", "fenqi.dlq")
	p, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	value := bytes.Repeat([]byte("x"), 1040000)
	orig := kafka.Message{Topic: "fenqi.payments", Partition: 1, Offset: 7, Key: []byte("u1"), Value: value,
		Headers: []kafka.Header{{Key: "ce_id", Value: []byte("e1")}}}
	dl := producers.DeadLetter{Msg: orig, Err: &events.DecodeError{Field: "value", Reason: "is 1040000 bytes, more than the limit of 65536"}, Field: "value"}
	if err := p.Publish(context.Background(), []events.Decision{decision("d1", "u1")}, []producers.DeadLetter{dl}); err != nil {
		t.Fatal(err)
	}
	got := testenv.ReadN(t, k.Addrs(), "fenqi.dlq", 1, 10*time.Second)[0]
	if header(got, producers.HeaderTruncated) != "1040000" {
		t.Fatalf("fenqi-truncated = %q, want the original size", header(got, producers.HeaderTruncated))
	}
	if len(got.Value) != producers.DeadLetterPrefixBytes || !bytes.Equal(got.Value, value[:len(got.Value)]) {
		t.Fatalf("value: %d bytes, want the first %d of the original", len(got.Value), producers.DeadLetterPrefixBytes)
	}
	for key, want := range map[string]string{"ce_id": "e1", producers.HeaderTopic: "fenqi.payments", producers.HeaderPartition: "1", producers.HeaderOffset: "7"} {
		if header(got, key) != want {
			t.Errorf("header %s = %q, want %q", key, header(got, key), want)
		}
	}
	testenv.ReadN(t, k.Addrs(), "fenqi.decisions", 1, 10*time.Second)
}

// Headers that do not fit either are left out, counted in a header.
func TestDeadLetterWithHugeHeaders(t *testing.T) {
	t.Parallel()
	p, err := producers.New(producers.Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("h"), 300000)
	orig := kafka.Message{Topic: "fenqi.payments", Value: []byte("{}"), Headers: []kafka.Header{
		{Key: "a", Value: []byte("1")}, {Key: "b", Value: big}, {Key: "c", Value: big}, {Key: "d", Value: big}, {Key: "e", Value: big},
	}}
	m := p.DeadLetterMessage(producers.DeadLetter{Msg: orig, Err: &events.DecodeError{Field: "value", Reason: "r"}})
	size := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value)
	}
	if size > producers.DefaultMaxRecordBytes {
		t.Fatalf("the dead letter is %d bytes, over %d", size, producers.DefaultMaxRecordBytes)
	}
	if header(m, producers.HeaderDroppedHeaders) != "1" || header(m, "a") != "1" || header(m, "d") == "" || header(m, "e") != "" {
		t.Fatalf("headers: dropped=%q a=%q d=%d e=%d bytes", header(m, producers.HeaderDroppedHeaders), header(m, "a"), len(header(m, "d")), len(header(m, "e")))
	}
	if string(m.Value) != "{}" || header(m, producers.HeaderTruncated) != "2" {
		t.Fatalf("value %q, truncated %q", m.Value, header(m, producers.HeaderTruncated))
	}
}

// A broker whose limit is lower than fenqi's refuses a record for good:
// the others in the same call are written, the refused one is replaced by
// a stand-in on the dead-letter topic, and Write does not fail (one bad
// record must not halt every partition).
func TestRecordRefusedByTheBrokerIsReplaced(t *testing.T) {
	t.Parallel()
	k := testenv.KafkaWith(t, embedded.KafkaConfig{Addr: "127.0.0.1:0", Topics: []string{"fenqi.decisions", "fenqi.dlq"},
		Partitions: 1, TopicConfigs: map[string]string{"max.message.bytes": "4096"}})
	var refused atomic.Int32
	p, err := producers.New(producers.Config{Brokers: k.Addrs(), OnRefused: func(string, error) { refused.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	big := decision("big", "u1")
	big.Data.ReasonCodes[0].Message = strings.Repeat("m", 8000)
	ds := []events.Decision{decision("d1", "u1"), big, decision("d2", "u2")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, ds, nil); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := map[string]bool{}
	for _, m := range testenv.ReadN(t, k.Addrs(), "fenqi.decisions", 2, 10*time.Second) {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[d.ID] = true
	}
	if !got["d1"] || !got["d2"] {
		t.Fatalf("decisions written: %v, want d1 and d2", got)
	}
	dl := testenv.ReadN(t, k.Addrs(), "fenqi.dlq", 1, 10*time.Second)[0]
	if header(dl, producers.HeaderDecisionID) != "big" || header(dl, producers.HeaderTopic) != "fenqi.decisions" ||
		!strings.Contains(header(dl, producers.HeaderError), "refused") || len(dl.Value) != 0 {
		t.Fatalf("stand-in: headers %v, value %d bytes", dl.Headers, len(dl.Value))
	}
	if n, _ := strconv.Atoi(header(dl, producers.HeaderTruncated)); n < 8000 {
		t.Fatalf("fenqi-truncated = %q, want the decision's size", header(dl, producers.HeaderTruncated))
	}
	if refused.Load() != 1 {
		t.Fatalf("OnRefused told of %d records, want 1", refused.Load())
	}
}
