package consumers_test

// The generator of the bad-input suite (badinput_test.go, issue 12): valid
// records written by events.Marshal, and bad records made from valid ones
// by byte-level edits, each with the dead letter it must become.

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
)

// biTagHeader tags every generated record ("ok-N", "bad-N"): the decoder
// ignores it and a dead letter keeps it, so each dead letter names its
// record.
const biTagHeader = "x-fenqi-badinput"

// biRecord is one generated record and, for a bad one, the dead letter it
// must become.
type biRecord struct {
	tag   string
	class string // "" for a valid record
	topic string
	msg   kafka.Message
	user  string // the user the record names (a bad one would change it if applied)
	// field is the dead letter's fenqi-error-field; words must all be in
	// its fenqi-error.
	field string
	words []string
	// after is the tag of a record this one must follow (same partition).
	after string
}

func (r *biRecord) bad() bool { return r.class != "" }

// biUsers are the valid users of each kind: every kind of user has events
// on one topic only, so that its final state does not depend on how the
// reader interleaves topics.
type biUsers struct {
	pay, login, repay, profile, bills []string
}

func newBIUsers(n int) biUsers {
	mk := func(kind string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("u-%s-%04d", kind, i)
		}
		return out
	}
	return biUsers{pay: mk("pay", n), login: mk("login", n), repay: mk("repay", n), profile: mk("profile", n),
		bills: mk("bills", max(2, n/8))}
}

// The event builders: valid events at or before now.

func biPay(id, user string, at time.Time, fen int64, scene events.Scene, inst int) events.Event {
	return events.Event{ID: id, Type: events.TypePayment, Source: "//pay.example.com", Subject: user, Time: at,
		Payment: &events.Payment{UserID: user, AmountFen: fen, Currency: "CNY", Scene: scene, MerchantID: "m-jd",
			Installments: inst, DeviceID: "dev-1", City: "Shanghai", Auth: events.AuthFace}}
}

func biLogin(id, user string, at time.Time, device, city string) events.Event {
	return events.Event{ID: id, Type: events.TypeLogin, Source: "//passport.example.com", Subject: user, Time: at,
		Login: &events.Login{UserID: user, DeviceID: device, City: city, IP: "203.0.113.7", Auth: events.AuthPassword}}
}

func biDue(id, user, bill string, at time.Time, fen int64, dueAt time.Time) events.Event {
	return events.Event{ID: id, Type: events.TypeRepaymentDue, Source: "//billing.example.com", Subject: user, Time: at,
		Due: &events.RepaymentDue{UserID: user, BillID: bill, AmountFen: fen, DueAt: dueAt}}
}

func biPaid(id, user, bill string, at time.Time, fen int64) events.Event {
	return events.Event{ID: id, Type: events.TypeRepaymentPaid, Source: "//billing.example.com", Subject: user, Time: at,
		Paid: &events.RepaymentPaid{UserID: user, BillID: bill, AmountFen: fen}}
}

func biProfile(id, user string, at time.Time, score int) events.Event {
	return events.Event{ID: id, Type: events.TypeProfile, Source: "//credit.example.com", Subject: user, Time: at,
		Profile: &events.Profile{UserID: user, PayScore: score, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2019-05-01", WealthBalanceFen: 500_000, TransactionLimitFen: 5_000_000}}
}

func biMarshal(e events.Event) []byte {
	v, err := events.Marshal(e)
	if err != nil {
		panic(err)
	}
	return v
}

// structured is e as fenqi's producers write it.
func structured(e events.Event) kafka.Message {
	return kafka.Message{Key: []byte(e.Subject), Value: biMarshal(e),
		Headers: []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}}
}

// binaryMode is e in binary mode: attributes in ce_ headers, the data as the value.
func binaryMode(e events.Event) kafka.Message {
	v := biMarshal(e)
	return kafka.Message{Key: []byte(e.Subject), Value: memberValue(v, "data"),
		Headers: []kafka.Header{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte(e.ID)},
			{Key: "ce_type", Value: []byte(e.Type)},
			{Key: "ce_source", Value: []byte(e.Source)},
			{Key: "ce_time", Value: []byte(e.Time.UTC().Format(time.RFC3339Nano))},
			{Key: "ce_subject", Value: []byte(e.Subject)},
			{Key: "content-type", Value: []byte(events.ContentTypeJSON)},
		}}
}

// Byte-level edits of compact JSON (what events.Marshal writes).

// skipValue returns the end of the JSON value starting at v[i].
func skipValue(v []byte, i int) int {
	switch v[i] {
	case '"':
		for j := i + 1; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		panic("unterminated string")
	case '{', '[':
		depth := 0
		for j := i; j < len(v); j++ {
			switch v[j] {
			case '"':
				j = skipValue(v, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		panic("unterminated object")
	default:
		j := i
		for j < len(v) && !bytes.ContainsRune([]byte(",}]"), rune(v[j])) {
			j++
		}
		return j
	}
}

// member finds member name's value: [start, end) of the value, and where
// the member's name starts. Names are unique across envelope and data in
// what events.Marshal writes.
func member(v []byte, name string) (nameAt, start, end int) {
	needle := []byte(`"` + name + `":`)
	nameAt = bytes.Index(v, needle)
	if nameAt < 0 {
		panic(fmt.Sprintf("no member %q in %s", name, v))
	}
	start = nameAt + len(needle)
	return nameAt, start, skipValue(v, start)
}

func memberValue(v []byte, name string) []byte {
	_, s, e := member(v, name)
	return append([]byte(nil), v[s:e]...)
}

// setMember replaces member name's value by the raw bytes lit.
func setMember(v []byte, name, lit string) []byte {
	_, s, e := member(v, name)
	return concat(v[:s], []byte(lit), v[e:])
}

// renameMember gives member name the raw name raw (without quotes).
func renameMember(v []byte, name, raw string) []byte {
	at, _, _ := member(v, name)
	return concat(v[:at], []byte(`"`+raw+`"`), v[at+len(name)+2:])
}

// delMember removes member name and a comma beside it.
func delMember(v []byte, name string) []byte {
	at, _, e := member(v, name)
	if v[e] == ',' {
		return concat(v[:at], v[e+1:])
	}
	return concat(v[:at-1], v[e:]) // the last member: drop the comma before it
}

// addData adds the raw member text m as the data object's first member.
func addData(v []byte, m string) []byte {
	_, s, _ := member(v, "data")
	return concat(v[:s+1], []byte(m+","), v[s+1:])
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// setHeader replaces (or adds) header key's value.
func setHeader(m kafka.Message, key, value string) kafka.Message {
	hs := append([]kafka.Header(nil), m.Headers...)
	for i := range hs {
		if hs[i].Key == key {
			hs[i].Value = []byte(value)
			m.Headers = hs
			return m
		}
	}
	m.Headers = append(hs, kafka.Header{Key: key, Value: []byte(value)})
	return m
}

func addHeader(m kafka.Message, key, value string) kafka.Message {
	m.Headers = append(append([]kafka.Header(nil), m.Headers...), kafka.Header{Key: key, Value: []byte(value)})
	return m
}

func dropHeader(m kafka.Message, key string) kafka.Message {
	var hs []kafka.Header
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	m.Headers = hs
	return m
}

// withValue returns m with value v.
func withValue(m kafka.Message, v []byte) kafka.Message { m.Value = v; return m }

// biClass is one class of bad record: gen makes its i-th record from a
// fresh id and a valid user of the right kind.
type biClass struct {
	name string
	n    int // records per scale unit (default 1: the base count)
	// fixed: n records whatever the scale. (Over 64 KiB each: under
	// -race, kfake answers a fetch of several MiB later than a kafka-go
	// reader's MaxWait, its read deadline, and the fetch is tried again;
	// 500 of them, FENQI_BADINPUT_N=5, make the drain 4 times longer.)
	fixed bool
	gen   func(g *biGen, i int, id string) biRecord
}

// biGen generates the records.
type biGen struct {
	rng   *rand.Rand
	users biUsers
	now   time.Time
}

func (g *biGen) pick(us []string) string { return us[g.rng.IntN(len(us))] }

// goodPay is a valid payment of a valid payer at a recent time.
func (g *biGen) goodPay(id string) (events.Event, string) {
	u := g.pick(g.users.pay)
	return biPay(id, u, g.now.Add(-time.Duration(1+g.rng.IntN(600))*time.Second), 1_000+int64(g.rng.IntN(9_000)), events.SceneEcommerce, 0), u
}

func (g *biGen) goodLogin(id string) (events.Event, string) {
	u := g.pick(g.users.login)
	return biLogin(id, u, g.now.Add(-time.Duration(1+g.rng.IntN(600))*time.Second), "dev-evil", "Lhasa"), u
}

func (g *biGen) goodDue(id string) (events.Event, string) {
	u := g.pick(g.users.repay)
	return biDue(id, u, "b-"+id, g.now.Add(-time.Minute), 20_000, g.now.Add(10*24*time.Hour)), u
}

func (g *biGen) goodProfile(id string) (events.Event, string) {
	u := g.pick(g.users.profile)
	return biProfile(id, u, g.now.Add(-time.Minute), 333), u
}

// anyGood is a valid event of a kind chosen by i.
func (g *biGen) anyGood(i int, id string) (events.Event, string, string) {
	switch i % 4 {
	case 0:
		e, u := g.goodPay(id)
		return e, u, events.TopicPayments
	case 1:
		e, u := g.goodLogin(id)
		return e, u, events.TopicLogins
	case 2:
		e, u := g.goodDue(id)
		return e, u, events.TopicRepayments
	default:
		e, u := g.goodProfile(id)
		return e, u, events.TopicProfiles
	}
}

func refused(class, topic string, m kafka.Message, user, field string, words ...string) biRecord {
	return biRecord{class: class, topic: topic, msg: m, user: user, field: field, words: words}
}

// biClasses are the classes of bad records (issue 12 and docs/events.md,
// "Limits").
func biClasses() []biClass {
	return []biClass{
		{name: "malformed JSON", gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodPay(id)
			m := structured(e)
			v := m.Value
			variants := [][]byte{
				v[:1+g.rng.IntN(len(v)-2)], // cut anywhere
				append(append([]byte(nil), v...), 'x'),
				append(append([]byte(nil), v...), []byte(`{}`)...),
				bytes.Replace(v, []byte(`,"type"`), []byte(`,,"type"`), 1),
				bytes.Replace(v, []byte(`"amount_fen":`), []byte(`"amount_fen"`), 1),
				bytes.Replace(v, []byte(`"currency":"CNY"`), []byte(`"currency":'CNY'`), 1),
				[]byte(``),
				[]byte(`null`),
				[]byte(`[` + string(v) + `]`),
				[]byte(`"` + id + `"`),
				bytes.Replace(v, []byte(`"CNY"`), []byte("\"C\x01NY\""), 1),                                       // a raw control character in a string
				concat(v[:len(v)-1], []byte(`,"x":[`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`]}`)), // nesting
			}
			field := "value"
			if i%len(variants) == 7 {
				// JSON null reads as an empty object (as encoding/json
				// reads it): refused for its first missing attribute.
				field = "specversion"
			}
			return refused("malformed JSON", events.TopicPayments, withValue(m, variants[i%len(variants)]), u, field)
		}},
		{name: "wrong JSON type", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			type wt struct{ field, lit string }
			pays := []wt{{"data.user_id", `42`}, {"data.amount_fen", `"1000"`}, {"data.amount_fen", `1.5`}, {"data.amount_fen", `1e3`},
				{"data.amount_fen", `100.0`}, {"data.amount_fen", `true`}, {"data.amount_fen", `-5`}, {"data.amount_fen", `0`},
				{"data.amount_fen", `9007199254740992`}, {"data.amount_fen", `99999999999999999999`},
				{"data.currency", `["CNY"]`}, {"data.scene", `1`}, {"data.merchant_id", `{}`}, {"data.installments", `"3"`},
				{"data.installments", `3.0`}, {"data.device_id", `false`}, {"data.city", `12`}, {"data.auth", `null`},
				{"id", `7`}, {"source", `{}`}, {"subject", `[]`}, {"time", `1764000000`}, {"type", `true`},
				{"specversion", `1.0`}, {"datacontenttype", `1`}, {"data", `"{}"`}, {"data", `[]`}}
			c := pays[i%len(pays)]
			e, u := g.goodPay(id)
			m := structured(e)
			name, _ := strings.CutPrefix(c.field, "data.")
			return refused("wrong JSON type", events.TopicPayments, withValue(m, setMember(m.Value, name, c.lit)), u, c.field)
		}},
		{name: "wrong JSON type (other events)", gen: func(g *biGen, i int, id string) biRecord {
			type wt struct{ topic, field, lit string }
			cs := []wt{{events.TopicLogins, "data.ip", `2130706433`}, {events.TopicLogins, "data.auth", `["face"]`},
				{events.TopicRepayments, "data.bill_id", `17`}, {events.TopicRepayments, "data.due_at", `1764000000`},
				{events.TopicRepayments, "data.pool", `0`},
				{events.TopicProfiles, "data.pay_score", `"700"`}, {events.TopicProfiles, "data.pay_score", `700.5`},
				{events.TopicProfiles, "data.real_name_verified", `"true"`}, {events.TopicProfiles, "data.real_name_verified", `1`},
				{events.TopicProfiles, "data.wealth_balance_fen", `-1`}, {events.TopicProfiles, "data.card_bound_since", `20190501`},
				{events.TopicProfiles, "data.transaction_limit_fen", `"5000000"`}, {events.TopicProfiles, "data.pay_score", `900`}}
			c := cs[i%len(cs)]
			var e events.Event
			var u string
			switch c.topic {
			case events.TopicLogins:
				e, u = g.goodLogin(id)
			case events.TopicRepayments:
				e, u = g.goodDue(id)
				e.Due.Pool = events.PoolIndependent
			default:
				e, u = g.goodProfile(id)
			}
			m := structured(e)
			name, _ := strings.CutPrefix(c.field, "data.")
			return refused("wrong JSON type", c.topic, withValue(m, setMember(m.Value, name, c.lit)), u, c.field)
		}},
		{name: "missing or null required field", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			fields := []string{"specversion", "id", "type", "source", "time", "subject", "data",
				"data.user_id", "data.amount_fen", "data.currency", "data.scene", "data.merchant_id", "data.installments",
				"data.device_id", "data.city", "data.auth"}
			f := fields[(i/2)%len(fields)]
			e, u := g.goodPay(id)
			m := structured(e)
			name, _ := strings.CutPrefix(f, "data.")
			v := delMember(m.Value, name)
			if i%2 == 1 {
				v = setMember(m.Value, name, `null`)
			}
			return refused("missing or null required field", events.TopicPayments, withValue(m, v), u, f)
		}},
		{name: "unknown type, scene, auth, pool, currency", gen: func(g *biGen, i int, id string) biRecord {
			switch i % 8 {
			case 0:
				e, u := g.goodPay(id)
				m := structured(e)
				return refused("unknown enumeration", events.TopicPayments, withValue(m, setMember(m.Value, "type", `"fenqi.payment.v2"`)), u, "type")
			case 1:
				e, u := g.goodPay(id)
				m := structured(e)
				return refused("unknown enumeration", events.TopicPayments, withValue(m, setMember(m.Value, "scene", `"shopping"`)), u, "data.scene")
			case 2:
				e, u := g.goodPay(id)
				m := structured(e)
				return refused("unknown enumeration", events.TopicPayments, withValue(m, setMember(m.Value, "scene", `"Ecommerce"`)), u, "data.scene")
			case 3:
				e, u := g.goodLogin(id)
				m := structured(e)
				return refused("unknown enumeration", events.TopicLogins, withValue(m, setMember(m.Value, "auth", `"sms"`)), u, "data.auth")
			case 4:
				e, u := g.goodDue(id)
				e.Due.Pool = events.PoolIndependent
				m := structured(e)
				return refused("unknown enumeration", events.TopicRepayments, withValue(m, setMember(m.Value, "pool", `"gold"`)), u, "data.pool")
			case 5:
				e, u := g.goodDue(id)
				e.Due.Pool = events.PoolIndependent
				m := structured(e)
				return refused("unknown enumeration", events.TopicRepayments, withValue(m, setMember(m.Value, "pool", `"Pay_Score"`)), u, "data.pool")
			case 6:
				e, u := g.goodPay(id)
				m := structured(e)
				return refused("unknown enumeration", events.TopicPayments, withValue(m, setMember(m.Value, "currency", `"cny"`)), u, "data.currency")
			default:
				e, u := g.goodPay(id)
				m := binaryMode(e)
				m = setHeader(m, "ce_type", "fenqi.Payment.v1")
				return refused("unknown enumeration", events.TopicPayments, m, u, "type")
			}
		}},
		{name: "time RFC 3339 forbids", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			times := []string{"2026-11-19T18:40:00+24:00", "2026-11-19T18:40:00+00:60", "2026-11-19T18:40:00,5Z",
				"2026-11-19t18:40:00Z", "2026-11-19T18:40:00z", "2026-11-19T18:40:60Z", "2026-11-19T8:40:00Z",
				"2026-11-19T18:40Z", "2026-11-19 18:40:00Z", "2026-11-19T18:40:00.1234567890Z", "2026-11-19T18:40:00",
				"2026-11-19T18:40:00+0800", "2026-11-19T24:00:00Z", "2026-11-31T18:40:00Z", "２026-11-19T18:40:00Z"}
			s := times[(i/3)%len(times)]
			switch i % 3 {
			case 0:
				e, u := g.goodPay(id)
				m := structured(e)
				return refused("time RFC 3339 forbids", events.TopicPayments, withValue(m, setMember(m.Value, "time", strconv.Quote(s))), u, "time")
			case 1:
				e, u := g.goodLogin(id)
				return refused("time RFC 3339 forbids", events.TopicLogins, setHeader(binaryMode(e), "ce_time", s), u, "time")
			default:
				e, u := g.goodDue(id)
				m := structured(e)
				return refused("time RFC 3339 forbids", events.TopicRepayments, withValue(m, setMember(m.Value, "due_at", strconv.Quote(s))), u, "data.due_at")
			}
		}},
		{name: "time out of range", gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodPay(id)
			switch i % 4 {
			case 0:
				e.Time = g.now.Add(5*time.Minute + time.Second)
			case 1:
				e.Time = g.now.Add(365 * 24 * time.Hour)
			case 2:
				e.Time = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
			default:
				d, du := g.goodDue(id)
				d.Due.DueAt = time.Date(2039, 1, 1, 0, 0, 0, 0, time.UTC)
				return refused("time out of range", events.TopicRepayments, structured(d), du, "data.due_at")
			}
			return refused("time out of range", events.TopicPayments, structured(e), u, "time")
		}},
		{name: "invalid UTF-8 in ids", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			bad := []string{"\xff", "\xc3\x28", "\xed\xa0\x80", "\xf0\x28\x8c\x28", "\xe2\x82"}[(i/6)%5]
			e, u := g.goodPay(id)
			m := structured(e)
			switch i % 6 {
			case 0: // the user id merged by a U+FFFD reader: key, subject and user_id agree byte for byte
				bu := u + bad
				v := bytes.ReplaceAll(m.Value, []byte(`"`+u+`"`), []byte(`"`+bu+`"`))
				return refused("invalid UTF-8 in ids", events.TopicPayments, kafka.Message{Key: []byte(bu), Value: v, Headers: m.Headers}, u, "subject", "UTF-8")
			case 1:
				return refused("invalid UTF-8 in ids", events.TopicPayments, withValue(m, setMember(m.Value, "id", `"`+id+bad+`"`)), u, "id", "UTF-8")
			case 2:
				return refused("invalid UTF-8 in ids", events.TopicPayments, withValue(m, setMember(m.Value, "merchant_id", `"m-`+bad+`"`)), u, "data.merchant_id", "UTF-8")
			case 3:
				return refused("invalid UTF-8 in ids", events.TopicPayments, withValue(m, setMember(m.Value, "device_id", `"dev-1`+bad+`"`)), u, "data.device_id", "UTF-8")
			case 4:
				return refused("invalid UTF-8 in ids", events.TopicPayments, withValue(m, setMember(m.Value, "city", `"Shanghai`+bad+`"`)), u, "data.city", "UTF-8")
			default:
				return refused("invalid UTF-8 in ids", events.TopicPayments, withValue(m, setMember(m.Value, "city", `"\ud800"`)), u, "data.city", "UTF-8")
			}
		}},
		{name: "invalid UTF-8 in headers", gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodLogin(id)
			switch i % 4 {
			case 0:
				bu := u + "\xfe"
				m := binaryMode(e)
				m = setHeader(m, "ce_subject", bu)
				m.Key = []byte(bu)
				m.Value = bytes.ReplaceAll(m.Value, []byte(`"`+u+`"`), []byte(`"`+bu+`"`))
				return refused("invalid UTF-8 in headers", events.TopicLogins, m, u, "subject", "UTF-8")
			case 1:
				return refused("invalid UTF-8 in headers", events.TopicLogins, setHeader(binaryMode(e), "ce_id", id+"\xc0"), u, "id", "UTF-8")
			case 2:
				return refused("invalid UTF-8 in headers", events.TopicLogins, setHeader(binaryMode(e), "content-type", "application/json; charset=\xff"), u, "content-type")
			default:
				return refused("invalid UTF-8 in headers", events.TopicLogins, setHeader(structured(e), "content-type", "application/cloudevents+json\xff"), u, "content-type")
			}
		}},
		{name: "id over 128 bytes", gen: func(g *biGen, i int, id string) biRecord {
			long := func(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
			han := strings.Repeat("分", 43) // 129 bytes
			e, u := g.goodPay(id)
			switch i % 6 {
			case 0:
				e.ID = long(id+"-", 129)
				return refused("id over 128 bytes", events.TopicPayments, structured(e), u, "id", "128 bytes")
			case 1:
				e.Payment.MerchantID = long("m-", 129)
				return refused("id over 128 bytes", events.TopicPayments, structured(e), u, "data.merchant_id", "128 bytes")
			case 2:
				e.Payment.DeviceID = long("dev-", 5000)
				return refused("id over 128 bytes", events.TopicPayments, structured(e), u, "data.device_id", "128 bytes")
			case 3:
				e.Payment.City = han
				return refused("id over 128 bytes", events.TopicPayments, structured(e), u, "data.city", "128 bytes")
			case 4:
				e.Source = long("//", 129)
				return refused("id over 128 bytes", events.TopicPayments, binaryMode(e), u, "source", "128 bytes")
			default: // a user id over the cap: key, subject and user_id agree
				lu := long(u+"-", 129)
				e.Subject, e.Payment.UserID = lu, lu
				return refused("id over 128 bytes", events.TopicPayments, structured(e), u, "subject", "128 bytes")
			}
		}},
		{name: "control character in ids", gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodLogin(id)
			switch i % 3 {
			case 0:
				e.Login.DeviceID = "dev\n1"
				return refused("control character in ids", events.TopicLogins, structured(e), u, "data.device_id", "control")
			case 1:
				e.Login.City = "Shang\u0085hai"
				return refused("control character in ids", events.TopicLogins, structured(e), u, "data.city", "control")
			default:
				return refused("control character in ids", events.TopicLogins, setHeader(binaryMode(e), "ce_id", id+"\x00"), u, "id", "control")
			}
		}},
		{name: "repeated or contradictory headers", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodPay(id)
			switch i % 8 {
			case 0:
				return refused("repeated or contradictory headers", events.TopicPayments,
					addHeader(structured(e), "content-type", events.ContentTypeCloudEvents), u, "content-type", "repeated")
			case 1:
				return refused("repeated or contradictory headers", events.TopicPayments,
					addHeader(binaryMode(e), "Content-Type", events.ContentTypeJSON), u, "content-type", "repeated")
			case 2:
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(binaryMode(e), "ce_id", id), u, "id", "repeated")
			case 3:
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(binaryMode(e), "CE_ID", id+"-2"), u, "id", "repeated")
			case 4: // structured, a ce_id header that contradicts the envelope's id
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(structured(e), "ce_id", id+"-other"), u, "id")
			case 5:
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(structured(e), "ce_subject", g.pick(g.users.pay)+"-x"), u, "subject")
			case 6:
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(structured(e), "ce_datacontenttype", "text/plain"), u, "datacontenttype")
			default:
				return refused("repeated or contradictory headers", events.TopicPayments, addHeader(binaryMode(e), "ce_Subject", u), u, "subject", "repeated")
			}
		}},
		{name: "binary-mode header mix", n: 2, gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodPay(id)
			b := binaryMode(e)
			switch i % 9 {
			case 0: // binary attributes with a structured content type
				return refused("binary-mode header mix", events.TopicPayments, setHeader(b, "content-type", events.ContentTypeCloudEvents), u, "content-type")
			case 1: // binary mode with the whole envelope as the value: the data's fields are missing
				return refused("binary-mode header mix", events.TopicPayments, withValue(b, structured(e).Value), u, "data.user_id")
			case 2:
				return refused("binary-mode header mix", events.TopicPayments, dropHeader(b, "ce_id"), u, "id")
			case 3:
				return refused("binary-mode header mix", events.TopicPayments, dropHeader(b, "ce_time"), u, "time")
			case 4:
				return refused("binary-mode header mix", events.TopicPayments, setHeader(b, "ce_specversion", "0.3"), u, "specversion")
			case 5:
				return refused("binary-mode header mix", events.TopicPayments, setHeader(b, "content-type", "text/plain"), u, "content-type")
			case 6:
				return refused("binary-mode header mix", events.TopicPayments, addHeader(b, "ce_datacontenttype", "application/xml"), u, "datacontenttype")
			case 7: // a structured record whose content-type says JSON, with no specversion
				s := structured(e)
				s = setHeader(s, "content-type", events.ContentTypeJSON)
				return refused("binary-mode header mix", events.TopicPayments, withValue(s, delMember(s.Value, "specversion")), u, "specversion")
			default:
				return refused("binary-mode header mix", events.TopicPayments, setHeader(b, "content-type", "application/jſon"), u, "content-type")
			}
		}},
		{name: "JSON member names", gen: func(g *biGen, i int, id string) biRecord {
			e, u := g.goodPay(id)
			m := structured(e)
			switch i % 6 {
			case 0:
				return refused("JSON member names", events.TopicPayments, withValue(m, renameMember(m.Value, "scene", "SCENE")), u, "data.scene", "exactly")
			case 1:
				return refused("JSON member names", events.TopicPayments, withValue(m, renameMember(m.Value, "scene", "ſcene")), u, "data.scene", "exactly")
			case 2:
				return refused("JSON member names", events.TopicPayments, withValue(m, renameMember(m.Value, "auth", `\u0041uth`)), u, "data.auth", "exactly")
			case 3: // a repeated member, the second one larger
				return refused("JSON member names", events.TopicPayments, withValue(m, addData(m.Value, `"amount_fen":99999999`)), u, "data.amount_fen", "repeated")
			case 4:
				return refused("JSON member names", events.TopicPayments, withValue(m, addData(m.Value, `"user_id":"`+g.pick(g.users.pay)+`"`)), u, "data.user_id", "repeated")
			default:
				return refused("JSON member names", events.TopicPayments, withValue(m, concat(m.Value[:len(m.Value)-1], []byte(`,"data_base64":"e30="}`))), u, "data")
			}
		}},
		{name: "other field rules", gen: func(g *biGen, i int, id string) biRecord {
			switch i % 5 {
			case 0:
				e, u := g.goodLogin(id)
				e.Login.IP = "203.0.113.7:443"
				return refused("other field rules", events.TopicLogins, structured(e), u, "data.ip")
			case 1:
				e, u := g.goodLogin(id)
				e.Login.IP = "fe80::1%eth0"
				return refused("other field rules", events.TopicLogins, structured(e), u, "data.ip")
			case 2:
				e, u := g.goodPay(id)
				e.Payment.Installments = 5
				return refused("other field rules", events.TopicPayments, structured(e), u, "data.installments")
			case 3:
				e, u := g.goodProfile(id)
				e.Profile.CardBoundSince = "2019-02-30"
				return refused("other field rules", events.TopicProfiles, structured(e), u, "data.card_bound_since")
			default:
				e, u := g.goodPay(id)
				e.Payment.UserID = g.pick(g.users.pay) + "-other"
				return refused("other field rules", events.TopicPayments, structured(e), u, "data.user_id")
			}
		}},
		{name: "key differs from the subject", gen: func(g *biGen, i int, id string) biRecord {
			e, u, topic := g.anyGood(i, id)
			m := structured(e)
			if i%2 == 1 {
				m = binaryMode(e)
			}
			m.Key = []byte([]string{u + "-x", strings.ToUpper(u), " " + u, "u-other"}[(i/2)%4])
			return refused("key differs from the subject", topic, m, u, "key")
		}},
		{name: "value over the size limit", fixed: true, gen: func(g *biGen, i int, id string) biRecord {
			e, u, topic := g.anyGood(i, id)
			m := structured(e)
			pad := events.DefaultMaxBytes + 1 - len(m.Value) + g.rng.IntN(8<<10)
			if i < 2 {
				// 1,048,000 bytes (issue 12 #1): the record fits in a 1 MiB
				// batch, its dead letter would not unless cut.
				pad = 1_048_000 - len(m.Value) - len(`,"pad":""`)
			}
			return refused("value over the size limit", topic, withValue(m, addData(m.Value, `"pad":"`+strings.Repeat("a", pad)+`"`)), u, "value")
		}},
		{name: "amount above limits.max_amount_fen", gen: func(g *biGen, i int, id string) biRecord {
			const over = 100_000_001 // 1,000,000 yuan and a fen: the decoder takes it, state does not
			amounts := []int64{over, 500_000_000, events.MaxAmountFen}
			fen := amounts[(i/3)%len(amounts)]
			switch i % 3 {
			case 0:
				e, u := g.goodPay(id)
				e.Payment.AmountFen = fen
				return refused("amount above limits.max_amount_fen", events.TopicPayments, structured(e), u, "", "limits.max_amount_fen")
			case 1:
				e, u := g.goodDue(id)
				e.Due.AmountFen = fen
				return refused("amount above limits.max_amount_fen", events.TopicRepayments, structured(e), u, "", "limits.max_amount_fen")
			default:
				u := g.pick(g.users.repay)
				e := biPaid(id, u, "b-"+u+"-1", g.now.Add(-time.Minute), fen)
				return refused("amount above limits.max_amount_fen", events.TopicRepayments, binaryMode(e), u, "", "limits.max_amount_fen")
			}
		}},
		{name: "wrong topic", gen: func(g *biGen, i int, id string) biRecord {
			e, u, topic := g.anyGood(i, id)
			wrong := []string{events.TopicLogins, events.TopicRepayments, events.TopicProfiles, events.TopicPayments}[i%4]
			_ = topic
			m := structured(e)
			if i%3 == 0 {
				m = binaryMode(e)
			}
			return refused("wrong topic", wrong, m, u, "type", "do not belong on topic")
		}},
	}
}

// biBase is the number of records of a class at scale 1.
const biBase = 100

// generate returns the valid records and the bad ones, each list in the
// order it is to be produced on its topic, and the users touched.
func (g *biGen) generate(scale int) (valid, bad []biRecord) {
	n := 0
	tag := func(prefix string) string { n++; return fmt.Sprintf("%s-%06d", prefix, n) }
	addValid := func(topic string, e events.Event, binary bool) biRecord {
		m := structured(e)
		if binary {
			m = binaryMode(e)
		}
		r := biRecord{tag: tag("ok"), topic: topic, msg: m, user: e.Subject}
		valid = append(valid, r)
		return r
	}
	u := g.users
	ago := func(d time.Duration) time.Time { return g.now.Add(-d) }
	night := time.Date(2026, 11, 20, 2, 30, 0, 0, g.now.Location())
	scenes := []events.Scene{events.SceneEcommerce, events.SceneLocalLife, events.SceneTransfer, events.SceneMedical}
	for k, user := range u.pay {
		for j := range 4 {
			at := ago(time.Duration(10+j*7+k%5) * time.Minute)
			fen := int64(1_000 + 1_000*j + k)
			if j == 3 && k%3 == 0 {
				at, fen = night, 250_000+int64(k) // night, large: an alert
			}
			inst := []int{0, 0, 1, 3}[j]
			addValid(events.TopicPayments, biPay(fmt.Sprintf("p-%s-%d", user, j), user, at, fen, scenes[(j+k)%4], inst), j == 2)
		}
	}
	for k, user := range u.login {
		for j := range 3 {
			addValid(events.TopicLogins, biLogin(fmt.Sprintf("l-%s-%d", user, j), user, ago(time.Duration(60-j*10)*time.Minute),
				fmt.Sprintf("dev-%d", (k+j)%3), []string{"Shanghai", "Beijing", "Chengdu"}[(k*j)%3]), j == 1)
		}
	}
	for k, user := range u.repay {
		due := g.now.Add(time.Duration(3+k%20) * 24 * time.Hour)
		addValid(events.TopicRepayments, biDue("d-"+user+"-1", user, "b-"+user+"-1", ago(3*time.Hour), 30_000, due), false)
		addValid(events.TopicRepayments, biPaid("pd-"+user+"-1", user, "b-"+user+"-1", ago(2*time.Hour), 10_000+int64(k)), k%2 == 0)
		addValid(events.TopicRepayments, biDue("d-"+user+"-2", user, "b-"+user+"-2", ago(time.Hour), 45_000, due.Add(30*24*time.Hour)), false)
	}
	for k, user := range u.profile {
		addValid(events.TopicProfiles, biProfile("pr-"+user+"-1", user, ago(5*time.Hour), 600+k%200), false)
		addValid(events.TopicProfiles, biProfile("pr-"+user+"-2", user, ago(time.Hour), 650+k%150), k%2 == 1)
	}
	// Users at limits.max_open_bills (24), then bills beyond it.
	lastBill := map[string]string{}
	for _, user := range u.bills {
		for j := range 24 {
			r := addValid(events.TopicRepayments, biDue(fmt.Sprintf("d-%s-%02d", user, j), user, fmt.Sprintf("b-%s-%02d", user, j),
				ago(time.Duration(48-j)*time.Hour), 10_000, g.now.Add(time.Duration(5+j)*24*time.Hour)), j%5 == 4)
			lastBill[user] = r.tag
		}
	}

	for _, c := range biClasses() {
		per := max(1, c.n) * biBase * scale
		if c.fixed {
			per = max(1, c.n) * biBase
		}
		for i := range per {
			id := fmt.Sprintf("bad-%06d", n+1)
			r := c.gen(g, i, id)
			r.tag = tag("bad")
			r.class = c.name
			bad = append(bad, r)
		}
	}
	for k, user := range u.bills {
		for j := range 3 {
			id := fmt.Sprintf("bad-%06d", n+1)
			e := biDue(id, user, fmt.Sprintf("b-%s-x%d", user, j), g.now.Add(-time.Minute), 10_000+int64(k), g.now.Add(40*24*time.Hour))
			m := structured(e)
			if j == 1 {
				m = binaryMode(e)
			}
			r := refused("more than limits.max_open_bills", events.TopicRepayments, m, user, "", "limits.max_open_bills")
			r.tag, r.after = tag("bad"), lastBill[user]
			bad = append(bad, r)
		}
	}
	return valid, bad
}

// interleave puts the bad records among the valid ones of their topic at
// random places (each after the record it must follow), and returns the
// records to produce by topic. Every record carries its tag header.
func (g *biGen) interleave(valid, bad []biRecord) map[string][]kafka.Message {
	type slot struct {
		at  float64 // position among the topic's valid records
		seq int
		r   biRecord
	}
	pos := map[string]float64{}
	byTopic := map[string][]slot{}
	for i, r := range valid {
		pos[r.tag] = float64(len(byTopic[r.topic]))
		byTopic[r.topic] = append(byTopic[r.topic], slot{at: pos[r.tag], seq: i, r: r})
	}
	for i, r := range bad {
		lo := -1.0
		if r.after != "" {
			lo = pos[r.after]
		}
		hi := float64(len(byTopic[r.topic]))
		at := lo + (hi-lo)*g.rng.Float64()
		if at <= lo {
			at = lo + 0.5
		}
		byTopic[r.topic] = append(byTopic[r.topic], slot{at: at, seq: len(valid) + i, r: r})
	}
	out := map[string][]kafka.Message{}
	for topic, ss := range byTopic {
		slices.SortStableFunc(ss, func(a, b slot) int {
			if c := cmp.Compare(a.at, b.at); c != 0 {
				return c
			}
			return cmp.Compare(a.seq, b.seq)
		})
		for _, s := range ss {
			m := s.r.msg
			m.Headers = append(append([]kafka.Header(nil), m.Headers...), kafka.Header{Key: biTagHeader, Value: []byte(s.r.tag)})
			out[topic] = append(out[topic], m)
		}
	}
	return out
}

// validOnly is the valid records by topic, in their order, tagged.
func validOnly(valid []biRecord) map[string][]kafka.Message {
	out := map[string][]kafka.Message{}
	for _, r := range valid {
		m := r.msg
		m.Headers = append(append([]kafka.Header(nil), m.Headers...), kafka.Header{Key: biTagHeader, Value: []byte(r.tag)})
		out[r.topic] = append(out[r.topic], m)
	}
	return out
}
