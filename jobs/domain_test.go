package jobs_test

// One named test per rule of DOMAIN.md that the state and the credit model
// share, through the real path: events applied by the state engine to a
// redis-server, read back, turned into facts (jobs.Facts) and evaluated
// (jobs.Explain). Each name says the section and the rule; each checks
// the edge on both sides.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

var domainNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type domain struct {
	t     *testing.T
	rdb   *redis.Client
	store *state.Store
	pol   *policy.Policy
	n     int
}

func newDomain(t *testing.T) *domain {
	t.Helper()
	rdb := testenv.Redis(t)
	store, err := state.New(rdb, state.Config{Now: func() time.Time { return domainNow }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	return &domain{t: t, rdb: rdb, store: store, pol: p}
}

func (d *domain) id() string { d.n++; return fmt.Sprintf("e%d", d.n) }

func (d *domain) apply(evs ...*events.Event) {
	d.t.Helper()
	items := make([]state.Item, len(evs))
	for i, e := range evs {
		items[i] = state.Item{Event: e, Topic: 1, Offset: -1}
	}
	out, err := d.store.Apply(context.Background(), items)
	if err != nil {
		d.t.Fatal(err)
	}
	for i, o := range out {
		if o.Status != state.Applied {
			d.t.Fatalf("event %s: %v %v", evs[i].ID, o.Status, o.Err)
		}
	}
}

func (d *domain) login(user string, at time.Time, device string) *events.Event {
	return &events.Event{ID: d.id(), Type: events.TypeLogin, Subject: user, Time: at,
		Login: &events.Login{UserID: user, DeviceID: device, City: "shanghai", IP: "10.0.0.1", Auth: events.AuthPassword}}
}

func (d *domain) pay(user string, at time.Time, device string) *events.Event {
	return &events.Event{ID: d.id(), Type: events.TypePayment, Subject: user, Time: at,
		Payment: &events.Payment{UserID: user, AmountFen: 5_000, Currency: "CNY", Scene: events.SceneEcommerce, MerchantID: "m",
			DeviceID: device, City: "shanghai", Auth: events.AuthPassword}}
}

// good makes user a good customer at domainNow: a profile that passes every
// gate, 3 payments and a login on each of the last 30 days (from "phone").
func (d *domain) good(user string) {
	d.t.Helper()
	evs := []*events.Event{{ID: d.id(), Type: events.TypeProfile, Subject: user, Time: domainNow.AddDate(0, 0, -31),
		Profile: &events.Profile{UserID: user, PayScore: 720, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2024-01-01", WealthBalanceFen: 1_000_000}}}
	for day := range 30 {
		at := domainNow.AddDate(0, 0, -day).Add(-time.Hour)
		evs = append(evs, d.pay(user, at, "phone"), d.pay(user, at, "phone"), d.pay(user, at, "phone"), d.login(user, at, "phone"))
	}
	d.apply(evs...)
}

func (d *domain) explain(user string) credit.Result {
	d.t.Helper()
	r, _, err := jobs.Explain(context.Background(), d.store, d.pol, user, domainNow)
	if err != nil {
		d.t.Fatal(err)
	}
	return r
}

func (d *domain) facts(user string) credit.Facts {
	d.t.Helper()
	u, err := d.store.User(context.Background(), user)
	if err != nil {
		d.t.Fatal(err)
	}
	return jobs.Facts(u, d.pol, domainNow)
}

func gate(r credit.Result, name string) credit.Check {
	for _, g := range r.Gates {
		if g.Name == name {
			return g
		}
	}
	return credit.Check{Name: name + " (missing)"}
}

func quality(r credit.Result, name string) credit.Check {
	for _, g := range r.Quality {
		if g.Name == name {
			return g
		}
	}
	return credit.Check{Name: name + " (missing)"}
}

// §1: a serious default is a bill more than 30 days overdue at any moment of
// the last 6 months, judged by when it was overdue, not by its due date.
func TestDomain1SeriousDefaultJudgedByWhenItWasOverdue(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	day := 24 * time.Hour
	bill := func(user string, dueAt, paidAt time.Time) {
		d.good(user)
		d.apply(due(d.id(), user, "b", 10_000, dueAt), paid(d.id(), user, "b", 10_000, paidAt))
	}
	cases := []struct {
		name            string
		dueAgo, paidAgo time.Duration
		serious         bool
	}{
		{"due 200 days ago, paid 20 days ago: 180 days overdue inside the window", 200 * day, 20 * day, true},
		{"31 days overdue, settled 10 days ago", 41 * day, 10 * day, true},
		{"30 days and an hour overdue", 40*day + time.Hour, 10 * day, true},
		{"exactly 30 days overdue is not more than 30", 40 * day, 10 * day, false},
		{"45 days overdue, settled 7 months ago: before the window", 255 * day, 210 * day, false},
		{"5 hours late", 10*day + 5*time.Hour, 10 * day, false},
	}
	for i, c := range cases {
		user := fmt.Sprintf("sd%d", i)
		bill(user, domainNow.Add(-c.dueAgo), domainNow.Add(-c.paidAgo))
		r := d.explain(user)
		g := gate(r, credit.GateSeriousDefault)
		if g.Passed == c.serious || r.Eligible == c.serious {
			t.Errorf("%s: gate %+v, eligible %v; want serious %v", c.name, g, r.Eligible, c.serious)
		}
	}
	// an open bill 31 days overdue now is serious too (and overdue now)
	d.good("open31")
	d.apply(due(d.id(), "open31", "b", 10_000, domainNow.Add(-31*day)))
	if r := d.explain("open31"); gate(r, credit.GateSeriousDefault).Passed || gate(r, credit.GateOverdueNow).Passed {
		t.Errorf("open bill 31 days overdue: %+v", r.Gates)
	}
}

// §1: distinct days with a login in the last 30 days ≥ 10 is a basic gate
// (FENQI_ACTIVITY_LOW), not only a quality standard.
func TestDomain1LoginDaysBasicGate(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	for _, days := range []int{9, 10} {
		user := fmt.Sprintf("ld%d", days)
		evs := []*events.Event{{ID: d.id(), Type: events.TypeProfile, Subject: user, Time: domainNow.AddDate(0, 0, -40),
			Profile: &events.Profile{UserID: user, PayScore: 720, RealNameVerified: true, IdentityComplete: true,
				CardBoundSince: "2024-01-01"}}}
		for day := range 30 {
			at := domainNow.AddDate(0, 0, -day).Add(-time.Hour)
			evs = append(evs, d.pay(user, at, "phone"), d.pay(user, at, "phone"), d.pay(user, at, "phone"))
			if day < days {
				// two logins a day: days, not logins, are counted
				evs = append(evs, d.login(user, at, "phone"), d.login(user, at.Add(-time.Minute), "phone"))
			}
		}
		// logins 31 and 45 days ago are outside the window
		evs = append(evs, d.login(user, domainNow.AddDate(0, 0, -31), "phone"), d.login(user, domainNow.AddDate(0, 0, -45), "phone"))
		d.apply(evs...)
		if f := d.facts(user); f.LoginDays30d != days {
			t.Errorf("%d login days: facts say %d", days, f.LoginDays30d)
		}
		r := d.explain(user)
		g := gate(r, credit.GateLoginDays)
		if want := days >= 10; g.Passed != want || r.Eligible != want {
			t.Errorf("%d login days: gate %+v, eligible %v, reasons %+v", days, g, r.Eligible, r.Reasons)
		}
		if days == 9 && (len(r.Reasons) != 1 || r.Reasons[0].Code != policy.CodeActivityLow) {
			t.Errorf("9 login days: reasons %+v, want FENQI_ACTIVITY_LOW alone", r.Reasons)
		}
	}
}

// §1: an overdue episode is a bill not fully repaid by its due time, however
// late, one per bill, counted the same way open or settled.
func TestDomain1OverdueEpisodeOneRule(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	d.good("ep")
	dueAt := domainNow.Add(-10 * 24 * time.Hour)
	d.apply(
		due(d.id(), "ep", "late5h", 10_000, dueAt), paid(d.id(), "ep", "late5h", 10_000, dueAt.Add(5*time.Hour)),
		due(d.id(), "ep", "ontime", 10_000, dueAt), paid(d.id(), "ep", "ontime", 10_000, dueAt),
		due(d.id(), "ep", "early", 10_000, dueAt), paid(d.id(), "ep", "early", 10_000, dueAt.Add(-time.Hour)),
		// partly repaid before its due time, the rest a minute late: one episode
		due(d.id(), "ep", "split", 10_000, dueAt), paid(d.id(), "ep", "split", 6_000, dueAt.Add(-time.Hour)),
		paid(d.id(), "ep", "split", 4_000, dueAt.Add(time.Minute)),
	)
	if f := d.facts("ep"); f.OverdueEpisodes != 2 || f.OverdueNow {
		t.Fatalf("settled: %d episodes (overdue now %v), want 2: 5 hours late and a minute late", f.OverdueEpisodes, f.OverdueNow)
	}
	// an open bill a second past its due time is one more
	d.apply(due(d.id(), "ep", "open", 10_000, domainNow.Add(-time.Second)))
	f := d.facts("ep")
	if f.OverdueEpisodes != 3 || !f.OverdueNow {
		t.Fatalf("with an open bill a second overdue: %d episodes (overdue now %v), want 3", f.OverdueEpisodes, f.OverdueNow)
	}
	// settling it keeps it one episode, not two, and not zero
	d.apply(paid(d.id(), "ep", "open", 10_000, domainNow))
	if f := d.facts("ep"); f.OverdueEpisodes != 3 || f.OverdueNow {
		t.Fatalf("after settling: %d episodes (overdue now %v), want 3", f.OverdueEpisodes, f.OverdueNow)
	}
	if q := quality(d.explain("ep"), credit.QualityOverdueHistory); q.Passed {
		t.Errorf("3 episodes pass the quality standard of at most 2: %+v", q)
	}
}

// §3: device security is the share of the last 90 days' logins from the
// usual device, whatever happened before.
func TestDomain3DeviceSecurityLast90Days(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	d.good("dev") // 30 logins in the last 30 days, all from "phone"
	// 40 logins from a tablet 100–140 days ago, and the tablet still seen
	// (a payment) yesterday: its old logins are out of the window
	var evs []*events.Event
	for i := range 40 {
		evs = append(evs, d.login("dev", domainNow.AddDate(0, 0, -100-i), "tablet"))
	}
	evs = append(evs, d.pay("dev", domainNow.AddDate(0, 0, -1), "tablet"))
	d.apply(evs...)
	f := d.facts("dev")
	if f.Logins90d != 30 || f.UsualDeviceLogins90d != 30 {
		t.Fatalf("logins in 90 days %d, from the usual device %d; want 30 and 30", f.Logins90d, f.UsualDeviceLogins90d)
	}
	var dev credit.Factor
	for _, fc := range d.explain("dev").Factors {
		if fc.Name == credit.FactorDevice {
			dev = fc
		}
	}
	if dev.Normalised != 1 {
		t.Errorf("device factor %+v, want 1.0 (30 of 30 recent logins from the usual device)", dev)
	}
	// 10 recent logins from the tablet: 30 of 40 = 0.75 → 0.75/0.9
	evs = nil
	for i := range 10 {
		evs = append(evs, d.login("dev", domainNow.AddDate(0, 0, -i).Add(-2*time.Hour), "tablet"))
	}
	d.apply(evs...)
	if f := d.facts("dev"); f.Logins90d != 40 || f.UsualDeviceLogins90d != 30 {
		t.Fatalf("after 10 tablet logins: %d and %d, want 40 and 30", f.Logins90d, f.UsualDeviceLogins90d)
	}
}

// BenchmarkCreditCheck is the cost the state engine pays for each credit
// payment (installments ≥ 1): the read view of the user's state, the credit
// model at the payment's time, the scene and the pool (jobs.CreditCheck),
// on a good customer with 30 days of history.
func BenchmarkCreditCheck(b *testing.B) {
	p, err := policy.Preset("wechat")
	if err != nil {
		b.Fatal(err)
	}
	st := &engine.State{HasQuota: true, QuotaFen: 2_000_000,
		Profile: &engine.Profile{PayScore: 720, RealNameVerified: true, IdentityComplete: true, CardBoundSince: "2024-01-01",
			WealthBalanceFen: 1_000_000, PartnerLimitFen: 1_000_000}}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	today := engine.LocalDay(loc, domainNow.Unix())
	for d := today - 34; d <= today; d++ {
		st.Days = append(st.Days, engine.Day{Day: d, Payments: 4})
	}
	for i := range 7 {
		ym := int32(domainNow.AddDate(0, i-6, 0).Year()*100 + int(domainNow.AddDate(0, i-6, 0).Month()))
		st.Months = append(st.Months, engine.Month{YM: ym, SpendFen: 300_000, SocialN: 10, LoginDays: 25, LoginMask: 1<<28 - 1})
	}
	st.Devices = []engine.Place{{Name: "phone", LastDay: today, LoginBucket: today / engine.LoginBucketDays, Logins: []int32{5, 5, 5, 5, 5, 5}}}
	check := jobs.CreditCheck(func() *policy.Policy { return p })
	pay := &events.Payment{UserID: "u", AmountFen: 100_000, Scene: events.SceneOther, Installments: 3}
	b.ReportAllocs()
	for b.Loop() {
		if _, refused := check(st, loc, pay, domainNow); len(refused) != 0 {
			b.Fatalf("refused %v", refused)
		}
	}
}

// §3, §5: credit payments are judged on the stream as the offer judges them
// (jobs.CreditCheck → credit.Verdict): education and medical need a pay
// score of 650 (599/600/650 edges), offline retail allows 5,000 yuan on
// credit, a pay-now payment is no credit at all, and a frozen user is
// refused first.
func TestDomain5SceneGatesOnTheStream(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	check := jobs.CreditCheck(func() *policy.Policy { return d.pol })
	ctx := context.Background()
	judge := func(user string, scene events.Scene, fen int64) (engine.Pool, []string) {
		t.Helper()
		// the state the engine hands the check: the user's, with a
		// published quota and a special quota for education and medical
		st, err := engine.Decode([]byte(d.rdb.Get(ctx, state.UserKey(user)).Val()))
		if err != nil {
			t.Fatal(err)
		}
		st.HasQuota, st.QuotaFen = true, 2_000_000
		st.Special = &engine.Special{QuotaFen: 1_000_000, ExpiresAt: domainNow.Add(24 * time.Hour).Unix()}
		return check(st, time.UTC, &events.Payment{UserID: user, AmountFen: fen, Scene: scene, Installments: 3}, domainNow)
	}
	for _, c := range []struct {
		score int
		scene events.Scene
		fen   int64
		want  []string
		pool  engine.Pool
	}{
		{600, events.SceneEducation, 100_000, []string{policy.CodeCreditLow}, engine.PoolSpecialTemporary},
		{649, events.SceneMedical, 100_000, []string{policy.CodeCreditLow}, engine.PoolSpecialTemporary},
		{650, events.SceneEducation, 100_000, nil, engine.PoolSpecialTemporary},
		{720, events.SceneOfflineRetail, 500_000, nil, engine.PoolPayScore},
		{720, events.SceneOfflineRetail, 500_001, []string{policy.CodeOrderLimited}, engine.PoolPayScore},
		{720, events.SceneOther, 2_000_001, []string{policy.CodeQuotaExceeded}, engine.PoolPayScore},
	} {
		user := fmt.Sprintf("sc-%d-%s-%d", c.score, c.scene, c.fen)
		d.good(user)
		d.apply(&events.Event{ID: d.id(), Type: events.TypeProfile, Subject: user, Time: domainNow.Add(-time.Minute),
			Profile: &events.Profile{UserID: user, PayScore: c.score, RealNameVerified: true, IdentityComplete: true,
				CardBoundSince: "2024-01-01", WealthBalanceFen: 1_000_000}})
		pool, refused := judge(user, c.scene, c.fen)
		if pool != c.pool || !slices.Equal(refused, c.want) {
			t.Errorf("pay score %d, %s, %d fen: pool %v, refused %v; want %v, %v", c.score, c.scene, c.fen, pool, refused, c.pool, c.want)
		}
	}
	// a frozen user: FENQI_FROZEN first, then the gate it fails (overdue now)
	d.good("frozen")
	d.apply(due(d.id(), "frozen", "b", 10_000, domainNow.Add(-4*24*time.Hour)))
	if _, err := d.store.AdvanceBills(ctx, []state.BillStep{{UserID: "frozen", BillID: "b", Stage: 4, Freeze: true}}); err != nil {
		t.Fatal(err)
	}
	if _, refused := judge("frozen", events.SceneOther, 1_000); len(refused) < 2 || refused[0] != policy.CodeFrozen || !slices.Contains(refused, policy.CodeOverdueNow) {
		t.Errorf("a frozen user: %v", refused)
	}
}
