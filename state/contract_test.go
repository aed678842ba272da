package state_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

// The store's contract, against a standalone Redis and a Redis Cluster of
// three masters: every script touches only one user's slot (or one index
// key), and pipelines across nodes work.
func TestContract(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) redis.UniversalClient{
		"standalone": func(t *testing.T) redis.UniversalClient { return testenv.Redis(t) },
		"cluster":    func(t *testing.T) redis.UniversalClient { return testenv.RedisCluster(t) },
	}
	for name, newClient := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := state.New(newClient(t), state.Config{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Load(ctx); err != nil {
				t.Fatal(err)
			}
			// Many users, so that they spread over every node.
			var items []state.Item
			for u := range 30 {
				uid := fmt.Sprintf("c%02d", u)
				items = append(items,
					state.Item{Event: payment(uid+"-p1", uid, now, 1_000, events.SceneEcommerce, "d1"), Topic: 1, Partition: u % 3, Offset: int64(10 + u)},
					state.Item{Event: login(uid+"-l1", uid, now, "d1", "shanghai"), Topic: 2, Partition: u % 3, Offset: int64(20 + u)},
					state.Item{Event: &events.Event{ID: uid + "-due", Type: events.TypeRepaymentDue, Subject: uid, Time: now,
						Due: &events.RepaymentDue{UserID: uid, BillID: "b1", AmountFen: 5_000, DueAt: now.Add(-48 * time.Hour)}}, Topic: 3, Partition: u % 3, Offset: int64(30 + u)},
				)
			}
			for i, o := range apply(t, s, items...) {
				if o.Status != state.Applied {
					t.Fatalf("item %d: %v", i, o.Status)
				}
			}
			for i, o := range apply(t, s, items...) {
				if o.Status != state.Redelivered {
					t.Fatalf("redelivered item %d: %v", i, o.Status)
				}
			}
			users := make([]string, 30)
			for u := range users {
				users[u] = fmt.Sprintf("c%02d", u)
			}
			us, err := s.Users(ctx, users)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				if c := u.Days[u.Day(now)]; c.SpendN != 1 || c.Logins != 1 || len(u.Bills) != 1 {
					t.Fatalf("%s: %+v, %d bills", u.ID, c, len(u.Bills))
				}
			}
			// The schedules: every user due for a recompute, every bill's check due.
			claims, err := s.ClaimRecomputes(ctx, now, 100, time.Minute)
			if err != nil || len(claims) != 30 {
				t.Fatalf("recompute claims: %d, %v", len(claims), err)
			}
			qs := make([]state.Quota, len(claims))
			for i, c := range claims {
				qs[i] = state.Quota{UserID: c.Member, QuotaFen: 100, Next: now.AddDate(0, 0, 90), Seq: 1}
			}
			if err := s.SaveQuotas(ctx, qs, state.LeaseUntil(now, time.Minute)); err != nil {
				t.Fatal(err)
			}
			timers, err := s.ClaimTimers(ctx, now, 100, time.Minute)
			if err != nil || len(timers) != 30 {
				t.Fatalf("timer claims: %d, %v", len(timers), err)
			}
			for _, c := range timers {
				if _, err := s.AdvanceBill(ctx, c.UserID, c.BillID, 1, false, now.Add(24*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.RecordQuotaCheck(ctx, "c00", now); err != nil {
				t.Fatal(err)
			}
			if err := s.SetOverride(ctx, "c01", &state.Override{QuotaFen: 1, Reason: "test", ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			u, err := s.User(ctx, "c01")
			if err != nil || !u.HasQuota || u.QuotaFen != 100 || u.Override == nil || u.Bills["b1"].Stage != 1 {
				t.Fatalf("c01 after the jobs: %+v, %v", u, err)
			}
		})
	}
}
