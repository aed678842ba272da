package events

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNow is the clock of every test decoder.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testTime is the event time of the fixtures: one minute before testNow.
var testTime = testNow.Add(-time.Minute)

func testDecoder() Decoder { return Decoder{Now: func() time.Time { return testNow }} }

// absent, as the value of a mutation, removes the field.
type absentT struct{}

var absent absentT

// raw embeds literal JSON in a fixture (numbers like 1.5 or 1e3).
type raw = json.RawMessage

const user = "u-1001"

func validData(typ string) map[string]any {
	switch typ {
	case TypePayment:
		return map[string]any{
			"user_id": user, "amount_fen": 12345, "currency": "CNY", "scene": "ecommerce",
			"merchant_id": "m-jd", "installments": 3, "device_id": "dev-1", "city": "Shanghai", "auth": "face",
		}
	case TypeLogin:
		return map[string]any{"user_id": user, "device_id": "dev-1", "city": "Shanghai", "ip": "203.0.113.7", "auth": "password"}
	case TypeRepaymentDue:
		return map[string]any{"user_id": user, "bill_id": "b-1", "amount_fen": 50000, "due_at": "2025-03-10T00:00:00+08:00", "pool": "independent"}
	case TypeRepaymentPaid:
		return map[string]any{"user_id": user, "bill_id": "b-1", "amount_fen": 50000}
	case TypeProfile:
		return map[string]any{
			"user_id": user, "pay_score": 700, "real_name_verified": true, "identity_complete": true,
			"card_bound_since": "2023-05-20", "card_bank_blacklisted": false, "wealth_balance_fen": 1000000,
			"judicial_defaulter": false, "linked_account_negative": false,
			"transaction_limit_fen": 200000, "timezone": "Asia/Shanghai",
			"partner_limit_fen": 3000000, "weilidai_limit_fen": 1500000, "alert_threshold_fen": 100000,
			"serious_default_elsewhere_on": "2022-11-03",
		}
	case TypeOperator:
		return map[string]any{
			"user_id": user, "action": "set_override", "quota_fen": 800000, "reason": "VIP 客户 review",
			"operator": "alice", "expires_at": "2025-06-01T00:00:00+08:00",
		}
	}
	panic("no fixture for " + typ)
}

// wantEvent is what validData decodes to.
func wantEvent(typ string) Event {
	e := Event{ID: "evt-1", Type: typ, Source: "test/upstream", Subject: user, Time: testTime}
	switch typ {
	case TypePayment:
		e.Payment = &Payment{UserID: user, AmountFen: 12345, Currency: "CNY", Scene: SceneEcommerce,
			MerchantID: "m-jd", Installments: 3, DeviceID: "dev-1", City: "Shanghai", Auth: AuthFace}
	case TypeLogin:
		e.Login = &Login{UserID: user, DeviceID: "dev-1", City: "Shanghai", IP: "203.0.113.7", Auth: AuthPassword}
	case TypeRepaymentDue:
		e.Due = &RepaymentDue{UserID: user, BillID: "b-1", AmountFen: 50000, DueAt: time.Date(2025, 3, 9, 16, 0, 0, 0, time.UTC),
			Pool: PoolIndependent}
	case TypeRepaymentPaid:
		e.Paid = &RepaymentPaid{UserID: user, BillID: "b-1", AmountFen: 50000}
	case TypeProfile:
		e.Profile = &Profile{UserID: user, PayScore: 700, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2023-05-20", WealthBalanceFen: 1000000, TransactionLimitFen: 200000, Timezone: "Asia/Shanghai",
			PartnerLimitFen: 3000000, WeilidaiLimitFen: 1500000, AlertThresholdFen: 100000, SeriousDefaultElsewhereOn: "2022-11-03"}
	case TypeOperator:
		e.Op = &Operator{UserID: user, Action: OperatorSetOverride, QuotaFen: 800000, Reason: "VIP 客户 review",
			Operator: "alice", ExpiresAt: time.Date(2025, 5, 31, 16, 0, 0, 0, time.UTC)}
	}
	return e
}

func validAttrs(typ string) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": "evt-1", "type": typ, "source": "test/upstream",
		"subject": user, "time": testTime.Format(time.RFC3339Nano),
	}
}

// mutate returns a copy of m with the changes applied.
func mutate(m map[string]any, changes map[string]any) map[string]any {
	m = maps.Clone(m)
	for k, v := range changes {
		if v == any(absent) {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type mode string

const (
	structuredMode mode = "structured"
	binaryMode     mode = "binary"
)

var modes = []mode{structuredMode, binaryMode}

// record builds the headers and value of a record carrying attrs and data
// (data absentT: no data) in the given mode.
func record(t testing.TB, m mode, attrs map[string]any, data any) ([]Header, []byte) {
	t.Helper()
	if m == structuredMode {
		env := maps.Clone(attrs)
		if data != any(absent) {
			env["data"] = data
		}
		return []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}, mustJSON(t, env)
	}
	headers := []Header{{Key: "content-type", Value: []byte("application/json")}}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if s, ok := attrs[k].(string); ok {
			headers = append(headers, Header{Key: "ce_" + k, Value: []byte(s)})
		}
	}
	var value []byte
	if data != any(absent) {
		value = mustJSON(t, data)
	}
	return headers, value
}

// wantDecodeError checks that err is a *DecodeError on field.
func wantDecodeError(t *testing.T, err error, field string) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *DecodeError on %q", err, err, field)
	}
	if de.Field != field {
		t.Fatalf("error field = %q (%v), want %q", de.Field, err, field)
	}
	if de.Reason == "" {
		t.Fatalf("error %v has no reason", err)
	}
}

var inputTypes = []string{TypePayment, TypeLogin, TypeRepaymentDue, TypeRepaymentPaid, TypeProfile, TypeOperator}

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	for _, typ := range inputTypes {
		for _, m := range modes {
			t.Run(typ+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				headers, value := record(t, m, validAttrs(typ), validData(typ))
				got, err := testDecoder().Decode([]byte(user), headers, value)
				if err != nil {
					t.Fatalf("Decode: %v\nvalue: %s", err, value)
				}
				if want := wantEvent(typ); !reflect.DeepEqual(got, want) {
					t.Fatalf("Decode =\n%+v\nwant\n%+v", got, want)
				}
				if got.UserID() != user {
					t.Fatalf("UserID() = %q", got.UserID())
				}
			})
		}
	}
}

// dataCase is one change to the data of a valid event and the field it
// must be refused on ("" = accepted).
type dataCase struct {
	name   string
	typ    string
	change map[string]any
	field  string
	check  func(t *testing.T, e Event)
}

func dataCases() []dataCase {
	var cs []dataCase
	add := func(typ, name string, change map[string]any, field string) {
		cs = append(cs, dataCase{name: name, typ: typ, change: change, field: field})
	}
	// Rules every type shares: user_id, and amount_fen where there is one.
	for _, typ := range inputTypes {
		add(typ, "user_id absent", map[string]any{"user_id": absent}, "data.user_id")
		add(typ, "user_id empty", map[string]any{"user_id": ""}, "data.user_id")
		add(typ, "user_id null", map[string]any{"user_id": nil}, "data.user_id")
		add(typ, "user_id number", map[string]any{"user_id": 1001}, "data.user_id")
		add(typ, "user_id object", map[string]any{"user_id": map[string]any{"id": user}}, "data.user_id")
		add(typ, "user_id not the subject", map[string]any{"user_id": "u-2002"}, "data.user_id")
		add(typ, "unknown fields tolerated", map[string]any{"future_field": map[string]any{"x": []int{1}}, "note": "hi"}, "")
	}
	for _, typ := range []string{TypePayment, TypeRepaymentDue, TypeRepaymentPaid} {
		for name, v := range map[string]any{
			"absent": absent, "null": nil, "zero": 0, "negative": -5, "fraction": raw("1.5"),
			"integral fraction": raw("100.0"), "exponent": raw("1e3"), "string": "100", "bool": true,
			"above int64": raw("9223372036854775808"), "twenty digits": raw("99999999999999999999"),
			"negative zero": raw("-0"), "max int64": raw("9223372036854775807"),
			"2^53": raw("9007199254740992"),
		} {
			add(typ, "amount_fen "+name, map[string]any{"amount_fen": v}, "data.amount_fen")
		}
		add(typ, "amount_fen 2^53-1, the largest", map[string]any{"amount_fen": raw("9007199254740991")}, "")
		add(typ, "amount_fen one", map[string]any{"amount_fen": 1}, "")
	}

	p := TypePayment
	add(p, "currency USD", map[string]any{"currency": "USD"}, "data.currency")
	add(p, "currency lower case", map[string]any{"currency": "cny"}, "data.currency")
	add(p, "currency absent", map[string]any{"currency": absent}, "data.currency")
	add(p, "scene unknown", map[string]any{"scene": "casino"}, "data.scene")
	add(p, "scene absent", map[string]any{"scene": absent}, "data.scene")
	add(p, "scene upper case", map[string]any{"scene": "ECOMMERCE"}, "data.scene")
	add(p, "scene number", map[string]any{"scene": 1}, "data.scene")
	for _, s := range []Scene{SceneEcommerce, SceneLocalLife, SceneOfflineRetail, SceneEducation, SceneMedical,
		SceneTransfer, SceneRedPacket, SceneBillPay, SceneDonation, SceneWealth, SceneOther} {
		add(p, "scene "+string(s), map[string]any{"scene": s}, "")
	}
	add(p, "merchant_id empty", map[string]any{"merchant_id": ""}, "data.merchant_id")
	add(p, "merchant_id absent", map[string]any{"merchant_id": absent}, "data.merchant_id")
	for _, n := range []int{0, 1, 3, 6, 12, 24} { // 1: pay later
		add(p, "installments "+strings.Repeat("I", 1)+jsonString(n), map[string]any{"installments": n}, "")
	}
	for name, v := range map[string]any{
		"absent": absent, "null": nil, "5": 5, "36": 36, "-1": -1, "string": "3", "fraction": raw("3.0"), "2": 2,
	} {
		add(p, "installments "+name, map[string]any{"installments": v}, "data.installments")
	}
	add(p, "device_id empty", map[string]any{"device_id": ""}, "data.device_id")
	add(p, "device_id absent", map[string]any{"device_id": absent}, "data.device_id")
	add(p, "city empty", map[string]any{"city": ""}, "data.city")
	add(p, "city absent", map[string]any{"city": absent}, "data.city")
	add(p, "auth sms", map[string]any{"auth": "sms"}, "data.auth")
	add(p, "auth absent", map[string]any{"auth": absent}, "data.auth")
	for _, a := range []Auth{AuthPassword, AuthFace, AuthFingerprint, AuthNone} {
		add(p, "auth "+string(a), map[string]any{"auth": a}, "")
	}

	l := TypeLogin
	add(l, "device_id empty", map[string]any{"device_id": ""}, "data.device_id")
	add(l, "device_id absent", map[string]any{"device_id": absent}, "data.device_id")
	add(l, "city empty", map[string]any{"city": ""}, "data.city")
	add(l, "city absent", map[string]any{"city": absent}, "data.city")
	add(l, "ip absent", map[string]any{"ip": absent}, "data.ip")
	add(l, "ip empty", map[string]any{"ip": ""}, "data.ip")
	add(l, "ip octet out of range", map[string]any{"ip": "999.1.1.1"}, "data.ip")
	add(l, "ip host name", map[string]any{"ip": "example.com"}, "data.ip")
	add(l, "ip with port", map[string]any{"ip": "203.0.113.7:443"}, "data.ip")
	add(l, "ip number", map[string]any{"ip": 3405803783}, "data.ip")
	add(l, "ip v6", map[string]any{"ip": "2001:db8::1"}, "")
	add(l, "auth unknown", map[string]any{"auth": "otp"}, "data.auth")
	add(l, "auth absent", map[string]any{"auth": absent}, "data.auth")
	add(l, "auth fingerprint", map[string]any{"auth": "fingerprint"}, "")

	for _, typ := range []string{TypeRepaymentDue, TypeRepaymentPaid} {
		add(typ, "bill_id empty", map[string]any{"bill_id": ""}, "data.bill_id")
		add(typ, "bill_id absent", map[string]any{"bill_id": absent}, "data.bill_id")
		add(typ, "bill_id number", map[string]any{"bill_id": 7}, "data.bill_id")
	}
	d := TypeRepaymentDue
	add(d, "due_at absent", map[string]any{"due_at": absent}, "data.due_at")
	add(d, "due_at empty", map[string]any{"due_at": ""}, "data.due_at")
	add(d, "due_at date only", map[string]any{"due_at": "2025-03-10"}, "data.due_at")
	add(d, "due_at no zone", map[string]any{"due_at": "2025-03-10T00:00:00"}, "data.due_at")
	add(d, "due_at words", map[string]any{"due_at": "next Monday"}, "data.due_at")
	add(d, "due_at unix seconds", map[string]any{"due_at": 1741564800}, "data.due_at")
	add(d, "due_at far future is fine", map[string]any{"due_at": "2026-01-01T00:00:00Z"}, "")
	for _, pool := range []string{PoolPayScore, PoolIndependent, PoolSharedWeilidai, PoolSpecialTemporary} {
		cs = append(cs, dataCase{name: "pool " + pool, typ: d, change: map[string]any{"pool": pool},
			check: func(t *testing.T, e Event) {
				if e.Due.Pool != pool {
					t.Fatalf("Pool = %q, want %q", e.Due.Pool, pool)
				}
			}})
	}
	for name, v := range map[string]any{"absent": absent, "empty": "", "null": nil} {
		cs = append(cs, dataCase{name: "pool " + name + " means pay_score", typ: d, change: map[string]any{"pool": v},
			check: func(t *testing.T, e Event) {
				if e.Due.Pool != "" {
					t.Fatalf("Pool = %q, want empty", e.Due.Pool)
				}
			}})
	}
	for name, v := range map[string]any{
		"unknown": "partner", "upper case": "PAY_SCORE", "space": " pay_score", "scene name": "ecommerce",
		"number": 1, "bool": true, "array": []any{"pay_score"}, "object": map[string]any{"pool": "pay_score"},
	} {
		add(d, "pool "+name, map[string]any{"pool": v}, "data.pool")
	}

	f := TypeProfile
	add(f, "pay_score absent", map[string]any{"pay_score": absent}, "data.pay_score")
	add(f, "pay_score 299", map[string]any{"pay_score": 299}, "data.pay_score")
	add(f, "pay_score 851", map[string]any{"pay_score": 851}, "data.pay_score")
	add(f, "pay_score 300", map[string]any{"pay_score": 300}, "")
	add(f, "pay_score 850", map[string]any{"pay_score": 850}, "")
	add(f, "pay_score fraction", map[string]any{"pay_score": raw("700.5")}, "data.pay_score")
	add(f, "pay_score string", map[string]any{"pay_score": "700"}, "data.pay_score")
	for _, b := range []string{"real_name_verified", "identity_complete", "card_bank_blacklisted", "judicial_defaulter", "linked_account_negative"} {
		add(f, b+" absent", map[string]any{b: absent}, "data."+b)
		add(f, b+" null", map[string]any{b: nil}, "data."+b)
		add(f, b+" string", map[string]any{b: "true"}, "data."+b)
		add(f, b+" number", map[string]any{b: 1}, "data."+b)
	}
	cs = append(cs, dataCase{name: "card_bound_since absent means no card", typ: f,
		change: map[string]any{"card_bound_since": absent},
		check: func(t *testing.T, e Event) {
			if e.Profile.CardBoundSince != "" {
				t.Fatalf("CardBoundSince = %q", e.Profile.CardBoundSince)
			}
		}})
	add(f, "card_bound_since empty means no card", map[string]any{"card_bound_since": ""}, "")
	add(f, "card_bound_since null means no card", map[string]any{"card_bound_since": nil}, "")
	add(f, "card_bound_since month 13", map[string]any{"card_bound_since": "2024-13-01"}, "data.card_bound_since")
	add(f, "card_bound_since February 30", map[string]any{"card_bound_since": "2024-02-30"}, "data.card_bound_since")
	add(f, "card_bound_since slashes", map[string]any{"card_bound_since": "2024/01/01"}, "data.card_bound_since")
	add(f, "card_bound_since short", map[string]any{"card_bound_since": "2024-1-1"}, "data.card_bound_since")
	add(f, "card_bound_since timestamp", map[string]any{"card_bound_since": "2024-01-01T00:00:00Z"}, "data.card_bound_since")
	add(f, "card_bound_since number", map[string]any{"card_bound_since": 20240101}, "data.card_bound_since")
	add(f, "wealth_balance_fen absent", map[string]any{"wealth_balance_fen": absent}, "data.wealth_balance_fen")
	add(f, "wealth_balance_fen negative", map[string]any{"wealth_balance_fen": -1}, "data.wealth_balance_fen")
	add(f, "wealth_balance_fen very negative", map[string]any{"wealth_balance_fen": -500}, "data.wealth_balance_fen")
	add(f, "wealth_balance_fen fraction", map[string]any{"wealth_balance_fen": raw("0.5")}, "data.wealth_balance_fen")
	add(f, "wealth_balance_fen string", map[string]any{"wealth_balance_fen": "0"}, "data.wealth_balance_fen")
	add(f, "wealth_balance_fen zero", map[string]any{"wealth_balance_fen": 0}, "")
	cs = append(cs, dataCase{name: "transaction_limit_fen absent means none", typ: f,
		change: map[string]any{"transaction_limit_fen": absent},
		check: func(t *testing.T, e Event) {
			if e.Profile.TransactionLimitFen != 0 {
				t.Fatalf("TransactionLimitFen = %d", e.Profile.TransactionLimitFen)
			}
		}})
	add(f, "transaction_limit_fen zero", map[string]any{"transaction_limit_fen": 0}, "")
	add(f, "transaction_limit_fen negative", map[string]any{"transaction_limit_fen": -1}, "data.transaction_limit_fen")
	add(f, "transaction_limit_fen very negative", map[string]any{"transaction_limit_fen": -100}, "data.transaction_limit_fen")
	add(f, "transaction_limit_fen fraction", map[string]any{"transaction_limit_fen": raw("1.5")}, "data.transaction_limit_fen")
	add(f, "timezone absent", map[string]any{"timezone": absent}, "")
	add(f, "timezone empty", map[string]any{"timezone": ""}, "")
	add(f, "timezone UTC", map[string]any{"timezone": "UTC"}, "")
	add(f, "timezone America/New_York", map[string]any{"timezone": "America/New_York"}, "")
	add(f, "timezone unknown", map[string]any{"timezone": "Mars/Olympus_Mons"}, "data.timezone")
	add(f, "timezone Local", map[string]any{"timezone": "Local"}, "data.timezone")
	add(f, "timezone offset", map[string]any{"timezone": "+08:00"}, "data.timezone")
	add(f, "timezone path", map[string]any{"timezone": "../../etc/passwd"}, "data.timezone")
	add(f, "timezone number", map[string]any{"timezone": 8}, "data.timezone")

	// The fields added later: optional, absent = zero (an older profile stays valid).
	cs = append(cs, dataCase{name: "a profile without the later fields", typ: f,
		change: map[string]any{"partner_limit_fen": absent, "weilidai_limit_fen": absent, "alert_threshold_fen": absent,
			"serious_default_elsewhere_on": absent},
		check: func(t *testing.T, e Event) {
			want := *wantEvent(TypeProfile).Profile
			want.PartnerLimitFen, want.WeilidaiLimitFen, want.AlertThresholdFen, want.SeriousDefaultElsewhereOn = 0, 0, 0, ""
			if *e.Profile != want {
				t.Fatalf("Profile = %+v, want %+v", *e.Profile, want)
			}
		}})
	for _, field := range []string{"partner_limit_fen", "weilidai_limit_fen", "alert_threshold_fen"} {
		for name, v := range map[string]any{"absent": absent, "null": nil, "zero": 0} {
			cs = append(cs, dataCase{name: field + " " + name + " means none", typ: f, change: map[string]any{field: v},
				check: func(t *testing.T, e Event) {
					got := map[string]int64{"partner_limit_fen": e.Profile.PartnerLimitFen,
						"weilidai_limit_fen": e.Profile.WeilidaiLimitFen, "alert_threshold_fen": e.Profile.AlertThresholdFen}
					if got[field] != 0 {
						t.Fatalf("%s = %d, want 0", field, got[field])
					}
				}})
		}
		add(f, field+" one", map[string]any{field: 1}, "")
		add(f, field+" 2^53-1, the largest", map[string]any{field: raw("9007199254740991")}, "")
		for name, v := range map[string]any{
			"negative": -1, "very negative": -100, "2^53": raw("9007199254740992"), "above int64": raw("9223372036854775808"),
			"fraction": raw("1.5"), "integral fraction": raw("100.0"), "exponent": raw("1e3"), "string": "100",
			"bool": true, "array": []any{1}, "object": map[string]any{"fen": 1},
		} {
			add(f, field+" "+name, map[string]any{field: v}, "data."+field)
		}
	}
	const sd = "serious_default_elsewhere_on"
	for name, v := range map[string]any{"absent": absent, "empty": "", "null": nil} {
		cs = append(cs, dataCase{name: sd + " " + name + " means none", typ: f, change: map[string]any{sd: v},
			check: func(t *testing.T, e Event) {
				if e.Profile.SeriousDefaultElsewhereOn != "" {
					t.Fatalf("SeriousDefaultElsewhereOn = %q", e.Profile.SeriousDefaultElsewhereOn)
				}
			}})
	}
	add(f, sd+" leap day", map[string]any{sd: "2024-02-29"}, "")
	for name, v := range map[string]any{
		"month 13": "2024-13-01", "February 30": "2024-02-30", "February 29 of 2023": "2023-02-29", "slashes": "2024/01/01",
		"short": "2024-1-1", "timestamp": "2024-01-01T00:00:00Z", "words": "last year", "number": 20240101, "bool": false,
		"array": []any{"2024-01-01"},
	} {
		add(f, sd+" "+name, map[string]any{sd: v}, "data."+sd)
	}

	o := TypeOperator
	for _, a := range []string{OperatorSetOverride, OperatorSetSpecial} {
		add(o, "action "+a, map[string]any{"action": a}, "")
	}
	for _, a := range []string{OperatorClearOverride, OperatorQuotaCheck, OperatorClearSpecial} {
		bare := map[string]any{"action": a, "quota_fen": absent, "expires_at": absent}
		add(o, "action "+a, bare, "")
		add(o, "action "+a+" without a reason", mutate(bare, map[string]any{"reason": absent}), "")
		add(o, "action "+a+" with nulls", mutate(bare, map[string]any{"quota_fen": nil, "expires_at": nil}), "")
		add(o, "action "+a+" with a quota", mutate(bare, map[string]any{"quota_fen": 5}), "data.quota_fen")
		add(o, "action "+a+" with a zero quota", mutate(bare, map[string]any{"quota_fen": 0}), "data.quota_fen")
		add(o, "action "+a+" with an expiry", mutate(bare, map[string]any{"expires_at": "2025-06-01T00:00:00Z"}), "data.expires_at")
		add(o, "action "+a+" with a long reason", mutate(bare, map[string]any{"reason": strings.Repeat("r", MaxIDBytes+1)}), "data.reason")
	}
	for name, v := range map[string]any{
		"absent": absent, "empty": "", "null": nil, "unknown": "delete_user", "upper case": "SET_OVERRIDE",
		"number": 1, "array": []any{"set_override"},
	} {
		add(o, "action "+name, map[string]any{"action": v}, "data.action")
	}
	add(o, "quota_fen zero is an override of nothing", map[string]any{"quota_fen": 0}, "")
	add(o, "quota_fen 2^53-1, the largest", map[string]any{"quota_fen": raw("9007199254740991")}, "")
	for name, v := range map[string]any{
		"absent": absent, "null": nil, "negative": -1, "2^53": raw("9007199254740992"), "fraction": raw("1.5"),
		"exponent": raw("1e3"), "string": "100", "bool": true,
	} {
		add(o, "quota_fen "+name, map[string]any{"quota_fen": v}, "data.quota_fen")
	}
	for name, v := range map[string]any{"absent": absent, "empty": "", "null": nil, "number": 1, "too long": strings.Repeat("r", MaxIDBytes+1)} {
		add(o, "reason "+name, map[string]any{"reason": v}, "data.reason")
		add(o, "operator "+name, map[string]any{"operator": v}, "data.operator")
	}
	add(o, "reason at the limit", map[string]any{"reason": strings.Repeat("理", MaxIDBytes/3)}, "")
	for name, v := range map[string]any{
		"absent": absent, "empty": "", "null": nil, "date only": "2025-06-01", "no zone": "2025-06-01T00:00:00",
		"unix seconds": 1748736000, "at the event's time": testTime.Format(time.RFC3339), "before the event": "2025-01-01T00:00:00Z",
		"beyond 2038": "2040-01-01T00:00:00Z",
	} {
		add(o, "expires_at "+name, map[string]any{"expires_at": v}, "data.expires_at")
	}
	add(o, "expires_at a second after the event", map[string]any{"expires_at": testTime.Add(time.Second).Format(time.RFC3339)}, "")
	cs = append(cs, dataCase{name: "a quota check", typ: o,
		change: map[string]any{"action": OperatorQuotaCheck, "quota_fen": absent, "expires_at": absent, "reason": absent},
		check: func(t *testing.T, e Event) {
			if want := (Operator{UserID: user, Action: OperatorQuotaCheck, Operator: "alice"}); *e.Op != want {
				t.Fatalf("Op = %+v, want %+v", *e.Op, want)
			}
		}})
	return cs
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestDecodeDataRules(t *testing.T) {
	t.Parallel()
	for _, c := range dataCases() {
		for _, m := range modes {
			t.Run(c.typ+"/"+c.name+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				headers, value := record(t, m, validAttrs(c.typ), mutate(validData(c.typ), c.change))
				e, err := testDecoder().Decode([]byte(user), headers, value)
				if c.field == "" {
					if err != nil {
						t.Fatalf("Decode: %v\nvalue: %s", err, value)
					}
					if c.check != nil {
						c.check(t, e)
					}
					return
				}
				wantDecodeError(t, err, c.field)
				if !reflect.DeepEqual(e, Event{}) {
					t.Fatalf("refused event is not zero: %+v", e)
				}
			})
		}
	}
}

func TestDecodeAttributeRules(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change map[string]any
		field  string
	}{
		{"specversion absent", map[string]any{"specversion": absent}, "specversion"},
		{"specversion 0.3", map[string]any{"specversion": "0.3"}, "specversion"},
		{"specversion 1", map[string]any{"specversion": "1"}, "specversion"},
		{"id absent", map[string]any{"id": absent}, "id"},
		{"id empty", map[string]any{"id": ""}, "id"},
		{"type absent", map[string]any{"type": absent}, "type"},
		{"type unknown", map[string]any{"type": "fenqi.payment.v2"}, "type"},
		{"type is a decision type", map[string]any{"type": TypeDecisionAlert}, "type"},
		{"source absent", map[string]any{"source": absent}, "source"},
		{"source empty", map[string]any{"source": ""}, "source"},
		{"subject absent", map[string]any{"subject": absent}, "subject"},
		{"subject empty", map[string]any{"subject": ""}, "subject"},
		{"time absent", map[string]any{"time": absent}, "time"},
		{"time empty", map[string]any{"time": ""}, "time"},
		{"time not RFC 3339", map[string]any{"time": "2025-03-01 11:59:00"}, "time"},
		{"time no zone", map[string]any{"time": "2025-03-01T11:59:00"}, "time"},
		{"time words", map[string]any{"time": "yesterday"}, "time"},
		{"time with offset", map[string]any{"time": "2025-03-01T19:59:00+08:00"}, ""},
		{"time with nanos", map[string]any{"time": "2025-03-01T11:59:00.123456789Z"}, ""},
		{"time long ago", map[string]any{"time": "2020-01-01T00:00:00Z"}, ""},
		{"time 4m59s ahead", map[string]any{"time": testNow.Add(4*time.Minute + 59*time.Second).Format(time.RFC3339)}, ""},
		{"time 5m ahead", map[string]any{"time": testNow.Add(5 * time.Minute).Format(time.RFC3339)}, ""},
		{"time 5m01s ahead", map[string]any{"time": testNow.Add(5*time.Minute + time.Second).Format(time.RFC3339)}, "time"},
		{"time a day ahead", map[string]any{"time": testNow.Add(24 * time.Hour).Format(time.RFC3339)}, "time"},
	} {
		for _, m := range modes {
			t.Run(c.name+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				headers, value := record(t, m, mutate(validAttrs(TypePayment), c.change), validData(TypePayment))
				_, err := testDecoder().Decode(nil, headers, value)
				if c.field == "" {
					if err != nil {
						t.Fatalf("Decode: %v", err)
					}
					return
				}
				wantDecodeError(t, err, c.field)
			})
		}
	}
}

func TestDecodeTimeIsUTC(t *testing.T) {
	t.Parallel()
	headers, value := record(t, structuredMode, mutate(validAttrs(TypePayment), map[string]any{"time": "2025-03-01T19:59:00+08:00"}), validData(TypePayment))
	e, err := testDecoder().Decode(nil, headers, value)
	if err != nil {
		t.Fatal(err)
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(testTime) {
		t.Fatalf("Time = %v, want %v in UTC", e.Time, testTime)
	}
}

func TestDecodeMaxFuture(t *testing.T) {
	t.Parallel()
	d := Decoder{MaxFuture: time.Hour, Now: func() time.Time { return testNow }}
	for _, c := range []struct {
		name  string
		ahead time.Duration
		field string
	}{
		{"59m59s ahead", time.Hour - time.Second, ""},
		{"1h01s ahead", time.Hour + time.Second, "time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			attrs := mutate(validAttrs(TypeLogin), map[string]any{"time": testNow.Add(c.ahead).Format(time.RFC3339)})
			headers, value := record(t, structuredMode, attrs, validData(TypeLogin))
			_, err := d.Decode(nil, headers, value)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantDecodeError(t, err, c.field)
		})
	}
}

func TestDecodeDefaultClock(t *testing.T) {
	t.Parallel()
	// The zero Decoder uses time.Now: an event from a minute ago passes,
	// one an hour ahead does not.
	for _, c := range []struct {
		name  string
		at    time.Time
		field string
	}{
		{"past", time.Now().Add(-time.Minute), ""},
		{"an hour ahead", time.Now().Add(time.Hour), "time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			attrs := mutate(validAttrs(TypeLogin), map[string]any{"time": c.at.Format(time.RFC3339Nano)})
			headers, value := record(t, structuredMode, attrs, validData(TypeLogin))
			_, err := Decoder{}.Decode(nil, headers, value)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantDecodeError(t, err, c.field)
		})
	}
}

func TestDecodeKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		key   []byte
		field string
	}{
		{"key equals subject", []byte(user), ""},
		{"key nil", nil, ""},
		{"key empty", []byte{}, ""},
		{"key another user", []byte("u-2002"), "key"},
		{"key with trailing space", []byte(user + " "), "key"},
	} {
		for _, m := range modes {
			t.Run(c.name+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				headers, value := record(t, m, validAttrs(TypeLogin), validData(TypeLogin))
				_, err := testDecoder().Decode(c.key, headers, value)
				if c.field == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantDecodeError(t, err, c.field)
			})
		}
	}
}

func TestDecodeMaxBytes(t *testing.T) {
	t.Parallel()
	headers, value := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
	t.Run("default limit exceeded, checked before parsing", func(t *testing.T) {
		t.Parallel()
		big := []byte(strings.Repeat("x", DefaultMaxBytes+1)) // not JSON: the size must be reported, not the syntax
		_, err := testDecoder().Decode(nil, headers, big)
		wantDecodeError(t, err, "value")
		if !strings.Contains(err.Error(), "limit") {
			t.Fatalf("error %v does not mention the limit", err)
		}
	})
	t.Run("default limit exactly met", func(t *testing.T) {
		t.Parallel()
		// Pad a valid event with an ignored extension attribute up to the limit.
		env := mutate(validAttrs(TypePayment), map[string]any{"data": validData(TypePayment), "pad": ""})
		n := len(mustJSON(t, env))
		env["pad"] = strings.Repeat("p", DefaultMaxBytes-n)
		v := mustJSON(t, env)
		if len(v) != DefaultMaxBytes {
			t.Fatalf("fixture is %d bytes", len(v))
		}
		if _, err := testDecoder().Decode(nil, headers, v); err != nil {
			t.Fatal(err)
		}
		v = mustJSON(t, mutate(env, map[string]any{"pad": env["pad"].(string) + "p"}))
		_, err := testDecoder().Decode(nil, headers, v)
		wantDecodeError(t, err, "value")
	})
	t.Run("custom limit", func(t *testing.T) {
		t.Parallel()
		d := Decoder{MaxBytes: len(value) - 1, Now: func() time.Time { return testNow }}
		_, err := d.Decode(nil, headers, value)
		wantDecodeError(t, err, "value")
		d.MaxBytes = len(value)
		if _, err := d.Decode(nil, headers, value); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("binary mode", func(t *testing.T) {
		t.Parallel()
		bh, _ := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
		_, err := Decoder{MaxBytes: 10}.Decode(nil, bh, []byte(`{"user_id":"u-1001"}`))
		wantDecodeError(t, err, "value")
	})
}

func TestDecodeStructuredEnvelope(t *testing.T) {
	t.Parallel()
	ce := []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}
	valid := mutate(validAttrs(TypePayment), map[string]any{"data": validData(TypePayment)})
	for _, c := range []struct {
		name    string
		headers []Header
		value   []byte
		field   string
	}{
		{"no content-type header", nil, mustJSON(t, valid), ""},
		{"content-type application/json", []Header{{Key: "content-type", Value: []byte("application/json")}}, mustJSON(t, valid), ""},
		{"content-type with charset", []Header{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=UTF-8")}}, mustJSON(t, valid), ""},
		{"content-type upper case name", []Header{{Key: "Content-Type", Value: []byte(ContentTypeCloudEvents)}}, mustJSON(t, valid), ""},
		{"other headers ignored", append([]Header{{Key: "traceparent", Value: []byte("00-abc")}}, ce...), mustJSON(t, valid), ""},
		{"content-type text/plain", []Header{{Key: "content-type", Value: []byte("text/plain")}}, mustJSON(t, valid), "content-type"},
		{"content-type batch", []Header{{Key: "content-type", Value: []byte("application/cloudevents-batch+json")}}, mustJSON(t, valid), "content-type"},
		{"datacontenttype absent", ce, mustJSON(t, valid), ""},
		{"datacontenttype application/json", ce, mustJSON(t, mutate(valid, map[string]any{"datacontenttype": "application/json"})), ""},
		{"datacontenttype with charset", ce, mustJSON(t, mutate(valid, map[string]any{"datacontenttype": "application/json; charset=utf-8"})), ""},
		{"datacontenttype xml", ce, mustJSON(t, mutate(valid, map[string]any{"datacontenttype": "application/xml"})), "datacontenttype"},
		{"extension attributes ignored", ce, mustJSON(t, mutate(valid, map[string]any{"traceparent": "00-abc", "partitionkey": user})), ""},
		{"empty value", ce, nil, "value"},
		{"blank value", ce, []byte("  \n"), "value"},
		{"not JSON", ce, []byte("specversion=1.0"), "value"},
		{"truncated JSON", ce, mustJSON(t, valid)[:40], "value"},
		{"trailing garbage", ce, append(mustJSON(t, valid), []byte(" {}")...), "value"},
		{"JSON array", ce, []byte(`[{"specversion":"1.0"}]`), "value"},
		{"JSON string", ce, []byte(`"hello"`), "value"},
		{"JSON null", ce, []byte(`null`), "specversion"},
		{"plain JSON without specversion", nil, mustJSON(t, validData(TypePayment)), "specversion"},
		{"specversion number", ce, mustJSON(t, mutate(valid, map[string]any{"specversion": 1.0})), "specversion"},
		{"id number", ce, mustJSON(t, mutate(valid, map[string]any{"id": 42})), "id"},
		{"time number", ce, mustJSON(t, mutate(valid, map[string]any{"time": 1740830340})), "time"},
		{"subject array", ce, mustJSON(t, mutate(valid, map[string]any{"subject": []string{user}})), "subject"},
		{"data absent", ce, mustJSON(t, mutate(valid, map[string]any{"data": absent})), "data"},
		{"data null", ce, mustJSON(t, mutate(valid, map[string]any{"data": nil})), "data"},
		{"data array", ce, mustJSON(t, mutate(valid, map[string]any{"data": []any{validData(TypePayment)}})), "data"},
		{"data string", ce, mustJSON(t, mutate(valid, map[string]any{"data": string(mustJSON(t, validData(TypePayment)))})), "data"},
		{"data_base64 instead of data", ce, mustJSON(t, mutate(valid, map[string]any{"data": absent, "data_base64": "e30="})), "data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := testDecoder().Decode(nil, c.headers, c.value)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantDecodeError(t, err, c.field)
		})
	}
}

func TestDecodeBinaryEnvelope(t *testing.T) {
	t.Parallel()
	headers, value := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	with := func(extra ...Header) []Header { return append(slices.Clone(headers), extra...) }
	without := func(name string) []Header {
		return slices.DeleteFunc(slices.Clone(headers), func(h Header) bool { return h.Key == name })
	}
	replace := func(name, v string) []Header { return with2(without(name), Header{Key: name, Value: []byte(v)}) }
	for _, c := range []struct {
		name    string
		headers []Header
		value   []byte
		field   string
	}{
		{"valid", headers, value, ""},
		{"no content-type", without("content-type"), value, ""},
		{"content-type with charset", replace("content-type", "application/json; charset=utf-8"), value, ""},
		{"content-type avro", replace("content-type", "application/avro"), value, "content-type"},
		{"content-type cloudevents", replace("content-type", ContentTypeCloudEvents), value, "content-type"},
		{"upper case header names", upper(headers), value, ""},
		{"extension headers ignored", with(Header{Key: "ce_traceparent", Value: []byte("00-abc")}, Header{Key: "ce_partitionkey", Value: []byte("x")}), value, ""},
		{"ce_datacontenttype application/json", with(Header{Key: "ce_datacontenttype", Value: []byte("application/json")}), value, ""},
		{"ce_datacontenttype other", with(Header{Key: "ce_datacontenttype", Value: []byte("x")}), value, "datacontenttype"},
		{"specversion 0.3", replace("ce_specversion", "0.3"), value, "specversion"},
		{"specversion empty", replace("ce_specversion", ""), value, "specversion"},
		{"id absent", without("ce_id"), value, "id"},
		{"id repeated", with(Header{Key: "ce_id", Value: []byte("evt-2")}), value, "id"},
		{"type absent", without("ce_type"), value, "type"},
		{"type unknown", replace("ce_type", "fenqi.unknown.v1"), value, "type"},
		{"source absent", without("ce_source"), value, "source"},
		{"subject absent", without("ce_subject"), value, "subject"},
		{"subject repeated", with(Header{Key: "ce_subject", Value: []byte("u-2002")}), value, "subject"},
		{"time absent", without("ce_time"), value, "time"},
		{"time bad", replace("ce_time", "Sat, 01 Mar 2025 11:59:00 GMT"), value, "time"},
		{"time 5m01s ahead", replace("ce_time", testNow.Add(5*time.Minute+time.Second).Format(time.RFC3339)), value, "time"},
		{"value absent", headers, nil, "data"},
		{"value null", headers, []byte("null"), "data"},
		{"value array", headers, []byte("[]"), "data"},
		{"value number", headers, []byte("12345"), "data"},
		{"value not JSON", headers, []byte("{user_id: u-1001}"), "value"},
		{"value truncated", headers, value[:len(value)-1], "value"},
		{"value is a structured event", headers, mustJSON(t, mutate(validAttrs(TypePayment), map[string]any{"data": validData(TypePayment)})), "data.user_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := testDecoder().Decode([]byte(user), c.headers, c.value)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantDecodeError(t, err, c.field)
		})
	}
}

func with2(hs []Header, extra ...Header) []Header { return append(hs, extra...) }

func upper(hs []Header) []Header {
	out := slices.Clone(hs)
	for i := range out {
		out[i].Key = strings.ToUpper(out[i].Key)
	}
	return out
}

func TestDecodeErrorMessage(t *testing.T) {
	t.Parallel()
	headers, value := record(t, structuredMode, validAttrs(TypePayment), mutate(validData(TypePayment), map[string]any{"amount_fen": raw("1.5")}))
	_, err := testDecoder().Decode(nil, headers, value)
	const want = `events: field "data.amount_fen": must be a positive integer of at most 9007199254740991 (2^53-1) fen`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	if got := (&DecodeError{Field: "key", Reason: "x"}).Error(); got != `events: field "key": x` {
		t.Fatalf("Error() = %s", got)
	}
}

func TestDecodeConcurrent(t *testing.T) {
	t.Parallel()
	// One Decoder shared by goroutines (run with -race).
	d := testDecoder()
	headers, value := record(t, structuredMode, validAttrs(TypeProfile), validData(TypeProfile))
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, err = d.Decode([]byte(user), headers, value); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestSceneAuthValid(t *testing.T) {
	t.Parallel()
	if !SceneMedical.Valid() || Scene("").Valid() || Scene("Medical").Valid() {
		t.Fatal("Scene.Valid")
	}
	if !AuthNone.Valid() || Auth("").Valid() || Auth("sms").Valid() {
		t.Fatal("Auth.Valid")
	}
	for _, typ := range inputTypes {
		if !IsInputType(typ) || IsDecisionType(typ) {
			t.Fatalf("%s is an input type", typ)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range modes {
		b.Run(string(m), func(b *testing.B) {
			headers, value := record(b, m, validAttrs(TypePayment), validData(TypePayment))
			d := testDecoder()
			key := []byte(user)
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(key, headers, value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeTimeBounds(t *testing.T) {
	t.Parallel()
	attrs := validAttrs(TypePayment)
	attrs["time"] = "1999-12-31T23:59:59Z"
	headers, value := record(t, structuredMode, attrs, validData(TypePayment))
	_, err := testDecoder().Decode(nil, headers, value)
	var de *DecodeError
	if !errors.As(err, &de) || de.Field != "time" || !strings.Contains(de.Reason, "2000-01-01") {
		t.Fatalf("an event from 1999: %v", err)
	}
	headers, value = record(t, structuredMode, validAttrs(TypeRepaymentDue), mutate(validData(TypeRepaymentDue), map[string]any{"due_at": "1970-01-01T00:00:00Z"}))
	if _, err := testDecoder().Decode(nil, headers, value); !errors.As(err, &de) || de.Field != "data.due_at" {
		t.Fatalf("a bill due in 1970: %v", err)
	}
}
