package state_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
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
	// Every scene counts in the day's payments.
	if got := u.Days[today]; got != (state.DayCounts{Payments: 3}) {
		t.Errorf("today: got %+v, want 3 payments", got)
	}
	if got, ok := u.Days[today-1]; ok {
		t.Errorf("yesterday (a login only): got %+v, want no daily entry", got)
	}
	if got := u.Days[u.Day(now.AddDate(0, -1, 0))]; got != (state.DayCounts{Payments: 1}) {
		t.Errorf("a month ago: got %+v, want 1 payment", got)
	}
	// Months: consumption spend, social count (the bill payment is
	// finance: neither), and login days.
	if got, want := u.Months[202611], (state.MonthCounts{SpendFen: 12_345, SocialN: 1, LoginDays: 2, LoginMask: 1<<18 | 1<<19}); got != want {
		t.Errorf("November: got %+v, want %+v", got, want)
	}
	if got := u.Months[202610]; got != (state.MonthCounts{SpendFen: 700}) {
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
	if got, want := after.Months[202611].SpendFen, before.Months[202611].SpendFen+4_000; got != want {
		t.Errorf("spend this month: got %d, want %d", got, want)
	}
	if got := after.Days[day].Payments; got != 3 {
		t.Errorf("payments today: got %d, want 3", got)
	}
	if got := after.Months[202611].LoginDays; got != 1 {
		t.Errorf("login days: got %d, want 1", got)
	}
	if got := after.Devices["d"].Logins; got != 1 {
		t.Errorf("device logins: got %d, want 1", got)
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
	if got := u.Days[u.Day(at)].Payments; got != 1 || u.Day(at) != int(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC).Unix()/86400) {
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
	// The whole state is the one key.
	if keys, err := rdb.Keys(ctx, "*u9*").Result(); err != nil || len(keys) != 1 || keys[0] != state.UserKey("u9") {
		t.Errorf("keys of u9: %v, %v; want only %s", keys, err, state.UserKey("u9"))
	}
	if typ := rdb.Type(ctx, state.UserKey("u9")).Val(); typ != "string" {
		t.Errorf("%s is a %s, want a string", state.UserKey("u9"), typ)
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
// or double login days. A payment that old counts in its month only.
func TestLoginDaysOfOldMonths(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	old := time.Date(2026, 9, 10, 9, 0, 0, 0, shanghai) // 71 days before now: no daily bucket
	apply(t, s,
		state.Item{Event: login("l1", "u10", old, "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l2", "u10", old.Add(3*time.Hour), "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: login("l3", "u10", old.AddDate(0, 0, 1), "d1", "shanghai"), Offset: -1, Topic: 2},
		state.Item{Event: payment("p1", "u10", old, 100, events.SceneEcommerce, "d1"), Offset: -1, Topic: 1},
	)
	u := user(t, s, "u10")
	if got := u.Months[202609]; got.LoginDays != 2 || got.SpendFen != 100 {
		t.Fatalf("September: %+v, want 2 login days and 100 fen spent", got)
	}
	if got := u.Devices["d1"].Logins; got != 3 {
		t.Fatalf("device logins %d, want 3", got)
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

// A new user's first trigger is in the schedule before its first events
// are written (one round trip, but the entries go first): a job claiming
// it in between finds no value. It must not compute on nothing, nor end
// the claim: claimed again when the lease runs out, the user is computed
// on the value written by then.
func TestATriggerOfAUserNotWrittenYetWaitsForTheValue(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	apply(t, s, state.Item{Event: payment("p1", "w1", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	if err := s.RecomputeSoon(ctx, now, "w2"); err != nil { // w2's entries, its events not written yet
		t.Fatal(err)
	}
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 2 {
		t.Fatalf("claims %+v, %v", b, err)
	}
	us, err := s.ReadBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var quotas []state.Quota
	for i, u := range us {
		switch m := b.Claims[i].Member; {
		case m == "w2" && u != nil:
			t.Fatalf("w2, with no value yet, read as %+v: it would be computed on nothing", u)
		case m == "w1" && u == nil:
			t.Fatal("w1 not read")
		case u != nil:
			quotas = append(quotas, state.Quota{UserID: u.ID, QuotaFen: 1, Seq: u.Recomputes + 1})
		}
	}
	if err := s.SaveQuotas(ctx, b, quotas); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "w1").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("w1's trigger is still there after its recompute (%v)", err)
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "w2").Err(); err != nil {
		t.Fatalf("w2's trigger is gone (%v): its first recompute is lost", err)
	}
	if n, err := rdb.Exists(ctx, state.UserKey("w2")).Result(); err != nil || n != 0 {
		t.Fatalf("saving the batch wrote w2's value (%d, %v)", n, err)
	}
	apply(t, s, state.Item{Event: payment("p2", "w2", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1})
	if b, err := s.ClaimRecomputes(ctx, now.Add(30*time.Second), 10, time.Minute, state.Interval(90)); err != nil || len(b.Claims) != 0 {
		t.Fatalf("during the lease, claims %+v, %v; want none", b, err)
	}
	b, err = s.ClaimRecomputes(ctx, now.Add(2*time.Minute), 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 1 || b.Claims[0].Member != "w2" {
		t.Fatalf("after the lease, claims %+v, %v; want w2's", b, err)
	}
	if us, err := s.ReadBatch(ctx, b); err != nil || us[0] == nil || len(us[0].Days) == 0 {
		t.Fatalf("w2 read again as %+v, %v; want its payment", us, err)
	}
}

// Large numbers round-trip exactly through the stored value (a Redis
// script reply would keep only 14 significant digits of a number).
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
	if _, err := s.AdvanceBill(ctx, "u21", "b", 1, false); !errors.Is(err, state.ErrBillGone) {
		t.Fatalf("overdue check of a bill settled before due: %v, want ErrBillGone", err)
	}
	// A repayment with no due event ever is also no open bill, and does not
	// keep the user frozen.
	apply(t, s, paid("p4", "c", 100))
	if _, err := s.AdvanceBill(ctx, "u21", "c", 1, false); !errors.Is(err, state.ErrBillGone) {
		t.Fatalf("overdue check of a bill only repaid: %v, want ErrBillGone", err)
	}
	if froze, err := s.AdvanceBill(ctx, "u21", "a", 4, true); err != nil || !froze {
		t.Fatalf("freeze for bill a: froze %v, %v", froze, err)
	}
	out := apply(t, s, paid("p5", "a", 7_000))
	if !out[0].Unfroze {
		t.Fatalf("settling the only overdue bill (a prepaid entry for c left) did not unfreeze: %+v", out[0])
	}
	if u := user(t, s, "u21"); len(u.Bills) != 0 || u.FrozenOverdue {
		t.Fatalf("after settling: bills %+v, frozen %v", u.Bills, u.FrozenOverdue)
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
// come on different topics). A redelivery is recognised (its decisions were
// published before its state was written; its facts are not reported).
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
	if first.Status != state.Applied || again.Status != state.Redelivered {
		t.Errorf("statuses %v then %v, want applied then redelivered", first.Status, again.Status)
	}
	// A later payment (another event) at the same time sees the same login.
	p2 := state.Item{Event: payment("p2", "u32", t0.Add(5*time.Minute), 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 2}
	if o := apply(t, s, p2)[0]; o.Status != state.Applied || !o.LastOtherCityLogin.Equal(t0) {
		t.Errorf("next payment: %v, last other-city login %v, want %v", o.Status, o.LastOtherCityLogin, t0)
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
		if _, err := s.AdvanceBill(ctx, "u33", b, 1, false); !errors.Is(err, state.ErrBillGone) {
			t.Errorf("overdue check of settled bill %s: %v, want ErrBillGone", b, err)
		}
	}
}

// A saved quota reads back whole (quota, recompute count, cycle done), and
// a stored value that does not decode is an error, for reads and for
// events, never overwritten.
func TestSavedQuotaReadsBack(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	if u := user(t, s, "new"); u.HasQuota || u.QuotaFen != 0 || u.Recomputes != 0 || !u.CycleDone.IsZero() {
		t.Fatalf("a user never seen: %+v", u)
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
	// A quota of zero is a quota.
	if err := s.RecomputeSoon(ctx, now, "new"); err != nil {
		t.Fatal(err)
	}
	if b, err = s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90)); err != nil || len(b.Claims) != 1 {
		t.Fatalf("claim: %+v %v", b, err)
	}
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "new", QuotaFen: 0, Seq: 8}}); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "new"); !u.HasQuota || u.QuotaFen != 0 || u.Recomputes != 8 || !u.CycleDone.IsZero() {
		t.Fatalf("zero quota read back: has %v, %d, %d recomputes, cycle done %v", u.HasQuota, u.QuotaFen, u.Recomputes, u.CycleDone)
	}
	for name, val := range map[string]string{
		"truncated":   "\x01\x00\x00\x00",
		"bad varint":  "\x01\x00\x00\x00\x00\x00\x00\x00\x07\xff\xff",
		"new version": "\x02\x00\x00\x00\x00\x00\x00\x00\x07\x00",
	} {
		key := state.UserKey("bad")
		if err := rdb.Set(ctx, key, val, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.User(ctx, "bad"); err == nil {
			t.Errorf("%s: a malformed state read without an error", name)
		}
		// quarantined, never a reason to stop: the event is refused (the
		// pipeline dead-letters it) and the value kept
		out, err := s.Apply(ctx, []state.Item{{Event: payment("p1", "bad", now, 100, events.SceneEcommerce, "d"), Offset: -1, Topic: 1}})
		if err != nil || out[0].Status != state.Refused || !errors.Is(out[0].Err, state.ErrQuarantined) {
			t.Errorf("%s: an event for a malformed state: %+v %v", name, out, err)
		}
		if got := rdb.Get(ctx, key).Val(); got != val {
			t.Errorf("%s: the malformed state was overwritten with %q", name, got)
		}
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

func dueEvent(id, user, bill string, fen int64, dueAt, at time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentDue, Subject: user, Time: at,
		Due: &events.RepaymentDue{UserID: user, BillID: bill, AmountFen: fen, DueAt: dueAt}}
}

func paidEvent(id, user, bill string, fen int64, at time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentPaid, Subject: user, Time: at,
		Paid: &events.RepaymentPaid{UserID: user, BillID: bill, AmountFen: fen}}
}

func withSource(e *events.Event, source string) *events.Event {
	e.Source = source
	return e
}

func statuses(out []state.Outcome) []state.Status {
	s := make([]state.Status, len(out))
	for i, o := range out {
		s[i] = o.Status
	}
	return s
}

// A user whose events move to another partition of the same topic (the
// topic's partitions were rebalanced upstream, or the key changed) keeps
// the offsets of both: a redelivery of an old event of the first partition,
// long pushed out of the dedup ring, is still recognised. (Offsets were
// kept per topic, one partition each: the move forgot the first one's.)
func TestOffsetsOfAPartitionSurviveAMoveToAnother(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var p0 []state.Item
	for i := range 3 {
		p0 = append(p0, state.Item{Event: payment(fmt.Sprintf("a%d", i), "u40", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: int64(10 + i)})
	}
	apply(t, s, p0...)
	var p1 []state.Item
	for i := range 40 {
		p1 = append(p1, state.Item{Event: payment(fmt.Sprintf("b%d", i), "u40", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 1, Offset: int64(i)})
	}
	for i, o := range apply(t, s, p1...) {
		if o.Status != state.Applied {
			t.Fatalf("partition 1 item %d: %v", i, o.Status)
		}
	}
	before := user(t, s, "u40")
	if got := before.Days[before.Day(now)].Payments; got != 43 {
		t.Fatalf("%d payments today, want 43", got)
	}
	for _, it := range p0 {
		if o := apply(t, s, it)[0]; o.Status != state.Redelivered {
			t.Errorf("partition 0 offset %d redelivered after 40 events on partition 1: %v, want redelivered", it.Offset, o.Status)
		}
	}
	if got := user(t, s, "u40").Days[before.Day(now)].Payments; got != 43 {
		t.Fatalf("%d payments today after the redelivery, want 43 still", got)
	}
	// Both partitions go on.
	out := apply(t, s,
		state.Item{Event: payment("a3", "u40", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 13},
		state.Item{Event: payment("b40", "u40", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 1, Offset: 40})
	if out[0].Status != state.Applied || out[1].Status != state.Applied {
		t.Fatalf("next offsets of both partitions: %v", statuses(out))
	}
}

// A topic whose offsets start over (recreated; fenqictl epoch raises its
// epoch) has its lower offsets applied as new events; without a raised
// epoch, an offset at or below the last one is a redelivery.
func TestRaisedEpochAppliesOffsetsThatGoBack(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	at := func(id string, epoch uint32, off int64) state.Item {
		return state.Item{Event: payment(id, "u41", now, 100, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Epoch: epoch, Offset: off}
	}
	for _, step := range []struct {
		item state.Item
		want state.Status
	}{
		{at("p1", 0, 100), state.Applied},
		{at("p2", 0, 5), state.Redelivered},   // back, same epoch
		{at("p1", 0, 100), state.Redelivered}, // the same record
		{at("p3", 1, 5), state.Applied},       // back, raised epoch
		{at("p4", 1, 6), state.Applied},
		{at("p5", 1, 4), state.Redelivered},   // back within the new epoch
		{at("p6", 0, 200), state.Redelivered}, // the old epoch is over
		{at("p3", 1, 5), state.Redelivered},
	} {
		if o := apply(t, s, step.item)[0]; o.Status != step.want {
			t.Errorf("%s at epoch %d offset %d: %v, want %v", step.item.Event.ID, step.item.Epoch, step.item.Offset, o.Status, step.want)
		}
	}
	if u := user(t, s, "u41"); u.Days[u.Day(now)].Payments != 3 {
		t.Fatalf("%d payments, want 3 (p1, p3, p4)", u.Days[u.Day(now)].Payments)
	}
	// In one batch too.
	out := apply(t, s, at("q1", 2, 1), at("q2", 2, 1), at("q3", 1, 50), at("q4", 2, 2))
	if want := []state.Status{state.Applied, state.Redelivered, state.Redelivered, state.Applied}; !slices.Equal(statuses(out), want) {
		t.Fatalf("one batch: %v, want %v", statuses(out), want)
	}
}

// An upstream duplicate of a repayment (same source and id, a new offset)
// arriving long after it, when the dedup ring has moved on, is still a
// duplicate: the bill keeps the repayment's fingerprint. It settles nothing
// twice.
func TestRepaymentDuplicateBeyondTheRingPaysOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	due := now.Add(72 * time.Hour).Truncate(time.Second)
	apply(t, s,
		state.Item{Event: withSource(dueEvent("d1", "u42", "bill", 10_000, due, now), "billing"), Topic: 3, Offset: 1},
		state.Item{Event: withSource(paidEvent("r1", "u42", "bill", 4_000, now), "billing"), Topic: 3, Offset: 2})
	var more []state.Item
	for i := range 40 {
		more = append(more, state.Item{Event: payment(fmt.Sprintf("p%d", i), "u42", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: int64(i)})
	}
	apply(t, s, more...)
	resent := state.Item{Event: withSource(paidEvent("r1", "u42", "bill", 4_000, now), "billing"), Topic: 3, Offset: 60}
	if o := apply(t, s, resent)[0]; o.Status != state.Duplicate {
		t.Errorf("repayment re-sent 41 events later: %v, want duplicate", o.Status)
	}
	if b := user(t, s, "u42").Bills["bill"]; b.RemainingFen != 6_000 {
		t.Fatalf("remaining %d after a duplicate repayment, want 6000", b.RemainingFen)
	}
	// Another repayment (another id) of the bill is paid; then the bill is
	// settled, and the duplicate still settles nothing.
	apply(t, s, state.Item{Event: withSource(paidEvent("r2", "u42", "bill", 2_000, now), "billing"), Topic: 3, Offset: 61})
	if b := user(t, s, "u42").Bills["bill"]; b.RemainingFen != 4_000 {
		t.Fatalf("remaining %d after a second repayment, want 4000", b.RemainingFen)
	}
	if o := apply(t, s, state.Item{Event: withSource(paidEvent("r1", "u42", "bill", 4_000, now), "billing"), Topic: 3, Offset: 62})[0]; o.Status != state.Duplicate {
		t.Errorf("a third copy of r1: %v, want duplicate", o.Status)
	}
	if b, ok := user(t, s, "u42").Bills["bill"]; !ok || b.RemainingFen != 4_000 {
		t.Fatalf("bill after a third copy of r1: %+v (open %v), want 4000 left", b, ok)
	}
}

// CloudEvents identifies an event by its source and id: two sources may
// use the same id for different events.
func TestSameIDFromTwoSourcesIsTwoEvents(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	out := apply(t, s,
		state.Item{Event: withSource(payment("x1", "u43", now, 100, events.SceneEcommerce, "d"), "pay/a"), Topic: 1, Offset: -1},
		state.Item{Event: withSource(payment("x1", "u43", now, 200, events.SceneEcommerce, "d"), "pay/b"), Topic: 1, Offset: -1})
	if out[0].Status != state.Applied || out[1].Status != state.Applied {
		t.Fatalf("one id from two sources: %v, want both applied", statuses(out))
	}
	// In separate batches too, and the pair still deduplicates.
	out = apply(t, s, state.Item{Event: withSource(payment("x2", "u43", now, 100, events.SceneEcommerce, "d"), "pay/a"), Topic: 1, Offset: -1})
	out = append(out, apply(t, s, state.Item{Event: withSource(payment("x2", "u43", now, 100, events.SceneEcommerce, "d"), "pay/b"), Topic: 1, Offset: -1})...)
	out = append(out, apply(t, s, state.Item{Event: withSource(payment("x1", "u43", now, 100, events.SceneEcommerce, "d"), "pay/b"), Topic: 1, Offset: -1})...)
	if want := []state.Status{state.Applied, state.Applied, state.Duplicate}; !slices.Equal(statuses(out), want) {
		t.Fatalf("separate batches: %v, want %v", statuses(out), want)
	}
	u := user(t, s, "u43")
	if got := u.Days[u.Day(now)].Payments; got != 4 {
		t.Fatalf("%d payments, want 4", got)
	}
	// Repayments of one bill, likewise.
	due := now.Add(24 * time.Hour).Truncate(time.Second)
	apply(t, s, state.Item{Event: dueEvent("d1", "u43", "b", 1_000, due, now), Topic: 3, Offset: -1},
		state.Item{Event: withSource(paidEvent("r", "u43", "b", 300, now), "bank/a"), Topic: 3, Offset: -1},
		state.Item{Event: withSource(paidEvent("r", "u43", "b", 300, now), "bank/b"), Topic: 3, Offset: -1})
	if b := user(t, s, "u43").Bills["b"]; b.RemainingFen != 400 {
		t.Fatalf("remaining %d after two repayments with one id from two sources, want 400", b.RemainingFen)
	}
}

// Times after 2038-01-19 (2^31 s) and after 2038-12-24 (the old layout's
// six base-36 digits) are kept whole: a user living in 2040 or 2100 reads
// back its days, bills, checks, episodes, quota and override at the right
// times, and its schedules fire at them.
func TestTimesAfter2038(t *testing.T) {
	t.Parallel()
	for _, year := range []int{2040, 2100} {
		t.Run(fmt.Sprint(year), func(t *testing.T) {
			t.Parallel()
			at := time.Date(year, 3, 1, 12, 0, 0, 0, shanghai)
			clock := at
			s, _ := newClockedStore(t, &clock)
			ctx := context.Background()
			uid := fmt.Sprintf("y%d", year)
			due := at.Add(72 * time.Hour)
			out := apply(t, s,
				state.Item{Event: payment("p1", uid, at, 1_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 1},
				state.Item{Event: payment("p2", uid, at.Add(time.Minute), 2_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 2},
				state.Item{Event: login("l1", uid, at, "d", "shanghai"), Topic: 2, Offset: 1},
				state.Item{Event: login("l2", uid, at.Add(time.Hour), "d", "chengdu"), Topic: 2, Offset: 2},
				state.Item{Event: payment("p3", uid, at.Add(2*time.Hour), 3_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 3},
				state.Item{Event: dueEvent("d1", uid, "bill", 10_000, due, at), Topic: 3, Offset: 1},
			)
			for i, o := range out {
				if o.Status != state.Applied {
					t.Fatalf("item %d: %v", i, o.Status)
				}
			}
			if got := out[4].RecentPayments; len(got) != 2 || !got[0].Equal(at.Add(time.Minute)) || !got[1].Equal(at) {
				t.Errorf("recent payments before p3: %v, want %v and %v", got, at.Add(time.Minute), at)
			}
			if !out[4].LastOtherCityLogin.Equal(at.Add(time.Hour)) {
				t.Errorf("last other-city login %v, want %v", out[4].LastOtherCityLogin, at.Add(time.Hour))
			}
			u := user(t, s, uid)
			day := u.Day(at)
			if want := int(time.Date(year, 3, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400); day != want {
				t.Errorf("local day %d, want %d", day, want)
			}
			if got := u.Days[day].Payments; got != 3 {
				t.Errorf("%d payments on %v's day, want 3 (days %v)", got, at, u.Days)
			}
			if got := u.Months[year*100+3]; got.SpendFen != 6_000 || got.LoginDays != 1 {
				t.Errorf("March %d: %+v", year, got)
			}
			if d := u.Devices["d"]; d.LastDay != day || d.Logins != 2 {
				t.Errorf("device: %+v, want last day %d", d, day)
			}
			if c := u.Cities["chengdu"]; c.LastDay != day {
				t.Errorf("city: %+v, want last day %d", c, day)
			}
			if b := u.Bills["bill"]; !b.DueAt.Equal(due) || b.RemainingFen != 10_000 {
				t.Errorf("bill: %+v, want due %v", b, due)
			}
			// The overdue check fires a day after the due time.
			clock = due.Add(25 * time.Hour)
			timers, err := s.ClaimTimers(ctx, clock, 10, time.Minute)
			if err != nil || len(timers) != 1 || timers[0].BillID != "bill" || !timers[0].Due.Equal(due.Add(24*time.Hour)) {
				t.Fatalf("overdue checks: %+v, %v; want bill's at %v", timers, err, due.Add(24*time.Hour))
			}
			if froze, err := s.AdvanceBill(ctx, uid, "bill", 4, true); err != nil || !froze {
				t.Fatalf("freeze: %v, %v", froze, err)
			}
			if err := s.ScheduleBills(ctx, []state.NextCheck{{UserID: uid, BillID: "bill"}}); err != nil {
				t.Fatal(err)
			}
			paidAt := due.Add(50 * time.Hour)
			out = apply(t, s, state.Item{Event: paidEvent("r1", uid, "bill", 10_000, paidAt), Topic: 3, Offset: 2})
			if !out[0].Unfroze {
				t.Errorf("settling the bill did not unfreeze: %+v", out[0])
			}
			u = user(t, s, uid)
			if u.FrozenOverdue || len(u.Bills) != 0 || len(u.RecentEpisodes) != 1 ||
				!u.RecentEpisodes[0].DueAt.Equal(due) || !u.RecentEpisodes[0].SettledAt.Equal(paidAt) {
				t.Errorf("after settling 2 days late: frozen %v, bills %v, episodes %+v (due %v)", u.FrozenOverdue, u.Bills, u.RecentEpisodes, due)
			}
			// Quota checks, the recompute (its due time and cycle done), an override.
			if n, err := s.RecordQuotaCheck(ctx, uid, clock); err != nil || n != 1 {
				t.Fatalf("quota check: %d, %v", n, err)
			}
			cyc := state.Interval(90)
			b, err := s.ClaimRecomputes(ctx, clock, 10, time.Minute, cyc)
			if err != nil || len(b.Claims) != 1 || b.Claims[0].Member != uid || b.Claims[0].Due.Unix() > clock.Unix() ||
				b.Claims[0].Due.Year() != year || !b.Claims[0].Next.Equal(cyc.Next(uid, clock)) {
				t.Fatalf("recompute claim: %+v, %v", b, err)
			}
			cycleDone := clock.Truncate(time.Second)
			if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: uid, QuotaFen: 5_000_000, Seq: 1, CycleDone: cycleDone}}); err != nil {
				t.Fatal(err)
			}
			expires := clock.AddDate(0, 1, 0).Truncate(time.Second)
			if err := s.SetOverride(ctx, uid, &state.Override{QuotaFen: 1, Reason: "test", Operator: "op", ExpiresAt: expires}); err != nil {
				t.Fatal(err)
			}
			u = user(t, s, uid)
			if len(u.QuotaChecks) != 1 || !u.QuotaChecks[0].Equal(clock) {
				t.Errorf("quota checks %v, want %v", u.QuotaChecks, clock)
			}
			if !u.HasQuota || u.QuotaFen != 5_000_000 || !u.CycleDone.Equal(cycleDone) {
				t.Errorf("quota %d (has %v), cycle done %v; want %v", u.QuotaFen, u.HasQuota, u.CycleDone, cycleDone)
			}
			if u.Override == nil || !u.Override.ExpiresAt.Equal(expires) {
				t.Errorf("override %+v, want expiring %v", u.Override, expires)
			}
			if next, ok, err := s.NextRecompute(ctx, uid, cyc); err != nil || !ok || next.Unix() != clock.Unix() {
				t.Errorf("next recompute %v %v %v, want now (the override) %v", next, ok, err, clock)
			}
		})
	}
}

// Replaying every event of a user (a consumer rewound, or a batch retried
// whole after its state was written) changes nothing: not the state, not
// the schedules. In particular a profile redelivered after its recompute
// was done does not make the user due again.
func TestReplayChangesNothing(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	due := now.Add(-48 * time.Hour).Truncate(time.Second)
	items := []state.Item{
		{Event: payment("p1", "u44", now, 1_000, events.SceneEcommerce, "d"), Topic: 1, Partition: 0, Offset: 1},
		{Event: login("l1", "u44", now, "d", "shanghai"), Topic: 2, Partition: 1, Offset: 1},
		{Event: &events.Event{ID: "pr1", Type: events.TypeProfile, Subject: "u44", Time: now,
			Profile: &events.Profile{UserID: "u44", PayScore: 700, TransactionLimitFen: 9_000, Timezone: "Asia/Shanghai"}}, Topic: 4, Partition: 2, Offset: 1},
		{Event: dueEvent("d1", "u44", "bill", 5_000, due, now), Topic: 3, Partition: 0, Offset: 1},
		{Event: paidEvent("r1", "u44", "bill", 1_000, now), Topic: 3, Partition: 0, Offset: 2},
		{Event: login("l2", "u44", now, "d2", "chengdu"), Topic: 2, Partition: 1, Offset: 2},
	}
	apply(t, s, items...)
	// The triggers (first activity, the profile) are recomputed and saved.
	cyc := state.Interval(90)
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, cyc)
	if err != nil || len(b.Claims) != 1 || b.Periodic() {
		t.Fatalf("claim: %+v %v", b, err)
	}
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "u44", QuotaFen: 100, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "u44").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a trigger left after the save: %v", err)
	}
	snapshot := func() (string, []redis.Z, []redis.Z) {
		t.Helper()
		val, err := rdb.Get(ctx, state.UserKey("u44")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return val, rdb.ZRangeWithScores(ctx, state.TimersKey, 0, -1).Val(), rdb.ZRangeWithScores(ctx, state.PhaseKey, 0, -1).Val()
	}
	val0, timers0, phase0 := snapshot()
	if len(timers0) != 1 || len(phase0) != 1 {
		t.Fatalf("schedules: timers %v, phase %v", timers0, phase0)
	}
	check := func(what string, out []state.Outcome) {
		t.Helper()
		for i, o := range out {
			if o.Status != state.Redelivered {
				t.Errorf("%s: item %d (%s): %v, want redelivered", what, i, items[i%len(items)].Event.ID, o.Status)
			}
		}
		if err := rdb.ZScore(ctx, state.RecomputeKey, "u44").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("%s: a recompute trigger (%v) after the replay: %v", what, rdb.ZScore(ctx, state.RecomputeKey, "u44").Val(), err)
		}
		if n := rdb.HLen(ctx, state.RecomputeDueKey).Val(); n != 0 {
			t.Errorf("%s: %d recompute due times", what, n)
		}
		val, timers, phase := snapshot()
		if val != val0 {
			t.Errorf("%s: the stored state changed", what)
		}
		if !slices.Equal(timers, timers0) || !slices.Equal(phase, phase0) {
			t.Errorf("%s: schedules changed: timers %v (were %v), phase %v (were %v)", what, timers, timers0, phase, phase0)
		}
	}
	check("the batch again", apply(t, s, items...))
	var one []state.Outcome
	for _, it := range items {
		one = append(one, apply(t, s, it)...)
	}
	check("one event at a time", one)
	check("the batch twice in one", apply(t, s, append(slices.Clone(items), items...)...))
	// The same events without offsets are upstream duplicates: nothing
	// changes either (but the write of the state, which is the same).
	var noOffsets []state.Item
	for _, it := range items {
		it.Offset = -1
		noOffsets = append(noOffsets, it)
	}
	for i, o := range apply(t, s, noOffsets...) {
		if o.Status != state.Duplicate {
			t.Errorf("without offsets: item %d: %v, want duplicate", i, o.Status)
		}
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "u44").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("a recompute trigger after duplicates: %v", err)
	}
	val, _, _ := snapshot()
	st0, err0 := engine.Decode([]byte(val0))
	st, err := engine.Decode([]byte(val))
	if err0 != nil || err != nil {
		t.Fatal(err0, err)
	}
	st0.Rev, st.Rev = 0, 0
	if !reflect.DeepEqual(st0, st) {
		t.Errorf("duplicates changed the state:\n%+v\nwas\n%+v", st, st0)
	}
}

// Two batches prepared from the same state: the first commit writes, the
// second finds the state changed and writes nothing (a consumer that lost
// its partition, racing the one that took it over).
func TestCommitIsACompareAndSet(t *testing.T) {
	t.Parallel()
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ctx := context.Background()
			want := int64(1)
			if existing {
				apply(t, s, state.Item{Event: payment("p0", "u45", now, 1, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
				want++
			}
			p1 := state.Item{Event: payment("p1", "u45", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 10}
			p2 := state.Item{Event: payment("p2", "u45", now, 200, events.SceneEcommerce, "d"), Topic: 1, Offset: 11}
			b1, err := s.Prepare(ctx, []state.Item{p1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := s.Prepare(ctx, []state.Item{p2}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b1.Outcomes[0].Status != state.Applied || b2.Outcomes[0].Status != state.Applied {
				t.Fatalf("prepared: %v, %v", b1.Outcomes[0].Status, b2.Outcomes[0].Status)
			}
			if got := b2.Users(); !slices.Equal(got, []string{"u45"}) {
				t.Fatalf("batch users %v", got)
			}
			// Nothing is written before Commit.
			if u := user(t, s, "u45"); u.Days[u.Day(now)].Payments != want-1 {
				t.Fatalf("prepared batches wrote: %d payments", u.Days[u.Day(now)].Payments)
			}
			if err := s.Commit(ctx, b1, nil); err != nil {
				t.Fatal(err)
			}
			err = s.Commit(ctx, b2, nil)
			var ce *state.ConflictError
			if !errors.As(err, &ce) || !state.IsConflict(err) || !slices.Equal(ce.Users, []string{"u45"}) {
				t.Fatalf("second commit: %v, want a conflict naming u45", err)
			}
			u := user(t, s, "u45")
			if got := u.Days[u.Day(now)].Payments; got != want || u.Months[202611].SpendFen != 100+want-1 {
				t.Fatalf("after the conflict: %d payments, %d fen; want only p1's", got, u.Months[202611].SpendFen)
			}
			// Computed again from fresh state, p2 is written.
			if o := apply(t, s, p2)[0]; o.Status != state.Applied {
				t.Fatalf("p2 again: %v", o.Status)
			}
			if o := apply(t, s, p1)[0]; o.Status != state.Redelivered {
				t.Fatalf("p1 again: %v", o.Status)
			}
			if u := user(t, s, "u45"); u.Days[u.Day(now)].Payments != want+1 {
				t.Fatalf("%d payments, want %d", u.Days[u.Day(now)].Payments, want+1)
			}
			if state.IsConflict(errors.New("other")) {
				t.Fatal("IsConflict of another error")
			}
		})
	}
}

// A batch prepared while the one before it is not yet committed starts
// from that one's draft, and writes against its token: both commit, in
// order. A conflict forgets every draft.
func TestDraftsChainBatches(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var d state.Drafts
	p1 := state.Item{Event: payment("p1", "u46", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1}
	p2 := state.Item{Event: payment("p2", "u46", now, 200, events.SceneEcommerce, "d"), Topic: 1, Offset: 2}
	other := state.Item{Event: payment("o1", "u47", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1}
	bA, err := s.Prepare(ctx, []state.Item{p1}, &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1 {
		t.Fatalf("%d drafts after batch A, want 1", d.Len())
	}
	// B repeats A's event (a redelivery, seen in A's draft) and adds one.
	bB, err := s.Prepare(ctx, []state.Item{p1, p2, other}, &d)
	if err != nil {
		t.Fatal(err)
	}
	if want := []state.Status{state.Redelivered, state.Applied, state.Applied}; !slices.Equal(statuses(bB.Outcomes), want) {
		t.Fatalf("batch B: %v, want %v", statuses(bB.Outcomes), want)
	}
	if err := s.Commit(ctx, bA, &d); err != nil {
		t.Fatalf("commit A: %v", err)
	}
	if d.Len() != 2 {
		t.Fatalf("%d drafts after A's commit, want B's 2", d.Len())
	}
	if err := s.Commit(ctx, bB, &d); err != nil {
		t.Fatalf("commit B: %v", err)
	}
	if d.Len() != 0 {
		t.Fatalf("%d drafts after every commit", d.Len())
	}
	u := user(t, s, "u46")
	if got := u.Days[u.Day(now)].Payments; got != 2 || u.Months[202611].SpendFen != 300 {
		t.Fatalf("after A and B: %d payments, %d fen; want both events", got, u.Months[202611].SpendFen)
	}
	if u := user(t, s, "u47"); u.Days[u.Day(now)].Payments != 1 {
		t.Fatalf("u47: %+v", u.Days)
	}

	// Another writer changes u46 between C's Prepare and its Commit: C
	// conflicts, and D, prepared on C's draft, is stale: both are computed
	// again from Redis (C first), and E, prepared on D's stale draft, is
	// stale too until D is.
	p3 := state.Item{Event: payment("p3", "u46", now, 400, events.SceneEcommerce, "d"), Topic: 1, Offset: 3}
	p4 := state.Item{Event: payment("p4", "u46", now, 800, events.SceneEcommerce, "d"), Topic: 1, Offset: 4}
	bC, err := s.Prepare(ctx, []state.Item{p3}, &d)
	if err != nil {
		t.Fatal(err)
	}
	bD, err := s.Prepare(ctx, []state.Item{p4, other}, &d)
	if err != nil {
		t.Fatal(err)
	}
	if bC.Stale(&d) || bD.Stale(&d) {
		t.Fatal("stale before any conflict")
	}
	if _, err := s.RecordQuotaCheck(ctx, "u46", now); err != nil {
		t.Fatal(err)
	}
	err = s.Commit(ctx, bC, &d)
	var c *state.ConflictError
	if !errors.As(err, &c) || !slices.Equal(c.Users, []string{"u46"}) {
		t.Fatalf("commit C after another write: %v, want a conflict on u46", err)
	}
	if !bD.Stale(&d) {
		t.Fatal("D, computed on C's draft, is not stale after C's conflict")
	}
	bC, err = s.Reprepare(ctx, bC, c.Users, &d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(statuses(bC.Outcomes), []state.Status{state.Applied}) {
		t.Fatalf("C again: %v", statuses(bC.Outcomes))
	}
	p5 := state.Item{Event: payment("p5", "u46", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 5}
	bE, err := s.Prepare(ctx, []state.Item{p5}, &d)
	if err != nil {
		t.Fatal(err)
	}
	if !bE.Stale(&d) {
		t.Fatal("E, computed on D's stale draft, is not stale")
	}
	if err := s.Commit(ctx, bC, &d); err != nil {
		t.Fatalf("commit C again: %v", err)
	}
	if bD, err = s.Reprepare(ctx, bD, nil, &d); err != nil {
		t.Fatal(err)
	}
	if want := []state.Status{state.Applied, state.Redelivered}; !slices.Equal(statuses(bD.Outcomes), want) {
		t.Fatalf("D again: %v, want %v", statuses(bD.Outcomes), want)
	}
	if err := s.Commit(ctx, bD, &d); err != nil {
		t.Fatalf("commit D again: %v", err)
	}
	if bE, err = s.Reprepare(ctx, bE, nil, &d); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, bE, &d); err != nil {
		t.Fatalf("commit E again: %v", err)
	}
	if d.Len() != 0 {
		t.Fatalf("%d drafts after every commit", d.Len())
	}
	u = user(t, s, "u46")
	if got := u.Months[202611].SpendFen; got != 1_600 || len(u.QuotaChecks) != 1 {
		t.Fatalf("after the retry: %d fen, %d quota checks; want 1600 and the other writer's check", got, len(u.QuotaChecks))
	}
}

// A batch whose events change nothing (all redelivered) writes nothing,
// and commits without a round trip's conflict.
func TestRedeliveredBatchWritesNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	p1 := state.Item{Event: payment("p1", "u48", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1}
	apply(t, s, p1)
	b, err := s.Prepare(ctx, []state.Item{p1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Users()) != 0 || b.Outcomes[0].Status != state.Redelivered {
		t.Fatalf("redelivered batch: users %v, %v", b.Users(), b.Outcomes[0].Status)
	}
	// Another write in between does not make it conflict.
	apply(t, s, state.Item{Event: payment("p2", "u48", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 2})
	if err := s.Commit(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
}

// An event that cannot be kept within the state's bounds is refused with
// an error and changes nothing; the other events of its batch are applied.
func TestRefusedEventsChangeNothing(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	long := strings.Repeat("x", engine.MaxString+1)
	ok := strings.Repeat("y", engine.MaxString)
	out := apply(t, s,
		state.Item{Event: payment("p1", "u49", now, 100, events.SceneEcommerce, long), Topic: 1, Offset: 1},
		state.Item{Event: payment("p2", "u49", now, 100, events.SceneEcommerce, ok), Topic: 1, Offset: 2},
		state.Item{Event: login("l1", "u49", now, "d", long), Topic: 2, Offset: 1},
		state.Item{Event: dueEvent("d1", "u49", long, 100, now, now), Topic: 3, Offset: 1},
		state.Item{Event: paidEvent("r1", "u49", long, 100, now), Topic: 3, Offset: 2},
		state.Item{Event: &events.Event{ID: "pr", Type: events.TypeProfile, Subject: "u49", Time: now,
			Profile: &events.Profile{UserID: "u49", Timezone: "Nowhere/Atlantis"}}, Topic: 4, Offset: 1},
	)
	if want := []state.Status{state.Refused, state.Applied, state.Refused, state.Refused, state.Refused, state.Refused}; !slices.Equal(statuses(out), want) {
		t.Fatalf("statuses %v, want %v", statuses(out), want)
	}
	for i, o := range out {
		if (o.Status == state.Refused) != (o.Err != nil) {
			t.Errorf("item %d: %v with error %v", i, o.Status, o.Err)
		}
	}
	u := user(t, s, "u49")
	if len(u.Devices) != 1 || u.Devices[ok].LastDay != u.Day(now) || len(u.Cities) != 0 || len(u.Bills) != 0 || u.Profile != nil {
		t.Fatalf("after refusals: devices %v, cities %v, bills %v, profile %v", u.Devices, u.Cities, u.Bills, u.Profile)
	}
	if got := u.Days[u.Day(now)].Payments; got != 1 {
		t.Fatalf("%d payments, want 1", got)
	}
	// A user whose only events are refused is never written nor scheduled.
	if o := apply(t, s, state.Item{Event: payment("p1", "u50", now, 100, events.SceneEcommerce, long), Topic: 1, Offset: 1})[0]; o.Status != state.Refused {
		t.Fatalf("%v", o.Status)
	}
	if n := rdb.Exists(ctx, state.UserKey("u50")).Val(); n != 0 {
		t.Fatal("a user with only a refused event was written")
	}
	if err := rdb.ZScore(ctx, state.PhaseKey, "u50").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a user with only a refused event is in the phase index: %v", err)
	}
	// At most MaxBills open bills; one more due event is refused, and has
	// no overdue check.
	var dues []state.Item
	for i := range engine.MaxBills + 1 {
		dues = append(dues, state.Item{Event: dueEvent(fmt.Sprintf("d%d", i), "u51", fmt.Sprintf("b%02d", i), 100, now, now), Topic: 3, Offset: int64(i)})
	}
	out = apply(t, s, dues...)
	for i, o := range out {
		if want := i == engine.MaxBills; (o.Status == state.Refused) != want {
			t.Fatalf("due %d: %v", i, o.Status)
		}
	}
	if u := user(t, s, "u51"); len(u.Bills) != engine.MaxBills {
		t.Fatalf("%d bills open, want %d", len(u.Bills), engine.MaxBills)
	}
	timers, err := s.ClaimTimers(ctx, now.Add(48*time.Hour), 100, time.Minute)
	if err != nil || len(timers) != engine.MaxBills {
		t.Fatalf("%d overdue checks, %v; want %d", len(timers), err, engine.MaxBills)
	}
	// Settled bills make room.
	apply(t, s, state.Item{Event: paidEvent("r0", "u51", "b00", 100, now), Topic: 3, Offset: 100},
		state.Item{Event: dueEvent("d32b", "u51", "b32", 100, now, now), Topic: 3, Offset: 101})
	if u := user(t, s, "u51"); len(u.Bills) != engine.MaxBills {
		t.Fatalf("%d bills open after settling one and opening one, want %d", len(u.Bills), engine.MaxBills)
	} else if _, ok := u.Bills["b32"]; !ok {
		t.Fatalf("b32 not open: %v", u.Bills)
	}
}

// The user is unfrozen when no bill that froze it is open any more: an
// overdue bill whose check did not freeze does not keep it frozen, and of
// two bills that froze it, settling one is not enough.
func TestUnfreezeWhenNoFreezingBillIsOpen(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	due := now.Add(-10 * 24 * time.Hour).Truncate(time.Second)
	apply(t, s,
		state.Item{Event: dueEvent("da", "u52", "a", 1_000, due, now), Topic: 3, Offset: 1},
		state.Item{Event: dueEvent("db", "u52", "b", 1_000, due, now), Topic: 3, Offset: 2},
		state.Item{Event: dueEvent("dc", "u52", "c", 1_000, due, now), Topic: 3, Offset: 3})
	for _, step := range []struct {
		bill   string
		stage  int
		freeze bool
		froze  bool
	}{{"a", 4, true, true}, {"b", 4, true, false}, {"c", 2, false, false}} {
		froze, err := s.AdvanceBill(ctx, "u52", step.bill, step.stage, step.freeze)
		if err != nil || froze != step.froze {
			t.Fatalf("advance %s: froze %v, %v; want %v", step.bill, froze, err, step.froze)
		}
	}
	if u := user(t, s, "u52"); !u.FrozenOverdue || u.Bills["a"].Stage != 4 || u.Bills["c"].Stage != 2 {
		t.Fatalf("after the checks: frozen %v, bills %+v", u.FrozenOverdue, u.Bills)
	}
	// A stage is never moved back.
	if _, err := s.AdvanceBill(ctx, "u52", "a", 1, false); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "u52"); u.Bills["a"].Stage != 4 {
		t.Fatalf("stage moved back to %d", u.Bills["a"].Stage)
	}
	if o := apply(t, s, state.Item{Event: paidEvent("ra", "u52", "a", 1_000, now), Topic: 3, Offset: 4})[0]; o.Unfroze {
		t.Fatal("unfrozen with bill b (which froze it too) still open")
	}
	if u := user(t, s, "u52"); !u.FrozenOverdue {
		t.Fatal("not frozen with b open")
	}
	if o := apply(t, s, state.Item{Event: paidEvent("rb", "u52", "b", 1_000, now), Topic: 3, Offset: 5})[0]; !o.Unfroze {
		t.Fatal("not unfrozen when the last freezing bill was settled (c, open, never froze)")
	}
	u := user(t, s, "u52")
	if u.FrozenOverdue || len(u.Bills) != 1 || u.SettledEpisodes != 2 || len(u.RecentEpisodes) != 2 {
		t.Fatalf("after settling a and b: frozen %v, bills %+v, %d episodes %+v", u.FrozenOverdue, u.Bills, u.SettledEpisodes, u.RecentEpisodes)
	}
	// Settling c, which never froze, unfreezes nothing.
	if o := apply(t, s, state.Item{Event: paidEvent("rc", "u52", "c", 1_000, now), Topic: 3, Offset: 6})[0]; o.Unfroze {
		t.Fatal("settling c reported an unfreeze")
	}
}

// A user who checks their quota (GET /v1/users/{id}/quota?check=1) before
// any event of theirs has a state (the check) but no activity: its first
// event is still its first activity, which makes it known to the recompute
// schedule (the phase index) with a trigger due at once.
func TestFirstEventAfterAQuotaCheckMakesTheUserKnown(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	if _, err := s.RecordQuotaCheck(ctx, "u53", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	apply(t, s, state.Item{Event: payment("p1", "u53", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
	_, phaseErr := rdb.ZScore(ctx, state.PhaseKey, "u53").Result()
	_, trigErr := rdb.ZScore(ctx, state.RecomputeKey, "u53").Result()
	if phaseErr != nil || trigErr != nil {
		t.Fatalf("BUG (state/store.go:411, Prepare: only a user with no stored state (st.Rev == 0) goes to b.newUsers, "+
			"so a user whose state a quota check created is never made known): after a quota check and then its first payment, "+
			"u53's phase index entry: %v, first-activity trigger: %v; want both set (it is never recomputed otherwise)", phaseErr, trigErr)
	}
	if next, ok, err := s.NextRecompute(ctx, "u53", state.Interval(90)); err != nil || !ok || !next.Equal(time.Unix(now.Unix(), 0).UTC()) {
		t.Fatalf("next recompute %v %v %v, want now", next, ok, err)
	}
}

// Redis forgot the scripts (a restart or failover): a commit loads them
// and sends again the writes that did not run (the schedule entries need
// no loaded script: they ran); an update too.
func TestWritesAfterNoScript(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	due := now.Add(-48 * time.Hour).Truncate(time.Second)
	out := apply(t, s,
		state.Item{Event: payment("p1", "u54", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1},
		state.Item{Event: dueEvent("d1", "u54", "b", 1_000, due, now), Topic: 3, Offset: 1})
	if out[0].Status != state.Applied || out[1].Status != state.Applied {
		t.Fatalf("%v", statuses(out))
	}
	if u := user(t, s, "u54"); u.Days[u.Day(now)].Payments != 1 || len(u.Bills) != 1 {
		t.Fatalf("after the reload: %+v, bills %+v", u.Days, u.Bills)
	}
	if err := rdb.ZScore(ctx, state.PhaseKey, "u54").Err(); err != nil {
		t.Fatalf("phase index: %v", err)
	}
	if sc := rdb.ZScore(ctx, state.RecomputeKey, "u54").Val(); int64(sc) != now.Unix() {
		t.Fatalf("first-activity trigger at %v, want now", sc)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceBill(ctx, "u54", "b", 2, false); err != nil {
		t.Fatal(err)
	}
	if u := user(t, s, "u54"); u.Bills["b"].Stage != 2 {
		t.Fatalf("stage %d after the reload, want 2", u.Bills["b"].Stage)
	}
	// A prepared batch, the scripts forgotten before its commit, still
	// compares: a write in between is a conflict.
	b, err := s.Prepare(ctx, []state.Item{{Event: payment("p2", "u54", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordQuotaCheck(ctx, "u54", now); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, b, nil); !state.IsConflict(err) {
		t.Fatalf("commit after a write and a script flush: %v, want a conflict", err)
	}
}

// Two stores with different prefixes share a Redis without seeing each
// other's users or schedules; a prefix with a brace is refused.
func TestPrefixKeepsNamespacesApart(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := context.Background()
	mk := func(prefix string) *state.Store {
		s, err := state.New(rdb, state.Config{Prefix: prefix, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk(""), mk("replay:")
	due := state.Item{Event: &events.Event{ID: "d1", Type: events.TypeRepaymentDue, Source: "//test", Subject: "px", Time: now,
		Due: &events.RepaymentDue{UserID: "px", BillID: "b1", AmountFen: 5_000, DueAt: now.Add(-48 * time.Hour)}}, Topic: 3, Offset: 1}
	if o := apply(t, b, due)[0]; o.Status != state.Applied {
		t.Fatalf("%v", o.Status)
	}
	if u := user(t, a, "px"); len(u.Bills) != 0 {
		t.Fatalf("the unprefixed store sees the prefixed store's bill: %v", u.Bills)
	}
	if u := user(t, b, "px"); len(u.Bills) != 1 {
		t.Fatalf("the prefixed store lost its bill: %v", u.Bills)
	}
	if n := rdb.Exists(ctx, "replay:"+state.UserKey("px"), "replay:"+state.TimersKey, "replay:"+state.PhaseKey).Val(); n != 3 {
		t.Fatalf("%d of the prefixed keys exist, want 3", n)
	}
	if n := rdb.Exists(ctx, state.UserKey("px"), state.TimersKey, state.PhaseKey).Val(); n != 0 {
		t.Fatalf("%d unprefixed keys written by the prefixed store", n)
	}
	if cs, err := a.ClaimTimers(ctx, now.Add(72*time.Hour), 10, time.Minute); err != nil || len(cs) != 0 {
		t.Fatalf("the unprefixed store claims %v (%v)", cs, err)
	}
	if cs, err := b.ClaimTimers(ctx, now.Add(72*time.Hour), 10, time.Minute); err != nil || len(cs) != 1 {
		t.Fatalf("the prefixed store claims %v (%v)", cs, err)
	}
	if _, err := state.New(rdb, state.Config{Prefix: "a{b}"}); err == nil {
		t.Fatal("a prefix with a hash tag was accepted")
	}
}

// Offsets that start over (a topic recreated) are taken for redeliveries,
// flagged Unknown, until the topic's epoch is raised; then they are new.
func TestRaiseEpochAppliesARestartedTopic(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	pay := func(id string, off int64) state.Item {
		return state.Item{Event: payment(id, "ep1", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: off}
	}
	apply(t, s, pay("a", 7))
	if o := apply(t, s, pay("b", 0))[0]; o.Status != state.Redelivered || !o.Unknown {
		t.Fatalf("a new event at an offset passed: %v (unknown %v), want redelivered and unknown", o.Status, o.Unknown)
	}
	if o := apply(t, s, pay("a", 7))[0]; o.Status != state.Redelivered || o.Unknown {
		t.Fatalf("a true redelivery: %v (unknown %v)", o.Status, o.Unknown)
	}
	if e, err := s.RaiseEpoch(ctx, 1); err != nil || e != 1 {
		t.Fatalf("raise: %d, %v", e, err)
	}
	if o := apply(t, s, pay("b", 0))[0]; o.Status != state.Applied {
		t.Fatalf("after the epoch is raised: %v, want applied", o.Status)
	}
	if o := apply(t, s, pay("b", 0))[0]; o.Status != state.Redelivered {
		t.Fatalf("its redelivery: %v", o.Status)
	}
	if u := user(t, s, "ep1"); u.Days[u.Day(now)].Payments != 2 {
		t.Fatalf("%d payments, want 2", u.Days[u.Day(now)].Payments)
	}
	if eps, err := s.Epochs(ctx); err != nil || eps[1] != 1 || len(eps) != 1 {
		t.Fatalf("epochs %v, %v", eps, err)
	}
}

// AdvanceBills records several checks' steps in one write per user: two
// bills of one user (the second freezes), a bill settled meanwhile (gone,
// nothing written for it) and another user's bill.
func TestAdvanceBillsOneWritePerUser(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	dueEv := func(id, user, bill string) state.Item {
		return state.Item{Topic: 3, Offset: -1, Event: &events.Event{ID: id, Type: events.TypeRepaymentDue, Source: "//test", Subject: user, Time: now,
			Due: &events.RepaymentDue{UserID: user, BillID: bill, AmountFen: 1_000, DueAt: now.Add(-100 * time.Hour)}}}
	}
	apply(t, s, dueEv("a1", "ab1", "b1"), dueEv("a2", "ab1", "b2"), dueEv("a3", "ab2", "b1"))
	res, err := s.AdvanceBills(ctx, []state.BillStep{
		{UserID: "ab1", BillID: "b1", Stage: 3},
		{UserID: "ab1", BillID: "b2", Stage: 4, Freeze: true},
		{UserID: "ab1", BillID: "gone", Stage: 1},
		{UserID: "ab2", BillID: "b1", Stage: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []state.BillResult{{}, {Froze: true}, {Gone: true}, {}}
	if !slices.Equal(res, want) {
		t.Fatalf("results %+v, want %+v", res, want)
	}
	u := user(t, s, "ab1")
	if !u.FrozenOverdue || u.Bills["b1"].Stage != 3 || u.Bills["b2"].Stage != 4 {
		t.Fatalf("ab1 after its steps: frozen %v, bills %+v", u.FrozenOverdue, u.Bills)
	}
	if u := user(t, s, "ab2"); u.FrozenOverdue || u.Bills["b1"].Stage != 2 {
		t.Fatalf("ab2 after its step: frozen %v, bills %+v", u.FrozenOverdue, u.Bills)
	}
}

// A saved quota is patched into the user's value with a new write token:
// a batch computed on the value before conflicts, computes again, and
// both the quota and its events are kept.
func TestSavedQuotaAndAnInFlightBatchBothStay(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	apply(t, s, state.Item{Event: payment("q1", "qs1", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
	b, err := s.ClaimRecomputes(ctx, now, 10, time.Minute, state.Interval(90))
	if err != nil || len(b.Claims) != 1 {
		t.Fatalf("claim: %+v, %v", b, err)
	}
	if _, err := s.ReadBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	var d state.Drafts
	ev, err := s.Prepare(ctx, []state.Item{{Event: payment("q2", "qs1", now, 200, events.SceneEcommerce, "d"), Topic: 1, Offset: 2}}, &d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveQuotas(ctx, b, []state.Quota{{UserID: "qs1", QuotaFen: 777_00, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	err = s.Commit(ctx, ev, &d)
	var c *state.ConflictError
	if !errors.As(err, &c) {
		t.Fatalf("the batch computed before the save: %v, want a conflict", err)
	}
	if ev, err = s.Reprepare(ctx, ev, c.Users, &d); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, ev, &d); err != nil {
		t.Fatal(err)
	}
	u := user(t, s, "qs1")
	if !u.HasQuota || u.QuotaFen != 777_00 || u.Recomputes != 1 || u.Days[u.Day(now)].Payments != 2 {
		t.Fatalf("after both: quota %v %d (seq %d), %d payments; want the quota and both payments", u.HasQuota, u.QuotaFen, u.Recomputes, u.Days[u.Day(now)].Payments)
	}
}

// A batch of more users than one call of the compare-and-set takes (its
// arguments are unpacked on Lua's bounded stack) is written in several,
// each user still against its own token: those another writer changed in
// between, in every call, are named and left as the other writer made them.
func TestCommitOfManyUsersComparesEach(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	const n = 4500
	first := make([]state.Item, n)
	for i := range first {
		first[i] = state.Item{Event: payment(fmt.Sprintf("a%d", i), fmt.Sprintf("many%d", i), now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: int64(i)}
	}
	apply(t, s, first...)
	second := make([]state.Item, n)
	for i := range second {
		second[i] = state.Item{Event: payment(fmt.Sprintf("b%d", i), fmt.Sprintf("many%d", i), now, 10, events.SceneEcommerce, "d"), Topic: 1, Offset: int64(n + i)}
	}
	b, err := s.Prepare(ctx, second, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer changes a user in several of the calls, and the last.
	var changed []string
	for _, i := range []int{5, 1500, 2222, 4100, n - 1} {
		u := fmt.Sprintf("many%d", i)
		apply(t, s, state.Item{Event: payment("other"+u, u, now, 1, events.SceneEcommerce, "d"), Topic: 1, Offset: int64(3 * n)})
		changed = append(changed, u)
	}
	err = s.Commit(ctx, b, nil)
	var ce *state.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("commit: %v, want a conflict", err)
	}
	slices.Sort(ce.Users)
	slices.Sort(changed)
	if !slices.Equal(ce.Users, changed) {
		t.Fatalf("conflicting users %v, want %v", ce.Users, changed)
	}
	for i := range n {
		u := fmt.Sprintf("many%d", i)
		want := int64(100 + 10)
		if slices.Contains(changed, u) {
			want = 100 + 1
		}
		if got := user(t, s, u).Months[202611].SpendFen; got != want {
			t.Fatalf("%s spent %d, want %d", u, got, want)
		}
	}
}

// commandLog is a go-redis hook that records the commands sent, in order.
type commandLog struct {
	mu   sync.Mutex
	cmds [][]any
}

func (l *commandLog) add(cmds ...redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cmds {
		l.cmds = append(l.cmds, c.Args())
	}
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { l.add(cmd); return next(ctx, cmd) }
}
func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { l.add(cmds...); return next(ctx, cmds) }
}

// A profile schedules its user's recompute in the entries sent before the
// write, so that a crash cannot lose it, but RecomputeGrace ahead: a job
// claiming it between those entries and the write (a batch's round trip
// spans several reads of Redis, and other clients' commands run in
// between) would compute on the value before the profile. Commit makes it
// due at once when the value is written (a claim keeps an entry made due
// again meanwhile).
func TestCommitMakesTheRecomputeDueAgainAfterTheWrite(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	apply(t, s, state.Item{Event: payment("rp1", "rp", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
	b, err := s.Prepare(ctx, []state.Item{{Event: &events.Event{ID: "prof", Type: events.TypeProfile, Source: "test", Subject: "rp", Time: now,
		Profile: &events.Profile{UserID: "rp", PayScore: 700}}, Offset: 1, Topic: 4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &commandLog{}
	rdb.AddHook(log)
	if err := s.Commit(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	due := func(args []any) bool {
		return len(args) == 5 && args[0] == "zadd" && args[1] == s.Key(state.RecomputeKey) && args[4] == "rp"
	}
	write, before, after := -1, -1, -1
	for i, args := range log.cmds {
		if args[0] == "evalsha" && slices.Contains(args, any(s.Key(state.UserKey("rp")))) {
			write = i
		}
		if due(args) && write < 0 {
			before = i
		} else if due(args) {
			after = i
		}
	}
	if write < 0 || before < 0 || after < 0 {
		t.Fatalf("the write at command %d, rp's recompute scheduled at %d before it and at %d after it; want both: %q", write, before, after, log.cmds)
	}
	if got, want := log.cmds[before][3], float64(now.Add(state.RecomputeGrace).Unix()); got != want {
		t.Errorf("before the write, rp's recompute is scheduled at %v, want %.0f (RecomputeGrace from now, not due yet)", got, want)
	}
	if got, want := log.cmds[after][3], float64(now.Unix()); got != want {
		t.Errorf("after the write, rp's recompute is scheduled at %v, want %.0f (due at once)", got, want)
	}
}
