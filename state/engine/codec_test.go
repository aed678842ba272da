package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fullState is a State with every field set (checked by
// TestFullStateIsFull): times beyond 2038, negative values and lists out of
// order, so that deltas are negative.
func fullState() *State {
	t2100 := time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC).Unix()
	d2100 := int32(t2100 / 86400)
	return &State{
		Rev:       1<<63 + 12345,
		Zone:      "America/New_York",
		PrunedDay: d2100,
		Days:      []Day{{Day: d2100, Payments: 3}, {Day: d2100 - 10, Payments: 1}, {Day: -5, Payments: 1 << 30}},
		Months: []Month{{YM: 210001, SpendFen: 1 << 40, SocialN: 7, LoginDays: 3, LoginMask: 0x80000001},
			{YM: 209912, SpendFen: -5, SocialN: -1, LoginDays: 31, LoginMask: 1<<31 - 1}},
		Devices: []Place{{Name: "dev-α", LastDay: d2100, LoginBucket: d2100/LoginBucketDays - 1, Logins: []int32{9, 0, 1 << 30}},
			{Name: strings.Repeat("d", MaxString), LastDay: -1, LoginBucket: -3, Logins: []int32{1}}},
		Cities:    []Place{{Name: "上海", LastDay: d2100 - 1}},
		Payments:  []int64{t2100, t2100 - 60, t2100 + 3600, -1, 1 << 62},
		OtherCity: []int64{t2100, 1 << 40, t2100 + 1},
		Dedup:     []uint64{Fingerprint("a", "1"), 1<<48 - 1, 1},
		Offsets: []Offset{{Topic: 1, Partition: 0, Epoch: 3, Offset: 1 << 62},
			{Topic: 4, Partition: 1023, Epoch: 1<<32 - 1, Offset: -1}, {Topic: -1, Partition: -7, Offset: 5}},
		Bills: []Bill{
			{ID: "b1", Status: BillOpen, Amount: 12345, DueAt: t2100, Stage: 4, Froze: true, At: t2100 - 1,
				Paid: []uint64{Fingerprint("s", "p1"), 7}},
			{ID: "b2", Status: BillSettled, Amount: -1, DueAt: -86400, Stage: -1, At: t2100, Paid: []uint64{1<<48 - 2}},
			{ID: strings.Repeat("b", MaxString), Status: BillPrepaid, Amount: 1 << 50, Pool: PoolSpecialTemporary},
		},
		Profile: &Profile{PayScore: -3, RealNameVerified: true, IdentityComplete: true, CardBankBlacklisted: true,
			JudicialDefaulter: true, LinkedAccountNegative: true, WealthBalanceFen: 1 << 55, TransactionLimitFen: -9,
			CardBoundSince: "2099-12-31", PartnerLimitFen: 1 << 40, WeilidaiLimitFen: 5, AlertThresholdFen: -1,
			DefaultElsewhereOn: "2099-01-31"},
		Outstanding:     [NumLines]int64{1, 0, 1 << 50, -7},
		Special:         &Special{QuotaFen: 3, Reason: "医疗", Operator: "ops", ExpiresAt: t2100},
		FrozenOverdue:   true,
		FrozenJudicial:  true,
		Known:           true,
		SettledEpisodes: 1 << 30,
		Episodes:        []Episode{{DueAt: t2100, SettledAt: t2100 + 3*86400 + 1}, {DueAt: -46000 * 86400, SettledAt: 1}},
		HasQuota:        true,
		QuotaFen:        5_000_000,
		Recomputes:      77,
		CycleDone:       t2100,
		Override:        &Override{QuotaFen: -1, Reason: "覆盖", Operator: "op", ExpiresAt: t2100},
		QuotaChecks:     []int64{t2100, t2100 - 86400, t2100 + 5},
	}
}

// TestFullStateIsFull checks that fullState sets every field (a field
// added to State and left out here would not be round-tripped).
func TestFullStateIsFull(t *testing.T) {
	var check func(path string, v reflect.Value)
	check = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("%s is nil", path)
				return
			}
			check(path, v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				check(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.Slice:
			if v.Len() == 0 {
				t.Errorf("%s is empty", path)
				return
			}
			if v.Type().Elem().Kind() != reflect.Struct {
				return
			}
			// each field of the entries is set in at least one entry
			for f := range v.Type().Elem().NumField() {
				set := false
				for i := range v.Len() {
					if fv := v.Index(i).Field(f); !fv.IsZero() {
						set = true
					}
				}
				name := v.Type().Elem().Field(f).Name
				if !set && !(path == "State.Cities" && strings.HasPrefix(name, "Login")) { // a city has no logins
					t.Errorf("%s[].%s is zero in every entry", path, name)
				}
			}
		default:
			if v.IsZero() {
				t.Errorf("%s is zero", path)
			}
		}
	}
	check("State", reflect.ValueOf(fullState()))
}

func TestRoundTripFull(t *testing.T) {
	s := fullState()
	b := Encode(nil, s)
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, d) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", d, s)
	}
	if !bytes.Equal(b, Encode(nil, d)) {
		t.Fatal("re-encoding differs")
	}
	if b[0] != Version {
		t.Fatalf("version byte %d", b[0])
	}
	// Encode appends
	prefix := []byte("prefix")
	b2 := Encode(prefix, s)
	if !bytes.HasPrefix(b2, []byte("prefix")) || !bytes.Equal(b2[len(prefix):], b) {
		t.Fatal("Encode does not append to dst")
	}
	t.Logf("full state: %d bytes", len(b))
}

func TestRoundTripZeroAndEmpty(t *testing.T) {
	for _, b := range [][]byte{nil, {}} {
		s, err := Decode(b)
		if err != nil || !reflect.DeepEqual(s, &State{}) {
			t.Fatalf("Decode(%v) = %+v, %v; want the zero state", b, s, err)
		}
	}
	d, err := Decode(Encode(nil, &State{}))
	if err != nil || !reflect.DeepEqual(d, &State{}) {
		t.Fatalf("zero state: %+v, %v", d, err)
	}
	// empty, non-nil lists decode as nil lists: the same encoding
	e := &State{Days: []Day{}, Bills: []Bill{{ID: "x", Paid: []uint64{}}}, Payments: []int64{}, QuotaChecks: []int64{}}
	d, err = Decode(Encode(nil, e))
	if err != nil || !reflect.DeepEqual(d, &State{Bills: []Bill{{ID: "x"}}}) {
		t.Fatalf("empty lists: %+v, %v", d, err)
	}
}

// Each flag and each profile bit on its own: a swap of two bits would not
// show with all of them set.
func TestRoundTripEachFlag(t *testing.T) {
	muts := map[string]func(*State){
		"FrozenOverdue":  func(s *State) { s.FrozenOverdue = true },
		"FrozenJudicial": func(s *State) { s.FrozenJudicial = true },
		"Known":          func(s *State) { s.Known = true },
		"HasQuota":       func(s *State) { s.HasQuota = true; s.QuotaFen = 1 },
		"Override":       func(s *State) { s.Override = &Override{} },
		"Profile":        func(s *State) { s.Profile = &Profile{} },
		"RealName":       func(s *State) { s.Profile = &Profile{RealNameVerified: true} },
		"Identity":       func(s *State) { s.Profile = &Profile{IdentityComplete: true} },
		"Blacklisted":    func(s *State) { s.Profile = &Profile{CardBankBlacklisted: true} },
		"Judicial":       func(s *State) { s.Profile = &Profile{JudicialDefaulter: true} },
		"LinkedNegative": func(s *State) { s.Profile = &Profile{LinkedAccountNegative: true} },
		"BillFroze":      func(s *State) { s.Bills = []Bill{{ID: "b", Froze: true}} },
		"BillSettled":    func(s *State) { s.Bills = []Bill{{ID: "b", Status: BillSettled}} },
		"BillPrepaid":    func(s *State) { s.Bills = []Bill{{ID: "b", Status: BillPrepaid, Froze: true}} },
	}
	for name, mut := range muts {
		s := &State{}
		mut(s)
		d, err := Decode(Encode(nil, s))
		if err != nil || !reflect.DeepEqual(s, d) {
			t.Errorf("%s: %+v, %v", name, d, err)
		}
	}
}

func TestRoundTripRandomStates(t *testing.T) {
	for seed := range uint64(10) {
		s := seedState(t, seed, nows[seed%uint64(len(nows))])
		s.Rev = seed * 1e15
		b := Encode(nil, s)
		d, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, Encode(nil, d)) {
			t.Fatalf("seed %d: re-encoding differs", seed)
		}
		// the decoded state behaves as the original
		g := newGen(seed+99, t0)
		items := g.stream(50, true)
		oa, ob := Apply(s, items, testConfig(), t0), Apply(d, items, testConfig(), t0)
		if !reflect.DeepEqual(oa, ob) || !bytes.Equal(Encode(nil, s), Encode(nil, d)) {
			t.Fatalf("seed %d: the decoded state applies differently", seed)
		}
	}
}

// A version-2 state (written by the engine before login buckets, timed
// episodes and pools; testdata/state-v2.hex is fullState as that engine
// encoded it) is read: a device's lifetime logins count in its last day's
// bucket, an episode is due at 00:00 UTC of its due day and settled whole
// days later, and what version 2 did not have is zero.
func TestDecodeVersion2(t *testing.T) {
	raw, err := os.ReadFile("testdata/state-v2.hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 2 {
		t.Fatalf("the golden state is version %d", b[0])
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := fullState()
	d2100 := want.Devices[0].LastDay
	want.Devices[0].LoginBucket, want.Devices[0].Logins = d2100/LoginBucketDays, []int32{9}
	want.Devices[1].LoginBucket, want.Devices[1].Logins = 0, nil // a negative count is none
	want.Devices = want.Devices[:2]
	want.Cities[0].LoginBucket, want.Cities[0].Logins = 0, nil
	const day = 86400
	want.Episodes = []Episode{{DueAt: int64(d2100) * day, SettledAt: int64(d2100)*day + 3*day},
		{DueAt: -46000 * day, SettledAt: -46000*day + 400*day}}
	for i := range want.Bills {
		want.Bills[i].Pool = PoolPayScore
	}
	p := *want.Profile
	p.PartnerLimitFen, p.WeilidaiLimitFen, p.AlertThresholdFen, p.DefaultElsewhereOn = 0, 0, 0, ""
	want.Profile = &p
	want.Outstanding, want.Special = [NumLines]int64{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("version 2 read as\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodeWrongVersion(t *testing.T) {
	b := Encode(nil, fullState())
	for _, v := range []byte{0, 1, Version + 1, 255} { // 2 is read too (TestDecodeVersion2)
		c := append([]byte(nil), b...)
		c[0] = v
		if s, err := Decode(c); err == nil || s != nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("version %d: %v, %v", v, s, err)
		}
		if _, err := Decode([]byte{v}); err == nil {
			t.Errorf("one byte %d: no error", v)
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	for _, s := range []*State{fullState(), {}, {Rev: 5, Zone: "UTC"}} {
		b := Encode(nil, s)
		for n := 1; n < len(b); n++ {
			d, err := Decode(b[:n])
			if err == nil || d != nil {
				t.Fatalf("prefix of %d of %d bytes: %+v, %v", n, len(b), d, err)
			}
		}
		// and a byte too many
		if _, err := Decode(append(b, 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
}

func TestDecodeHugeLengths(t *testing.T) {
	head := func() []byte {
		b := []byte{Version}
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.AppendUvarint(b, 0) // flags
		b = binary.AppendUvarint(b, 0) // zone ""
		b = binary.AppendVarint(b, 0)  // pruned day
		return b
	}
	for _, n := range []uint64{1 << 13, 1 << 40, 1<<64 - 1} {
		b := binary.AppendUvarint(head(), n) // days
		if _, err := Decode(b); err == nil {
			t.Errorf("a list of %d: no error", n)
		}
	}
	// a string longer than the input
	b := []byte{Version}
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, 1000)
	b = append(b, "short"...)
	if _, err := Decode(b); err == nil {
		t.Error("a string past the end: no error")
	}
	// a varint that never ends
	b = append(head(), bytes.Repeat([]byte{0xff}, 20)...)
	if _, err := Decode(b); err == nil {
		t.Error("an endless varint: no error")
	}
}

func TestRevOf(t *testing.T) {
	for _, rev := range []uint64{0, 1, 1<<63 + 12345, 1<<64 - 1} {
		s := fullState()
		s.Rev = rev
		if got := RevOf(Encode(nil, s)); got != rev {
			t.Errorf("RevOf = %d, want %d", got, rev)
		}
	}
	for _, b := range [][]byte{nil, {}, {Version}, {Version, 1, 2, 3, 4, 5, 6, 7}} {
		if got := RevOf(b); got != 0 {
			t.Errorf("RevOf(%v) = %d", b, got)
		}
	}
	// big-endian at bytes 1..8, as the compare-and-set script reads it
	b := Encode(nil, &State{Rev: 0x0102030405060708})
	if !bytes.Equal(b[1:9], []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("rev bytes %x", b[1:9])
	}
}

// checkDecode is what any input must satisfy: Decode does not panic, and
// what it accepts re-encodes to a value it decodes the same.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	s, err := Decode(b)
	if err != nil {
		if s != nil {
			t.Fatalf("Decode returned a state with error %v", err)
		}
		return
	}
	b2 := Encode(nil, s)
	s2, err := Decode(b2)
	if err != nil {
		t.Fatalf("re-encoded state does not decode: %v", err)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Fatalf("re-encoded state decodes differently:\n%+v\n%+v", s, s2)
	}
	if len(b) > 0 && RevOf(b) != s.Rev {
		t.Fatalf("RevOf %d, Rev %d", RevOf(b), s.Rev)
	}
}

func TestDecodeGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	full := Encode(nil, fullState())
	for i := range 50000 {
		var b []byte
		switch i % 3 {
		case 0: // random bytes
			b = make([]byte, rng.IntN(300))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if len(b) > 0 && rng.IntN(2) == 0 {
				b[0] = Version
			}
		case 1: // a valid encoding with some bytes changed
			b = append([]byte(nil), full...)
			for range 1 + rng.IntN(4) {
				b[9+rng.IntN(len(b)-9)] = byte(rng.Uint32())
			}
		default: // a valid encoding cut and extended
			b = append([]byte(nil), full[:rng.IntN(len(full))]...)
			for range rng.IntN(10) {
				b = append(b, byte(rng.Uint32()))
			}
		}
		checkDecode(t, b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add(Encode(nil, &State{}))
	full := Encode(nil, fullState())
	f.Add(full)
	f.Add(full[:len(full)/2])
	s := &State{Profile: &Profile{PayScore: 1}, HasQuota: true, Override: &Override{Reason: "r"}}
	f.Add(Encode(nil, s))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
	})
}

// QuotaPatch written over bytes 1.. of an encoded state is the state with
// the quota saved and a new Rev (what SaveQuotas does with SETRANGE).
func TestQuotaPatch(t *testing.T) {
	s := fullState()
	b := Encode(nil, s)
	cd := time.Unix(4102542245, 0)
	p := QuotaPatch(99, 123_456, 8, cd)
	copy(b[1:], p)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Clone()
	want.Rev = 99
	SaveQuota(want, 123_456, 8, cd)
	if !bytes.Equal(Encode(nil, got), Encode(nil, want)) {
		t.Fatalf("patched: %+v\nwant %+v", got, want)
	}
}
