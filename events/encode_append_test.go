package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// referenceMarshalDecision is MarshalDecision as it was before it wrote
// the document itself: json.Marshal of the detail, the data and the head,
// spliced. MarshalDecision must write the same bytes and fail alike.
func referenceMarshalDecision(d Decision) ([]byte, error) {
	switch {
	case !IsDecisionType(d.Type):
		return nil, fmt.Errorf("events: marshal decision: unknown decision type %q", d.Type)
	case d.ID == "":
		return nil, errors.New("events: marshal decision: empty id")
	case d.Subject == "":
		return nil, fmt.Errorf("events: marshal decision %s: empty subject", d.ID)
	case d.Time.IsZero():
		return nil, fmt.Errorf("events: marshal decision %s: zero time", d.ID)
	}
	w := decisionDataWire{
		UserID:        d.Data.UserID,
		CausationID:   d.Data.CausationID,
		Rule:          d.Data.Rule,
		Action:        d.Data.Action,
		ReasonCodes:   d.Data.ReasonCodes,
		PolicyVersion: d.Data.PolicyVersion,
	}
	if w.ReasonCodes == nil {
		w.ReasonCodes = []ReasonCode{}
	}
	if d.Data.Detail != nil {
		raw, err := json.Marshal(d.Data.Detail)
		if err != nil {
			return nil, fmt.Errorf("events: marshal decision %s: detail: %w", d.ID, err)
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case bytes.Equal(raw, []byte("null")):
		case len(raw) > 0 && raw[0] == '{':
			w.Detail = raw
		default:
			return nil, fmt.Errorf("events: marshal decision %s: detail must be a JSON object, got %.20s", d.ID, raw)
		}
	}
	detail := w.Detail
	w.Detail = nil
	data, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("events: marshal decision %s: %w", d.ID, err)
	}
	head, err := json.Marshal(envelopeHead{
		SpecVersion:     SpecVersion,
		ID:              d.ID,
		Type:            d.Type,
		Source:          DecisionSource,
		Time:            formatTime(d.Time),
		Subject:         d.Subject,
		DataContentType: ContentTypeJSON,
	})
	if err != nil {
		return nil, fmt.Errorf("events: marshal decision %s: %w", d.ID, err)
	}
	out := make([]byte, 0, len(head)+len(data)+len(detail)+20)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"data":`...)
	if detail == nil {
		out = append(out, data...)
	} else {
		out = append(out, data[:len(data)-1]...)
		out = append(out, `,"detail":`...)
		out = append(out, detail...)
		out = append(out, '}')
	}
	return append(out, '}'), nil
}

// awkwardStrings are strings every escaping rule of encoding/json applies to.
var awkwardStrings = []string{
	"",
	"plain-ascii_0123 ~!@#$%^*()[]{}|/?.,;:'`",
	`<script>alert("x")</script> & more`,
	`quote " backslash \ slash /`,
	"controls \x00\x01\x07\b\t\n\v\f\r\x1b\x1f and DEL \x7f",
	"支付分未达标 (连续30天使用零钱充值>1000元)",
	"separators \u2028 and \u2029, and \u2027 \u202a next to them",
	"invalid \xff\xfe, truncated \xe4\xb8, surrogate \xed\xa0\x80, overlong \xc0\xaf",
	"emoji 😀 and combining e\u0301",
	"\ufffd already a replacement character",
}

// appendingDetail writes itself, the way json.Marshal writes it.
type appendingDetail struct {
	AmountFen int64  `json:"amount_fen"`
	Note      string `json:"note"`
}

func (a appendingDetail) AppendJSON(b []byte) []byte {
	b = append(b, `{"amount_fen":`...)
	b = strconv.AppendInt(b, a.AmountFen, 10)
	b = append(b, `,"note":`...)
	b = AppendJSONString(b, a.Note)
	return append(b, '}')
}

func TestMarshalDecisionMatchesReference(t *testing.T) {
	t.Parallel()
	zones := []*time.Location{time.UTC, time.FixedZone("CST", 8*3600), time.FixedZone("odd", -(3*3600 + 30*60))}
	times := []time.Time{
		time.Date(2025, 3, 1, 12, 0, 0, 0, zones[0]),
		time.Date(2025, 3, 1, 12, 0, 0, 500, zones[1]),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, zones[2]),
		time.Date(2025, 3, 1, 12, 0, 0, 120_000_000, zones[1]),
	}
	reasonSets := func(s string) [][]ReasonCode {
		return [][]ReasonCode{
			nil,
			{},
			{{Code: "WECHAT_CREDIT_401", Message: s}},
			{{Code: s, Message: "pay score low", Advice: s}, {Code: "FENQI_OVERDUE_NOW", Message: "overdue", Advice: "repay"}},
		}
	}
	details := func(s string) []any {
		return []any{
			nil,
			alertDetail{AmountFen: 250000, LocalTime: s},
			map[string]any{"note": s, "days": 3, "ratio": 0.000_000_1, "nested": map[string]any{"k": []any{s, nil}}},
			json.RawMessage(` { "note" : "<b>&</b>",` + "\n\t" + `"n": [1, 2] } `),
			(*alertDetail)(nil),
			appendingDetail{AmountFen: -42, Note: s},
			&appendingDetail{AmountFen: 7, Note: s},
			(*appendingDetail)(nil),
			map[string]string{},
		}
	}
	n := 0
	for _, typ := range decisionTypes {
		for si, s := range awkwardStrings {
			for ri, reasons := range reasonSets(s) {
				for di, detail := range details(s) {
					d := Decision{
						ID:      "d-" + s,
						Type:    typ,
						Subject: "u-" + s,
						Time:    times[(si+ri+di)%len(times)],
						Data: DecisionData{
							UserID:        s,
							CausationID:   "evt:" + s,
							Rule:          s + "rule",
							Action:        "ACTION_" + s,
							ReasonCodes:   reasons,
							PolicyVersion: "v-" + s,
							Detail:        detail,
						},
					}
					want, werr := referenceMarshalDecision(d)
					got, gerr := MarshalDecision(d)
					if werr != nil || gerr != nil {
						t.Fatalf("type %s string %d reasons %d detail %d: errors %v, %v", typ, si, ri, di, gerr, werr)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("type %s string %d reasons %d detail %d: MarshalDecision =\n%s\nwant\n%s", typ, si, ri, di, got, want)
					}
					if !json.Valid(got) {
						t.Fatalf("invalid JSON: %s", got)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d decisions byte-identical", n)
}

func TestMarshalDecisionErrorsMatchReference(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(d *Decision)
	}{
		{"unknown type", func(d *Decision) { d.Type = "fenqi.decision.other.v1" }},
		{"empty id", func(d *Decision) { d.ID = "" }},
		{"empty subject", func(d *Decision) { d.Subject = "" }},
		{"zero time", func(d *Decision) { d.Time = time.Time{} }},
		{"detail string", func(d *Decision) { d.Data.Detail = "late night" }},
		{"detail number", func(d *Decision) { d.Data.Detail = 12 }},
		{"detail raw array", func(d *Decision) { d.Data.Detail = json.RawMessage(`  [1, 2]`) }},
		{"detail raw invalid", func(d *Decision) { d.Data.Detail = json.RawMessage(`{"a":`) }},
		{"detail unmarshalable", func(d *Decision) { d.Data.Detail = map[string]any{"f": func() {}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := testDecision(TypeDecisionAlert)
			c.change(&d)
			_, werr := referenceMarshalDecision(d)
			b, gerr := MarshalDecision(d)
			if gerr == nil || werr == nil || gerr.Error() != werr.Error() {
				t.Fatalf("MarshalDecision = %s, %v; want the error %v", b, gerr, werr)
			}
		})
	}
}

// badAppender writes what it is given, object or not.
type badAppender string

func (a badAppender) AppendJSON(b []byte) []byte { return append(b, a...) }

// funcDetail writes itself; json.Marshal would refuse its func field.
type funcDetail struct{ F func() }

func (funcDetail) AppendJSON(b []byte) []byte { return append(b, `{"written":"by AppendJSON"}`...) }

func TestMarshalDecisionJSONAppender(t *testing.T) {
	t.Parallel()
	t.Run("the detail writes itself, trusted", func(t *testing.T) {
		t.Parallel()
		d := testDecision(TypeDecisionQuota)
		d.Data.Detail = funcDetail{F: func() {}}
		b, err := MarshalDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, []byte(`"detail":{"written":"by AppendJSON"}}}`)) {
			t.Fatalf("MarshalDecision = %s", b)
		}
		if _, err := DecodeDecision(b); err != nil {
			t.Fatalf("DecodeDecision: %v", err)
		}
	})
	t.Run("a nil pointer is left out", func(t *testing.T) {
		t.Parallel()
		d := testDecision(TypeDecisionQuota)
		d.Data.Detail = (*funcDetail)(nil)
		b, err := MarshalDecision(d)
		if err != nil || bytes.Contains(b, []byte(`"detail"`)) {
			t.Fatalf("MarshalDecision = %s, %v", b, err)
		}
	})
	for _, bad := range []badAppender{"", "[1]", `"x"`, " {}"} {
		t.Run(fmt.Sprintf("not an object: %q", bad), func(t *testing.T) {
			t.Parallel()
			d := testDecision(TypeDecisionQuota)
			d.Data.Detail = bad
			if b, err := MarshalDecision(d); err == nil {
				t.Fatalf("MarshalDecision = %s, want an error", b)
			}
		})
	}
}

// TestMarshalDecisionConcurrent checks that MarshalDecision returns its own
// copy: outputs stay intact after the pooled buffers are written again.
func TestMarshalDecisionConcurrent(t *testing.T) {
	t.Parallel()
	ds := make([]Decision, 200)
	outs := make([][]byte, len(ds))
	var wg sync.WaitGroup
	for i := range ds {
		ds[i] = testDecision(decisionTypes[i%len(decisionTypes)])
		ds[i].Data.Detail = appendingDetail{AmountFen: int64(i), Note: strings.Repeat("x", i*50)}
		wg.Go(func() {
			b, err := MarshalDecision(ds[i])
			if err != nil {
				t.Error(err)
			}
			outs[i] = b
		})
	}
	wg.Wait()
	for i, d := range ds {
		if want, _ := referenceMarshalDecision(d); !bytes.Equal(outs[i], want) {
			t.Fatalf("decision %d: MarshalDecision =\n%s\nwant\n%s", i, outs[i], want)
		}
	}
}

// TestMarshalDecisionAllocs pins the point of JSONAppender: the output
// buffer is the only allocation. (Not parallel: AllocsPerRun.)
func TestMarshalDecisionAllocs(t *testing.T) {
	d := testDecision(TypeDecisionQuota)
	d.Data.Detail = appendingDetail{AmountFen: 1, Note: awkwardStrings[5]}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := MarshalDecision(d); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("MarshalDecision allocates %v times, want 1", n)
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, s string) {
		t.Helper()
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got[len("prefix"):], want)
		}
	}
	for _, s := range awkwardStrings {
		check(t, s)
	}
	for c := range 256 {
		check(t, string([]byte{byte(c)}))
		check(t, "a"+string(rune(c))+"z")
	}
	// Random strings: mostly ASCII, some multi-byte runes, some stray bytes.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "<", ">", "&", `"`, `\`, "\x00", "\n", "\x7f", "é", "中", "😀", "\u2028", "\u2029", "\ufffd", "\xff", "\xe4\xb8", "\xed\xa0\x80", "\xe0\x80\xaf", "\xc0\xaf", "\xc1\xbf", "\xef\xbf\xbf", "\xe2\x80\xaa", "\xe2\x80", "\xdf\xbf", "\xc2"}
	for range 20_000 {
		var sb []byte
		for range rng.IntN(12) {
			if rng.IntN(4) == 0 {
				sb = append(sb, byte(rng.IntN(256)))
			} else {
				sb = append(sb, alphabet[rng.IntN(len(alphabet))]...)
			}
		}
		check(t, string(sb))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendJSONString(nil, s)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
		if !utf8.Valid(got) {
			t.Fatalf("AppendJSONString(%q) = %q: invalid UTF-8", s, got)
		}
	})
}

func BenchmarkMarshalDecision(b *testing.B) {
	for _, c := range []struct {
		name   string
		detail any
	}{
		{"map detail", map[string]any{"bill_id": "b-7781", "days_overdue": 2, "amount_fen": 50000, "due_at": "2026-03-09T16:00:00Z"}},
		{"appending detail", appendingDetail{AmountFen: 250000, Note: "02:13"}},
	} {
		d := testDecision(TypeDecisionAlert)
		d.Data.Detail = c.detail
		for _, m := range []struct {
			name    string
			marshal func(Decision) ([]byte, error)
		}{{"reference", referenceMarshalDecision}, {"MarshalDecision", MarshalDecision}} {
			b.Run(c.name+"/"+m.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.marshal(d); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A reason code's JSON is json.Marshal's whether it is written the first
// time or from reasonJSON, and the cache stops growing at maxReasonJSON
// codes (the codes past it are still written right).
func TestReasonCodeJSONCached(t *testing.T) {
	for i := range maxReasonJSON + 50 {
		rc := ReasonCode{Code: fmt.Sprintf("TEST_%d", i), Message: fmt.Sprintf("message %d <&> (中文 %d)", i, i)}
		if i%2 == 0 {
			rc.Advice = "advice \u2028 \"quoted\""
		}
		want, err := json.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // written, then cached (while there is room)
			if got := rc.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
				t.Fatalf("AppendJSON(%+v) = %s, want x%s", rc, got, want)
			}
		}
	}
	if n := len(*reasonJSON.Load()); n != maxReasonJSON {
		t.Fatalf("%d reason codes cached, want the cap, %d", n, maxReasonJSON)
	}
}
