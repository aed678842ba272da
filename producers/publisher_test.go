package producers_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/producers"
)

func decision(id, user string) events.Decision {
	return events.Decision{ID: id, Type: events.TypeDecisionAlert, Subject: user, Time: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC),
		Data: events.DecisionData{UserID: user, CausationID: "evt-" + id, Rule: "night_large_payment", Action: "SMS_VERIFY",
			ReasonCodes: []events.ReasonCode{{Code: "FENQI_RISK_NIGHT_LARGE", Message: "m", Advice: "a"}}, PolicyVersion: "v1"}}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestPublishDecisionsAndDeadLetters(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, "fenqi.decisions", "fenqi.dlq")
	p, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	orig := kafka.Message{Topic: "fenqi.payments", Partition: 2, Offset: 41, Key: []byte("u1"), Value: []byte(`{"broken"`),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	dl := producers.DeadLetter{Msg: orig, Err: &events.DecodeError{Field: "value", Reason: "not JSON"}, Field: "value",
		At: time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)}
	if err := p.Publish(context.Background(), []events.Decision{decision("d1", "u1"), decision("d2", "u2")}, []producers.DeadLetter{dl}); err != nil {
		t.Fatal(err)
	}
	ds := testenv.ReadN(t, k.Addrs(), "fenqi.decisions", 2, 10*time.Second)
	for _, m := range ds {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != d.Subject || header(m, "content-type") != events.ContentTypeCloudEvents {
			t.Fatalf("decision record: key %q, headers %v", m.Key, m.Headers)
		}
	}
	dlq := testenv.ReadN(t, k.Addrs(), "fenqi.dlq", 1, 10*time.Second)[0]
	if string(dlq.Key) != "u1" || string(dlq.Value) != `{"broken"` {
		t.Fatalf("dead letter lost the original record: %q %q", dlq.Key, dlq.Value)
	}
	want := map[string]string{
		producers.HeaderError: `events: field "value": not JSON`, producers.HeaderErrorField: "value",
		producers.HeaderTopic: "fenqi.payments", producers.HeaderPartition: "2", producers.HeaderOffset: "41",
		producers.HeaderFailedAt: "2026-11-20T03:00:00Z", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	for key, v := range want {
		if got := header(dlq, key); got != v {
			t.Errorf("header %s = %q, want %q", key, got, v)
		}
	}
}

// A broker that refuses produce requests for a while (not the leader):
// Publish retries until it succeeds, and nothing is lost.
func TestPublishRetriesTransientBrokerErrors(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, "fenqi.decisions", "fenqi.dlq")
	var refused atomic.Int32
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) > 5 {
			return nil, nil, false // let the broker handle it from now on
		}
		k.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var retries atomic.Int32
	p, err := producers.New(producers.Config{Brokers: k.Addrs(), OnRetry: func(string, error, time.Duration) { retries.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Publish(ctx, []events.Decision{decision("d1", "u1")}, nil); err != nil {
		t.Fatal(err)
	}
	if refused.Load() < 5 {
		t.Fatalf("the broker refused only %d requests: the fault was not injected", refused.Load())
	}
	if retries.Load() == 0 {
		t.Fatal("kafka-go's own attempts absorbed the fault: fenqi's retry path was not exercised")
	}
	testenv.ReadN(t, k.Addrs(), "fenqi.decisions", 1, 10*time.Second)
}

func TestPublishPermanentErrorIsReturned(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, "fenqi.decisions", "fenqi.dlq")
	p, err := producers.New(producers.Config{Brokers: k.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	bad := decision("d1", "u1")
	bad.Time = time.Time{} // MarshalDecision refuses a decision without a time
	err = p.Publish(context.Background(), []events.Decision{bad}, nil)
	if err == nil || !strings.Contains(err.Error(), "d1") {
		t.Fatalf("want an error naming the decision, got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]producers.Config{
		"no brokers":         {},
		"same topics":        {Brokers: []string{"x:1"}, DecisionsTopic: "t", DLQTopic: "t"},
		"batch timeout > 1s": {Brokers: []string{"x:1"}, BatchTimeout: 2 * time.Second},
		"unknown codec":      {Brokers: []string{"x:1"}, Compression: "brotli"},
	} {
		if _, err := producers.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Every codec fenqid offers round-trips through a real broker to a
// kafka-go reader.
func TestPublishCompressed(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			k := testenv.Kafka(t, "fenqi.decisions", "fenqi.dlq")
			p, err := producers.New(producers.Config{Brokers: k.Addrs(), Compression: codec})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			want := []events.Decision{decision("c1", "u1"), decision("c2", "u1"), decision("c3", "u1")}
			if err := p.Publish(context.Background(), want, nil); err != nil {
				t.Fatal(err)
			}
			got := testenv.ReadN(t, k.Addrs(), "fenqi.decisions", len(want), 10*time.Second)
			for i, m := range got {
				d, err := events.DecodeDecision(m.Value)
				if err != nil {
					t.Fatal(err)
				}
				if d.ID != want[i].ID {
					t.Errorf("record %d: decision %s, want %s", i, d.ID, want[i].ID)
				}
			}
		})
	}
}

// DecisionMessages gives the records DecisionMessage gives, one each, in
// one buffer: 300 decisions (past one buffer's worth), each value and key
// its own and unchanged by the ones after it, each with headers of its
// own; a decision that cannot be encoded is named in the error.
func TestDecisionMessagesAreDecisionMessage(t *testing.T) {
	t.Parallel()
	p, err := producers.New(producers.Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var ds []events.Decision
	for i := range 300 {
		d := decision(fmt.Sprintf("d%03d", i), fmt.Sprintf("user-%d", i))
		d.Data.ReasonCodes[0].Message = strings.Repeat("长", i*10) // from a few bytes to 9 KB
		ds = append(ds, d)
	}
	msgs, err := p.DecisionMessages(ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(ds) {
		t.Fatalf("%d records for %d decisions", len(msgs), len(ds))
	}
	for i, d := range ds {
		want, err := p.DecisionMessage(d)
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[i]
		if m.Topic != want.Topic || !bytes.Equal(m.Key, want.Key) || !bytes.Equal(m.Value, want.Value) || !reflect.DeepEqual(m.Headers, want.Headers) {
			t.Fatalf("record %d: %s %q %.60q %v, want %s %q %.60q %v", i, m.Topic, m.Key, m.Value, m.Headers, want.Topic, want.Key, want.Value, want.Headers)
		}
		if cap(m.Value) != len(m.Value) || cap(m.Key) != len(m.Key) || cap(m.Headers) != 1 {
			t.Fatalf("record %d: an append to its value, key or headers would write over another's", i)
		}
	}
	bad := append(slices.Clone(ds[:2]), events.Decision{ID: "d-bad", Type: events.TypeDecisionAlert, Time: ds[0].Time})
	if _, err := p.DecisionMessages(bad); err == nil || !strings.Contains(err.Error(), "d-bad") {
		t.Fatalf("a decision with no subject: %v, want an error naming it", err)
	}
}
