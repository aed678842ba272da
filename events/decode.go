package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // profile time zones must validate the same way on every host, even without /usr/share/zoneinfo
	"unicode"
	"unicode/utf8"
)

// MaxAmountFen is the largest amount accepted: 2^53-1 fen (about 90 billion
// yuan), the largest integer that every JSON parser and Redis's Lua (whose
// numbers are doubles) keep exactly.
const MaxAmountFen = 1<<53 - 1

// MaxIDBytes is the longest id or name accepted, in bytes of UTF-8: the
// attributes id, source and subject (the user id, hence the key and every
// user_id), and the data's merchant_id, device_id, city, bill_id and
// timezone. A longer one is refused (docs/events.md, "Limits").
const MaxIDBytes = 128

// maxMediaTypeBytes is the longest content-type header or datacontenttype
// attribute accepted.
const maxMediaTypeBytes = 128

// Defaults of a zero Decoder.
const (
	DefaultMaxBytes  = 64 << 10
	DefaultMaxFuture = 5 * time.Minute
)

// DecodeError says why an input record was refused. Field names the part of
// the record at fault:
//
//   - "value": the record value as a whole (too large, not JSON, not an
//     object), or a member of the envelope that is not one attribute (a
//     member name that is not UTF-8, a repeated extension);
//   - "key": the Kafka message key (must equal the subject);
//   - "content-type": the content-type header;
//   - a CloudEvents attribute name: "specversion", "id", "type", "source",
//     "subject", "time", "datacontenttype" (the same names in binary mode,
//     where they come from the ce_<attr> headers, and for a ce_<attr>
//     header that is repeated or, in structured mode, contradicts the
//     envelope);
//   - "data": the event data as a whole (missing, not an object), or a
//     member of it that is not one field;
//   - "data.<json field>": one field of the data, e.g. "data.amount_fen".
//
// Reason is a short English sentence fragment meant for logs and for the
// fenqi-error header of a dead letter.
type DecodeError struct {
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("events: field %q: %s", e.Field, e.Reason)
}

func derr(field, reason string) *DecodeError { return &DecodeError{Field: field, Reason: reason} }

// Decoder decodes and validates input records. The zero value is ready to
// use with the defaults; a Decoder is safe for concurrent use.
type Decoder struct {
	// MaxBytes is the largest record value accepted (DefaultMaxBytes if <= 0).
	MaxBytes int
	// MaxFuture is how far after Now an event time may be (DefaultMaxFuture if <= 0).
	MaxFuture time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Valid reports whether s is one of the Scene constants.
func (s Scene) Valid() bool {
	switch s {
	case SceneEcommerce, SceneLocalLife, SceneOfflineRetail, SceneEducation, SceneMedical,
		SceneTransfer, SceneRedPacket, SceneBillPay, SceneDonation, SceneWealth, SceneOther:
		return true
	}
	return false
}

// Valid reports whether a is one of the Auth constants.
func (a Auth) Valid() bool {
	switch a {
	case AuthPassword, AuthFace, AuthFingerprint, AuthNone:
		return true
	}
	return false
}

// ValidPool reports whether s is one of the Pool* constants ("" is not:
// the decoder takes an absent or empty pool as PoolPayScore and keeps it
// empty).
func ValidPool(s string) bool {
	switch s {
	case PoolPayScore, PoolIndependent, PoolSharedWeilidai, PoolSpecialTemporary:
		return true
	}
	return false
}

// IsInputType reports whether t is one of the input event types.
func IsInputType(t string) bool {
	switch t {
	case TypePayment, TypeLogin, TypeRepaymentDue, TypeRepaymentPaid, TypeProfile, TypeOperator:
		return true
	}
	return false
}

// ValidInstallments reports whether n is an accepted number of installment
// periods (0 = pay now).
func ValidInstallments(n int) bool {
	switch n {
	case 0, 1, 3, 6, 12, 24: // 1: pay later (先消费后还款, DOMAIN.md §4)
		return true
	}
	return false
}

// Reasons, shared by the checks and by the JSON type errors of the same field.
const (
	reasonString     = "must be a non-empty string"
	reasonAmount     = "must be a positive integer of at most 9007199254740991 (2^53-1) fen"
	reasonNonNeg     = "must be a non-negative integer of at most 9007199254740991 (2^53-1) fen"
	reasonInstall    = "must be one of 0, 1, 3, 6, 12, 24"
	reasonScene      = "must be one of ecommerce, local_life, offline_retail, education, medical, transfer, red_packet, bill_pay, donation, wealth, other"
	reasonAuth       = "must be one of password, face, fingerprint, none"
	reasonCurrency   = `must be "CNY"`
	reasonTime       = "must be an RFC 3339 timestamp: YYYY-MM-DDThh:mm:ss, then a fraction of 1 to 9 digits or none, then Z or ±hh:mm"
	reasonDate       = "must be a date YYYY-MM-DD, or empty or absent when no card is bound"
	reasonDefaultOn  = "must be a date YYYY-MM-DD, or empty or absent when no serious default is reported"
	reasonPool       = "must be one of pay_score, independent, shared_weilidai, special_temporary (empty or absent: pay_score)"
	reasonIP         = "must be an IPv4 or IPv6 address (no port, no zone)"
	reasonBool       = "must be true or false"
	reasonScore      = "must be an integer from 300 to 850"
	reasonZone       = "must be an IANA time zone name"
	reasonObject     = "must be a JSON object"
	reasonUser       = "must equal the subject"
	reasonAttr       = "must be a non-empty string"
	reasonUTF8       = "must be " + validUnicode
	reasonControl    = "must not contain control characters (U+0000-U+001F, U+007F-U+009F)"
	reasonDataBase64 = "data_base64 is not accepted: data must be a JSON object"
	reasonAction     = "must be one of set_override, clear_override, quota_check, set_special, clear_special"

	validUnicode = "valid UTF-8 (no invalid bytes, no escaped unpaired surrogate)"
)

// tooLong is the reason for a string of n bytes over its limit.
func tooLong(limit, n int) string {
	return fmt.Sprintf("must be at most %d bytes long, not %d", limit, n)
}

// fieldReasons gives the reason reported when a JSON value has the wrong
// type for a field (keys are JSON names, data fields without "data.").
var fieldReasons = map[string]string{
	"specversion":             `must be "1.0"`,
	"time":                    reasonTime,
	"datacontenttype":         `must be "application/json"`,
	"user_id":                 reasonString,
	"merchant_id":             reasonString,
	"device_id":               reasonString,
	"city":                    reasonString,
	"bill_id":                 reasonString,
	"reason_codes":            "must be an array of {code, message, advice} objects",
	"amount_fen":              reasonAmount,
	"installments":            reasonInstall,
	"currency":                reasonCurrency,
	"scene":                   reasonScene,
	"auth":                    reasonAuth,
	"ip":                      reasonIP,
	"due_at":                  reasonTime,
	"pay_score":               reasonScore,
	"card_bound_since":        reasonDate,
	"wealth_balance_fen":      reasonNonNeg,
	"transaction_limit_fen":   reasonNonNeg,
	"timezone":                reasonZone,
	"real_name_verified":      reasonBool,
	"identity_complete":       reasonBool,
	"card_bank_blacklisted":   reasonBool,
	"judicial_defaulter":      reasonBool,
	"linked_account_negative": reasonBool,
	"detail":                  reasonObject,
	"action":                  reasonString, // a decision's action too: not reasonAction
	"quota_fen":               reasonNonNeg,
	"reason":                  reasonString,
	"operator":                reasonString,
	"expires_at":              reasonTime,

	// Optional fields added after the first version of their event.
	"pool":                         reasonPool,
	"partner_limit_fen":            reasonNonNeg,
	"weilidai_limit_fen":           reasonNonNeg,
	"alert_threshold_fen":          reasonNonNeg,
	"serious_default_elsewhere_on": reasonDefaultOn,
}

// jsonError turns an error of json.Unmarshal into a *DecodeError. prefix is
// "" for the envelope and "data." for the data.
func jsonError(err error, prefix string) *DecodeError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return derr("value", fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: ")))
	case errors.As(err, &typ):
		if typ.Field == "" {
			if prefix == "" {
				return derr("value", reasonObject)
			}
			return derr(strings.TrimSuffix(prefix, "."), reasonObject)
		}
		reason, ok := fieldReasons[typ.Field]
		if !ok {
			reason = "has the wrong JSON type (" + typ.Value + ")"
			if prefix == "" {
				reason = reasonAttr
			}
		}
		return derr(prefix+typ.Field, reason)
	default:
		return derr("value", strings.TrimPrefix(err.Error(), "json: "))
	}
}

// short quotes s for a reason, cut to a readable length.
func short(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// checkText checks an id or name: at most limit bytes, valid UTF-8, and
// no control character (C0, DEL, C1). The empty string passes.
func checkText(field, s string, limit int) *DecodeError {
	if len(s) <= limit && printableASCII(s) {
		return nil // printable ASCII within the limit: the usual case
	}
	return checkTextSlow(field, s, limit)
}

// printableASCII reports whether s is printable ASCII only.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if textSpecial[s[i]] {
			return false
		}
	}
	return true
}

func checkTextSlow(field, s string, limit int) *DecodeError {
	if len(s) > limit {
		return derr(field, tooLong(limit, len(s)))
	}
	ascii, control := true, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case c < ' ' || c == 0x7f:
			control = true
		}
	}
	if !ascii {
		if !utf8.ValidString(s) {
			return derr(field, reasonUTF8)
		}
		for _, c := range s {
			if 0x80 <= c && c <= 0x9f {
				control = true
			}
		}
	}
	if control {
		return derr(field, reasonControl)
	}
	return nil
}

// textSpecial marks the bytes checkText must look at: the ASCII control
// characters and the bytes of non-ASCII runes.
var textSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c < ' ' || c >= 0x7f
	}
	return t
}()

// requireText checks a required id or name of the data (see checkText).
func requireText(field, s string) *DecodeError {
	if s == "" {
		return derr(field, reasonString)
	}
	return checkText(field, s, MaxIDBytes)
}

// checkAttributes checks the attributes every CloudEvent must carry.
func (env *envelopeIn) checkAttributes() *DecodeError {
	switch {
	case env.SpecVersion == "":
		return derr("specversion", "required")
	case env.SpecVersion != SpecVersion:
		return derr("specversion", `must be "1.0", not `+short(env.SpecVersion))
	case env.ID == "":
		return derr("id", reasonAttr)
	}
	if err := checkText("id", env.ID, MaxIDBytes); err != nil {
		return err
	}
	if env.Type == "" {
		return derr("type", reasonAttr) // checked against the known types later
	}
	if env.Source == "" {
		return derr("source", reasonAttr)
	}
	if err := checkText("source", env.Source, MaxIDBytes); err != nil {
		return err
	}
	if env.Subject == "" {
		return derr("subject", reasonAttr)
	}
	if err := checkText("subject", env.Subject, MaxIDBytes); err != nil {
		return err
	}
	if env.Time == "" {
		return derr("time", "required")
	}
	if env.DataContentType != "" && env.DataContentType != ContentTypeJSON {
		essence, err := mediaType("datacontenttype", env.DataContentType)
		if err != nil {
			return err
		}
		if !asciiEqualFold(essence, ContentTypeJSON) {
			return derr("datacontenttype", `must be "application/json", not `+short(env.DataContentType))
		}
	}
	return nil
}

// Earliest and Latest bound every timestamp fenqi accepts: state keeps
// times as 6 base-36 digits of Unix seconds (up to 2038-12-24), and no
// installment event predates 2000.
var (
	Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	Latest   = time.Unix(36*36*36*36*36*36-1, 0).UTC()
)

// parseTime parses an RFC 3339 timestamp (strictly: see parseRFC3339) and
// returns it in UTC; it must lie within [Earliest, Latest].
func parseTime(s string) (time.Time, error) {
	t, ok := parseRFC3339(s)
	if !ok {
		return time.Time{}, errors.New(reasonTime)
	}
	if t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, fmt.Errorf("must lie between %s and %s", Earliest.Format(time.DateOnly), Latest.Format(time.DateOnly))
	}
	return t, nil
}

// parseRFC3339 parses the date-time of RFC 3339 §5.6, in UTC, and no
// other form: time.Parse(time.RFC3339Nano) also takes a one-digit hour, a
// comma before the fraction, offsets of +24:00 and beyond or with 60
// minutes, and fractions longer than nanoseconds (cut). Decisions of
// fenqi's (docs/events.md, "Limits"): "T" and "Z" in upper case only (the
// RFC allows lower case), no leap second (second 60: Unix time, and so
// Go, has none), at most 9 fraction digits; "-00:00" is UTC.
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 { // 1 to 9 digits
			return time.Time{}, false
		}
		frac, _ := digits(rest[1:n])
		for range 10 - n {
			frac *= 10
		}
		nsec, rest = frac, rest[n:]
	}
	offset := 0
	switch {
	case rest == "Z":
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		if offset = (oh*60 + om) * 60; rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// parseDate reports whether s is a date YYYY-MM-DD of the calendar.
func parseDate(s string) bool {
	if len(s) != len(time.DateOnly) || s[4] != '-' || s[7] != '-' {
		return false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	return ok1 && ok2 && ok3 && 1 <= month && month <= 12 && 1 <= day && day <= daysIn(year, month)
}

// digits is the value of s, ASCII digits only (at most 9 of them).
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days of a month (1-12) of the Gregorian calendar.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// checkDataObject checks that the data is present and is a JSON object.
func checkDataObject(data, dataBase64 json.RawMessage) *DecodeError {
	data = bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(data) == 0 && len(dataBase64) > 0:
		return derr("data", reasonDataBase64)
	case len(data) == 0 || bytes.HasPrefix(data, []byte("null")):
		return derr("data", "required")
	case data[0] != '{':
		return derr("data", reasonObject)
	}
	return nil
}

// mediaType checks a content type (the content-type header or the
// datacontenttype attribute, named field) and returns its type/subtype,
// to compare with asciiEqualFold: at most maxMediaTypeBytes, valid UTF-8,
// no control character but tab, and a charset parameter, if any, of
// utf-8. Other parameters are not looked at.
func mediaType(field, ct string) (essence string, err *DecodeError) {
	if len(ct) > maxMediaTypeBytes {
		return "", derr(field, tooLong(maxMediaTypeBytes, len(ct)))
	}
	if !utf8.ValidString(ct) {
		return "", derr(field, reasonUTF8)
	}
	if strings.ContainsFunc(ct, func(c rune) bool { return c != '\t' && unicode.IsControl(c) }) {
		return "", derr(field, reasonControl)
	}
	essence, params, _ := strings.Cut(ct, ";")
	for params != "" {
		var param string
		param, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(param, "=")
		if !asciiEqualFold(strings.Trim(name, " \t"), "charset") {
			continue
		}
		value = strings.Trim(value, " \t")
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if !asciiEqualFold(value, "utf-8") {
			return "", derr(field, "charset must be utf-8, not "+short(value))
		}
	}
	return strings.Trim(essence, " \t"), nil
}

// asciiEqualFold reports whether a and b are equal ignoring the case of
// ASCII letters only: strings.EqualFold would also take "ſ" for "s" and
// "K" (Kelvin) for "k", which other readers do not.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Header names of the CloudEvents Kafka protocol binding.
const headerContentType = "content-type"

// ceAttrs are the attributes read from ce_<attr> headers, in the order of
// recordHeaders.attrs; other ce_ headers (extensions) are ignored.
var ceAttrs = [...]string{"specversion", "id", "type", "source", "time", "subject", "datacontenttype"}

// recordHeaders are the headers of a record that Decode reads.
type recordHeaders struct {
	contentType *Header
	attrs       [len(ceAttrs)]*Header // nil: absent
	anyAttr     bool                  // some attrs are not nil
}

// scan finds the headers Decode reads. Names are compared ignoring the
// case of ASCII letters only; a name that is there twice, in any case, is
// refused.
func (h *recordHeaders) scan(headers []Header) *DecodeError {
	for i := range headers {
		k := headers[i].Key
		var slot **Header
		attr := -1
		switch k { // the usual, lower-case names first
		case headerContentType:
			slot = &h.contentType
		case "ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_datacontenttype":
			attr = ceAttr(k[3:])
			slot = &h.attrs[attr]
		default:
			switch {
			case !hasUpperASCII(k): // no other name matches ignoring case
				continue
			case asciiEqualFold(k, headerContentType):
				slot = &h.contentType
			case len(k) > 3 && asciiEqualFold(k[:3], "ce_"):
				for j, a := range ceAttrs {
					if asciiEqualFold(k[3:], a) {
						attr, slot = j, &h.attrs[j]
						break
					}
				}
				if slot == nil {
					continue
				}
			default:
				continue
			}
		}
		if first := *slot; first != nil {
			field, name := headerContentType, headerContentType
			if attr >= 0 {
				field, name = ceAttrs[attr], "ce_"+ceAttrs[attr]
			}
			reason := "header " + name + " repeated"
			if first.Key != k {
				reason += fmt.Sprintf(" (as %q and %q: header names are compared ignoring case)", first.Key, k)
			}
			return derr(field, reason)
		}
		*slot = &headers[i]
		h.anyAttr = h.anyAttr || attr >= 0
	}
	return nil
}

// ceAttr is the index in ceAttrs of a lower-case attribute name.
func ceAttr(name string) int {
	switch name {
	case "specversion":
		return 0
	case "id":
		return 1
	case "type":
		return 2
	case "source":
		return 3
	case "time":
		return 4
	case "subject":
		return 5
	}
	return 6 // datacontenttype
}

// hasUpperASCII reports whether s has an upper-case ASCII letter.
func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// attr returns the envelope's attribute of index j of ceAttrs.
func (env *envelopeIn) attr(j int) *string {
	switch ceAttrs[j] {
	case "specversion":
		return &env.SpecVersion
	case "id":
		return &env.ID
	case "type":
		return &env.Type
	case "source":
		return &env.Source
	case "time":
		return &env.Time
	case "subject":
		return &env.Subject
	default:
		return &env.DataContentType
	}
}

// agree checks the ce_<attr> headers of a structured-mode record against
// the envelope: each must be the attribute's value, byte for byte (and
// ce_datacontenttype, like the attribute, application/json).
func (h *recordHeaders) agree(env *envelopeIn) *DecodeError {
	for j, hd := range h.attrs {
		if hd == nil {
			continue
		}
		attr, v := ceAttrs[j], string(hd.Value)
		if attr == "datacontenttype" {
			essence, err := mediaType(attr, v)
			if err != nil {
				return err
			}
			if !asciiEqualFold(essence, ContentTypeJSON) {
				return derr(attr, `header ce_datacontenttype must be "application/json", not `+short(v))
			}
			continue
		}
		if ev := *env.attr(j); v != ev {
			return derr(attr, fmt.Sprintf("header ce_%s %s contradicts the event's %s %s", attr, short(v), attr, short(ev)))
		}
	}
	return nil
}

// Decode decodes and validates one input record: key is the Kafka message
// key, headers its headers, value its value. The record is a CloudEvent in
// binary mode when a ce_specversion header is present, otherwise in
// structured mode. Every refusal is a *DecodeError. The returned event's
// times are in UTC, and its strings are valid UTF-8 without control
// characters, ids and names of at most MaxIDBytes.
func (d Decoder) Decode(key []byte, headers []Header, value []byte) (Event, error) {
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(value) > maxBytes {
		return Event{}, derr("value", fmt.Sprintf("is %d bytes, more than the limit of %d", len(value), maxBytes))
	}

	var hs recordHeaders
	if err := hs.scan(headers); err != nil {
		return Event{}, err
	}
	var contentType []byte // nil when absent
	if hs.contentType != nil {
		contentType = hs.contentType.Value
	}
	var env envelopeIn
	binary := hs.attrs[0] != nil
	if binary {
		for j, hd := range hs.attrs {
			if hd != nil {
				*env.attr(j) = intern(hd.Value)
			}
		}
		if len(contentType) > 0 && string(contentType) != ContentTypeJSON {
			ct := string(contentType)
			essence, err := mediaType("content-type", ct)
			if err != nil {
				return Event{}, err
			}
			if !asciiEqualFold(essence, ContentTypeJSON) {
				return Event{}, derr("content-type", `must be "application/json" in binary mode, not `+short(ct))
			}
		}
		env.Data = value
	} else {
		if len(contentType) > 0 && string(contentType) != ContentTypeCloudEvents {
			ct := string(contentType)
			essence, err := mediaType("content-type", ct)
			if err != nil {
				return Event{}, err
			}
			if !asciiEqualFold(essence, ContentTypeCloudEvents) && !asciiEqualFold(essence, ContentTypeJSON) {
				return Event{}, derr("content-type", `must be "application/cloudevents+json" (or a ce_specversion header for binary mode), not `+short(ct))
			}
		}
		if len(bytes.TrimSpace(value)) == 0 {
			return Event{}, derr("value", "empty")
		}
		if err := env.read(value); err != nil {
			return Event{}, err
		}
	}

	if err := env.checkAttributes(); err != nil {
		return Event{}, err
	}
	if !binary && hs.anyAttr {
		if err := hs.agree(&env); err != nil {
			return Event{}, err
		}
	}
	if !IsInputType(env.Type) {
		return Event{}, derr("type", "unknown event type "+short(env.Type))
	}
	if len(key) > 0 && string(key) != env.Subject {
		return Event{}, derr("key", "must equal the subject when not empty")
	}
	t, err := parseTime(env.Time)
	if err != nil {
		return Event{}, derr("time", err.Error())
	}
	maxFuture := d.MaxFuture
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	if ahead := t.Sub(now()); ahead > maxFuture {
		return Event{}, derr("time", fmt.Sprintf("is %s in the future, more than the %s allowed", ahead.Round(time.Second), maxFuture))
	}
	if err := checkDataObject(env.Data, env.DataBase64); err != nil {
		return Event{}, err
	}

	e := Event{ID: env.ID, Type: env.Type, Source: env.Source, Subject: env.Subject, Time: t}
	var dataErr *DecodeError
	switch env.Type {
	case TypePayment:
		e.Payment, dataErr = decodePayment(env.Data, env.Subject)
	case TypeLogin:
		e.Login, dataErr = decodeLogin(env.Data, env.Subject)
	case TypeRepaymentDue:
		e.Due, dataErr = decodeDue(env.Data, env.Subject)
	case TypeRepaymentPaid:
		e.Paid, dataErr = decodePaid(env.Data, env.Subject)
	case TypeProfile:
		e.Profile, dataErr = decodeProfile(env.Data, env.Subject)
	case TypeOperator:
		e.Op, dataErr = decodeOperator(env.Data, env.Subject, t)
	}
	if dataErr != nil {
		return Event{}, dataErr
	}
	return e, nil
}

// The member names of each object the reader reads (reader.fields).
var (
	envelopeFields = []string{"specversion", "id", "type", "source", "time", "subject", "datacontenttype", "data", "data_base64"}
	paymentFields  = []string{"user_id", "amount_fen", "currency", "scene", "merchant_id", "installments", "device_id", "city", "auth"}
	loginFields    = []string{"user_id", "device_id", "city", "ip", "auth"}
	dueFields      = []string{"user_id", "bill_id", "amount_fen", "due_at", "pool"}
	paidFields     = []string{"user_id", "bill_id", "amount_fen"}
	profileFields  = []string{"user_id", "pay_score", "real_name_verified", "identity_complete", "card_bound_since",
		"card_bank_blacklisted", "wealth_balance_fen", "judicial_defaulter", "linked_account_negative",
		"transaction_limit_fen", "timezone", "partner_limit_fen", "weilidai_limit_fen", "alert_threshold_fen",
		"serious_default_elsewhere_on"}
	operatorFields = []string{"user_id", "action", "quota_fen", "reason", "operator", "expires_at"}
)

// read fills the attributes and data from a structured-mode value. The
// data is kept raw (its type may come after it) and decoded by
// decodePayment etc. once the attributes have passed; data_base64 is
// refused where it stands.
func (env *envelopeIn) read(value []byte) *DecodeError {
	r := reader{buf: value, fields: envelopeFields}
	for r.next() {
		switch string(r.name) {
		case "specversion":
			r.readString(&env.SpecVersion)
		case "id":
			r.readString(&env.ID)
		case "type":
			r.readString(&env.Type)
		case "source":
			r.readString(&env.Source)
		case "time":
			r.readString(&env.Time)
		case "subject":
			r.readString(&env.Subject)
		case "datacontenttype":
			r.readString(&env.DataContentType)
		case "data":
			env.Data = r.raw()
		case "data_base64":
			r.setFault("data", reasonDataBase64)
			r.raw()
		default:
			r.skip()
		}
	}
	return r.close()
}

// The wire forms of the data. Strings and amounts whose zero value is
// invalid are plain fields (absent = zero = refused). Where zero is valid,
// absence must show: a payment's installments start at a sentinel (any
// value other than 0, 1, 3, 6, 12, 24 is refused anyway, so a sentinel sent
// on purpose is still refused), and the profile, a rare event, uses
// pointers.

const installmentsAbsent = math.MinInt

func decodePayment(data []byte, subject string) (*Payment, *DecodeError) {
	w := Payment{Installments: installmentsAbsent}
	r := reader{buf: data, share: subject, prefix: "data.", fields: paymentFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "amount_fen":
			r.readInt64(&w.AmountFen)
		case "currency":
			r.readString(&w.Currency)
		case "scene":
			r.readString((*string)(&w.Scene))
		case "merchant_id":
			r.readString(&w.MerchantID)
		case "installments":
			r.readInt(&w.Installments)
		case "device_id":
			r.readString(&w.DeviceID)
		case "city":
			r.readString(&w.City)
		case "auth":
			r.readString((*string)(&w.Auth))
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkUser(w.UserID, subject); err != nil {
		return nil, err
	}
	switch {
	case w.AmountFen <= 0 || w.AmountFen > MaxAmountFen:
		return nil, derr("data.amount_fen", reasonAmount)
	case w.Currency != "CNY":
		return nil, derr("data.currency", reasonCurrency)
	case !w.Scene.Valid():
		return nil, derr("data.scene", reasonScene)
	}
	if err := requireText("data.merchant_id", w.MerchantID); err != nil {
		return nil, err
	}
	switch {
	case w.Installments == installmentsAbsent:
		return nil, derr("data.installments", "required; "+reasonInstall)
	case !ValidInstallments(w.Installments):
		return nil, derr("data.installments", reasonInstall)
	}
	if err := requireText("data.device_id", w.DeviceID); err != nil {
		return nil, err
	}
	if err := requireText("data.city", w.City); err != nil {
		return nil, err
	}
	if !w.Auth.Valid() {
		return nil, derr("data.auth", reasonAuth)
	}
	return &w, nil
}

func decodeLogin(data []byte, subject string) (*Login, *DecodeError) {
	var w Login
	r := reader{buf: data, share: subject, prefix: "data.", fields: loginFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "device_id":
			r.readString(&w.DeviceID)
		case "city":
			r.readString(&w.City)
		case "ip":
			r.readString(&w.IP)
		case "auth":
			r.readString((*string)(&w.Auth))
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkUser(w.UserID, subject); err != nil {
		return nil, err
	}
	if err := requireText("data.device_id", w.DeviceID); err != nil {
		return nil, err
	}
	if err := requireText("data.city", w.City); err != nil {
		return nil, err
	}
	switch {
	case w.IP == "":
		return nil, derr("data.ip", reasonIP)
	case !w.Auth.Valid():
		return nil, derr("data.auth", reasonAuth)
	}
	// netip takes an IPv6 zone of any text ("fe80::1%" and then anything).
	if ip, err := netip.ParseAddr(w.IP); err != nil || ip.Zone() != "" {
		return nil, derr("data.ip", reasonIP)
	}
	return &w, nil
}

type dueIn struct {
	UserID    string `json:"user_id"`
	BillID    string `json:"bill_id"`
	AmountFen int64  `json:"amount_fen"`
	DueAt     string `json:"due_at"`
	Pool      string `json:"pool"`
}

func decodeDue(data []byte, subject string) (*RepaymentDue, *DecodeError) {
	var w dueIn
	r := reader{buf: data, share: subject, prefix: "data.", fields: dueFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "bill_id":
			r.readString(&w.BillID)
		case "amount_fen":
			r.readInt64(&w.AmountFen)
		case "due_at":
			r.readString(&w.DueAt)
		case "pool":
			r.readString(&w.Pool)
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkBill(w.UserID, subject, w.BillID, w.AmountFen); err != nil {
		return nil, err
	}
	if w.DueAt == "" {
		return nil, derr("data.due_at", "required; "+reasonTime)
	}
	due, err := parseTime(w.DueAt)
	if err != nil {
		return nil, derr("data.due_at", err.Error())
	}
	if w.Pool != "" && !ValidPool(w.Pool) {
		return nil, derr("data.pool", reasonPool+", not "+short(w.Pool))
	}
	return &RepaymentDue{UserID: w.UserID, BillID: w.BillID, AmountFen: w.AmountFen, DueAt: due, Pool: w.Pool}, nil
}

func decodePaid(data []byte, subject string) (*RepaymentPaid, *DecodeError) {
	var w RepaymentPaid
	r := reader{buf: data, share: subject, prefix: "data.", fields: paidFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "bill_id":
			r.readString(&w.BillID)
		case "amount_fen":
			r.readInt64(&w.AmountFen)
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkBill(w.UserID, subject, w.BillID, w.AmountFen); err != nil {
		return nil, err
	}
	return &w, nil
}

// checkBill checks what a repayment event's data shares: the user, the
// bill id and the amount.
func checkBill(userID, subject, billID string, amountFen int64) *DecodeError {
	if err := checkUser(userID, subject); err != nil {
		return err
	}
	if err := requireText("data.bill_id", billID); err != nil {
		return err
	}
	if amountFen <= 0 || amountFen > MaxAmountFen {
		return derr("data.amount_fen", reasonAmount)
	}
	return nil
}

type profileIn struct {
	UserID                string  `json:"user_id"`
	PayScore              *int    `json:"pay_score"`
	RealNameVerified      *bool   `json:"real_name_verified"`
	IdentityComplete      *bool   `json:"identity_complete"`
	CardBoundSince        *string `json:"card_bound_since"`
	CardBankBlacklisted   *bool   `json:"card_bank_blacklisted"`
	WealthBalanceFen      *int64  `json:"wealth_balance_fen"`
	JudicialDefaulter     *bool   `json:"judicial_defaulter"`
	LinkedAccountNegative *bool   `json:"linked_account_negative"`
	TransactionLimitFen   *int64  `json:"transaction_limit_fen"`
	Timezone              string  `json:"timezone"`
	// Optional, added later: absent (or null) is zero.
	PartnerLimitFen           *int64  `json:"partner_limit_fen"`
	WeilidaiLimitFen          *int64  `json:"weilidai_limit_fen"`
	AlertThresholdFen         *int64  `json:"alert_threshold_fen"`
	SeriousDefaultElsewhereOn *string `json:"serious_default_elsewhere_on"`
}

func decodeProfile(data []byte, subject string) (*Profile, *DecodeError) {
	var w profileIn
	r := reader{buf: data, share: subject, prefix: "data.", fields: profileFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "pay_score":
			readPtr(&r, &w.PayScore)
		case "real_name_verified":
			readPtr(&r, &w.RealNameVerified)
		case "identity_complete":
			readPtr(&r, &w.IdentityComplete)
		case "card_bound_since":
			readPtr(&r, &w.CardBoundSince)
		case "card_bank_blacklisted":
			readPtr(&r, &w.CardBankBlacklisted)
		case "wealth_balance_fen":
			readPtr(&r, &w.WealthBalanceFen)
		case "judicial_defaulter":
			readPtr(&r, &w.JudicialDefaulter)
		case "linked_account_negative":
			readPtr(&r, &w.LinkedAccountNegative)
		case "transaction_limit_fen":
			readPtr(&r, &w.TransactionLimitFen)
		case "timezone":
			r.readString(&w.Timezone)
		case "partner_limit_fen":
			readPtr(&r, &w.PartnerLimitFen)
		case "weilidai_limit_fen":
			readPtr(&r, &w.WeilidaiLimitFen)
		case "alert_threshold_fen":
			readPtr(&r, &w.AlertThresholdFen)
		case "serious_default_elsewhere_on":
			readPtr(&r, &w.SeriousDefaultElsewhereOn)
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkUser(w.UserID, subject); err != nil {
		return nil, err
	}
	switch {
	case w.PayScore == nil:
		return nil, derr("data.pay_score", "required; "+reasonScore)
	case *w.PayScore < 300 || *w.PayScore > 850:
		return nil, derr("data.pay_score", reasonScore)
	case w.RealNameVerified == nil:
		return nil, derr("data.real_name_verified", "required; "+reasonBool)
	case w.IdentityComplete == nil:
		return nil, derr("data.identity_complete", "required; "+reasonBool)
	case w.CardBankBlacklisted == nil:
		return nil, derr("data.card_bank_blacklisted", "required; "+reasonBool)
	case w.WealthBalanceFen == nil:
		return nil, derr("data.wealth_balance_fen", "required; "+reasonNonNeg)
	case *w.WealthBalanceFen < 0 || *w.WealthBalanceFen > MaxAmountFen:
		return nil, derr("data.wealth_balance_fen", reasonNonNeg)
	case w.JudicialDefaulter == nil:
		return nil, derr("data.judicial_defaulter", "required; "+reasonBool)
	case w.LinkedAccountNegative == nil:
		return nil, derr("data.linked_account_negative", "required; "+reasonBool)
	case w.TransactionLimitFen != nil && (*w.TransactionLimitFen < 0 || *w.TransactionLimitFen > MaxAmountFen):
		return nil, derr("data.transaction_limit_fen", reasonNonNeg)
	case !optionalAmount(w.PartnerLimitFen):
		return nil, derr("data.partner_limit_fen", reasonNonNeg)
	case !optionalAmount(w.WeilidaiLimitFen):
		return nil, derr("data.weilidai_limit_fen", reasonNonNeg)
	case !optionalAmount(w.AlertThresholdFen):
		return nil, derr("data.alert_threshold_fen", reasonNonNeg)
	}
	p := &Profile{
		UserID:                w.UserID,
		PayScore:              *w.PayScore,
		RealNameVerified:      *w.RealNameVerified,
		IdentityComplete:      *w.IdentityComplete,
		CardBankBlacklisted:   *w.CardBankBlacklisted,
		WealthBalanceFen:      *w.WealthBalanceFen,
		JudicialDefaulter:     *w.JudicialDefaulter,
		LinkedAccountNegative: *w.LinkedAccountNegative,
		Timezone:              w.Timezone,
	}
	if w.TransactionLimitFen != nil {
		p.TransactionLimitFen = *w.TransactionLimitFen
	}
	if w.PartnerLimitFen != nil {
		p.PartnerLimitFen = *w.PartnerLimitFen
	}
	if w.WeilidaiLimitFen != nil {
		p.WeilidaiLimitFen = *w.WeilidaiLimitFen
	}
	if w.AlertThresholdFen != nil {
		p.AlertThresholdFen = *w.AlertThresholdFen
	}
	if w.CardBoundSince != nil && *w.CardBoundSince != "" {
		s := *w.CardBoundSince
		if !parseDate(s) {
			return nil, derr("data.card_bound_since", reasonDate)
		}
		p.CardBoundSince = s
	}
	if w.SeriousDefaultElsewhereOn != nil && *w.SeriousDefaultElsewhereOn != "" {
		s := *w.SeriousDefaultElsewhereOn
		if !parseDate(s) {
			return nil, derr("data.serious_default_elsewhere_on", reasonDefaultOn)
		}
		p.SeriousDefaultElsewhereOn = s
	}
	if w.Timezone != "" {
		if err := checkText("data.timezone", w.Timezone, MaxIDBytes); err != nil {
			return nil, err
		}
		if !validZone(w.Timezone) {
			return nil, derr("data.timezone", reasonZone)
		}
	}
	return p, nil
}

type operatorIn struct {
	UserID    string  `json:"user_id"`
	Action    string  `json:"action"`
	QuotaFen  *int64  `json:"quota_fen"`
	Reason    string  `json:"reason"`
	Operator  string  `json:"operator"`
	ExpiresAt *string `json:"expires_at"`
}

// decodeOperator decodes a fenqi.operator.v1 event's data; at is the
// event's time, which a grant's expires_at must follow.
func decodeOperator(data []byte, subject string, at time.Time) (*Operator, *DecodeError) {
	var w operatorIn
	r := reader{buf: data, share: subject, prefix: "data.", fields: operatorFields}
	for r.next() {
		switch string(r.name) {
		case "user_id":
			r.readString(&w.UserID)
		case "action":
			r.readString(&w.Action)
		case "quota_fen":
			readPtr(&r, &w.QuotaFen)
		case "reason":
			r.readString(&w.Reason)
		case "operator":
			r.readString(&w.Operator)
		case "expires_at":
			readPtr(&r, &w.ExpiresAt)
		default:
			r.skip()
		}
	}
	if err := r.close(); err != nil {
		return nil, err
	}
	if err := checkUser(w.UserID, subject); err != nil {
		return nil, err
	}
	switch {
	case w.Action == "":
		return nil, derr("data.action", "required; "+reasonAction)
	case !ValidOperatorAction(w.Action):
		return nil, derr("data.action", reasonAction+", not "+short(w.Action))
	}
	if err := requireText("data.operator", w.Operator); err != nil {
		return nil, err
	}
	o := &Operator{UserID: w.UserID, Action: w.Action, Operator: w.Operator, Reason: w.Reason}
	if !OperatorGrants(w.Action) {
		switch {
		case w.QuotaFen != nil:
			return nil, derr("data.quota_fen", "must be absent for action "+w.Action)
		case w.ExpiresAt != nil:
			return nil, derr("data.expires_at", "must be absent for action "+w.Action)
		}
		if err := checkText("data.reason", w.Reason, MaxIDBytes); err != nil {
			return nil, err
		}
		return o, nil
	}
	switch {
	case w.QuotaFen == nil:
		return nil, derr("data.quota_fen", "required; "+reasonNonNeg)
	case *w.QuotaFen < 0 || *w.QuotaFen > MaxAmountFen:
		return nil, derr("data.quota_fen", reasonNonNeg)
	}
	o.QuotaFen = *w.QuotaFen
	if err := requireText("data.reason", w.Reason); err != nil {
		return nil, err
	}
	if w.ExpiresAt == nil || *w.ExpiresAt == "" {
		return nil, derr("data.expires_at", "required; "+reasonTime)
	}
	exp, err := parseTime(*w.ExpiresAt)
	if err != nil {
		return nil, derr("data.expires_at", err.Error())
	}
	if !exp.After(at) {
		return nil, derr("data.expires_at", "must be after the event's time")
	}
	o.ExpiresAt = exp
	return o, nil
}

// optionalAmount reports whether an optional non-negative amount is
// absent (nil) or within [0, MaxAmountFen].
func optionalAmount(n *int64) bool {
	return n == nil || 0 <= *n && *n <= MaxAmountFen
}

func checkUser(userID, subject string) *DecodeError {
	if userID == "" {
		return derr("data.user_id", reasonString)
	}
	if userID != subject {
		return derr("data.user_id", reasonUser)
	}
	return nil
}

// zones caches the time zone names known to be valid: time.LoadLocation
// reads and parses the zone data on every call.
var zones sync.Map // string -> struct{}

// validZone reports whether name is a time zone time.LoadLocation accepts,
// other than "Local" (the server's zone means nothing for a user) and "".
func validZone(name string) bool {
	if _, ok := zones.Load(name); ok {
		return true
	}
	if name == "" || name == "Local" {
		return false
	}
	if _, err := time.LoadLocation(name); err != nil {
		return false
	}
	zones.Store(name, struct{}{})
	return true
}
