package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/state"
)

// A user whose state cannot be read (issue 12) is quarantined, never a
// reason to stop: its events are refused (the pipeline dead-letters them),
// the other users of the batch are applied, its value is kept as it was for
// an operator, reads of it say so, and its overdue checks wait.
func TestUnreadableUserIsQuarantined(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	// a bill for bad, then its value overwritten by something else
	apply(t, s, state.Item{Event: dueEvent("d0", "bad", "b1", 10_000, now.Add(-48*time.Hour), now.Add(-72*time.Hour)), Topic: 3, Offset: 1})
	const garbage = "\x07not a state"
	if err := rdb.Set(ctx, state.UserKey("bad"), garbage, 0).Err(); err != nil {
		t.Fatal(err)
	}
	out := apply(t, s,
		state.Item{Event: payment("p1", "bad", now, 1_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 10},
		state.Item{Event: payment("p2", "good", now, 1_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 11},
		state.Item{Event: payment("p3", "bad", now, 2_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 12},
	)
	for _, i := range []int{0, 2} {
		if out[i].Status != state.Refused || !errors.Is(out[i].Err, state.ErrQuarantined) {
			t.Errorf("event %d of the unreadable user: %+v", i, out[i])
		}
	}
	if out[1].Status != state.Applied {
		t.Errorf("the other user's event: %+v", out[1])
	}
	if v := rdb.Get(ctx, state.UserKey("bad")).Val(); v != garbage {
		t.Errorf("the unreadable value was written over: %q", v)
	}
	q, err := s.Quarantined(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || !strings.Contains(q["bad"], "version 7") {
		t.Errorf("quarantine %v", q)
	}
	if _, err := s.User(ctx, "bad"); !errors.Is(err, state.ErrQuarantined) {
		t.Errorf("reading the user: %v", err)
	}
	if err := s.SetOverride(ctx, "bad", nil); !errors.Is(err, state.ErrQuarantined) {
		t.Errorf("an override of the user: %v", err)
	}
	claims, err := s.ClaimTimers(ctx, now, 10, time.Minute)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claims %v %v", claims, err)
	}
	bills, err := s.OpenBills(ctx, claims)
	if err != nil || len(bills) != 1 || bills[0] == nil || !bills[0].Quarantined {
		t.Fatalf("the bill of a quarantined user: %+v %v", bills, err)
	}
	// repaired (deleted) and released: its events apply again
	rdb.Del(ctx, state.UserKey("bad"))
	rdb.HDel(ctx, state.QuarantineKey, "bad")
	if out := apply(t, s, state.Item{Event: payment("p4", "bad", now, 1_000, events.SceneEcommerce, "d"), Topic: 1, Offset: 13}); out[0].Status != state.Applied {
		t.Errorf("after the repair: %+v", out[0])
	}
}
