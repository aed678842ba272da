package state_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/state"
)

// A batch's write, when other writers changed some of its users after it
// read them, writes exactly the users that did not change and leaves each
// changed one as the other writer left it: written again (its value
// byte for byte), deleted, replaced by a key of another type, or created
// (a user the batch read as new). No other key is made. In a standalone
// Redis with more users than one script call takes (three calls), and in
// a Redis Cluster.
func TestCommitWritesOnlyTheUsersThatDidNotChange(t *testing.T) {
	t.Parallel()
	users := map[string]int{"standalone": 2_300, "cluster": 120}
	for name, newClient := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb := newClient(t)
			s, err := state.New(rdb, state.Config{Now: func() time.Time { return now }, Prefix: "cas:"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Load(ctx); err != nil {
				t.Fatal(err)
			}
			id := func(i int) string { return fmt.Sprintf("w%04d", i) }
			key := func(i int) string { return s.Key(state.UserKey(id(i))) }
			pay := func(i int, ev string, offset int64) state.Item {
				return state.Item{Event: payment(fmt.Sprintf("%s-%s", id(i), ev), id(i), now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: offset}
			}
			const (
				unchanged = iota // written by the batch
				rewritten        // written by another writer meanwhile
				deleted
				otherType
				created // read as new, created meanwhile
				stillNew
			)
			kind := func(i int) int {
				switch i % 10 {
				case 1:
					return rewritten
				case 2:
					return deleted
				case 3:
					return otherType
				case 9:
					if i%20 == 19 {
						return created
					}
					return stillNew
				}
				return unchanged
			}
			var first, batch []state.Item
			for i := range users[name] {
				if k := kind(i); k != created && k != stillNew {
					first = append(first, pay(i, "a", 1))
				}
				batch = append(batch, pay(i, "b", 2))
			}
			apply(t, s, first...)
			b, err := s.Prepare(ctx, batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The other writers.
			var others []state.Item
			for i := range users[name] {
				switch kind(i) {
				case rewritten, created:
					others = append(others, pay(i, "other", 3))
				case deleted:
					if err := rdb.Del(ctx, key(i)).Err(); err != nil {
						t.Fatal(err)
					}
				case otherType:
					if err := rdb.Del(ctx, key(i)).Err(); err != nil {
						t.Fatal(err)
					}
					if err := rdb.HSet(ctx, key(i), "f", "v").Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			apply(t, s, others...)
			left := map[int]string{}
			var wantFailed []string
			for i := range users[name] {
				switch kind(i) {
				case rewritten, created:
					v, err := rdb.Get(ctx, key(i)).Result()
					if err != nil {
						t.Fatal(err)
					}
					left[i] = v
					fallthrough
				case deleted, otherType:
					wantFailed = append(wantFailed, id(i))
				}
			}

			err = s.Commit(ctx, b, nil)
			var ce *state.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("commit: %v, want a conflict", err)
			}
			got := slices.Sorted(slices.Values(ce.Users))
			if !slices.Equal(got, wantFailed) {
				t.Fatalf("the conflict names %d users, want %d: %v", len(got), len(wantFailed), got)
			}
			for i := range users[name] {
				switch k := kind(i); k {
				case rewritten, created:
					if v, err := rdb.Get(ctx, key(i)).Result(); err != nil || v != left[i] {
						t.Fatalf("%s (changed meanwhile) was overwritten: %v", id(i), err)
					}
				case deleted:
					if n, err := rdb.Exists(ctx, key(i)).Result(); err != nil || n != 0 {
						t.Fatalf("%s (deleted meanwhile) exists again: %d, %v", id(i), n, err)
					}
				case otherType:
					if v, err := rdb.HGet(ctx, key(i), "f").Result(); err != nil || v != "v" {
						t.Fatalf("%s (a hash meanwhile): %q, %v", id(i), v, err)
					}
				default:
					want := int64(1)
					if k == unchanged {
						want = 2
					}
					if u := user(t, s, id(i)); u.Days[u.Day(now)].Payments != want {
						t.Fatalf("%s: %d payments, want %d (the batch's write)", id(i), u.Days[u.Day(now)].Payments, want)
					}
				}
			}
			known := map[string]bool{}
			for _, k := range []string{state.TimersKey, state.RecomputeKey, state.RecomputeDueKey, state.PhaseKey,
				state.CursorKey, state.LeasesKey, state.EpochsKey, state.QuarantineKey} {
				known[s.Key(k)] = true
			}
			for i := range users[name] {
				known[key(i)] = true
			}
			var stray []string
			scan := func(ctx context.Context, c *redis.Client) error {
				keys, err := c.Keys(ctx, "*").Result()
				for _, k := range keys {
					if !known[k] {
						stray = append(stray, k)
					}
				}
				return err
			}
			switch c := rdb.(type) {
			case *redis.ClusterClient:
				err = c.ForEachMaster(ctx, scan)
			case *redis.Client:
				err = scan(ctx, c)
			}
			if err != nil || len(stray) > 0 {
				t.Fatalf("keys left behind by the write: %q, %v", stray, err)
			}
		})
	}
}

// A user's key that holds something else than a state (a key of another
// type, an empty string: an operator's mistake, another program sharing
// the namespace) is not a user never seen: its events are refused
// (dead-lettered) and the user quarantined with the reason, and nothing
// is written over the key. Before, standalone read it as a new user whose
// write (SET NX) then failed, again and again: the batch never ended.
func TestAKeyThatIsNoStateQuarantinesTheUser(t *testing.T) {
	t.Parallel()
	for name, newClient := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb := newClient(t)
			s, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := s.Load(ctx); err != nil {
				t.Fatal(err)
			}
			key := func(u string) string { return s.Key(state.UserKey(u)) }
			if err := rdb.HSet(ctx, key("hashed"), "f", "v").Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Set(ctx, key("emptied"), "", 0).Err(); err != nil {
				t.Fatal(err)
			}
			pay := func(u string) state.Item {
				return state.Item{Event: payment(u+"-p", u, now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1}
			}
			out, err := s.Apply(ctx, []state.Item{pay("hashed"), pay("fine"), pay("emptied")})
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			for i, want := range []state.Status{state.Refused, state.Applied, state.Refused} {
				if out[i].Status != want {
					t.Fatalf("event %d: %v (%v), want %v", i, out[i].Status, out[i].Err, want)
				}
			}
			if !errors.Is(out[0].Err, state.ErrQuarantined) || !errors.Is(out[2].Err, state.ErrQuarantined) {
				t.Fatalf("refused with %v and %v, want ErrQuarantined", out[0].Err, out[2].Err)
			}
			q, err := s.Quarantined(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(q["hashed"], "hash") || !strings.Contains(q["emptied"], "empty") {
				t.Fatalf("quarantine: %q", q)
			}
			if v, err := rdb.HGet(ctx, key("hashed"), "f").Result(); err != nil || v != "v" {
				t.Fatalf("the hash: %q, %v", v, err)
			}
			// Every read says so, not only the pipeline's.
			for _, u := range []string{"hashed", "emptied"} {
				if _, err := s.User(ctx, u); !errors.Is(err, state.ErrQuarantined) {
					t.Fatalf("User(%s): %v, want ErrQuarantined", u, err)
				}
			}
			if bills, err := s.OpenBills(ctx, []state.TimerClaim{{UserID: "hashed", BillID: "b"}}); err != nil || bills[0] == nil || !bills[0].Quarantined {
				t.Fatalf("OpenBills of a quarantined user: %+v, %v; want it said quarantined (not a bill gone)", bills, err)
			}
			if v, err := rdb.Get(ctx, key("emptied")).Result(); err != nil || v != "" {
				t.Fatalf("the empty value: %q, %v", v, err)
			}
		})
	}
}

// refuseScriptLoad makes every SCRIPT LOAD fail, as when Redis goes away
// again right after a restart that made it forget the scripts.
type refuseScriptLoad struct{}

func (refuseScriptLoad) DialHook(next redis.DialHook) redis.DialHook { return next }
func (refuseScriptLoad) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 1 && a[0] == "script" && a[1] == "load" {
			cmd.SetErr(errors.New("connection refused (injected)"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}
func (refuseScriptLoad) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A user's first state and its schedule entries go in one round trip that
// needs no script loaded: Redis forgot its scripts, and loading them
// fails, yet the first write of a new user makes it known to the
// recompute schedule. (Before, the schedule's script went by EVALSHA: its
// NOSCRIPT came after the state was written, marked known, and the reload
// failing left a user the schedule never knew, its events redelivered
// as repeats that make no entries.)
func TestANewUserIsScheduledWithNoScriptLoaded(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(refuseScriptLoad{})
	out, err := s.Apply(ctx, []state.Item{{Event: payment("n1", "newbie", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1}})
	if err != nil || out[0].Status != state.Applied {
		t.Fatalf("apply: %v, %v", out, err)
	}
	if err := rdb.ZScore(ctx, state.PhaseKey, "newbie").Err(); err != nil {
		t.Fatalf("the new user is not in the schedule's phase index: %v", err)
	}
	if sc, err := rdb.ZScore(ctx, state.RecomputeKey, "newbie").Result(); err != nil || int64(sc) != now.Unix() {
		t.Fatalf("first-activity trigger %v, %v; want due now", sc, err)
	}
}
