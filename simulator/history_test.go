package simulator_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/simulator"
)

// creditPeriods are the installment counts of credit purchases the decoder
// takes (pay later, 1, once it does).
func creditPeriods() []int {
	ps := []int{3, 6, 12, 24}
	if events.ValidInstallments(1) {
		ps = append([]int{1}, ps...)
	}
	return ps
}

// history generates a simulator's back-dated history, decoding every event
// strictly, and the refreshed profiles after it.
type history struct {
	t0      time.Time // the clock when the history started
	events  []events.Event
	refresh []events.Event
	sim     *simulator.Simulator
	values  [][]byte
}

func genHistory(t *testing.T, cfg simulator.Config) *history {
	t.Helper()
	s := simulator.New(cfg)
	h := &history{sim: s}
	// The decoder's clock: the simulator's, at the time of each event's
	// decoding (no later than the history's end plus a little).
	var clock time.Time
	dec := events.Decoder{Now: func() time.Time { return clock }}
	for s.InHistory() {
		topic, key, value := s.Next()
		if h.t0.IsZero() {
			h.t0 = s.History().To
		}
		clock = h.t0
		e, err := dec.Decode(key, nil, value)
		if err != nil {
			t.Fatalf("history event %d (%s) does not decode: %v\n%s", len(h.events), topic, err, value)
		}
		checkTopic(t, s.Config(), e, topic)
		h.events = append(h.events, e)
		h.values = append(h.values, value)
	}
	if got, want := s.History().Events, len(h.events); got != want {
		t.Fatalf("History().Events = %d, want %d", got, want)
	}
	for range s.History().Users {
		topic, key, value := s.Next()
		clock = h.t0.Add(time.Minute)
		e, err := dec.Decode(key, nil, value)
		if err != nil {
			t.Fatalf("refreshed profile does not decode: %v\n%s", err, value)
		}
		if e.Type != events.TypeProfile || topic != s.Config().Topics.Profiles {
			t.Fatalf("after the history: %s on %s, want the refreshed profiles", e.Type, topic)
		}
		h.refresh = append(h.refresh, e)
	}
	return h
}

func checkTopic(t *testing.T, c simulator.Config, e events.Event, topic string) {
	t.Helper()
	want := map[string]string{
		events.TypePayment: c.Topics.Payments, events.TypeLogin: c.Topics.Logins,
		events.TypeRepaymentDue: c.Topics.Repayments, events.TypeRepaymentPaid: c.Topics.Repayments,
		events.TypeProfile: c.Topics.Profiles,
	}[e.Type]
	if topic != want {
		t.Fatalf("%s %s on topic %q, want %q", e.Type, e.ID, topic, want)
	}
}

var histStart = time.Date(2026, 11, 20, 15, 4, 5, 0, shanghai)

// TestHistoryInThePast: every history event decodes strictly (ids,
// RFC 3339 times, enumerations), is dated within the window and before
// the clock, each user's profile comes first and predates the user's
// other events; then one refreshed profile per user, at the clock; then
// the live traffic.
func TestHistoryInThePast(t *testing.T) {
	t.Parallel()
	const users, days = 150, 90
	h := genHistory(t, simulator.Config{Seed: 21, Users: users, HistoryDays: days, Now: fixedClock(histStart)})
	from := h.t0.Add(-days * 24 * time.Hour)
	if st := h.sim.History(); st.Users != users || !st.To.Equal(h.t0) || !st.From.Equal(from) {
		t.Fatalf("History() = %+v", st)
	}
	ids := map[string]bool{}
	profileAt := map[string]time.Time{}
	var last string
	for i, e := range h.events {
		if ids[e.ID] || len(e.ID) > events.MaxIDBytes {
			t.Fatalf("event %d: id %q repeated or too long", i, e.ID)
		}
		ids[e.ID] = true
		if e.Time.Before(from) || !e.Time.Before(h.t0) {
			t.Fatalf("event %d (%s of %s) at %s, outside [%s, %s)", i, e.Type, e.Subject, e.Time, from, h.t0)
		}
		if e.Subject != last { // users come one after the other
			if _, seen := profileAt[e.Subject]; seen {
				t.Fatalf("event %d: %s's history is not in one piece", i, e.Subject)
			}
			if e.Type != events.TypeProfile {
				t.Fatalf("%s's history starts with %s, not its profile", e.Subject, e.Type)
			}
			profileAt[e.Subject] = e.Time
			last = e.Subject
		}
		if e.Time.Before(profileAt[e.Subject]) {
			t.Fatalf("%s %s of %s at %s, before its profile (%s)", e.Type, e.ID, e.Subject, e.Time, profileAt[e.Subject])
		}
		if p := e.Payment; p != nil && p.Installments != 0 {
			t.Fatalf("history payment %s on %d installments: the history is pay-now only", e.ID, p.Installments)
		}
		if d := e.Due; d != nil {
			if d.DueAt.Before(from.Add(-24*time.Hour)) || d.DueAt.After(h.t0.Add(8*time.Hour)) {
				t.Fatalf("bill %s due %s, outside the window and the next 8 hours", d.BillID, d.DueAt)
			}
		}
	}
	if len(profileAt) != users {
		t.Fatalf("%d users with a history, want %d", len(profileAt), users)
	}
	for i, e := range h.refresh {
		if e.Time.Before(h.t0) || e.Subject != simUser(i) || ids[e.ID] {
			t.Fatalf("refreshed profile %d: %s at %s (id %s)", i, e.Subject, e.Time, e.ID)
		}
	}
	// Then the live traffic: at the clock, its ids still new.
	if h.sim.InHistory() {
		t.Fatal("InHistory after the history")
	}
	dec := events.Decoder{Now: func() time.Time { return h.t0.Add(time.Hour) }}
	for range 2000 {
		_, key, value := h.sim.Next()
		e, err := dec.Decode(key, nil, value)
		if err != nil {
			continue // the malformed share
		}
		if ids[e.ID] {
			t.Fatalf("live event id %s repeats a history id", e.ID)
		}
		if e.Time.Before(h.t0.Add(-24 * time.Hour)) {
			t.Fatalf("live %s at %s", e.Type, e.Time)
		}
	}
}

func simUser(i int) string { return "u" + pad6(i+1) }

func pad6(n int) string {
	b := []byte("000000")
	for i := 5; i >= 0 && n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b)
}

// userHistory is what one user's history adds up to.
type userHistory struct {
	profile        *events.Profile
	loc            *time.Location
	payments30     int            // payments on the 30 local days up to the clock's
	loginDays30    map[int32]bool // local days with a login among them
	spendRecent    float64        // yuan a day, pay-now spend of the last 30 days
	spendOld       float64        // yuan a day, before
	social         int
	bills          map[string]*events.RepaymentDue
	paidAt         map[string]time.Time
	dueIndex       map[string]int // write position of the due event
	paidIndex      map[string]int
	devices, usual map[string]int
}

func localDay(t time.Time, loc *time.Location) int32 {
	y, m, d := t.In(loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func summarise(h *history, days int) map[string]*userHistory {
	us := map[string]*userHistory{}
	at := h.t0.Add(time.Minute) // when fenqid recomputes
	recentFrom := h.t0.Add(-30 * 24 * time.Hour)
	for i, e := range h.events {
		u := us[e.Subject]
		if u == nil {
			u = &userHistory{loginDays30: map[int32]bool{}, bills: map[string]*events.RepaymentDue{},
				paidAt: map[string]time.Time{}, dueIndex: map[string]int{}, paidIndex: map[string]int{}}
			us[e.Subject] = u
		}
		switch {
		case e.Profile != nil:
			u.profile, u.loc = e.Profile, shanghai
			if z := e.Profile.Timezone; z != "" {
				u.loc, _ = time.LoadLocation(z)
			}
		case e.Payment != nil:
			today := localDay(at, u.loc)
			if d := localDay(e.Time, u.loc); d > today-30 && d <= today {
				u.payments30++
			}
			switch sc := e.Payment.Scene; {
			case sc == events.SceneTransfer || sc == events.SceneRedPacket:
				u.social++
			case e.Time.Before(recentFrom):
				u.spendOld += float64(e.Payment.AmountFen) / 100 / float64(days-30)
			default:
				u.spendRecent += float64(e.Payment.AmountFen) / 100 / 30
			}
		case e.Login != nil:
			today := localDay(at, u.loc)
			if d := localDay(e.Time, u.loc); d > today-30 && d <= today {
				u.loginDays30[d] = true
			}
		case e.Due != nil:
			u.bills[e.Due.BillID] = e.Due
			u.dueIndex[e.Due.BillID] = i
		case e.Paid != nil:
			u.paidAt[e.Paid.BillID] = e.Time
			u.paidIndex[e.Paid.BillID] = i
		}
	}
	return us
}

// TestHistoryShares checks the shapes the demo relies on, roughly: most
// users pass the activity gate (≥ 90 payments and ≥ 10 login days in the
// last 30 days), some do not; the profiles spread; a few bills are open
// and overdue (freezes and reminders at start), some fall due within
// hours, the past ones were repaid, most on time.
func TestHistoryShares(t *testing.T) {
	t.Parallel()
	const users, days = 600, 90
	h := genHistory(t, simulator.Config{Seed: 4, Users: users, HistoryDays: days, Now: fixedClock(histStart)})
	us := summarise(h, days)
	if len(us) != users {
		t.Fatalf("%d users", len(us))
	}
	n := float64(users)
	var active, logins, both, perUser int
	var scores []int
	var partner, weilidai, threshold, elsewhere, judicial, longBound, wealth int
	var frozen, reminder, upcoming, paidOnTime, paidLate, prepaidOrder, lateAdjacent, pastBills int
	var ratios []float64
	pools := map[string]int{}
	for _, u := range us {
		perUser += u.payments30
		a, l := u.payments30 >= 90, len(u.loginDays30) >= 10
		if a {
			active++
		}
		if l {
			logins++
		}
		if a && l {
			both++
		}
		p := u.profile
		scores = append(scores, p.PayScore)
		if p.PartnerLimitFen > 0 {
			partner++
		}
		if p.WeilidaiLimitFen > 0 {
			weilidai++
		}
		if p.AlertThresholdFen > 0 {
			threshold++
		}
		if p.SeriousDefaultElsewhereOn != "" {
			elsewhere++
		}
		if p.JudicialDefaulter {
			judicial++
		}
		if p.WealthBalanceFen > 0 {
			wealth++
		}
		if b, err := time.ParseInLocation(time.DateOnly, p.CardBoundSince, u.loc); err == nil && b.Before(h.t0.AddDate(0, -6, 0)) {
			longBound++
		}
		if u.spendOld > 0 && u.spendRecent > 0 {
			ratios = append(ratios, u.spendRecent/u.spendOld)
		}
		for id, d := range u.bills {
			pools[d.Pool]++
			paid, ok := u.paidAt[id]
			switch {
			case !ok && h.t0.Sub(d.DueAt) > 72*time.Hour:
				frozen++
			case !ok && h.t0.Sub(d.DueAt) > 24*time.Hour:
				reminder++
			case !ok && d.DueAt.After(h.t0):
				upcoming++
			case !ok:
				t.Errorf("bill %s open, due %s: neither overdue a day nor upcoming", id, d.DueAt)
			default:
				pastBills++
				if !paid.After(d.DueAt) {
					paidOnTime++
					if u.paidIndex[id] == u.dueIndex[id]-1 {
						prepaidOrder++
					}
				} else {
					paidLate++
					if u.paidIndex[id] == u.dueIndex[id]+1 {
						lateAdjacent++
					}
				}
			}
		}
	}
	within(t, "users with ≥ 90 payments in 30 days", float64(active)/n, 0.9, 0.06)
	within(t, "users with ≥ 10 login days in 30", float64(logins)/n, 0.93, 0.05)
	within(t, "users passing both activity gates", float64(both)/n, 0.84, 0.08)
	t.Logf("payments in the last 30 days: %.1f per user", float64(perUser)/n)
	if active == users || logins == users {
		t.Errorf("every user passes an activity gate: want some below")
	}

	slices.Sort(scores)
	lo, med, hi := scores[users/20], scores[users/2], scores[users-users/20]
	t.Logf("pay scores: 5%% %d, median %d, 95%% %d", lo, med, hi)
	if lo > 620 || lo < 540 || hi < 780 || hi > 830 || med < 670 || med > 730 {
		t.Errorf("pay scores 5%%/50%%/95%% = %d/%d/%d, want a spread around 550–800", lo, med, hi)
	}
	share(t, "partner-pool limit", partner, users, 0.8)
	share(t, "Weilidai limit", weilidai, users, 0.7)
	share(t, "alert threshold", threshold, users, 0.15)
	share(t, "wealth balance", wealth, users, 0.9)
	share(t, "card bound over 6 months", longBound, users, 0.95)
	if elsewhere == 0 || elsewhere > users/15 || judicial == 0 || judicial > users/30 {
		t.Errorf("serious defaults elsewhere %d, judicial defaulters %d: want a few", elsewhere, judicial)
	}

	share(t, "users with a bill > 72 h overdue", frozen, users, 0.03)
	share(t, "users with a bill 24–72 h overdue", reminder, users, 0.03)
	share(t, "users with a bill due within hours", upcoming, users, 0.15)
	if pastBills < users/2 || paidLate == 0 || float64(paidOnTime)/float64(pastBills) < 0.8 {
		t.Errorf("past bills %d: %d paid on time, %d late; want about 1 a user, most on time", pastBills, paidOnTime, paidLate)
	}
	// The write order that keeps overdue checks from seeing a bill open
	// while its repayment waits: on time, the repayment first; late, the
	// due event just before the repayment.
	if prepaidOrder != paidOnTime || lateAdjacent != paidLate {
		t.Errorf("write order: %d of %d on-time repayments before their due event, %d of %d late ones right after it",
			prepaidOrder, paidOnTime, lateAdjacent, paidLate)
	}
	for _, p := range []string{"", events.PoolPayScore, events.PoolIndependent, events.PoolSharedWeilidai, events.PoolSpecialTemporary} {
		if pools[p] == 0 {
			t.Errorf("no history bill on pool %q: %v", p, pools)
		}
	}
	// Spending is level across the window (fewer, larger payments before
	// the last 30 days), so the stability factor has something to read.
	sort.Float64s(ratios)
	within(t, "median of recent/older daily spend", ratios[len(ratios)/2], 1, 0.25)
}

// share checks that k of n is about p: within 4 standard deviations of a
// binomial count, and 1%.
func share(t *testing.T, what string, k, n int, p float64) {
	t.Helper()
	within(t, what, float64(k)/float64(n), p, 4*math.Sqrt(p*(1-p)/float64(n))+0.01)
}

// TestHistoryShare gives a history to the busiest users only.
func TestHistoryShare(t *testing.T) {
	t.Parallel()
	h := genHistory(t, simulator.Config{Seed: 2, Users: 200, HistoryDays: 30, HistoryShare: 0.25, Now: fixedClock(histStart)})
	us := summarise(h, 30)
	if len(us) != 50 || len(h.refresh) != 50 {
		t.Fatalf("%d users with a history, %d refreshed, want 50", len(us), len(h.refresh))
	}
	for id := range us {
		if id > simUser(49) {
			t.Fatalf("%s has a history; want the first 50 users", id)
		}
	}
	for _, c := range []simulator.Config{{HistoryDays: 0}, {HistoryDays: -5}, {HistoryDays: 90, HistoryShare: -1}} {
		c.Users, c.Seed = 20, 1
		if s := simulator.New(c); s.InHistory() {
			t.Errorf("%+v: a history", c)
		}
	}
	if got := simulator.New(simulator.Config{HistoryDays: 5000}).Config().HistoryDays; got != simulator.MaxHistoryDays {
		t.Errorf("HistoryDays 5000 → %d", got)
	}
}

func TestHistoryDeterministic(t *testing.T) {
	t.Parallel()
	cfg := func(seed int64) simulator.Config {
		return simulator.Config{Seed: seed, Users: 60, HistoryDays: 90, Now: fixedClock(histStart), MalformedRatio: 0.01}
	}
	a, b := generate(cfg(3), 30000), generate(cfg(3), 30000)
	for i := range a {
		if a[i].topic != b[i].topic || !bytes.Equal(a[i].key, b[i].key) || !bytes.Equal(a[i].value, b[i].value) {
			t.Fatalf("event %d differs with the same seed:\n%s\n%s", i, a[i].value, b[i].value)
		}
	}
	c := generate(cfg(4), 30000)
	for i := range a {
		if bytes.Equal(a[i].value, c[i].value) {
			t.Fatalf("event %d identical with another seed", i)
		}
	}
}

// TestLiveCredit: after the history, credit purchases come in every
// credit scene on every plan, large enough to exhaust a quota in a few;
// bills fall due for them on the pool of their scene, and most are paid.
func TestLiveCredit(t *testing.T) {
	t.Parallel()
	s := simulator.New(simulator.Config{Seed: 8, Users: 400, HistoryDays: 30, Now: fixedClock(histStart), MalformedRatio: -1})
	for s.InHistory() {
		s.Next()
	}
	dec := events.Decoder{Now: func() time.Time { return histStart.Add(24 * time.Hour) }}
	type purchase struct {
		bill  int64
		scene events.Scene
	}
	queued := map[string][]purchase{}
	scenes := map[events.Scene]int{}
	periods := map[int]int{}
	var credit, large, matched, mismatched, dues, paid int
	wantPool := map[events.Scene][]string{
		events.SceneEcommerce: {events.PoolIndependent}, events.SceneLocalLife: {events.PoolSharedWeilidai},
		events.SceneEducation: {events.PoolSpecialTemporary}, events.SceneMedical: {events.PoolSpecialTemporary},
	}
	for range 60000 {
		_, key, value := s.Next()
		e, err := dec.Decode(key, nil, value)
		if err != nil {
			t.Fatalf("live event does not decode: %v\n%s", err, value)
		}
		switch {
		case e.Payment != nil && e.Payment.Installments > 0:
			p := e.Payment
			credit++
			scenes[p.Scene]++
			periods[p.Installments]++
			if p.AmountFen >= 500_000 {
				large++
			}
			if p.Auth == events.AuthPassword || p.Auth == events.AuthNone {
				t.Errorf("credit purchase %s confirmed by %s", e.ID, p.Auth)
			}
			bill := p.AmountFen / int64(p.Installments)
			if p.Installments > 1 {
				bill += p.AmountFen / 100
			}
			q := append(queued[e.Subject], purchase{bill, p.Scene})
			if len(q) > 8 { // the simulator keeps the 8 latest
				q = q[1:]
			}
			queued[e.Subject] = q
		case e.Due != nil:
			dues++
			// The oldest purchase is billed first; a bill of another amount
			// is one of an older purchase (now and then one of those has
			// the amount by chance: a mismatch or two are tolerated).
			q := queued[e.Subject]
			if len(q) == 0 || q[0].bill != e.Due.AmountFen {
				continue
			}
			sc := q[0].scene
			queued[e.Subject] = q[1:]
			want, ok := wantPool[sc]
			if !ok {
				want = []string{"", events.PoolPayScore}
			}
			if slices.Contains(want, e.Due.Pool) {
				matched++
			} else {
				mismatched++
				t.Logf("bill %s of a %s purchase (or another of the same amount) on pool %q, want %q", e.Due.BillID, sc, e.Due.Pool, want)
			}
			if !e.Due.DueAt.After(e.Time) {
				t.Errorf("bill %s of a purchase due %s, not after its statement", e.Due.BillID, e.Due.DueAt)
			}
		case e.Paid != nil:
			paid++
		}
	}
	within(t, "credit purchases share", float64(credit)/60000, 0.035, 0.008)
	for _, c := range []events.Scene{events.SceneEcommerce, events.SceneLocalLife, events.SceneOfflineRetail,
		events.SceneEducation, events.SceneMedical, events.SceneBillPay, events.SceneOther} {
		if scenes[c] == 0 {
			t.Errorf("no credit purchase in %s: %v", c, scenes)
		}
	}
	for _, k := range creditPeriods() {
		if periods[k] == 0 {
			t.Errorf("no credit purchase on %d periods: %v", k, periods)
		}
	}
	within(t, "credit purchases of 5,000 yuan or more", float64(large)/float64(credit), 0.25, 0.12)
	if matched < 200 || mismatched > matched/100 {
		t.Errorf("%d bills of live purchases on the right pool, %d not", matched, mismatched)
	}
	within(t, "repayments per bill", float64(paid)/float64(dues), 0.95, 0.15)
}

// TestRunHistory: Run writes the history unpaced, calls AfterHistory once
// with what it wrote, then the refreshed profiles, then MaxEvents live
// events at the rate.
func TestRunHistory(t *testing.T) {
	t.Parallel()
	w := &fakeWriter{}
	var got simulator.HistoryStats
	calls, before := 0, 0
	s := simulator.New(simulator.Config{Seed: 5, Users: 100, HistoryDays: 90, Rate: 2000, MaxEvents: 300,
		AfterHistory: func(_ context.Context, h simulator.HistoryStats) error {
			calls++
			got = h
			w.mu.Lock()
			before = len(w.msgs)
			w.mu.Unlock()
			return nil
		}})
	began := time.Now()
	if err := s.Run(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || got.Users != 100 || got.Events != before || got.Events < 100*100 || got.Took <= 0 {
		t.Fatalf("AfterHistory called %d times with %+v after %d events", calls, got, before)
	}
	if len(w.msgs) != before+100+300 {
		t.Fatalf("wrote %d events: %d of history, want 100 refreshed profiles and 300 live ones", len(w.msgs), before)
	}
	t.Logf("history: %d events in %v; whole run %v", got.Events, got.Took, time.Since(began))

	// An error from AfterHistory stops Run with it.
	boom := context.Canceled
	err := simulator.New(simulator.Config{Seed: 5, Users: 10, HistoryDays: 5,
		AfterHistory: func(context.Context, simulator.HistoryStats) error { return boom }}).Run(context.Background(), &fakeWriter{})
	if err == nil {
		t.Fatal("Run ignored the error of AfterHistory")
	}
}

// TestHistoryBackfillTime measures the generation of the default
// population's history (3,000 users, 90 days): it must stay a matter of
// seconds (Run's writing comes on top).
func TestHistoryBackfillTime(t *testing.T) {
	if testing.Short() {
		t.Skip("generates the whole default history")
	}
	s := simulator.New(simulator.Config{Seed: 1, HistoryDays: simulator.DefaultHistoryDays})
	began := time.Now()
	size := 0
	for s.InHistory() {
		_, _, v := s.Next()
		size += len(v)
	}
	took := time.Since(began)
	h := s.History()
	t.Logf("history of %d users: %d events (%.0f a user), %d MB, generated in %v", h.Users, h.Events,
		float64(h.Events)/float64(h.Users), size>>20, took.Round(time.Millisecond))
	if h.Events > 900_000 {
		t.Errorf("history too large: %d events", h.Events)
	}
}
