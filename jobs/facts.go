package jobs

import (
	"math/bits"
	"time"

	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// Facts turns a user's read view into the credit model's input, as
// FactsOf does for the state the view was read from.
func Facts(u *state.User, p *policy.Policy, now time.Time) credit.Facts {
	return FactsOf(u.Compact(), u.Zone, p, now)
}

// FactsOf turns a user's rolling state st into the credit model's input,
// with the windows DOMAIN.md gives, read in the user's zone loc at now. It
// reads the compact state as stored (no maps), so that a recompute and the
// stream's credit check pay for no read view.
func FactsOf(st *engine.State, loc *time.Location, p *policy.Policy, now time.Time) credit.Facts {
	f := credit.Facts{Now: now, Location: loc}
	if pr := st.Profile; pr != nil {
		f.PayScore = int(pr.PayScore)
		f.RealNameVerified, f.IdentityComplete = pr.RealNameVerified, pr.IdentityComplete
		f.CardBankBlacklisted, f.WealthBalanceFen = pr.CardBankBlacklisted, pr.WealthBalanceFen
		f.JudicialDefaulter, f.LinkedAccountNegative = pr.JudicialDefaulter, pr.LinkedAccountNegative
		if pr.CardBoundSince != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.CardBoundSince, loc); err == nil {
				f.CardBoundSince = t
			}
		}
		if pr.DefaultElsewhereOn != "" {
			if t, err := time.ParseInLocation(time.DateOnly, pr.DefaultElsewhereOn, loc); err == nil {
				f.DefaultElsewhere = t
			}
		}
	}
	today := engine.LocalDay(loc, now.Unix())
	window := int32(p.Eligibility.ActivityWindowDays)
	if window <= 0 {
		window = 30
	}
	first := today - window + 1 // the window's first local day
	for _, d := range st.Days {
		if d.Day >= first && d.Day <= today {
			f.Payments30d += int(d.Payments)
		}
	}
	// The three full calendar months before the current one, oldest first.
	y, m, _ := now.In(loc).Date()
	for i := range 3 {
		mt := time.Date(y, m-time.Month(3-i), 1, 0, 0, 0, 0, loc)
		if c := month(st, int32(mt.Year()*100+int(mt.Month()))); c != nil {
			f.MonthlySpendFen[i] = c.SpendFen
			f.MonthlyLoginDays[i] = int(c.LoginDays)
			f.MonthlySocial[i] = int(c.SocialN)
		}
	}
	// Distinct days with a login in the window: the bits of the months'
	// login masks (bit d−1 is day d) that fall in it.
	for i := range st.Months {
		mo := &st.Months[i]
		y, m := int(mo.YM/100), time.Month(mo.YM%100)
		start := int32(time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400)
		last := start + int32(time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()) - 1 // the month's last day
		lo, hi := max(first, start)-start, min(today, last)-start                   // the window's days in the month, as bits
		if lo > hi {
			continue
		}
		in := uint32(1<<(hi+1)-1) &^ uint32(1<<lo-1) // bits lo..hi, hi ≤ 30
		f.LoginDays30d += bits.OnesCount32(mo.LoginMask & in)
	}
	// Logins of the last window_days (90) days by device; the usual one has
	// the most.
	devWindow := int32(p.Quota.Factors.Device.WindowDays)
	if devWindow <= 0 {
		devWindow = 90
	}
	for i := range st.Devices {
		n := int(st.Devices[i].LoginsSince(today - devWindow + 1))
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
	from := now.In(loc).AddDate(0, -months, 0).Unix()
	f.OverdueEpisodes = int(st.SettledEpisodes)
	for i := range st.Bills {
		b := &st.Bills[i]
		if b.Status != engine.BillOpen {
			continue
		}
		if due := time.Unix(b.DueAt, 0); now.After(due) {
			f.OverdueNow = true
			f.OverdueEpisodes++
			f.MaxOverdue6m = max(f.MaxOverdue6m, now.Sub(due))
		}
	}
	for _, ep := range st.Episodes {
		if ep.SettledAt > from {
			f.MaxOverdue6m = max(f.MaxOverdue6m, time.Duration(ep.SettledAt-ep.DueAt)*time.Second)
		}
	}
	for _, c := range st.QuotaChecks {
		if t := time.Unix(c, 0); !t.After(now) && now.Sub(t) < 30*24*time.Hour {
			f.QuotaChecks30d++
		}
	}
	f.PreviousQuotaFen, f.HasPreviousQuota = st.QuotaFen, st.HasQuota
	if ov := st.Override; ov != nil {
		f.Override = &credit.Override{QuotaFen: ov.QuotaFen, Reason: ov.Reason, Operator: ov.Operator, ExpiresAt: time.Unix(ov.ExpiresAt, 0).UTC()}
	}
	return f
}

// month is st's counters of month ym (yyyymm), nil when it has none.
func month(st *engine.State, ym int32) *engine.Month {
	for i := range st.Months {
		if st.Months[i].YM == ym {
			return &st.Months[i]
		}
	}
	return nil
}
