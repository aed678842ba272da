package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

var shanghai = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// now is 2026-11-20 12:00 in Shanghai.
var now = time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)

func newStore(t testing.TB) *state.Store {
	t.Helper()
	s, _ := newStoreRedis(t)
	return s
}

// newStoreRedis is a store at the clock now, its scripts loaded, and its
// Redis client.
func newStoreRedis(t testing.TB) (*state.Store, *redis.Client) {
	t.Helper()
	return newClockedStore(t, &now)
}

// newClockedStore is a store whose clock reads *clock, its scripts loaded,
// and its Redis client.
func newClockedStore(t testing.TB, clock *time.Time) (*state.Store, *redis.Client) {
	t.Helper()
	rdb := testenv.Redis(t)
	s, err := state.New(rdb, state.Config{Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

func payment(id, user string, at time.Time, fen int64, scene events.Scene, device string) *events.Event {
	return &events.Event{ID: id, Type: events.TypePayment, Subject: user, Time: at,
		Payment: &events.Payment{UserID: user, AmountFen: fen, Currency: "CNY", Scene: scene,
			MerchantID: "m1", DeviceID: device, City: "shanghai", Auth: events.AuthFace}}
}

func login(id, user string, at time.Time, device, city string) *events.Event {
	return &events.Event{ID: id, Type: events.TypeLogin, Subject: user, Time: at,
		Login: &events.Login{UserID: user, DeviceID: device, City: city, IP: "10.0.0.1", Auth: events.AuthPassword}}
}

func apply(t testing.TB, s *state.Store, items ...state.Item) []state.Outcome {
	t.Helper()
	out, err := s.Apply(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(items) {
		t.Fatalf("got %d outcomes for %d items", len(out), len(items))
	}
	return out
}

func user(t testing.TB, s *state.Store, id string) *state.User {
	t.Helper()
	u, err := s.User(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCountersByDayMonthAndClass(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// 00:30 Shanghai on 20 Nov is 16:30 UTC on 19 Nov: it counts for the 20th.
	early := time.Date(2026, 11, 19, 16, 30, 0, 0, time.UTC)
	out := apply(t, s,
		state.Item{Event: payment("p1", "u1", now, 12_345, events.SceneEcommerce, "dev1"), Topic: 1, Partition: 0, Offset: 10},
		state.Item{Event: payment("p2", "u1", early, 100, events.SceneRedPacket, "dev1"), Topic: 1, Partition: 0, Offset: 11},
		state.Item{Event: payment("p3", "u1", now, 5_000, events.SceneBillPay, "dev1"), Topic: 1, Partition: 0, Offset: 12},
		state.Item{Event: login("l1", "u1", now, "dev1", "shanghai"), Topic: 2, Partition: 0, Offset: 3},
		state.Item{Event: login("l2", "u1", now.Add(time.Hour), "dev1", "shanghai"), Topic: 2, Partition: 0, Offset: 4},
		// the 19th, and a month before
		state.Item{Event: login("l3", "u1", now.Add(-24*time.Hour), "dev1", "shanghai"), Topic: 2, Partition: 0, Offset: 5},
		state.Item{Event: payment("p4", "u1", now.AddDate(0, -1, 0), 700, events.SceneLocalLife, "dev1"), Topic: 1, Partition: 0, Offset: 13},
	)
	for i, o := range out {
		if o.Status != state.Applied {
			t.Fatalf("item %d: %v", i, o.Status)
		}
		if o.Zone.String() != "Asia/Shanghai" {
			t.Fatalf("zone %v", o.Zone)
		}
	}
	u := user(t, s, "u1")
	today := u.Day(now)
	want := state.Counts{SpendN: 1, SpendFen: 12_345, SocialN: 1, SocialFen: 100, FinanceN: 1, FinFen: 5_000, Logins: 2}
	if got := u.Days[today]; got != want {
		t.Errorf("today: got %+v, want %+v", got, want)
	}
	if got := u.Days[today-1]; got != (state.Counts{Logins: 1}) {
		t.Errorf("yesterday: got %+v", got)
	}
	wantMonth := want
	wantMonth.Logins, wantMonth.LoginDays = 3, 2
	if got := u.Months[202611]; got != wantMonth {
		t.Errorf("November: got %+v, want %+v", got, wantMonth)
	}
	if got := u.Months[202610]; got != (state.Counts{SpendN: 1, SpendFen: 700}) {
		t.Errorf("October: got %+v", got)
	}
	if d := u.Devices["dev1"]; d.Logins != 3 || d.LastDay != today {
		t.Errorf("device: %+v (today %d)", d, today)
	}
	if c, ok := u.Cities["shanghai"]; !ok || c.LastDay != today {
		t.Errorf("city: %+v", u.Cities)
	}
}

func TestRedeliveryAndDuplicatesCountOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	batch := []state.Item{
		{Event: payment("p1", "u2", now, 1_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 2, Offset: 100},
		{Event: payment("p2", "u2", now, 2_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 2, Offset: 101},
		{Event: login("l1", "u2", now, "d", "beijing"), Topic: 2, Partition: 2, Offset: 7},
	}
	apply(t, s, batch...)
	before := user(t, s, "u2")

	// The same batch again (a consumer restarted before its commit).
	for i, o := range apply(t, s, batch...) {
		if o.Status != state.Redelivered {
			t.Errorf("redelivered item %d: %v", i, o.Status)
		}
	}
	// The same event id at a new offset (an upstream retry).
	dup := state.Item{Event: payment("p2", "u2", now, 2_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 2, Offset: 150}
	if o := apply(t, s, dup); o[0].Status != state.Duplicate {
		t.Errorf("duplicate id: %v", o[0].Status)
	}
	// Both at once in one batch, and a duplicate inside a batch.
	fresh := state.Item{Event: payment("p3", "u2", now, 4_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 2, Offset: 151}
	fresh2 := state.Item{Event: payment("p3", "u2", now, 4_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 2, Offset: 152}
	out := apply(t, s, batch[0], fresh, fresh2)
	if out[0].Status != state.Redelivered || out[1].Status != state.Applied || out[2].Status != state.Duplicate {
		t.Errorf("mixed batch: %v %v %v", out[0].Status, out[1].Status, out[2].Status)
	}
	after := user(t, s, "u2")
	day := before.Day(now)
	if got, want := after.Days[day].SpendFen, before.Days[day].SpendFen+4_000; got != want {
		t.Errorf("spend today: got %d, want %d", got, want)
	}
	if got := after.Days[day].SpendN; got != 3 {
		t.Errorf("payments today: got %d, want 3", got)
	}
	if got := after.Days[day].Logins; got != 1 {
		t.Errorf("logins today: got %d, want 1", got)
	}
}

func TestOffsetsArePerTopicAndPartition(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	apply(t, s, state.Item{Event: payment("p1", "u3", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 50})
	// A lower offset on another topic or partition is a different record.
	out := apply(t, s,
		state.Item{Event: login("l1", "u3", now, "d", "x"), Topic: 2, Partition: 0, Offset: 5},
		state.Item{Event: payment("p2", "u3", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 1, Offset: 3},
	)
	for i, o := range out {
		if o.Status != state.Applied {
			t.Errorf("item %d: %v", i, o.Status)
		}
	}
}

func TestDedupRingIsBounded(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var items []state.Item
	for i := range 40 {
		items = append(items, state.Item{Event: payment(fmt.Sprintf("p%d", i), "u4", now, 1, events.SceneEcommerce, "d"), Topic: 1, Offset: -1})
	}
	apply(t, s, items...)
	// The newest 32 ids are remembered; the oldest 8 have left the ring.
	if o := apply(t, s, items[39]); o[0].Status != state.Duplicate {
		t.Errorf("recent id: %v", o[0].Status)
	}
	if o := apply(t, s, items[0]); o[0].Status != state.Applied {
		t.Errorf("id older than the ring: %v", o[0].Status)
	}
}

func TestNewCityAndDevice(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	out := apply(t, s,
		state.Item{Event: login("l1", "u5", now.AddDate(0, 0, -60), "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l2", "u5", now.AddDate(0, 0, -10), "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l3", "u5", now, "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l4", "u5", now, "d2", "chengdu"), Offset: -1, Topic: 2},
		state.Item{Event: login("l5", "u5", now, "d2", "chengdu"), Offset: -1, Topic: 2},
		state.Item{Event: payment("p1", "u5", now, 100, events.SceneEcommerce, "d3"), Offset: -1, Topic: 1},
	)
	type nn struct{ city, dev bool }
	want := []nn{{false, false}, {false, false}, {false, false}, {true, true}, {false, false}, {false, true}}
	for i, o := range out {
		if (nn{o.NewCity, o.NewDevice}) != want[i] {
			t.Errorf("item %d: new city %v, new device %v; want %+v", i, o.NewCity, o.NewDevice, want[i])
		}
	}
	// A city last seen over 90 days before the login is new again.
	out = apply(t, s,
		state.Item{Event: login("l6", "u6", now.AddDate(0, 0, -120), "d1", "xian"), Offset: -1, Topic: 2},
		state.Item{Event: login("l7", "u6", now, "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l8", "u6", now, "d1", "xian"), Offset: -1, Topic: 2},
	)
	if !out[1].NewCity || !out[2].NewCity {
		t.Errorf("90-day window: %+v", out)
	}
}

func TestBillsOpenAndSettle(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	due := now.Add(72 * time.Hour).Truncate(time.Second)
	apply(t, s,
		state.Item{Event: &events.Event{ID: "b1", Type: events.TypeRepaymentDue, Subject: "u7", Time: now,
			Due: &events.RepaymentDue{UserID: "u7", BillID: "bill-1", AmountFen: 10_000, DueAt: due}}, Offset: -1, Topic: 3},
		state.Item{Event: &events.Event{ID: "b2", Type: events.TypeRepaymentPaid, Subject: "u7", Time: now,
			Paid: &events.RepaymentPaid{UserID: "u7", BillID: "bill-1", AmountFen: 4_000}}, Offset: -1, Topic: 3},
	)
	u := user(t, s, "u7")
	if b := u.Bills["bill-1"]; b.RemainingFen != 6_000 || !b.DueAt.Equal(due) {
		t.Fatalf("partly paid bill: %+v", b)
	}
	apply(t, s, state.Item{Event: &events.Event{ID: "b3", Type: events.TypeRepaymentPaid, Subject: "u7", Time: now,
		Paid: &events.RepaymentPaid{UserID: "u7", BillID: "bill-1", AmountFen: 6_000}}, Offset: -1, Topic: 3})
	if u := user(t, s, "u7"); len(u.Bills) != 0 {
		t.Fatalf("settled bill still open: %+v", u.Bills)
	}
}

func TestProfileZoneMovesBuckets(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// 03:00 UTC: 11:00 in Shanghai on the 20th, 22:00 in New York on the 19th.
	at := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	out := apply(t, s,
		state.Item{Event: &events.Event{ID: "pr", Type: events.TypeProfile, Subject: "u8", Time: at,
			Profile: &events.Profile{UserID: "u8", PayScore: 700, Timezone: "America/New_York"}}, Offset: -1, Topic: 4},
		state.Item{Event: payment("p1", "u8", at, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1},
	)
	if out[1].Zone.String() != "America/New_York" {
		t.Fatalf("zone: %v", out[1].Zone)
	}
	u := user(t, s, "u8")
	if u.Profile == nil || u.Profile.PayScore != 700 {
		t.Fatalf("profile: %+v", u.Profile)
	}
	if got := u.Days[u.Day(at)].SpendN; got != 1 || u.Day(at) != int(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC).Unix()/86400) {
		t.Fatalf("New York day bucket: day %d, %+v", u.Day(at), u.Days)
	}
}

func TestOldBucketsArePruned(t *testing.T) {
	t.Parallel()
	clock := now
	s, rdb := newClockedStore(t, &clock)
	ctx := context.Background()
	for d := range 60 {
		at := now.AddDate(0, 0, -d)
		if _, err := s.Apply(ctx, []state.Item{{Event: payment(fmt.Sprintf("p%d", d), "u9", at, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	// The next day, the first event prunes.
	clock = now.AddDate(0, 0, 1)
	if _, err := s.Apply(ctx, []state.Item{{Event: payment("late", "u9", clock, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1}}); err != nil {
		t.Fatal(err)
	}
	u := user(t, s, "u9")
	if len(u.Days) != 35 {
		t.Errorf("kept %d daily buckets, want 35", len(u.Days))
	}
	for m := range u.Months {
		if m < 202605 {
			t.Errorf("kept month %d", m)
		}
	}
	enc, err := rdb.ObjectEncoding(ctx, "{u:u9}:a").Result()
	if err != nil || enc != "listpack" {
		t.Errorf("activity hash encoding %q, %v: want listpack", enc, err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := state.New(testenv.Redis(t), state.Config{Days: 10})
	if err == nil {
		t.Fatal("Days 10 accepted")
	}
}

// A login older than the daily buckets still counts its day once in the
// month: replaying history, or catching up after a long lag, must not lose
// or double login days.
func TestLoginDaysOfOldMonths(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	old := time.Date(2026, 9, 10, 9, 0, 0, 0, shanghai) // 71 days before now: no daily bucket
	apply(t, s,
		state.Item{Event: login("l1", "u10", old, "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l2", "u10", old.Add(3*time.Hour), "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l3", "u10", old.AddDate(0, 0, 1), "d1", "shanghai"), Offset: -1, Topic: 2},
	)
	u := user(t, s, "u10")
	if got := u.Months[202609]; got.Logins != 3 || got.LoginDays != 2 {
		t.Fatalf("September: %d logins on %d days, want 3 on 2", got.Logins, got.LoginDays)
	}
	if len(u.Days) != 0 {
		t.Fatalf("daily buckets kept for days outside the window: %v", u.Days)
	}
}

func TestQuotaChecksKeepThirtyDays(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for _, ago := range []time.Duration{40 * 24 * time.Hour, 20 * 24 * time.Hour, time.Hour} {
		if _, err := s.RecordQuotaCheck(ctx, "u11", now.Add(-ago)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.RecordQuotaCheck(ctx, "u11", now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d checks within 30 days, want 3 (the one 40 days ago is gone)", n)
	}
	if u := user(t, s, "u11"); len(u.QuotaChecks) != 3 || !u.QuotaChecks[0].Equal(now) {
		t.Fatalf("checks read back: %v", u.QuotaChecks)
	}
}

// A profile that arrives while a recompute holds its claim makes the user
// due again; saving the recompute must not drop that trigger.
func TestSaveQuotasKeepsATriggerDuringTheLease(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	apply(t, s,
		state.Item{Event: payment("p1", "v1", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1},
		state.Item{Event: payment("p2", "v2", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 2 || b.Periodic() {
		t.Fatalf("claims %+v, %v", b, err)
	}
	if err := s.RecomputeSoon(ctx, now, "v2"); err != nil { // a trigger during the lease
		t.Fatal(err)
	}
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "v1", QuotaFen: 1, Seq: 1}, {UserID: "v2", QuotaFen: 1, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "v1").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("v1's trigger is still there after its recompute (%v)", err)
	}
	if sc := rdb.ZScore(ctx, state.RecomputeKey, "v2").Val(); int64(sc) != now.Unix() {
		t.Errorf("v2 due %v, want now (%v): the trigger was lost", int64(sc), now.Unix())
	}
}

// Large numbers leave the script exactly (a Redis script reply keeps only
// 14 significant digits of a number).
func TestLargeLimitRoundTrips(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const limit = events.MaxAmountFen
	out := apply(t, s,
		state.Item{Event: &events.Event{ID: "pr", Type: events.TypeProfile, Subject: "u12", Time: now,
			Profile: &events.Profile{UserID: "u12", PayScore: 700, TransactionLimitFen: limit}}, Offset: -1, Topic: 4},
		state.Item{Event: payment("p1", "u12", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1},
	)
	if out[1].TransactionLimitFen != limit {
		t.Fatalf("limit %d, want %d", out[1].TransactionLimitFen, limit)
	}
}

// An upstream re-send of a bill's due event keeps what was paid of it.
func TestDueResentKeepsPayments(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	due := now.Add(24 * time.Hour).Truncate(time.Second)
	dueEv := func(id string) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeRepaymentDue, Subject: "u13", Time: now,
			Due: &events.RepaymentDue{UserID: "u13", BillID: "b", AmountFen: 10_000, DueAt: due}}, Offset: -1, Topic: 3}
	}
	apply(t, s, dueEv("d1"), state.Item{Event: &events.Event{ID: "p1", Type: events.TypeRepaymentPaid, Subject: "u13", Time: now,
		Paid: &events.RepaymentPaid{UserID: "u13", BillID: "b", AmountFen: 3_000}}, Offset: -1, Topic: 3}, dueEv("d2"))
	if b := user(t, s, "u13").Bills["b"]; b.RemainingFen != 7_000 {
		t.Fatalf("remaining %d after a re-sent due event, want 7000", b.RemainingFen)
	}
}

// A recompute claimed again after its lease ran out (the instance died
// before saving) keeps its original due time, so it publishes the same
// decision id; a trigger in between gives it a new one.
func TestRecomputeClaimKeepsItsDueTimeThroughTheLease(t *testing.T) {
	t.Parallel()
	clock := now
	s, _ := newClockedStore(t, &clock)
	ctx := context.Background()
	cyc := state.Interval(90)
	apply(t, s, state.Item{Event: payment("p1", "w1", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	first, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, cyc)
	if err != nil || len(first.Claims) != 1 {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	// The instance dies; two minutes later another claims the entry.
	later := now.Add(2 * time.Minute)
	again, err := s.ClaimRecomputes(ctx, later, 10, time.Minute, cyc)
	if err != nil || len(again.Claims) != 1 || !again.Claims[0].Due.Equal(first.Claims[0].Due) {
		t.Fatalf("claim after the lease: %+v %v; want due %v", again, err, first.Claims[0].Due)
	}
	// A profile (a trigger) while it is claimed: the next claim is a new recompute.
	clock = later.Add(10 * time.Second)
	if err := s.RecomputeSoon(ctx, clock, "w1"); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.ClaimRecomputes(ctx, clock, 10, time.Minute, cyc)
	if err != nil || len(fresh.Claims) != 1 || !fresh.Claims[0].Due.Equal(time.Unix(clock.Unix(), 0)) {
		t.Fatalf("claim after a trigger: %+v %v; want due %v", fresh, err, clock)
	}
	next := fresh.Claims[0].Next
	if want := cyc.Next("w1", clock); !next.Equal(want) || !next.After(clock) {
		t.Fatalf("next %v, want the cycle's %v", next, want)
	}
	// Saved: the cycle's claim is due at its own time.
	if err := s.SaveQuotas(ctx, fresh, []state.Quota{{UserID: "w1", QuotaFen: 1, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ClaimRecomputes(ctx, next.Add(-time.Second), 10, time.Minute, cyc); err != nil || len(b.Claims) != 0 {
		t.Fatalf("claimed a second before its time: %+v %v", b, err)
	}
	cycle, err := s.ClaimRecomputes(ctx, next, 10, time.Minute, cyc)
	if err != nil || len(cycle.Claims) != 1 || !cycle.Periodic() || !cycle.Claims[0].Due.Equal(next) {
		t.Fatalf("next cycle's claim: %+v %v; want due %v", cycle, err, next)
	}
	// That batch too comes back, same due time, when its lease runs out.
	redo, err := s.ClaimRecomputes(ctx, next.Add(2*time.Minute), 10, time.Minute, cyc)
	if err != nil || len(redo.Claims) != 1 || !redo.Periodic() || !redo.Claims[0].Due.Equal(next) {
		t.Fatalf("cycle claim after the lease: %+v %v; want due %v", redo, err, next)
	}
	if err := s.SaveQuotas(ctx, redo, []state.Quota{{UserID: "w1", QuotaFen: 1, Seq: 2, CycleDone: next}}); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "w1"); !u.CycleDone.Equal(next) {
		t.Fatalf("cycle done %v, want %v", u.CycleDone, next)
	}
	if b, err := s.ClaimRecomputes(ctx, next.Add(time.Hour), 10, time.Minute, cyc); err != nil || len(b.Claims) != 0 {
		t.Fatalf("claimed after the save: %+v %v", b, err)
	}
}

// Upstream may send a repayment before its bill's due event: it may be
// applied first. It is kept and counted against the
// bill when the due event comes, not dropped.
func TestRepaymentBeforeDueIsKept(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	due := now.Add(-48 * time.Hour).Truncate(time.Second) // already past due when it arrives
	paid := func(id, bill string, fen int64) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeRepaymentPaid, Subject: "u21", Time: now,
			Paid: &events.RepaymentPaid{UserID: "u21", BillID: bill, AmountFen: fen}}, Offset: -1, Topic: 3}
	}
	dueEv := func(id, bill string, fen int64) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeRepaymentDue, Subject: "u21", Time: now,
			Due: &events.RepaymentDue{UserID: "u21", BillID: bill, AmountFen: fen, DueAt: due}}, Offset: -1, Topic: 3}
	}
	// Two part payments of bill a before its due event; all of bill b.
	apply(t, s, paid("p1", "a", 2_000), paid("p2", "a", 1_000), paid("p3", "b", 5_000))
	if u := user(t, s, "u21"); len(u.Bills) != 0 {
		t.Fatalf("bills open before any due event: %+v", u.Bills)
	}
	apply(t, s, dueEv("d1", "a", 10_000), dueEv("d2", "b", 5_000))
	u := user(t, s, "u21")
	if b, ok := u.Bills["a"]; !ok || b.RemainingFen != 7_000 || !b.DueAt.Equal(due) {
		t.Fatalf("bill a after 3000 paid before due: %+v (open %v), want 7000 left", b, ok)
	}
	if b, ok := u.Bills["b"]; ok {
		t.Fatalf("bill b paid in full before due is open: %+v", b)
	}
	// The overdue check of the settled bill finds it gone.
	if _, err := s.AdvanceBill(ctx, "u21", "b", 1, false, now.Add(time.Hour)); !errors.Is(err, state.ErrBillGone) {
		t.Fatalf("overdue check of a bill settled before due: %v, want ErrBillGone", err)
	}
	// A repayment with no due event ever is also no open bill, and does not
	// keep the user frozen.
	apply(t, s, paid("p4", "c", 100))
	if _, err := s.AdvanceBill(ctx, "u21", "c", 1, false, now.Add(time.Hour)); !errors.Is(err, state.ErrBillGone) {
		t.Fatalf("overdue check of a bill only repaid: %v, want ErrBillGone", err)
	}
	if _, err := s.AdvanceBill(ctx, "u21", "a", 4, true, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	out := apply(t, s, paid("p5", "a", 7_000))
	if !out[0].Unfroze {
		t.Fatalf("settling the only overdue bill (a prepaid entry for c left) did not unfreeze: %+v", out[0])
	}
	if u := user(t, s, "u21"); len(u.Bills) != 0 || u.FrozenOverdue {
		t.Fatalf("after settling: bills %+v, frozen %v", u.Bills, u.FrozenOverdue)
	}
}

// A redelivered event keeps the facts it was first applied with even when
// its dedup-ring entry is gone (a user with more events in flight than
// the ring holds): the payment times before it and the other-city login
// before it, even one followed by a later other-city login.
func TestRedeliveryBeyondTheRingKeepsPaymentFacts(t *testing.T) {
	t.Parallel()
	s, err := state.New(testenv.Redis(t), state.Config{Now: func() time.Time { return now }, DedupIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t0 := now.Add(-10 * time.Minute)
	home := state.Item{Event: login("l0", "u30", t0.Add(-time.Hour), "d", "shanghai"), Topic: 2, Partition: 0, Offset: 1}
	away := state.Item{Event: login("l1", "u30", t0, "d", "chengdu"), Topic: 2, Partition: 0, Offset: 2}
	p1 := state.Item{Event: payment("p1", "u30", t0.Add(time.Minute), 1_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 10}
	p2 := state.Item{Event: payment("p2", "u30", t0.Add(2*time.Minute), 2_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 11}
	away2 := state.Item{Event: login("l2", "u30", t0.Add(3*time.Minute), "d", "wuhan"), Topic: 2, Partition: 0, Offset: 3}
	more := []state.Item{
		{Event: login("l3", "u30", t0.Add(4*time.Minute), "d", "shanghai"), Topic: 2, Partition: 0, Offset: 4},
		{Event: login("l4", "u30", t0.Add(5*time.Minute), "d", "shanghai"), Topic: 2, Partition: 0, Offset: 5},
	}
	first := apply(t, s, append([]state.Item{home, away, p1, p2, away2}, more...)...)
	if !first[1].NewCity || !first[4].NewCity {
		t.Fatalf("chengdu and wuhan should be new cities: %+v", first)
	}
	want := first[3] // p2 as first applied
	if len(want.RecentPayments) != 1 || !want.LastOtherCityLogin.Equal(t0) {
		t.Fatalf("p2 first applied: recent %v, last other-city login %v", want.RecentPayments, want.LastOtherCityLogin)
	}
	// p2's ring entry is gone (the ring holds 2); redelivered, it sees the
	// same payment before it and chengdu, not the later wuhan.
	got := apply(t, s, p2)[0]
	if got.Status != state.Redelivered {
		t.Fatalf("status %v, want redelivered", got.Status)
	}
	if len(got.RecentPayments) != 1 || !got.RecentPayments[0].Equal(want.RecentPayments[0]) {
		t.Errorf("redelivered beyond the ring: recent payments %v, first time %v", got.RecentPayments, want.RecentPayments)
	}
	if !got.LastOtherCityLogin.Equal(t0) {
		t.Errorf("redelivered beyond the ring: last other-city login %v, first time %v", got.LastOtherCityLogin, t0)
	}
}

// A profile changes the user's limit and zone for the events after it, not
// for those before it in the same batch.
func TestProfileAppliesFromItsPlaceInTheBatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	prof := func(id string, limit int64, tz string) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeProfile, Subject: "u31", Time: now,
			Profile: &events.Profile{UserID: "u31", PayScore: 700, TransactionLimitFen: limit, Timezone: tz}}, Offset: -1, Topic: 4}
	}
	pay := func(id string) state.Item {
		return state.Item{Event: payment(id, "u31", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1}
	}
	apply(t, s, prof("pr0", 5_000, "Asia/Shanghai"))
	out := apply(t, s, pay("p1"), prof("pr1", 9_000, "Europe/London"), pay("p2"))
	if out[0].TransactionLimitFen != 5_000 || out[0].Zone.String() != "Asia/Shanghai" {
		t.Errorf("payment before the profile: limit %d, zone %v; want 5000, Asia/Shanghai", out[0].TransactionLimitFen, out[0].Zone)
	}
	if out[2].TransactionLimitFen != 9_000 || out[2].Zone.String() != "Europe/London" {
		t.Errorf("payment after the profile: limit %d, zone %v; want 9000, Europe/London", out[2].TransactionLimitFen, out[2].Zone)
	}
	// Without a profile in the batch, the user's current values.
	if o := apply(t, s, pay("p3"))[0]; o.TransactionLimitFen != 9_000 || o.Zone.String() != "Europe/London" {
		t.Errorf("later batch: limit %d, zone %v", o.TransactionLimitFen, o.Zone)
	}
}

// The other-city login a payment reports is the latest one before it in
// event time, even when a later one was applied first (logins and payments
// come on different topics), and a redelivery reports the same.
func TestOtherCityLoginBeforeThePayment(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	t0 := now.Add(-time.Hour)
	logins := []state.Item{
		{Event: login("l0", "u32", t0.Add(-time.Hour), "d", "shanghai"), Topic: 2, Partition: 0, Offset: 1},
		{Event: login("l1", "u32", t0, "d", "chengdu"), Topic: 2, Partition: 0, Offset: 2},
		{Event: login("l2", "u32", t0.Add(10*time.Minute), "d", "wuhan"), Topic: 2, Partition: 0, Offset: 3},
	}
	apply(t, s, logins...)
	p := state.Item{Event: payment("p1", "u32", t0.Add(5*time.Minute), 900_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 1}
	first := apply(t, s, p)[0]
	again := apply(t, s, p)[0]
	if !first.LastOtherCityLogin.Equal(t0) {
		t.Errorf("first application: last other-city login %v, want %v (chengdu, before the payment)", first.LastOtherCityLogin, t0)
	}
	if again.Status != state.Redelivered || !again.LastOtherCityLogin.Equal(first.LastOtherCityLogin) {
		t.Errorf("redelivery: %v, last other-city login %v; first time %v", again.Status, again.LastOtherCityLogin, first.LastOtherCityLogin)
	}
}

// A due event re-sent (with a new id) after its bill was settled opens
// nothing, whichever way the bill was settled, and an extra repayment of
// a settled bill owes nothing.
func TestSettledBillStaysSettled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	due := now.Add(-48 * time.Hour).Truncate(time.Second)
	paid := func(id, bill string, fen int64) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeRepaymentPaid, Subject: "u33", Time: now,
			Paid: &events.RepaymentPaid{UserID: "u33", BillID: bill, AmountFen: fen}}, Offset: -1, Topic: 3}
	}
	dueEv := func(id, bill string) state.Item {
		return state.Item{Event: &events.Event{ID: id, Type: events.TypeRepaymentDue, Subject: "u33", Time: now,
			Due: &events.RepaymentDue{UserID: "u33", BillID: bill, AmountFen: 5_000, DueAt: due}}, Offset: -1, Topic: 3}
	}
	// a: due then paid; b: paid then due; then both due events re-sent, and
	// an extra repayment of a.
	apply(t, s, dueEv("da1", "a"), paid("pa1", "a", 5_000), paid("pb1", "b", 5_000), dueEv("db1", "b"))
	apply(t, s, dueEv("da2", "a"), dueEv("db2", "b"), paid("pa2", "a", 100))
	if u := user(t, s, "u33"); len(u.Bills) != 0 {
		t.Fatalf("settled bills open again after re-sent due events: %+v", u.Bills)
	}
	for _, b := range []string{"a", "b"} {
		if _, err := s.AdvanceBill(ctx, "u33", b, 1, false, now.Add(time.Hour)); !errors.Is(err, state.ErrBillGone) {
			t.Errorf("overdue check of settled bill %s: %v, want ErrBillGone", b, err)
		}
	}
}

// A quota saved before the cycle index (meta "q" a bare number, the count
// in "rs") still reads back; the one-field layout reads back whole.
func TestQuotaFieldLayouts(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	if err := rdb.HSet(ctx, "{u:old}:m", "q", "123400", "rs", "4").Err(); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "old"); !u.HasQuota || u.QuotaFen != 123400 || u.Recomputes != 4 || !u.CycleDone.IsZero() {
		t.Fatalf("old layout read as %d, %d recomputes, cycle done %v", u.QuotaFen, u.Recomputes, u.CycleDone)
	}
	apply(t, s, state.Item{Event: payment("p1", "new", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 1 {
		t.Fatalf("claim: %+v %v", b, err)
	}
	done := now.Add(-time.Hour).Truncate(time.Second)
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "new", QuotaFen: 5_000_000, Seq: 7, CycleDone: done}}); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "new"); !u.HasQuota || u.QuotaFen != 5_000_000 || u.Recomputes != 7 || !u.CycleDone.Equal(done) {
		t.Fatalf("read back %d, %d recomputes, cycle done %v", u.QuotaFen, u.Recomputes, u.CycleDone)
	}
	if err := rdb.HSet(ctx, "{u:bad}:m", "q", "12:x:0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "bad"); err == nil {
		t.Fatal("a malformed quota field read without an error")
	}
}

// A user scheduled before the phase index existed (its next recompute an
// entry of RecomputeKey) joins the index at its next event and keeps its
// due time: an upgrade does not recompute every active user at once.
func TestUpgradedUserKeepsItsDueTime(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	due := now.AddDate(0, 0, 40).Truncate(time.Second)
	if err := rdb.ZAdd(ctx, state.RecomputeKey, redis.Z{Score: float64(due.Unix()), Member: "up"}).Err(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, state.Item{Event: payment("p1", "up", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1},
		state.Item{Event: payment("p2", "fresh", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	if sc := rdb.ZScore(ctx, state.RecomputeKey, "up").Val(); int64(sc) != due.Unix() {
		t.Fatalf("the upgraded user is due at %v, want its old due time %v", int64(sc), due.Unix())
	}
	if sc := rdb.ZScore(ctx, state.RecomputeKey, "fresh").Val(); int64(sc) != now.Unix() {
		t.Fatalf("a new user is due at %v, want now", int64(sc))
	}
	for _, id := range []string{"up", "fresh"} {
		if sc, err := rdb.ZScore(ctx, state.PhaseKey, id).Result(); err != nil || sc != state.Phase(id) {
			t.Fatalf("%s in the phase index at %v (%v), want %v", id, sc, err, state.Phase(id))
		}
	}
}

// Redis forgot the scripts (a restart) before a trigger batch was saved:
// an override's end later than the lease is still scheduled.
func TestSaveQuotasAfterNoScriptKeepsTheWake(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	apply(t, s, state.Item{Event: payment("p1", "w1", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 1 || b.Periodic() {
		t.Fatalf("%+v %v", b, err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	wake := now.Add(time.Hour).Truncate(time.Second)
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "w1", QuotaFen: 1, Seq: 1, Wake: wake}}); err != nil {
		t.Fatal(err)
	}
	if sc, err := rdb.ZScore(ctx, state.RecomputeKey, "w1").Result(); err != nil || int64(sc) != wake.Unix() {
		t.Fatalf("the override's end: due %v (%v), want %v", int64(sc), err, wake.Unix())
	}
}
