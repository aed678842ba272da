package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/state"
)

// operatorEvent is a fenqi.operator.v1 event of user at at.
func operatorEvent(id, user string, at time.Time, op events.Operator) *events.Event {
	op.UserID, op.Operator = user, "alice"
	return &events.Event{ID: id, Type: events.TypeOperator, Source: "fenqi/admin", Subject: user, Time: at, Op: &op}
}

// The operator's changes come as events on the operator topic (index 5):
// applied like any event, deduplicated by (source, id) and offset, and an
// override set or cleared makes the user's recompute due at once, as
// Store.SetOverride did.
func TestOperatorEventsApplied(t *testing.T) {
	t.Parallel()
	s, rdb := newStoreRedis(t)
	ctx := context.Background()
	exp := now.Add(30 * 24 * time.Hour).Truncate(time.Second)
	item := func(e *events.Event, off int64) state.Item { return state.Item{Event: e, Topic: 5, Offset: off} }

	// A special quota and a quota check schedule nothing but the user's
	// first recompute (a user seen for the first time).
	outs := apply(t, s,
		item(operatorEvent("op-1", "w1", now.Add(-time.Minute), events.Operator{Action: events.OperatorSetSpecial, QuotaFen: 300000, Reason: "surgery", ExpiresAt: exp}), 0),
		item(operatorEvent("op-2", "w1", now.Add(-time.Minute), events.Operator{Action: events.OperatorQuotaCheck}), 1))
	for i, o := range outs {
		if o.Status != state.Applied || o.RecomputeNow {
			t.Fatalf("event %d: %+v", i, o)
		}
	}
	u := user(t, s, "w1")
	if u.Special == nil || u.Special.QuotaFen != 300000 || u.Special.Operator != "alice" || !u.Special.ExpiresAt.Equal(exp) {
		t.Fatalf("special %+v", u.Special)
	}
	if len(u.QuotaChecks) != 1 || u.QuotaChecks[0].Unix() != now.Add(-time.Minute).Unix() {
		t.Fatalf("quota checks %v, want the event's time", u.QuotaChecks)
	}
	// The first recompute is done: no trigger left.
	if err := rdb.ZRem(ctx, state.RecomputeKey, "w1").Err(); err != nil {
		t.Fatal(err)
	}

	// An override: applied, and the recompute due now.
	set := operatorEvent("op-3", "w1", now.Add(-time.Second), events.Operator{Action: events.OperatorSetOverride, QuotaFen: 800000, Reason: "VIP", ExpiresAt: exp})
	if o := apply(t, s, item(set, 2))[0]; o.Status != state.Applied || !o.RecomputeNow {
		t.Fatalf("override: %+v", o)
	}
	if u := user(t, s, "w1"); u.Override == nil || u.Override.QuotaFen != 800000 || u.Override.Operator != "alice" || !u.Override.ExpiresAt.Equal(exp) {
		t.Fatalf("override %+v", u.Override)
	}
	if sc, err := rdb.ZScore(ctx, state.RecomputeKey, "w1").Result(); err != nil || int64(sc) != now.Unix() {
		t.Fatalf("recompute due %v (%v), want now", int64(sc), err)
	}

	// Redelivered, and sent again without an offset (a replay of the
	// admin's own write): no change, no new trigger.
	if err := rdb.ZRem(ctx, state.RecomputeKey, "w1").Err(); err != nil {
		t.Fatal(err)
	}
	for _, it := range []state.Item{item(set, 2), item(set, -1)} {
		if o := apply(t, s, it)[0]; o.Status == state.Applied {
			t.Fatalf("a repeat was applied: %+v", o)
		}
	}
	if err := rdb.ZScore(ctx, state.RecomputeKey, "w1").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a repeat scheduled a recompute (%v)", err)
	}

	// Cleared: gone, and due again.
	clear := operatorEvent("op-4", "w1", now, events.Operator{Action: events.OperatorClearOverride})
	if o := apply(t, s, item(clear, 3))[0]; o.Status != state.Applied || !o.RecomputeNow {
		t.Fatalf("clear: %+v", o)
	}
	if u := user(t, s, "w1"); u.Override != nil || u.Special == nil {
		t.Fatalf("after the clear: override %+v special %+v", u.Override, u.Special)
	}
	if sc, err := rdb.ZScore(ctx, state.RecomputeKey, "w1").Result(); err != nil || int64(sc) != now.Unix() {
		t.Fatalf("recompute due %v (%v), want now", int64(sc), err)
	}
}

// A replay into a fresh namespace (a rebuild) restores what the operator
// events did.
func TestOperatorEventsRebuild(t *testing.T) {
	t.Parallel()
	exp := now.Add(24 * time.Hour).Truncate(time.Second)
	evs := []*events.Event{
		operatorEvent("op-1", "w2", now.Add(-time.Hour), events.Operator{Action: events.OperatorSetOverride, QuotaFen: 1000, Reason: "a", ExpiresAt: exp}),
		operatorEvent("op-2", "w2", now.Add(-time.Minute), events.Operator{Action: events.OperatorQuotaCheck}),
	}
	var views []*state.User
	for range 2 {
		s := newStore(t)
		for i, e := range evs {
			apply(t, s, state.Item{Event: e, Topic: 5, Offset: int64(i)})
		}
		views = append(views, user(t, s, "w2"))
	}
	for _, u := range views {
		if u.Override == nil || u.Override.QuotaFen != 1000 || len(u.QuotaChecks) != 1 {
			t.Fatalf("rebuilt: override %+v checks %v", u.Override, u.QuotaChecks)
		}
	}
}
