package state_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// BenchmarkApply compares applying a batch of 500 events at once (one read
// of the batch's users, one compare-and-set script over them) with one
// event at a time (a read and a write per event, one after the other), on
// the same Redis. The figure to read is events/s.
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
	for _, mode := range []string{"batch500_two_round_trips", "two_round_trips_per_event"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var offset int64
			items := benchBatch(rng, batch, 20_000, &offset)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				items = benchBatch(rng, batch, 20_000, &offset)
				b.StartTimer()
				if mode == "batch500_two_round_trips" {
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

// typicalUser is the events of a user with six months of typical activity
// up to now: about 3 payments and 2 logins a day, a red packet every third
// day, a login from a laptop in another city every month, a profile and an
// open bill.
func typicalUser(uid string) []state.Item {
	rng := rand.New(rand.NewPCG(7, 7))
	var items []state.Item
	n := 0
	next := func() string { n++; return fmt.Sprintf("evt-%08d", n) }
	for d := 183; d >= 0; d-- {
		day := now.AddDate(0, 0, -d)
		for range 3 {
			at := day.Add(-time.Duration(rng.IntN(12*3600)) * time.Second)
			items = append(items, state.Item{Event: payment(next(), uid, at, int64(1_000+rng.IntN(30_000)), events.SceneEcommerce, "phone-1"), Topic: 1, Offset: int64(n)})
		}
		if d%3 == 0 {
			items = append(items, state.Item{Event: payment(next(), uid, day, 8_800, events.SceneRedPacket, "phone-1"), Topic: 1, Offset: int64(n)})
		}
		for range 2 {
			items = append(items, state.Item{Event: login(next(), uid, day, "phone-1", "shanghai"), Topic: 2, Offset: int64(n)})
		}
		if d%30 == 0 {
			items = append(items, state.Item{Event: login(next(), uid, day, "laptop", "hangzhou"), Topic: 2, Offset: int64(n)})
		}
	}
	return append(items,
		state.Item{Event: &events.Event{ID: next(), Type: events.TypeProfile, Subject: uid, Time: now,
			Profile: &events.Profile{UserID: uid, PayScore: 720, RealNameVerified: true, IdentityComplete: true,
				CardBoundSince: "2023-04-01", WealthBalanceFen: 3_500_000}}, Topic: 4, Offset: int64(n)},
		state.Item{Event: &events.Event{ID: next(), Type: events.TypeRepaymentDue, Subject: uid, Time: now,
			Due: &events.RepaymentDue{UserID: uid, BillID: "bill-2026-11", AmountFen: 123_456, DueAt: now.AddDate(0, 0, 10)}}, Topic: 3, Offset: int64(n)},
	)
}

// TestMemoryPerUser measures what a user with six months of typical
// activity (typicalUser) costs in Redis, and asserts it is at most 1 KiB:
// the MEMORY USAGE of its key, plus its share of every index it is in (the
// phase index, the overdue checks of its open bills, a pending recompute
// trigger if any), each index's MEMORY USAGE (every member counted) over
// its members, among many users so that the sorted sets have their large
// (skiplist) encoding. The other users are known with an open bill each,
// and every first-activity trigger is recomputed and saved, as fenqid
// would, so the typical user holds a quota too. The figures are in the log
// (go test -run MemoryPerUser -v ./state/).
func TestMemoryPerUser(t *testing.T) {
	t.Parallel()
	const budget = 1024
	const others = 1999
	rdb := testenv.Redis(t)
	s, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	const uid = "u0000000"
	items := typicalUser(uid)
	for i := 0; i < len(items); i += 500 {
		if _, err := s.Apply(ctx, items[i:min(i+500, len(items))]); err != nil {
			t.Fatal(err)
		}
	}
	// The other users: ids of the same length, each with a payment and an
	// open bill.
	var fill []state.Item
	for i := 1; i <= others; i++ {
		id := fmt.Sprintf("u%07d", i)
		fill = append(fill,
			state.Item{Event: payment("p-"+id, id, now, 1_000, events.SceneEcommerce, "phone-1"), Topic: 1, Offset: 1},
			state.Item{Event: &events.Event{ID: "d-" + id, Type: events.TypeRepaymentDue, Subject: id, Time: now,
				Due: &events.RepaymentDue{UserID: id, BillID: "bill-2026-11", AmountFen: 50_000, DueAt: now.AddDate(0, 0, 10)}}, Topic: 3, Offset: 1})
	}
	if _, err := s.Apply(ctx, fill); err != nil {
		t.Fatal(err)
	}
	// Recompute every trigger (first activity, the profile), as fenqid does.
	for {
		b, err := s.ClaimRecomputes(ctx, now, 1000, time.Minute, state.Interval(90))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Claims) == 0 {
			break
		}
		if b.Periodic() {
			t.Fatalf("a periodic batch at the start")
		}
		qs := make([]state.Quota, len(b.Claims))
		for i, c := range b.Claims {
			qs[i] = state.Quota{UserID: c.Member, QuotaFen: 1_234_500, Seq: 1}
		}
		if err := s.SaveQuotas(ctx, b, qs); err != nil {
			t.Fatal(err)
		}
	}

	users := int64(others + 1)
	keyBytes, err := s.MemoryUsage(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	valueBytes := rdb.StrLen(ctx, state.UserKey(uid)).Val()
	u, err := s.User(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if !u.HasQuota || len(u.Bills) != 1 || u.Profile == nil {
		t.Fatalf("the typical user: quota %v, %d bills, profile %v", u.HasQuota, len(u.Bills), u.Profile != nil)
	}
	// index is one sorted set or hash: its MEMORY USAGE over every member,
	// its member count, and the typical user's share (members × the mean).
	type index struct {
		key           string
		bytes, n, has int64
	}
	var idx []index
	measure := func(key string, has int64) {
		t.Helper()
		b, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		var n int64
		switch typ := rdb.Type(ctx, key).Val(); typ {
		case "zset":
			n = rdb.ZCard(ctx, key).Val()
			if enc := rdb.ObjectEncoding(ctx, key).Val(); has > 0 && enc != "skiplist" {
				t.Fatalf("%s is %s with %d members: too few to measure", key, enc, n)
			}
		case "hash":
			n = rdb.HLen(ctx, key).Val()
		case "none":
		default:
			t.Fatalf("%s is a %s", key, typ)
		}
		if has > 0 && n < 1000 {
			t.Fatalf("%s has %d members: too few to measure a share", key, n)
		}
		idx = append(idx, index{key, b, n, has})
	}
	inZ := func(key string) int64 {
		if err := rdb.ZScore(ctx, key, uid).Err(); err == nil {
			return 1
		} else if !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return 0
	}
	measure(state.PhaseKey, inZ(state.PhaseKey))
	if got := rdb.ZCard(ctx, state.PhaseKey).Val(); got != users {
		t.Fatalf("the phase index holds %d users, want %d", got, users)
	}
	measure(state.TimersKey, int64(len(u.Bills))) // one overdue check per open bill
	if got := rdb.ZCard(ctx, state.TimersKey).Val(); got != users {
		t.Fatalf("%d overdue checks, want one per user (%d)", got, users)
	}
	measure(state.RecomputeKey, inZ(state.RecomputeKey))
	var due int64
	if rdb.HExists(ctx, state.RecomputeDueKey, uid).Val() {
		due = 1
	}
	measure(state.RecomputeDueKey, due)

	total := float64(keyBytes)
	t.Logf("typical user (%d events; %d daily, %d monthly buckets, %d places, %d open bills, a profile, a quota): key %s: %d bytes (value %d bytes)",
		len(items), len(u.Days), len(u.Months), len(u.Devices)+len(u.Cities), len(u.Bills), state.UserKey(uid), keyBytes, valueBytes)
	for _, x := range idx {
		share := 0.0
		if x.has > 0 {
			share = float64(x.has) * float64(x.bytes) / float64(x.n)
		}
		total += share
		t.Logf("  %-26s %8d bytes / %5d members; the user's share (%d members): %6.1f bytes", x.key, x.bytes, x.n, x.has, share)
	}
	t.Logf("total per typical user: %.1f bytes (budget %d)", total, budget)
	if total > budget {
		t.Errorf("a typical user takes %.1f bytes in Redis, more than %d", total, budget)
	}
}
