package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMarshalGolden(t *testing.T) {
	t.Parallel()
	e := wantEvent(TypePayment)
	e.Time = time.Date(2025, 3, 1, 19, 59, 0, 123456789, time.FixedZone("CST", 8*3600))
	got, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"specversion":"1.0","id":"evt-1","type":"fenqi.payment.v1","source":"test/upstream",` +
		`"time":"2025-03-01T11:59:00.123456789Z","subject":"u-1001","datacontenttype":"application/json",` +
		`"data":{"user_id":"u-1001","amount_fen":12345,"currency":"CNY","scene":"ecommerce","merchant_id":"m-jd",` +
		`"installments":3,"device_id":"dev-1","city":"Shanghai","auth":"face"}}`
	if string(got) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, want)
	}
}

func TestMarshalErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		e    Event
	}{
		{"unknown type", Event{Type: "fenqi.other.v1", Payment: &Payment{}}},
		{"decision type", Event{Type: TypeDecisionAlert, Payment: &Payment{}}},
		{"payment without data", Event{Type: TypePayment, Login: &Login{}}},
		{"login without data", Event{Type: TypeLogin}},
		{"due without data", Event{Type: TypeRepaymentDue, Paid: &RepaymentPaid{}}},
		{"paid without data", Event{Type: TypeRepaymentPaid, Due: &RepaymentDue{}}},
		{"profile without data", Event{Type: TypeProfile}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if b, err := Marshal(c.e); err == nil {
				t.Fatalf("Marshal = %s, want an error", b)
			}
		})
	}
}

func TestMarshalDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range inputTypes {
		for _, h := range []struct {
			name    string
			headers []Header
		}{
			{"cloudevents content-type", []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}},
			{"no headers", nil},
		} {
			t.Run(typ+"/"+h.name, func(t *testing.T) {
				t.Parallel()
				want := wantEvent(typ)
				value, err := Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				got, err := testDecoder().Decode([]byte(want.Subject), h.headers, value)
				if err != nil {
					t.Fatalf("Decode(Marshal(e)): %v\n%s", err, value)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round trip =\n%+v\nwant\n%+v", got, want)
				}
			})
		}
	}
	t.Run("profile without card, limit or zone", func(t *testing.T) {
		t.Parallel()
		want := wantEvent(TypeProfile)
		want.Profile.CardBoundSince, want.Profile.TransactionLimitFen, want.Profile.Timezone = "", 0, ""
		value, err := Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := testDecoder().Decode(nil, nil, value)
		if err != nil {
			t.Fatalf("Decode: %v\n%s", err, value)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("optional fields are written when set, left out when zero", func(t *testing.T) {
		t.Parallel()
		optional := map[string][]string{
			TypeProfile: {"transaction_limit_fen", "timezone", "partner_limit_fen", "weilidai_limit_fen",
				"alert_threshold_fen", "serious_default_elsewhere_on"},
			TypeRepaymentDue: {"pool"},
		}
		for typ, fields := range optional {
			full := wantEvent(typ)
			zero := wantEvent(typ)
			switch typ {
			case TypeProfile:
				p := zero.Profile
				p.TransactionLimitFen, p.Timezone, p.PartnerLimitFen, p.WeilidaiLimitFen, p.AlertThresholdFen, p.SeriousDefaultElsewhereOn =
					0, "", 0, 0, 0, ""
			case TypeRepaymentDue:
				zero.Due.Pool = ""
			}
			for _, c := range []struct {
				e    Event
				want bool
			}{{full, true}, {zero, false}} {
				value, err := Marshal(c.e)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fields {
					if has := bytes.Contains(value, []byte(`"`+f+`":`)); has != c.want {
						t.Errorf("%s: %s written = %v, want %v\n%s", typ, f, has, c.want, value)
					}
				}
				got, err := testDecoder().Decode(nil, nil, value)
				if err != nil {
					t.Fatalf("Decode: %v\n%s", err, value)
				}
				if !reflect.DeepEqual(got, c.e) {
					t.Fatalf("round trip =\n%+v\nwant\n%+v", got, c.e)
				}
			}
		}
	})
	t.Run("the new profile fields' golden form", func(t *testing.T) {
		t.Parallel()
		e := wantEvent(TypeProfile)
		value, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		const want = `"data":{"user_id":"u-1001","pay_score":700,"real_name_verified":true,"identity_complete":true,` +
			`"card_bound_since":"2023-05-20","card_bank_blacklisted":false,"wealth_balance_fen":1000000,` +
			`"judicial_defaulter":false,"linked_account_negative":false,"transaction_limit_fen":200000,` +
			`"timezone":"Asia/Shanghai","partner_limit_fen":3000000,"weilidai_limit_fen":1500000,` +
			`"alert_threshold_fen":100000,"serious_default_elsewhere_on":"2022-11-03"}}`
		if !bytes.HasSuffix(value, []byte(want)) {
			t.Fatalf("Marshal =\n%s\nwant it to end in\n%s", value, want)
		}
		e = wantEvent(TypeRepaymentDue)
		if value, err = Marshal(e); err != nil {
			t.Fatal(err)
		}
		const wantDue = `"data":{"user_id":"u-1001","bill_id":"b-1","amount_fen":50000,"due_at":"2025-03-09T16:00:00Z","pool":"independent"}}`
		if !bytes.HasSuffix(value, []byte(wantDue)) {
			t.Fatalf("Marshal =\n%s\nwant it to end in\n%s", value, wantDue)
		}
	})
	t.Run("local time comes back in UTC", func(t *testing.T) {
		t.Parallel()
		want := wantEvent(TypeRepaymentDue)
		shanghai := time.FixedZone("CST", 8*3600)
		want.Time = want.Time.In(shanghai)
		want.Due.DueAt = want.Due.DueAt.In(shanghai)
		value, err := Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := testDecoder().Decode(nil, nil, value)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC ||
			!got.Due.DueAt.Equal(want.Due.DueAt) || got.Due.DueAt.Location() != time.UTC {
			t.Fatalf("times = %v, %v; want %v, %v in UTC", got.Time, got.Due.DueAt, want.Time, want.Due.DueAt)
		}
	})
}

type alertDetail struct {
	AmountFen int64  `json:"amount_fen"`
	LocalTime string `json:"local_time"`
}

func testDecision(typ string) Decision {
	return Decision{
		ID:      DecisionID(typ, "evt-1"),
		Type:    typ,
		Subject: user,
		Time:    time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC),
		Data: DecisionData{
			UserID:      user,
			CausationID: "evt-1",
			Rule:        "late_night_large_payment",
			Action:      "sms_verification",
			ReasonCodes: []ReasonCode{
				{Code: "FENQI_LATE_NIGHT_LARGE", Message: "large payment at night", Advice: "confirm by SMS"},
				{Code: "WECHAT_CREDIT_401", Message: "pay score below threshold"},
			},
			PolicyVersion: "wechat-2025.1",
			Detail:        alertDetail{AmountFen: 250000, LocalTime: "02:13"},
		},
	}
}

var decisionTypes = []string{TypeDecisionAlert, TypeDecisionQuota, TypeDecisionFrozen, TypeDecisionUnfrozen, TypeDecisionOverdue}

func TestMarshalDecisionGolden(t *testing.T) {
	t.Parallel()
	got, err := MarshalDecision(testDecision(TypeDecisionAlert))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"` + DecisionID(TypeDecisionAlert, "evt-1") + `","type":"fenqi.decision.alert.v1",` +
		`"source":"fenqi","time":"2025-03-01T12:00:00.0000005Z","subject":"u-1001","datacontenttype":"application/json",` +
		`"data":{"user_id":"u-1001","causation_id":"evt-1","rule":"late_night_large_payment","action":"sms_verification",` +
		`"reason_codes":[{"code":"FENQI_LATE_NIGHT_LARGE","message":"large payment at night","advice":"confirm by SMS"},` +
		`{"code":"WECHAT_CREDIT_401","message":"pay score below threshold"}],"policy_version":"wechat-2025.1",` +
		`"detail":{"amount_fen":250000,"local_time":"02:13"}}}`
	if string(got) != want {
		t.Fatalf("MarshalDecision =\n%s\nwant\n%s", got, want)
	}
}

func TestMarshalDecisionShapes(t *testing.T) {
	t.Parallel()
	t.Run("nil reason codes are an empty array, nil detail is left out", func(t *testing.T) {
		t.Parallel()
		d := testDecision(TypeDecisionUnfrozen)
		d.Data.ReasonCodes, d.Data.Detail = nil, nil
		b, err := MarshalDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"reason_codes":[]`)) || bytes.Contains(b, []byte(`"detail"`)) {
			t.Fatalf("MarshalDecision = %s", b)
		}
	})
	t.Run("typed nil detail is left out", func(t *testing.T) {
		t.Parallel()
		d := testDecision(TypeDecisionQuota)
		d.Data.Detail = (*alertDetail)(nil)
		b, err := MarshalDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"detail"`)) {
			t.Fatalf("MarshalDecision = %s", b)
		}
	})
	t.Run("map and raw detail", func(t *testing.T) {
		t.Parallel()
		for _, detail := range []any{map[string]any{"quota_fen": 2000000}, json.RawMessage(`{ "quota_fen": 2000000 }`)} {
			d := testDecision(TypeDecisionQuota)
			d.Data.Detail = detail
			b, err := MarshalDecision(d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"detail":{"quota_fen":2000000}`)) {
				t.Fatalf("MarshalDecision = %s", b)
			}
		}
	})
}

func TestMarshalDecisionErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(d *Decision)
	}{
		{"unknown type", func(d *Decision) { d.Type = "fenqi.decision.other.v1" }},
		{"input type", func(d *Decision) { d.Type = TypePayment }},
		{"empty id", func(d *Decision) { d.ID = "" }},
		{"empty subject", func(d *Decision) { d.Subject = "" }},
		{"zero time", func(d *Decision) { d.Time = time.Time{} }},
		{"detail string", func(d *Decision) { d.Data.Detail = "late night" }},
		{"detail slice", func(d *Decision) { d.Data.Detail = []int{1} }},
		{"detail raw array", func(d *Decision) { d.Data.Detail = json.RawMessage(`[1]`) }},
		{"detail unmarshalable", func(d *Decision) { d.Data.Detail = map[string]any{"f": func() {}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := testDecision(TypeDecisionAlert)
			c.change(&d)
			if b, err := MarshalDecision(d); err == nil {
				t.Fatalf("MarshalDecision = %s, want an error", b)
			}
		})
	}
}

func TestDecisionRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range decisionTypes {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			in := testDecision(typ)
			b, err := MarshalDecision(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeDecision(b)
			if err != nil {
				t.Fatalf("DecodeDecision: %v\n%s", err, b)
			}
			detail, ok := got.Data.Detail.(json.RawMessage)
			if !ok {
				t.Fatalf("Detail is %T, want json.RawMessage", got.Data.Detail)
			}
			var ad alertDetail
			if err := json.Unmarshal(detail, &ad); err != nil || ad != in.Data.Detail {
				t.Fatalf("Detail = %s (%v), want %+v", detail, err, in.Data.Detail)
			}
			want := in
			want.Data.Detail = detail
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeDecision =\n%+v\nwant\n%+v", got, want)
			}
			again, err := MarshalDecision(got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("MarshalDecision(DecodeDecision(b)) =\n%s (%v)\nwant\n%s", again, err, b)
			}
		})
	}
	t.Run("no detail, no reason codes", func(t *testing.T) {
		t.Parallel()
		in := testDecision(TypeDecisionFrozen)
		in.Data.Detail, in.Data.ReasonCodes = nil, []ReasonCode{}
		b, err := MarshalDecision(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeDecision(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("DecodeDecision =\n%+v\nwant\n%+v", got, in)
		}
	})
}

func TestDecodeDecisionErrors(t *testing.T) {
	t.Parallel()
	good, err := MarshalDecision(testDecision(TypeDecisionOverdue))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	data := env["data"].(map[string]any)
	for _, c := range []struct {
		name  string
		value []byte
		field string
	}{
		{"not JSON", []byte("decision"), "value"},
		{"array", []byte("[]"), "value"},
		{"specversion 0.3", mustJSON(t, mutate(env, map[string]any{"specversion": "0.3"})), "specversion"},
		{"id absent", mustJSON(t, mutate(env, map[string]any{"id": absent})), "id"},
		{"input type", mustJSON(t, mutate(env, map[string]any{"type": TypePayment})), "type"},
		{"subject absent", mustJSON(t, mutate(env, map[string]any{"subject": absent})), "subject"},
		{"time bad", mustJSON(t, mutate(env, map[string]any{"time": "noon"})), "time"},
		{"data absent", mustJSON(t, mutate(env, map[string]any{"data": absent})), "data"},
		{"data string", mustJSON(t, mutate(env, map[string]any{"data": "x"})), "data"},
		{"reason_codes object", mustJSON(t, mutate(env, map[string]any{"data": mutate(data, map[string]any{"reason_codes": map[string]any{}})})), "data.reason_codes"},
		{"detail string", mustJSON(t, mutate(env, map[string]any{"data": mutate(data, map[string]any{"detail": "x"})})), "data.detail"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeDecision(c.value)
			wantDecodeError(t, err, c.field)
		})
	}
}

func TestDecisionID(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("alert\x00evt-1\x00late_night"))
	want := "d-" + hex.EncodeToString(sum[:16])
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"known value", DecisionID("alert", "evt-1", "late_night"), want},
		{"stable", DecisionID("alert", "evt-1", "late_night"), DecisionID("alert", "evt-1", "late_night")},
		{"pinned", DecisionID("a", "b"), "d-" + hex.EncodeToString(sha256Prefix("a\x00b"))},
		{"no parts", DecisionID(), "d-" + hex.EncodeToString(sha256Prefix(""))},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.got != c.want {
				t.Fatalf("DecisionID = %s, want %s", c.got, c.want)
			}
			if len(c.got) != 34 || !strings.HasPrefix(c.got, "d-") {
				t.Fatalf("DecisionID = %s, want d- and 32 hex digits", c.got)
			}
		})
	}
	t.Run("the split matters", func(t *testing.T) {
		t.Parallel()
		ids := map[string]bool{}
		for _, parts := range [][]string{{"ab", "c"}, {"a", "bc"}, {"abc"}, {"a", "b", "c"}, {"c", "ab"}, {"", "abc"}} {
			id := DecisionID(parts...)
			if ids[id] {
				t.Fatalf("DecisionID(%q) repeats %s", parts, id)
			}
			ids[id] = true
		}
	})
}

func sha256Prefix(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:16]
}
