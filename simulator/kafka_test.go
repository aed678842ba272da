package simulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/simulator"
)

// TestRunIntoKafka writes simulated traffic through a real kafka-go Writer
// into an in-process broker and reads every topic back.
func TestRunIntoKafka(t *testing.T) {
	topics := []string{"fenqi.payments", "fenqi.logins", "fenqi.repayments", "fenqi.profiles"}
	k := testenv.Kafka(t, topics...)
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Addrs()...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const total = 400
	s := simulator.New(simulator.Config{Seed: 11, Users: 100, Rate: 2000, MaxEvents: total, MalformedRatio: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Run(ctx, w); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := 0
	var dec events.Decoder
	for _, topic := range topics {
		for _, m := range testenv.ReadAll(t, k.Addrs(), topic) {
			hs := make([]events.Header, len(m.Headers))
			for i, h := range m.Headers {
				hs[i] = events.Header{Key: h.Key, Value: h.Value}
			}
			if _, err := dec.Decode(m.Key, hs, m.Value); err != nil {
				t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
			}
			got++
		}
	}
	if got != total {
		t.Fatalf("read back %d events, want %d", got, total)
	}
}

// TestRunHistoryIntoKafka: the same with a back-dated history, waited for
// with AfterHistory: the history, the refreshed profiles and the live
// events all read back and decode.
func TestRunHistoryIntoKafka(t *testing.T) {
	topics := []string{"fenqi.payments", "fenqi.logins", "fenqi.repayments", "fenqi.profiles"}
	k := testenv.Kafka(t, topics...)
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Addrs()...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const users, live = 30, 200
	var history int
	var from time.Time
	s := simulator.New(simulator.Config{Seed: 12, Users: users, Rate: 2000, MaxEvents: live, MalformedRatio: -1, HistoryDays: 20,
		AfterHistory: func(_ context.Context, h simulator.HistoryStats) error { history, from = h.Events, h.From; return nil }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx, w); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got, stamped := 0, 0
	dec := events.Decoder{}
	for _, topic := range topics {
		for _, m := range testenv.ReadAll(t, k.Addrs(), topic) {
			hs := make([]events.Header, len(m.Headers))
			for i, h := range m.Headers {
				hs[i] = events.Header{Key: h.Key, Value: h.Value}
			}
			e, err := dec.Decode(m.Key, hs, m.Value)
			if err != nil {
				t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
			}
			got++
			// The history's repayments are stamped with the window's
			// start (the watermark then holds overdue checks back until
			// they are applied); everything else when written.
			if old := m.Time.Before(from.Add(time.Second)); old {
				stamped++
				if topic != "fenqi.repayments" || !e.Time.Before(s.History().To) || !m.Time.Equal(from.Truncate(time.Millisecond)) {
					t.Fatalf("%s %s at %s stamped %s", topic, e.ID, e.Time, m.Time)
				}
			} else if topic == "fenqi.repayments" && e.Time.Before(s.History().To) {
				t.Fatalf("history repayment %s stamped %s, not %s", e.ID, m.Time, from)
			}
		}
	}
	if stamped == 0 {
		t.Fatal("no history repayment stamped with the window's start")
	}
	if history < users*20 || got != history+users+live {
		t.Fatalf("read back %d events, want %d of history + %d profiles + %d live", got, history, users, live)
	}
}
