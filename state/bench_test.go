package state_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

// benchBatch makes n events over users users: a realistic mix of payments
// and logins, each with a fresh id and offset.
func benchBatch(rng *rand.Rand, n, users int, offset *int64) []state.Item {
	scenes := []events.Scene{events.SceneEcommerce, events.SceneLocalLife, events.SceneOfflineRetail, events.SceneTransfer, events.SceneRedPacket}
	items := make([]state.Item, n)
	for i := range items {
		*offset++
		uid := fmt.Sprintf("u%06d", rng.IntN(users))
		id := fmt.Sprintf("e%d", *offset)
		at := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
		var e *events.Event
		if rng.IntN(10) < 6 {
			e = payment(id, uid, at, int64(500+rng.IntN(50_000)), scenes[rng.IntN(len(scenes))], "dev-"+uid)
			items[i] = state.Item{Event: e, Topic: 1, Partition: 0, Offset: *offset}
		} else {
			e = login(id, uid, at, "dev-"+uid, "shanghai")
			items[i] = state.Item{Event: e, Topic: 2, Partition: 0, Offset: *offset}
		}
	}
	return items
}

// BenchmarkApply compares applying a batch of 500 events in one round trip
// (one script over the batch) with one round trip per event (the same
// script called once per event, one after the other), on the same Redis.
// The figure to read is events/s.
func BenchmarkApply(b *testing.B) {
	rdb := testenv.Redis(b)
	s, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	const batch = 500
	for _, mode := range []string{"batch500_one_round_trip", "one_round_trip_per_event"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var offset int64
			items := benchBatch(rng, batch, 20_000, &offset)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				items = benchBatch(rng, batch, 20_000, &offset)
				b.StartTimer()
				if mode == "batch500_one_round_trip" {
					if _, err := s.Apply(ctx, items); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for i := range items {
					if _, err := s.Apply(ctx, items[i:i+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestMemoryPerUser reports Redis's MEMORY USAGE over the keys of a user
// with six months of typical activity (about 3 payments and 2 logins a day,
// transfers now and then, a profile, an open bill). It asserts only that
// the hashes kept their compact encoding; the figure is in the log
// (go test -run MemoryPerUser -v ./state/).
func TestMemoryPerUser(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	s, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	var items []state.Item
	n := 0
	next := func() string { n++; return fmt.Sprintf("evt-%08d", n) }
	for d := 183; d >= 0; d-- {
		day := now.AddDate(0, 0, -d)
		for range 3 {
			at := day.Add(-time.Duration(rng.IntN(12*3600)) * time.Second)
			items = append(items, state.Item{Event: payment(next(), "typical", at, int64(1_000+rng.IntN(30_000)), events.SceneEcommerce, "phone-1"), Topic: 1, Offset: int64(n)})
		}
		if d%3 == 0 {
			items = append(items, state.Item{Event: payment(next(), "typical", day, 8_800, events.SceneRedPacket, "phone-1"), Topic: 1, Offset: int64(n)})
		}
		for range 2 {
			items = append(items, state.Item{Event: login(next(), "typical", day, "phone-1", "shanghai"), Topic: 2, Offset: int64(n)})
		}
		if d%30 == 0 {
			items = append(items, state.Item{Event: login(next(), "typical", day, "laptop", "hangzhou"), Topic: 2, Offset: int64(n)})
		}
	}
	items = append(items,
		state.Item{Event: &events.Event{ID: next(), Type: events.TypeProfile, Subject: "typical", Time: now,
			Profile: &events.Profile{UserID: "typical", PayScore: 720, RealNameVerified: true, IdentityComplete: true,
				CardBoundSince: "2023-04-01", WealthBalanceFen: 3_500_000}}, Topic: 4, Offset: int64(n)},
		state.Item{Event: &events.Event{ID: next(), Type: events.TypeRepaymentDue, Subject: "typical", Time: now,
			Due: &events.RepaymentDue{UserID: "typical", BillID: "bill-2026-11", AmountFen: 123_456, DueAt: now.AddDate(0, 0, 10)}}, Topic: 3, Offset: int64(n)},
	)
	for i := 0; i < len(items); i += 500 {
		if _, err := s.Apply(ctx, items[i:min(i+500, len(items))]); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "m", "x", "p", "b"} {
		t.Logf("key %s: %d bytes", k, rdb.MemoryUsage(ctx, "{u:typical}:"+k).Val())
	}
	total, err := s.MemoryUsage(ctx, "typical")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.User(ctx, "typical")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("user with 6 months of activity (%d events): %d bytes in Redis (%d daily, %d monthly buckets, %d places, %d bills)",
		len(items), total, len(u.Days), len(u.Months), len(u.Devices)+len(u.Cities), len(u.Bills))
	for _, k := range []string{"{u:typical}:a", "{u:typical}:m", "{u:typical}:b"} {
		enc, err := rdb.ObjectEncoding(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if enc != "listpack" {
			t.Errorf("%s is %s, want listpack", k, enc)
		}
	}
}
