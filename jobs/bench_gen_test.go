//go:build unix

package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/simulator"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// The users BenchmarkRecompute1M generates: each one engine.State, written
// as engine.Encode's bytes under state.UserKey, as state.Store writes it.

// rcSource is the CloudEvents source of the generated users' events (the
// dedup ring holds fingerprints of (source, id)).
const rcSource = simulator.Source

// rcUser is one generated user: its state, and what the checks need to
// know of how it was made.
type rcUser struct {
	id      string
	tzo     int   // the user's zone offset at now, s
	today   int32 // the local day number at now
	profile events.Profile
	ringIDs []string // the event ids behind st.Dedup, oldest first
	st      *engine.State
}

var rcCities = []string{"shanghai", "beijing", "shenzhen", "guangzhou", "hangzhou", "chengdu", "wuhan", "nanjing", "xian", "suzhou", "tianjin", "chongqing"}

// rcSynth generates a user from a seed: an active user (a login every
// day: 1–4 logins, 0–2·k spend payments with k 1..5 a day, a social
// payment one day in three, a finance one in ten; 35 daily and 7 monthly
// buckets), 2 devices and 2 cities, a profile distributed as the simulator
// draws a first one, a full dedup ring, 15 payment times, an offset per
// input topic it has events on, a quota for 90%, settled overdue episodes
// for 5%, an open bill for 30%.
func (e *rcBench) rcSynth(id string, seed uint64) *rcUser {
	r := rand.New(rand.NewPCG(0xfe9c1, seed))
	s := &rcUser{id: id}

	// Profile, as the simulator draws a first profile.
	score := min(820, max(450, int(math.Round(680+r.NormFloat64()*60))))
	p := simulator.DrawProfile(r, id, e.now, e.zones[""])
	p.PayScore = score
	s.profile = p
	_, s.tzo = e.now.In(e.zones[p.Timezone]).Zone()
	s.today = int32((e.now.Unix() + int64(s.tzo)) / 86400)
	st := &engine.State{
		Rev:  rand.Uint64() | 1,                                                                // a stored state's write token: never 0 (see state.Store's compare-and-set)
		Zone: p.Timezone, PrunedDay: s.today, FrozenJudicial: p.JudicialDefaulter, Known: true, // in the phase index
		Profile: &engine.Profile{PayScore: int32(p.PayScore), RealNameVerified: p.RealNameVerified, IdentityComplete: p.IdentityComplete,
			CardBankBlacklisted: p.CardBankBlacklisted, JudicialDefaulter: p.JudicialDefaulter, LinkedAccountNegative: p.LinkedAccountNegative,
			WealthBalanceFen: p.WealthBalanceFen, TransactionLimitFen: p.TransactionLimitFen, CardBoundSince: p.CardBoundSince},
	}
	s.st = st

	// Buckets: every day of the 7 months, the last 35 kept day by day.
	civil := time.Unix(int64(s.today)*86400, 0).UTC()
	var first [8]int32
	for i := range 7 {
		mt := time.Date(civil.Year(), civil.Month()-time.Month(6-i), 1, 0, 0, 0, 0, time.UTC)
		first[i] = int32(mt.Unix() / 86400)
		st.Months = append(st.Months, engine.Month{YM: int32(mt.Year()*100 + int(mt.Month()))})
	}
	first[7] = s.today + 1
	lvl := uint64(1 + r.IntN(5))
	avg := int64(1_000 + r.IntN(30_000))
	var totalLogins, totalEvents, winLogins int64
	for mi := range 7 {
		m := &st.Months[mi]
		for d := first[mi]; d < first[mi+1]; d++ {
			x := r.Uint64()
			spendN := int64(x % (2*lvl + 1))
			x >>= 8
			spendFen := spendN*avg + spendN*int64(x%1000)
			x >>= 10
			var socialN, finN int64
			if x%3 == 0 {
				socialN = 1
			}
			x >>= 20
			if x%10 == 0 {
				finN = 1
			}
			x >>= 20
			logins := 1 + int64(x%4)
			m.SpendFen += spendFen
			m.SocialN += int32(socialN)
			m.LoginDays++ // a day with a login
			m.LoginMask |= 1 << (d - first[mi])
			totalLogins += logins
			if d > s.today-90 {
				winLogins += logins
			}
			totalEvents += spendN + socialN + finN + logins
			if d > s.today-35 {
				st.Days = append(st.Days, engine.Day{Day: d, Payments: int32(spendN + socialN + finN)})
			}
		}
	}

	// Places: the usual phone and another device; the home city and one
	// other within 90 days, with a login there at 10:00.
	n1 := winLogins * 85 / 100
	st.Devices = []engine.Place{
		rcDevice(fmt.Sprintf("dev-%016x", r.Uint64()), s.today, s.today, n1),
		rcDevice(fmt.Sprintf("dev-%016x", r.Uint64()), s.today, s.today-int32(r.IntN(60)), winLogins-n1),
	}
	c1 := r.IntN(len(rcCities))
	c2 := (c1 + 1 + r.IntN(len(rcCities)-1)) % len(rcCities)
	st.Cities = []engine.Place{{Name: rcCities[c1], LastDay: s.today}, {Name: rcCities[c2], LastDay: s.today - 1 - int32(r.IntN(80))}}
	st.OtherCity = []int64{int64(st.Cities[1].LastDay)*86400 - int64(s.tzo) + 10*3600}

	// The dedup ring: the last 32 events, oldest first.
	for j := range engine.DedupRing {
		eid := fmt.Sprintf("%s-e%d", id, totalEvents-engine.DedupRing+1+int64(j))
		s.ringIDs = append(s.ringIDs, eid)
		st.Dedup = append(st.Dedup, engine.Fingerprint(rcSource, eid))
	}
	// The payment times, newest first.
	t := e.now.Unix() - r.Int64N(3600)
	for range engine.RecentPayments {
		st.Payments = append(st.Payments, t)
		t -= 300 + r.Int64N(2*86400/int64(lvl))
	}

	// Offsets: payments (topic 1), logins (2), profiles (4); bills (3) below.
	offs := map[int32]engine.Offset{
		1: {Topic: 1, Partition: int32(r.IntN(12)), Offset: 1_000_000 + r.Int64N(2_000_000_000)},
		2: {Topic: 2, Partition: int32(r.IntN(12)), Offset: 1_000_000 + r.Int64N(2_000_000_000)},
		4: {Topic: 4, Partition: int32(r.IntN(12)), Offset: 1_000 + r.Int64N(50_000_000)},
	}
	if r.Float64() < 0.9 { // recomputed once, by a trigger
		st.HasQuota, st.QuotaFen, st.Recomputes = true, 10_000*(10+r.Int64N(491)), 1
	}
	if r.Float64() < 0.05 { // settled overdue bills in the past
		st.SettledEpisodes = int32(1 + r.IntN(3))
		due := e.now.Unix() - int64(10+r.IntN(150))*86400
		st.Episodes = []engine.Episode{{DueAt: due, SettledAt: due + int64(1+r.IntN(10*86400))}}
	}
	switch x := r.Float64(); {
	case x < 0.30: // an open bill falling due within 30 days: a timer at due+1d
		st.Bills = []engine.Bill{{ID: fmt.Sprintf("bill-%d-%04x", st.Months[6].YM, r.IntN(1<<16)), Status: engine.BillOpen,
			Amount: 10_000 + r.Int64N(490_000), DueAt: e.now.Unix() + 3600 + r.Int64N(30*86400)}}
	case x < 0.303: // overdue beyond the freeze: stage 4, frozen, no timer left
		st.Bills = []engine.Bill{{ID: fmt.Sprintf("bill-%d-%04x", st.Months[5].YM, r.IntN(1<<16)), Status: engine.BillOpen,
			Amount: 10_000 + r.Int64N(490_000), DueAt: e.now.Unix() - int64(5+r.IntN(15))*86400, Stage: 4, Froze: true}}
		st.FrozenOverdue = true
	}
	if len(st.Bills) > 0 || st.SettledEpisodes > 0 {
		offs[3] = engine.Offset{Topic: 3, Partition: int32(r.IntN(12)), Offset: 1_000 + r.Int64N(50_000_000)}
	}
	for _, topic := range []int32{1, 2, 3, 4} {
		if o, ok := offs[topic]; ok {
			st.Offsets = append(st.Offsets, o)
		}
	}
	return s
}

// off is the user's offset entry of an input topic.
func (s *rcUser) off(topic int32) engine.Offset {
	for _, o := range s.st.Offsets {
		if o.Topic == topic {
			return o
		}
	}
	panic(fmt.Sprintf("user %s has no offset of topic %d", s.id, topic))
}

// openTimer is the overdue check the user's open bill has scheduled (ok
// false for none: no bill, or one past its last check).
func (s *rcUser) openTimer() (redis.Z, bool) {
	for _, b := range s.st.Bills {
		if b.Status == engine.BillOpen && b.Stage == 0 {
			return redis.Z{Score: float64(b.DueAt + 86400), Member: rcTimerMember(s.id, b.ID)}, true
		}
	}
	return redis.Z{}, false
}

// rcTimerMember is state's timerMember (unexported); verifyLayout checks
// it against the member Apply schedules.
func rcTimerMember(userID, billID string) string {
	return strconv.Itoa(len(userID)) + ":" + userID + billID
}

// rcDevice is a device last seen on lastDay with n logins in the 90 days
// to today, spread over its login buckets (engine.LoginBucketDays) from
// the oldest kept to lastDay's.
func rcDevice(name string, today, lastDay int32, n int64) engine.Place {
	p := engine.Place{Name: name, LastDay: lastDay}
	first, last := (today-89)/engine.LoginBucketDays, lastDay/engine.LoginBucketDays
	k := min(int64(last-first+1), n)
	if k <= 0 {
		return p
	}
	p.LoginBucket, p.Logins = last, make([]int32, k)
	for i := range p.Logins {
		p.Logins[i] = int32(n / k)
	}
	p.Logins[0] += int32(n % k)
	return p
}

// rcLogin counts a login on local day (within the kept buckets) as the
// engine does.
func rcLogin(p *engine.Place, day int32) {
	b := day / engine.LoginBucketDays
	if len(p.Logins) == 0 {
		p.LoginBucket, p.Logins = b, []int32{0}
	}
	if b > p.LoginBucket {
		p.Logins = append(make([]int32, b-p.LoginBucket), p.Logins...)
		p.LoginBucket = b
	}
	i := int(p.LoginBucket - b)
	for len(p.Logins) <= i {
		p.Logins = append(p.Logins, 0)
	}
	p.Logins[i]++
}

// rcTouch is the offset bookkeeping of an applied (or duplicate) event:
// its (topic, partition) entry takes the offset and moves last, the most
// recently used.
func rcTouch(offs []engine.Offset, topic int32, partition int, offset int64) []engine.Offset {
	out := slices.DeleteFunc(slices.Clone(offs), func(o engine.Offset) bool { return o.Topic == topic && o.Partition == int32(partition) })
	return append(out, engine.Offset{Topic: topic, Partition: int32(partition), Offset: offset})
}

// expect is the state.User a read of st must give: the view of the
// generated state, the profile as drawn.
func (s *rcUser) expect(zones map[string]*time.Location, st *engine.State) *state.User {
	prof := s.profile
	u := &state.User{ID: s.id, Zone: zones[st.Zone],
		Days: map[int]state.DayCounts{}, Months: map[int]state.MonthCounts{},
		Devices: map[string]state.Place{}, Cities: map[string]state.Place{}, Bills: map[string]state.Bill{},
		Profile: &prof, FrozenOverdue: st.FrozenOverdue, FrozenJudicial: prof.JudicialDefaulter,
		SettledEpisodes: int(st.SettledEpisodes), QuotaFen: st.QuotaFen, HasQuota: st.HasQuota, Recomputes: st.Recomputes}
	for _, d := range st.Days {
		u.Days[int(d.Day)] = state.DayCounts{Payments: int64(d.Payments)}
	}
	for _, m := range st.Months {
		u.Months[int(m.YM)] = state.MonthCounts{SpendFen: m.SpendFen, SocialN: int64(m.SocialN), LoginDays: int64(m.LoginDays), LoginMask: m.LoginMask}
	}
	for _, d := range st.Devices {
		p := state.Place{LastDay: int(d.LastDay)}
		for i, c := range d.Logins {
			if p.LoginsByBucket == nil {
				p.LoginsByBucket = map[int]int64{}
			}
			p.LoginsByBucket[int(d.LoginBucket)-i] = int64(c)
			p.Logins += int64(c)
		}
		u.Devices[d.Name] = p
	}
	for _, c := range st.Cities {
		u.Cities[c.Name] = state.Place{LastDay: int(c.LastDay)}
	}
	for _, b := range st.Bills {
		if b.Status == engine.BillOpen {
			u.Bills[b.ID] = state.Bill{RemainingFen: b.Amount, DueAt: time.Unix(b.DueAt, 0).UTC(), Stage: int(b.Stage)}
		}
	}
	for _, ep := range st.Episodes {
		u.RecentEpisodes = append(u.RecentEpisodes, state.Episode{DueAt: time.Unix(ep.DueAt, 0).UTC(), SettledAt: time.Unix(ep.SettledAt, 0).UTC()})
	}
	if st.CycleDone != 0 {
		u.CycleDone = time.Unix(st.CycleDone, 0)
	}
	return u
}

// rcSameUser says how got differs from want ("" if it does not).
func rcSameUser(got, want *state.User) string {
	var diffs []string
	if got.Zone.String() != want.Zone.String() {
		diffs = append(diffs, fmt.Sprintf("zone %s, want %s", got.Zone, want.Zone))
	}
	g, w := *got, *want
	g.Zone, w.Zone = nil, nil
	if d := rcDiff(g, w); d != "" {
		diffs = append(diffs, d)
	}
	return strings.Join(diffs, "\n")
}

// rcDiff lists the fields of two structs of one type that differ.
func rcDiff(got, want any) string {
	var diffs []string
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface()))
		}
	}
	return strings.Join(diffs, "\n")
}

// ---- the layout check ----------------------------------------------------

// rcFind generates users from seed 1_000_000 on until one has what ok asks.
func (e *rcBench) rcFind(id string, ok func(*rcUser) bool) *rcUser {
	for seed := uint64(1_000_000); ; seed++ {
		if s := e.rcSynth(id, seed); ok(s) {
			return s
		}
	}
}

// writeUsers stores generated users as the benchmark's population does:
// the encoded state under state.UserKey (no index entry).
func (e *rcBench) writeUsers(tb testing.TB, ctx context.Context, us ...*rcUser) {
	tb.Helper()
	pipe := e.bulk.Pipeline()
	for _, s := range us {
		pipe.Set(ctx, state.UserKey(s.id), engine.Encode(nil, s.st), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		tb.Fatal(err)
	}
}

// verifyLayout proves the generated state is the engine's: a generated
// user's value decodes to the state generated and reads back (Store.User)
// as its view; then real events applied to it with state.Store.Apply see
// its dedup ring, offsets, payment times, other-city login and places
// (duplicate, redelivery, no new city or device), and leave exactly the
// bytes the generator's own state with those events written in by hand
// encodes to, and schedule a bill's timer under the member the generator
// uses; and a user whose daily prune is due loses none of its 35 days, 7
// months and 4 places. Any difference stops the benchmark.
func (e *rcBench) verifyLayout(tb testing.TB, ctx context.Context) {
	tb.Helper()
	fail := func(format string, args ...any) {
		tb.Helper()
		tb.Fatalf("generated state differs from state/engine's: "+format, args...)
	}
	// rawEq compares a user's stored value with the encoding of want
	// (whose Rev it sets to the stored one, a new token of the store's).
	rawEq := func(what string, s *rcUser, want *engine.State) {
		tb.Helper()
		raw, err := e.bulk.Get(ctx, state.UserKey(s.id)).Bytes()
		if err != nil {
			fail("%s: %v", what, err)
		}
		got, err := engine.Decode(raw)
		if err != nil {
			fail("%s: %v", what, err)
		}
		if got.Rev == 0 || got.Rev == s.st.Rev {
			fail("%s: Rev %d after a write, generated %d", what, got.Rev, s.st.Rev)
		}
		want.Rev = got.Rev
		if len(want.Bills) == 0 {
			want.Bills = nil // as Decode gives (Clone makes it empty)
		}
		if !bytes.Equal(raw, engine.Encode(nil, want)) {
			fail("%s: the store wrote %d bytes, the generator's state encodes to %d:\n%s", what, len(raw), len(engine.Encode(nil, want)), rcDiff(*got, *want))
		}
	}

	s := e.rcFind("verify-1", func(s *rcUser) bool {
		st := s.st
		return st.Zone == "" && st.HasQuota && st.SettledEpisodes > 0 && len(st.Bills) == 1 && st.Bills[0].Stage == 0 &&
			!st.FrozenOverdue && s.profile.TransactionLimitFen > 0 && !s.profile.JudicialDefaulter
	})
	e.writeUsers(tb, ctx, s)
	raw, err := e.bulk.Get(ctx, state.UserKey(s.id)).Bytes()
	if err != nil {
		fail("get: %v", err)
	}
	if dec, err := engine.Decode(raw); err != nil {
		fail("decode: %v", err)
	} else if !reflect.DeepEqual(dec, s.st) {
		fail("decoded value of the generated user:\n%s", rcDiff(*dec, *s.st))
	}
	u, err := e.store.User(ctx, s.id)
	if err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u, s.expect(e.zones, s.st)); d != "" {
		fail("read of the generated user:\n%s", d)
	}

	// Real events through Apply.
	now := e.now
	devs, cities := s.st.Devices, s.st.Cities
	pay := func(id string, fen int64, dev string) *events.Event {
		return &events.Event{ID: id, Type: events.TypePayment, Source: rcSource, Subject: s.id, Time: now,
			Payment: &events.Payment{UserID: s.id, AmountFen: fen, Currency: "CNY", Scene: events.SceneEcommerce,
				MerchantID: "m1", DeviceID: dev, City: cities[0].Name, Auth: events.AuthFace}}
	}
	login := func(id, dev, city string) *events.Event {
		return &events.Event{ID: id, Type: events.TypeLogin, Source: rcSource, Subject: s.id, Time: now,
			Login: &events.Login{UserID: s.id, DeviceID: dev, City: city, IP: "10.0.0.1", Auth: events.AuthPassword}}
	}
	dueAt := time.Unix(now.Unix()+10*86400, 0)
	prof := s.profile
	o1, o2, o3, o4 := s.off(1), s.off(2), s.off(3), s.off(4)
	items := []state.Item{
		{Event: pay("vfy-pay-1", 12_345, devs[0].Name), Topic: 1, Partition: int(o1.Partition), Offset: o1.Offset + 1},
		{Event: login("vfy-login-1", devs[0].Name, cities[0].Name), Topic: 2, Partition: int(o2.Partition), Offset: o2.Offset + 1},
		{Event: login("vfy-login-2", devs[1].Name, cities[1].Name), Topic: 2, Partition: int(o2.Partition), Offset: o2.Offset + 2},
		{Event: pay(s.ringIDs[7], 999, devs[0].Name), Topic: 1, Partition: int(o1.Partition), Offset: o1.Offset + 2}, // an id in the ring
		{Event: pay("vfy-pay-old", 777, devs[0].Name), Topic: 1, Partition: int(o1.Partition), Offset: o1.Offset},    // an offset applied before
		{Event: &events.Event{ID: "vfy-due-1", Type: events.TypeRepaymentDue, Source: rcSource, Subject: s.id, Time: now,
			Due: &events.RepaymentDue{UserID: s.id, BillID: "bill-vfy", AmountFen: 50_000, DueAt: dueAt}}, Topic: 3, Partition: int(o3.Partition), Offset: o3.Offset + 1},
		{Event: &events.Event{ID: "vfy-prof-1", Type: events.TypeProfile, Source: rcSource, Subject: s.id, Time: now, Profile: &prof},
			Topic: 4, Partition: int(o4.Partition), Offset: o4.Offset + 1},
	}
	out, err := e.store.Apply(ctx, items)
	if err != nil {
		fail("apply: %v", err)
	}
	wantStatus := []state.Status{state.Applied, state.Applied, state.Applied, state.Duplicate, state.Redelivered, state.Applied, state.Applied}
	for i, oc := range out {
		if oc.Status != wantStatus[i] || oc.Err != nil || oc.NewCity || oc.NewDevice || oc.Unfroze || oc.BecameJudicialDefaulter || oc.ClearedJudicialDefaulter {
			fail("event %d (%s): outcome %+v, want status %v and no new place, no flag", i, items[i].Event.ID, oc, wantStatus[i])
		}
	}
	var recent []int64
	for _, t := range out[0].RecentPayments {
		recent = append(recent, t.Unix())
	}
	if !reflect.DeepEqual(recent, s.st.Payments) {
		fail("payment times seen by the engine %v, generated %v", recent, s.st.Payments)
	}
	if out[0].LastOtherCityLogin.Unix() != s.st.OtherCity[0] || out[0].TransactionLimitFen != s.profile.TransactionLimitFen || out[0].Zone.String() != "Asia/Shanghai" {
		fail("outcome lo %v lim %d zone %v, want lo %d lim %d", out[0].LastOtherCityLogin.Unix(), out[0].TransactionLimitFen, out[0].Zone, s.st.OtherCity[0], s.profile.TransactionLimitFen)
	}

	// The state afterwards, raw and read: the generated one with the
	// events written in by hand.
	want := s.st.Clone()
	last := &want.Days[len(want.Days)-1]
	if last.Day != s.today || want.Months[6].YM != int32(now.Year()*100+int(now.Month())) {
		fail("the last generated day is %d (month %d), today %d", last.Day, want.Months[6].YM, s.today)
	}
	last.Payments++
	want.Months[6].SpendFen += 12_345 // the logins' day is marked already
	want.Payments = append([]int64{now.Unix()}, s.st.Payments[:engine.RecentPayments-1]...)
	rcLogin(&want.Devices[0], s.today)
	rcLogin(&want.Devices[1], s.today)
	want.Devices[1].LastDay = s.today
	want.Cities[1].LastDay = s.today
	want.Dedup = append(slices.Clone(s.st.Dedup[5:]), engine.Fingerprint(rcSource, "vfy-pay-1"), engine.Fingerprint(rcSource, "vfy-login-1"),
		engine.Fingerprint(rcSource, "vfy-login-2"), engine.Fingerprint(rcSource, "vfy-due-1"), engine.Fingerprint(rcSource, "vfy-prof-1"))
	for _, it := range items {
		if it.Event.ID != "vfy-pay-old" { // the redelivery leaves its entry alone
			want.Offsets = rcTouch(want.Offsets, int32(it.Topic), it.Partition, it.Offset)
		}
	}
	want.Bills = append(want.Bills, engine.Bill{ID: "bill-vfy", Status: engine.BillOpen, Amount: 50_000, DueAt: dueAt.Unix()})
	rawEq("after the events", s, want)
	if u, err = e.store.User(ctx, s.id); err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u, s.expect(e.zones, want)); d != "" {
		fail("read after the events:\n%s", d)
	}
	if sc, err := e.bulk.ZScore(ctx, state.TimersKey, rcTimerMember(s.id, "bill-vfy")).Result(); err != nil || int64(sc) != dueAt.Unix()+86400 {
		fail("timer of the new bill under %q: %v %v", rcTimerMember(s.id, "bill-vfy"), sc, err)
	}
	mem, err := e.store.MemoryUsage(ctx, s.id)
	if err != nil {
		tb.Fatal(err)
	}
	e.sample, e.sampleLen = mem, e.bulk.StrLen(ctx, state.UserKey(s.id)).Val()

	// The daily prune over the generated window (a London user: another offset).
	s2 := e.rcFind("verify-2", func(s *rcUser) bool { return s.st.Zone == "Europe/London" })
	s2.st.PrunedDay = s2.today - 1
	e.writeUsers(tb, ctx, s2)
	// Logins today, late ones on the 1st of this month and on the last day
	// of the month before (10:00 local): every one on a day the generated
	// login masks have already, so no month gains a login day.
	ym := s2.st.Months[6].YM
	first := time.Date(int(ym/100), time.Month(ym%100), 1, 10, 0, 0, 0, time.UTC).Unix() - int64(s2.tzo)
	o2 = s2.off(2)
	var its []state.Item
	for k, at := range []int64{now.Unix(), first, first - 86400} {
		its = append(its, state.Item{Event: &events.Event{ID: "vfy2-login-" + strconv.Itoa(k), Type: events.TypeLogin, Source: rcSource, Subject: s2.id, Time: time.Unix(at, 0),
			Login: &events.Login{UserID: s2.id, DeviceID: s2.st.Devices[0].Name, City: s2.st.Cities[0].Name, IP: "10.0.0.2", Auth: events.AuthFace}},
			Topic: 2, Partition: int(o2.Partition), Offset: o2.Offset + 1 + int64(k)})
	}
	out, err = e.store.Apply(ctx, its)
	if err != nil {
		fail("apply: %v", err)
	}
	for i, oc := range out {
		if oc.Status != state.Applied || oc.NewCity || oc.NewDevice || oc.Zone.String() != "Europe/London" {
			fail("login %d after the prune: outcome %+v", i, oc)
		}
	}
	want2 := s2.st.Clone()
	want2.PrunedDay = s2.today
	for _, it := range its {
		rcLogin(&want2.Devices[0], int32((it.Event.Time.Unix()+int64(s2.tzo))/86400))
	}
	want2.Dedup = slices.Clone(s2.st.Dedup[len(its):])
	for _, it := range its {
		want2.Dedup = append(want2.Dedup, engine.Fingerprint(rcSource, it.Event.ID))
		want2.Offsets = rcTouch(want2.Offsets, 2, it.Partition, it.Offset)
	}
	rawEq("after the daily prune (35 days, 7 months, 4 places must stay)", s2, want2)
	u2, err := e.store.User(ctx, s2.id)
	if err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u2, s2.expect(e.zones, want2)); d != "" {
		fail("after the daily prune (35 days, 7 months, 4 places must stay):\n%s", d)
	}
	if len(u2.Days) != 35 || len(u2.Months) != 7 || len(u2.Devices)+len(u2.Cities) != 4 {
		fail("after the daily prune: %d days, %d months, %d places", len(u2.Days), len(u2.Months), len(u2.Devices)+len(u2.Cities))
	}

	e.logf("layout verified against state/engine (10 real events applied with Store.Apply to 2 generated users); one generated user's value: %d B, %d B in Redis (MEMORY USAGE)\n", e.sampleLen, e.sample)
	if err := e.bulk.FlushAll(ctx).Err(); err != nil {
		tb.Fatal(err)
	}
}

// ---- the checks on their own (go test -run 'Bench|Verify|Bulk') ------------

// TestBenchVerifyLayout runs BenchmarkRecompute1M's check of its
// generated users against state.Store.Apply, without the benchmark.
func TestBenchVerifyLayout(t *testing.T) {
	t.Parallel()
	e := newRCBench(t, 1)
	e.logf = t.Logf
	e.verifyLayout(t, context.Background())
}

// TestBulkUsersReadBack populates users as BenchmarkRecompute1M does (more
// than one pipeline of them, two writers), reads every one back as the
// view of its generated state, then recomputes them all with the real
// loop (the compare-and-set of SaveQuotas takes the generated revisions)
// and finds each with its quota saved and the rest unchanged.
func TestBulkUsersReadBack(t *testing.T) {
	t.Parallel()
	const n = 1_200
	ctx := context.Background()
	e := newRCBench(t, n)
	e.logf = t.Logf
	e.populate(t, ctx)
	if _, err := e.readPass(ctx, 2, e.byPhase); err != nil {
		t.Fatal(err)
	}
	check := func(saved bool) {
		t.Helper()
		bad := 0
		for lo := 0; lo < n; lo += 500 {
			us, err := e.store.Users(ctx, e.ids[lo:min(lo+500, n)])
			if err != nil {
				t.Fatal(err)
			}
			for k, u := range us {
				s := e.rcSynth(e.ids[lo+k], uint64(lo+k))
				want := s.expect(e.zones, s.st)
				if saved {
					if !u.HasQuota || u.Recomputes != want.Recomputes+1 || u.CycleDone.IsZero() {
						t.Errorf("%s after the recompute: quota %v %d, recompute %d, cycle done %v; want a quota, recompute %d and the cycle",
							u.ID, u.HasQuota, u.QuotaFen, u.Recomputes, u.CycleDone, want.Recomputes+1)
					}
					want.HasQuota, want.QuotaFen, want.Recomputes, want.CycleDone = u.HasQuota, u.QuotaFen, u.Recomputes, u.CycleDone
				}
				if d := rcSameUser(u, want); d != "" {
					if bad++; bad <= 3 {
						t.Errorf("user %s (saved quotas %v):\n%s", u.ID, saved, d)
					}
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%d of %d users differ from their generated state", bad, n)
		}
	}
	check(false)
	e.armSchedule(t, ctx)
	note, err := e.runnerPass(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recomputed %d users: %s", n, note)
	check(true)
}
