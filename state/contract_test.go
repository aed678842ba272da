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
			// The schedules: every user due for a recompute (first activity),
			// every bill's check due; then, a cycle later, every user due again.
			cyc := state.Interval(90)
			saveAll := func(at time.Time, wantPeriodic bool) {
				t.Helper()
				seen := map[string]bool{}
				for {
					b, err := s.ClaimRecomputes(ctx, at, 100, time.Minute, cyc)
					if err != nil {
						t.Fatal(err)
					}
					if len(b.Claims) == 0 {
						break
					}
					qs := make([]state.Quota, len(b.Claims))
					for i, c := range b.Claims {
						if seen[c.Member] || b.Periodic() != wantPeriodic {
							t.Fatalf("claim at %v: %s again, or periodic %v", at, c.Member, b.Periodic())
						}
						seen[c.Member] = true
						qs[i] = state.Quota{UserID: c.Member, QuotaFen: 100, Seq: 1, CycleDone: c.Due}
					}
					if err := s.SaveQuotas(ctx, b, qs); err != nil {
						t.Fatal(err)
					}
				}
				if len(seen) != 30 {
					t.Fatalf("%d users recomputed at %v, want 30", len(seen), at)
				}
			}
			saveAll(now, false)
			saveAll(now.AddDate(0, 0, 91), true)
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
