package simulator

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/fenqi/fenqi/events"
)

// The back-dated history (Config.HistoryDays): before any live event, each
// user with a history gets, in one go and in the order of its event times
// (but see billPair), a credit profile at the start of the window and then
// the pay-now payments, logins and bills of the window, every time in the
// past. Then every such user gets a refreshed profile at the current time
// (the one that makes fenqid recompute the quota on the whole history),
// and the live traffic starts.

// Shares and rates of the history, per user (documented in doc.go; the
// tests check them roughly).
const (
	histActiveShare = 0.92 // users paying 3.6 times a day or more on average over the last 30 days
	histLoginShare  = 0.94 // users logging in on half the days or more
	histMargin      = time.Second

	// Bills the user has open at the start (exclusive shares of users).
	histFrozenShare   = 0.03 // a bill open and more than 72 h overdue: a freeze at start
	histReminderShare = 0.03 // a bill open and 25–70 h overdue: a reminder at start
	histUpcomingShare = 0.15 // a bill due within the next 3 minutes to 8 hours
)

// histItem is one event of a user's history with its place in the order
// of writing.
type histItem struct {
	key   int64 // Unix nanoseconds; ties keep the order of generation
	topic string
	e     events.Event
}

type historyBuf struct {
	items []histItem
	pos   int
}

// stage is what Next returns next.
type stage int

const (
	stageHistory stage = iota // the back-dated history
	stageRefresh              // the refreshed profiles, at the current time
	stageLive                 // the live traffic
)

func (s *Simulator) stage() stage {
	switch {
	case s.hist.pos < len(s.hist.items) || s.histNext < s.histUsers:
		return stageHistory
	case s.refreshNext < s.histUsers:
		return stageRefresh
	}
	return stageLive
}

// nextHistory returns the next event of the history, generating the next
// user's when the one before is out.
func (s *Simulator) nextHistory() (events.Event, string) {
	if s.hist.pos >= len(s.hist.items) {
		if s.histNext == 0 {
			s.t0 = s.now()
			s.histStats.To = s.t0
			s.histStats.From = s.t0.Add(-time.Duration(s.cfg.HistoryDays) * 24 * time.Hour)
			s.histStats.Users = s.histUsers
		}
		s.hist.items = s.historyOf(s.users[s.histNext], s.hist.items[:0])
		s.hist.pos = 0
		s.histNext++
	}
	it := &s.hist.items[s.hist.pos]
	s.hist.pos++
	s.histStats.Events++
	return it.e, it.topic
}

// nextRefresh returns a history user's refreshed profile, at the clock.
func (s *Simulator) nextRefresh() (events.Event, string) {
	u := s.users[s.refreshNext]
	s.refreshNext++
	return s.profile(s.now(), u), s.cfg.Topics.Profiles
}

// historyOf appends the history of u, in the order of writing, to out.
func (s *Simulator) historyOf(u *user, out []histItem) []histItem {
	r := s.rng
	t0 := s.t0
	start := t0.Add(-time.Duration(s.cfg.HistoryDays) * 24 * time.Hour)
	end := t0.Add(-histMargin)
	span := end.Sub(start)
	add := func(key time.Time, topic string, e events.Event) {
		out = append(out, histItem{key: key.UnixNano(), topic: topic, e: e})
	}

	// The profile, at the start of the window.
	profAt := start.Add(time.Duration(r.Int64N(int64(min(6*time.Hour, span/20)) + 1))).Truncate(time.Millisecond)
	p := s.historyProfile(u, profAt, t0)
	pe := s.event(events.TypeProfile, u, profAt)
	pe.Profile = &p
	add(profAt, s.cfg.Topics.Profiles, pe)

	// Payments: a Poisson process at the recent rate over the last 31 days
	// (the activity window is 30 local days) and a lower one before, with
	// larger amounts so that a month's spend stays level; few at night.
	var rate30 float64
	if r.Float64() < histActiveShare {
		rate30 = min(3.6+r.ExpFloat64()*0.9, 9)
	} else {
		rate30 = 0.4 + 2.3*r.Float64()
	}
	rateOld := rate30 * (0.1 + 0.08*r.Float64())
	socialPerDay := math.Exp(r.NormFloat64()*0.7+math.Log(8)) / 30 // transfers and red packets
	dailyYuan := math.Exp(r.NormFloat64()*0.6 + math.Log(150))
	vol := 0.05 + 0.5*r.Float64()*r.Float64() // month-to-month spending volatility
	months := map[int]float64{}
	monthMult := func(t time.Time) float64 {
		y, m, _ := t.In(u.loc).Date()
		k := y*12 + int(m)
		f, ok := months[k]
		if !ok {
			f = math.Exp(r.NormFloat64()*vol - vol*vol/2)
			months[k] = f
		}
		return f
	}
	const dayShare = 0.775 // of uniform times, those kept: all by day, a tenth at night
	recent := t0.Add(-31 * 24 * time.Hour)
	for t := profAt; ; {
		rate := rateOld
		if !t.Before(recent) {
			rate = rate30
		}
		t = t.Add(time.Duration(r.ExpFloat64() / (rate / dayShare) * float64(24*time.Hour)))
		if !t.Before(end) {
			break
		}
		if t.In(u.loc).Hour() < 6 && r.Float64() < 0.9 {
			continue
		}
		t := t.Truncate(time.Millisecond)
		var scene events.Scene
		var fen int64
		social := min(socialPerDay/rate, 0.6) // the share of transfers and red packets
		if r.Float64() < social {
			if r.IntN(2) == 0 {
				scene, fen = events.SceneRedPacket, s.amount(events.SceneRedPacket, false)
			} else {
				scene, fen = events.SceneTransfer, wholeYuan(r, logUniform(r, 10, 3_000))
			}
		} else {
			scene = spendScenes[pickWeighted(r, spendSceneWeights)]
			mean := dailyYuan / (rate * (1 - social)) * monthMult(t)
			fen = wholeYuan(r, mean*math.Exp(r.NormFloat64()-0.5)) // log-normal, that mean
		}
		e := s.event(events.TypePayment, u, t)
		e.Payment = s.paymentData(u, scene, fen, 0, 0.01, 0.005)
		add(t, s.cfg.Topics.Payments, e)
	}

	// Logins: on a share of the days (one, sometimes two), by day.
	loginP := 0.5 + 0.45*r.Float64()
	if r.Float64() >= histLoginShare {
		loginP = 0.05 + 0.22*r.Float64()
	}
	for day := end; day.After(profAt); day = day.Add(-24 * time.Hour) {
		p := loginP
		if day.Before(recent) {
			p *= 0.7 // less often before the last month
		}
		if r.Float64() >= p {
			continue
		}
		for k := 0; k == 0 || (k == 1 && r.Float64() < 0.1); k++ {
			t := day.Add(-time.Duration(r.Int64N(int64(24 * time.Hour))))
			if t.In(u.loc).Hour() < 6 && r.Float64() < 0.9 {
				t = t.Add(-8 * time.Hour) // the evening before
			}
			if !t.After(profAt) {
				continue
			}
			t = t.Truncate(time.Millisecond)
			e := s.event(events.TypeLogin, u, t)
			e.Login = s.loginData(u, 0.01, 0.01)
			add(t, s.cfg.Topics.Logins, e)
		}
	}

	out = s.historyBills(u, profAt, end, out)

	// The write order: by key, the profile first; stable, so a bill's two
	// events keep theirs.
	slices.SortStableFunc(out, func(a, b histItem) int { return cmp.Compare(a.key, b.key) })
	return out
}

// historyBills appends u's bills: a few in the past, repaid on time or
// late (once in a while more than 30 days late), and for a share of the
// users one still open (overdue more than 72 hours, or 25–70 hours) or
// falling due within hours of the start; open ones are paid, some of
// them, in the live traffic.
func (s *Simulator) historyBills(u *user, from, end time.Time, out []histItem) []histItem {
	r := s.rng
	t0 := s.t0
	bill := func(dueAt time.Time) (events.Event, *events.RepaymentDue) {
		s.bills++
		c := creditScenes[pickWeighted(r, creditSceneWeights)]
		stmt := dueAt.Add(-20 * 24 * time.Hour) // the statement, 20 days ahead
		if !stmt.After(from) {
			stmt = from.Add(time.Minute)
		}
		e := s.event(events.TypeRepaymentDue, u, stmt)
		d := &events.RepaymentDue{UserID: u.id, BillID: fmt.Sprintf("bill-%d-%d", s.cfg.Seed, s.bills),
			AmountFen: int64(math.Round(logUniform(r, 100, 6_000))) * 100, DueAt: dueAt, Pool: poolOf(r, c.scene)}
		e.Due = d
		return e, d
	}
	paid := func(d *events.RepaymentDue, at time.Time) events.Event {
		e := s.event(events.TypeRepaymentPaid, u, at)
		e.Paid = &events.RepaymentPaid{UserID: u.id, BillID: d.BillID, AmountFen: d.AmountFen}
		return e
	}
	add := func(key time.Time, e events.Event) {
		out = append(out, histItem{key: key.UnixNano(), topic: s.cfg.Topics.Repayments, e: e})
	}
	// live schedules a payment of d's whole amount about secs seconds into
	// the live traffic (counted in live events at the configured rate).
	live := func(d *events.RepaymentDue, secs float64) {
		heap.Push(&s.pending, &pendingPaid{at: uint64(max(secs, 0) * s.cfg.Rate), user: u, bill: d.BillID, amount: d.AmountFen})
	}

	// Bills of the past, due from 25 days into the window to 4 days ago.
	lo, hi := from.Add(25*24*time.Hour), t0.Add(-4*24*time.Hour)
	n := []int{0, 0, 0, 1, 1, 1, 2, 2, 2, 3}[r.IntN(10)]
	for range n {
		if !hi.After(lo) {
			break
		}
		dueAt := endOfDay(lo.Add(time.Duration(r.Int64N(int64(hi.Sub(lo))))), s.shang)
		e, d := bill(dueAt)
		stmt := e.Time
		late := time.Duration(0)
		if r.Float64() < 0.12 {
			switch x := r.Float64(); {
			case x < 0.70:
				late = time.Hour + time.Duration(r.Int64N(int64(71*time.Hour)))
			case x < 0.95:
				late = time.Duration(3+r.IntN(17)) * 24 * time.Hour
			default: // a serious default: more than 30 days late
				late = time.Duration(31+r.IntN(14)) * 24 * time.Hour
			}
			if !dueAt.Add(late).Before(end.Add(-time.Hour)) {
				late = 0
			}
		}
		if late == 0 {
			// Paid on time, between the statement and the due day. Written
			// before its due event (a prepayment, as upstreams may send
			// them): the bill never opens, so no overdue check can see it
			// open while its repayment waits.
			at := stmt.Add(time.Duration(r.Int64N(int64(dueAt.Sub(stmt)-time.Minute)) + 1)).Truncate(time.Millisecond)
			add(at, paid(d, at))
			add(at, e)
			continue
		}
		// Paid late: the due event right before the repayment, so that the
		// bill is open only between two neighbouring records and settles
		// as an overdue episode.
		at := dueAt.Add(late).Truncate(time.Millisecond)
		add(at, e)
		add(at, paid(d, at))
	}

	// One bill open at the start for some users.
	switch x := r.Float64(); {
	case x < histFrozenShare:
		// Due 4 to 12 days ago (local days): more than 72 h overdue.
		dueAt := endOfDay(t0.AddDate(0, 0, -(4+r.IntN(9))), s.shang)
		e, d := bill(dueAt)
		add(e.Time, e)
		if r.Float64() < 0.35 {
			live(d, 20+220*r.Float64()) // repaid soon: unfrozen
		}
	case x < histFrozenShare+histReminderShare:
		dueAt := t0.Add(-25*time.Hour - time.Duration(r.Int64N(int64(45*time.Hour)))).Truncate(time.Minute)
		e, d := bill(dueAt)
		add(e.Time, e)
		if r.Float64() < 0.5 {
			live(d, 10+290*r.Float64())
		}
	case x < histFrozenShare+histReminderShare+histUpcomingShare:
		ahead := 3*time.Minute + time.Duration(r.Int64N(int64(8*time.Hour-3*time.Minute)))
		dueAt := t0.Add(ahead).Truncate(time.Minute)
		e, d := bill(dueAt)
		add(e.Time, e)
		switch y := r.Float64(); {
		case y < 0.75: // on time
			live(d, ahead.Seconds()*(0.1+0.8*r.Float64()))
		case y < 0.90: // 10 minutes to 2 hours late
			live(d, ahead.Seconds()+600+6600*r.Float64())
		}
	}
	return out
}

// historyProfile draws the profile of a user with a history, as of at:
// pay scores around 550–800, most users verified with a card bound long
// before, a wealth balance for most, a partner-pool and a Weilidai limit
// for most, an alert threshold for some, a few serious defaults elsewhere
// and judicial or linked-account flags.
func (s *Simulator) historyProfile(u *user, at, t0 time.Time) events.Profile {
	r := s.rng
	u.profiled = true
	u.score = clamp(int(math.Round(r.NormFloat64()*60+700)), 520, 830)
	p := events.Profile{
		UserID:                u.id,
		RealNameVerified:      r.Float64() < 0.97,
		CardBankBlacklisted:   r.Float64() < 0.015,
		JudicialDefaulter:     r.Float64() < 0.01,
		LinkedAccountNegative: r.Float64() < 0.015,
	}
	p.IdentityComplete = p.RealNameVerified && r.Float64() < 0.96
	u.loc = s.shang
	switch x := r.Float64(); {
	case x < 0.03:
		p.Timezone = "Asia/Shanghai"
	case x < 0.04:
		p.Timezone = "Asia/Hong_Kong"
	case x < 0.05:
		p.Timezone = "Europe/London"
	}
	if p.Timezone != "" {
		if loc, err := time.LoadLocation(p.Timezone); err == nil {
			u.loc = loc
		}
	}
	switch x := r.Float64(); {
	case x < 0.02: // no card bound
	case x < 0.05: // bound shortly before the window: under 6 months at the end of it
		p.CardBoundSince = at.In(u.loc).AddDate(0, 0, -r.IntN(60)).Format(time.DateOnly)
	default: // long ago
		days := 90 + int(r.ExpFloat64()*800)
		p.CardBoundSince = at.In(u.loc).AddDate(0, 0, -min(days, 8*365)).Format(time.DateOnly)
	}
	if r.Float64() < 0.9 {
		// Log-normal, median 10,000 yuan, rounded to the fen.
		p.WealthBalanceFen = int64(math.Round(math.Exp(r.NormFloat64()*1.4 + math.Log(1_000_000))))
	}
	if r.Float64() < 0.05 {
		p.TransactionLimitFen = []int64{100_000, 300_000, 500_000, 1_000_000}[r.IntN(4)]
	}
	drawLimits(r, &p)
	if r.Float64() < 0.03 {
		// The latest serious default reported elsewhere: for half of them
		// within the 6 months before the end of the window.
		days := 100 + r.IntN(600)
		if r.IntN(2) == 0 {
			days = int(t0.Sub(at).Hours()/24) - 20 - r.IntN(60)
		}
		p.SeriousDefaultElsewhereOn = at.In(u.loc).AddDate(0, 0, -max(days, 0)).Format(time.DateOnly)
	}
	u.prof = p
	p.PayScore = u.score
	return p
}

// drawLimits sets the new optional profile fields of a first profile: a
// partner-pool limit for 80% of users, a Weilidai line for 70%, an alert
// threshold for 15%.
func drawLimits(r *rand.Rand, p *events.Profile) {
	if r.Float64() < 0.8 {
		p.PartnerLimitFen = []int64{500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000}[r.IntN(5)]
	}
	if r.Float64() < 0.7 {
		p.WeilidaiLimitFen = []int64{200_000, 500_000, 800_000, 1_000_000, 2_000_000}[r.IntN(5)]
	}
	if r.Float64() < 0.15 {
		p.AlertThresholdFen = []int64{50_000, 100_000, 200_000, 500_000}[r.IntN(4)]
	}
}

// endOfDay is 23:59:59 of t's day in loc.
func endOfDay(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 23, 59, 59, 0, loc)
}

// wholeYuan rounds an amount in yuan to the fen (at least 1 yuan), and to
// the whole yuan for most amounts of 100 yuan or more.
func wholeYuan(r *rand.Rand, yuan float64) int64 {
	yuan = max(yuan, 1)
	fen := int64(math.Round(yuan * 100))
	if yuan >= 100 && r.Float64() < 0.6 {
		fen = fen / 100 * 100
	}
	return fen
}
