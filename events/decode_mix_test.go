package events_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/simulator"
)

// The simulator's traffic: a realistic mix of event types and values.

var simNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// simDecoder decodes the simulator's events (whose times may run a little
// ahead of its clock, as in simulator_test.go).
var simDecoder = events.Decoder{Now: func() time.Time { return simNow.Add(time.Hour) }}

type simRecord struct {
	key, value []byte
}

// simTraffic returns n records of the simulator in its steady state (past
// the first profile of every user), with the given share of malformed ones.
func simTraffic(n int, malformed float64) []simRecord {
	const users = 500
	s := simulator.New(simulator.Config{Users: users, Seed: 7, MalformedRatio: malformed,
		Now: func() time.Time { return simNow }})
	for range 20 * users {
		s.Next()
	}
	recs := make([]simRecord, n)
	for i := range recs {
		_, key, value := s.Next()
		recs[i] = simRecord{key, value}
	}
	return recs
}

// ceHeaders are the headers the simulator writes (simulator.Run).
var ceHeaders = []events.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}

func TestDecodeSimulatorMatchesOracle(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	mutations := 10
	if testing.Short() {
		mutations = 1
	}
	types := map[string]int{}
	for _, r := range simTraffic(3000, 0.2) {
		events.CheckSameAsOracle(t, simDecoder, r.key, ceHeaders, r.value)
		if e, err := simDecoder.Decode(r.key, ceHeaders, r.value); err == nil {
			types[e.Type]++
		}
		for range mutations {
			events.CheckSameAsOracle(t, simDecoder, r.key, ceHeaders, events.MutateJSON(rng, r.value))
		}
	}
	if len(types) != 5 {
		t.Fatalf("the traffic has only the types %v", types)
	}
}

// BenchmarkDecodeMix decodes the simulator's traffic (no malformed
// events), with Decode and with the oracle (decode_oracle_test.go); ns/op is
// per event.
func BenchmarkDecodeMix(b *testing.B) {
	recs := simTraffic(4096, -1)
	var size int
	for _, r := range recs {
		size += len(r.value)
	}
	for _, c := range []struct {
		name   string
		decode func(events.Decoder, []byte, []events.Header, []byte) (events.Event, error)
	}{
		{"new", events.Decoder.Decode},
		{"oracle", events.Decoder.DecodeOracle},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(size / len(recs)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := recs[i%len(recs)]
				if _, err := c.decode(simDecoder, r.key, ceHeaders, r.value); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
