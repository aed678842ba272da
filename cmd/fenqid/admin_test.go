package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
)

// adminNow is when the tests ask the admin API: Tuesday 2026-03-17 10:00
// in Shanghai. The last three full months are December, January and
// February.
var adminNow = time.Date(2026, 3, 17, 10, 0, 0, 0, shanghai)

// testClock is the injected clock of the store and the admin listener.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// Input topic indexes (consumers.Topics order).
const (
	topicPayments = 1
	topicLogins   = 2
	topicProfiles = 4
	topicOperator = 5
)

// storeOps applies the admin's operator events through the real store, as
// the pipeline does from the operator topic (topic index 5; Offset -1: no
// Kafka offset, the (source, id) check alone guards against repeats), so
// that a test reads their effect at once. It is the admin's own
// interface, not a fake of Kafka: TestOperatorTopicEndToEnd runs the
// real path through the broker.
type storeOps struct{ store *state.Store }

func (o storeOps) Submit(ctx context.Context, e events.Event) error {
	outs, err := o.store.Apply(ctx, []state.Item{{Event: &e, Topic: topicOperator, Offset: -1}})
	if err != nil {
		return err
	}
	if outs[0].Status != state.Applied {
		return fmt.Errorf("operator event %s: %v (%v)", e.ID, outs[0].Status, outs[0].Err)
	}
	return nil
}

// history is a realistic good customer up to adminNow: a profile (pay score
// 780, real name and identity complete, card bound since 2020-01-01, 60,000
// yuan in the wealth fund), four payments a day for the last 95 days (one
// in three days a transfer to a friend), and a morning login on six days
// of seven, mostly from the usual phone. Events after now are left out.
func history(user string, now time.Time) []state.Item {
	loc := now.Location()
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	first := today.AddDate(0, 0, -94)
	items := []state.Item{{Topic: topicProfiles, Offset: -1, Event: &events.Event{
		ID: user + "-profile", Type: events.TypeProfile, Source: "//test", Subject: user, Time: first.Add(-time.Hour),
		Profile: &events.Profile{UserID: user, PayScore: 780, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2020-01-01", WealthBalanceFen: 6_000_000, Timezone: "Asia/Shanghai",
			PartnerLimitFen: 3_000_000, WeilidaiLimitFen: 1_000_000},
	}}}
	spend := []events.Scene{events.SceneEcommerce, events.SceneLocalLife, events.SceneOfflineRetail}
	payAt := []time.Duration{9*time.Hour + 10*time.Minute, 12*time.Hour + 20*time.Minute, 18*time.Hour + 45*time.Minute, 21*time.Hour + 5*time.Minute}
	logins := 0
	for day := 0; day < 95; day++ {
		date := first.AddDate(0, 0, day)
		if day%7 != 3 {
			at := date.Add(8*time.Hour + 30*time.Minute)
			device := "iphone-15"
			if logins++; logins%9 == 0 {
				device = "ipad-air"
			}
			if !at.After(now) {
				items = append(items, state.Item{Topic: topicLogins, Offset: -1, Event: &events.Event{
					ID: fmt.Sprintf("%s-login-%d", user, day), Type: events.TypeLogin, Source: "//test", Subject: user, Time: at,
					Login: &events.Login{UserID: user, DeviceID: device, City: "Shenzhen", IP: "203.0.113.9", Auth: events.AuthFace},
				}})
			}
		}
		for i, offset := range payAt {
			at := date.Add(offset)
			if at.After(now) {
				continue
			}
			scene := spend[(day+i)%len(spend)]
			if i == 3 && day%3 == 0 {
				scene = events.SceneTransfer
			}
			amount := int64(1_800 + (day*37+i*53)%97*150) // 18 to 162 yuan
			items = append(items, state.Item{Topic: topicPayments, Offset: -1, Event: &events.Event{
				ID: fmt.Sprintf("%s-pay-%d-%d", user, day, i), Type: events.TypePayment, Source: "//test", Subject: user, Time: at,
				Payment: &events.Payment{UserID: user, AmountFen: amount, Currency: "CNY", Scene: scene,
					MerchantID: "m-" + string(scene), DeviceID: "iphone-15", City: "Shenzhen", Auth: events.AuthFingerprint},
			}})
		}
	}
	return items
}

type adminEnv struct {
	admin *admin
	store *state.Store
	clock *testClock
	url   string // of an httptest server running the admin handler
}

// newAdmin builds the admin listener over a real Redis (rdb) and the
// wechat preset, with the clock at adminNow and the test tokens
// (testAdminConfig), and serves it over HTTP.
func newAdmin(t *testing.T, rdb *redis.Client, brokers []string) *adminEnv {
	t.Helper()
	return newAdminWith(t, rdb, brokers, testAdminConfig())
}

// newAdminWith is newAdmin with the listener's settings conf.
func newAdminWith(t *testing.T, rdb *redis.Client, brokers []string, conf adminConfig) *adminEnv {
	t.Helper()
	clock := &testClock{now: adminNow}
	store, err := state.New(rdb, state.Config{DefaultZone: shanghai, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pols, err := newPolicies("wechat", log)
	if err != nil {
		t.Fatal(err)
	}
	a := &admin{log: log, rdb: rdb, brokers: brokers, store: store, policies: pols, now: clock.Now, conf: conf, ops: storeOps{store}}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	return &adminEnv{admin: a, store: store, clock: clock, url: srv.URL}
}

// apply applies a user's history as it would have arrived: one batch per
// local day, with the clock at the day's last event (the state layer keeps
// daily buckets, and counts login days, only for recent days). The clock
// is left at adminNow.
func (e *adminEnv) apply(t *testing.T, items []state.Item) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer e.clock.Set(adminNow)
	for len(items) > 0 {
		n := 1
		for n < len(items) && sameDay(items[n].Event.Time, items[0].Event.Time) {
			n++
		}
		batch := items[:n]
		items = items[n:]
		e.clock.Set(batch[n-1].Event.Time.Add(time.Minute))
		out, err := e.store.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Status != state.Applied {
				t.Fatalf("event %s: %v", batch[i].Event.ID, o.Status)
			}
		}
	}
}

// recompute saves the quota of every user whose recompute is due (their
// first activity, a profile), as fenqid's jobs would: the quota a credit
// purchase draws on is the one saved.
func (e *adminEnv) recompute(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p, _ := e.admin.policies.get()
	now := e.clock.Now()
	for {
		b, err := e.store.ClaimRecomputes(ctx, now, 1000, time.Minute, jobs.CycleOf(p))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Claims) == 0 {
			return
		}
		users, err := e.store.ReadBatch(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		qs := make([]state.Quota, len(b.Claims))
		for i, c := range b.Claims {
			res := credit.Evaluate(p, jobs.Facts(users[i], p, now))
			qs[i] = state.Quota{UserID: c.Member, QuotaFen: res.QuotaFen, Seq: users[i].Recomputes + 1, CycleDone: users[i].CycleDone}
		}
		if err := e.store.SaveQuotas(ctx, b, qs); err != nil {
			t.Fatal(err)
		}
	}
}

func sameDay(a, b time.Time) bool {
	a, b = a.In(shanghai), b.In(shanghai)
	return a.YearDay() == b.YearDay() && a.Year() == b.Year()
}

// send makes a request to the admin API, with an Authorization header
// when auth is set, and returns the status and body.
func (e *adminEnv) send(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get sends GET url+path with the read-only token and returns the status,
// the Content-Type and the body.
func (e *adminEnv) get(t *testing.T, path string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", readAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// quotaBody is the body of GET /v1/users/{id}/quota as a client reads it
// (fenqictl explain decodes the same three fields).
type quotaBody struct {
	UserID            string             `json:"user_id"`
	PublishedQuotaFen *int64             `json:"published_quota_fen"`
	NextRecomputeAt   *time.Time         `json:"next_recompute_at"`
	Evaluation        credit.Result      `json:"evaluation"`
	Pools             []scoring.PoolView `json:"pools"`
}

func (e *adminEnv) quota(t *testing.T, user string) quotaBody {
	t.Helper()
	status, ctype, body := e.get(t, "/v1/users/"+user+"/quota")
	if status != http.StatusOK || ctype != "application/json" {
		t.Fatalf("GET quota of %s: %d %s\n%s", user, status, ctype, body)
	}
	// The top level is exactly what fenqictl explain reads: a field added
	// here must be added there too.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"evaluation", "next_recompute_at", "pools", "published_quota_fen", "user_id"}) {
		t.Errorf("quota body fields %q: keep cmd/fenqictl's quotaView in step", keys)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var q quotaBody
	if err := dec.Decode(&q); err != nil {
		t.Fatalf("quota body: %v\n%s", err, body)
	}
	return q
}

func TestQuotaOfAGoodCustomer(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-1001", adminNow))

	q := e.quota(t, "u-1001")
	r := q.Evaluation
	if q.UserID != "u-1001" || q.PublishedQuotaFen != nil {
		t.Errorf("user %q published %v, want u-1001 and none yet", q.UserID, q.PublishedQuotaFen)
	}
	// A user's first activity makes the first recompute due at once: it
	// is due now.
	if q.NextRecomputeAt == nil || q.NextRecomputeAt.After(adminNow) {
		t.Errorf("next recompute at %v, want due by %v (first activity)", q.NextRecomputeAt, adminNow)
	}
	if !r.Eligible || len(r.Reasons) != 1 || r.Reasons[0].Code != credit.CodeTierCap || r.DecidedBy != credit.DecidedTierCap {
		t.Errorf("eligible %v, reasons %+v; want eligible, held at the standard tier's cap (FENQI_TIER_CAP)", r.Eligible, r.Reasons)
	}
	if r.Product != "wechat" || r.PolicyVersion != wechatVersion || r.ModelVersion == "" {
		t.Errorf("product %q policy %q model %q", r.Product, r.PolicyVersion, r.ModelVersion)
	}
	if !r.EvaluatedAt.Equal(adminNow) {
		t.Errorf("evaluated at %v, want the injected clock %v", r.EvaluatedAt, adminNow)
	}
	// Nothing published yet: the main quota (and local life, which draws
	// on it too) has nothing available; the partner pool has the
	// profile's limit.
	wantPools := []scoring.PoolView{{Pool: "pay_score"}, {Pool: "independent", LimitFen: 3_000_000, AvailableFen: 3_000_000},
		{Pool: "shared_weilidai"}, {Pool: "special_temporary"}}
	if !slices.Equal(q.Pools, wantPools) {
		t.Errorf("pools %+v, want %+v", q.Pools, wantPools)
	}
	if len(r.Gates) != 11 {
		t.Errorf("%d gates, want 11", len(r.Gates))
	}
	for _, g := range r.Gates {
		if !g.Passed || g.Code != "" {
			t.Errorf("gate %+v failed", g)
		}
		// 29 full days of four payments and today's one before 10:00.
		if g.Name == credit.GateActivity && !strings.Contains(g.Detail, "117 payments in 30 days") {
			t.Errorf("activity gate %q, want 117 payments in 30 days", g.Detail)
		}
	}

	// Five factors and the quota-check penalty, in a fixed order.
	var names []string
	var sum float64
	for _, f := range r.Factors {
		names = append(names, f.Name)
		sum += f.Contribution
		if f.Normalised < 0 || f.Normalised > 1 || math.Abs(f.Contribution-f.Normalised*f.Weight) > 1e-12 {
			t.Errorf("factor %+v: contribution is not normalised × weight", f)
		}
	}
	wantNames := []string{credit.FactorPayScore, credit.FactorAssets, credit.FactorStability, credit.FactorSocial,
		credit.FactorDevice, credit.FactorQuotaChecks}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("factors %q, want %q", names, wantNames)
	}
	f := func(name string) credit.Factor { return r.Factors[slices.Index(names, name)] }
	if ps := f(credit.FactorPayScore); ps.Raw != 780 || ps.Unit != "points" || ps.Normalised != 1 || ps.Weight != 0.35 {
		t.Errorf("pay score factor %+v", ps)
	}
	if as := f(credit.FactorAssets); as.Raw != 6_000_000 || as.Unit != "fen" || as.Normalised != 1 || as.Weight != 0.25 {
		t.Errorf("assets factor %+v", as)
	}
	if st := f(credit.FactorStability); st.Unit != "cv" || st.Raw <= 0 || st.Raw >= 0.30 || st.Normalised != 1 {
		t.Errorf("stability factor %+v: steady spending should be fully stable", st)
	}
	// One transfer every third day since mid-December: about 9 a month of the
	// 20 that count fully.
	if so := f(credit.FactorSocial); so.Unit != "per_month" || so.Raw < 8 || so.Raw > 10 || so.Normalised < 0.4 || so.Normalised > 0.5 {
		t.Errorf("social factor %+v", so)
	}
	if dv := f(credit.FactorDevice); dv.Unit != "share" || dv.Raw < 0.85 || dv.Raw > 0.95 || dv.Normalised < 0.94 {
		t.Errorf("device factor %+v", dv)
	}
	if qc := f(credit.FactorQuotaChecks); qc.Weight > 0 || qc.Contribution != 0 {
		t.Errorf("quota-check penalty %+v, want weight ≤ 0 and nothing taken", qc)
	}
	if math.Abs(sum-r.Score) > 1e-6 || r.Score < 0.85 || r.Score > 1 {
		t.Errorf("score %v, contributions sum to %v", r.Score, sum)
	}

	// Logins on six days of seven: at least 10 login days in each of the
	// last three full months. Only the payment rate keeps the user from the
	// quality standards.
	for _, c := range r.Quality {
		if c.Passed == (c.Name == credit.QualityPayments) {
			t.Errorf("quality standard %s: passed %v (%s)", c.Name, c.Passed, c.Detail)
		}
	}
	// A high score, but 3.9 payments a day is not a quality user's 5: the
	// standard tier's cap of 20,000 yuan decides.
	if r.QuotaFen <= 0 || r.RawQuotaFen < r.QuotaFen {
		t.Errorf("quota %d, raw %d", r.QuotaFen, r.RawQuotaFen)
	}
	if r.QualityUser || r.TierCapFen != 2_000_000 || r.QuotaFen != 2_000_000 ||
		r.DecidedBy != credit.DecidedTierCap || r.Tier != credit.TierStandard {
		t.Errorf("quality %v cap %d quota %d decided by %s tier %s; want the standard cap of 2000000 fen",
			r.QualityUser, r.TierCapFen, r.QuotaFen, r.DecidedBy, r.Tier)
	}
	if r.Guardrail.Applied || r.Override != nil {
		t.Errorf("guardrail %+v override %+v on a first quota", r.Guardrail, r.Override)
	}
}

func TestQuotaOfAnUnknownUser(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	q := e.quota(t, "nobody")
	r := q.Evaluation
	if q.UserID != "nobody" || q.PublishedQuotaFen != nil || q.NextRecomputeAt != nil {
		t.Errorf("user %q published %v, next recompute %v", q.UserID, q.PublishedQuotaFen, q.NextRecomputeAt)
	}
	if r.Eligible || r.QuotaFen != 0 || r.DecidedBy != credit.DecidedIneligible || r.Tier != credit.TierNone {
		t.Errorf("eligible %v quota %d decided by %s tier %s; want ineligible, 0", r.Eligible, r.QuotaFen, r.DecidedBy, r.Tier)
	}
	codes := map[string]events.ReasonCode{}
	for _, rc := range r.Reasons {
		codes[rc.Code] = rc
	}
	for _, want := range []string{policy.CodeCreditLow, policy.CodeAuthIncomplete, policy.CodeActivityLow} {
		if rc, ok := codes[want]; !ok || rc.Message == "" || rc.Advice == "" {
			t.Errorf("reason %s: %+v (present %v), want it with message and advice; reasons %+v", want, rc, ok, r.Reasons)
		}
	}
	if len(r.Factors) != 6 {
		t.Errorf("%d factors, want 6 even for an unknown user", len(r.Factors))
	}
}

// The published quota is shown beside the evaluation, and moves the
// guardrail; an operator's override wins over everything.
func TestQuotaPublishedAndOverride(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-2002", adminNow))
	ctx := context.Background()
	b, err := e.store.ClaimRecomputes(ctx, adminNow, 10, time.Minute, state.Interval(90)) // its first-activity recompute
	if err != nil || len(b.Claims) != 1 {
		t.Fatalf("claim: %+v, %v", b, err)
	}
	if err := e.store.SaveQuotas(ctx, b, []state.Quota{{UserID: "u-2002", QuotaFen: 1_500_000, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	q := e.quota(t, "u-2002")
	if q.PublishedQuotaFen == nil || *q.PublishedQuotaFen != 1_500_000 {
		t.Errorf("published %v, want 1500000", q.PublishedQuotaFen)
	}
	g := q.Evaluation.Guardrail
	if !g.Applied || g.PreviousFen != 1_500_000 || g.MinFen != 750_000 || g.MaxFen != 2_250_000 {
		t.Errorf("guardrail %+v, want applied around 1500000 fen", g)
	}
	if q.Evaluation.QuotaFen != 2_000_000 {
		t.Errorf("quota %d, want the tier cap 2000000 inside the guardrail", q.Evaluation.QuotaFen)
	}

	ov := &state.Override{QuotaFen: 3_000_000, Reason: "VIP review", Operator: "ops-li", ExpiresAt: adminNow.Add(30 * 24 * time.Hour)}
	if err := e.store.SetOverride(ctx, "u-2002", ov); err != nil {
		t.Fatal(err)
	}
	r := e.quota(t, "u-2002").Evaluation
	if r.QuotaFen != 3_000_000 || r.DecidedBy != credit.DecidedOverride || r.Tier != credit.TierHigh {
		t.Errorf("quota %d decided by %s tier %s, want the override's 3000000", r.QuotaFen, r.DecidedBy, r.Tier)
	}
	if r.Override == nil || r.Override.Status != credit.OverrideActive || r.Override.Operator != "ops-li" || r.Override.Reason != "VIP review" {
		t.Errorf("override %+v", r.Override)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	kafka := testenv.Kafka(t)

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		e := newAdmin(t, testenv.Redis(t), kafka.Addrs())
		if status, _, body := e.get(t, "/healthz"); status != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("healthz %d %q", status, body)
		}
		if status, _, body := e.get(t, "/readyz"); status != http.StatusOK || string(body) != "ready\n" {
			t.Errorf("readyz %d %q", status, body)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		t.Parallel()
		srv := testenv.RedisServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		e := newAdmin(t, rdb, kafka.Addrs())
		if status, _, _ := e.get(t, "/readyz"); status != http.StatusOK {
			t.Fatalf("readyz %d with Redis up", status)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		status, _, body := e.get(t, "/readyz")
		if status != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), "redis: ") || strings.Contains(string(body), "kafka") {
			t.Errorf("readyz %d %q, want 503 naming redis only", status, body)
		}
		// The probe's own 2s timeout bounds the answer.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("readyz took %v with Redis down", d)
		}
		// Liveness does not depend on Redis: restarting fenqid would not help.
		if status, _, _ := e.get(t, "/healthz"); status != http.StatusOK {
			t.Errorf("healthz %d with Redis down, want 200", status)
		}
		// The explanation API says it cannot answer, as JSON.
		status, ctype, body := e.get(t, "/v1/users/u-1001/quota")
		var r struct{ Error string }
		if status != http.StatusServiceUnavailable || ctype != "application/json" || json.Unmarshal(body, &r) != nil || r.Error == "" {
			t.Errorf("quota with Redis down: %d %s %q, want 503 with an error", status, ctype, body)
		}
	})

	t.Run("kafka down", func(t *testing.T) {
		t.Parallel()
		e := newAdmin(t, testenv.Redis(t), []string{testenv.ClosedAddr(t)})
		status, _, body := e.get(t, "/readyz")
		if status != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), "kafka: ") || strings.Contains(string(body), "redis") {
			t.Errorf("readyz %d %q, want 503 naming kafka only", status, body)
		}
	})
}

func TestAdminRoutes(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/users/u-1001/quota", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/users/u-1001", http.StatusNotFound},
		{http.MethodGet, "/v1/users//quota", http.StatusNotFound},
		{http.MethodGet, "/v1/users/u-1001/quota/check", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nothing", http.StatusNotFound},
		{http.MethodGet, "/metrics", http.StatusNotFound}, // no metrics handler given
	} {
		if status, body := e.send(t, tt.method, tt.path, writeAuth, ""); status != tt.status {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, status, body, tt.status)
		}
	}
}

func TestMetricsServedWhenGiven(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	e := newAdmin(t, rdb, nil)
	e.admin.metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "fenqi_events_total 7\n")
	})
	srv := httptest.NewServer(e.admin.handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if status, _, body := e.get(t, "/metrics"); status != http.StatusOK || string(body) != "fenqi_events_total 7\n" {
		t.Errorf("/metrics %d %q", status, body)
	}
	if status, _, _ := e.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz %d beside /metrics", status)
	}
}

// A user's own quota checks (POST .../quota/check) are counted and, past
// the free ones, lower the score; an operator's explanation (GET) is not.
func TestQuotaChecksLowerTheScore(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-3003", adminNow))
	penalty := func(r credit.Result) float64 {
		for _, f := range r.Factors {
			if f.Name == "quota_checks" {
				return f.Contribution
			}
		}
		t.Fatalf("no quota_checks factor in %+v", r.Factors)
		return 0
	}
	base := e.quota(t, "u-3003").Evaluation
	for range 8 {
		e.quota(t, "u-3003") // explanations: not counted
	}
	if again := e.quota(t, "u-3003").Evaluation; again.Score != base.Score || penalty(again) != 0 {
		t.Fatalf("explanations changed the score: %v → %v (penalty %v)", base.Score, again.Score, penalty(again))
	}
	var last credit.Result
	for range 8 {
		status, body := e.send(t, http.MethodPost, "/v1/users/u-3003/quota/check", writeAuth, "")
		if status != http.StatusAccepted {
			t.Fatalf("check: %d %s", status, body)
		}
		var q quotaBody
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			t.Fatal(err)
		}
		last = q.Evaluation
	}
	if penalty(last) >= 0 || last.Score >= base.Score {
		t.Fatalf("8 checks in a day: score %v (was %v), penalty %v; want a lower score", last.Score, base.Score, penalty(last))
	}
}

func TestOverrideAPI(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-4004", adminNow))
	do := func(method, path, body string) (int, string) { return e.send(t, method, path, writeAuth, body) }
	for name, body := range map[string]string{
		"negative quota":  `{"quota_fen":-1,"reason":"x","expires_at":"2037-01-01T00:00:00Z"}`,
		"no reason":       `{"quota_fen":1,"expires_at":"2037-01-01T00:00:00Z"}`,
		"expired":         `{"quota_fen":1,"reason":"x","expires_at":"2001-01-01T00:00:00Z"}`,
		"unknown field":   `{"quota_fen":1,"reason":"x","expires_at":"2037-01-01T00:00:00Z","quota":5}`,
		"not JSON at all": `quota=1`,
	} {
		if status, b := do(http.MethodPut, "/v1/users/u-4004/override", body); status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, status, b)
		}
	}
	expires := adminNow.Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if status, b := do(http.MethodPut, "/v1/users/u-4004/override",
		`{"quota_fen":4000000,"reason":"manual review","operator":"ops-li","expires_at":"`+expires+`"}`); status != http.StatusAccepted {
		t.Fatalf("set: %d %s", status, b)
	}
	r := e.quota(t, "u-4004").Evaluation
	if r.QuotaFen != 4_000_000 || r.DecidedBy != credit.DecidedOverride {
		t.Fatalf("with the override: quota %d decided by %s", r.QuotaFen, r.DecidedBy)
	}
	// The override made the user's recompute due now.
	if due, _, err := e.store.ScheduleStats(context.Background(), state.RecomputeKey, adminNow); err != nil || due != 1 {
		t.Fatalf("recomputes due after the override: %d, %v", due, err)
	}
	if status, b := do(http.MethodDelete, "/v1/users/u-4004/override", ""); status != http.StatusAccepted {
		t.Fatalf("clear: %d %s", status, b)
	}
	if r := e.quota(t, "u-4004").Evaluation; r.DecidedBy == credit.DecidedOverride {
		t.Fatalf("the override is still in force after DELETE")
	}
}

func TestOverrideNeedsTheToken(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	body := `{"quota_fen":1,"reason":"x","expires_at":"2037-01-01T00:00:00Z"}`
	for _, auth := range []string{"", "Bearer wrong", testWriteSecret, "Basic " + testWriteSecret} {
		if status, _ := e.send(t, http.MethodPut, "/v1/users/u9/override", auth, body); status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, status)
		}
	}
	if status, _ := e.send(t, http.MethodPut, "/v1/users/u9/override", writeAuth, body); status != http.StatusAccepted {
		t.Fatalf("with the token: %d", status)
	}
}

// POST /v1/recompute makes every known user due once, now, and needs a
// write token like every write.
func TestRecomputeAll(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	ctx := context.Background()
	for _, id := range []string{"ra-1", "ra-2", "ra-3"} {
		e.apply(t, history(id, adminNow))
	}
	cyc := state.Interval(90)
	// drain claims and saves every due recompute, and counts them.
	drain := func() (n int) {
		for {
			b, err := e.store.ClaimRecomputes(ctx, adminNow, 10, time.Minute, cyc)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Claims) == 0 {
				return n
			}
			n += len(b.Claims)
			if err := e.store.SaveQuotas(ctx, b, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain() // their first-activity recomputes
	post := func(auth string) (int, string) { return e.send(t, http.MethodPost, "/v1/recompute", auth, "") }
	if status, _ := post(""); status != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", status)
	}
	if due, _, err := e.store.RecomputeStats(ctx, adminNow, cyc); err != nil || due != 0 {
		t.Fatalf("%d due before the POST, %v", due, err)
	}
	status, body := post(writeAuth)
	var v struct{ Due, Known int64 }
	if err := json.Unmarshal([]byte(body), &v); status != http.StatusOK || err != nil || v.Due != 3 || v.Known != 3 {
		t.Fatalf("POST /v1/recompute: %d %s, want 3 due of 3", status, body)
	}
	if n := drain(); n != 3 {
		t.Fatalf("%d users claimed after the POST, want 3", n)
	}
}

// epochsBody decodes a GET /v1/epochs answer with exactly the field names
// fenqictl epoch reads (keep cmd/fenqictl's epochsView in step).
func epochsBody(t *testing.T, body []byte) epochsView {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var v epochsView
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("epochs body: %v\n%s", err, body)
	}
	var top map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"topics"}) {
		t.Errorf("epochs body fields %q", keys)
	}
	for _, tp := range top["topics"] {
		if keys := slices.Sorted(maps.Keys(tp)); !slices.Equal(keys, []string{"epoch", "index", "topic"}) {
			t.Errorf("epoch fields %q", keys)
		}
	}
	return v
}

// GET /v1/epochs lists every input topic with its index and epoch (a
// read: the read-only token does); POST /v1/epochs/{topic} raises one by
// its name, with a write token.
func TestEpochsAPI(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	ctx := context.Background()

	status, ctype, body := e.get(t, "/v1/epochs")
	if status != http.StatusOK || ctype != "application/json" {
		t.Fatalf("GET /v1/epochs: %d %s\n%s", status, ctype, body)
	}
	want := []epochView{
		{events.TopicPayments, 1, 0}, {events.TopicLogins, 2, 0},
		{events.TopicRepayments, 3, 0}, {events.TopicProfiles, 4, 0}, {events.TopicOperator, 5, 0},
	}
	if got := epochsBody(t, body).Topics; !slices.Equal(got, want) {
		t.Fatalf("epochs %+v, want %+v", got, want)
	}

	raise := func(topic, auth string) (int, string) {
		return e.send(t, http.MethodPost, "/v1/epochs/"+topic, auth, "")
	}
	for _, auth := range []string{"", "Bearer wrong", testWriteSecret} {
		if status, b := raise(events.TopicPayments, auth); status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d %s, want 401", auth, status, b)
		}
	}
	if eps, err := e.store.Epochs(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("epochs after refused raises: %v, %v", eps, err)
	}

	for _, name := range []string{"fenqi.payment", "fenqi.decisions", "1"} {
		status, b := raise(name, writeAuth)
		var r struct{ Error string }
		if status != http.StatusNotFound || json.Unmarshal([]byte(b), &r) != nil ||
			!strings.Contains(r.Error, `no input topic is named "`+name+`"`) || !strings.Contains(r.Error, events.TopicProfiles) {
			t.Errorf("raise %q: %d %s, want 404 naming it and the input topics", name, status, b)
		}
	}
	if status, b := e.send(t, http.MethodPost, "/v1/epochs", writeAuth, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/epochs: %d %s, want 405", status, b)
	}

	for n := uint32(1); n <= 2; n++ {
		status, b := raise(events.TopicRepayments, writeAuth)
		var v epochView
		if status != http.StatusOK || json.Unmarshal([]byte(b), &v) != nil || v != (epochView{events.TopicRepayments, 3, n}) {
			t.Fatalf("raise %d: %d %s, want epoch %d of index 3", n, status, b, n)
		}
	}
	if eps, err := e.store.Epochs(ctx); err != nil || !maps.Equal(eps, map[int]uint32{3: 2}) {
		t.Fatalf("stored epochs %v, %v; want index 3 at 2", eps, err)
	}
	_, _, body = e.get(t, "/v1/epochs")
	want[2].Epoch = 2
	if got := epochsBody(t, body).Topics; !slices.Equal(got, want) {
		t.Fatalf("epochs after two raises %+v, want %+v", got, want)
	}
}

// The names are fenqid's own (-topic-*): a default name that is not
// configured is unknown.
func TestEpochsOfConfiguredTopics(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.admin.topics = consumers.Topics{Payments: "ops.pay", Logins: "ops.login", Repayments: "ops.repay", Profiles: "ops.profile", Operator: "ops.operator"}
	srv := httptest.NewServer(e.admin.handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if status, b := e.send(t, http.MethodPost, "/v1/epochs/"+events.TopicPayments, writeAuth, ""); status != http.StatusNotFound ||
		!strings.Contains(b, "ops.pay, ops.login, ops.repay, ops.profile, ops.operator") {
		t.Errorf("raise of a default name: %d %s, want 404 listing the configured names", status, b)
	}
	if status, b := e.send(t, http.MethodPost, "/v1/epochs/ops.profile", writeAuth, ""); status != http.StatusOK || !strings.Contains(b, `"index": 4`) {
		t.Fatalf("raise ops.profile: %d %s", status, b)
	}
	_, _, body := e.get(t, "/v1/epochs")
	want := []epochView{{"ops.pay", 1, 0}, {"ops.login", 2, 0}, {"ops.repay", 3, 0}, {"ops.profile", 4, 1}, {"ops.operator", 5, 0}}
	if got := epochsBody(t, body).Topics; !slices.Equal(got, want) {
		t.Fatalf("epochs %+v, want %+v", got, want)
	}
}

// End to end at the state level: the payments topic is recreated, so a
// new payment comes at an offset already applied. It is taken for a
// redelivery (flagged unknown) until the payments topic's epoch is raised
// through the API; then it is applied, once. The logins topic, not raised,
// still takes its old offsets for redeliveries.
func TestRaisedEpochAppliesAnAlreadyAppliedOffset(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	ctx := context.Background()
	at := adminNow.Add(-time.Hour)
	pay := func(id string, offset int64) state.Item {
		return state.Item{Topic: topicPayments, Partition: 2, Offset: offset, Event: &events.Event{
			ID: id, Type: events.TypePayment, Source: "//test", Subject: "u-ep", Time: at,
			Payment: &events.Payment{UserID: "u-ep", AmountFen: 5_000, Currency: "CNY", Scene: events.SceneEcommerce,
				MerchantID: "m-1", DeviceID: "iphone-15", City: "Shenzhen", Auth: events.AuthFingerprint},
		}}
	}
	login := func(id string, offset int64) state.Item {
		return state.Item{Topic: topicLogins, Partition: 2, Offset: offset, Event: &events.Event{
			ID: id, Type: events.TypeLogin, Source: "//test", Subject: "u-ep", Time: at,
			Login: &events.Login{UserID: "u-ep", DeviceID: "iphone-15", City: "Shenzhen", IP: "203.0.113.9", Auth: events.AuthFace},
		}}
	}
	apply := func(it state.Item) state.Outcome {
		t.Helper()
		out, err := e.store.Apply(ctx, []state.Item{it})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	payments := func() int64 {
		t.Helper()
		u, err := e.store.User(ctx, "u-ep")
		if err != nil {
			t.Fatal(err)
		}
		return u.Days[u.Day(at)].Payments
	}

	for _, it := range []state.Item{pay("pay-old", 41), login("login-old", 41)} {
		if o := apply(it); o.Status != state.Applied {
			t.Fatalf("%s: %v", it.Event.ID, o.Status)
		}
	}
	// The topic is recreated: its offsets start over, and offset 41
	// comes again with a new payment.
	if o := apply(pay("pay-new", 41)); o.Status != state.Redelivered || !o.Unknown {
		t.Fatalf("the new payment before the raise: %v (unknown %v), want redelivered, unknown", o.Status, o.Unknown)
	}
	if status, b := e.send(t, http.MethodPost, "/v1/epochs/"+events.TopicPayments, writeAuth, ""); status != http.StatusOK ||
		!strings.Contains(b, `"epoch": 1`) {
		t.Fatalf("raise: %d %s", status, b)
	}
	if o := apply(pay("pay-new", 41)); o.Status != state.Applied {
		t.Fatalf("the new payment after the raise: %v, want applied", o.Status)
	}
	if o := apply(pay("pay-new", 41)); o.Status != state.Redelivered || o.Unknown {
		t.Fatalf("its redelivery: %v (unknown %v), want redelivered", o.Status, o.Unknown)
	}
	if n := payments(); n != 2 {
		t.Fatalf("%d payments counted, want 2 (the old and the new)", n)
	}
	if o := apply(login("login-new", 41)); o.Status != state.Redelivered || !o.Unknown {
		t.Fatalf("a login at an applied offset of the logins topic (not raised): %v (unknown %v)", o.Status, o.Unknown)
	}
}
