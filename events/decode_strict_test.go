package events

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 12: hostile input. Each test below was written first against the
// lenient decoder and failed on it; the limits are listed in
// docs/events.md ("Limits").

// rawJSONString quotes s as a JSON string without touching its bytes
// beyond the quote, the backslash and the control characters: invalid
// UTF-8 stays invalid (json.Marshal would replace it with U+FFFD).
func rawJSONString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < ' ':
			fmt.Fprintf(&sb, `\u%04x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// placeholder stands for a value spliced into a fixture's JSON as it is.
const placeholder = "@@splice@@"

// splice returns the record of typ in mode m (key: the subject) with the
// attribute or data field (a name starting with "data.") set to the
// literal JSON text lit. For an attribute in binary mode, header is the
// header value to use instead (lit is then ignored).
func splice(t testing.TB, m mode, typ, field, lit string, header string) ([]Header, []byte) {
	t.Helper()
	attrs, data := validAttrs(typ), validData(typ)
	name, isData := strings.CutPrefix(field, "data.")
	if isData {
		data[name] = placeholder
	} else {
		attrs[name] = placeholder
	}
	headers, value := record(t, m, attrs, data)
	if !isData && m == binaryMode {
		for i := range headers {
			if headers[i].Key == "ce_"+name {
				headers[i].Value = []byte(header)
			}
		}
		return headers, value
	}
	value = []byte(strings.Replace(string(value), `"`+placeholder+`"`, lit, 1))
	return headers, value
}

// withText sets field (as splice) to the string s, its bytes kept as they
// are in the JSON and in the header.
func withText(t testing.TB, m mode, typ, field, s string) ([]Header, []byte) {
	t.Helper()
	return splice(t, m, typ, field, rawJSONString(s), s)
}

// wantRefused checks that err is a *DecodeError on field whose reason
// contains every one of words.
func wantRefused(t *testing.T, err error, field string, words ...string) {
	t.Helper()
	wantDecodeError(t, err, field)
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not say %q", err, w)
		}
	}
}

// textFields are the free-text attributes and data fields of each type
// (the ones with an enumerated value are left out).
var textFields = map[string][]string{
	TypePayment:       {"id", "source", "data.merchant_id", "data.device_id", "data.city"},
	TypeLogin:         {"id", "source", "data.device_id", "data.city"},
	TypeRepaymentDue:  {"id", "source", "data.bill_id"},
	TypeRepaymentPaid: {"id", "source", "data.bill_id"},
	TypeProfile:       {"id", "source"},
	TypeOperator:      {"id", "source", "data.reason", "data.operator"},
}

// Defect 1: times that RFC 3339 forbids were accepted by time.Parse.
func TestDecodeTimeStrictRFC3339(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		time, due string // the event time and a due time of the same form
		ok        bool
	}{
		{"2025-03-01T11:59:00Z", "2025-03-10T00:00:00Z", true},
		{"2025-03-01T11:59:00.5Z", "2025-03-10T00:00:00.5Z", true},
		{"2025-03-01T11:59:00.123456789Z", "2025-03-10T00:00:00.123456789Z", true},
		{"2025-03-01T19:59:00+08:00", "2025-03-10T00:00:00+08:00", true},
		{"2025-03-01T11:59:00-00:00", "2025-03-10T00:00:00-00:00", true}, // RFC 3339 §4.3: UTC, offset unknown
		{"2025-03-02T11:58:00+23:59", "2025-03-10T00:00:00-23:59", true}, // the widest offsets
		{"2025-03-01T11:59:00,5Z", "2025-03-10T00:00:00,5Z", false},      // a comma before the fraction
		{"2025-03-01T11:59:00+24:00", "2025-03-10T00:00:00+24:00", false},
		{"2025-03-01T11:59:00+00:60", "2025-03-10T00:00:00-00:60", false},
		{"2025-03-01T11:59:00+23:60", "2025-03-10T00:00:00+23:60", false},
		{"2025-03-01T11:59:00+99:99", "2025-03-10T00:00:00+99:99", false},
		{"2025-03-01T1:59:00Z", "2025-03-10T0:00:00Z", false},                         // a one-digit hour
		{"2025-03-01T11:59:00.1234567891Z", "2025-03-10T00:00:00.1234567891Z", false}, // beyond nanoseconds
		{"2025-03-01T11:59:00.Z", "2025-03-10T00:00:00.Z", false},
		{"2025-03-01T11:59:60Z", "2025-03-10T23:59:60Z", false}, // leap second
		{"2025-03-01T24:00:00Z", "2025-03-10T24:00:00Z", false},
		{"2025-03-01t11:59:00z", "2025-03-10t00:00:00z", false}, // lower case (RFC 3339 §5.6 allows it; fenqi does not)
		{"2025-03-01T11:59:00z", "2025-03-10T00:00:00z", false},
		{"2025-03-01 11:59:00Z", "2025-03-10 00:00:00Z", false},
		{"2025-03-01T11:59Z", "2025-03-10T00:00Z", false}, // no seconds
		{"2025-03-01T11:59:00", "2025-03-10T00:00:00", false},
		{"2025-03-01T11:59:00+0800", "2025-03-10T00:00:00+0800", false},
		{"2025-03-01T11:59:00+08", "2025-03-10T00:00:00+08", false},
		{" 2025-03-01T11:59:00Z", " 2025-03-10T00:00:00Z", false},
		{"2025-03-01T11:59:00Z ", "2025-03-10T00:00:00Z ", false},
		{"2025-02-29T11:59:00Z", "2025-02-29T00:00:00Z", false},
		{"２025-03-01T11:59:00Z", "２025-03-10T00:00:00Z", false},
		{"+2025-03-01T11:59:00Z", "+2025-03-10T00:00:00Z", false},
	} {
		for _, m := range modes {
			t.Run(c.time+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				headers, value := withText(t, m, TypeRepaymentDue, "time", c.time)
				_, err := testDecoder().Decode([]byte(user), headers, value)
				if c.ok {
					if err != nil {
						t.Fatalf("time %q: %v", c.time, err)
					}
				} else {
					wantRefused(t, err, "time", "RFC 3339")
				}
				headers, value = withText(t, m, TypeRepaymentDue, "data.due_at", c.due)
				_, err = testDecoder().Decode([]byte(user), headers, value)
				if c.ok {
					if err != nil {
						t.Fatalf("due_at %q: %v", c.due, err)
					}
				} else {
					wantRefused(t, err, "data.due_at", "RFC 3339")
				}
			})
		}
	}
	t.Run("offsets convert exactly", func(t *testing.T) {
		t.Parallel()
		headers, value := withText(t, structuredMode, TypeRepaymentDue, "data.due_at", "2025-03-10T00:00:00.25-23:59")
		e, err := testDecoder().Decode(nil, headers, value)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2025, 3, 10, 23, 59, 0, 250_000_000, time.UTC)
		if !e.Due.DueAt.Equal(want) || e.Due.DueAt.Location() != time.UTC {
			t.Fatalf("due_at = %v, want %v", e.Due.DueAt, want)
		}
	})
	for _, field := range dateFields {
		t.Run(field+" is a strict date", func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				date string
				ok   bool
			}{
				{"2024-02-29", true}, {"2023-02-29", false}, {"2024-1-01", false}, {"2024-01-1 ", false},
				{"2024-01-01T00:00:00Z", false}, {"+024-01-01", false}, {"2024-00-10", false}, {"2024-01-00", false},
				{"２024-01-01", false}, {"2024/01/01", false}, {"2024-04-31", false}, {"1900-02-29", false}, {"2000-02-29", true},
			} {
				for _, m := range modes {
					headers, value := withText(t, m, TypeProfile, field, c.date)
					_, err := testDecoder().Decode([]byte(user), headers, value)
					if c.ok && err != nil {
						t.Fatalf("%q (%s): %v", c.date, m, err)
					}
					if !c.ok {
						wantRefused(t, err, field, "YYYY-MM-DD")
					}
				}
			}
		})
	}
}

// dateFields are the profile's dates (YYYY-MM-DD, or empty).
var dateFields = []string{"data.card_bound_since", "data.serious_default_elsewhere_on"}

// invalidUTF8 are strings that are not valid UTF-8, as raw bytes.
var invalidUTF8 = []string{"u-\xff", "\xc3", "a\xc3(b", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "ok\x80"}

// unpairedSurrogates are JSON string escapes that encoding/json turns
// into U+FFFD.
var unpairedSurrogates = []string{`"\ud800"`, `"\udc00"`, `"x\ud83dy"`, `"\ud800\u0041"`, `"\ude00\ud83d"`, `"\uDBFF\uDBFF"`}

// Defect 2: invalid UTF-8 was accepted, replaced by U+FFFD.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	for typ, fields := range textFields {
		for _, field := range append(slices.Clone(fields), "data.user_id", "subject") {
			for _, m := range modes {
				for _, s := range invalidUTF8 {
					t.Run(fmt.Sprintf("%s/%s/%s/%q", typ, field, m, s), func(t *testing.T) {
						t.Parallel()
						headers, value := withText(t, m, typ, field, s)
						_, err := testDecoder().Decode(nil, headers, value)
						wantRefused(t, err, field, "UTF-8")
					})
				}
				if m == binaryMode && !strings.HasPrefix(field, "data.") {
					continue // headers have no escapes
				}
				for _, lit := range unpairedSurrogates {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", typ, field, m, lit), func(t *testing.T) {
						t.Parallel()
						headers, value := splice(t, m, typ, field, lit, "")
						_, err := testDecoder().Decode(nil, headers, value)
						wantRefused(t, err, field, "UTF-8")
					})
				}
			}
		}
	}
	t.Run("paired surrogates and U+FFFD itself are fine", func(t *testing.T) {
		t.Parallel()
		for _, lit := range []string{`"\ud83d\ude00"`, `"\uDBFF\uDFFF"`, `"\ufffd"`, "\"\xef\xbf\xbd\"", `"\\ud800"`, `"\u00e9\u4e0a"`} {
			for _, m := range modes {
				headers, value := splice(t, m, TypePayment, "data.city", lit, "")
				if _, err := testDecoder().Decode(nil, headers, value); err != nil {
					t.Fatalf("city %s (%s): %v", lit, m, err)
				}
			}
		}
	})
	t.Run("anywhere in the JSON", func(t *testing.T) {
		t.Parallel()
		for _, m := range modes {
			for _, c := range []struct{ lit, field string }{
				{"{\"note\":\"\xff\"}", "data"},
				{`["ok",{"deep":"\ud800"}]`, "data"},
			} {
				headers, value := splice(t, m, TypePayment, "data.future_field", c.lit, "")
				_, err := testDecoder().Decode(nil, headers, value)
				wantRefused(t, err, c.field, "UTF-8", "future_field")
			}
			headers, value := record(t, m, validAttrs(TypePayment), validData(TypePayment))
			v := strings.Replace(string(value), `"city"`, "\"ci\xfft\xffy\":1,\"city\"", 1)
			_, err := testDecoder().Decode(nil, headers, []byte(v))
			wantRefused(t, err, "data", "name", "UTF-8")
		}
		headers, value := record(t, structuredMode, mutate(validAttrs(TypePayment), map[string]any{"ext": placeholder}), validData(TypePayment))
		value = []byte(strings.Replace(string(value), `"`+placeholder+`"`, "\"\xfe\"", 1))
		_, err := testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "value", "UTF-8", "ext")
	})
	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		headers, value := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
		headers[0].Value = []byte(ContentTypeCloudEvents + "; x=\xff")
		_, err := testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "content-type", "UTF-8")
		headers, value = record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
		headers[0].Value = []byte("application/json; q=\xc3")
		_, err = testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "content-type", "UTF-8")
	})
	t.Run("the key", func(t *testing.T) {
		t.Parallel()
		for _, m := range modes {
			headers, value := record(t, m, validAttrs(TypeLogin), validData(TypeLogin))
			_, err := testDecoder().Decode([]byte(user+"\xff"), headers, value)
			wantDecodeError(t, err, "key")
		}
	})
}

// Defect 2, as it hurt: two upstream ids that differ only in invalid
// bytes became the same user.
func TestDecodeInvalidUTF8DoesNotMergeUsers(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		subjects := map[string]bool{}
		for _, id := range []string{"u-\xff1", "u-\xfe1", "u-\xc31"} {
			attrs := mutate(validAttrs(TypeLogin), map[string]any{"subject": placeholder})
			data := mutate(validData(TypeLogin), map[string]any{"user_id": placeholder})
			headers, value := record(t, m, attrs, data)
			value = []byte(strings.ReplaceAll(string(value), `"`+placeholder+`"`, rawJSONString(id)))
			for i := range headers {
				if headers[i].Key == "ce_subject" {
					headers[i].Value = []byte(id)
				}
			}
			e, err := testDecoder().Decode(nil, headers, value)
			if err == nil {
				subjects[e.Subject] = true
				continue
			}
			wantRefused(t, err, "subject", "UTF-8")
		}
		if len(subjects) > 0 {
			t.Fatalf("%s: ids of invalid UTF-8 accepted as %q", m, slices.Collect(maps.Keys(subjects)))
		}
	}
}

// Defect 3: ids and names had no length limit.
func TestDecodeLengthCaps(t *testing.T) {
	t.Parallel()
	const limit = 128
	if MaxIDBytes != limit {
		t.Fatalf("MaxIDBytes = %d; docs/events.md says %d", MaxIDBytes, limit)
	}
	lengths := map[string]string{
		"ascii at the limit":             strings.Repeat("a", limit),
		"multi-byte at the limit":        strings.Repeat("城", limit/3) + strings.Repeat("b", limit%3),
		"ascii one over":                 strings.Repeat("a", limit+1),
		"multi-byte one over (43 runes)": strings.Repeat("城", limit/3+1),
	}
	for typ, fields := range textFields {
		for _, field := range append(slices.Clone(fields), "subject") {
			for name, s := range lengths {
				for _, m := range modes {
					t.Run(typ+"/"+field+"/"+name+"/"+string(m), func(t *testing.T) {
						t.Parallel()
						var headers []Header
						var value []byte
						key := []byte(user)
						if field == "subject" { // the subject, the user id and the key go together
							attrs := mutate(validAttrs(typ), map[string]any{"subject": s})
							headers, value = record(t, m, attrs, mutate(validData(typ), map[string]any{"user_id": s}))
							key = []byte(s)
						} else {
							headers, value = withText(t, m, typ, field, s)
						}
						e, err := testDecoder().Decode(key, headers, value)
						if len(s) <= limit {
							if err != nil {
								t.Fatalf("%d bytes: %v", len(s), err)
							}
							if field == "subject" && e.UserID() != s {
								t.Fatalf("user %q", e.UserID())
							}
							return
						}
						wantRefused(t, err, field, "128 bytes", fmt.Sprint(len(s)))
					})
				}
			}
		}
	}
	t.Run("timezone and content types", func(t *testing.T) {
		t.Parallel()
		headers, value := withText(t, structuredMode, TypeProfile, "data.timezone", "Asia/"+strings.Repeat("x", limit))
		_, err := testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "data.timezone", "128 bytes")
		headers, value = record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
		headers[0].Value = []byte(ContentTypeCloudEvents + "; p=" + strings.Repeat("x", limit))
		_, err = testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "content-type", "128 bytes")
		headers, value = record(t, structuredMode, mutate(validAttrs(TypePayment),
			map[string]any{"datacontenttype": "application/json; p=" + strings.Repeat("x", limit)}), validData(TypePayment))
		_, err = testDecoder().Decode(nil, headers, value)
		wantRefused(t, err, "datacontenttype", "128 bytes")
	})
}

// Defect 4: repeated or contradictory CloudEvents headers.
func TestDecodeHeaderRules(t *testing.T) {
	t.Parallel()
	bh, bv := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	sh, sv := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
	with := func(hs []Header, extra ...string) []Header {
		hs = slices.Clone(hs)
		for i := 0; i < len(extra); i += 2 {
			hs = append(hs, Header{Key: extra[i], Value: []byte(extra[i+1])})
		}
		return hs
	}
	without := func(hs []Header, name string) []Header {
		return slices.DeleteFunc(slices.Clone(hs), func(h Header) bool { return h.Key == name })
	}
	for _, c := range []struct {
		name    string
		headers []Header
		value   []byte
		field   string
		words   []string
	}{
		{"structured: two content-type headers", with(sh, "content-type", ContentTypeCloudEvents), sv, "content-type", []string{"repeated"}},
		{"structured: content-type and Content-Type", with(sh, "Content-Type", "text/plain"), sv, "content-type", []string{"repeated", "case"}},
		{"binary: two content-type headers", with(bh, "content-type", "application/json"), bv, "content-type", []string{"repeated"}},
		{"binary: content-type and CONTENT-TYPE", with(bh, "CONTENT-TYPE", "application/json"), bv, "content-type", []string{"repeated", "case"}},
		{"binary: two ce_id", with(bh, "ce_id", "evt-2"), bv, "id", []string{"repeated"}},
		{"binary: ce_id and CE_ID", with(bh, "CE_ID", "evt-1"), bv, "id", []string{"repeated", "case"}},
		{"binary: ce_specversion and Ce_SpecVersion", with(bh, "Ce_SpecVersion", "1.0"), bv, "specversion", []string{"repeated"}},
		{"binary: ce_datacontenttype xml", with(bh, "ce_datacontenttype", "application/xml"), bv, "datacontenttype", nil},
		{"binary: ce_datacontenttype json", with(bh, "ce_datacontenttype", "application/json"), bv, "", nil},
		{"binary: a Unicode fold of ce_subject is not ce_subject", with(without(bh, "ce_subject"), "ce_ſubject", user), bv, "subject", nil},
		{"binary: ce_time and ce_Time", with(bh, "ce_Time", testTime.Format(time.RFC3339)), bv, "time", []string{"repeated"}},
		{"structured: ce_id agrees", with(sh, "ce_id", "evt-1"), sv, "", nil},
		{"structured: ce_id contradicts", with(sh, "ce_id", "evt-2"), sv, "id", []string{"contradicts"}},
		{"structured: ce_subject contradicts", with(sh, "ce_subject", "u-2002"), sv, "subject", []string{"contradicts"}},
		{"structured: ce_type contradicts", with(sh, "ce_type", TypeLogin), sv, "type", []string{"contradicts"}},
		{"structured: ce_source contradicts", with(sh, "ce_source", "elsewhere"), sv, "source", []string{"contradicts"}},
		{"structured: ce_time contradicts", with(sh, "ce_time", testTime.Add(time.Second).Format(time.RFC3339)), sv, "time", []string{"contradicts"}},
		{"structured: ce_datacontenttype xml", with(sh, "ce_datacontenttype", "application/xml"), sv, "datacontenttype", nil},
		{"structured: two ce_subject", with(sh, "ce_subject", user, "CE_SUBJECT", user), sv, "subject", []string{"repeated"}},
		{"structured: other ce_ headers ignored", with(sh, "ce_traceparent", "00-abc", "ce_partitionkey", "x"), sv, "", nil},
		{"content-type by Unicode folding", []Header{{Key: "content-type", Value: []byte("application/cloudevents+jſon")}}, sv, "content-type", nil},
		{"content-type with a no-break space", []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents + "\u00a0")}}, sv, "content-type", nil},
		{"content-type with a newline", []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents + "\n")}}, sv, "content-type", []string{"control"}},
		{"content-type charset latin1", []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents + "; charset=latin1")}}, sv, "content-type", []string{"utf-8"}},
		{"content-type charset UTF-8", []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents + ";charset=\"UTF-8\"")}}, sv, "", nil},
		{"binary content-type charset iso-8859-1", with(without(bh, "content-type"), "content-type", "application/json; charset=iso-8859-1"), bv, "content-type", []string{"utf-8"}},
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
			wantRefused(t, err, c.field, c.words...)
		})
	}
}

// Defect 5: duplicate member names. encoding/json took the last one, other
// readers take the first: refused.
func TestDecodeDuplicateMembers(t *testing.T) {
	t.Parallel()
	pay := string(mustJSON(t, validData(TypePayment)))
	env := func(data string) []byte {
		return []byte(`{"specversion":"1.0","id":"evt-1","type":"` + TypePayment + `","source":"s","subject":"` + user +
			`","time":"` + testTime.Format(time.RFC3339) + `","data":` + data + `}`)
	}
	ce := []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}
	bh, _ := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	for _, c := range []struct {
		name, data string
		field      string
	}{
		{"city twice", strings.Replace(pay, `"city":"Shanghai"`, `"city":"Shanghai","city":"Beijing"`, 1), "data.city"},
		{"city then null", strings.Replace(pay, `"city":"Shanghai"`, `"city":"Shanghai","city":null`, 1), "data.city"},
		{"amount twice", strings.Replace(pay, `"amount_fen":12345`, `"amount_fen":1,"amount_fen":12345`, 1), "data.amount_fen"},
		{"user_id escaped the second time", strings.Replace(pay, `}`, `,"\u0075ser_id":"u-1001"}`, 1), "data.user_id"},
		{"an unknown member twice", strings.Replace(pay, `}`, `,"note":1,"note":2}`, 1), "data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := testDecoder().Decode(nil, ce, env(c.data))
			wantRefused(t, err, c.field, "repeated")
			_, err = testDecoder().Decode(nil, bh, []byte(c.data))
			wantRefused(t, err, c.field, "repeated")
		})
	}
	for _, c := range []struct {
		name, value, field string
	}{
		{"id twice", strings.Replace(string(env(pay)), `"id":"evt-1"`, `"id":"evt-1","id":"evt-2"`, 1), "id"},
		{"type twice", strings.Replace(string(env(pay)), `"type"`, `"type":"`+TypeLogin+`","type"`, 1), "type"},
		{"data twice", strings.Replace(string(env(pay)), `"data"`, `"data":{},"data"`, 1), "data"},
		{"an extension twice", strings.Replace(string(env(pay)), `"id"`, `"ext":1,"ext":1,"id"`, 1), "value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := testDecoder().Decode(nil, ce, []byte(c.value))
			wantRefused(t, err, c.field, "repeated")
		})
	}
}

// Defect 5: member names were matched ignoring case and by Unicode
// folding ("ſcene" set scene): a reader that matches exactly sees another
// event. Refused; an escape that spells the exact name is fine.
func TestDecodeMemberNamesExact(t *testing.T) {
	t.Parallel()
	bh, bv := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	sh, sv := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
	for _, c := range []struct {
		name, old, new string
		field          string
	}{
		{"upper case", `"scene"`, `"SCENE"`, "data.scene"},
		{"long s", `"scene"`, `"ſcene"`, "data.scene"},
		{"escaped long s", `"scene"`, `"\u017fcene"`, "data.scene"},
		{"escaped upper case", `"auth"`, `"\u0041uth"`, "data.auth"},
		{"escaped exact name", `"auth"`, `"\u0061uth"`, ""},
		{"kelvin sign", `"auth"`, `"ban\u212a":1,"auth"`, ""}, // no such field: an unknown member
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, in := range []struct {
				headers []Header
				value   []byte
			}{{sh, sv}, {bh, bv}} {
				v := []byte(strings.Replace(string(in.value), c.old, c.new, 1))
				_, err := testDecoder().Decode(nil, in.headers, v)
				if c.field == "" {
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				wantRefused(t, err, c.field, "exactly")
			}
		})
	}
	for _, c := range []struct{ old, new, field string }{
		{`"type"`, `"TYPE"`, "type"},
		{`"data"`, `"Data"`, "data"},
		{`"subject"`, `"ſubject"`, "subject"},
		{`"specversion"`, `"SpecVersion"`, "specversion"},
	} {
		v := []byte(strings.Replace(string(sv), c.old, c.new, 1))
		_, err := testDecoder().Decode(nil, sh, v)
		wantRefused(t, err, c.field, "exactly")
	}
}

// Defect 5: control characters in ids and names (a NUL, a newline that
// splits a log line, C1 controls).
func TestDecodeRefusesControlCharacters(t *testing.T) {
	t.Parallel()
	for typ, fields := range textFields {
		for _, field := range append(slices.Clone(fields), "subject") {
			for _, s := range []string{"dev\x00", "a\nb", "\r", "x\x7f", "tab\there", "c1\u0085", "\u009b31m"} {
				for _, m := range modes {
					t.Run(fmt.Sprintf("%s/%s/%q/%s", typ, field, s, m), func(t *testing.T) {
						t.Parallel()
						headers, value := withText(t, m, typ, field, s)
						_, err := testDecoder().Decode(nil, headers, value)
						wantRefused(t, err, field, "control")
					})
				}
			}
		}
	}
	t.Run("printable text is fine", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"上海", "dev 1", "\ufffd", "a\u00a0b", "emoji \U0001F600"} {
			for _, m := range modes {
				headers, value := withText(t, m, TypePayment, "data.city", s)
				e, err := testDecoder().Decode(nil, headers, value)
				if err != nil {
					t.Fatalf("%q: %v", s, err)
				}
				if e.Payment.City != s {
					t.Fatalf("city %q, want %q", e.Payment.City, s)
				}
			}
		}
	})
}

// Defect 5: netip.ParseAddr takes an IPv6 zone of any text ("::1%" and
// then anything, up to the size limit).
func TestDecodeIPWithoutZone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ip string
		ok bool
	}{
		{"203.0.113.7", true}, {"2001:db8::1", true}, {"::ffff:203.0.113.7", true},
		{"fe80::1%eth0", false}, {"::1%" + strings.Repeat("z", 1000), false}, {"::1%\xff", false},
	} {
		for _, m := range modes {
			headers, value := withText(t, m, TypeLogin, "data.ip", c.ip)
			_, err := testDecoder().Decode(nil, headers, value)
			if c.ok && err != nil {
				t.Fatalf("%q: %v", c.ip, err)
			}
			if !c.ok {
				wantDecodeError(t, err, "data.ip")
			}
		}
	}
}

// Defect 5: data_base64 next to data was ignored; CloudEvents forbids both.
func TestDecodeDataBase64Refused(t *testing.T) {
	t.Parallel()
	sh, _ := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
	for _, v := range []any{"e30=", nil} {
		env := mutate(validAttrs(TypePayment), map[string]any{"data": validData(TypePayment), "data_base64": v})
		_, err := testDecoder().Decode(nil, sh, mustJSON(t, env))
		wantRefused(t, err, "data", "data_base64")
	}
}

// Defect 5: numbers. Amounts are int64 fen of at most 2^53-1; a number
// that does not fit, or has a fraction or an exponent, is refused with the
// reason that gives the limit.
func TestDecodeNumberLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		typ, field, lit string
		ok              bool
	}{
		{TypePayment, "data.amount_fen", "9007199254740991", true},
		{TypePayment, "data.amount_fen", "9007199254740992", false},
		{TypePayment, "data.amount_fen", "9223372036854775808", false},
		{TypePayment, "data.amount_fen", "1e400", false},
		{TypePayment, "data.amount_fen", "-9223372036854775809", false},
		{TypeRepaymentDue, "data.amount_fen", "18446744073709551616", false},
		{TypeProfile, "data.wealth_balance_fen", "9007199254740991", true},
		{TypeProfile, "data.wealth_balance_fen", "9007199254740992", false},
		{TypeProfile, "data.wealth_balance_fen", "-0", true},
		{TypeProfile, "data.transaction_limit_fen", "9007199254740992", false},
		{TypeProfile, "data.transaction_limit_fen", "99999999999999999999999", false},
		{TypeProfile, "data.partner_limit_fen", "9007199254740991", true},
		{TypeProfile, "data.partner_limit_fen", "9007199254740992", false},
		{TypeProfile, "data.partner_limit_fen", "-1", false},
		{TypeProfile, "data.partner_limit_fen", "1e3", false},
		{TypeProfile, "data.weilidai_limit_fen", "9007199254740991", true},
		{TypeProfile, "data.weilidai_limit_fen", "9223372036854775808", false},
		{TypeProfile, "data.weilidai_limit_fen", "-9223372036854775808", false},
		{TypeProfile, "data.weilidai_limit_fen", "0.0", false},
		{TypeProfile, "data.alert_threshold_fen", "-0", true},
		{TypeProfile, "data.alert_threshold_fen", "9007199254740992", false},
		{TypeProfile, "data.alert_threshold_fen", "99999999999999999999999", false},
		{TypeProfile, "data.alert_threshold_fen", `"100000"`, false},
		{TypeProfile, "data.pay_score", "700.0", false},
		{TypeProfile, "data.pay_score", "9223372036854776508", false},
		{TypePayment, "data.installments", "18446744073709551619", false},
	} {
		for _, m := range modes {
			headers, value := splice(t, m, c.typ, c.field, c.lit, "")
			_, err := testDecoder().Decode(nil, headers, value)
			if c.ok {
				if err != nil {
					t.Fatalf("%s %s: %v", c.field, c.lit, err)
				}
				continue
			}
			wantDecodeError(t, err, c.field)
			if strings.HasSuffix(c.field, "_fen") && !strings.Contains(err.Error(), "9007199254740991") {
				t.Fatalf("%s %s: %v does not give the limit", c.field, c.lit, err)
			}
		}
	}
}

// The fields added to the profile and the due event after their first
// version (partner_limit_fen, weilidai_limit_fen, alert_threshold_fen,
// serious_default_elsewhere_on; pool) are held to the rules of the others:
// repeats, names in another case and invalid UTF-8 are refused on the
// field, with reasons that say what is wanted.
func TestDecodeLaterFieldsStrict(t *testing.T) {
	t.Parallel()
	later := []struct{ typ, field, lit string }{
		{TypeProfile, "partner_limit_fen", "3000000"},
		{TypeProfile, "weilidai_limit_fen", "1500000"},
		{TypeProfile, "alert_threshold_fen", "100000"},
		{TypeProfile, "serious_default_elsewhere_on", `"2022-11-03"`},
		{TypeRepaymentDue, "pool", `"independent"`},
	}
	for _, c := range later {
		for _, m := range modes {
			t.Run(c.field+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				field := "data." + c.field
				_, valid := record(t, m, validAttrs(c.typ), validData(c.typ))
				member := `"` + c.field + `":` + c.lit
				if !strings.Contains(string(valid), member) {
					t.Fatalf("%s not in %s", member, valid)
				}
				headers, _ := record(t, m, validAttrs(c.typ), validData(c.typ))
				decode := func(v string) error {
					_, err := testDecoder().Decode(nil, headers, []byte(v))
					return err
				}
				for _, v := range []string{
					strings.Replace(string(valid), member, member+","+member, 1),
					strings.Replace(string(valid), member, member+`,"`+c.field+`":null`, 1),
					strings.Replace(string(valid), member, `"`+c.field+`":null,`+member, 1),
					strings.Replace(string(valid), member, member+`,"\u`+fmt.Sprintf("%04x", c.field[0])+c.field[1:]+`":`+c.lit, 1),
				} {
					wantRefused(t, decode(v), field, "repeated")
				}
				names := []string{strings.ToUpper(c.field), strings.ToUpper(c.field[:1]) + c.field[1:]}
				if strings.Contains(c.field, "s") {
					names = append(names, strings.Replace(c.field, "s", "ſ", 1)) // a long s
				}
				if strings.Contains(c.field, "l") {
					names = append(names, strings.Replace(c.field, "l", `\u004c`, 1)) // an escaped L
				}
				for _, name := range names {
					v := strings.Replace(string(valid), `"`+c.field+`":`, `"`+name+`":`, 1)
					wantRefused(t, decode(v), field, "exactly")
				}
				for _, bad := range []string{"\"\xff\"", `"\ud800"`, "\"2024-01-0\xc3\""} {
					v := strings.Replace(string(valid), member, `"`+c.field+`":`+bad, 1)
					err := decode(v)
					if strings.HasSuffix(c.field, "_fen") {
						wantRefused(t, err, field, "integer", "9007199254740991") // the JSON type is wrong first
						continue
					}
					wantRefused(t, err, field, "UTF-8")
				}
			})
		}
	}
	t.Run("reasons", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			typ, field, lit string
			words           []string
		}{
			{TypeRepaymentDue, "data.pool", `"partner"`, []string{"pay_score", "independent", "shared_weilidai", "special_temporary", `not "partner"`}},
			{TypeRepaymentDue, "data.pool", `"Pay_Score"`, []string{"must be one of", `not "Pay_Score"`}},
			{TypeRepaymentDue, "data.pool", `7`, []string{"pay_score", "independent", "shared_weilidai", "special_temporary"}},
			{TypeRepaymentDue, "data.pool", `"\u0000"`, []string{"must be one of", `not "\x00"`}},
			{TypeProfile, "data.serious_default_elsewhere_on", `"2024-02-30"`, []string{"YYYY-MM-DD", "no serious default"}},
			{TypeProfile, "data.serious_default_elsewhere_on", `20240101`, []string{"YYYY-MM-DD"}},
			{TypeProfile, "data.partner_limit_fen", `-1`, []string{"non-negative", "9007199254740991"}},
			{TypeProfile, "data.weilidai_limit_fen", `1.5`, []string{"non-negative", "9007199254740991"}},
			{TypeProfile, "data.alert_threshold_fen", `true`, []string{"non-negative", "9007199254740991"}},
		} {
			for _, m := range modes {
				headers, value := splice(t, m, c.typ, c.field, c.lit, "")
				_, err := testDecoder().Decode(nil, headers, value)
				wantRefused(t, err, c.field, c.words...)
			}
		}
		if err := (&DecodeError{Field: "data.pool", Reason: reasonPool}).Error(); err !=
			`events: field "data.pool": must be one of pay_score, independent, shared_weilidai, special_temporary (empty or absent: pay_score)` {
			t.Fatalf("pool error %s", err)
		}
	})
}

func TestValidPool(t *testing.T) {
	t.Parallel()
	for _, p := range []string{PoolPayScore, PoolIndependent, PoolSharedWeilidai, PoolSpecialTemporary} {
		if !ValidPool(p) {
			t.Errorf("ValidPool(%q) = false", p)
		}
	}
	for _, p := range []string{"", "PAY_SCORE", "pay_score ", "partner", "ecommerce", "weilidai"} {
		if ValidPool(p) {
			t.Errorf("ValidPool(%q) = true", p)
		}
	}
}

// strictInputs are records that the rules of issue 12 are about, for the
// differential tests (oracleInputs): invalid UTF-8 and unpaired
// surrogates, control characters, ids at and over the limit, strict
// times, repeated and contradicting headers, content types, repeated and
// folded member names.
func strictInputs(t testing.TB) []input {
	var ins []input
	add := func(key []byte, headers []Header, value []byte) { ins = append(ins, input{key, headers, value}) }
	texts := append(slices.Clone(invalidUTF8), "dev\x00", "a\nb", "c1\u0085", "\u009f", "\u00a0", "x\x7f", "\ufffd", "上海",
		strings.Repeat("a", MaxIDBytes), strings.Repeat("a", MaxIDBytes+1), strings.Repeat("城", MaxIDBytes/3+1))
	for _, m := range modes {
		for _, typ := range inputTypes {
			for _, field := range append(slices.Clone(textFields[typ]), "subject", "data.user_id", "type", "time", "datacontenttype") {
				for _, s := range texts {
					h, v := withText(t, m, typ, field, s)
					add(nil, h, v)
				}
				if m == structuredMode || strings.HasPrefix(field, "data.") {
					for _, lit := range unpairedSurrogates {
						h, v := splice(t, m, typ, field, lit, "")
						add(nil, h, v)
					}
				}
			}
		}
		for _, tm := range []string{"2025-03-01T11:59:00,5Z", "2025-03-01T11:59:00+24:00", "2025-03-01T11:59:00+00:60",
			"2025-03-01T1:59:00Z", "2025-03-01T11:59:00.1234567891Z", "2025-03-01T11:59:00-00:00", "2025-03-02T11:58:00+23:59",
			"2025-03-01T11:59:00.Z", "2025-02-29T11:59:00Z", "２025-03-01T11:59:00Z"} {
			h, v := withText(t, m, TypeRepaymentDue, "time", tm)
			add([]byte(user), h, v)
			h, v = withText(t, m, TypeRepaymentDue, "data.due_at", strings.Replace(tm, "2025-03-0", "2025-03-1", 1))
			add([]byte(user), h, v)
		}
		for _, ip := range []string{"fe80::1%eth0", "::1%", "::ffff:1.2.3.4", "1.2.3.4%x"} {
			h, v := withText(t, m, TypeLogin, "data.ip", ip)
			add(nil, h, v)
		}
		for _, field := range dateFields {
			for _, date := range []string{"2024-02-29", "2023-02-29", "+024-01-01", "2024-01-00", "2024-01-0\xff", "2024-01-01\n"} {
				h, v := withText(t, m, TypeProfile, field, date)
				add(nil, h, v)
			}
		}
		for _, pool := range []string{PoolPayScore, PoolSpecialTemporary, "", "Pay_Score", "pool\xff", "shared_weilidai\x00", strings.Repeat("p", 200)} {
			h, v := withText(t, m, TypeRepaymentDue, "data.pool", pool)
			add(nil, h, v)
		}
		for _, field := range []string{"data.partner_limit_fen", "data.weilidai_limit_fen", "data.alert_threshold_fen"} {
			for _, lit := range []string{"0", "-0", "-1", "9007199254740991", "9007199254740992", "1e2", "2.0", `"1"`, "null", "[]"} {
				h, v := splice(t, m, TypeProfile, field, lit, "")
				add(nil, h, v)
			}
		}
		h, v := withText(t, m, TypeProfile, "data.timezone", "Asia/"+strings.Repeat("x", MaxIDBytes))
		add(nil, h, v)
	}

	bh, bv := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	sh, sv := record(t, structuredMode, validAttrs(TypePayment), validData(TypePayment))
	with := func(hs []Header, kv ...string) []Header {
		hs = slices.Clone(hs)
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	for _, extra := range [][]string{
		{"content-type", ContentTypeCloudEvents}, {"Content-Type", "text/plain"}, {"ce_id", "evt-1"}, {"ce_id", "evt-2"},
		{"CE_ID", "evt-1"}, {"ce_subject", "u-2002"}, {"ce_type", TypeLogin}, {"ce_source", "x"}, {"ce_time", "2025-03-01T11:58:00Z"},
		{"ce_time", testTime.Format(time.RFC3339)}, {"ce_datacontenttype", "application/xml"}, {"ce_datacontenttype", "application/json"},
		{"ce_ſubject", user}, {"ce_ſpecversion", "1.0"}, {"Ce_SpecVersion", "1.0"}, {"ce_subject", user, "CE_SUBJECT", user},
		{"ce_id", "\xff"}, {"ce_traceparent", "00", "ce_traceparent", "01"},
	} {
		add([]byte(user), with(sh, extra...), sv)
		add([]byte(user), with(bh, extra...), bv)
	}
	for _, ct := range []string{"application/cloudevents+jſon", ContentTypeCloudEvents + "\u00a0", ContentTypeCloudEvents + "\n",
		ContentTypeCloudEvents + "; charset=latin1", ContentTypeCloudEvents + `;charset="UTF-8"`, ContentTypeCloudEvents + "\t; charset = utf-8",
		ContentTypeCloudEvents + `; charset="`, "application/json; charset=utf-8; x=\xff", "APPLICATION/JSON", ContentTypeCloudEvents + "; p=" + strings.Repeat("x", 128)} {
		add(nil, []Header{{Key: "content-type", Value: []byte(ct)}}, sv)
		add(nil, with(bh[1:], "content-type", ct), bv)
	}

	pay := string(mustJSON(t, validData(TypePayment)))
	env := func(data string) string {
		return `{"specversion":"1.0","id":"evt-1","type":"` + TypePayment + `","source":"s","subject":"` + user +
			`","time":"` + testTime.Format(time.RFC3339) + `","data":` + data + `}`
	}
	for _, v := range []string{
		strings.Replace(pay, `"city":"Shanghai"`, `"city":"Shanghai","city":"Beijing"`, 1),
		strings.Replace(pay, `}`, `,"\u0075ser_id":"u-1001"}`, 1),
		strings.Replace(pay, `}`, `,"note":1,"note":2}`, 1),
		strings.Replace(pay, `}`, `,"note":1,"Note":2,"NOTE":{"a":1,"a":2}}`, 1),
		strings.Replace(pay, `"auth"`, `"\u0041uth"`, 1),
		strings.Replace(pay, `"auth"`, `"\u0061uth"`, 1),
		strings.Replace(pay, `"auth"`, `"ban\u212a":1,"auth"`, 1),
		strings.Replace(pay, `"auth"`, "\"\xffauth\":1,\"auth\"", 1),
		strings.Replace(pay, `"auth"`, `"\ud800auth":1,"auth"`, 1),
		strings.Replace(pay, `}`, `,"x":["\ud83d\ude00","\ud83d"]}`, 1),
		strings.Replace(pay, `}`, `,"x":{"\udc00":1}}`, 1),
		strings.Replace(pay, `}`, "\n,\"x\": \"\\\\ud800\" ,\"y\" : \"\\\\\\ud800\"}", 1),
		strings.Replace(pay, `}`, `,"x":"\ufffd\uFFFD`+"\xef\xbf\xbd"+`"}`, 1),
		strings.Replace(pay, `"city":"Shanghai"`, `"city":"Sh\u0000"`, 1),
		strings.Replace(pay, `"amount_fen":12345`, `"amount_fen":"\xff"`, 1),
	} {
		add(nil, sh, []byte(env(v)))
		add([]byte(user), bh, []byte(v))
	}
	for _, v := range []string{
		strings.Replace(env(pay), `"id":"evt-1"`, `"id":"evt-1","id":"evt-2"`, 1),
		strings.Replace(env(pay), `"data"`, `"data":{},"data"`, 1),
		strings.Replace(env(pay), `"data"`, `"data_base64":"e30=","data"`, 1),
		strings.Replace(env(pay), `"data"`, `"DATA_BASE64":"e30=","data"`, 1),
		strings.Replace(env(pay), `"data"`, "\"data_base64\":\"\xff\",\"data\"", 1),
		strings.Replace(env(pay), `"id"`, `"ext":1,"ext":1,"id"`, 1),
		strings.Replace(env(pay), `"id"`, "\"ext\":\"\xfe\",\"id\"", 1),
		strings.Replace(env(pay), `"id"`, "\"\xfe\":1,\"id\"", 1),
		strings.Replace(env(pay), `"subject"`, `"ſubject"`, 1),
		strings.Replace(env(pay), `"id":"evt-1"`, `"id":7,"id":"\ud800"`, 1),
		strings.Replace(env(pay), `"id":"evt-1"`, `"id":"\ud800","id":7`, 1),
	} {
		add(nil, sh, []byte(v))
	}
	return ins
}

// TestNameBitsDistinct: the repeat check compares names only when their
// bloom bits meet; no two field names of an object may share one (it
// would cost a comparison on every record).
func TestNameBitsDistinct(t *testing.T) {
	t.Parallel()
	for _, fields := range [][]string{envelopeFields, paymentFields, loginFields, dueFields, paidFields, profileFields, operatorFields} {
		seen := map[uint64]string{}
		for _, f := range fields {
			bit := nameBit([]byte(f))
			if other, ok := seen[bit]; ok {
				t.Errorf("%s and %s share a bloom bit", f, other)
			}
			seen[bit] = f
		}
	}
}
