package conn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
	"github.com/fenqi/fenqi/state"
)

const docs = "../../docs/operations.md"

func redisClient(t *testing.T, r conn.Redis, addr string) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second}
	if err := r.Apply(o); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fenqi's store works over TLS as an ACL user with exactly the rule of
// docs/operations.md, with and without a key prefix, and the rule lets it
// do nothing else.
func TestRedisTLSAndACL(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	addr, admin := conntest.Redis(t, pki)
	for _, c := range []struct{ name, user, prefix string }{
		{"no prefix", "fenqi", ""},
		{"prefix", "fenqi-replay", "replay1:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conntest.AddRedisUser(t, admin, docs, c.user, "pw-"+c.user, c.prefix)
			sec := conn.Redis{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile},
				Username: c.user, Password: "pw-" + c.user}
			rdb := redisClient(t, sec, addr)
			exerciseStore(t, rdb, c.prefix, admin)

			ctx := context.Background()
			for _, cmd := range [][]any{{"GET", "other:key"}, {"FLUSHALL"}, {"KEYS", "*"}, {"CONFIG", "GET", "*"}} {
				err := sec.Explain(rdb.Do(ctx, cmd...).Err())
				if err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "docs/operations.md") {
					t.Errorf("%v: %v, want NOPERM with the docs named", cmd, err)
				}
			}
		})
	}
}

// exerciseStore runs every kind of operation of state.Store.
func exerciseStore(t *testing.T, rdb redis.UniversalClient, prefix string, admin *redis.Client) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	s, err := state.New(rdb, state.Config{Prefix: prefix, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	items := []state.Item{
		{Event: &events.Event{ID: "p1", Type: events.TypePayment, Subject: "alice", Time: now, Payment: &events.Payment{UserID: "alice",
			AmountFen: 1_000, Currency: "CNY", Scene: events.SceneEcommerce, MerchantID: "m1", DeviceID: "d1", City: "shanghai", Auth: events.AuthFace}},
			Topic: 1, Partition: 0, Offset: 1},
		{Event: &events.Event{ID: "l1", Type: events.TypeLogin, Subject: "alice", Time: now, Login: &events.Login{UserID: "alice",
			DeviceID: "d1", City: "shanghai", IP: "10.0.0.1", Auth: events.AuthPassword}}, Topic: 2, Partition: 0, Offset: 1},
		{Event: &events.Event{ID: "due1", Type: events.TypeRepaymentDue, Subject: "alice", Time: now, Due: &events.RepaymentDue{UserID: "alice",
			BillID: "b1", AmountFen: 5_000, DueAt: now.Add(-48 * time.Hour)}}, Topic: 3, Partition: 0, Offset: 1},
		{Event: &events.Event{ID: "pr1", Type: events.TypeProfile, Subject: "bob", Time: now, Profile: &events.Profile{UserID: "bob", PayScore: 700}},
			Topic: 4, Partition: 0, Offset: 1},
	}
	outs, err := s.Apply(ctx, items)
	check("apply", err)
	for i, o := range outs {
		if o.Status != state.Applied {
			t.Fatalf("item %d: %v", i, o.Status)
		}
	}
	// The scripts forgotten (a restart): EVALSHA fails, EVAL and SCRIPT
	// LOAD take over.
	check("script flush", admin.ScriptFlush(ctx).Err())
	var d state.Drafts
	b, err := s.Prepare(ctx, []state.Item{{Event: &events.Event{ID: "p2", Type: events.TypePayment, Subject: "alice", Time: now,
		Payment: &events.Payment{UserID: "alice", AmountFen: 2_000, Currency: "CNY", Scene: events.SceneEcommerce, MerchantID: "m1",
			DeviceID: "d1", City: "shanghai", Auth: events.AuthFace}}, Topic: 1, Partition: 0, Offset: 2}}, &d)
	check("prepare", err)
	check("commit", s.Commit(ctx, b, &d))
	u, err := s.User(ctx, "alice")
	check("user", err)
	if len(u.Bills) != 1 {
		t.Fatalf("alice: %d bills", len(u.Bills))
	}
	_, err = s.Users(ctx, []string{"alice", "bob", "carol"})
	check("users", err)

	cyc := state.Interval(90)
	rb, err := s.ClaimRecomputes(ctx, now, 100, time.Minute, cyc)
	check("claim recomputes", err)
	_, err = s.ReadBatch(ctx, rb)
	check("read batch", err)
	qs := make([]state.Quota, len(rb.Claims))
	for i, c := range rb.Claims {
		qs[i] = state.Quota{UserID: c.Member, QuotaFen: 100, Seq: 1, CycleDone: c.Due}
	}
	check("save quotas", s.SaveQuotas(ctx, rb, qs))
	if len(rb.Claims) != 2 {
		t.Fatalf("%d recomputes claimed, want alice's and bob's", len(rb.Claims))
	}
	rb, err = s.ClaimRecomputes(ctx, now.AddDate(0, 0, 91), 100, time.Minute, cyc) // the periodic cycle
	check("claim the cycle", err)
	check("save the cycle", s.SaveQuotas(ctx, rb, nil))
	check("recompute soon", s.RecomputeSoon(ctx, now, "alice"))
	_, _, err = s.NextRecompute(ctx, "alice", cyc)
	check("next recompute", err)
	_, _, err = s.RecomputeStats(ctx, now, cyc)
	check("recompute stats", err)
	check("recompute all", s.RecomputeAll(ctx, now, cyc))

	timers, err := s.ClaimTimers(ctx, now, 100, time.Minute)
	check("claim timers", err)
	if len(timers) != 1 {
		t.Fatalf("%d overdue checks claimed, want 1", len(timers))
	}
	_, err = s.OpenBills(ctx, timers)
	check("open bills", err)
	_, err = s.AdvanceBills(ctx, []state.BillStep{{UserID: "alice", BillID: "b1", Stage: 1}})
	check("advance bills", err)
	check("schedule bills", s.ScheduleBills(ctx, []state.NextCheck{{UserID: "alice", BillID: "b1", Next: now.Add(time.Hour)}}))
	_, _, err = s.ScheduleStats(ctx, state.TimersKey, now)
	check("schedule stats", err)
	_, _, err = s.ScheduleStats(ctx, state.RecomputeKey, now)
	check("recompute schedule stats", err)

	check("set override", s.SetOverride(ctx, "alice", &state.Override{QuotaFen: 500, Reason: "test", ExpiresAt: now.Add(time.Hour)}))
	_, err = s.RecordQuotaCheck(ctx, "alice", now)
	check("quota check", err)
	_, err = s.RaiseEpoch(ctx, 1)
	check("raise epoch", err)
	_, err = s.Epochs(ctx)
	check("epochs", err)
	// A user's key that is no state (a hash the admin wrote): the store
	// looks at it (TYPE) and quarantines the user.
	check("a hash at a user's key", admin.HSet(ctx, prefix+state.UserKey("hashed"), "f", "v").Err())
	outs, err = s.Apply(ctx, []state.Item{{Event: &events.Event{ID: "h1", Type: events.TypeProfile, Subject: "hashed", Time: now,
		Profile: &events.Profile{UserID: "hashed", PayScore: 700}}, Topic: 4, Partition: 0, Offset: 2}})
	check("apply to a hash", err)
	if outs[0].Status != state.Refused || !errors.Is(outs[0].Err, state.ErrQuarantined) {
		t.Fatalf("an event of a user whose key is a hash: %v (%v), want refused, quarantined", outs[0].Status, outs[0].Err)
	}
	check("ping", rdb.Ping(ctx).Err())
}

// What a misconfigured client sees: a refusal that says which setting to
// look at, never the password.
func TestRedisRefusals(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	other := conntest.New(t)
	addr, admin := conntest.Redis(t, pki)
	conntest.AddRedisUser(t, admin, docs, "fenqi", "pw", "")
	good := conn.Redis{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile}, Username: "fenqi", Password: "pw"}
	plainAddr := admin.Options().Addr
	for _, c := range []struct {
		name      string
		edit      func(*conn.Redis)
		addr      string
		want      []string
		retryable bool
	}{
		{"wrong password", func(r *conn.Redis) { r.Password = "wrong-s3cret" }, addr,
			[]string{"WRONGPASS", `Redis refused user "fenqi"`, "-redis-username"}, false},
		{"unknown user", func(r *conn.Redis) { r.Username, r.Password = "mallory", "wrong-s3cret" }, addr,
			[]string{"WRONGPASS", `"mallory"`}, false},
		{"unknown CA", func(r *conn.Redis) { r.TLS.CAFile = other.CAFile }, addr,
			[]string{"certificate signed by unknown authority", "-redis-tls-ca-file"}, false},
		{"wrong server name", func(r *conn.Redis) { r.TLS.ServerName = "redis.example.com" }, addr,
			[]string{"not redis.example.com", "-redis-tls-server-name"}, false},
		{"client certificate of another CA", func(r *conn.Redis) { r.TLS.CertFile, r.TLS.KeyFile = other.ClientCertFile, other.ClientKeyFile }, addr,
			[]string{"-redis-tls-cert-file"}, true},
		{"plaintext client", func(r *conn.Redis) { r.TLS = conn.TLS{} }, addr,
			[]string{"set -redis-tls"}, true},
		{"TLS client to the plaintext port", func(*conn.Redis) {}, plainAddr,
			[]string{"no answer in time", "A plaintext port does not answer a TLS handshake", "turn -redis-tls off"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := good
			c.edit(&r)
			rdb := redisClient(t, r, c.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := r.Explain(rdb.Ping(ctx).Err())
			refused(t, err, c.want, c.retryable)
		})
	}
	// No password where one is wanted.
	if err := admin.ConfigSet(context.Background(), "requirepass", "adm1n").Err(); err != nil {
		t.Fatal(err)
	}
	r := conn.Redis{TLS: good.TLS}
	err := r.Explain(redisClient(t, r, addr).Ping(context.Background()).Err())
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") || !strings.Contains(err.Error(), "FENQI_REDIS_PASSWORD") {
		t.Errorf("without a password: %v", err)
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		t.Errorf("explained error %v does not unwrap to the redis.Error", err)
	}
}
