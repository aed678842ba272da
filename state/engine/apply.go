package engine

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Config shapes the state kept per user. Windows are in days.
type Config struct {
	// DefaultZone is the zone of users whose profile names none.
	DefaultZone *time.Location
	// Days of daily payment counts kept (the activity window reads them).
	Days int
	// Months: full months of monthly counters kept besides the current one.
	Months int
	// GeoDays is how long a device or city counts as seen; GeoMax how many
	// devices and cities together are kept (the one seen longest ago goes).
	GeoDays, GeoMax int
	// Credit judges credit payments (installments ≥ 1); nil accepts every
	// one into the pay-score pool.
	Credit CreditCheck
	// ShadowCredit, when set, judges each credit payment again for a
	// candidate policy (fenqid -shadow-policy), on the same state: its
	// verdict goes in Outcome.Shadow and changes nothing.
	ShadowCredit CreditCheck
	// MaxAmountFen refuses a payment, bill or repayment above it (0: no
	// limit but the decoder's); MaxOpenBills refuses a bill falling due
	// while that many are open (0: MaxBills).
	MaxAmountFen int64
	MaxOpenBills int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.DefaultZone == nil:
		return fmt.Errorf("engine: DefaultZone is not set")
	case c.Days < 31 || c.Days > 400:
		return fmt.Errorf("engine: Days must be 31..400 (rules need 30 days), got %d", c.Days)
	case c.Months < 3 || c.Months > 36:
		return fmt.Errorf("engine: Months must be 3..36 (stability needs 3 full months), got %d", c.Months)
	case c.GeoDays < 1 || c.GeoDays > 400:
		return fmt.Errorf("engine: GeoDays must be 1..400, got %d", c.GeoDays)
	case c.GeoMax < 2 || c.GeoMax > 256:
		return fmt.Errorf("engine: GeoMax must be 2..256, got %d", c.GeoMax)
	case c.MaxAmountFen < 0:
		return fmt.Errorf("engine: MaxAmountFen must be ≥ 0, got %d", c.MaxAmountFen)
	case c.MaxOpenBills < 0 || c.MaxOpenBills > MaxBills:
		return fmt.Errorf("engine: MaxOpenBills must be 0..%d, got %d", MaxBills, c.MaxOpenBills)
	}
	return nil
}

// Item is one event to apply, with where it was read from. Topic is the
// index of the input topic (1..n, fixed per deployment); Offset -1 means
// the event has no Kafka offset (only the (source, id) check then guards
// against repeats). Epoch is the topic's offset generation (see Offset).
type Item struct {
	Event     *events.Event
	Topic     int
	Partition int
	Epoch     uint32
	Offset    int64
}

// Status says what Apply did with an event.
type Status int

const (
	// Applied: the event changed the user's state.
	Applied Status = iota
	// Redelivered: the event's offset was applied before (a consumer
	// restarted or rebalanced after writing state, before committing);
	// nothing changed, and its decisions were published before the state
	// was written.
	Redelivered
	// Duplicate: an event with the same (source, id) was applied before
	// (an upstream retry); nothing changed.
	Duplicate
	// Refused: the event cannot be kept within the state's bounds (see
	// Outcome.Err); nothing changed. The pipeline dead-letters it.
	Refused
)

func (s Status) String() string {
	switch s {
	case Applied:
		return "applied"
	case Redelivered:
		return "redelivered"
	case Duplicate:
		return "duplicate"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Outcome is what Apply tells of one event: the facts the rules read, as
// they were when the event was applied.
type Outcome struct {
	Status Status
	// Err says why an event was Refused.
	Err error
	// NewCity: a login from a city not among the user's logins of the last
	// GeoDays days, for a user with login history.
	NewCity bool
	// NewDevice: a login or payment from a device not seen in the last
	// GeoDays days, for a user with device history.
	NewDevice bool
	// Zone is the user's time zone before the event.
	Zone *time.Location
	// RecentPayments are the times of the user's latest payments before
	// this one (payments only; at most RecentPayments), newest first.
	RecentPayments []time.Time
	// LastOtherCityLogin is the latest login from another city at or
	// before the event's time (zero if none).
	LastOtherCityLogin time.Time
	// TransactionLimitFen is the user's own limit before the event (0: none),
	// AlertThresholdFen the user's alert threshold (0: none).
	TransactionLimitFen, AlertThresholdFen int64
	// Credit: a credit payment (installments ≥ 1), drawing on Pool; refused
	// with CreditRefused's reason codes when set (its principal is then not
	// outstanding).
	Credit        bool
	Pool          Pool
	PoolQuota     PoolQuota // the pool's quota before the payment
	CreditRefused []string
	// Shadow is Config.ShadowCredit's verdict on a credit payment (nil
	// without one).
	Shadow *CreditVerdict
	// Unfroze: this repayment settled the last bill that froze the user.
	Unfroze bool
	// BecameJudicialDefaulter / ClearedJudicialDefaulter: this profile
	// turned the judicial-defaulter flag on / off.
	BecameJudicialDefaulter, ClearedJudicialDefaulter bool
	// Unknown: a Redelivered event whose (source, id) is not among the
	// user's latest events: either one of more than DedupRing events of
	// the user in flight when a consumer stopped, or a new event at an
	// offset already passed — the topic was recreated or its offsets
	// reset without its epoch raised (fenqictl epoch).
	Unknown bool
	// RecomputeNow: the event changed what the user's quota is (an
	// operator's override set or cleared): the writer makes the user's
	// recompute due at once.
	RecomputeNow bool
}

// Fingerprint is the 48-bit FNV-1a of an event's (source, id): CloudEvents
// identifies an event by both. Collisions among a user's last few dozen
// events are out of reach (about 2^-38 for 32).
func Fingerprint(source, id string) uint64 {
	h := fnv.New64a()
	var n [binary.MaxVarintLen64]byte
	_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(source)))]) // (source, id) unambiguously
	_, _ = h.Write([]byte(source))
	_, _ = h.Write([]byte(id))
	return h.Sum64() >> 16
}

var zones sync.Map // name -> *time.Location

// LoadZone loads an IANA zone, once per name.
func LoadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("engine: unknown time zone %q: %w", name, err)
	}
	zones.Store(name, loc)
	return loc, nil
}

// ZoneOf is the user's zone: the default for none, and for a name this
// binary cannot load.
func (c Config) ZoneOf(s *State) *time.Location {
	if s.Zone == "" {
		return c.DefaultZone
	}
	loc, err := LoadZone(s.Zone)
	if err != nil {
		return c.DefaultZone
	}
	return loc
}

// LocalDay is the day number (days since 1970-01-01) of unix time t in loc.
func LocalDay(loc *time.Location, t int64) int32 {
	_, off := time.Unix(t, 0).In(loc).Zone()
	return int32(floorDiv(t+int64(off), 86400))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// civil is the calendar date of a day number.
func civil(day int32) (ym int32, dom int) {
	t := time.Unix(int64(day)*86400, 0).UTC()
	return int32(t.Year()*100 + int(t.Month())), t.Day()
}

func monthIndex(ym int32) int32 { return ym/100*12 + ym%100 - 1 }

// applier applies events to one user's state.
type applier struct {
	s     *State
	cfg   Config
	now   int64
	loc   *time.Location
	today int32
	curm  int32
}

// Apply applies a user's events, in their order, to s (changed in place)
// at wall-clock now, and returns one Outcome per item. Rev is not changed:
// the writer raises it. The clock only prunes what is past every window;
// what an event does depends on the state and the event.
func Apply(s *State, items []Item, cfg Config, now time.Time) []Outcome {
	a := &applier{s: s, cfg: cfg, now: now.Unix()}
	a.setZone()
	a.prune()
	out := make([]Outcome, len(items))
	for i, it := range items {
		out[i] = a.apply(it)
	}
	return out
}

func (a *applier) setZone() {
	a.loc = a.cfg.ZoneOf(a.s)
	a.today = LocalDay(a.loc, a.now)
	ym, _ := civil(a.today)
	a.curm = monthIndex(ym)
}

// prune drops, once per local day, what is past every window.
func (a *applier) prune() {
	s := a.s
	if s.PrunedDay >= a.today {
		return
	}
	s.PrunedDay = a.today
	s.Days = slices.DeleteFunc(s.Days, func(d Day) bool { return d.Day <= a.today-int32(a.cfg.Days) })
	s.Months = slices.DeleteFunc(s.Months, func(m Month) bool { return monthIndex(m.YM) < a.curm-int32(a.cfg.Months) })
	stale := func(p Place) bool { return p.LastDay <= a.today-int32(a.cfg.GeoDays) }
	s.Devices = slices.DeleteFunc(s.Devices, stale)
	s.Cities = slices.DeleteFunc(s.Cities, stale)
	for i := range s.Devices {
		a.trimLogins(&s.Devices[i])
	}
	s.Bills = slices.DeleteFunc(s.Bills, func(b Bill) bool {
		return b.Status != BillOpen && b.At < a.now-KeepBillDays*86400
	})
	s.Episodes = slices.DeleteFunc(s.Episodes, func(e Episode) bool { return e.SettledAt < a.now-OverdueHistoryDays*86400 })
	for len(s.Dedup) > DedupRing {
		s.Dedup = s.Dedup[1:]
	}
}

// status says whether an item is new, and finds its offset entry.
func (a *applier) status(it Item, fp uint64) (Status, int) {
	at := -1
	if it.Offset >= 0 {
		for i, o := range a.s.Offsets {
			if o.Topic == int32(it.Topic) && o.Partition == int32(it.Partition) {
				at = i
				if it.Epoch < o.Epoch || it.Epoch == o.Epoch && it.Offset <= o.Offset {
					return Redelivered, at
				}
				break
			}
		}
	}
	if slices.Contains(a.s.Dedup, fp) {
		return Duplicate, at
	}
	if p := it.Event.Paid; p != nil {
		if b := a.s.bill(p.BillID); b != nil && slices.Contains(b.Paid, fp) {
			return Duplicate, at
		}
	}
	return Applied, at
}

func (a *applier) apply(it Item) Outcome {
	s, e := a.s, it.Event
	o := Outcome{Zone: a.loc}
	if s.Profile != nil {
		o.TransactionLimitFen, o.AlertThresholdFen = s.Profile.TransactionLimitFen, s.Profile.AlertThresholdFen
	}
	ts := e.Time.Unix()
	o.LastOtherCityLogin = a.otherCityBefore(ts)
	fp := Fingerprint(e.Source, e.ID)
	var at int
	o.Status, at = a.status(it, fp)
	if o.Status == Redelivered {
		o.Unknown = !slices.Contains(s.Dedup, fp)
		return o
	}
	if o.Status == Applied {
		if err := a.change(e, fp, &o); err != nil {
			// Refused, and its offset kept: a redelivery is dead-lettered
			// once, not again.
			o = Outcome{Status: Refused, Err: err, Zone: o.Zone, TransactionLimitFen: o.TransactionLimitFen,
				AlertThresholdFen: o.AlertThresholdFen, LastOtherCityLogin: o.LastOtherCityLogin}
		}
	}
	if o.Status == Applied {
		s.Dedup = append(s.Dedup, fp)
		if len(s.Dedup) > DedupRing {
			s.Dedup = s.Dedup[len(s.Dedup)-DedupRing:]
		}
	}
	if it.Offset >= 0 {
		off := Offset{Topic: int32(it.Topic), Partition: int32(it.Partition), Epoch: it.Epoch, Offset: it.Offset}
		if at >= 0 {
			s.Offsets = slices.Delete(s.Offsets, at, at+1)
		}
		// most recently used last; the least recently used goes first
		s.Offsets = append(s.Offsets, off)
		if len(s.Offsets) > MaxOffsets {
			s.Offsets = s.Offsets[len(s.Offsets)-MaxOffsets:]
		}
	}
	return o
}

func (a *applier) otherCityBefore(ts int64) time.Time {
	for _, t := range a.s.OtherCity {
		if t <= ts {
			return time.Unix(t, 0)
		}
	}
	return time.Time{}
}

func checkLen(what, s string) error {
	if len(s) > MaxString {
		return fmt.Errorf("engine: %s is %d bytes long, more than the %d kept", what, len(s), MaxString)
	}
	return nil
}

// checkAmount refuses an amount above the policy's limit.
func (a *applier) checkAmount(field string, fen int64) error {
	if a.cfg.MaxAmountFen > 0 && fen > a.cfg.MaxAmountFen {
		return fmt.Errorf("engine: %s %d fen is above the policy's limits.max_amount_fen %d", field, fen, a.cfg.MaxAmountFen)
	}
	return nil
}

// change applies a new event. It checks every bound before changing
// anything, so a refused event leaves the state as it was.
func (a *applier) change(e *events.Event, fp uint64, o *Outcome) error {
	ts := e.Time.Unix()
	switch {
	case e.Payment != nil:
		p := e.Payment
		if err := errors.Join(a.checkAmount("amount_fen", p.AmountFen), checkLen("device_id", p.DeviceID)); err != nil {
			return err
		}
		if err := a.checkSpend(ts, p); err != nil {
			return err
		}
		if p.Installments >= 1 {
			// first, on the state before the payment; a refusal changes
			// nothing but the verdict
			if err := a.credit(ts, p, o); err != nil {
				return err
			}
		}
		o.RecentPayments = make([]time.Time, len(a.s.Payments))
		for i, t := range a.s.Payments {
			o.RecentPayments[i] = time.Unix(t, 0)
		}
		a.pay(ts, p)
		o.NewDevice = a.device(ts, p.DeviceID, false)
	case e.Login != nil:
		l := e.Login
		if err := checkLen("device_id", l.DeviceID); err != nil {
			return err
		}
		if err := checkLen("city", l.City); err != nil {
			return err
		}
		a.login(ts)
		o.NewDevice = a.device(ts, l.DeviceID, true)
		o.NewCity = a.city(ts, l.City)
	case e.Due != nil:
		if err := a.checkAmount("amount_fen", e.Due.AmountFen); err != nil {
			return err
		}
		return a.due(e.Due, ts)
	case e.Paid != nil:
		if err := errors.Join(a.checkAmount("amount_fen", e.Paid.AmountFen), checkLen("bill_id", e.Paid.BillID)); err != nil {
			return err
		}
		return a.paid(e.Paid, ts, fp, o)
	case e.Profile != nil:
		return a.profile(e.Profile, o)
	case e.Op != nil:
		return a.operator(e.Op, ts, o)
	default:
		return fmt.Errorf("engine: event %s of type %q has no data", e.ID, e.Type)
	}
	a.boundPlaces()
	return nil
}

func (a *applier) inDays(day int32) bool {
	return day > a.today-int32(a.cfg.Days) && day <= a.today+1
}

func (a *applier) month(day int32) (*Month, int) {
	ym, dom := civil(day)
	// past the window, or beyond next month (as days beyond tomorrow): an
	// event dated far ahead must not add a month per event without bound
	if mi := monthIndex(ym); mi < a.curm-int32(a.cfg.Months) || mi > a.curm+1 {
		return nil, 0
	}
	i, found := slices.BinarySearchFunc(a.s.Months, ym, func(m Month, ym int32) int { return int(m.YM - ym) })
	if !found {
		a.s.Months = slices.Insert(a.s.Months, i, Month{YM: ym})
	}
	return &a.s.Months[i], dom
}

// checkSpend refuses a payment that would overflow its month's spend: sums
// of fen are checked 64-bit integers, never wrapped (the policy's amount
// cap keeps real traffic far from the limit; this is the last guard).
func (a *applier) checkSpend(ts int64, p *events.Payment) error {
	if p.Scene.Class() != events.ClassSpend {
		return nil
	}
	ym, _ := civil(LocalDay(a.loc, ts))
	i, found := slices.BinarySearchFunc(a.s.Months, ym, func(m Month, ym int32) int { return int(m.YM - ym) })
	if !found {
		return nil
	}
	if _, ok := addFen(a.s.Months[i].SpendFen, p.AmountFen); !ok {
		return fmt.Errorf("engine: the month's spend %d fen plus %d fen overflows a 64-bit sum", a.s.Months[i].SpendFen, p.AmountFen)
	}
	return nil
}

// addFen adds two sums of fen, reporting false when the result would not
// fit in an int64 (or either is negative).
func addFen(x, y int64) (int64, bool) {
	if x < 0 || y < 0 || x > math.MaxInt64-y {
		return 0, false
	}
	return x + y, true
}

func (a *applier) pay(ts int64, p *events.Payment) {
	s := a.s
	// the payment times, newest first, kept in time order
	i, _ := slices.BinarySearchFunc(s.Payments, ts, func(t, ts int64) int { return cmp.Compare(ts, t) })
	s.Payments = slices.Insert(s.Payments, i, ts)
	if len(s.Payments) > RecentPayments {
		s.Payments = s.Payments[:RecentPayments]
	}
	day := LocalDay(a.loc, ts)
	if a.inDays(day) {
		j, found := slices.BinarySearchFunc(s.Days, day, func(d Day, day int32) int { return int(d.Day - day) })
		if !found {
			s.Days = slices.Insert(s.Days, j, Day{Day: day})
		}
		s.Days[j].Payments++
	}
	switch p.Scene.Class() {
	case events.ClassSpend:
		if m, _ := a.month(day); m != nil {
			m.SpendFen += p.AmountFen
		}
	case events.ClassSocial:
		if m, _ := a.month(day); m != nil {
			m.SocialN++
		}
	}
}

func (a *applier) login(ts int64) {
	day := LocalDay(a.loc, ts)
	if m, dom := a.month(day); m != nil {
		bit := uint32(1) << (dom - 1)
		if m.LoginMask&bit == 0 {
			m.LoginMask |= bit
			m.LoginDays++
		}
	}
}

func findPlace(ps []Place, name string) int {
	for i := range ps {
		if ps[i].Name == name {
			return i
		}
	}
	return -1
}

// seen records a place seen on day and says whether it is new: not seen
// in the GeoDays before, for a user with places of that kind.
func (a *applier) seen(list *[]Place, name string, day int32) (*Place, bool) {
	i := findPlace(*list, name)
	isNew := false
	if i < 0 {
		isNew = len(*list) > 0
		*list = append(*list, Place{Name: name, LastDay: day})
		i = len(*list) - 1
	} else {
		isNew = (*list)[i].LastDay <= day-int32(a.cfg.GeoDays)
	}
	p := &(*list)[i]
	p.LastDay = max(p.LastDay, day)
	return p, isNew
}

// device records a device seen at ts and says whether it is new.
func (a *applier) device(ts int64, id string, login bool) bool {
	if id == "" {
		return false
	}
	day := LocalDay(a.loc, ts)
	d, isNew := a.seen(&a.s.Devices, id, day)
	if login {
		a.countLogin(d, day)
	}
	return isNew
}

// firstBucket is the oldest login bucket kept: the one holding the first
// day of the GeoDays ending today.
func (a *applier) firstBucket() int32 {
	return LoginBucketOf(a.today - int32(a.cfg.GeoDays) + 1)
}

// countLogin adds a login on local day to a device's buckets.
func (a *applier) countLogin(d *Place, day int32) {
	b := LoginBucketOf(day)
	if b < a.firstBucket() || day > a.today+1 {
		return // older than every window that reads it, or dated ahead
	}
	switch {
	case len(d.Logins) == 0:
		d.LoginBucket, d.Logins = b, []int32{0}
	case b > d.LoginBucket:
		d.Logins = slices.Insert(d.Logins, 0, make([]int32, b-d.LoginBucket)...)
		d.LoginBucket = b
	}
	i := int(d.LoginBucket - b)
	for len(d.Logins) <= i {
		d.Logins = append(d.Logins, 0)
	}
	d.Logins[i]++
	a.trimLogins(d)
}

// trimLogins drops the buckets older than firstBucket and trailing empty
// ones.
func (a *applier) trimLogins(d *Place) {
	if keep := int(d.LoginBucket-a.firstBucket()) + 1; len(d.Logins) > keep {
		d.Logins = d.Logins[:max(keep, 0)]
	}
	for len(d.Logins) > 0 && d.Logins[len(d.Logins)-1] == 0 {
		d.Logins = d.Logins[:len(d.Logins)-1]
	}
	if len(d.Logins) == 0 {
		d.LoginBucket, d.Logins = 0, nil
	}
}

// city records a login's city and says whether it is another city: not
// among the logins of the GeoDays before, for a user with city history.
func (a *applier) city(ts int64, name string) bool {
	if name == "" {
		return false
	}
	_, other := a.seen(&a.s.Cities, name, LocalDay(a.loc, ts))
	if other {
		// newest first; a late login finds its place among them
		j, found := slices.BinarySearchFunc(a.s.OtherCity, ts, func(t, ts int64) int { return cmp.Compare(ts, t) })
		if !found {
			a.s.OtherCity = slices.Insert(a.s.OtherCity, j, ts)
			if len(a.s.OtherCity) > OtherCityLogins {
				a.s.OtherCity = a.s.OtherCity[:OtherCityLogins]
			}
		}
	}
	return other
}

// boundPlaces keeps at most GeoMax devices and cities: the one seen
// longest ago goes.
func (a *applier) boundPlaces() {
	for len(a.s.Devices)+len(a.s.Cities) > a.cfg.GeoMax {
		list, at := &a.s.Devices, -1
		var oldest int32
		for _, ps := range []*[]Place{&a.s.Devices, &a.s.Cities} {
			for i, p := range *ps {
				if at < 0 || p.LastDay < oldest {
					list, at, oldest = ps, i, p.LastDay
				}
			}
		}
		*list = slices.Delete(*list, at, at+1)
	}
}

// roomForBill makes room for one more bill, dropping the settled or
// prepaid bill kept longest; it fails when every bill kept is open.
func (a *applier) roomForBill(id string) error {
	if len(a.s.Bills) < MaxBills {
		return nil
	}
	at := -1
	for i, b := range a.s.Bills {
		if b.Status != BillOpen && (at < 0 || b.At < a.s.Bills[at].At) {
			at = i
		}
	}
	if at < 0 {
		return fmt.Errorf("engine: bill %q would be the user's %dth open bill; at most %d are kept", id, MaxBills+1, MaxBills)
	}
	a.s.Bills = slices.Delete(a.s.Bills, at, at+1)
	return nil
}

func (a *applier) due(d *events.RepaymentDue, ts int64) error {
	if err := checkLen("bill_id", d.BillID); err != nil {
		return err
	}
	due := d.DueAt.Unix()
	pool, ok := PoolNamed(d.Pool)
	if !ok {
		return fmt.Errorf("engine: bill %q: unknown quota pool %q", d.BillID, d.Pool)
	}
	b := a.s.bill(d.BillID)
	opens := b == nil || (b.Status == BillPrepaid && d.AmountFen > b.Amount)
	if limit := a.cfg.MaxOpenBills; limit > 0 && opens && a.openBills() >= limit {
		return fmt.Errorf("engine: bill %q would be the user's %dth open bill; the policy's limits.max_open_bills is %d", d.BillID, limit+1, limit)
	}
	switch {
	case b == nil:
		if err := a.roomForBill(d.BillID); err != nil {
			return err
		}
		a.s.Bills = append(a.s.Bills, Bill{ID: d.BillID, Status: BillOpen, Amount: d.AmountFen, DueAt: due, Pool: pool})
	case b.Status == BillSettled:
		// settled already: a re-send opens nothing
	case b.Status == BillPrepaid:
		// billing and payment systems upstream may send the two in either
		// order; what was paid ahead frees its pool's quota now
		a.repaid(pool, min(b.Amount, d.AmountFen))
		b.Pool = pool
		if left := d.AmountFen - b.Amount; left <= 0 {
			b.Status, b.Amount, b.At = BillSettled, 0, ts
		} else {
			b.Status, b.Amount, b.DueAt = BillOpen, left, due
		}
	default:
		// a re-send of an open bill keeps what was paid and its stage
		b.DueAt = due
	}
	return nil
}

func (a *applier) paid(p *events.RepaymentPaid, ts int64, fp uint64, o *Outcome) error {
	b := a.s.bill(p.BillID)
	if b == nil {
		if err := a.roomForBill(p.BillID); err != nil {
			return err
		}
		a.s.Bills = append(a.s.Bills, Bill{ID: p.BillID, Status: BillPrepaid, At: ts})
		b = &a.s.Bills[len(a.s.Bills)-1]
	}
	if b.Status == BillSettled {
		return nil // an overpayment or a re-send owes nothing
	}
	if _, ok := addFen(b.Amount, p.AmountFen); b.Status == BillPrepaid && !ok {
		return fmt.Errorf("engine: bill %s: %d fen paid ahead plus %d fen overflows a 64-bit sum", p.BillID, b.Amount, p.AmountFen)
	}
	b.Paid = append(b.Paid, fp)
	if len(b.Paid) > MaxBillPayments {
		b.Paid = b.Paid[len(b.Paid)-MaxBillPayments:]
	}
	if b.Status == BillPrepaid {
		b.Amount += p.AmountFen // checked above
		b.At = max(b.At, ts)
		return nil
	}
	a.repaid(b.Pool, min(p.AmountFen, b.Amount))
	b.Amount -= p.AmountFen
	if b.Amount > 0 {
		return nil
	}
	b.Status, b.Amount, b.At = BillSettled, 0, ts
	b.Froze = false
	// a bill not fully repaid by its due time, however late, is an episode
	if ts > b.DueAt {
		a.s.SettledEpisodes++
		a.s.Episodes = append(a.s.Episodes, Episode{DueAt: b.DueAt, SettledAt: ts})
		if len(a.s.Episodes) > MaxEpisodes {
			a.s.Episodes = a.s.Episodes[len(a.s.Episodes)-MaxEpisodes:]
		}
	}
	// unfreeze when no bill that froze the user is open any more
	if a.s.FrozenOverdue && !a.anyFreezingBill() {
		a.s.FrozenOverdue = false
		o.Unfroze = true
	}
	return nil
}

func (a *applier) openBills() int {
	n := 0
	for _, b := range a.s.Bills {
		if b.Status == BillOpen {
			n++
		}
	}
	return n
}

func (a *applier) anyFreezingBill() bool {
	for _, b := range a.s.Bills {
		if b.Status == BillOpen && b.Froze {
			return true
		}
	}
	return false
}

func (a *applier) profile(p *events.Profile, o *Outcome) error {
	if err := checkLen("timezone", p.Timezone); err != nil {
		return err
	}
	if err := checkLen("card_bound_since", p.CardBoundSince); err != nil {
		return err
	}
	if err := checkLen("serious_default_elsewhere_on", p.SeriousDefaultElsewhereOn); err != nil {
		return err
	}
	if p.Timezone != "" {
		if _, err := LoadZone(p.Timezone); err != nil {
			return err
		}
	}
	s := a.s
	switch {
	case p.JudicialDefaulter && !s.FrozenJudicial:
		o.BecameJudicialDefaulter = true
	case !p.JudicialDefaulter && s.FrozenJudicial:
		o.ClearedJudicialDefaulter = true
	}
	s.FrozenJudicial = p.JudicialDefaulter
	s.Profile = &Profile{
		PayScore: int32(p.PayScore), RealNameVerified: p.RealNameVerified, IdentityComplete: p.IdentityComplete,
		CardBankBlacklisted: p.CardBankBlacklisted, JudicialDefaulter: p.JudicialDefaulter,
		LinkedAccountNegative: p.LinkedAccountNegative, WealthBalanceFen: p.WealthBalanceFen,
		TransactionLimitFen: p.TransactionLimitFen, CardBoundSince: p.CardBoundSince,
		PartnerLimitFen: p.PartnerLimitFen, WeilidaiLimitFen: p.WeilidaiLimitFen,
		AlertThresholdFen: p.AlertThresholdFen, DefaultElsewhereOn: p.SeriousDefaultElsewhereOn,
	}
	if p.Timezone != s.Zone {
		s.Zone = p.Timezone
		a.setZone()
		// as the next Apply would: the new zone's today may be a later day,
		// so that a batch and its splits give the same state
		a.prune()
	}
	return nil
}
