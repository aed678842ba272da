package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DecisionSource is the CloudEvents source of every decision fenqi publishes.
const DecisionSource = "fenqi"

// ContentTypeJSON is the datacontenttype of every event fenqi reads and writes.
const ContentTypeJSON = "application/json"

// envelopeOut is the structured-mode CloudEvent that Marshal and
// MarshalDecision write. The field order is the wire order.
type envelopeOut struct {
	envelopeHead
	Data any `json:"data"`
}

// decisionDataWire is DecisionData with Detail kept as raw JSON.
type decisionDataWire struct {
	UserID        string          `json:"user_id"`
	CausationID   string          `json:"causation_id"`
	Rule          string          `json:"rule"`
	Action        string          `json:"action"`
	ReasonCodes   []ReasonCode    `json:"reason_codes"`
	PolicyVersion string          `json:"policy_version"`
	Detail        json.RawMessage `json:"detail,omitempty"`
}

// formatTime is the wire form of every timestamp: RFC 3339 with
// nanoseconds (trailing zeros dropped), in UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// appendTime appends formatTime(t) to b.
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }

// Marshal returns e as a structured-mode CloudEvents 1.0 JSON document
// (the form Decode reads with content-type application/cloudevents+json).
// The data is the data pointer that matches e.Type; it is an error when
// the type is not an input type or that pointer is nil. Marshal does not
// validate the event otherwise (tests use it to build events that Decode
// must refuse); Decode is the validator.
func Marshal(e Event) ([]byte, error) {
	var data any
	var ok bool
	switch e.Type {
	case TypePayment:
		data, ok = e.Payment, e.Payment != nil
	case TypeLogin:
		data, ok = e.Login, e.Login != nil
	case TypeRepaymentDue:
		data, ok = e.Due, e.Due != nil
	case TypeRepaymentPaid:
		data, ok = e.Paid, e.Paid != nil
	case TypeProfile:
		data, ok = e.Profile, e.Profile != nil
	case TypeOperator:
		data, ok = e.Op, e.Op != nil
	default:
		return nil, fmt.Errorf("events: marshal: unknown event type %q", e.Type)
	}
	if !ok {
		return nil, fmt.Errorf("events: marshal: %s event %q has no data", e.Type, e.ID)
	}
	return json.Marshal(envelopeOut{envelopeHead{
		SpecVersion:     SpecVersion,
		ID:              e.ID,
		Type:            e.Type,
		Source:          e.Source,
		Time:            formatTime(e.Time),
		Subject:         e.Subject,
		DataContentType: ContentTypeJSON,
	}, data})
}

// MarshalJSON writes an operator event's data: quota_fen and expires_at
// when the action sets a grant (a quota of 0 included) or when they are
// not zero (so that a test can build an event Decode refuses), reason
// when not empty.
func (o Operator) MarshalJSON() ([]byte, error) {
	b := []byte(`{"user_id":`)
	b = AppendJSONString(b, o.UserID)
	b = append(b, `,"action":`...)
	b = AppendJSONString(b, o.Action)
	grant := OperatorGrants(o.Action)
	if grant || o.QuotaFen != 0 {
		b = append(b, `,"quota_fen":`...)
		b = strconv.AppendInt(b, o.QuotaFen, 10)
	}
	if o.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, o.Reason)
	}
	b = append(b, `,"operator":`...)
	b = AppendJSONString(b, o.Operator)
	if grant || !o.ExpiresAt.IsZero() {
		b = append(b, `,"expires_at":"`...)
		b = appendTime(b, o.ExpiresAt)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// IsDecisionType reports whether t is one of the TypeDecision* constants.
func IsDecisionType(t string) bool {
	switch t {
	case TypeDecisionAlert, TypeDecisionQuota, TypeDecisionFrozen, TypeDecisionUnfrozen, TypeDecisionOverdue:
		return true
	}
	return false
}

// JSONAppender is implemented by a decision detail that writes its own
// JSON, sparing MarshalDecision the reflection of encoding/json (a quota
// decision's detail is a few kilobytes). AppendJSON appends the value to b
// as exactly one JSON object — it must start with '{' — and returns the
// extended buffer; it must not keep b. The bytes are trusted:
// MarshalDecision checks the first one and splices the rest in without
// validating or compacting them, so an implementation must write valid,
// compact JSON with strings escaped as encoding/json escapes them
// (AppendJSONString does) for its decisions to read back and to compare
// equal to the reflection-based encoding.
type JSONAppender interface {
	AppendJSON(b []byte) []byte
}

// MarshalDecision returns d as a structured-mode CloudEvents 1.0 JSON
// document with source "fenqi" and data d.Data. It is an error when
// d.Type is not a decision type, d.ID or d.Subject is empty, d.Time is
// zero, or d.Data.Detail does not marshal to a JSON object (a nil Detail
// is left out). A nil ReasonCodes is written as [].
//
// A Detail that implements JSONAppender (and is not a nil pointer) writes
// itself; any other Detail goes through json.Marshal. The rest of the
// document is written directly, in the bytes json.Marshal would write.
func MarshalDecision(d Decision) ([]byte, error) {
	// Write into a pooled buffer and return an exact copy: the caller
	// keeps the copy (as a Kafka message value, until its batch is sent),
	// and nothing has to guess the size of a detail that writes itself.
	buf := scratch.Get().(*[]byte)
	b, err := AppendDecision((*buf)[:0], d)
	var out []byte
	if err == nil {
		out = bytes.Clone(b)
	}
	if cap(b) <= maxScratch {
		*buf = b[:0]
		scratch.Put(buf)
	}
	return out, err
}

// AppendDecision appends MarshalDecision's document to b (on an error, b
// is returned as it was): many decisions can share one buffer.
func AppendDecision(b []byte, d Decision) ([]byte, error) {
	switch {
	case !IsDecisionType(d.Type):
		return b, fmt.Errorf("events: marshal decision: unknown decision type %q", d.Type)
	case d.ID == "":
		return b, errors.New("events: marshal decision: empty id")
	case d.Subject == "":
		return b, fmt.Errorf("events: marshal decision %s: empty subject", d.ID)
	case d.Time.IsZero():
		return b, fmt.Errorf("events: marshal decision %s: zero time", d.ID)
	}
	appender, selfWriting := d.Data.Detail.(JSONAppender)
	if selfWriting && isNilPointer(d.Data.Detail) {
		// A typed nil: json.Marshal makes it null (or whatever its
		// MarshalJSON says) and the detail is left out as before.
		appender, selfWriting = nil, false
	}
	var detail []byte // the reflected detail; nil when there is none
	if !selfWriting && d.Data.Detail != nil {
		var err error
		if detail, err = marshalDetail(d.Data.Detail); err != nil {
			return b, fmt.Errorf("events: marshal decision %s: %w", d.ID, err)
		}
	}
	out, err := appendDecision(b, &d, appender, detail)
	if err != nil {
		return b, err
	}
	return out, nil
}

// scratch holds the buffers MarshalDecision writes into; one that grew
// past maxScratch is dropped rather than kept.
var scratch = sync.Pool{New: func() any {
	b := make([]byte, 0, 8<<10)
	return &b
}}

const maxScratch = 64 << 10

// appendDecision appends d to b: the envelope's attributes, then the data
// with the detail that appender writes, or else the reflected detail (nil:
// none). It fails only when appender writes something other than an object.
func appendDecision(b []byte, d *Decision, appender JSONAppender, detail []byte) ([]byte, error) {
	b = append(b, `{"specversion":`...)
	b = AppendJSONString(b, SpecVersion)
	b = append(b, `,"id":`...)
	b = AppendJSONString(b, d.ID)
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, d.Type)
	b = append(b, `,"source":`...)
	b = AppendJSONString(b, DecisionSource)
	b = append(b, `,"time":"`...)
	b = appendTime(b, d.Time) // digits, "T", "Z" and ":.+-" only: nothing to escape
	b = append(b, `","subject":`...)
	b = AppendJSONString(b, d.Subject)
	b = append(b, `,"datacontenttype":`...)
	b = AppendJSONString(b, ContentTypeJSON)

	b = append(b, `,"data":{"user_id":`...)
	b = AppendJSONString(b, d.Data.UserID)
	b = append(b, `,"causation_id":`...)
	b = AppendJSONString(b, d.Data.CausationID)
	b = append(b, `,"rule":`...)
	b = AppendJSONString(b, d.Data.Rule)
	b = append(b, `,"action":`...)
	b = AppendJSONString(b, d.Data.Action)
	b = append(b, `,"reason_codes":[`...) // a nil ReasonCodes too
	for i, rc := range d.Data.ReasonCodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = rc.AppendJSON(b)
	}
	b = append(b, `],"policy_version":`...)
	b = AppendJSONString(b, d.Data.PolicyVersion)
	switch {
	case appender != nil:
		b = append(b, `,"detail":`...)
		start := len(b)
		b = appender.AppendJSON(b)
		if len(b) == start || b[start] != '{' {
			return b, fmt.Errorf("events: marshal decision %s: detail: %T.AppendJSON wrote %.20q, want a JSON object",
				d.ID, d.Data.Detail, b[start:])
		}
	case detail != nil:
		b = append(b, `,"detail":`...)
		b = append(b, detail...)
	}
	return append(b, "}}"...), nil
}

// marshalDetail is a detail that does not write itself, through
// json.Marshal: an error unless it is a JSON object; nil for a typed nil.
func marshalDetail(detail any) ([]byte, error) {
	raw, err := json.Marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case bytes.Equal(raw, []byte("null")):
		return nil, nil // a typed nil: leave it out
	case len(raw) > 0 && raw[0] == '{':
		return raw, nil
	}
	return nil, fmt.Errorf("detail must be a JSON object, got %.20s", raw)
}

// isNilPointer reports whether v holds a nil pointer, on which a value
// receiver's method would panic.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// AppendJSON appends rc to b as the JSON object encoding/json writes for it.
func (rc ReasonCode) AppendJSON(b []byte) []byte {
	if m := reasonJSON.Load(); m != nil {
		if j, ok := (*m)[rc]; ok {
			return append(b, j...)
		}
	}
	start := len(b)
	b = rc.appendJSON(b)
	cacheReasonJSON(rc, b[start:])
	return b
}

// reasonJSON holds the JSON of the reason codes met so far, at most
// maxReasonJSON of them (then the others are written each time): their
// texts come from the policies' catalogues, so a process meets few, and
// a quota decision carries each of its codes twice, in long bilingual
// texts. Readers load the map; a new code replaces it with a copy.
var (
	reasonJSON   atomic.Pointer[map[ReasonCode][]byte]
	reasonJSONMu sync.Mutex
)

const maxReasonJSON = 256

func cacheReasonJSON(rc ReasonCode, j []byte) {
	reasonJSONMu.Lock()
	defer reasonJSONMu.Unlock()
	old := reasonJSON.Load()
	if old != nil && len(*old) >= maxReasonJSON {
		return
	}
	m := make(map[ReasonCode][]byte, 1)
	if old != nil {
		m = maps.Clone(*old)
	}
	m[rc] = bytes.Clone(j)
	reasonJSON.Store(&m)
}

func (rc ReasonCode) appendJSON(b []byte) []byte {
	b = append(b, `{"code":`...)
	b = AppendJSONString(b, rc.Code)
	b = append(b, `,"message":`...)
	b = AppendJSONString(b, rc.Message)
	if rc.Advice != "" {
		b = append(b, `,"advice":`...)
		b = AppendJSONString(b, rc.Advice)
	}
	return append(b, '}')
}

// AppendJSONString appends s to b as a JSON string, quoted and escaped
// exactly as encoding/json's Marshal escapes it: the quote and the
// backslash (\" and \\), the control characters (\b, \f, \n, \r, \t or
// \u00XX), the HTML characters <, > and & (\u003c, \u003e, \u0026), U+2028
// and U+2029 (\u2028, \u2029), and every byte of invalid UTF-8 as \ufffd;
// everything else is copied as is.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, to be copied as is
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, <, > and &
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		if n := validUTF8Run(s, i); n > 0 { // most of Chinese text: nothing to escape
			i += n
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonSafe holds the bytes that go into a JSON string as they are under
// encoding/json's HTML-safe escaping: printable ASCII (DEL included) but
// for '"', '\\', '<', '>' and '&'. Bytes from 0x80 up are decoded as UTF-8.
var jsonSafe = func() (safe [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return safe
}()

// validUTF8Run is the length of the valid 2- or 3-byte UTF-8 sequence
// at s[i] that needs no escaping, 0 when that is not sure: leads C2–DF,
// and E1–EC and EE–EF (no overlong forms and no surrogates there), with
// their continuation bytes, but not E2 80 A8/A9 (U+2028 and U+2029, which
// are escaped). utf8.DecodeRuneInString decides the rest.
func validUTF8Run(s string, i int) int {
	c := s[i]
	switch {
	case c >= 0xC2 && c <= 0xDF:
		if i+1 < len(s) && s[i+1]&0xC0 == 0x80 {
			return 2
		}
	case c >= 0xE1 && c <= 0xEF && c != 0xED:
		if i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 &&
			!(c == 0xE2 && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8) {
			return 3
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// envelopeHead is the envelope's attributes: envelopeOut without its data
// (appendDecision writes the same attributes, in the same order, by hand).
type envelopeHead struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Type            string `json:"type"`
	Source          string `json:"source"`
	Time            string `json:"time"`
	Subject         string `json:"subject"`
	DataContentType string `json:"datacontenttype"`
}

// envelopeIn is the structured-mode CloudEvent as read from the wire; data
// is kept raw and decoded once the type is known.
type envelopeIn struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Time            string          `json:"time"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      json.RawMessage `json:"data_base64"`
}

// DecodeDecision is the reverse of MarshalDecision. Data.Detail is
// returned as a json.RawMessage holding the detail object (nil when the
// decision has none), so the caller can decode it into the type-specific
// struct it expects; MarshalDecision writes a json.RawMessage back
// unchanged. Errors are *DecodeError with the same Field scheme as
// Decoder.Decode.
func DecodeDecision(value []byte) (Decision, error) {
	var env envelopeIn
	if err := json.Unmarshal(value, &env); err != nil {
		return Decision{}, jsonError(err, "")
	}
	if err := env.checkAttributes(); err != nil {
		return Decision{}, err
	}
	if !IsDecisionType(env.Type) {
		return Decision{}, &DecodeError{Field: "type", Reason: fmt.Sprintf("unknown decision type %q", env.Type)}
	}
	t, err := parseTime(env.Time)
	if err != nil {
		return Decision{}, &DecodeError{Field: "time", Reason: err.Error()}
	}
	if err := checkDataObject(env.Data, env.DataBase64); err != nil {
		return Decision{}, err
	}
	var w decisionDataWire
	if err := json.Unmarshal(env.Data, &w); err != nil {
		return Decision{}, jsonError(err, "data.")
	}
	d := Decision{
		ID:      env.ID,
		Type:    env.Type,
		Subject: env.Subject,
		Time:    t,
		Data: DecisionData{
			UserID:        w.UserID,
			CausationID:   w.CausationID,
			Rule:          w.Rule,
			Action:        w.Action,
			ReasonCodes:   w.ReasonCodes,
			PolicyVersion: w.PolicyVersion,
		},
	}
	if detail := bytes.TrimSpace(w.Detail); len(detail) > 0 && !bytes.Equal(detail, []byte("null")) {
		if detail[0] != '{' {
			return Decision{}, &DecodeError{Field: "data.detail", Reason: "must be a JSON object"}
		}
		d.Data.Detail = json.RawMessage(detail)
	}
	return d, nil
}

// DecisionID returns a stable decision id: "d-" followed by the hex of the
// first 16 bytes of the SHA-256 of the parts joined with a 0 byte. The same
// parts always give the same id.
func DecisionID(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return "d-" + hex.EncodeToString(sum[:16])
}

// FormatYuan formats an amount in fen as yuan with two decimals and
// thousands separators: -123456 → "-1,234.56" (also right for the most
// negative int64).
func FormatYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign, u = "-", uint64(-(fen+1))+1
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	b.WriteString(sign)
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	fmt.Fprintf(&b, ".%02d", u%100)
	return b.String()
}
