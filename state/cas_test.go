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
// (a user the batch read as new). Nothing of the write's own keys stays
// behind. In a standalone Redis with more users than one script call
// takes (the check in three calls), and in a Redis Cluster.
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
			var stray []string
			scan := func(ctx context.Context, c *redis.Client) error {
				keys, err := c.Keys(ctx, "*").Result()
				for _, k := range keys {
					if strings.HasSuffix(k, ":new") || !strings.HasPrefix(k, "cas:") {
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

// The write is one transaction: the staged values and the script that
// renames them over the users' keys run with nothing in between, so no
// other writer's staged value of the same user can be renamed in.
func TestCommitIsOneTransaction(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	apply(t, s, state.Item{Event: payment("t1", "tx", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
	b, err := s.Prepare(ctx, []state.Item{{Event: payment("t2", "tx", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &commandLog{}
	rdb.AddHook(log)
	if err := s.Commit(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, args := range log.cmds {
		names = append(names, fmt.Sprint(args[0]))
	}
	multi, set, script, exec := slices.Index(names, "multi"), slices.Index(names, "mset"), slices.Index(names, "eval"), slices.Index(names, "exec")
	if multi < 0 || !(multi < set && set < script && script < exec) {
		t.Fatalf("the write's commands: %q; want multi, mset (staged), eval, exec in that order", names)
	}
	if k := log.cmds[set][1]; k != s.Key(state.UserKey("tx"))+":new" {
		t.Fatalf("the MSET writes %q, not the user's staged key", k)
	}
}

// A write whose script stops half way leaves every user as it was: here
// the ACL refuses RENAME to the connection, so the script stops at its
// first user that matched. The MSET before it wrote only staged keys.
// (Moving changed users aside before a blind MSET of the users' keys,
// tried before this, overwrote and deleted users here.) The next write
// with the rights it needs goes through and leaves no staged key.
func TestAWriteStoppedHalfWayChangesNoUser(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	var first, batch []state.Item
	for i := range 40 {
		uid := fmt.Sprintf("h%02d", i)
		if i%4 != 3 { // every fourth user is not stored yet
			first = append(first, state.Item{Event: payment(uid+"-a", uid, now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 1})
		}
		batch = append(batch, state.Item{Event: payment(uid+"-b", uid, now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 2})
	}
	apply(t, s, first...)
	// h00 changes after both batches read it: the script deletes its
	// staged value (allowed) before it reaches h01, which it would rename.
	b, err := s.Prepare(ctx, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(ctx, "ACL", "SETUSER", "norename", "on", ">pw", "~*", "&*", "+@all", "-rename").Err(); err != nil {
		t.Fatal(err)
	}
	limited := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, Username: "norename", Password: "pw"})
	t.Cleanup(func() { _ = limited.Close() })
	ls, err := state.New(limited, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := ls.Prepare(ctx, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, state.Item{Event: payment("h00-c", "h00", now, 100, events.SceneEcommerce, "d"), Topic: 1, Offset: 3})
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, it := range batch {
			v, err := rdb.Get(ctx, s.Key(state.UserKey(it.Event.UserID()))).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			m[it.Event.UserID()] = v
		}
		return m
	}
	before := snapshot()

	if err := ls.Commit(ctx, lb, nil); err == nil || state.IsConflict(err) || !strings.Contains(err.Error(), "can't run this command") {
		t.Fatalf("a write whose RENAME is refused: %v, want the refusal", err)
	}
	if after := snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
		for u, v := range after {
			if before[u] != v {
				t.Errorf("%s changed by a write that stopped half way", u)
			}
		}
		t.FailNow()
	}
	// The batch read before h00 changed: its write writes all but h00.
	err = s.Commit(ctx, b, nil)
	var ce *state.ConflictError
	if !errors.As(err, &ce) || !slices.Equal(ce.Users, []string{"h00"}) {
		t.Fatalf("the full write: %v, want a conflict naming h00 alone", err)
	}
	for _, it := range batch[1:] {
		uid := it.Event.UserID()
		want := int64(2)
		if before[uid] == "" {
			want = 1
		}
		if u := user(t, s, uid); u.Days[u.Day(now)].Payments != want {
			t.Fatalf("%s: %d payments after the full write, want %d", uid, u.Days[u.Day(now)].Payments, want)
		}
	}
	if keys, err := rdb.Keys(ctx, "*:new").Result(); err != nil || len(keys) > 0 {
		t.Fatalf("staged keys left: %q, %v", keys, err)
	}
}
