package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/fenqi/fenqi/events"
)

// rec is one record to write to an input topic.
type rec struct {
	topic string
	key   string
	value []byte
}

// phase is a part of the workload written after the one before it has
// been processed (committed) whole.
type phase struct {
	name string
	recs []rec
}

// canary is a pair of records, each the only event of its user, written
// right after a fault ends: a large payment at night (an alert, published
// by the pipeline) and a bill overdue for 5
// days (a freeze, published by the overdue checks). Their decisions say
// that the pipeline, and the jobs, are working again.
type canary struct {
	recs      []rec
	payCause  string // the payment's event id
	billCause string // "bill:<id>"
}

// workload is the input of every run, fault-free or not.
type workload struct {
	base   time.Time
	users  []string // every user the comparison reads
	phases []phase
	// stages are the overdue stages each bill must reach before the last
	// phase (the repayments of overdue bills) is written: 4 a freeze, 2
	// the reminder of day 2.
	stages map[string]map[string]int
	// jobs are the causation ids ("bill:<id>") of the decisions the
	// overdue checks must publish, with their type.
	jobs     map[string]string
	canaries []canary
	stats    map[string]int
}

const source = "chaos"

var shanghai = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// genWorkload builds the workload of users users and canaries canaries
// from seed, with event times before base. Each user's events of a phase
// are on one topic, so that the order fenqid applies them in is the
// partition's, whatever the timing.
func genWorkload(seed uint64, users, canaries int, base time.Time) *workload {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &workload{base: base, stages: map[string]map[string]int{}, jobs: map[string]string{}, stats: map[string]int{}}
	n := 0
	id := func() string { n++; return fmt.Sprintf("ch-%d-%d", seed, n) }
	var profiles, logins, payments, repay, last []rec
	emit := func(dst *[]rec, topic string, e events.Event) {
		v, err := events.Marshal(e)
		if err != nil {
			panic(err)
		}
		*dst = append(*dst, rec{topic: topic, key: e.Subject, value: v})
		w.stats[e.Type]++
		// Upstream re-sends: the same record again (same source and id),
		// a few records later at most.
		if r.Float64() < 0.05 {
			*dst = append(*dst, rec{topic: topic, key: e.Subject, value: v})
			w.stats["re-sent"]++
		}
	}
	ev := func(typ, user string, t time.Time) events.Event {
		return events.Event{ID: id(), Type: typ, Source: source, Subject: user, Time: t.UTC().Truncate(time.Millisecond)}
	}
	cities := []string{"Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Xi'an", "Nanjing"}
	scenes := []events.Scene{events.SceneEcommerce, events.SceneEcommerce, events.SceneLocalLife, events.SceneOfflineRetail,
		events.SceneTransfer, events.SceneRedPacket, events.SceneBillPay, events.SceneEducation, events.SceneMedical, events.SceneWealth}
	// The latest Shanghai night (00:00-05:59) before base.
	loc := base.In(shanghai)
	night := time.Date(loc.Year(), loc.Month(), loc.Day(), 0, 0, 0, 0, shanghai)
	if night.Add(6 * time.Hour).After(base) {
		night = night.AddDate(0, 0, -1)
	}
	for i := range users {
		u := fmt.Sprintf("u%05d", i)
		w.users = append(w.users, u)
		home := r.IntN(len(cities))
		dev := []string{fmt.Sprintf("dev-%d-a", i), fmt.Sprintf("dev-%d-b", i)}

		// Phase 1: the credit profile, a few updated; some judicial
		// defaulters (a freeze), half of them cleared in the last phase.
		p := events.Profile{UserID: u, PayScore: 520 + r.IntN(300), RealNameVerified: r.Float64() < 0.95,
			CardBoundSince:   base.In(shanghai).AddDate(0, 0, -(30 + r.IntN(2000))).Format(time.DateOnly),
			WealthBalanceFen: int64(r.IntN(8_000_000)), CardBankBlacklisted: r.Float64() < 0.02,
			LinkedAccountNegative: r.Float64() < 0.02}
		p.IdentityComplete = p.RealNameVerified && r.Float64() < 0.9
		if r.Float64() < 0.05 {
			p.TransactionLimitFen = 300_000
		}
		if r.Float64() < 0.04 {
			p.Timezone = "Asia/Hong_Kong"
		}
		judicial := r.Float64() < 0.03
		p.JudicialDefaulter = judicial
		t0 := base.Add(-6*time.Hour - time.Duration(r.IntN(3600))*time.Second)
		e := ev(events.TypeProfile, u, t0)
		e.Profile = &p
		emit(&profiles, events.TopicProfiles, e)
		if r.Float64() < 0.1 {
			p2 := p
			p2.PayScore = min(850, p.PayScore+r.IntN(40))
			e := ev(events.TypeProfile, u, t0.Add(time.Minute))
			e.Profile = &p2
			emit(&profiles, events.TopicProfiles, e)
			p = p2
		}
		if judicial && r.Float64() < 0.5 {
			p3 := p
			p3.JudicialDefaulter = false
			e := ev(events.TypeProfile, u, base.Add(-time.Minute))
			e.Profile = &p3
			emit(&last, events.TopicProfiles, e)
			w.stats["judicial cleared"]++
		}

		// Phase 2: logins, some from another city.
		otherCity := r.Float64() < 0.06
		tl := base.Add(-5*time.Hour - time.Duration(r.IntN(3000))*time.Second)
		for k := range 1 + r.IntN(4) {
			city := cities[home]
			if otherCity && k > 0 {
				city = cities[(home+1+r.IntN(len(cities)-1))%len(cities)]
			}
			e := ev(events.TypeLogin, u, tl.Add(time.Duration(k)*time.Minute))
			e.Login = &events.Login{UserID: u, DeviceID: dev[min(k, 1)*r.IntN(2)], City: city,
				IP: fmt.Sprintf("10.%d.%d.%d", home, r.IntN(256), 1+r.IntN(250)), Auth: events.AuthPassword}
			emit(&logins, events.TopicLogins, e)
		}

		// Phase 3: payments: everyday ones, large ones at night or from a
		// new device, bursts (velocity), over a scene's limit or the
		// user's own.
		tp := base.Add(-4*time.Hour + time.Duration(r.IntN(3600))*time.Second)
		np := 3 + r.IntN(10)
		burst := r.Float64() < 0.03
		if burst {
			np = 12
		}
		for k := range np {
			sc := scenes[r.IntN(len(scenes))]
			amount := int64(500 + r.IntN(50_000))
			device, city := dev[0], cities[home]
			at := tp.Add(time.Duration(k) * time.Duration(5+r.IntN(900)) * time.Second)
			if burst {
				at = tp.Add(time.Duration(k) * 20 * time.Second)
			}
			switch x := r.Float64(); {
			case x < 0.03:
				at = night.Add(time.Duration(r.IntN(6*3600)) * time.Second)
				amount = 250_000 + int64(r.IntN(500_000))
			case x < 0.05:
				device = fmt.Sprintf("dev-%d-new%d", i, k)
				amount = 300_000
			case x < 0.07:
				sc, amount = events.SceneOfflineRetail, 600_000
			case x < 0.09 && p.TransactionLimitFen > 0:
				amount = p.TransactionLimitFen + 1
			case x < 0.12:
				sc, amount = events.SceneEducation, 800_000
			case x < 0.14 && otherCity:
				amount = 250_000
			}
			// No installments: a credit purchase is accepted or refused on
			// the quota available when it is processed, which depends on
			// when the user's last recompute ran (timing, not the stream).
			inst := 0
			e := ev(events.TypePayment, u, at)
			e.Payment = &events.Payment{UserID: u, AmountFen: amount, Currency: "CNY", Scene: sc,
				MerchantID: fmt.Sprintf("m-%s-%d", sc, r.IntN(50)), Installments: inst,
				DeviceID: device, City: city, Auth: events.AuthFingerprint}
			emit(&payments, events.TopicPayments, e)
		}
		if r.Float64() < 0.01 {
			// A malformed record: dead-lettered, the partition moves on.
			payments = append(payments, rec{topic: events.TopicPayments, key: u, value: []byte(`{"specversion":"1.0","id":"` + id() + `","type":"fenqi.payment.v1"`)})
			w.stats["malformed"]++
		}

		// Phase 4: bills. Phase 5 (last): the repayments of overdue bills,
		// written once every overdue bill has frozen its user (or had its
		// reminder), so that the freeze always comes first.
		for b := range r.IntN(4) {
			bill := fmt.Sprintf("b-%s-%d", u, b)
			amount := int64(10_000 + r.IntN(500_000))
			due := func(at time.Time) {
				e := ev(events.TypeRepaymentDue, u, base.Add(-3*time.Hour+time.Duration(b)*time.Minute))
				e.Due = &events.RepaymentDue{UserID: u, BillID: bill, AmountFen: amount, DueAt: at.UTC().Truncate(time.Second)}
				emit(&repay, events.TopicRepayments, e)
			}
			paid := func(dst *[]rec, fen int64, at time.Time) {
				e := ev(events.TypeRepaymentPaid, u, at)
				e.Paid = &events.RepaymentPaid{UserID: u, BillID: bill, AmountFen: fen}
				emit(dst, events.TopicRepayments, e)
			}
			stage := func(s int) {
				if w.stages[u] == nil {
					w.stages[u] = map[string]int{}
				}
				w.stages[u][bill] = s
			}
			switch x := r.Float64(); {
			case x < 0.40: // due later, paid in full
				due(base.AddDate(0, 0, 3+r.IntN(20)))
				paid(&repay, amount, base.Add(-2*time.Hour))
				w.stats["bill paid on time"]++
			case x < 0.50: // due later, paid in part
				due(base.AddDate(0, 0, 3+r.IntN(20)))
				paid(&repay, amount/3, base.Add(-2*time.Hour))
				w.stats["bill paid in part"]++
			case x < 0.58: // paid before its due event came, long due
				paid(&repay, amount, base.Add(-2*time.Hour))
				due(base.AddDate(0, 0, -5))
				w.stats["bill paid ahead"]++
			case x < 0.72: // overdue 5 days, never paid: a freeze
				due(base.AddDate(0, 0, -5).Add(-time.Duration(r.IntN(12*3600)) * time.Second))
				stage(4)
				w.jobs["bill:"+bill] = events.TypeDecisionFrozen
				w.stats["bill freezes"]++
			case x < 0.86: // overdue 5 days, paid after the freeze: an unfreeze
				due(base.AddDate(0, 0, -5).Add(-time.Duration(r.IntN(12*3600)) * time.Second))
				stage(4)
				w.jobs["bill:"+bill] = events.TypeDecisionFrozen
				paid(&last, amount, base.Add(-30*time.Second))
				w.stats["bill freezes, then paid"]++
			default: // overdue 2 days: the day-2 reminder, then paid
				due(base.AddDate(0, 0, -2).Add(-2 * time.Hour))
				stage(2)
				w.jobs["bill:"+bill] = events.TypeDecisionOverdue
				paid(&last, amount, base.Add(-30*time.Second))
				w.stats["bill reminded, then paid"]++
			}
		}
	}
	for i := range canaries {
		u, ub := fmt.Sprintf("c%04d", i), fmt.Sprintf("f%04d", i)
		w.users = append(w.users, u, ub)
		// A large payment late at night (an alert, whatever the user's
		// history), over offline retail's single-payment limit too.
		e := ev(events.TypePayment, u, night.Add(time.Hour+time.Duration(i)*time.Second))
		e.Payment = &events.Payment{UserID: u, AmountFen: 600_000, Currency: "CNY", Scene: events.SceneOfflineRetail,
			MerchantID: "m-canary", DeviceID: "dev-" + u, City: "Shanghai", Auth: events.AuthFingerprint}
		pv, err := events.Marshal(e)
		if err != nil {
			panic(err)
		}
		bill := "b-" + ub
		d := ev(events.TypeRepaymentDue, ub, base.Add(-time.Minute))
		d.Due = &events.RepaymentDue{UserID: ub, BillID: bill, AmountFen: 100_000, DueAt: base.AddDate(0, 0, -5).UTC().Truncate(time.Second)}
		dv, err := events.Marshal(d)
		if err != nil {
			panic(err)
		}
		w.jobs["bill:"+bill] = events.TypeDecisionFrozen
		w.canaries = append(w.canaries, canary{
			recs:     []rec{{topic: events.TopicPayments, key: u, value: pv}, {topic: events.TopicRepayments, key: ub, value: dv}},
			payCause: e.ID, billCause: "bill:" + bill,
		})
	}
	w.phases = []phase{{"profiles", profiles}, {"logins", logins}, {"payments", payments}, {"bills", repay}, {"repayments of overdue bills", last}}
	sort.Strings(w.users)
	return w
}

// size is the number of records of the workload, canaries included.
func (w *workload) size() int {
	n := 2 * len(w.canaries)
	for _, p := range w.phases {
		n += len(p.recs)
	}
	return n
}
