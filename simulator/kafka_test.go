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
