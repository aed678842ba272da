//go:build unix

package jobs_test

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// FactsOf (the compact state) and Facts (a read view) give what the facts
// gave when they were read from the view's maps, and JudgePurchaseOf what
// JudgePurchase gives on the view, on 3,000 generated users
// (BenchmarkRecompute1M's, with overrides, quota checks, defaults
// elsewhere, settled episodes, credit outstanding, special quotas and
// freezes, bills not open, sparse login masks (with bits past a month's
// end, as a hand-built view may have), an early device and no profile
// added at random), read in zones from UTC−11 to UTC+14, at times up to 70
// days after the state's, under activity windows of 1 to 90 days and
// device windows of 30 and 90.
func TestFactsOfMatchesTheViewsFacts(t *testing.T) {
	e := newRCGenerator(t)
	base := e.pol
	var zones []*time.Location // any zone the facts may be read in: ±14 h, daylight saving
	for _, z := range []string{"Asia/Shanghai", "Europe/London", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"} {
		loc, err := time.LoadLocation(z)
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, loc)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 3000 {
		s := e.rcSynth(rcUserID(i), uint64(i))
		st, loc := s.st, e.zones[s.profile.Timezone]
		if rng.IntN(2) == 0 {
			loc = zones[rng.IntN(len(zones))]
		}
		for m := range st.Months { // logins on some days only, and bits past the month's end (a hand-built view's)
			if rng.IntN(2) == 0 {
				st.Months[m].LoginMask = st.Months[m].LoginMask&rng.Uint32() | rng.Uint32()&0xF000_0000 // bits 28–31: days 29–32
			}
		}
		if rng.IntN(8) == 0 {
			// a device seen in the first login buckets (bucket 0 is 1970's first days)
			st.Devices = append(st.Devices, engine.Place{Name: "old", LastDay: 6, LoginBucket: 1, Logins: []int32{3, 4}})
		}
		if rng.IntN(3) == 0 { // bills that are not open: prepaid, settled
			st.Bills = append(st.Bills,
				engine.Bill{ID: "prepaid", Status: engine.BillPrepaid, Amount: 5_000, DueAt: e.now.Unix() - 86400},
				engine.Bill{ID: "settled", Status: engine.BillSettled, Amount: 0, DueAt: e.now.Unix() - 5*86400, At: e.now.Unix() - 86400})
		}
		if rng.IntN(4) == 0 {
			st.Override = &engine.Override{QuotaFen: 500_000, Reason: "vip", Operator: "ops", ExpiresAt: e.now.Unix() + rng.Int64N(40*86400)}
		}
		for range rng.IntN(4) {
			st.QuotaChecks = append(st.QuotaChecks, e.now.Unix()-rng.Int64N(50*86400)+rng.Int64N(86400))
		}
		if rng.IntN(5) == 0 {
			st.Profile.DefaultElsewhereOn = e.now.AddDate(0, -rng.IntN(12), -rng.IntN(28)).Format(time.DateOnly)
		}
		if rng.IntN(3) == 0 {
			st.Outstanding[rng.IntN(engine.NumLines)] = rng.Int64N(3_000_000)
			st.Profile.PartnerLimitFen, st.Profile.WeilidaiLimitFen = rng.Int64N(1_000_000), rng.Int64N(1_000_000)
		}
		if rng.IntN(4) == 0 {
			st.Special = &engine.Special{QuotaFen: 1_000_000, Reason: "school", ExpiresAt: e.now.Unix() + rng.Int64N(40*86400)}
		}
		if rng.IntN(10) == 0 {
			st.FrozenOverdue = true
		}
		if rng.IntN(5) == 0 {
			due := e.now.Unix() - rng.Int64N(300*86400)
			st.Episodes = append(st.Episodes, engine.Episode{DueAt: due, SettledAt: due + 1 + rng.Int64N(20*86400)})
			st.SettledEpisodes++
		}
		if rng.IntN(20) == 0 {
			st.Profile = nil // no profile yet
		}
		p := *base
		p.Eligibility.ActivityWindowDays = []int{1, 7, 30, 31, 60, 90}[rng.IntN(6)]
		p.Quota.Factors.Device.WindowDays = []int{30, 90}[rng.IntN(2)]
		now := e.now.Add(time.Duration(rng.Int64N(70*86400)) * time.Second).Add(time.Duration(rng.IntN(1e9)))
		u := state.ViewState(s.id, st, loc)
		want := factsOracle(u, &p, now)
		if got := jobs.FactsOf(st, loc, &p, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("user %d at %v: FactsOf\n got %+v\nwant %+v", i, now, got, want)
		}
		if got := jobs.Facts(u, &p, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("user %d at %v: Facts\n got %+v\nwant %+v", i, now, got, want)
		}
		// The stream's judge of a purchase, on the state and on the view.
		scene := []events.Scene{events.SceneOther, events.SceneEducation, events.SceneOfflineRetail}[rng.IntN(3)]
		amount := rng.Int64N(2_000_000)
		got := jobs.JudgePurchaseOf(&p, st, loc, scene, amount, now)
		if want := jobs.JudgePurchase(&p, u, scene, amount, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("user %d at %v: JudgePurchaseOf\n got %+v\nwant %+v", i, now, got, want)
		}
		if q := u.Available(got.Pool, now); got.Quota != q || got.Request.Frozen != (u.FrozenOverdue || u.FrozenJudicial) {
			t.Fatalf("user %d at %v: judged on %+v (frozen %v), the view has %+v", i, now, got.Quota, got.Request.Frozen, q)
		}
	}
}

// factsOracle is jobs.Facts as it was written over the read view's maps,
// before FactsOf read the compact state: the oracle FactsOf is checked
// against.
func factsOracle(u *state.User, p *policy.Policy, now time.Time) credit.Facts {
	loc := u.Zone
	f := credit.Facts{Now: now, Location: loc}
	if pr := u.Profile; pr != nil {
		f.PayScore = pr.PayScore
		f.RealNameVerified, f.IdentityComplete = pr.RealNameVerified, pr.IdentityComplete
		f.CardBankBlacklisted, f.WealthBalanceFen = pr.CardBankBlacklisted, pr.WealthBalanceFen
		f.JudicialDefaulter, f.LinkedAccountNegative = pr.JudicialDefaulter, pr.LinkedAccountNegative
		if pr.CardBoundSince != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.CardBoundSince, loc); err == nil {
				f.CardBoundSince = t
			}
		}
		if pr.SeriousDefaultElsewhereOn != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.SeriousDefaultElsewhereOn, loc); err == nil {
				f.DefaultElsewhere = t
			}
		}
	}
	today := u.Day(now)
	window := p.Eligibility.ActivityWindowDays
	if window <= 0 {
		window = 30
	}
	for day, c := range u.Days {
		if day > today-window && day <= today {
			f.Payments30d += int(c.Payments)
		}
	}
	// The three full calendar months before the current one, oldest first.
	y, m, _ := now.In(loc).Date()
	for i := range 3 {
		mt := time.Date(y, m-time.Month(3-i), 1, 0, 0, 0, 0, loc)
		c := u.Months[mt.Year()*100+int(mt.Month())]
		f.MonthlySpendFen[i] = c.SpendFen
		f.MonthlyLoginDays[i] = int(c.LoginDays)
		f.MonthlySocial[i] = int(c.SocialN)
	}
	// Distinct days with a login in the window: the months' login masks.
	for day := today - window + 1; day <= today; day++ {
		y, m, d := time.Unix(int64(day)*86400, 0).UTC().Date()
		if u.Months[y*100+int(m)].LoginMask&(1<<(d-1)) != 0 {
			f.LoginDays30d++
		}
	}
	// Logins of the last window_days (90) days by device; the usual one has
	// the most.
	devWindow := p.Quota.Factors.Device.WindowDays
	if devWindow <= 0 {
		devWindow = 90
	}
	for _, d := range u.Devices {
		n := int(d.LoginsSince(today - devWindow + 1))
		f.Logins90d += n
		f.UsualDeviceLogins90d = max(f.UsualDeviceLogins90d, n)
	}
	// Overdue: open bills past due now, and settled episodes. A bill counts
	// for the serious-default gate when it was overdue at some moment of the
	// window: open now, or settled inside it, however long ago it fell due.
	months := p.Eligibility.SeriousDefaultWindowMonths
	if months <= 0 {
		months = 6
	}
	from := now.In(loc).AddDate(0, -months, 0)
	f.OverdueEpisodes = u.SettledEpisodes
	for _, b := range u.Bills {
		if now.After(b.DueAt) {
			f.OverdueNow = true
			f.OverdueEpisodes++
			f.MaxOverdue6m = max(f.MaxOverdue6m, now.Sub(b.DueAt))
		}
	}
	for _, ep := range u.RecentEpisodes {
		if ep.SettledAt.After(from) {
			f.MaxOverdue6m = max(f.MaxOverdue6m, ep.SettledAt.Sub(ep.DueAt))
		}
	}
	for _, c := range u.QuotaChecks {
		if now.Sub(c) < 30*24*time.Hour && !c.After(now) {
			f.QuotaChecks30d++
		}
	}
	f.PreviousQuotaFen, f.HasPreviousQuota = u.QuotaFen, u.HasQuota
	if ov := u.Override; ov != nil {
		f.Override = &credit.Override{QuotaFen: ov.QuotaFen, Reason: ov.Reason, Operator: ov.Operator, ExpiresAt: ov.ExpiresAt}
	}
	return f
}
