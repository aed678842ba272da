package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

// fenqictl quarantine lists the users whose state cannot be read, as fenqid
// quarantined them, with the reason.
func TestQuarantineList(t *testing.T) {
	t.Parallel()
	addr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	store, err := state.New(rdb, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, state.UserKey("u-broken"), "\x05bad", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e := &events.Event{ID: "p1", Type: events.TypePayment, Source: "t", Subject: "u-broken", Time: time.Now(),
		Payment: &events.Payment{UserID: "u-broken", AmountFen: 100, Currency: "CNY", Scene: events.SceneOther}}
	if _, err := store.Apply(ctx, []state.Item{{Event: e, Topic: 1, Offset: -1}}); err != nil {
		t.Fatal(err)
	}
	res := runCmd(t, nil, "", "quarantine", "--redis-addr", addr)
	if res.code() != 0 || !strings.Contains(res.stdout, "1 quarantined users") || !strings.Contains(res.stdout, "u-broken") ||
		!strings.Contains(res.stdout, "version 5") {
		t.Fatalf("exit %d\n%s\n%s", res.code(), res.stdout, res.stderr)
	}
	if res := runCmd(t, nil, "", "quarantine", "--redis-addr", "nope"); res.code() == 0 || !strings.Contains(res.stderr+res.err.Error(), "host:port") {
		t.Fatalf("a bad address: exit %d %v", res.code(), res.err)
	}
}
