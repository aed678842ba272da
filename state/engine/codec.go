package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The encoding (version 1) is the version byte, Rev as 8 bytes big-endian
// (so that the compare-and-set script compares it without decoding), the saved
// quota at fixed width (QuotaHeader: a byte 1/0 for HasQuota, QuotaFen,
// Recomputes and CycleDone as 8 bytes big-endian each, so that a saved
// recompute is one SETRANGE of bytes 1..33 with a new Rev; see
// QuotaPatch), then the other fields in the order of State, each list as its length and its entries,
// numbers as varints (times in lists as deltas from the entry before), and
// strings as a length and bytes. Nothing is named: the version byte says
// the layout.

// flag bits of the second field.
const (
	flagFrozenOverdue = 1 << iota
	flagFrozenJudicial
	flagProfile
	flagOverride
	flagKnown
	flagSpecial
)

// profile bits.
const (
	profRealName = 1 << iota
	profIdentity
	profBlacklisted
	profJudicial
	profLinkedNegative
)

// fingerprints are 48 bits, stored as 6 bytes.
const fpBytes = 6

// headerLen is the fixed part: the version, Rev and the quota.
const headerLen = 1 + 8 + quotaLen

// quotaLen is the quota's fixed part: HasQuota, QuotaFen, Recomputes,
// CycleDone.
const quotaLen = 1 + 3*8

func appendQuota(b []byte, s *State) []byte {
	var has byte
	if s.HasQuota {
		has = 1
	}
	b = append(b, has)
	b = binary.BigEndian.AppendUint64(b, uint64(s.QuotaFen))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Recomputes))
	return binary.BigEndian.AppendUint64(b, uint64(s.CycleDone))
}

// QuotaPatch is what a saved recompute writes over bytes 1.. of an
// encoded state (SETRANGE key 1 patch): a new Rev, so that a writer that
// read the state before fails its compare-and-set, and the quota.
func QuotaPatch(rev uint64, quotaFen, seq int64, cycleDone time.Time) []byte {
	s := &State{}
	SaveQuota(s, quotaFen, seq, cycleDone)
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+quotaLen), rev)
	return appendQuota(b, s)
}

// RevOf reads the revision of an encoded state (0 for none).
func RevOf(b []byte) uint64 {
	if len(b) < 9 {
		return 0
	}
	return binary.BigEndian.Uint64(b[1:9])
}

// Encode appends the encoding of s to dst.
func Encode(dst []byte, s *State) []byte {
	w := writer{b: dst}
	w.b = append(w.b, Version)
	w.b = binary.BigEndian.AppendUint64(w.b, s.Rev)
	w.b = appendQuota(w.b, s)
	var flags uint64
	if s.FrozenOverdue {
		flags |= flagFrozenOverdue
	}
	if s.FrozenJudicial {
		flags |= flagFrozenJudicial
	}
	if s.Profile != nil {
		flags |= flagProfile
	}
	if s.Override != nil {
		flags |= flagOverride
	}
	if s.Known {
		flags |= flagKnown
	}
	if s.Special != nil {
		flags |= flagSpecial
	}
	w.u(flags)
	w.str(s.Zone)
	w.i(int64(s.PrunedDay))

	w.u(uint64(len(s.Days)))
	prev := int64(0)
	for _, d := range s.Days {
		w.i(int64(d.Day) - prev)
		prev = int64(d.Day)
		w.u(uint64(d.Payments))
	}
	w.u(uint64(len(s.Months)))
	prev = 0
	for _, m := range s.Months {
		w.i(int64(m.YM) - prev)
		prev = int64(m.YM)
		w.i(m.SpendFen)
		w.u(uint64(m.SocialN))
		w.u(uint64(m.LoginDays))
		w.u(uint64(m.LoginMask))
	}
	for _, ps := range [2][]Place{s.Devices, s.Cities} {
		w.u(uint64(len(ps)))
		for _, p := range ps {
			w.str(p.Name)
			w.i(int64(p.LastDay))
			w.u(uint64(len(p.Logins)))
			if len(p.Logins) > 0 {
				// the newest bucket as its distance from the last day's
				w.i(int64(p.LastDay/LoginBucketDays) - int64(p.LoginBucket))
				for _, c := range p.Logins {
					w.u(uint64(c))
				}
			}
		}
	}
	w.times(s.Payments)
	w.times(s.OtherCity)
	w.u(uint64(len(s.Dedup)))
	for _, f := range s.Dedup {
		w.fp(f)
	}
	w.u(uint64(len(s.Offsets)))
	for _, o := range s.Offsets {
		w.u(uint64(o.Topic))
		w.u(uint64(o.Partition))
		w.u(uint64(o.Epoch))
		w.i(o.Offset)
	}
	w.u(uint64(len(s.Bills)))
	for _, b := range s.Bills {
		w.str(b.ID)
		st := uint64(b.Status)
		if b.Froze {
			st |= 0x10
		}
		w.u(st)
		w.i(b.Amount)
		w.i(b.DueAt)
		w.u(uint64(b.Stage))
		w.i(b.At)
		w.u(uint64(len(b.Paid)))
		for _, f := range b.Paid {
			w.fp(f)
		}
		w.u(uint64(b.Pool))
	}
	if p := s.Profile; p != nil {
		w.i(int64(p.PayScore))
		var bits uint64
		for bit, on := range map[uint64]bool{profRealName: p.RealNameVerified, profIdentity: p.IdentityComplete,
			profBlacklisted: p.CardBankBlacklisted, profJudicial: p.JudicialDefaulter, profLinkedNegative: p.LinkedAccountNegative} {
			if on {
				bits |= bit
			}
		}
		w.u(bits)
		w.i(p.WealthBalanceFen)
		w.i(p.TransactionLimitFen)
		w.str(p.CardBoundSince)
		w.i(p.PartnerLimitFen)
		w.i(p.WeilidaiLimitFen)
		w.i(p.AlertThresholdFen)
		w.str(p.DefaultElsewhereOn)
	}
	w.u(uint64(s.SettledEpisodes))
	w.u(uint64(len(s.Episodes)))
	for _, e := range s.Episodes {
		w.i(e.DueAt)
		w.i(e.SettledAt - e.DueAt)
	}
	if o := s.Override; o != nil {
		w.i(o.QuotaFen)
		w.str(o.Reason)
		w.str(o.Operator)
		w.i(o.ExpiresAt)
	}
	w.times(s.QuotaChecks)
	for _, v := range s.Outstanding {
		w.i(v)
	}
	if sp := s.Special; sp != nil {
		w.i(sp.QuotaFen)
		w.str(sp.Reason)
		w.str(sp.Operator)
		w.i(sp.ExpiresAt)
	}
	return w.b
}

// Decode reads an encoded State. An empty b is a user never seen.
func Decode(b []byte) (*State, error) {
	s := &State{}
	if len(b) == 0 {
		return s, nil
	}
	v := b[0]
	if v != Version && v != 2 {
		return nil, fmt.Errorf("engine: state version %d, this binary reads 2 and %d", v, Version)
	}
	if len(b) < headerLen {
		return nil, errors.New("engine: state truncated")
	}
	s.Rev = binary.BigEndian.Uint64(b[1:9])
	q := b[9:headerLen]
	switch q[0] {
	case 0:
	case 1:
		s.HasQuota = true
	default:
		return nil, fmt.Errorf("engine: decode state: bad quota flag %d", q[0])
	}
	s.QuotaFen = int64(binary.BigEndian.Uint64(q[1:9]))
	s.Recomputes = int64(binary.BigEndian.Uint64(q[9:17]))
	s.CycleDone = int64(binary.BigEndian.Uint64(q[17:25]))
	r := reader{b: b[headerLen:]}
	flags := r.u()
	s.FrozenOverdue = flags&flagFrozenOverdue != 0
	s.FrozenJudicial = flags&flagFrozenJudicial != 0
	s.Known = flags&flagKnown != 0
	s.Zone = r.str()
	s.PrunedDay = int32(r.i())

	n := r.n(1 << 12)
	if n > 0 {
		s.Days = make([]Day, n)
	}
	prev := int64(0)
	for i := range s.Days {
		prev += r.i()
		s.Days[i] = Day{Day: int32(prev), Payments: int32(r.u())}
	}
	n = r.n(1 << 10)
	if n > 0 {
		s.Months = make([]Month, n)
	}
	prev = 0
	for i := range s.Months {
		prev += r.i()
		s.Months[i] = Month{YM: int32(prev), SpendFen: r.i(), SocialN: int32(r.u()), LoginDays: int32(r.u()), LoginMask: uint32(r.u())}
	}
	for k := range 2 {
		n = r.n(1 << 12)
		var ps []Place
		if n > 0 {
			ps = make([]Place, n)
		}
		for i := range ps {
			ps[i] = Place{Name: r.str(), LastDay: int32(r.i())}
			if v == 2 {
				// a lifetime count: taken as the last day's bucket's
				if n := int32(r.u()); n > 0 && k == 0 {
					ps[i].LoginBucket, ps[i].Logins = LoginBucketOf(ps[i].LastDay), []int32{n}
				}
				continue
			}
			if nb := r.n(1 << 10); nb > 0 {
				ps[i].LoginBucket = int32(int64(ps[i].LastDay/LoginBucketDays) - r.i())
				ps[i].Logins = make([]int32, nb)
				for j := range ps[i].Logins {
					ps[i].Logins[j] = int32(r.u())
				}
			}
		}
		if k == 0 {
			s.Devices = ps
		} else {
			s.Cities = ps
		}
	}
	s.Payments = r.times()
	s.OtherCity = r.times()
	n = r.n(1 << 12)
	if n > 0 {
		s.Dedup = make([]uint64, n)
	}
	for i := range s.Dedup {
		s.Dedup[i] = r.fp()
	}
	n = r.n(1 << 10)
	if n > 0 {
		s.Offsets = make([]Offset, n)
	}
	for i := range s.Offsets {
		s.Offsets[i] = Offset{Topic: int32(r.u()), Partition: int32(r.u()), Epoch: uint32(r.u()), Offset: r.i()}
	}
	n = r.n(1 << 10)
	if n > 0 {
		s.Bills = make([]Bill, n)
	}
	for i := range s.Bills {
		bl := Bill{ID: r.str()}
		st := r.u()
		bl.Status, bl.Froze = BillStatus(st&0x0f), st&0x10 != 0
		bl.Amount, bl.DueAt, bl.Stage, bl.At = r.i(), r.i(), int8(r.u()), r.i()
		if np := r.n(1 << 10); np > 0 {
			bl.Paid = make([]uint64, np)
			for j := range bl.Paid {
				bl.Paid[j] = r.fp()
			}
		}
		if v > 2 {
			bl.Pool = Pool(r.u())
		}
		s.Bills[i] = bl
	}
	if flags&flagProfile != 0 {
		p := &Profile{PayScore: int32(r.i())}
		bits := r.u()
		p.RealNameVerified, p.IdentityComplete = bits&profRealName != 0, bits&profIdentity != 0
		p.CardBankBlacklisted, p.JudicialDefaulter = bits&profBlacklisted != 0, bits&profJudicial != 0
		p.LinkedAccountNegative = bits&profLinkedNegative != 0
		p.WealthBalanceFen, p.TransactionLimitFen, p.CardBoundSince = r.i(), r.i(), r.str()
		if v > 2 {
			p.PartnerLimitFen, p.WeilidaiLimitFen, p.AlertThresholdFen, p.DefaultElsewhereOn = r.i(), r.i(), r.i(), r.str()
		}
		s.Profile = p
	}
	s.SettledEpisodes = int32(r.u())
	n = r.n(1 << 10)
	if n > 0 {
		s.Episodes = make([]Episode, n)
	}
	for i := range s.Episodes {
		if v == 2 {
			// a local due day and whole days: taken at 00:00 UTC of it
			due := r.i() * 86400
			s.Episodes[i] = Episode{DueAt: due, SettledAt: due + int64(r.u())*86400}
			continue
		}
		due := r.i()
		s.Episodes[i] = Episode{DueAt: due, SettledAt: due + r.i()}
	}
	if flags&flagOverride != 0 {
		s.Override = &Override{QuotaFen: r.i(), Reason: r.str(), Operator: r.str(), ExpiresAt: r.i()}
	}
	s.QuotaChecks = r.times()
	if v > 2 {
		for i := range s.Outstanding {
			s.Outstanding[i] = r.i()
		}
		if flags&flagSpecial != 0 {
			s.Special = &Special{QuotaFen: r.i(), Reason: r.str(), Operator: r.str(), ExpiresAt: r.i()}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("engine: decode state: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("engine: decode state: %d bytes left over", len(r.b))
	}
	return s, nil
}

type writer struct{ b []byte }

func (w *writer) u(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) i(v int64)  { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) str(s string) {
	w.u(uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *writer) fp(f uint64) {
	for k := fpBytes - 1; k >= 0; k-- {
		w.b = append(w.b, byte(f>>(8*k)))
	}
}

// times writes a newest-first list as the first time and the (non-negative
// when sorted) gaps after it.
func (w *writer) times(ts []int64) {
	w.u(uint64(len(ts)))
	prev := int64(0)
	for k, t := range ts {
		if k == 0 {
			w.i(t)
		} else {
			w.i(prev - t)
		}
		prev = t
	}
}

type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) u() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) i() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// n reads a list length, refusing one above max (a corrupt value must not
// make Decode allocate without bound).
func (r *reader) n(max int) int {
	v := r.u()
	if v > uint64(max) {
		if r.err == nil {
			r.err = fmt.Errorf("list of %d entries", v)
		}
		return 0
	}
	if r.err != nil {
		return 0
	}
	return int(v)
}

func (r *reader) str() string {
	n := r.n(1 << 16)
	if r.err != nil {
		return ""
	}
	if n > len(r.b) {
		r.err = errTruncated
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) fp() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < fpBytes {
		r.err = errTruncated
		return 0
	}
	var f uint64
	for k := range fpBytes {
		f = f<<8 | uint64(r.b[k])
	}
	r.b = r.b[fpBytes:]
	return f
}

func (r *reader) times() []int64 {
	n := r.n(1 << 10)
	if n == 0 || r.err != nil {
		return nil
	}
	out := make([]int64, n)
	for k := range out {
		if k == 0 {
			out[k] = r.i()
		} else {
			out[k] = out[k-1] - r.i()
		}
	}
	return out
}
