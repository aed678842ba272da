package simulator

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
)

// Defaults of a zero Config.
const (
	DefaultUsers          = 3000
	DefaultRate           = 200.0
	DefaultMalformedRatio = 0.001
	// DefaultHistoryDays is the history fenqid's -simulate asks for: about
	// a quarter, the window of the quota model (Config.HistoryDays; the
	// zero Config has none).
	DefaultHistoryDays = 90
	// MaxHistoryDays bounds Config.HistoryDays.
	MaxHistoryDays = 366

	DefaultPaymentsTopic   = events.TopicPayments
	DefaultLoginsTopic     = events.TopicLogins
	DefaultRepaymentsTopic = events.TopicRepayments
	DefaultProfilesTopic   = events.TopicProfiles
)

// Source is the CloudEvents source of every simulated event.
const Source = "/fenqi/simulator"

// Config configures a Simulator. The zero value is usable: every zero field
// takes its default.
type Config struct {
	// Users is the population size (DefaultUsers if <= 0). User ids are
	// "u000001" upwards.
	Users int
	// Rate is the number of events per second Run writes (DefaultRate if
	// <= 0). Next is not paced.
	Rate float64
	// Seed makes the traffic reproducible; event ids are "sim-<seed>-<n>",
	// so runs with different seeds never share an id.
	Seed int64
	// Topics are the input topics (Default*Topic for empty names).
	Topics struct{ Payments, Logins, Repayments, Profiles string }
	// Now is the clock giving event times (time.Now if nil).
	Now func() time.Time
	// MalformedRatio is the share of events made invalid on purpose
	// (DefaultMalformedRatio if 0; a negative value means none).
	MalformedRatio float64
	// MaxEvents stops Run after that many live events (0 = until ctx
	// ends); the history, when there is one, is written whole first and
	// is not counted.
	MaxEvents int

	// HistoryDays is the length of the back-dated history, in days
	// (at most MaxHistoryDays): 0 or less = none (the zero Config's
	// traffic is live from the first event); fenqid's -simulate uses
	// DefaultHistoryDays. With a history, the first events (of Next, and
	// of Run, unpaced) are, user by user, a credit profile at the start
	// of the window, then the pay-now payments, logins and bills of the
	// window, every time in the past (the newest a second before the
	// clock when the history started); then one refreshed profile per
	// such user at the current time, then the live traffic. History
	// events are never malformed. doc.go describes the shares.
	HistoryDays int
	// HistoryShare is the share of the users given a history, the
	// busiest first (users "u000001" upwards: the live traffic favours
	// low user numbers): 0 = all of them (1); values are clamped to
	// [0, 1] otherwise, a negative one meaning none.
	HistoryShare float64
	// AfterHistory, when set, is called by Run once the history is
	// written (h says how much, and how long it took), before the
	// refreshed profiles and the live traffic: it should return when the
	// consumer has applied the history (fenqid: when its pipeline has
	// processed h.Events more records), so that the quota recompute each
	// refreshed profile triggers sees the whole history. An error stops
	// Run with it. nil: Run waits h.Events / 40,000 seconds (1 s to 30 s),
	// a guess of how long a fenqid takes to apply them.
	AfterHistory func(ctx context.Context, h HistoryStats) error
}

// HistoryStats says what Run wrote of the back-dated history.
type HistoryStats struct {
	Users, Events int
	From, To      time.Time     // the window of the event times
	Took          time.Duration // generating and writing it (Run only)
}

// Writer is what Run writes to; kafka-go's *kafka.Writer satisfies it
// (configured without a Topic: each message carries its own).
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Simulator generates the traffic. It is not safe for concurrent use.
type Simulator struct {
	cfg     Config
	rng     *rand.Rand
	now     func() time.Time
	shang   *time.Location
	users   []*user
	n       uint64       // events generated so far
	live    uint64       // live events generated so far
	pending pendingQueue // scheduled in live events
	bills   uint64
	// payLater: the decoder takes installments = 1 (pay later).
	payLater bool

	// The history (history.go).
	histUsers   int       // users with a history: the first histUsers
	histNext    int       // the next of them whose history to generate
	refreshNext int       // the next of them whose profile to refresh
	t0          time.Time // the clock when the history started
	hist        historyBuf
	histStats   HistoryStats
}

type user struct {
	id      string
	home    int // index in cities
	devices []string
	// profile, once emitted
	profiled bool
	score    int
	loc      *time.Location
	prof     events.Profile
	// credit purchases not billed yet, oldest first
	credits []credit
}

// credit is a live credit purchase, waiting for its first bill.
type credit struct {
	amount  int64
	periods int
	pool    string
}

// maxCredits is how many unbilled credit purchases a user keeps.
const maxCredits = 8

// New returns a Simulator for cfg, with the defaults filled in.
func New(cfg Config) *Simulator {
	if cfg.Users <= 0 {
		cfg.Users = DefaultUsers
	}
	if cfg.Rate <= 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		cfg.Rate = DefaultRate
	}
	if cfg.MalformedRatio == 0 {
		cfg.MalformedRatio = DefaultMalformedRatio
	}
	if cfg.Topics.Payments == "" {
		cfg.Topics.Payments = DefaultPaymentsTopic
	}
	if cfg.Topics.Logins == "" {
		cfg.Topics.Logins = DefaultLoginsTopic
	}
	if cfg.Topics.Repayments == "" {
		cfg.Topics.Repayments = DefaultRepaymentsTopic
	}
	if cfg.Topics.Profiles == "" {
		cfg.Topics.Profiles = DefaultProfilesTopic
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	shang, err := time.LoadLocation("Asia/Shanghai")
	if err != nil { // cannot happen: events links time/tzdata
		shang = time.FixedZone("CST", 8*3600)
	}
	cfg.HistoryDays = clamp(cfg.HistoryDays, 0, MaxHistoryDays)
	switch {
	case cfg.HistoryShare == 0 || cfg.HistoryShare > 1:
		cfg.HistoryShare = 1
	case !(cfg.HistoryShare > 0): // negative, NaN
		cfg.HistoryShare = 0
	}
	seed := uint64(cfg.Seed)
	s := &Simulator{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:      now,
		shang:    shang,
		payLater: events.ValidInstallments(1),
	}
	s.users = make([]*user, cfg.Users)
	for i := range s.users {
		s.users[i] = s.newUser(i)
	}
	if cfg.HistoryDays > 0 {
		s.histUsers = int(math.Ceil(cfg.HistoryShare * float64(cfg.Users)))
	}
	return s
}

// History says what the back-dated history holds so far: all of it once
// Next has moved past it (Run fills in Took).
func (s *Simulator) History() HistoryStats { return s.histStats }

// InHistory reports whether Next's next event belongs to the back-dated
// history (the refreshed profiles after it do not).
func (s *Simulator) InHistory() bool { return s.stage() == stageHistory }

// Config returns the configuration in use, defaults filled in.
func (s *Simulator) Config() Config { return s.cfg }

func (s *Simulator) newUser(i int) *user {
	u := &user{id: fmt.Sprintf("u%06d", i+1), home: pickWeighted(s.rng, cityWeights)}
	nd := 1
	if s.rng.Float64() < 0.35 {
		nd = 2
	}
	for range nd {
		u.devices = append(u.devices, s.deviceID())
	}
	return u
}

func (s *Simulator) deviceID() string {
	return fmt.Sprintf("dev-%012x", s.rng.Uint64()&(1<<48-1))
}

// Next returns the next event: its topic, key (the user id) and value (a
// structured-mode CloudEvent). The sequence is the same for the same
// Config.
func (s *Simulator) Next() (topic string, key []byte, value []byte) {
	s.n++
	var e events.Event
	st := s.stage()
	switch st {
	case stageHistory:
		e, topic = s.nextHistory()
	case stageRefresh:
		e, topic = s.nextRefresh()
	default:
		s.live++
		e, topic = s.nextEvent(s.now())
	}
	e.ID = s.id() // the history's were drawn ahead
	value, err := events.Marshal(e)
	if err != nil {
		// Only a bug here can make a generated event unmarshalable.
		panic(fmt.Sprintf("simulator: marshal %s %s: %v", e.Type, e.ID, err))
	}
	if st == stageLive && s.cfg.MalformedRatio > 0 && s.rng.Float64() < s.cfg.MalformedRatio {
		value = s.malform(value)
	}
	return topic, []byte(e.Subject), value
}

func (s *Simulator) id() string { return fmt.Sprintf("sim-%d-%d", s.cfg.Seed, s.n) }

// Shares of fresh draws. Scheduled bill payments add to the repayments:
// with 90% of bills paid at least once (and half of the partial ones
// twice), a due share of 5.2 makes repayments about 10% of all events.
var kindWeights = []float64{
	kindPayment: 51.5, // pay now
	kindCredit:  3.5,  // credit purchases
	kindLogin:   35,
	kindDue:     5.2,
	kindProfile: 0.5, // updates of an existing profile
}

const (
	kindPayment = iota
	kindCredit
	kindLogin
	kindDue
	kindProfile
)

func (s *Simulator) nextEvent(now time.Time) (events.Event, string) {
	if len(s.pending) > 0 && s.pending[0].at <= s.live {
		p := heap.Pop(&s.pending).(*pendingPaid)
		return s.paid(now, p), s.cfg.Topics.Repayments
	}
	u := s.pickUser()
	if !u.profiled {
		return s.profile(now, u), s.cfg.Topics.Profiles
	}
	switch pickWeighted(s.rng, kindWeights) {
	case kindPayment:
		return s.payment(now, u), s.cfg.Topics.Payments
	case kindCredit:
		return s.creditPurchase(now, u), s.cfg.Topics.Payments
	case kindLogin:
		return s.login(now, u), s.cfg.Topics.Logins
	case kindDue:
		return s.due(now, u), s.cfg.Topics.Repayments
	default:
		return s.profile(now, u), s.cfg.Topics.Profiles
	}
}

// pickUser favours low user numbers: a few heavy users, a long tail.
func (s *Simulator) pickUser() *user {
	i := int(float64(len(s.users)) * math.Pow(s.rng.Float64(), 1.6))
	return s.users[min(i, len(s.users)-1)]
}

func (s *Simulator) event(typ string, u *user, t time.Time) events.Event {
	return events.Event{ID: s.id(), Type: typ, Source: Source, Subject: u.id, Time: t}
}

// DrawProfile draws a user's first credit profile, all but the pay score,
// with the distributions the simulator uses (the recompute benchmark
// populates its users with it too): real-name and identity checks, a card
// bound 1 month to 8 years before now in loc (none for 8%), a log-normal
// wealth balance, an own limit for 5%, a time zone other than the default
// for 5%.
func DrawProfile(r *rand.Rand, userID string, now time.Time, loc *time.Location) events.Profile {
	p := events.Profile{
		UserID:                userID,
		RealNameVerified:      r.Float64() < 0.95,
		CardBankBlacklisted:   r.Float64() < 0.02,
		JudicialDefaulter:     r.Float64() < 0.01,
		LinkedAccountNegative: r.Float64() < 0.02,
	}
	p.IdentityComplete = p.RealNameVerified && r.Float64() < 0.88
	if r.Float64() < 0.92 { // else no card bound
		// Bound 1 month to 8 years ago; about 15% under 6 months.
		days := 30 + int(r.ExpFloat64()*900)
		p.CardBoundSince = now.In(loc).AddDate(0, 0, -min(days, 8*365)).Format(time.DateOnly)
	}
	if r.Float64() < 0.85 {
		// Log-normal, median 8,000 yuan, rounded to the fen.
		p.WealthBalanceFen = int64(math.Round(math.Exp(r.NormFloat64()*1.5 + math.Log(800_000))))
	}
	if r.Float64() < 0.05 {
		p.TransactionLimitFen = []int64{100_000, 300_000, 500_000, 1_000_000}[r.IntN(4)]
	}
	switch x := r.Float64(); {
	case x < 0.03:
		p.Timezone = "Asia/Shanghai"
	case x < 0.04:
		p.Timezone = "Asia/Hong_Kong"
	case x < 0.05:
		p.Timezone = "Europe/London"
	}
	return p
}

func (s *Simulator) profile(now time.Time, u *user) events.Event {
	r := s.rng
	if !u.profiled {
		u.profiled = true
		u.score = clamp(int(math.Round(r.NormFloat64()*70+665)), 450, 820)
		p := DrawProfile(r, u.id, now, s.shang)
		drawLimits(r, &p)
		u.prof = p
		u.loc = s.shang
		if p.Timezone != "" {
			if loc, err := time.LoadLocation(p.Timezone); err == nil {
				u.loc = loc
			}
		}
	} else {
		// An update: the pay score drifts, the wealth balance moves.
		u.score = clamp(u.score+int(math.Round(r.NormFloat64()*15)), 450, 820)
		u.prof.WealthBalanceFen = max(0, int64(float64(u.prof.WealthBalanceFen)*(0.8+0.4*r.Float64())))
	}
	p := u.prof
	p.PayScore = u.score
	e := s.event(events.TypeProfile, u, now)
	e.Profile = &p
	return e
}

func (s *Simulator) payment(now time.Time, u *user) events.Event {
	r := s.rng
	scene := scenes[pickWeighted(r, sceneWeights)]
	night := r.Float64() < 0.03
	t := now
	if night {
		t = s.nightTime(now, u.loc)
	}
	e := s.event(events.TypePayment, u, t)
	e.Payment = s.paymentData(u, scene, s.amount(scene, night), 0, 0.02, 0.01)
	return e
}

// creditPurchase is a purchase on credit (installments ≥ 1: pay later when
// the decoder takes it, else 3 to 24 periods) in a spend scene or a bill
// payment, 100 to 30,000 yuan depending on the scene: a good share of a
// typical quota (up to 20,000 yuan for standard users), so that a few of
// them exhaust it and the next is refused. It is remembered for a bill
// to come (due).
func (s *Simulator) creditPurchase(now time.Time, u *user) events.Event {
	r := s.rng
	c := creditScenes[pickWeighted(r, creditSceneWeights)]
	yuan := logUniform(r, c.lo, c.hi)
	fen := int64(math.Round(yuan)) * 100
	if yuan >= 1_000 && r.IntN(2) == 0 {
		fen = fen / 10_000 * 10_000 // a round hundred yuan
	}
	fen = max(fen, 100)
	// Longer plans for larger amounts.
	weights := []float64{30, 25, 20, 15, 10} // 1, 3, 6, 12, 24 periods
	if yuan >= 5_000 {
		weights = []float64{10, 20, 25, 25, 20}
	}
	if !s.payLater {
		weights[0] = 0
	}
	periods := []int{1, 3, 6, 12, 24}[pickWeighted(r, weights)]
	e := s.event(events.TypePayment, u, now)
	e.Payment = s.paymentData(u, c.scene, fen, periods, 0.02, 0.01)
	u.credits = append(u.credits, credit{amount: fen, periods: periods, pool: poolOf(r, c.scene)})
	if len(u.credits) > maxCredits {
		u.credits = u.credits[1:]
	}
	return e
}

// paymentData is a payment's data from u's usual places: another city
// with probability otherCity, a new device with probability newDevice.
// Installments are confirmed biometrically; small offline payments are
// often password-free.
func (s *Simulator) paymentData(u *user, scene events.Scene, amount int64, inst int, otherCity, newDevice float64) *events.Payment {
	r := s.rng
	city, device := u.home, u.devices[0]
	if len(u.devices) > 1 && r.Float64() < 0.3 {
		device = u.devices[1]
	}
	if r.Float64() < otherCity {
		city = s.otherCity(u.home)
	}
	if r.Float64() < newDevice {
		device = s.deviceID()
	}
	auth := []events.Auth{events.AuthFingerprint, events.AuthFingerprint, events.AuthFace, events.AuthPassword}[r.IntN(4)]
	switch {
	case inst > 0 && auth == events.AuthPassword:
		auth = events.AuthFace // installments are confirmed biometrically
	case scene == events.SceneOfflineRetail && amount < 5_000 && r.Float64() < 0.5:
		auth = events.AuthNone // small password-free scan-to-pay
	}
	return &events.Payment{
		UserID:       u.id,
		AmountFen:    amount,
		Currency:     "CNY",
		Scene:        scene,
		MerchantID:   merchant(r, scene),
		Installments: inst,
		DeviceID:     device,
		City:         cities[city].name,
		Auth:         auth,
	}
}

// amount draws a payment amount in fen: mostly 5–500 yuan (log-uniform),
// some 500–2,000, a tail of 2,000–20,000 yuan; night payments are large
// more often, and scenes shift the mix.
func (s *Simulator) amount(scene events.Scene, night bool) int64 {
	r := s.rng
	large := 0.03
	if night {
		large = 0.35
	}
	var yuan float64
	switch scene {
	case events.SceneRedPacket:
		if r.Float64() < 0.5 {
			return []int64{666, 888, 1_000, 1_888, 5_200, 6_600, 8_800, 20_000}[r.IntN(8)]
		}
		yuan = logUniform(r, 1, 200)
		if night && r.Float64() < 0.3 { // a late-night "red packet" scam pattern
			yuan = logUniform(r, 2_000, 5_000)
		}
	case events.SceneEducation, events.SceneMedical:
		yuan = logUniform(r, 200, 20_000)
	default:
		switch x := r.Float64(); {
		case x < large:
			yuan = logUniform(r, 2_000, 20_000)
		case x < large+0.06:
			yuan = logUniform(r, 500, 2_000)
		default:
			yuan = logUniform(r, 5, 500)
		}
	}
	fen := int64(math.Round(yuan * 100))
	if yuan >= 100 && r.Float64() < 0.6 {
		fen = fen / 100 * 100 // whole yuan
	}
	return max(fen, 1)
}

// nightTime returns a time between 00:00 and 05:59:59 in loc, within the
// 24 hours before now, never after now: uniform over that 6-hour span.
func (s *Simulator) nightTime(now time.Time, loc *time.Location) time.Time {
	local := now.In(loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	t := midnight.Add(time.Duration(s.rng.Int64N(int64(6 * time.Hour))))
	if t.After(now) {
		t = t.AddDate(0, 0, -1) // yesterday, same clock time: still within 24h
	}
	return t
}

func (s *Simulator) login(now time.Time, u *user) events.Event {
	e := s.event(events.TypeLogin, u, now)
	e.Login = s.loginData(u, 0.02, 0.02)
	return e
}

// loginData is a login's data from u's usual places: another city with
// probability otherCity, a new device with probability newDevice.
func (s *Simulator) loginData(u *user, otherCity, newDevice float64) *events.Login {
	r := s.rng
	city, device := u.home, u.devices[0]
	if len(u.devices) > 1 && r.Float64() < 0.3 {
		device = u.devices[1]
	}
	if r.Float64() < otherCity {
		city = s.otherCity(u.home)
	}
	if r.Float64() < newDevice {
		device = s.deviceID()
	}
	c := cities[city]
	return &events.Login{
		UserID:   u.id,
		DeviceID: device,
		City:     c.name,
		IP:       fmt.Sprintf("%d.%d.%d.%d", c.ip[0], c.ip[1], r.IntN(256), 1+r.IntN(254)),
		Auth:     []events.Auth{events.AuthPassword, events.AuthPassword, events.AuthFace, events.AuthFingerprint}[r.IntN(4)],
	}
}

func (s *Simulator) otherCity(home int) int {
	c := s.rng.IntN(len(cities) - 1)
	if c >= home {
		c++
	}
	return c
}

// due emits a bill falling due and schedules what the user pays of it.
// Most bills of a user with live credit purchases are the first
// installment of the oldest (its amount over the periods plus about 1%
// fee, due in 3 to 30 days, on the purchase's pool); the others are
// bills of older purchases, on the pool of a random credit scene.
func (s *Simulator) due(now time.Time, u *user) events.Event {
	r := s.rng
	s.bills++
	bill := fmt.Sprintf("bill-%d-%d", s.cfg.Seed, s.bills)
	local := now.In(s.shang)
	endOfDay := time.Date(local.Year(), local.Month(), local.Day(), 23, 59, 59, 0, s.shang)
	var amount int64
	var dueAt time.Time
	var pool string
	if len(u.credits) > 0 && r.Float64() < 0.75 {
		c := u.credits[0]
		u.credits = u.credits[1:]
		amount = c.amount / int64(c.periods)
		if c.periods > 1 {
			amount += c.amount / 100 // the fee of a period, about 1%
		}
		amount = max(amount, 1)
		dueAt, pool = endOfDay.AddDate(0, 0, 3+r.IntN(28)), c.pool
	} else {
		amount = int64(math.Round(logUniform(r, 50, 5_000))) * 100
		// Statements come out ahead of the due date; a few bills arrive
		// late, already overdue by more than 3 days (the freeze shows at
		// once).
		switch x := r.Float64(); {
		case x < 0.05:
			dueAt = endOfDay.AddDate(0, 0, -(4 + r.IntN(10)))
		case x < 0.25:
			dueAt = endOfDay.AddDate(0, 0, -1)
		default:
			dueAt = endOfDay.AddDate(0, 0, r.IntN(10))
		}
		pool = poolOf(r, creditScenes[pickWeighted(r, creditSceneWeights)].scene)
	}
	e := s.event(events.TypeRepaymentDue, u, now)
	e.Due = &events.RepaymentDue{UserID: u.id, BillID: bill, AmountFen: amount, DueAt: dueAt, Pool: pool}

	// 80% paid in full, 10% partly (half of them pay the rest later),
	// 10% never. The payment comes 50–3000 events later (seconds at the
	// default rate).
	later := func() uint64 { return s.live + 50 + uint64(r.IntN(2950)) }
	switch x := r.Float64(); {
	case x < 0.80:
		heap.Push(&s.pending, &pendingPaid{at: later(), user: u, bill: bill, amount: amount})
	case x < 0.90 && amount >= 200:
		part := max(100, amount*int64(30+r.IntN(41))/100/100*100)
		at := later()
		heap.Push(&s.pending, &pendingPaid{at: at, user: u, bill: bill, amount: part})
		if r.Float64() < 0.5 && amount > part {
			heap.Push(&s.pending, &pendingPaid{at: at + 100 + uint64(r.IntN(3000)), user: u, bill: bill, amount: amount - part})
		}
	}
	return e
}

func (s *Simulator) paid(now time.Time, p *pendingPaid) events.Event {
	e := s.event(events.TypeRepaymentPaid, p.user, now)
	e.Paid = &events.RepaymentPaid{UserID: p.user.id, BillID: p.bill, AmountFen: p.amount}
	return e
}

// malform breaks a valid event value in one of several ways the decoder
// must refuse.
func (s *Simulator) malform(value []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(value, &m); err != nil {
		return value[:len(value)/2]
	}
	data, ok := m["data"].(map[string]any)
	if !ok {
		return value[:len(value)/2]
	}
	switch s.rng.IntN(8) {
	case 0:
		return value[:len(value)/2] // truncated JSON
	case 1:
		m["type"] = "fenqi.refund.v1" // unknown type
	case 2: // a value out of range
		switch {
		case data["amount_fen"] != nil:
			data["amount_fen"] = -100
		case data["pay_score"] != nil:
			data["pay_score"] = 9000
		default:
			data["ip"] = "999.1.1.1"
		}
	case 3: // a value of the wrong JSON type
		switch {
		case data["amount_fen"] != nil:
			data["amount_fen"] = "12.50"
		case data["pay_score"] != nil:
			data["pay_score"] = "high"
		default:
			data["ip"] = 42
		}
	case 4:
		m["time"] = "yesterday"
	case 5:
		delete(m, "subject")
	case 6:
		m["specversion"] = "0.3"
	default:
		m["data"] = "not an object"
	}
	out, err := json.Marshal(m)
	if err != nil {
		return value[:len(value)/2]
	}
	return out
}

// Run writes Next's events to w at cfg.Rate events per second, in small
// batches (one every 20 ms or so) carrying the content-type header of
// structured CloudEvents. It returns nil when ctx ends or after
// cfg.MaxEvents live events, and the error of a failed write otherwise.
// When writes fall more than a second behind the rate, the backlog is
// dropped rather than written in a burst.
//
// With a history (cfg.HistoryDays), Run first writes it as fast as w
// takes it, in batches of 2,000 (its records on the repayments topic
// stamped with the window's start: see historyStamp), then calls
// cfg.AfterHistory (or waits a little), then writes the refreshed
// profiles, then the live traffic.
func (s *Simulator) Run(ctx context.Context, w Writer) error {
	if w == nil {
		return ErrNoWriter
	}
	header := []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}
	if s.stage() != stageLive {
		if err := s.backfill(ctx, w, header); err != nil || ctx.Err() != nil {
			return err
		}
	}

	const tick = 20 * time.Millisecond
	maxBatch := max(1, int(s.cfg.Rate*tick.Seconds()*4))
	start := time.Now()
	var sent float64 // events accounted for since start
	t := time.NewTicker(tick)
	defer t.Stop()
	total := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due := time.Since(start).Seconds()*s.cfg.Rate - sent
		if due > s.cfg.Rate { // more than a second behind: drop it
			sent += due - s.cfg.Rate
			due = s.cfg.Rate
		}
		n := min(int(due), maxBatch)
		if s.cfg.MaxEvents > 0 {
			n = min(n, s.cfg.MaxEvents-total)
		}
		if n <= 0 {
			continue
		}
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			topic, key, value := s.Next()
			msgs[i] = kafka.Message{Topic: topic, Key: key, Value: value, Headers: header}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("simulator: write %d events (after %d): %w", n, total, err)
		}
		sent += float64(n)
		total += n
		if s.cfg.MaxEvents > 0 && total >= s.cfg.MaxEvents {
			return nil
		}
	}
}

// historyBatch is how many history events Run writes at a time.
const historyBatch = 2000

// historyStamp: Run stamps the history's records on the repayments topic
// (kafka.Message.Time, the record's CreateTime) with the start of the
// window, the others with the time they are written. fenqid judges
// overdue checks at the repayments topic's watermark, the timestamp of
// the first record not yet processed: stamped that early, the history's
// repayments hold every check back until they are applied. Stamped when
// written (seconds ago), they would let a check of a bill repaid late
// in the history fire between the bill's due event and its repayment,
// which follows it on the topic: a freeze for a bill already repaid.

// backfill writes the history unpaced, waits for it to be applied, then
// writes the refreshed profiles. A nil error with ctx done means stop.
func (s *Simulator) backfill(ctx context.Context, w Writer, header []kafka.Header) error {
	began := time.Now()
	write := func(st stage) error {
		for s.stage() == st {
			msgs := make([]kafka.Message, 0, historyBatch)
			for len(msgs) < historyBatch && s.stage() == st {
				topic, key, value := s.Next()
				m := kafka.Message{Topic: topic, Key: key, Value: value, Headers: header}
				if st == stageHistory && topic == s.cfg.Topics.Repayments {
					m.Time = s.histStats.From // see historyStamp
				}
				msgs = append(msgs, m)
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("simulator: write %d history events (after %d): %w", len(msgs), s.n-uint64(len(msgs)), err)
			}
		}
		return nil
	}
	if err := write(stageHistory); err != nil || ctx.Err() != nil {
		return err
	}
	s.histStats.Took = time.Since(began)
	if f := s.cfg.AfterHistory; f != nil {
		if err := f(ctx, s.histStats); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("simulator: after the history: %w", err)
		}
	} else {
		wait := min(max(time.Duration(s.histStats.Events)*time.Second/40_000, time.Second), 30*time.Second)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return write(stageRefresh)
}

// ErrNoWriter is returned by Run when w is nil.
var ErrNoWriter = errors.New("simulator: nil writer")

// pendingPaid is a bill payment scheduled at event number at.
type pendingPaid struct {
	at     uint64
	user   *user
	bill   string
	amount int64
}

// pendingQueue is a min-heap on at (ties: bill then amount, to stay
// deterministic).
type pendingQueue []*pendingPaid

func (q pendingQueue) Len() int { return len(q) }
func (q pendingQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	if q[i].bill != q[j].bill {
		return q[i].bill < q[j].bill
	}
	return q[i].amount < q[j].amount
}
func (q pendingQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pendingQueue) Push(x any)   { *q = append(*q, x.(*pendingPaid)) }
func (q *pendingQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}
