// Package engine is fenqi's state engine: the per-user state as one compact
// value, and the pure function that applies events to it.
//
// Apply is (state before, events, env) → (state after, one outcome per
// event). It does no I/O: package state reads the value from Redis, calls
// Apply and writes the result back with a compare-and-set on Rev, so the
// whole business of settling bills, unfreezing, places, counters and
// deduplication is tested here without a server (see apply_test.go).
//
// Every list in a State is bounded (see the limits below and
// Config.Validate); an event that would break a bound that cannot be kept
// by forgetting the oldest entry (an over-long string, one bill too many)
// is refused with an error, which the pipeline dead-letters.
package engine

// Limits of one user's state. Each is enforced by Apply and tested.
const (
	// MaxString is the most bytes of a device id, city, bill id, zone name
	// or override text kept; a longer one is refused. It equals the
	// decoder's cap (events.MaxIDBytes), so a valid event is never refused
	// here for a length: the decoder dead-letters it first, naming the field.
	MaxString = 128
	// MaxBills is the most bills kept (open, prepaid and recently
	// settled). Settled and prepaid bills are dropped oldest first to make
	// room; a due event when MaxBills bills are open is refused.
	MaxBills = 32
	// MaxBillPayments is how many repayment fingerprints a bill keeps, to
	// recognise an upstream duplicate of a repayment for the bill's life
	// (beyond the last DedupRing events).
	MaxBillPayments = 8
	// RecentPayments is how many payment times are kept for the velocity
	// rule (a rule of "N payments in a window" needs N−1).
	RecentPayments = 15
	// OtherCityLogins is how many logins from another city are kept: the
	// latest and the ones before it, so that a payment read late still
	// finds the one that preceded it.
	OtherCityLogins = 5
	// DedupRing is how many of the user's latest events' (source, id)
	// fingerprints are kept to recognise upstream duplicates.
	DedupRing = 32
	// MaxOffsets is how many (topic, partition) offsets are kept; the
	// least recently used is forgotten (a user seen on more than this many
	// partitions is then guarded by the dedup ring only).
	MaxOffsets = 16
	// MaxQuotaChecks is how many quota-check times are kept (30 days).
	MaxQuotaChecks = 16
	// MaxEpisodes is how many settled overdue episodes are listed one by
	// one (within OverdueHistoryDays); the lifetime count is kept apart.
	MaxEpisodes = 16
	// OverdueHistoryDays is how long a settled overdue episode is listed
	// after its settlement (the eligibility rule looks back 6 months, and a
	// bill overdue at any moment of them counts).
	OverdueHistoryDays = 200
	// LoginBucketDays is the width of a device's login counts (Place.Logins):
	// the device-security factor reads the logins of the last 90 days to
	// within LoginBucketDays days (the bucket holding the window's first day
	// counts whole: 90 to 94 days), so that a device costs a few bytes, not
	// one counter a day.
	LoginBucketDays = 5
	// KeepBillDays is how long a settled or prepaid bill is kept: a due
	// event re-sent after settlement must not open the bill again, and one
	// late by less than this still finds its prepayment.
	KeepBillDays = 90
	// Version is the first byte of every encoded State (2: the quota at
	// fixed width after Rev; 3: login counts by bucket, episodes with their
	// due and settlement times). Decode reads 2 as well.
	Version = 3
)

// State is one user's whole state: exactly what the rules, the credit
// model and the explanations read.
type State struct {
	// Rev counts the writes of this value; the compare-and-set checks it.
	Rev uint64
	// Zone is the user's IANA time zone from the profile ("" = default).
	Zone string
	// PrunedDay is the local day the lists were last pruned on.
	PrunedDay int32

	Days    []Day   // oldest first, within Config.Days
	Months  []Month // oldest first, within Config.Months full months
	Devices []Place // seen in the last Config.GeoDays days
	Cities  []Place

	// Payments are the latest payment times (Unix s), newest first.
	Payments []int64
	// OtherCity are the latest logins from another city (Unix s), newest first.
	OtherCity []int64
	// Dedup are the fingerprints of the latest events, oldest first.
	Dedup []uint64
	// Offsets are the last applied offsets per (topic, partition).
	Offsets []Offset

	Bills   []Bill
	Profile *Profile

	FrozenOverdue, FrozenJudicial bool
	// Known: the recompute schedule knows the user (set by its first
	// event; a job's write, such as a quota check, does not make it known).
	Known           bool
	SettledEpisodes int32
	Episodes        []Episode // oldest first

	HasQuota   bool
	QuotaFen   int64
	Recomputes int64
	CycleDone  int64 // Unix s of the due time of the last periodic recompute; 0 none

	Override    *Override
	QuotaChecks []int64 // Unix s, newest first

	// Outstanding is the principal of accepted credit purchases not yet
	// repaid, by line of credit (LineMain…; see Pool).
	Outstanding [NumLines]int64
	// Special is an operator's special temporary quota, nil when none.
	Special *Special
}

// Day is one local day's payments.
type Day struct {
	Day      int32 // days since 1970-01-01 in the user's zone
	Payments int32
}

// Month is one calendar month's counters.
type Month struct {
	YM        int32 // yyyymm
	SpendFen  int64 // consumption payments
	SocialN   int32 // transfers and red packets
	LoginDays int32 // distinct local days with a login
	LoginMask uint32
}

// Place is a device or city and the last local day it was seen.
type Place struct {
	Name    string
	LastDay int32
	// Devices only: Logins[i] counts the logins of bucket LoginBucket−i,
	// a bucket being LoginBucketDays local days (bucket = day ÷
	// LoginBucketDays, rounded down); newest first, within Config.GeoDays.
	LoginBucket int32
	Logins      []int32
}

// LoginBucketOf is the login bucket holding a local day (day ÷
// LoginBucketDays, rounded down).
func LoginBucketOf(day int32) int32 { return int32(floorDiv(int64(day), LoginBucketDays)) }

// LoginsSince counts the device's logins from the bucket holding local day
// first on.
func (p *Place) LoginsSince(first int32) int64 {
	from := LoginBucketOf(first)
	var n int64
	for i, c := range p.Logins {
		if p.LoginBucket-int32(i) < from {
			break
		}
		n += int64(c)
	}
	return n
}

// Offset is the last offset applied from one partition of one input topic.
type Offset struct {
	Topic, Partition int32
	// Epoch is the offsets' generation: raised (fenqictl epoch) when a
	// topic's offsets start over, so that lower offsets are new events.
	Epoch  uint32
	Offset int64
}

// BillStatus is where a bill stands.
type BillStatus uint8

const (
	// BillOpen: due and not fully repaid.
	BillOpen BillStatus = iota
	// BillPrepaid: repaid (Amount so far) before its due event arrived.
	BillPrepaid
	// BillSettled: fully repaid; kept KeepBillDays to ignore re-sends.
	BillSettled
)

// Bill is one bill.
type Bill struct {
	ID     string
	Status BillStatus
	// Amount is what remains to pay (open) or what was paid (prepaid).
	Amount int64
	DueAt  int64 // Unix s; open bills
	// Stage is how many overdue checks have fired: 1–3 the reminders,
	// 4 the freeze.
	Stage int8
	// Froze: this bill's overdue check froze the user.
	Froze bool
	// At is when it was settled or prepaid (Unix s, for KeepBillDays).
	At int64
	// Paid are the fingerprints of the repayments applied to it.
	Paid []uint64
	// Pool is the quota pool the bill's purchase drew on (its due event's
	// pool): its repayments free that pool's quota.
	Pool Pool
}

// Profile is the part of the credit profile the model reads.
type Profile struct {
	PayScore              int32
	RealNameVerified      bool
	IdentityComplete      bool
	CardBankBlacklisted   bool
	JudicialDefaulter     bool
	LinkedAccountNegative bool
	WealthBalanceFen      int64
	TransactionLimitFen   int64
	CardBoundSince        string // YYYY-MM-DD
	// The lines of the partner and Weilidai pools, the user's alert
	// threshold (0: none) and the latest serious default reported by
	// other institutions (YYYY-MM-DD, "" none).
	PartnerLimitFen, WeilidaiLimitFen, AlertThresholdFen int64
	DefaultElsewhereOn                                   string
}

// Episode is a settled overdue bill: one not fully repaid by its due time,
// however late (DOMAIN.md §1: minutes count).
type Episode struct {
	DueAt     int64 // Unix s
	SettledAt int64 // Unix s, after DueAt
}

// Override is an operator's fixed quota.
type Override struct {
	QuotaFen  int64
	Reason    string
	Operator  string
	ExpiresAt int64 // Unix s
}

// OpenBill returns the open bill with id, or nil.
func (s *State) OpenBill(id string) *Bill {
	if b := s.bill(id); b != nil && b.Status == BillOpen {
		return b
	}
	return nil
}

func (s *State) bill(id string) *Bill {
	for i := range s.Bills {
		if s.Bills[i].ID == id {
			return &s.Bills[i]
		}
	}
	return nil
}

// Clone returns a deep copy: Apply changes its state in place, and a
// caller that keeps the state before (to retry) works on a clone.
func (s *State) Clone() *State {
	c := *s
	c.Days = append([]Day(nil), s.Days...)
	c.Months = append([]Month(nil), s.Months...)
	c.Devices = append([]Place(nil), s.Devices...)
	for i := range c.Devices {
		c.Devices[i].Logins = append([]int32(nil), c.Devices[i].Logins...)
	}
	c.Cities = append([]Place(nil), s.Cities...)
	c.Payments = append([]int64(nil), s.Payments...)
	c.OtherCity = append([]int64(nil), s.OtherCity...)
	c.Dedup = append([]uint64(nil), s.Dedup...)
	c.Offsets = append([]Offset(nil), s.Offsets...)
	c.Bills = append([]Bill(nil), s.Bills...)
	for i := range c.Bills {
		c.Bills[i].Paid = append([]uint64(nil), c.Bills[i].Paid...)
	}
	if s.Profile != nil {
		p := *s.Profile
		c.Profile = &p
	}
	c.Episodes = append([]Episode(nil), s.Episodes...)
	if s.Special != nil {
		sp := *s.Special
		c.Special = &sp
	}
	if s.Override != nil {
		o := *s.Override
		c.Override = &o
	}
	c.QuotaChecks = append([]int64(nil), s.QuotaChecks...)
	return &c
}
