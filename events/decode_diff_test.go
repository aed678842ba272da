package events

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Differential tests: Decode (the single-pass reader) against oracleDecode
// (the same rules implemented again on encoding/json, decode_oracle_test.go).
// Both must return the same Event, or errors with the same Field and
// Reason. The inputs include the hostile records of issue 12
// (strictInputs), and the mutated tests and the fuzz target edit them.

// input is one record to decode.
type input struct {
	key     []byte
	headers []Header
	value   []byte
}

// checkSameAsOracle decodes in with Decode and with the oracle and fails
// when they disagree.
func checkSameAsOracle(t testing.TB, d Decoder, in input) {
	t.Helper()
	got, gotErr := d.Decode(in.key, in.headers, in.value)
	want, wantErr := d.oracleDecode(in.key, in.headers, in.value)
	if !sameDecodeError(gotErr, wantErr) {
		t.Fatalf("%s\nDecode error: %v\noracle error: %v", describe(in), gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\nDecode: %+v\noracle: %+v", describe(in), got, want)
	}
}

func sameDecodeError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var da, db *DecodeError
	return errors.As(a, &da) && errors.As(b, &db) && *da == *db
}

func describe(in input) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "key %q\n", in.key)
	for _, h := range in.headers {
		fmt.Fprintf(&sb, "header %q: %q\n", h.Key, h.Value)
	}
	v := in.value
	if len(v) > 2000 {
		v = v[:2000]
	}
	fmt.Fprintf(&sb, "value (%d bytes) %q", len(in.value), v)
	return sb.String()
}

// oracleInputs returns the records of the decode tests (decode_test.go)
// and more of the same kind: every type in both modes, with the data
// changes of dataCases, the attributes absent, empty or of every JSON
// type, odd envelopes and headers.
func oracleInputs(t testing.TB) []input {
	var ins []input
	add := func(key []byte, headers []Header, value []byte) {
		ins = append(ins, input{key, headers, value})
	}
	rec := func(m mode, attrs map[string]any, data any) {
		h, v := record(t, m, attrs, data)
		add([]byte(user), h, v)
	}
	for _, m := range modes {
		for _, typ := range inputTypes {
			rec(m, validAttrs(typ), validData(typ))
		}
		for _, c := range dataCases() {
			rec(m, validAttrs(c.typ), mutate(validData(c.typ), c.change))
		}
		odd := []any{absent, "", nil, 1, 1.5, true, []any{"x"}, map[string]any{"a": 1}, "x", "\u00e9\u2028", "\x00"}
		for _, attr := range slices.Sorted(maps.Keys(validAttrs(TypePayment))) {
			for _, v := range odd {
				rec(m, mutate(validAttrs(TypePayment), map[string]any{attr: v}), validData(TypePayment))
			}
		}
		for _, tm := range []string{"2025-03-01 11:59:00", "2025-03-01T11:59:00", "yesterday", "2025-03-01T19:59:00+08:00",
			"2025-03-01T11:59:00.123456789Z", "2020-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2039-01-01T00:00:00Z",
			testNow.Add(5 * time.Minute).Format(time.RFC3339), testNow.Add(5*time.Minute + time.Second).Format(time.RFC3339),
			"2025-03-01T11:59:00,5Z", "2025-03-01t11:59:00z", "2025-03-01T11:59:60Z", "2025-03-01T11:59:00+24:00"} {
			rec(m, mutate(validAttrs(TypeLogin), map[string]any{"time": tm}), validData(TypeLogin))
		}
		for _, typ := range []string{"fenqi.payment.v2", TypeDecisionAlert, "FENQI.PAYMENT.V1"} {
			rec(m, mutate(validAttrs(TypePayment), map[string]any{"type": typ}), validData(TypePayment))
		}
		// Data of one type under another type.
		for _, typ := range inputTypes {
			rec(m, validAttrs(typ), validData(TypePayment))
		}
	}

	ce := []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}
	valid := mutate(validAttrs(TypePayment), map[string]any{"data": validData(TypePayment)})
	validJSON := mustJSON(t, valid)
	for _, h := range [][]Header{nil, ce,
		{{Key: "content-type", Value: []byte("application/json")}},
		{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=UTF-8")}},
		{{Key: "Content-Type", Value: []byte(ContentTypeCloudEvents)}},
		{{Key: "traceparent", Value: []byte("00-abc")}, ce[0]},
		{{Key: "content-type", Value: []byte("text/plain")}},
		{{Key: "content-type", Value: []byte("application/cloudevents-batch+json")}},
	} {
		add(nil, h, validJSON)
	}
	for _, v := range []string{"", "  \n", "\v", "specversion=1.0", string(validJSON[:40]), string(validJSON) + " {}",
		`[{"specversion":"1.0"}]`, `"hello"`, `null`, `nul`, `true`, `12`, `-`, `{}`, `{"data":{}}`, "\ufeff" + string(validJSON),
		string(mustJSON(t, validData(TypePayment)))} {
		add(nil, ce, []byte(v))
	}
	for _, change := range []map[string]any{
		{"datacontenttype": "application/json"}, {"datacontenttype": "application/json; charset=utf-8"},
		{"datacontenttype": "application/xml"}, {"datacontenttype": 1}, {"traceparent": "00-abc", "partitionkey": user},
		{"data": absent}, {"data": nil}, {"data": []any{validData(TypePayment)}}, {"data": string(mustJSON(t, validData(TypePayment)))},
		{"data": absent, "data_base64": "e30="}, {"data_base64": "e30="}, {"data_base64": nil}, {"data": 5},
	} {
		add(nil, ce, mustJSON(t, mutate(valid, change)))
	}

	bh, bv := record(t, binaryMode, validAttrs(TypePayment), validData(TypePayment))
	without := func(name string) []Header {
		return slices.DeleteFunc(slices.Clone(bh), func(h Header) bool { return h.Key == name })
	}
	replace := func(name, v string) []Header { return append(without(name), Header{Key: name, Value: []byte(v)}) }
	for _, h := range [][]Header{bh, without("content-type"), replace("content-type", "application/json; charset=utf-8"),
		replace("content-type", "application/avro"), replace("content-type", ContentTypeCloudEvents), upper(bh),
		append(slices.Clone(bh), Header{Key: "ce_traceparent", Value: []byte("00-abc")}, Header{Key: "ce_datacontenttype", Value: []byte("x")}),
		replace("ce_specversion", "0.3"), replace("ce_specversion", ""), without("ce_id"),
		append(slices.Clone(bh), Header{Key: "ce_id", Value: []byte("evt-2")}), without("ce_type"),
		replace("ce_type", "fenqi.unknown.v1"), without("ce_source"), without("ce_subject"),
		append(slices.Clone(bh), Header{Key: "CE_Subject", Value: []byte("u-2002")}), without("ce_time"),
		replace("ce_time", "Sat, 01 Mar 2025 11:59:00 GMT"),
	} {
		add([]byte(user), h, bv)
	}
	for _, v := range []string{"", "null", "nullx", "[]", "[1", "12345", "{user_id: u-1001}", string(bv[:len(bv)-1]),
		string(bv) + "x", string(bv) + " \n", " \t" + string(bv), "\v" + string(bv), string(validJSON)} {
		add([]byte(user), bh, []byte(v))
	}
	for _, key := range [][]byte{nil, {}, []byte("u-2002"), []byte(user + " ")} {
		add(key, bh, bv)
		add(key, ce, validJSON)
	}

	// What json.Unmarshal does and a naive reader might not: keys matched
	// case-insensitively and with Unicode folding, escapes, repeated keys
	// (the last wins, the first type error wins), null leaving a field.
	pay := string(mustJSON(t, validData(TypePayment)))
	envOf := func(typ, data string) string {
		return `{"specversion":"1.0","id":"evt-1","type":"` + typ + `","source":"s","subject":"` + user +
			`","time":"` + testTime.Format(time.RFC3339) + `","data":` + data + `}`
	}
	env := func(data string) string { return envOf(TypePayment, data) }
	for _, v := range []string{
		env(strings.Replace(pay, `"scene"`, `"SCENE"`, 1)),
		env(strings.Replace(pay, `"scene"`, `"\u017fcene"`, 1)),
		env(strings.Replace(pay, `"scene"`, `"ſcene"`, 1)),
		env(strings.Replace(pay, `"auth"`, `"\u0061uth"`, 1)),
		env(strings.Replace(pay, `"auth"`, `"aut\u0068"`, 1)),
		env(strings.Replace(pay, `"city":"Shanghai"`, `"city":"Sh\u0061ngh\u00e9i \ud83d\ude00 \ud800 \"q\" \\ \/ \b\f\n\r\t"`, 1)),
		env(strings.Replace(pay, `"city":"Shanghai"`, "\"city\":\"Sh\xffa\xc3\"", 1)),
		env(strings.Replace(pay, `"city":"Shanghai"`, `"city":"Shanghai","city":null`, 1)),
		env(strings.Replace(pay, `"city":"Shanghai"`, `"city":"Shanghai","city":7`, 1)),
		env(strings.Replace(pay, `"amount_fen":12345`, `"amount_fen":"x","amount_fen":5`, 1)),
		env(strings.Replace(pay, `"amount_fen":12345`, `"amount_fen":5,"currency":7,"amount_fen":1.5`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":null`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":-9223372036854775808`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":-9223372036854775809`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":03`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":3.`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":3e`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":-`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":6E+0`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":tru`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":[3]`, 1)),
		env(strings.Replace(pay, `"installments":3`, `"installments":{"n":3}`, 1)),
		env(strings.Replace(pay, `,"installments":3`, `,,"installments":3`, 1)),
		env(strings.Replace(pay, `,"installments":3`, ` "installments":3`, 1)),
		env(strings.Replace(pay, `}`, `,}`, 1)),
		env(strings.Replace(pay, `}`, ` , "x" : [ 1 , 2 , { } , [ ] ] }`, 1)),
		env(strings.Replace(pay, `}`, `,"x":[1,]}`, 1)),
		env(strings.Replace(pay, `}`, `,"x":[,1]}`, 1)),
		env(strings.Replace(pay, `}`, `,"x":"\u12"}`, 1)),
		env(strings.Replace(pay, `}`, `,"x":"\x"}`, 1)),
		env(strings.Replace(pay, `}`, "\x00}", 1)),
		env(strings.Replace(pay, `}`, ",\"x\":\"a\tb\"}", 1)),
		env(strings.Replace(pay, `}`, `,"x":1}`+`,"data":null`, 1)),
		env(pay) + `,`,
		strings.Replace(env(pay), `"type"`, `"TYPE"`, 1),
		strings.Replace(env(pay), `"data"`, `"Data"`, 1),
		strings.Replace(env(pay), `"specversion":"1.0"`, `"specversion":"1.0","specversion":null`, 1),
		strings.Replace(env(pay), `"specversion":"1.0"`, `"specversion":"\u0031.0"`, 1),
		strings.Replace(env(pay), `"id":"evt-1"`, `"id":"evt-1","id":{}`, 1),
		strings.Replace(env(pay), `"id":"evt-1"`, `"id":[1,{"a":[]}],"subject":true`, 1),
		`{"data":` + pay + `,"type":"` + TypePayment + `","specversion":"1.0","id":"e","source":"s","subject":"` + user + `","time":"` + testTime.Format(time.RFC3339) + `","type":"` + TypeLogin + `"}`,
	} {
		add(nil, ce, []byte(v))
		if i := strings.Index(v, `"data":`); i >= 0 {
			add([]byte(user), bh, []byte(v[i+len(`"data":`):len(v)-1])) // the data alone, in binary mode
		}
	}

	for _, c := range []struct {
		typ    string
		fields []string
	}{
		{TypeProfile, []string{"pay_score", "real_name_verified", "card_bound_since", "wealth_balance_fen", "transaction_limit_fen", "timezone",
			"partner_limit_fen", "weilidai_limit_fen", "alert_threshold_fen", "serious_default_elsewhere_on"}},
		{TypeRepaymentDue, []string{"due_at", "pool"}},
	} {
		data := string(mustJSON(t, validData(c.typ)))
		headers, _ := record(t, binaryMode, validAttrs(c.typ), absent)
		for _, field := range c.fields {
			i := strings.Index(data, `"`+field+`"`)
			for _, v := range []string{"null", `"x"`, "1.5", "[]", `""`, "-1", `"2024-01-01"`} {
				p := data[:i] + `"` + field + `":` + v + "," + data[i:] // v, then the valid value
				add(nil, ce, []byte(envOf(c.typ, p)))
				p = data[:len(data)-1] + `,"` + strings.ToUpper(field) + `":` + v + "}" // the valid value, then v
				add(nil, ce, []byte(envOf(c.typ, p)))
				add([]byte(user), headers, []byte(p))
				p = strings.Replace(data, `"`+field+`":`, `"`+field+`":`+v+`,"x`+field+`":`, 1) // v alone
				add(nil, ce, []byte(envOf(c.typ, p)))
				add([]byte(user), headers, []byte(p))
			}
		}
	}
	prof := string(mustJSON(t, validData(TypeProfile)))
	add(nil, ce, []byte(envOf(TypeProfile, strings.Replace(prof, `"card_bank_blacklisted"`, `"card_ban\u212a_blacKlisted"`, 1))))

	// Nesting at encoding/json's limit of 10000 and just beyond.
	for _, depth := range []int{9998, 9999, 10000} {
		nested := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		add(nil, ce, []byte(env(strings.Replace(pay, `}`, `,"x":`+nested+`}`, 1))))
		add([]byte(user), bh, []byte(strings.Replace(pay, `}`, `,"x":`+nested+`}`, 1)))
		nested = strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		add([]byte(user), bh, []byte(strings.Replace(pay, `}`, `,"x":`+nested+`}`, 1)))
	}
	return append(ins, strictInputs(t)...)
}

func TestDecodeMatchesOracle(t *testing.T) {
	t.Parallel()
	d := testDecoder()
	for _, in := range oracleInputs(t) {
		checkSameAsOracle(t, d, in)
	}
}

func TestDecodeMatchesOracleMutated(t *testing.T) {
	t.Parallel()
	d := testDecoder()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 40
	if testing.Short() {
		n = 5
	}
	for _, in := range oracleInputs(t) {
		if len(in.value) > 4096 {
			continue // the nesting cases: long, and their mutations say little
		}
		for range n {
			checkSameAsOracle(t, d, mutateInput(rng, in))
		}
	}
}

func FuzzDecodeMatchesOracle(f *testing.F) {
	for _, in := range oracleInputs(f) {
		if len(in.value) <= 4096 {
			f.Add(in.key, encodeHeaders(in.headers), in.value)
		}
	}
	d := testDecoder()
	f.Fuzz(func(t *testing.T, key []byte, headers string, value []byte) {
		checkSameAsOracle(t, d, input{key, decodeHeaders(headers), value})
	})
}

// encodeHeaders writes headers as lines "key: value" (the fuzzer's form).
func encodeHeaders(hs []Header) string {
	var sb strings.Builder
	for _, h := range hs {
		sb.WriteString(h.Key + ": " + string(h.Value) + "\n")
	}
	return sb.String()
}

func decodeHeaders(s string) []Header {
	var hs []Header
	for line := range strings.Lines(s) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		hs = append(hs, Header{Key: k, Value: []byte(v)})
	}
	return hs
}

// mutateInput returns in with one to three random changes to its value
// (and sometimes its key), most of them small edits of the JSON that keep
// it nearly valid, where the decoders' rules are tested.
func mutateInput(rng *rand.Rand, in input) input {
	v := slices.Clone(in.value)
	for range 1 + rng.IntN(3) {
		v = mutateJSON(rng, v)
	}
	out := input{key: in.key, headers: in.headers, value: v}
	if rng.IntN(20) == 0 {
		out.key = []byte("u-2002")
	}
	return out
}

// jsonBytes are the bytes that mean something to a JSON reader.
const jsonBytes = "{}[]\":,\\ \t\r\n0123456789.-+eEntrulfasUu\x00\x1f\x7f\xc3\xa9\xff"

// odd values to put in place of a value.
var oddValues = []string{`null`, `true`, `false`, `"x"`, `""`, `1.5`, `-0`, `0`, `1e3`, `{}`, `[]`, `[null]`, `{"a":{}}`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `9007199254740991`, `9007199254740992`,
	`"\ud800"`, `"\u00e9"`, `"\u0000"`, `"Asia/Shanghai"`, `"Local"`, `"2024-02-29"`, `"2025-03-01T12:00:00Z"`,
	`"u-1001"`, `"1.0"`, `"CNY"`, `"face"`, `"ecommerce"`, `300`, `850`, `24`, `"::1"`}

func mutateJSON(rng *rand.Rand, v []byte) []byte {
	if len(v) == 0 {
		return append(v, jsonBytes[rng.IntN(len(jsonBytes))])
	}
	i := rng.IntN(len(v))
	switch rng.IntN(10) {
	case 0: // delete a byte
		return slices.Delete(v, i, i+1)
	case 1: // insert a byte
		return slices.Insert(v, i, jsonBytes[rng.IntN(len(jsonBytes))])
	case 2: // replace a byte
		v[i] = jsonBytes[rng.IntN(len(jsonBytes))]
		return v
	case 3: // truncate
		return v[:i]
	case 4: // change the case of a letter, or turn s and k into their Unicode folds
		for j := i; j < len(v); j++ {
			switch c := v[j]; {
			case c == 's' && rng.IntN(2) == 0:
				return slices.Replace(v, j, j+1, []byte("ſ")...)
			case c == 'k' && rng.IntN(2) == 0:
				return slices.Replace(v, j, j+1, []byte("\u212a")...)
			case 'a' <= c && c <= 'z':
				v[j] -= 'a' - 'A'
				return v
			}
		}
		return v
	case 5: // escape a letter
		for j := i; j < len(v); j++ {
			if c := v[j]; 'a' <= c && c <= 'z' {
				return slices.Replace(v, j, j+1, []byte(fmt.Sprintf(`\u%04x`, c))...)
			}
		}
		return v
	case 6, 7: // replace a member's value
		j := bytes.IndexByte(v[i:], ':')
		if j < 0 {
			return v
		}
		start := i + j + 1
		end := valueEnd(v, start)
		return slices.Replace(v, start, end, []byte(oddValues[rng.IntN(len(oddValues))])...)
	case 8: // repeat a member after itself
		j := bytes.IndexByte(v[i:], ':')
		if j < 0 {
			return v
		}
		colon := i + j
		k := bytes.LastIndexByte(v[:colon], '"')
		k = bytes.LastIndexByte(v[:max(k, 0)], '"')
		if k < 0 {
			return v
		}
		end := valueEnd(v, colon+1)
		member := slices.Clone(v[k:end])
		return slices.Insert(v, end, append([]byte{','}, member...)...)
	default: // remove a member's value and key
		j := bytes.IndexByte(v[i:], ':')
		if j < 0 {
			return v
		}
		colon := i + j
		k := bytes.LastIndexByte(v[:colon], '"')
		k = bytes.LastIndexByte(v[:max(k, 0)], '"')
		if k < 0 {
			return v
		}
		end := valueEnd(v, colon+1)
		if end < len(v) && v[end] == ',' {
			end++
		}
		return slices.Delete(v, k, end)
	}
}

// valueEnd returns where the JSON value starting at start ends, roughly
// (mutated inputs need not be valid).
func valueEnd(v []byte, start int) int {
	depth, inString := 0, false
	for i := start; i < len(v); i++ {
		c := v[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
				if depth == 0 {
					return i + 1
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case c == ',' && depth == 0:
			return i
		}
	}
	return len(v)
}

// BenchmarkDecodeVsOracle is BenchmarkDecode (one payment) with Decode
// and with the oracle (test code: its second pass over the JSON makes it
// the slower by far).
func BenchmarkDecodeVsOracle(b *testing.B) {
	d := testDecoder()
	for _, m := range modes {
		headers, value := record(b, m, validAttrs(TypePayment), validData(TypePayment))
		for _, c := range []struct {
			name   string
			decode func(Decoder, []byte, []Header, []byte) (Event, error)
		}{
			{"new", Decoder.Decode},
			{"oracle", Decoder.oracleDecode},
		} {
			b.Run(string(m)+"/"+c.name, func(b *testing.B) {
				key := []byte(user)
				b.SetBytes(int64(len(value)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.decode(d, key, headers, value); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
