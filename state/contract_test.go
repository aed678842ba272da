package state_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

// backends are the Redis deployments the store's contract holds on: a
// standalone Redis and a Redis Cluster of three masters.
func backends() map[string]func(t *testing.T) redis.UniversalClient {
	return map[string]func(t *testing.T) redis.UniversalClient{
		"standalone": func(t *testing.T) redis.UniversalClient { return testenv.Redis(t) },
		"cluster":    func(t *testing.T) redis.UniversalClient { return testenv.RedisCluster(t) },
	}
}

// The store's contract, against a standalone Redis and a Redis Cluster of
// three masters: every script touches only one user's slot (or the
// recompute keys' one slot), the compare-and-set works per user on every
// node, and pipelines across nodes work.
func TestContract(t *testing.T) {
	t.Parallel()
	for name, newClient := range backends() {
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
				if c := u.Days[u.Day(now)]; c.Payments != 1 || u.Devices["d1"].Logins != 1 || len(u.Bills) != 1 {
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
			bills, err := s.OpenBills(ctx, timers)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range timers {
				if bills[i] == nil || bills[i].RemainingFen != 5_000 {
					t.Fatalf("open bill of %s: %+v", c.UserID, bills[i])
				}
				if _, err := s.AdvanceBill(ctx, c.UserID, c.BillID, 1, false); err != nil {
					t.Fatal(err)
				}
				if err := s.ScheduleBills(ctx, []state.NextCheck{{UserID: c.UserID, BillID: c.BillID, Next: now.Add(24 * time.Hour)}}); err != nil {
					t.Fatal(err)
				}
			}
			if again, err := s.ClaimTimers(ctx, now.Add(24*time.Hour), 100, time.Minute); err != nil || len(again) != 30 {
				t.Fatalf("timer claims a day later: %d, %v", len(again), err)
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
			if n, err := s.MemoryUsage(ctx, "c01"); err != nil || n <= 0 {
				t.Fatalf("memory usage of c01: %d, %v", n, err)
			}
			if n, err := s.MemoryUsage(ctx, "nobody"); err != nil || n != 0 {
				t.Fatalf("memory usage of a user never seen: %d, %v", n, err)
			}

			// The compare-and-set over users on every node: two batches
			// prepared from the same states; the second one's users all
			// conflict, and nothing of it is written.
			var first, second []state.Item
			for u := range 30 {
				uid := fmt.Sprintf("c%02d", u)
				first = append(first, state.Item{Event: payment(uid+"-p2", uid, now, 1_000, events.SceneEcommerce, "d1"), Topic: 1, Partition: u % 3, Offset: int64(100 + u)})
				second = append(second, state.Item{Event: payment(uid+"-p3", uid, now, 1_000, events.SceneEcommerce, "d1"), Topic: 1, Partition: u % 3, Offset: int64(200 + u)})
			}
			b1, err := s.Prepare(ctx, first, nil)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := s.Prepare(ctx, second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, b1, nil); err != nil {
				t.Fatal(err)
			}
			err = s.Commit(ctx, b2, nil)
			var ce *state.ConflictError
			if !errors.As(err, &ce) || len(ce.Users) != 30 {
				t.Fatalf("second commit: %v, want a conflict of the 30 users", err)
			}
			// Drafts: a batch prepared on the draft of one not yet committed.
			var d state.Drafts
			b3, err := s.Prepare(ctx, second, &d)
			if err != nil {
				t.Fatal(err)
			}
			var third []state.Item
			for u := range 30 {
				uid := fmt.Sprintf("c%02d", u)
				third = append(third, state.Item{Event: payment(uid+"-p4", uid, now, 1_000, events.SceneEcommerce, "d1"), Topic: 1, Partition: u % 3, Offset: int64(300 + u)})
			}
			b4, err := s.Prepare(ctx, third, &d)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, b3, &d); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, b4, &d); err != nil {
				t.Fatal(err)
			}
			if d.Len() != 0 {
				t.Fatalf("%d drafts left after every batch committed", d.Len())
			}
			if us, err = s.Users(ctx, users); err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				if c := u.Days[u.Day(now)]; c.Payments != 4 {
					t.Fatalf("%s: %d payments today, want 4 (p1, p2, p3, p4)", u.ID, c.Payments)
				}
			}
		})
	}
}

// failGets is a go-redis hook that, while on, fails the GET of one key in
// every pipeline (a node timing out, CLUSTERDOWN, LOADING…), the way
// go-redis reports it: the command's error set, and the pipeline's error
// the first command error in order.
type failGets struct {
	key string
	on  atomic.Bool
}

func (h *failGets) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failGets) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *failGets) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if !h.on.Load() {
			return err
		}
		for _, c := range cmds {
			if a := c.Args(); len(a) == 2 && a[0] == "get" && a[1] == h.key {
				c.SetErr(errors.New("i/o timeout (injected)"))
				if sc, ok := c.(*redis.StringCmd); ok {
					sc.SetVal("") // nothing was read
				}
			}
		}
		for _, c := range cmds {
			if c.Err() != nil {
				return c.Err()
			}
		}
		return nil
	}
}

// In a Redis Cluster a batch's users are read with one GET each: a GET
// that fails (its node timed out) is an error of the read, even when a
// GET before it found no key (redis.Nil, a new user). Read as "no state",
// the user's events would be computed from nothing, and their decisions
// published before the write's compare-and-set noticed; an overdue check
// would find its bill gone.
func TestClusterReadErrorIsNotANewUser(t *testing.T) {
	t.Parallel()
	cc := testenv.RedisCluster(t)
	s, err := state.New(cc, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, s,
		state.Item{Event: login("l1", "known", now, "d1", "shanghai"), Topic: 2, Offset: 1},
		state.Item{Event: dueEvent("d1", "known", "b1", 5_000, now.Add(-48*time.Hour), now), Topic: 3, Offset: 1})
	h := &failGets{key: state.UserKey("known")}
	cc.AddHook(h)
	h.on.Store(true)
	// The failing GET alone is an error.
	if _, err := s.User(ctx, "known"); err == nil {
		t.Fatal("a failed read of one user returned no error")
	}
	var problems []string
	if us, err := s.Users(ctx, []string{"never-seen", "known"}); err == nil {
		problems = append(problems, fmt.Sprintf("Users(never-seen, known) returned no error and %d devices, %d bills for known", len(us[1].Devices), len(us[1].Bills)))
	}
	if bills, err := s.OpenBills(ctx, []state.TimerClaim{{UserID: "never-seen", BillID: "b"}, {UserID: "known", BillID: "b1"}}); err == nil {
		problems = append(problems, fmt.Sprintf("OpenBills returned no error and bill b1 %v (the overdue job drops a nil bill's check)", bills[1]))
	}
	if b, err := s.Prepare(ctx, []state.Item{
		{Event: payment("p1", "never-seen", now, 100, events.SceneEcommerce, "d1"), Topic: 1, Offset: 1},
		{Event: payment("p2", "known", now, 100, events.SceneEcommerce, "d2"), Topic: 1, Offset: 1},
	}, nil); err == nil {
		problems = append(problems, fmt.Sprintf("Prepare returned no error and computed known's payment from no state (new device %v; d2 is new after d1)",
			b.Outcomes[1].NewDevice))
	}
	if len(problems) > 0 {
		t.Fatalf("BUG (state/store.go:199-205, read, cluster branch: pipe.Exec's error is the first command's, redis.Nil for a missing key "+
			"earlier in the batch, and each command's own error is then taken as \"not found\" (found[i] = c.Err() == nil, vals[i] = \"\"), "+
			"so a failed GET reads as a user never seen): with the GET of known failing after a GET of a missing key:\n  %s",
			strings.Join(problems, "\n  "))
	}
}
