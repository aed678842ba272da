package engine

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests load IANA zones whatever the host has

	"github.com/fenqi/fenqi/events"
)

// ---- helpers shared by the package's tests ----

var (
	shanghai = mustZone("Asia/Shanghai")
	newYork  = mustZone("America/New_York")
)

func mustZone(name string) *time.Location {
	loc, err := LoadZone(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func testConfig() Config {
	return Config{DefaultZone: shanghai, Days: 35, Months: 6, GeoDays: 90, GeoMax: 48}
}

// t0 is 2025-06-15 12:00 in Shanghai: the wall clock of most tests.
var t0 = time.Date(2025, 6, 15, 12, 0, 0, 0, shanghai)

const day = 24 * time.Hour

// dayOf is the Shanghai local day number of t.
func dayOf(t time.Time) int32 { return LocalDay(shanghai, t.Unix()) }

const testSource = "test://src"

func payEv(id string, at time.Time, fen int64, scene events.Scene, device string) *events.Event {
	return &events.Event{ID: id, Type: events.TypePayment, Source: testSource, Subject: "u1", Time: at,
		Payment: &events.Payment{UserID: "u1", AmountFen: fen, Currency: "CNY", Scene: scene, DeviceID: device}}
}

func loginEv(id string, at time.Time, device, city string) *events.Event {
	return &events.Event{ID: id, Type: events.TypeLogin, Source: testSource, Subject: "u1", Time: at,
		Login: &events.Login{UserID: "u1", DeviceID: device, City: city}}
}

func dueEv(id string, at time.Time, bill string, fen int64, dueAt time.Time) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentDue, Source: testSource, Subject: "u1", Time: at,
		Due: &events.RepaymentDue{UserID: "u1", BillID: bill, AmountFen: fen, DueAt: dueAt}}
}

func paidEv(id string, at time.Time, bill string, fen int64) *events.Event {
	return &events.Event{ID: id, Type: events.TypeRepaymentPaid, Source: testSource, Subject: "u1", Time: at,
		Paid: &events.RepaymentPaid{UserID: "u1", BillID: bill, AmountFen: fen}}
}

func profileEv(id string, at time.Time, p events.Profile) *events.Event {
	p.UserID = "u1"
	return &events.Event{ID: id, Type: events.TypeProfile, Source: testSource, Subject: "u1", Time: at, Profile: &p}
}

func withSource(e *events.Event, src string) *events.Event {
	c := *e
	c.Source = src
	return &c
}

// at is an item read from topic 1 partition 0 at offset off, epoch 0.
func at(e *events.Event, off int64) Item {
	return Item{Event: e, Topic: 1, Partition: 0, Offset: off}
}

// tp is an item read from (topic, partition) at offset off, epoch 0.
func tp(e *events.Event, topic, partition int, off int64) Item {
	return Item{Event: e, Topic: topic, Partition: partition, Offset: off}
}

// noOff is an item without a Kafka offset.
func noOff(e *events.Event) Item { return Item{Event: e, Topic: 1, Offset: -1} }

// seq numbers items on topic 1 partition 0 from offset first.
func seq(first int64, evs ...*events.Event) []Item {
	items := make([]Item, len(evs))
	for i, e := range evs {
		items[i] = at(e, first+int64(i))
	}
	return items
}

// apply1 applies one item at t0.
func apply1(t *testing.T, s *State, it Item) Outcome {
	t.Helper()
	return Apply(s, []Item{it}, testConfig(), t0)[0]
}

// applyOK applies items at now and fails the test unless each is Applied.
func applyOK(t *testing.T, s *State, now time.Time, items ...Item) []Outcome {
	t.Helper()
	out := Apply(s, items, testConfig(), now)
	if len(out) != len(items) {
		t.Fatalf("Apply returned %d outcomes for %d items", len(out), len(items))
	}
	for i, o := range out {
		if o.Status != Applied {
			t.Fatalf("item %d (%s %s): status %v (err %v), want applied", i, items[i].Event.Type, items[i].Event.ID, o.Status, o.Err)
		}
	}
	return out
}

// counter hands out fresh event ids and offsets.
type counter struct{ n int64 }

func (c *counter) id() string { c.n++; return fmt.Sprintf("e%d", c.n) }

func enc(s *State) []byte { return Encode(nil, s) }

func dayCount(s *State, d int32) int32 {
	for _, x := range s.Days {
		if x.Day == d {
			return x.Payments
		}
	}
	return 0
}

func monthOf(s *State, ym int32) *Month {
	for i := range s.Months {
		if s.Months[i].YM == ym {
			return &s.Months[i]
		}
	}
	return nil
}

func place(ps []Place, name string) *Place {
	if i := findPlace(ps, name); i >= 0 {
		return &ps[i]
	}
	return nil
}

func unixes(ts []time.Time) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.Unix()
	}
	return out
}

// ---- small pure helpers ----

func TestConfigValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"DefaultZone": func(c *Config) { c.DefaultZone = nil },
		"Days":        func(c *Config) { c.Days = 30 },
		"Days high":   func(c *Config) { c.Days = 401 },
		"Months":      func(c *Config) { c.Months = 2 },
		"Months high": func(c *Config) { c.Months = 37 },
		"GeoDays":     func(c *Config) { c.GeoDays = 0 },
		"GeoDays hi":  func(c *Config) { c.GeoDays = 401 },
		"GeoMax":      func(c *Config) { c.GeoMax = 1 },
		"GeoMax high": func(c *Config) { c.GeoMax = 257 },
	} {
		c := testConfig()
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Applied: "applied", Redelivered: "redelivered", Duplicate: "duplicate",
		Refused: "refused", Status(9): "status(9)"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", int(s), got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	f := Fingerprint("src", "id")
	if f != Fingerprint("src", "id") {
		t.Fatal("Fingerprint is not stable")
	}
	if f >= 1<<48 {
		t.Fatalf("fingerprint %x has more than 48 bits", f)
	}
	// the source and id are separated: moving a byte across changes it
	if Fingerprint("ab", "c") == Fingerprint("a", "bc") {
		t.Error(`("ab","c") and ("a","bc") share a fingerprint`)
	}
	if Fingerprint("a", "b") == Fingerprint("b", "a") {
		t.Error("source and id are interchangeable")
	}
	seen := map[uint64]bool{}
	for i := range 10000 {
		fp := Fingerprint(testSource, fmt.Sprint(i))
		if seen[fp] {
			t.Fatalf("collision at %d", i)
		}
		seen[fp] = true
	}
}

func TestLocalDay(t *testing.T) {
	if d := LocalDay(time.UTC, 0); d != 0 {
		t.Errorf("epoch: %d", d)
	}
	if d := LocalDay(time.UTC, -1); d != -1 {
		t.Errorf("one second before the epoch: day %d, want -1", d)
	}
	// 2025-06-14 16:30 UTC is 06-15 00:30 in Shanghai
	ts := time.Date(2025, 6, 14, 16, 30, 0, 0, time.UTC).Unix()
	utc, sh := LocalDay(time.UTC, ts), LocalDay(shanghai, ts)
	if sh != utc+1 {
		t.Errorf("Shanghai day %d, UTC day %d", sh, utc)
	}
	if ym, dom := civil(sh); ym != 202506 || dom != 15 {
		t.Errorf("civil(%d) = %d, %d", sh, ym, dom)
	}
	// year 2100: beyond 32-bit seconds
	ts = time.Date(2100, 3, 1, 0, 30, 0, 0, shanghai).Unix()
	if ym, dom := civil(LocalDay(shanghai, ts)); ym != 210003 || dom != 1 {
		t.Errorf("2100-03-01: civil %d %d", ym, dom)
	}
	if ym, dom := civil(-1); ym != 196912 || dom != 31 {
		t.Errorf("civil(-1) = %d %d", ym, dom)
	}
}

func TestZoneOf(t *testing.T) {
	cfg := testConfig()
	if z := cfg.ZoneOf(&State{}); z != shanghai {
		t.Errorf("no zone: %v", z)
	}
	if z := cfg.ZoneOf(&State{Zone: "America/New_York"}); z.String() != "America/New_York" {
		t.Errorf("New York: %v", z)
	}
	if z := cfg.ZoneOf(&State{Zone: "Nowhere/Atlantis"}); z != shanghai {
		t.Errorf("unknown zone: %v, want the default", z)
	}
	a, _ := LoadZone("Europe/Paris")
	b, _ := LoadZone("Europe/Paris")
	if a != b {
		t.Error("LoadZone does not cache")
	}
	if _, err := LoadZone("Nowhere/Atlantis"); err == nil {
		t.Error("LoadZone loaded an unknown zone")
	}
}

func TestCloneIsDeep(t *testing.T) {
	s := fullState()
	c := s.Clone()
	if !reflect.DeepEqual(s, c) {
		t.Fatal("clone differs")
	}
	before := enc(s)
	// change every list and pointer of the clone in place
	c.Days[0].Payments++
	c.Months[0].SpendFen++
	c.Devices[0].Logins[0]++
	c.Cities[0].LastDay++
	c.Payments[0]++
	c.OtherCity[0]++
	c.Dedup[0]++
	c.Offsets[0].Offset++
	c.Bills[0].Amount++
	c.Bills[0].Paid[0]++
	c.Profile.PayScore++
	c.Episodes[0].SettledAt++
	c.Override.QuotaFen++
	c.QuotaChecks[0]++
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("changing the clone changed the original")
	}
	// and the other way round
	c = s.Clone()
	cb := enc(c)
	s.Bills[1].Paid[0]++
	s.Profile.CardBoundSince = "x"
	s.Override.Reason = "y"
	if !bytes.Equal(cb, enc(c)) {
		t.Fatal("changing the original changed the clone")
	}
	if !bytes.Equal(enc(&State{}), enc((&State{}).Clone())) {
		t.Fatal("clone of the zero state encodes differently")
	}
}

// ---- status: offsets, epochs and fingerprints ----

func TestRedeliveredSamePartition(t *testing.T) {
	s := &State{}
	var c counter
	e1, e2 := payEv(c.id(), t0, 100, events.SceneEcommerce, ""), payEv(c.id(), t0, 100, events.SceneEcommerce, "")
	applyOK(t, s, t0, at(e1, 10), at(e2, 11))
	before := enc(s)
	out := Apply(s, []Item{at(e1, 10), at(e2, 11), at(payEv(c.id(), t0, 1, "", ""), 5)}, testConfig(), t0)
	for i, o := range out {
		if o.Status != Redelivered {
			t.Errorf("item %d: %v, want redelivered", i, o.Status)
		}
		if o.RecentPayments != nil || o.NewDevice || o.Err != nil {
			t.Errorf("item %d: redelivered outcome has facts: %+v", i, o)
		}
	}
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("redelivery changed the state")
	}
	if got := dayCount(s, dayOf(t0)); got != 2 {
		t.Fatalf("%d payments counted, want 2", got)
	}
	// the next offset is new
	if o := apply1(t, s, at(payEv(c.id(), t0, 1, "", ""), 12)); o.Status != Applied {
		t.Fatalf("offset 12: %v", o.Status)
	}
}

// A user whose events move to another partition of the same topic: each
// partition's offsets are kept apart, so a redelivery from the old
// partition is still recognised after more events than the dedup ring
// holds have been applied from the new one (the Lua script kept one
// partition per topic and applied it again).
func TestPartitionsTrackedSeparately(t *testing.T) {
	s := &State{}
	var c counter
	old := payEv(c.id(), t0, 100, events.SceneEcommerce, "")
	applyOK(t, s, t0, tp(old, 1, 3, 500))
	// a lower offset on another partition of the same topic is new
	var items []Item
	for i := range 40 {
		items = append(items, tp(payEv(c.id(), t0, 100, events.SceneEcommerce, ""), 1, 7, int64(i)))
	}
	applyOK(t, s, t0, items...)
	if got := dayCount(s, dayOf(t0)); got != 41 {
		t.Fatalf("%d payments counted, want 41", got)
	}
	if slices.Contains(s.Dedup, Fingerprint(old.Source, old.ID)) {
		t.Fatal("test setup: the old event is still in the dedup ring")
	}
	before := enc(s)
	if o := apply1(t, s, tp(old, 1, 3, 500)); o.Status != Redelivered {
		t.Fatalf("redelivery from the old partition after 40 events on the new one: %v", o.Status)
	}
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("redelivery changed the state")
	}
	// another topic with the same partition number is tracked apart too
	if o := apply1(t, s, tp(payEv(c.id(), t0, 1, "", ""), 2, 3, 0)); o.Status != Applied {
		t.Fatalf("topic 2 partition 3 offset 0: %v", o.Status)
	}
	if o := apply1(t, s, tp(payEv(c.id(), t0, 1, "", ""), 1, 3, 499)); o.Status != Redelivered {
		t.Fatalf("topic 1 partition 3 offset 499: %v", o.Status)
	}
}

func TestEpochs(t *testing.T) {
	s := &State{}
	var c counter
	it := func(epoch uint32, off int64) Item {
		return Item{Event: payEv(c.id(), t0, 1, "", ""), Topic: 1, Partition: 0, Epoch: epoch, Offset: off}
	}
	applyOK(t, s, t0, it(1, 1000))
	// the offsets of the topic started over: a higher epoch with a lower offset is new
	if o := apply1(t, s, it(2, 3)); o.Status != Applied {
		t.Fatalf("higher epoch, lower offset: %v", o.Status)
	}
	if got := s.Offsets; len(got) != 1 || got[0] != (Offset{Topic: 1, Partition: 0, Epoch: 2, Offset: 3}) {
		t.Fatalf("offsets %+v", got)
	}
	before := enc(s)
	// a late read of the old generation, however high its offset, is a redelivery
	for _, x := range []Item{it(1, 5000), it(0, 1<<40), it(2, 3), it(2, 0)} {
		if o := apply1(t, s, x); o.Status != Redelivered {
			t.Fatalf("epoch %d offset %d: %v, want redelivered", x.Epoch, x.Offset, o.Status)
		}
	}
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("a redelivery changed the state")
	}
	if o := apply1(t, s, it(2, 4)); o.Status != Applied {
		t.Fatalf("epoch 2 offset 4: %v", o.Status)
	}
	if got := dayCount(s, dayOf(t0)); got != 3 {
		t.Fatalf("%d payments counted, want 3", got)
	}
}

func TestNoOffsetOnlyDedup(t *testing.T) {
	s := &State{}
	var c counter
	e := payEv(c.id(), t0, 100, events.SceneEcommerce, "")
	applyOK(t, s, t0, at(payEv(c.id(), t0, 1, "", ""), 7))
	offs := slices.Clone(s.Offsets)
	if o := apply1(t, s, noOff(e)); o.Status != Applied {
		t.Fatalf("first: %v", o.Status)
	}
	if !reflect.DeepEqual(offs, s.Offsets) {
		t.Fatalf("an item without an offset changed the offsets: %+v", s.Offsets)
	}
	before := enc(s)
	if o := apply1(t, s, noOff(e)); o.Status != Duplicate {
		t.Fatalf("again: %v, want duplicate", o.Status)
	}
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("a duplicate without offset changed the state")
	}
	// an offset-less item with a new id is applied even though offset 7 was seen
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", ""))); o.Status != Applied {
		t.Fatalf("new id: %v", o.Status)
	}
	// Offset -1 is not "an offset below 7": the topic's entry plays no part
	if got := dayCount(s, dayOf(t0)); got != 3 {
		t.Fatalf("%d payments counted, want 3", got)
	}
}

func TestSameIDOtherSource(t *testing.T) {
	s := &State{}
	a := payEv("same-id", t0, 100, events.SceneEcommerce, "")
	b := withSource(a, "test://other")
	out := Apply(s, []Item{at(a, 1), at(b, 2)}, testConfig(), t0)
	if out[0].Status != Applied || out[1].Status != Applied {
		t.Fatalf("statuses %v %v, want both applied", out[0].Status, out[1].Status)
	}
	if got := dayCount(s, dayOf(t0)); got != 2 {
		t.Fatalf("%d payments counted, want 2", got)
	}
	if m := monthOf(s, 202506); m == nil || m.SpendFen != 200 {
		t.Fatalf("month %+v, want 200 fen spent", m)
	}
}

func TestDuplicateRecordsOffset(t *testing.T) {
	s := &State{}
	e := payEv("p1", t0, 100, events.SceneEcommerce, "")
	applyOK(t, s, t0, tp(e, 1, 0, 1))
	// an upstream retry of the same event, at a later offset
	o := apply1(t, s, tp(e, 1, 0, 9))
	if o.Status != Duplicate {
		t.Fatalf("status %v, want duplicate", o.Status)
	}
	if o.Zone != shanghai {
		t.Errorf("duplicate outcome zone %v", o.Zone)
	}
	if got := s.Offsets; len(got) != 1 || got[0].Offset != 9 {
		t.Fatalf("offsets %+v: the duplicate's offset 9 is not recorded", got)
	}
	if got := dayCount(s, dayOf(t0)); got != 1 {
		t.Fatalf("%d payments counted, want 1", got)
	}
	// reading it again at offset 9 is now a redelivery
	if o := apply1(t, s, tp(e, 1, 0, 9)); o.Status != Redelivered {
		t.Fatalf("offset 9 again: %v", o.Status)
	}
	// a duplicate on a partition not seen before records that partition
	if o := apply1(t, s, tp(e, 1, 5, 2)); o.Status != Duplicate {
		t.Fatalf("other partition: %v", o.Status)
	}
	if len(s.Offsets) != 2 || s.Offsets[1] != (Offset{Topic: 1, Partition: 5, Offset: 2}) {
		t.Fatalf("offsets %+v", s.Offsets)
	}
}

func TestDedupRing(t *testing.T) {
	s := &State{}
	var c counter
	first := payEv(c.id(), t0, 1, "", "")
	applyOK(t, s, t0, noOff(first))
	for range DedupRing - 1 {
		applyOK(t, s, t0, noOff(payEv(c.id(), t0, 1, "", "")))
	}
	if len(s.Dedup) != DedupRing {
		t.Fatalf("ring of %d", len(s.Dedup))
	}
	if o := apply1(t, s, noOff(first)); o.Status != Duplicate {
		t.Fatalf("within the ring: %v", o.Status)
	}
	applyOK(t, s, t0, noOff(payEv(c.id(), t0, 1, "", "")))
	if len(s.Dedup) != DedupRing {
		t.Fatalf("ring of %d, want %d", len(s.Dedup), DedupRing)
	}
	// oldest first: the first is forgotten, the latest is last
	if s.Dedup[len(s.Dedup)-1] != Fingerprint(testSource, fmt.Sprintf("e%d", c.n)) {
		t.Fatal("the latest fingerprint is not last")
	}
	if slices.Contains(s.Dedup, Fingerprint(first.Source, first.ID)) {
		t.Fatal("the oldest fingerprint was kept")
	}
	// a ring longer than DedupRing (an older writer) is cut by the daily prune
	s = &State{}
	for i := range 40 {
		s.Dedup = append(s.Dedup, uint64(i))
	}
	Apply(s, nil, testConfig(), t0)
	if len(s.Dedup) != DedupRing || s.Dedup[0] != 8 {
		t.Fatalf("pruned ring %v", s.Dedup)
	}
}

func TestMaxOffsetsLRU(t *testing.T) {
	s := &State{}
	var c counter
	for p := range MaxOffsets {
		applyOK(t, s, t0, tp(payEv(c.id(), t0, 1, "", ""), 1, p, 100))
	}
	// partition 0 used again: it becomes the most recently used
	applyOK(t, s, t0, tp(payEv(c.id(), t0, 1, "", ""), 1, 0, 101))
	if last := s.Offsets[len(s.Offsets)-1]; last.Partition != 0 || last.Offset != 101 {
		t.Fatalf("most recent %+v", last)
	}
	// a 17th partition forgets the least recently used: partition 1
	applyOK(t, s, t0, tp(payEv(c.id(), t0, 1, "", ""), 1, 99, 0))
	if len(s.Offsets) != MaxOffsets {
		t.Fatalf("%d offsets kept", len(s.Offsets))
	}
	for _, o := range s.Offsets {
		if o.Partition == 1 {
			t.Fatal("partition 1 (least recently used) was kept")
		}
	}
	// partition 0 is still guarded by its offset, partition 1 by the ring only
	if o := apply1(t, s, tp(payEv("never", t0, 1, "", ""), 1, 0, 101)); o.Status != Redelivered {
		t.Fatalf("partition 0: %v", o.Status)
	}
	if o := apply1(t, s, tp(payEv("new-on-1", t0, 1, "", ""), 1, 1, 50)); o.Status != Applied {
		t.Fatalf("partition 1, new event at a forgotten offset: %v", o.Status)
	}
	if o := apply1(t, s, tp(payEv("e2", t0, 1, "", ""), 1, 1, 100)); o.Status != Duplicate {
		t.Fatalf("partition 1, the event applied at offset 100 again: %v, want duplicate (ring)", o.Status)
	}
	// redelivered items do not reorder the offsets
	before := slices.Clone(s.Offsets)
	apply1(t, s, tp(payEv("x", t0, 1, "", ""), 1, 3, 0))
	if !reflect.DeepEqual(before, s.Offsets) {
		t.Fatal("a redelivery reordered the offsets")
	}
}

// A repayment's upstream duplicate is recognised by the bill's own
// fingerprints long after it left the dedup ring: the Lua script counted
// it twice, and could settle a bill still owed.
func TestRepaymentDuplicateBeyondRing(t *testing.T) {
	s := &State{}
	var c counter
	dueAt := t0.Add(-2 * day)
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0.Add(-10*day), "b1", 1000, dueAt)))
	p := paidEv("repay-1", t0.Add(-day), "b1", 600)
	applyOK(t, s, t0, noOff(p))
	for range DedupRing + 8 {
		applyOK(t, s, t0, noOff(payEv(c.id(), t0, 1, "", "")))
	}
	if slices.Contains(s.Dedup, Fingerprint(p.Source, p.ID)) {
		t.Fatal("test setup: the repayment is still in the ring")
	}
	before := enc(s)
	o := apply1(t, s, noOff(p))
	if o.Status != Duplicate {
		t.Fatalf("the repayment again: %v, want duplicate", o.Status)
	}
	if !bytes.Equal(before, enc(s)) {
		t.Fatal("the duplicate changed the state")
	}
	b := s.OpenBill("b1")
	if b == nil || b.Amount != 400 {
		t.Fatalf("bill %+v, want 400 still owed", b)
	}
	// the same id from another source is another repayment
	if o := apply1(t, s, noOff(withSource(p, "test://bank2"))); o.Status != Applied {
		t.Fatalf("other source: %v", o.Status)
	}
	if b := s.bill("b1"); b.Status != BillSettled {
		t.Fatalf("bill %+v, want settled", b)
	}
	// a prepaid bill keeps its repayments' fingerprints too
	pp := paidEv("pre-1", t0, "b2", 300)
	applyOK(t, s, t0, noOff(pp))
	for range DedupRing + 1 {
		applyOK(t, s, t0, noOff(payEv(c.id(), t0, 1, "", "")))
	}
	if o := apply1(t, s, noOff(pp)); o.Status != Duplicate {
		t.Fatalf("prepayment again: %v", o.Status)
	}
	if b := s.bill("b2"); b.Amount != 300 {
		t.Fatalf("prepaid %d, want 300", b.Amount)
	}
	// the settling repayment is recognised on the settled bill
	if o := apply1(t, s, noOff(withSource(p, "test://bank2"))); o.Status != Duplicate {
		t.Fatalf("settling repayment again: %v", o.Status)
	}
}

func TestBillPaidFingerprintsBounded(t *testing.T) {
	s := &State{}
	var c counter
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "b1", 1_000_000, t0.Add(day))))
	var ids []string
	for range MaxBillPayments + 3 {
		e := paidEv(c.id(), t0, "b1", 1)
		ids = append(ids, e.ID)
		applyOK(t, s, t0, noOff(e))
	}
	b := s.bill("b1")
	if len(b.Paid) != MaxBillPayments {
		t.Fatalf("%d fingerprints kept", len(b.Paid))
	}
	want := ids[len(ids)-MaxBillPayments:]
	for i, id := range want {
		if b.Paid[i] != Fingerprint(testSource, id) {
			t.Fatalf("Paid[%d] is not the fingerprint of %s", i, id)
		}
	}
}

// ---- payments ----

func TestRecentPayments(t *testing.T) {
	s := &State{}
	var c counter
	base := t0.Add(-10 * day)
	o := apply1(t, s, noOff(payEv(c.id(), base, 1, "", "")))
	if len(o.RecentPayments) != 0 {
		t.Fatalf("first payment saw %v", o.RecentPayments)
	}
	o = apply1(t, s, noOff(payEv(c.id(), base.Add(60*time.Second), 1, "", "")))
	if got := unixes(o.RecentPayments); !slices.Equal(got, []int64{base.Unix()}) {
		t.Fatalf("second payment saw %v", got)
	}
	// a payment read late takes its place in time order; it sees the
	// list as it was, later payments included
	o = apply1(t, s, noOff(payEv(c.id(), base.Add(30*time.Second), 1, "", "")))
	if got, want := unixes(o.RecentPayments), []int64{base.Unix() + 60, base.Unix()}; !slices.Equal(got, want) {
		t.Fatalf("late payment saw %v, want %v", got, want)
	}
	if want := []int64{base.Unix() + 60, base.Unix() + 30, base.Unix()}; !slices.Equal(s.Payments, want) {
		t.Fatalf("payments %v, want %v", s.Payments, want)
	}
	// only payments report payment times
	if o := apply1(t, s, noOff(loginEv(c.id(), base, "d", "c"))); o.RecentPayments != nil {
		t.Fatalf("a login reported payments %v", o.RecentPayments)
	}
	// the list is capped, newest first, whatever the arrival order
	rng := rand.New(rand.NewPCG(1, 1))
	all := slices.Clone(s.Payments)
	for range 40 {
		ts := base.Add(time.Duration(rng.IntN(86400)) * time.Second)
		before := slices.Clone(s.Payments)
		o := apply1(t, s, noOff(payEv(c.id(), ts, 1, "", "")))
		if got := unixes(o.RecentPayments); !slices.Equal(got, before) {
			t.Fatalf("payment saw %v, state before was %v", got, before)
		}
		all = append(all, ts.Unix())
		if len(o.RecentPayments) > RecentPayments {
			t.Fatalf("%d recent payments reported", len(o.RecentPayments))
		}
	}
	slices.Sort(all)
	slices.Reverse(all)
	if !slices.Equal(s.Payments, all[:RecentPayments]) {
		t.Fatalf("payments %v, want the latest %d of %v", s.Payments, RecentPayments, all)
	}
	// one older than every kept time is not kept
	before := slices.Clone(s.Payments)
	o = apply1(t, s, noOff(payEv(c.id(), base.Add(-day), 1, "", "")))
	if len(o.RecentPayments) != RecentPayments || !slices.Equal(before, s.Payments) {
		t.Fatalf("an old payment changed the list: %v", s.Payments)
	}
}

func TestDayCounts(t *testing.T) {
	s := &State{}
	var c counter
	today := dayOf(t0)
	cases := []struct {
		at      time.Time
		counted bool
	}{
		{t0, true},
		{t0.Add(-34 * day), true},  // the oldest day of the window
		{t0.Add(-35 * day), false}, // just outside Days
		{t0.Add(-100 * day), false},
		{t0.Add(day), true}, // tomorrow (a clock slightly ahead)
		{t0.Add(2 * day), false},
	}
	for _, k := range cases {
		apply1(t, s, noOff(payEv(c.id(), k.at, 1, events.SceneBillPay, "")))
	}
	for _, k := range cases {
		got := dayCount(s, dayOf(k.at))
		if k.counted && got != 1 || !k.counted && got != 0 {
			t.Errorf("day %d (today %+d): count %d, counted %v", dayOf(k.at), dayOf(k.at)-today, got, k.counted)
		}
	}
	if len(s.Days) != 3 {
		t.Fatalf("days %+v", s.Days)
	}
	if !slices.IsSortedFunc(s.Days, func(a, b Day) int { return int(a.Day - b.Day) }) {
		t.Fatalf("days not oldest first: %+v", s.Days)
	}
	// the payments list keeps every time whatever the window
	if len(s.Payments) != len(cases) {
		t.Fatalf("%d payment times", len(s.Payments))
	}
	// the local day is the user's: 00:30 in Shanghai is the day before in UTC
	s = &State{}
	late := time.Date(2025, 6, 15, 0, 30, 0, 0, shanghai)
	apply1(t, s, noOff(payEv(c.id(), late, 1, "", "")))
	want := int32(time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	if len(s.Days) != 1 || s.Days[0].Day != want {
		t.Fatalf("days %+v, want day %d", s.Days, want)
	}
	// the daily prune forgets days past the window
	s = &State{Days: []Day{{Day: today - 40, Payments: 3}, {Day: today - 35, Payments: 1}, {Day: today - 34, Payments: 2}}}
	Apply(s, nil, testConfig(), t0)
	if !reflect.DeepEqual(s.Days, []Day{{Day: today - 34, Payments: 2}}) {
		t.Fatalf("pruned days %+v", s.Days)
	}
	if s.PrunedDay != today {
		t.Fatalf("pruned day %d, want %d", s.PrunedDay, today)
	}
}

func TestMonthCounters(t *testing.T) {
	s := &State{}
	var c counter
	may := time.Date(2025, 5, 20, 12, 0, 0, 0, shanghai)
	applyOK(t, s, t0,
		noOff(payEv(c.id(), t0, 1000, events.SceneEcommerce, "")),
		noOff(payEv(c.id(), t0, 500, events.SceneMedical, "")),
		noOff(payEv(c.id(), t0, 7, "", "")), // no scene: consumption
		noOff(payEv(c.id(), t0, 9999, events.SceneTransfer, "")),
		noOff(payEv(c.id(), t0, 8888, events.SceneRedPacket, "")),
		noOff(payEv(c.id(), t0, 7777, events.SceneBillPay, "")),
		noOff(payEv(c.id(), t0, 6666, events.SceneWealth, "")),
		noOff(payEv(c.id(), t0, 5555, events.SceneDonation, "")),
		noOff(payEv(c.id(), may, 300, events.SceneLocalLife, "")),
	)
	jun := monthOf(s, 202506)
	if jun == nil || jun.SpendFen != 1507 || jun.SocialN != 2 || jun.LoginDays != 0 {
		t.Fatalf("June %+v, want 1507 fen spent and 2 social", jun)
	}
	if m := monthOf(s, 202505); m == nil || m.SpendFen != 300 || m.SocialN != 0 {
		t.Fatalf("May %+v", m)
	}
	// finance payments create no month
	s2 := &State{}
	applyOK(t, s2, t0, noOff(payEv(c.id(), may, 1, events.SceneBillPay, "")))
	if len(s2.Months) != 0 {
		t.Fatalf("finance payment made months %+v", s2.Months)
	}
	// the window: the current month and Months full months before it
	dec := time.Date(2024, 12, 31, 12, 0, 0, 0, shanghai)
	nov := time.Date(2024, 11, 30, 12, 0, 0, 0, shanghai)
	applyOK(t, s, t0, noOff(payEv(c.id(), dec, 11, "", "")), noOff(payEv(c.id(), nov, 13, "", "")))
	if m := monthOf(s, 202412); m == nil || m.SpendFen != 11 {
		t.Fatalf("December (6 months before) %+v", m)
	}
	if m := monthOf(s, 202411); m != nil {
		t.Fatalf("November (7 months before) kept: %+v", m)
	}
	if !slices.IsSortedFunc(s.Months, func(a, b Month) int { return int(a.YM - b.YM) }) {
		t.Fatalf("months not oldest first: %+v", s.Months)
	}
	// the daily prune forgets months past the window
	s = &State{Months: []Month{{YM: 202411, SpendFen: 1}, {YM: 202412, SpendFen: 2}, {YM: 202506, SpendFen: 3}}}
	Apply(s, nil, testConfig(), t0)
	if !reflect.DeepEqual(s.Months, []Month{{YM: 202412, SpendFen: 2}, {YM: 202506, SpendFen: 3}}) {
		t.Fatalf("pruned months %+v", s.Months)
	}
}

// Events dated in the future must not grow the months without bound: the
// list is decoded with a bound (and the package promises every list is
// bounded), so a stream of far-future event times would otherwise make the
// user's state unreadable.
func TestMonthsBoundedForFutureEvents(t *testing.T) {
	s := &State{}
	var c counter
	for i := range 1100 {
		ts := time.Date(2030, time.Month(1+i), 10, 12, 0, 0, 0, shanghai)
		apply1(t, s, noOff(payEv(c.id(), ts, 1, "", "")))
		apply1(t, s, noOff(loginEv(c.id(), ts, "", "")))
	}
	if n := len(s.Months); n > testConfig().Months+2 {
		t.Fatalf("%d months kept", n)
	}
	if _, err := Decode(enc(s)); err != nil {
		t.Fatalf("state no longer decodes: %v", err)
	}
	// a payment tomorrow in the next month still counts in that month
	s = &State{}
	eom := time.Date(2025, 6, 30, 12, 0, 0, 0, shanghai)
	next := time.Date(2025, 7, 1, 9, 0, 0, 0, shanghai)
	Apply(s, []Item{noOff(payEv(c.id(), next, 5, "", ""))}, testConfig(), eom)
	if m := monthOf(s, 202507); m == nil || m.SpendFen != 5 {
		t.Fatalf("next month %+v", s.Months)
	}
}

func TestLoginDays(t *testing.T) {
	s := &State{}
	var c counter
	d1 := time.Date(2025, 6, 1, 8, 0, 0, 0, shanghai)
	d30 := time.Date(2025, 6, 30, 23, 59, 0, 0, shanghai)
	m31 := time.Date(2025, 5, 31, 23, 0, 0, 0, shanghai)
	applyOK(t, s, t0,
		noOff(loginEv(c.id(), d1, "", "")),
		noOff(loginEv(c.id(), d1.Add(3*time.Hour), "", "")), // same day
		noOff(loginEv(c.id(), t0, "", "")),
		noOff(loginEv(c.id(), d30, "", "")),
		noOff(loginEv(c.id(), t0.Add(time.Minute), "", "")), // same day as t0
		noOff(loginEv(c.id(), m31, "", "")),
		noOff(loginEv(c.id(), d1.Add(-9*time.Hour), "", "")), // 05-31 23:00: May again
	)
	jun := monthOf(s, 202506)
	if jun == nil || jun.LoginDays != 3 || jun.LoginMask != 1<<0|1<<14|1<<29 {
		t.Fatalf("June %+v, want 3 days (1, 15, 30)", jun)
	}
	may := monthOf(s, 202505)
	if may == nil || may.LoginDays != 1 || may.LoginMask != 1<<30 {
		t.Fatalf("May %+v, want day 31 once", may)
	}
	// a login read again much later (new id) still counts its day once
	applyOK(t, s, t0, noOff(loginEv(c.id(), d1, "", "")))
	if jun := monthOf(s, 202506); jun.LoginDays != 3 {
		t.Fatalf("June %+v", jun)
	}
}

// ---- devices, cities and other-city logins ----

func TestNewDeviceAndCity(t *testing.T) {
	s := &State{}
	var c counter
	// no history: nothing is new
	o := apply1(t, s, noOff(loginEv(c.id(), t0, "devA", "Shanghai")))
	if o.NewDevice || o.NewCity {
		t.Fatalf("first login: %+v", o)
	}
	o = apply1(t, s, noOff(loginEv(c.id(), t0, "devA", "Shanghai")))
	if o.NewDevice || o.NewCity {
		t.Fatalf("same place: %+v", o)
	}
	o = apply1(t, s, noOff(loginEv(c.id(), t0, "devB", "Shanghai")))
	if !o.NewDevice || o.NewCity {
		t.Fatalf("new device: %+v", o)
	}
	o = apply1(t, s, noOff(loginEv(c.id(), t0, "devB", "Beijing")))
	if o.NewDevice || !o.NewCity {
		t.Fatalf("new city: %+v", o)
	}
	if !slices.Equal(s.OtherCity, []int64{t0.Unix()}) {
		t.Fatalf("other-city logins %v", s.OtherCity)
	}
	// payments: devices only (their city is not a login's)
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", "devC"))); !o.NewDevice || o.NewCity {
		t.Fatalf("payment from a new device: %+v", o)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", "devA"))); o.NewDevice {
		t.Fatalf("payment from a known device: %+v", o)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", ""))); o.NewDevice {
		t.Fatalf("payment without device: %+v", o)
	}
	if d := place(s.Devices, "devA"); d == nil || d.LoginsSince(dayOf(t0)) != 2 || d.LastDay != dayOf(t0) {
		t.Fatalf("devA %+v", d)
	}
	if d := place(s.Devices, "devC"); d == nil || len(d.Logins) != 0 {
		t.Fatalf("devC (payment only) %+v", d)
	}
	if len(s.Cities) != 2 {
		t.Fatalf("cities %+v", s.Cities)
	}
	// a first payment's device is no history for a login's city
	s = &State{}
	apply1(t, s, noOff(payEv(c.id(), t0, 1, "", "devA")))
	if o := apply1(t, s, noOff(loginEv(c.id(), t0, "devA", "Shanghai"))); o.NewCity || o.NewDevice {
		t.Fatalf("first login after a payment: %+v", o)
	}
	if o := apply1(t, s, noOff(loginEv(c.id(), t0, "", "Beijing"))); !o.NewCity || o.NewDevice {
		t.Fatalf("login without device from a new city: %+v", o)
	}
}

func TestPlacesStaleAfterGeoDays(t *testing.T) {
	today := dayOf(t0)
	cfg := testConfig()
	var c counter
	fresh := func() *State {
		return &State{PrunedDay: today, // pruned today: nothing is dropped
			Devices: []Place{{Name: "old", LastDay: today - 90}, {Name: "recent", LastDay: today - 89}},
			Cities:  []Place{{Name: "OldCity", LastDay: today - 90}, {Name: "RecentCity", LastDay: today - 89}}}
	}
	s := fresh()
	o := Apply(s, []Item{noOff(loginEv(c.id(), t0, "old", "OldCity"))}, cfg, t0)[0]
	if !o.NewDevice || !o.NewCity {
		t.Fatalf("places last seen GeoDays ago: %+v", o)
	}
	if d := place(s.Devices, "old"); d.LastDay != today || d.LoginsSince(today) != 1 {
		t.Fatalf("device %+v", d)
	}
	if !slices.Equal(s.OtherCity, []int64{t0.Unix()}) {
		t.Fatalf("other-city logins %v", s.OtherCity)
	}
	s = fresh()
	o = Apply(s, []Item{noOff(loginEv(c.id(), t0, "recent", "RecentCity"))}, cfg, t0)[0]
	if o.NewDevice || o.NewCity || len(s.OtherCity) != 0 {
		t.Fatalf("places last seen GeoDays-1 ago: %+v", o)
	}
	// staleness is measured from the event: a login read late, dated 10
	// days ago, finds "old" seen 80 days before it
	s = fresh()
	o = Apply(s, []Item{noOff(loginEv(c.id(), t0.Add(-10*day), "old", "OldCity"))}, cfg, t0)[0]
	if o.NewDevice || o.NewCity {
		t.Fatalf("late login: %+v", o)
	}
	// a late event does not move a place's last day back
	s = fresh()
	Apply(s, []Item{noOff(loginEv(c.id(), t0.Add(-200*day), "recent", ""))}, cfg, t0)
	if d := place(s.Devices, "recent"); d.LastDay != today-89 {
		t.Fatalf("device %+v", d)
	}
	// the daily prune drops the stale places; a user with other places
	// then finds the old one new
	s = fresh()
	s.PrunedDay = today - 1
	Apply(s, nil, cfg, t0)
	if len(s.Devices) != 1 || s.Devices[0].Name != "recent" || len(s.Cities) != 1 || s.Cities[0].Name != "RecentCity" {
		t.Fatalf("pruned places: %+v %+v", s.Devices, s.Cities)
	}
	o = Apply(s, []Item{noOff(loginEv(c.id(), t0, "old", "OldCity"))}, cfg, t0)[0]
	if !o.NewDevice || !o.NewCity {
		t.Fatalf("after prune: %+v", o)
	}
	// a user whose every place was pruned has no history: nothing is new
	s = &State{Devices: []Place{{Name: "old", LastDay: today - 100}}, Cities: []Place{{Name: "OldCity", LastDay: today - 100}}}
	o = Apply(s, []Item{noOff(loginEv(c.id(), t0, "other", "OtherCity"))}, cfg, t0)[0]
	if o.NewDevice || o.NewCity {
		t.Fatalf("history all past GeoDays: %+v", o)
	}
}

func TestGeoMax(t *testing.T) {
	cfg := testConfig()
	s := &State{}
	var c counter
	base := t0.Add(-80 * day)
	// one city seen longest ago, then devices on later days
	items := []Item{noOff(loginEv(c.id(), base, "", "OldCity"))}
	for i := range cfg.GeoMax - 1 {
		items = append(items, noOff(loginEv(c.id(), base.Add(time.Duration(i+1)*day), fmt.Sprintf("dev%02d", i), "")))
	}
	applyOK(t, s, t0, items...)
	if n := len(s.Devices) + len(s.Cities); n != cfg.GeoMax {
		t.Fatalf("%d places", n)
	}
	// one more: the oldest place, the city, goes
	applyOK(t, s, t0, noOff(loginEv(c.id(), t0, "devNew", "")))
	if len(s.Devices)+len(s.Cities) != cfg.GeoMax || len(s.Cities) != 0 {
		t.Fatalf("devices %d cities %+v", len(s.Devices), s.Cities)
	}
	// and again: the oldest device goes
	applyOK(t, s, t0, noOff(payEv(c.id(), t0, 1, "", "devNew2")))
	if len(s.Devices) != cfg.GeoMax || place(s.Devices, "dev00") != nil || place(s.Devices, "dev01") == nil {
		t.Fatalf("devices %+v", s.Devices)
	}
	// a login with a new device and a new city keeps the bound too
	applyOK(t, s, t0, noOff(loginEv(c.id(), t0, "devNew3", "NewCity")))
	if len(s.Devices)+len(s.Cities) != cfg.GeoMax || place(s.Devices, "dev01") != nil || place(s.Devices, "dev02") != nil {
		t.Fatalf("devices %d cities %d", len(s.Devices), len(s.Cities))
	}
	if place(s.Devices, "devNew3") == nil || place(s.Cities, "NewCity") == nil {
		t.Fatal("the newest places were dropped")
	}
}

func TestLastOtherCityLogin(t *testing.T) {
	s := &State{}
	var c counter
	t1, t2 := t0.Add(-3*time.Hour), t0.Add(-1*time.Hour)
	applyOK(t, s, t0, noOff(loginEv(c.id(), t0.Add(-5*day), "d", "Home")))
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", ""))); !o.LastOtherCityLogin.IsZero() {
		t.Fatalf("no other-city login yet: %v", o.LastOtherCityLogin)
	}
	o := apply1(t, s, noOff(loginEv(c.id(), t1, "d", "Away1")))
	if !o.NewCity || !o.LastOtherCityLogin.IsZero() {
		t.Fatalf("the other-city login itself: %+v (it reports the one before it)", o)
	}
	// a login back home is no other-city login
	applyOK(t, s, t0, noOff(loginEv(c.id(), t1.Add(time.Minute), "d", "Home")))
	o = apply1(t, s, noOff(payEv(c.id(), t1.Add(10*time.Minute), 1, "", "")))
	if !o.LastOtherCityLogin.Equal(t1) {
		t.Fatalf("payment after Away1: %v, want %v", o.LastOtherCityLogin, t1)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), t1.Add(-time.Second), 1, "", ""))); !o.LastOtherCityLogin.IsZero() {
		t.Fatalf("payment before Away1: %v", o.LastOtherCityLogin)
	}
	applyOK(t, s, t0, noOff(loginEv(c.id(), t2, "d", "Away2")))
	// a payment read after the later login still finds the one before it
	if o := apply1(t, s, noOff(payEv(c.id(), t2.Add(-time.Minute), 1, "", ""))); !o.LastOtherCityLogin.Equal(t1) {
		t.Fatalf("payment between the logins, read late: %v, want %v", o.LastOtherCityLogin, t1)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), t2, 1, "", ""))); !o.LastOtherCityLogin.Equal(t2) {
		t.Fatalf("payment at Away2's second: %v, want %v (at or before)", o.LastOtherCityLogin, t2)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), t0, 1, "", ""))); !o.LastOtherCityLogin.Equal(t2) {
		t.Fatalf("payment after Away2: %v", o.LastOtherCityLogin)
	}
	// a login read late takes its place in time order
	tm := t1.Add(30 * time.Minute)
	applyOK(t, s, t0, noOff(loginEv(c.id(), tm, "d", "Away3")))
	if want := []int64{t2.Unix(), tm.Unix(), t1.Unix()}; !slices.Equal(s.OtherCity, want) {
		t.Fatalf("other-city logins %v, want %v", s.OtherCity, want)
	}
	if o := apply1(t, s, noOff(payEv(c.id(), tm.Add(time.Minute), 1, "", ""))); !o.LastOtherCityLogin.Equal(tm) {
		t.Fatalf("payment after the late login: %v", o.LastOtherCityLogin)
	}
	// any event reports it, the Go port reads it for every event
	if o := apply1(t, s, noOff(paidEv(c.id(), t0, "bx", 1))); !o.LastOtherCityLogin.Equal(t2) {
		t.Fatalf("repayment: %v", o.LastOtherCityLogin)
	}
	// at most OtherCityLogins are kept, newest first
	for i := range 10 {
		applyOK(t, s, t0, noOff(loginEv(c.id(), t0.Add(time.Duration(i)*time.Minute), "d", fmt.Sprintf("City%d", i))))
	}
	if len(s.OtherCity) != OtherCityLogins || s.OtherCity[0] != t0.Add(9*time.Minute).Unix() ||
		!slices.IsSortedFunc(s.OtherCity, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("other-city logins %v", s.OtherCity)
	}
}

// ---- bills ----

func TestBillDuePaidSettled(t *testing.T) {
	s := &State{}
	var c counter
	// due at 07:00 in Shanghai: the day before in UTC
	dueAt := time.Date(2025, 6, 10, 7, 0, 0, 0, shanghai)
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt.Add(-5*day), "b1", 1000, dueAt)))
	b := s.OpenBill("b1")
	if b == nil || b.Amount != 1000 || b.DueAt != dueAt.Unix() || b.Stage != 0 || b.Froze {
		t.Fatalf("open bill %+v", b)
	}
	p1 := paidEv(c.id(), dueAt.Add(2*day), "b1", 400)
	o := apply1(t, s, noOff(p1))
	if o.Status != Applied || o.Unfroze {
		t.Fatalf("partial repayment %+v", o)
	}
	if b := s.OpenBill("b1"); b == nil || b.Amount != 600 || !slices.Equal(b.Paid, []uint64{Fingerprint(p1.Source, p1.ID)}) {
		t.Fatalf("after 400: %+v", b)
	}
	if s.SettledEpisodes != 0 || len(s.Episodes) != 0 {
		t.Fatal("an episode before settlement")
	}
	settledAt := dueAt.Add(3*day + time.Hour)
	applyOK(t, s, t0, noOff(paidEv(c.id(), settledAt, "b1", 600)))
	b = s.bill("b1")
	if b.Status != BillSettled || b.Amount != 0 || b.At != settledAt.Unix() || len(b.Paid) != 2 {
		t.Fatalf("settled bill %+v", b)
	}
	if s.OpenBill("b1") != nil {
		t.Fatal("OpenBill finds a settled bill")
	}
	if s.SettledEpisodes != 1 || !reflect.DeepEqual(s.Episodes, []Episode{{DueAt: dueAt.Unix(), SettledAt: settledAt.Unix()}}) {
		t.Fatalf("episodes %d %+v, want one due %v settled %v", s.SettledEpisodes, s.Episodes, dueAt, settledAt)
	}
	// a second late is an episode (DOMAIN.md §1: minutes count)
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt.Add(-5*day), "late1s", 100, dueAt)), noOff(paidEv(c.id(), dueAt.Add(time.Second), "late1s", 100)))
	if s.SettledEpisodes != 2 || len(s.Episodes) != 2 || s.Episodes[1].SettledAt-s.Episodes[1].DueAt != 1 {
		t.Fatalf("a bill paid a second late: episodes %d %+v", s.SettledEpisodes, s.Episodes)
	}
	// on time to the second, or early: no episode
	for i, paidAt := range []time.Time{dueAt, dueAt.Add(-3 * day)} {
		id := fmt.Sprintf("ok%d", i)
		applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt.Add(-5*day), id, 100, dueAt)), noOff(paidEv(c.id(), paidAt, id, 100)))
		if s.bill(id).Status != BillSettled {
			t.Fatalf("%s not settled", id)
		}
	}
	if s.SettledEpisodes != 2 || len(s.Episodes) != 2 {
		t.Fatalf("episodes %d %+v", s.SettledEpisodes, s.Episodes)
	}
	// an overpayment settles the bill
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt, "b9", 100, dueAt)), noOff(paidEv(c.id(), dueAt.Add(day), "b9", 150)))
	if b := s.bill("b9"); b.Status != BillSettled || b.Amount != 0 {
		t.Fatalf("overpaid %+v", b)
	}
	if s.SettledEpisodes != 3 || s.Episodes[2].SettledAt-s.Episodes[2].DueAt != 86400 {
		t.Fatalf("episodes %d %+v", s.SettledEpisodes, s.Episodes)
	}
}

func TestEpisodesBounded(t *testing.T) {
	s := &State{}
	var c counter
	dueAt := t0.Add(-20 * day)
	for i := range MaxEpisodes + 4 {
		id := fmt.Sprintf("b%d", i)
		applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt, id, 10, dueAt)),
			noOff(paidEv(c.id(), dueAt.Add(time.Duration(i+1)*day), id, 10)))
	}
	lateDays := func(e Episode) int64 { return (e.SettledAt - e.DueAt) / 86400 }
	if s.SettledEpisodes != MaxEpisodes+4 || len(s.Episodes) != MaxEpisodes || lateDays(s.Episodes[0]) != 5 ||
		lateDays(s.Episodes[MaxEpisodes-1]) != MaxEpisodes+4 {
		t.Fatalf("%d settled, episodes %+v", s.SettledEpisodes, s.Episodes)
	}
	// the daily prune forgets episodes settled more than OverdueHistoryDays
	// ago (the count stays), however long ago they fell due: a bill due 400
	// days ago and settled 199 days ago stays listed
	now := t0.Unix()
	const d = 86400
	s = &State{SettledEpisodes: 7, Episodes: []Episode{{DueAt: now - 500*d, SettledAt: now - OverdueHistoryDays*d - 1},
		{DueAt: now - 400*d, SettledAt: now - (OverdueHistoryDays-1)*d}}}
	Apply(s, nil, testConfig(), t0)
	if s.SettledEpisodes != 7 || !reflect.DeepEqual(s.Episodes, []Episode{{DueAt: now - 400*d, SettledAt: now - (OverdueHistoryDays-1)*d}}) {
		t.Fatalf("pruned episodes %d %+v", s.SettledEpisodes, s.Episodes)
	}
}

func TestBillPrepaid(t *testing.T) {
	s := &State{}
	var c counter
	dueAt := t0.Add(10 * day)
	p1, p2 := t0.Add(-2*day), t0.Add(-3*day) // the second read is older
	applyOK(t, s, t0, noOff(paidEv(c.id(), p1, "b1", 300)), noOff(paidEv(c.id(), p2, "b1", 200)))
	b := s.bill("b1")
	if b == nil || b.Status != BillPrepaid || b.Amount != 500 || b.At != p1.Unix() || len(b.Paid) != 2 {
		t.Fatalf("prepaid %+v", b)
	}
	if s.OpenBill("b1") != nil {
		t.Fatal("OpenBill finds a prepaid bill")
	}
	// the due event for what was paid settles it, at the due event's time
	dueRead := t0.Add(-time.Hour)
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueRead, "b1", 500, dueAt)))
	if b := s.bill("b1"); b.Status != BillSettled || b.Amount != 0 || b.At != dueRead.Unix() {
		t.Fatalf("settled by its due event %+v", b)
	}
	if s.SettledEpisodes != 0 {
		t.Fatal("a prepaid bill is an episode")
	}
	// less paid than due: the rest is open
	applyOK(t, s, t0, noOff(paidEv(c.id(), p1, "b2", 300)), noOff(dueEv(c.id(), t0, "b2", 1000, dueAt)))
	if b := s.OpenBill("b2"); b == nil || b.Amount != 700 || b.DueAt != dueAt.Unix() || b.Stage != 0 {
		t.Fatalf("open remainder %+v", b)
	}
	if o := apply1(t, s, noOff(paidEv(c.id(), t0, "b2", 700))); o.Status != Applied {
		t.Fatal(o.Status)
	}
	if b := s.bill("b2"); b.Status != BillSettled || len(b.Paid) != 2 {
		t.Fatalf("b2 %+v", b)
	}
	// more paid than due settles it too
	applyOK(t, s, t0, noOff(paidEv(c.id(), p1, "b3", 800)), noOff(dueEv(c.id(), t0, "b3", 500, dueAt)))
	if b := s.bill("b3"); b.Status != BillSettled {
		t.Fatalf("b3 %+v", b)
	}
}

func TestBillDueResent(t *testing.T) {
	s := &State{}
	var c counter
	dueAt := t0.Add(-5 * day)
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt.Add(-day), "b1", 1000, dueAt)), noOff(paidEv(c.id(), t0, "b1", 400)))
	if _, err := AdvanceBill(s, "b1", 2, false); err != nil {
		t.Fatal(err)
	}
	later := dueAt.Add(day)
	// an upstream re-send (a new event id), with another due time
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "b1", 1000, later)))
	b := s.OpenBill("b1")
	if b == nil || b.Amount != 600 || b.Stage != 2 || b.DueAt != later.Unix() || len(b.Paid) != 1 {
		t.Fatalf("re-sent due %+v, want 600 left at stage 2", b)
	}
	if len(s.Bills) != 1 {
		t.Fatalf("bills %+v", s.Bills)
	}
}

func TestBillSettledIgnoresRepeats(t *testing.T) {
	s := &State{}
	var c counter
	dueAt := t0.Add(-5 * day)
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt, "b1", 100, dueAt)), noOff(paidEv(c.id(), dueAt, "b1", 100)))
	b := *s.bill("b1")
	b.Paid = slices.Clone(b.Paid)
	// another repayment (an overpayment) and a re-sent due: nothing owed, nothing opened
	o := apply1(t, s, noOff(paidEv(c.id(), t0, "b1", 50)))
	if o.Status != Applied || o.Unfroze {
		t.Fatalf("paid on settled %+v", o)
	}
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "b1", 100, t0.Add(day))))
	if got := s.bill("b1"); !reflect.DeepEqual(*got, b) {
		t.Fatalf("settled bill changed: %+v, was %+v", *got, b)
	}
	if len(s.Bills) != 1 || s.SettledEpisodes != 0 {
		t.Fatalf("bills %+v", s.Bills)
	}
}

func TestMaxBills(t *testing.T) {
	s := &State{}
	var c counter
	for i := range MaxBills {
		applyOK(t, s, t0, noOff(dueEv(c.id(), t0, fmt.Sprintf("b%d", i), 100, t0.Add(day))))
	}
	before := enc(s)
	for k, e := range []*events.Event{
		dueEv(c.id(), t0, "one-too-many", 100, t0.Add(day)),
		paidEv(c.id(), t0, "one-too-many", 100), // a prepayment needs room too
	} {
		off := int64(77 + k)
		out := Apply(s, []Item{at(e, off)}, testConfig(), t0)
		o := out[0]
		if o.Status != Refused || o.Err == nil {
			t.Fatalf("%s for a 33rd bill: %+v", e.Type, o)
		}
		if o.Zone != shanghai {
			t.Errorf("refused outcome zone %v", o.Zone)
		}
		if !bytes.Equal(before, encNoOffsets(s)) {
			t.Fatalf("a refused %s changed the state (ring or bills)", e.Type)
		}
		checkOffsetKept(t, s, off)
	}
	// events for open bills are still applied
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0, "b0", 40)), noOff(dueEv(c.id(), t0, "b1", 100, t0.Add(2*day))))
	// a settled bill makes room, the one settled (or prepaid) longest ago first
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0.Add(-time.Hour), "b5", 100)), noOff(paidEv(c.id(), t0.Add(-2*time.Hour), "b7", 100)))
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "new1", 100, t0.Add(day))))
	if s.bill("b7") != nil || s.bill("b5") == nil || s.OpenBill("new1") == nil || len(s.Bills) != MaxBills {
		t.Fatalf("room made by the wrong bill: %d bills, b5 %v b7 %v", len(s.Bills), s.bill("b5"), s.bill("b7"))
	}
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0, "prepaid1", 100)))
	if s.bill("b5") != nil || s.bill("prepaid1") == nil || len(s.Bills) != MaxBills {
		t.Fatalf("prepayment did not take b5's room: %d bills", len(s.Bills))
	}
	// a prepaid bill makes room for an open one too
	applyOK(t, s, t0, noOff(dueEv(c.id(), t0, "new2", 100, t0.Add(day))))
	if s.bill("prepaid1") != nil || s.OpenBill("new2") == nil || len(s.Bills) != MaxBills {
		t.Fatalf("%d bills", len(s.Bills))
	}
	if o := apply1(t, s, noOff(dueEv(c.id(), t0, "new3", 100, t0.Add(day)))); o.Status != Refused {
		t.Fatalf("33rd open bill: %v", o.Status)
	}
}

func TestKeepBillDays(t *testing.T) {
	now := t0
	keep := int64(KeepBillDays * 86400)
	s := &State{Bills: []Bill{
		{ID: "settled-old", Status: BillSettled, At: now.Unix() - keep - 1},
		{ID: "settled-new", Status: BillSettled, At: now.Unix() - keep + 3600},
		{ID: "prepaid-old", Status: BillPrepaid, Amount: 5, At: now.Unix() - keep - 1},
		{ID: "prepaid-new", Status: BillPrepaid, Amount: 5, At: now.Unix() - keep + 3600},
		{ID: "open-ancient", Status: BillOpen, Amount: 5, DueAt: now.Unix() - 10*keep},
	}}
	Apply(s, nil, testConfig(), now)
	var ids []string
	for _, b := range s.Bills {
		ids = append(ids, b.ID)
	}
	if want := []string{"settled-new", "prepaid-new", "open-ancient"}; !slices.Equal(ids, want) {
		t.Fatalf("bills %v, want %v", ids, want)
	}
	// a due event re-sent within KeepBillDays opens nothing
	var c counter
	applyOK(t, s, now, noOff(dueEv(c.id(), now, "settled-new", 100, now)))
	if s.OpenBill("settled-new") != nil {
		t.Fatal("a re-sent due opened a settled bill")
	}
}

func TestMaxStringRefused(t *testing.T) {
	long, ok := strings.Repeat("x", MaxString+1), strings.Repeat("y", MaxString)
	var c counter
	refused := []*events.Event{
		payEv(c.id(), t0, 1, "", long),
		loginEv(c.id(), t0, long, "c"),
		loginEv(c.id(), t0, "d", long),
		dueEv(c.id(), t0, long, 100, t0),
		paidEv(c.id(), t0, long, 100),
		profileEv(c.id(), t0, events.Profile{Timezone: long}),
		profileEv(c.id(), t0, events.Profile{CardBoundSince: long}),
		{ID: c.id(), Type: events.TypePayment, Source: testSource, Time: t0}, // no data
	}
	for _, e := range refused {
		s := fullState()
		s.Rev = 0
		s.PrunedDay = dayOf(t0) // no prune
		before := encNoOffsets(s)
		o := Apply(s, []Item{tp(e, 9, 9, 1)}, testConfig(), t0)[0] // a partition fullState has not seen
		if o.Status != Refused || o.Err == nil {
			t.Errorf("%s %s: %+v, want refused", e.Type, e.ID, o)
		}
		if !bytes.Equal(before, encNoOffsets(s)) {
			t.Errorf("%s %s: a refused event changed the state", e.Type, e.ID)
		}
		if o := Apply(s, []Item{tp(e, 9, 9, 1)}, testConfig(), t0)[0]; o.Status != Redelivered {
			t.Errorf("%s %s redelivered after its refusal: %v, want redelivered (dead-lettered once)", e.Type, e.ID, o.Status)
		}
	}
	// MaxString bytes are kept
	s := &State{}
	applyOK(t, s, t0,
		noOff(payEv(c.id(), t0, 1, "", ok)),
		noOff(loginEv(c.id(), t0, ok, ok)),
		noOff(dueEv(c.id(), t0, ok, 100, t0)),
		noOff(paidEv(c.id(), t0, ok, 1)),
		noOff(profileEv(c.id(), t0, events.Profile{CardBoundSince: ok})),
	)
	if place(s.Devices, ok) == nil || place(s.Cities, ok) == nil || s.OpenBill(ok) == nil || s.Profile.CardBoundSince != ok {
		t.Fatal("strings of MaxString bytes were not kept")
	}
}

// ---- profile and zones ----

func TestProfileJudicial(t *testing.T) {
	s := &State{}
	var c counter
	steps := []struct {
		jd              bool
		became, cleared bool
	}{{false, false, false}, {true, true, false}, {true, false, false}, {false, false, true}, {false, false, false}, {true, true, false}}
	for i, st := range steps {
		o := apply1(t, s, noOff(profileEv(c.id(), t0, events.Profile{JudicialDefaulter: st.jd})))
		if o.Status != Applied || o.BecameJudicialDefaulter != st.became || o.ClearedJudicialDefaulter != st.cleared {
			t.Fatalf("step %d (jd %v): %+v", i, st.jd, o)
		}
		if s.FrozenJudicial != st.jd || s.Profile.JudicialDefaulter != st.jd {
			t.Fatalf("step %d: frozen %v", i, s.FrozenJudicial)
		}
	}
}

func TestProfileStored(t *testing.T) {
	s := &State{}
	p := events.Profile{PayScore: 720, RealNameVerified: true, IdentityComplete: true, CardBoundSince: "2019-03-04",
		CardBankBlacklisted: true, WealthBalanceFen: 123456789, JudicialDefaulter: true, LinkedAccountNegative: true,
		TransactionLimitFen: 50000, Timezone: "Europe/Paris"}
	applyOK(t, s, t0, noOff(profileEv("p1", t0, p)))
	want := &Profile{PayScore: 720, RealNameVerified: true, IdentityComplete: true, CardBankBlacklisted: true,
		JudicialDefaulter: true, LinkedAccountNegative: true, WealthBalanceFen: 123456789, TransactionLimitFen: 50000,
		CardBoundSince: "2019-03-04"}
	if !reflect.DeepEqual(s.Profile, want) || s.Zone != "Europe/Paris" {
		t.Fatalf("profile %+v zone %q", s.Profile, s.Zone)
	}
	// a profile replaces the one before, fields left out included
	applyOK(t, s, t0, noOff(profileEv("p2", t0, events.Profile{PayScore: 1})))
	if !reflect.DeepEqual(s.Profile, &Profile{PayScore: 1}) || s.Zone != "" || s.FrozenJudicial {
		t.Fatalf("second profile %+v zone %q", s.Profile, s.Zone)
	}
}

func TestOutcomeValuesBeforeEvent(t *testing.T) {
	s := &State{}
	var c counter
	out := applyOK(t, s, t0,
		noOff(payEv(c.id(), t0, 1, "", "")),
		noOff(profileEv(c.id(), t0, events.Profile{TransactionLimitFen: 5000, Timezone: "America/New_York"})),
		noOff(payEv(c.id(), t0, 1, "", "")),
		noOff(profileEv(c.id(), t0, events.Profile{TransactionLimitFen: 8000})),
		noOff(loginEv(c.id(), t0, "", "")),
	)
	wantLim := []int64{0, 0, 5000, 5000, 8000}
	wantZone := []*time.Location{shanghai, shanghai, newYork, newYork, shanghai}
	for i, o := range out {
		if o.TransactionLimitFen != wantLim[i] || o.Zone.String() != wantZone[i].String() {
			t.Errorf("event %d: limit %d zone %v, want %d %v", i, o.TransactionLimitFen, o.Zone, wantLim[i], wantZone[i])
		}
	}
	// a refusal and a redelivery report them too
	applyOK(t, s, t0, at(profileEv(c.id(), t0, events.Profile{TransactionLimitFen: 9000, Timezone: "Europe/Paris"}), 5))
	o := apply1(t, s, at(payEv(c.id(), t0, 1, "", strings.Repeat("x", MaxString+1)), 6))
	if o.Status != Refused || o.TransactionLimitFen != 9000 || o.Zone.String() != "Europe/Paris" {
		t.Fatalf("refused %+v", o)
	}
	o = apply1(t, s, at(payEv(c.id(), t0, 1, "", ""), 5))
	if o.Status != Redelivered || o.TransactionLimitFen != 9000 || o.Zone.String() != "Europe/Paris" {
		t.Fatalf("redelivered %+v", o)
	}
}

func TestZoneChangeWithinBatch(t *testing.T) {
	s := &State{}
	var c counter
	// 02:00 on 06-15 in Shanghai is 14:00 on 06-14 in New York
	x := time.Date(2025, 6, 15, 2, 0, 0, 0, shanghai)
	applyOK(t, s, t0,
		noOff(payEv(c.id(), x, 100, "", "")),
		noOff(loginEv(c.id(), x, "", "")),
		noOff(profileEv(c.id(), x, events.Profile{Timezone: "America/New_York"})),
		noOff(payEv(c.id(), x, 100, "", "")),
		noOff(loginEv(c.id(), x, "", "")),
	)
	sh, ny := LocalDay(shanghai, x.Unix()), LocalDay(newYork, x.Unix())
	if sh != ny+1 {
		t.Fatalf("test setup: days %d %d", sh, ny)
	}
	if dayCount(s, sh) != 1 || dayCount(s, ny) != 1 {
		t.Fatalf("days %+v, want one payment on %d (Shanghai) and one on %d (New York)", s.Days, sh, ny)
	}
	if m := monthOf(s, 202506); m == nil || m.LoginDays != 2 || m.LoginMask != 1<<14|1<<13 {
		t.Fatalf("June %+v, want logins on the 14th and 15th", m)
	}
	// a due date's local day follows the zone too
	dueAt := time.Date(2025, 6, 10, 7, 0, 0, 0, shanghai) // 06-09 19:00 in New York
	applyOK(t, s, t0, noOff(dueEv(c.id(), dueAt, "b", 1, dueAt)), noOff(paidEv(c.id(), dueAt.Add(2*day), "b", 1)))
	if len(s.Episodes) != 1 || s.Episodes[0].DueAt != dueAt.Unix() {
		t.Fatalf("episodes %+v", s.Episodes)
	}
}

func TestUnknownZoneRefused(t *testing.T) {
	s := &State{}
	var c counter
	applyOK(t, s, t0, noOff(profileEv(c.id(), t0, events.Profile{PayScore: 600})))
	before := encNoOffsets(s)
	o := apply1(t, s, at(profileEv(c.id(), t0, events.Profile{PayScore: 1, Timezone: "Mars/Olympus_Mons"}), 3))
	if o.Status != Refused || o.Err == nil || !strings.Contains(o.Err.Error(), "Mars/Olympus_Mons") {
		t.Fatalf("unknown zone: %+v", o)
	}
	if !bytes.Equal(before, encNoOffsets(s)) {
		t.Fatal("the refused profile changed the state")
	}
}

func TestApplyKeepsRev(t *testing.T) {
	s := &State{Rev: 41}
	applyOK(t, s, t0, noOff(payEv("p", t0, 1, "", "")))
	if s.Rev != 41 {
		t.Fatalf("Apply changed Rev to %d", s.Rev)
	}
	if out := Apply(s, nil, testConfig(), t0); len(out) != 0 {
		t.Fatalf("outcomes for no items: %v", out)
	}
}

// ---- determinism and properties over random streams ----

// gen makes random streams of one user's events.
type gen struct {
	rng   *rand.Rand
	n     int
	now   time.Time
	zones []string
	// per (topic, partition): epoch and next offset
	offs map[[2]int][2]int64
	// emitted events, so that some are sent again by upstream
	sent []*events.Event
	// spread of event times around now
	spread time.Duration
	// bill ids are drawn from this many
	bills int
	// long-lived generator: bill ids keep changing
	rolling bool
}

func newGen(seed uint64, now time.Time) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now,
		zones:  []string{"", "Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"},
		offs:   map[[2]int][2]int64{},
		spread: 40 * day, bills: 12}
}

func (g *gen) when() time.Time {
	d := time.Duration(g.rng.Int64N(int64(g.spread)))
	t := g.now.Add(-d)
	if g.rng.IntN(20) == 0 {
		t = g.now.Add(time.Duration(g.rng.Int64N(int64(3 * day)))) // a little ahead
	}
	if g.rng.IntN(200) == 0 {
		t = g.now.Add(time.Duration(g.rng.Int64N(int64(80 * 365 * day)))) // far future, e.g. 2100
	}
	return t
}

func (g *gen) bill() string {
	if g.rolling {
		return fmt.Sprintf("b%d", g.n/20+g.rng.IntN(g.bills))
	}
	return fmt.Sprintf("b%d", g.rng.IntN(g.bills))
}

func (g *gen) event() *events.Event {
	if len(g.sent) > 0 && g.rng.IntN(15) == 0 {
		return g.sent[g.rng.IntN(len(g.sent))] // an upstream retry
	}
	g.n++
	id := fmt.Sprintf("g%d", g.n)
	src := testSource
	if g.rng.IntN(8) == 0 {
		src = "test://other"
	}
	ts := g.when()
	var e *events.Event
	scenes := []events.Scene{events.SceneEcommerce, events.SceneTransfer, events.SceneRedPacket, events.SceneBillPay, "", events.SceneMedical}
	switch r := g.rng.IntN(100); {
	case r < 35:
		dev := ""
		if g.rng.IntN(4) > 0 {
			dev = fmt.Sprintf("dev%d", g.rng.IntN(70))
		}
		e = payEv(id, ts, g.rng.Int64N(100000), scenes[g.rng.IntN(len(scenes))], dev)
	case r < 65:
		e = loginEv(id, ts, fmt.Sprintf("dev%d", g.rng.IntN(70)), fmt.Sprintf("city%d", g.rng.IntN(30)))
	case r < 78:
		e = dueEv(id, ts, g.bill(), 100*(1+g.rng.Int64N(50)), ts.Add(time.Duration(g.rng.Int64N(int64(20*day)))-10*day))
	case r < 95:
		e = paidEv(id, ts, g.bill(), 100*(1+g.rng.Int64N(20)))
	default:
		e = profileEv(id, ts, events.Profile{PayScore: g.rng.IntN(900), JudicialDefaulter: g.rng.IntN(3) == 0,
			TransactionLimitFen: g.rng.Int64N(3) * 10000, Timezone: g.zones[g.rng.IntN(len(g.zones))],
			RealNameVerified: g.rng.IntN(2) == 0, CardBoundSince: "2020-01-01"})
	}
	e.Source = src
	g.sent = append(g.sent, e)
	return e
}

// item reads an event from one of a few partitions, sometimes without an
// offset (noOffsets) and sometimes after an epoch bump.
func (g *gen) item(e *events.Event, noOffsets bool) Item {
	if noOffsets && g.rng.IntN(10) == 0 {
		return noOff(e)
	}
	k := [2]int{1 + g.rng.IntN(3), g.rng.IntN(4)} // 12 partitions: within MaxOffsets
	st := g.offs[k]
	if g.rng.IntN(300) == 0 {
		st = [2]int64{st[0] + 1, int64(g.rng.IntN(3))} // the topic's offsets start over
	}
	it := Item{Event: e, Topic: k[0], Partition: k[1], Epoch: uint32(st[0]), Offset: st[1]}
	st[1] += 1 + int64(g.rng.IntN(3))
	g.offs[k] = st
	return it
}

func (g *gen) stream(n int, noOffsets bool) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = g.item(g.event(), noOffsets)
	}
	return items
}

// seedState is a state with some history, applied at now.
func seedState(t *testing.T, seed uint64, now time.Time) *State {
	t.Helper()
	s := &State{}
	g := newGen(seed, now)
	Apply(s, g.stream(60, true), testConfig(), now)
	advanceBills(s)
	return s
}

// advanceBills freezes for some open bills, as the overdue timers do.
func advanceBills(s *State) {
	for i, b := range s.Bills {
		if b.Status == BillOpen {
			_, _ = AdvanceBill(s, b.ID, 1+i%4, i%2 == 0)
		}
	}
}

func TestApplyDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		s := seedState(t, seed, t0)
		g := newGen(seed+1000, t0)
		items := g.stream(200, true)
		a, b := s.Clone(), s.Clone()
		before := enc(s)
		oa := Apply(a, items, testConfig(), t0)
		ob := Apply(b, items, testConfig(), t0)
		if !bytes.Equal(enc(a), enc(b)) || !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two clones differ after the same items", seed)
		}
		if !reflect.DeepEqual(oa, ob) {
			t.Fatalf("seed %d: outcomes differ", seed)
		}
		if !bytes.Equal(before, enc(s)) {
			t.Fatalf("seed %d: applying to a clone changed the original", seed)
		}
	}
}

// nows are wall clocks at which the zones of the generator are on
// different local days (so that a zone change moves "today").
var nows = []time.Time{
	t0,
	time.Date(2025, 6, 15, 23, 30, 0, 0, time.UTC),
	time.Date(2025, 12, 31, 20, 0, 0, 0, time.UTC), // a new year in some zones
	time.Date(2099, 12, 31, 15, 0, 0, 0, time.UTC),
}

// Applying a stream in one batch or in any split gives the same state and
// outcomes; applying any prefix again (a redelivery: same offsets) changes
// nothing and is all Redelivered.
func TestApplySplitsAndRedelivery(t *testing.T) {
	cfg := testConfig()
	for seed := range uint64(40) {
		now := nows[seed%uint64(len(nows))]
		g := newGen(seed, now)
		s := seedState(t, seed+500, now)
		items := g.stream(300, false)

		whole := s.Clone()
		ow := Apply(whole, items, cfg, now)
		for i, o := range ow {
			if o.Status == Refused {
				t.Fatalf("seed %d: item %d refused: %v", seed, i, o.Err)
			}
		}

		split := s.Clone()
		var os []Outcome
		for rest := items; len(rest) > 0; {
			n := 1 + g.rng.IntN(min(len(rest), 40))
			if g.rng.IntN(10) == 0 {
				n = 0 // an empty batch
			}
			os = append(os, Apply(split, rest[:n], cfg, now)...)
			rest = rest[n:]
		}
		if !bytes.Equal(enc(whole), enc(split)) {
			t.Fatalf("seed %d: one batch and splits differ:\n%+v\n%+v", seed, whole, split)
		}
		if !reflect.DeepEqual(ow, os) {
			for i := range ow {
				if !reflect.DeepEqual(ow[i], os[i]) {
					t.Fatalf("seed %d: outcome %d differs: %+v vs %+v", seed, i, ow[i], os[i])
				}
			}
		}

		for range 5 {
			k := g.rng.IntN(len(items) + 1)
			before := enc(whole)
			out := Apply(whole, items[:k], cfg, now)
			for i, o := range out {
				if o.Status != Redelivered {
					t.Fatalf("seed %d: prefix %d item %d again: %v", seed, k, i, o.Status)
				}
			}
			if !bytes.Equal(before, enc(whole)) {
				t.Fatalf("seed %d: redelivering a prefix of %d changed the state", seed, k)
			}
		}
	}
}

// Applying a stream without offsets twice: every event is a duplicate
// while it is within the ring (the last DedupRing applied).
func TestApplyAgainWithoutOffsets(t *testing.T) {
	for seed := range uint64(10) {
		s := &State{}
		g := newGen(seed, t0)
		var evs []*events.Event
		var items []Item
		for range DedupRing {
			e := g.event()
			if slices.Contains(evs, e) {
				continue
			}
			evs = append(evs, e)
			items = append(items, noOff(e))
		}
		out := Apply(s, items, testConfig(), t0)
		before := enc(s)
		var n int
		for i, o := range out {
			if o.Status == Applied {
				n++
				if o2 := apply1(t, s, items[i]); o2.Status != Duplicate {
					t.Fatalf("seed %d: event %s again: %v", seed, items[i].Event.ID, o2.Status)
				}
			}
		}
		if n == 0 || !bytes.Equal(before, enc(s)) {
			t.Fatalf("seed %d: duplicates changed the state (%d applied)", seed, n)
		}
	}
}

// The state of a user stays bounded however many events: every list
// within its cap, and the encoding under a fixed size.
func TestStateBounded(t *testing.T) {
	for _, seed := range []uint64{7, 11, 1234} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testStateBounded(t, seed) })
	}
}

func testStateBounded(t *testing.T, seed uint64) {
	const maxEncoded = 4096
	cfg := testConfig()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, shanghai)
	g := newGen(seed, now)
	g.spread, g.bills, g.rolling = 20*day, 40, true
	s := &State{}
	var largest int
	for n := 0; n < 10000; {
		k := 1 + g.rng.IntN(30)
		items := g.stream(k, true)
		n += k
		Apply(s, items, cfg, now)
		advanceBills(s)
		if g.rng.IntN(5) == 0 {
			RecordQuotaCheck(s, now, 30*day)
		}
		if g.rng.IntN(20) == 0 {
			SaveQuota(s, g.rng.Int64N(1e8), int64(n), now)
			_ = SetOverride(s, &Override{QuotaFen: 1, Reason: strings.Repeat("r", MaxString), Operator: "op", ExpiresAt: now.Unix()})
		}
		checkBounds(t, s, cfg)
		b := enc(s)
		largest = max(largest, len(b))
		if len(b) >= maxEncoded {
			t.Fatalf("after %d events the state is %d bytes", n, len(b))
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		if !bytes.Equal(enc(d), b) {
			t.Fatalf("after %d events: the state does not round trip", n)
		}
		now = now.Add(time.Duration(g.rng.Int64N(int64(12 * time.Hour))))
		g.now = now
	}
	t.Logf("largest encoding %d bytes; final: %d days %d months %d devices %d cities %d bills",
		largest, len(s.Days), len(s.Months), len(s.Devices), len(s.Cities), len(s.Bills))
}

func checkBounds(t *testing.T, s *State, cfg Config) {
	t.Helper()
	check := func(what string, n, max int) {
		t.Helper()
		if n > max {
			t.Fatalf("%s: %d entries, at most %d", what, n, max)
		}
	}
	// the windows are (today-Days, today+1] and [this month-Months, next
	// month]; a zone change that moves today back (zones are at most 26
	// hours apart: two local days) keeps what the old window held until the
	// next day's prune
	check("days", len(s.Days), cfg.Days+1+2)
	check("months", len(s.Months), cfg.Months+2+1)
	check("places", len(s.Devices)+len(s.Cities), cfg.GeoMax)
	check("payments", len(s.Payments), RecentPayments)
	check("other-city logins", len(s.OtherCity), OtherCityLogins)
	check("dedup", len(s.Dedup), DedupRing)
	check("offsets", len(s.Offsets), MaxOffsets)
	check("bills", len(s.Bills), MaxBills)
	for _, b := range s.Bills {
		check("bill payments", len(b.Paid), MaxBillPayments)
		check("bill id", len(b.ID), MaxString)
	}
	for _, p := range append(slices.Clone(s.Devices), s.Cities...) {
		check("place name", len(p.Name), MaxString)
	}
	check("episodes", len(s.Episodes), MaxEpisodes)
	check("quota checks", len(s.QuotaChecks), MaxQuotaChecks)
	check("zone", len(s.Zone), MaxString)
	if !slices.IsSortedFunc(s.Payments, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("payments not newest first: %v", s.Payments)
	}
	if !slices.IsSortedFunc(s.OtherCity, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("other-city logins not newest first: %v", s.OtherCity)
	}
}

// encNoOffsets is the encoding of s without its offsets: all a refused
// event may change.
func encNoOffsets(s *State) []byte {
	c := s.Clone()
	c.Offsets = nil
	return enc(c)
}

// checkOffsetKept checks that an offset was recorded for a refused event.
func checkOffsetKept(t *testing.T, s *State, off int64) {
	t.Helper()
	for _, o := range s.Offsets {
		if o.Offset == off {
			return
		}
	}
	t.Fatalf("the refused event's offset %d is not kept: %+v", off, s.Offsets)
}

// Issue 12 #2: 1,030 payments of 2^53−1 fen made a month's spend negative.
// Sums of fen are checked: the payment that would overflow is refused and
// changes nothing; the sums before it stay exact.
func TestFenSumsNeverOverflow(t *testing.T) {
	const big = 1<<53 - 1
	var c counter
	s := &State{}
	var last Outcome
	n := 0
	for i := 0; i < 1100; i++ {
		last = Apply(s, []Item{noOff(payEv(c.id(), t0, big, events.SceneEcommerce, "d"))}, testConfig(), t0)[0]
		if last.Status != Applied {
			break
		}
		n++
	}
	if last.Status != Refused || last.Err == nil || !strings.Contains(last.Err.Error(), "overflows") {
		t.Fatalf("after %d payments: %+v, want the overflowing one refused", n, last)
	}
	if n != math.MaxInt64/big {
		t.Fatalf("%d payments applied, want %d (as many as fit)", n, math.MaxInt64/big)
	}
	if len(s.Months) != 1 || s.Months[0].SpendFen != int64(n)*big {
		t.Fatalf("months %+v, want one with spend %d", s.Months, int64(n)*big)
	}
	// a bill paid ahead: the same guard
	s = &State{}
	applyOK(t, s, t0, noOff(paidEv(c.id(), t0, "b1", math.MaxInt64-5)))
	if o := Apply(s, []Item{noOff(paidEv(c.id(), t0, "b1", 6))}, testConfig(), t0)[0]; o.Status != Refused {
		t.Fatalf("overflowing prepayment: %v, want refused", o.Status)
	}
	if b := s.Bills[0]; b.Amount != math.MaxInt64-5 || len(b.Paid) != 1 {
		t.Fatalf("the refused prepayment changed the bill: %+v", b)
	}
}

// The state keeps every string the decoder accepts: a valid event is never
// refused here for a length (it would be dead-lettered with no field).
func TestMaxStringIsTheDecodersCap(t *testing.T) {
	if MaxString != events.MaxIDBytes {
		t.Fatalf("MaxString %d, events.MaxIDBytes %d: they must agree", MaxString, events.MaxIDBytes)
	}
}
