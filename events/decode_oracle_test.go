package events

// The oracle of the differential tests (decode_diff_test.go) and the
// baseline of BenchmarkDecodeMix: the decoder written on encoding/json, as
// it was before the single-pass reader (jsonread.go), made as strict as
// Decode by issue 12. It shares the constants, fieldReasons and the types,
// and on purpose nothing else: every rule is implemented again here, in
// another way, so that a slip in either shows as a difference.
//
//   - Headers: names lower-cased (ASCII only) into a map.
//   - JSON: json.Unmarshal for the syntax and the values; a json.Decoder
//     token walk over the members for the rules json.Unmarshal does not
//     have: exact member names (strings.EqualFold finds the folds), no
//     repeats, every string valid Unicode (raw bytes checked with
//     utf8.Valid, unpaired surrogates found by counting U+FFFD), and the
//     JSON type of each field found by unmarshalling it alone (the field
//     types come from the wire structs by reflection).
//   - Times: a regular expression, range checks, then time.Parse.
//   - Text: utf8.ValidString and unicode.IsControl.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// oracleEnvelopeIn is envelopeIn as it was.
type oracleEnvelopeIn struct {
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

// oracleJSONError turns a syntax error of json.Unmarshal into a *DecodeError.
func oracleJSONError(err error) *DecodeError {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return derr("value", fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: ")))
	}
	return derr("value", strings.TrimPrefix(err.Error(), "json: "))
}

// oracleShort quotes s for a reason, cut to a readable length.
func oracleShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// oracleText checks an id or name: its length, UTF-8, control characters.
func oracleText(field, s string, limit int) *DecodeError {
	switch {
	case len(s) > limit:
		return derr(field, fmt.Sprintf("must be at most %d bytes long, not %d", limit, len(s)))
	case !utf8.ValidString(s):
		return derr(field, reasonUTF8)
	case strings.ContainsFunc(s, unicode.IsControl):
		return derr(field, reasonControl)
	}
	return nil
}

func oracleRequireText(field, s string) *DecodeError {
	if s == "" {
		return derr(field, reasonString)
	}
	return oracleText(field, s, 128)
}

// oracleMediaType checks a content type and reports whether its
// type/subtype is one of want.
func oracleMediaType(field, ct string, want ...string) (ok bool, err *DecodeError) {
	switch {
	case len(ct) > 128:
		return false, derr(field, fmt.Sprintf("must be at most 128 bytes long, not %d", len(ct)))
	case !utf8.ValidString(ct):
		return false, derr(field, reasonUTF8)
	case strings.ContainsFunc(ct, func(c rune) bool { return unicode.IsControl(c) && c != '\t' }):
		return false, derr(field, reasonControl)
	}
	parts := strings.Split(ct, ";")
	for _, p := range parts[1:] {
		name, value, _ := strings.Cut(p, "=")
		if name = strings.ToLower(strings.Trim(name, " \t")); name != "charset" {
			continue
		}
		value = strings.Trim(value, " \t")
		if unq := strings.TrimSuffix(strings.TrimPrefix(value, `"`), `"`); len(unq) == len(value)-2 {
			value = unq
		}
		if strings.ToLower(value) != "utf-8" || !oracleIsASCII(value) {
			return false, derr(field, "charset must be utf-8, not "+oracleShort(value))
		}
	}
	essence := strings.Trim(parts[0], " \t")
	for _, w := range want {
		if oracleIsASCII(essence) && strings.EqualFold(essence, w) {
			return true, nil
		}
	}
	return false, nil
}

func oracleIsASCII(s string) bool {
	for _, c := range []byte(s) {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// oracleCheckAttributes checks the attributes every CloudEvent must carry.
func (env *oracleEnvelopeIn) oracleCheckAttributes() *DecodeError {
	switch {
	case env.SpecVersion == "":
		return derr("specversion", "required")
	case env.SpecVersion != SpecVersion:
		return derr("specversion", `must be "1.0", not `+oracleShort(env.SpecVersion))
	case env.ID == "":
		return derr("id", reasonAttr)
	}
	if err := oracleText("id", env.ID, 128); err != nil {
		return err
	}
	switch {
	case env.Type == "":
		return derr("type", reasonAttr)
	case env.Source == "":
		return derr("source", reasonAttr)
	}
	if err := oracleText("source", env.Source, 128); err != nil {
		return err
	}
	if env.Subject == "" {
		return derr("subject", reasonAttr)
	}
	if err := oracleText("subject", env.Subject, 128); err != nil {
		return err
	}
	if env.Time == "" {
		return derr("time", "required")
	}
	if env.DataContentType != "" {
		ok, err := oracleMediaType("datacontenttype", env.DataContentType, ContentTypeJSON)
		if err != nil {
			return err
		}
		if !ok {
			return derr("datacontenttype", `must be "application/json", not `+oracleShort(env.DataContentType))
		}
	}
	return nil
}

// oracleRFC3339 is the date-time of RFC 3339 §5.6 as fenqi takes it.
var oracleRFC3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$`)

// oracleParseTime parses an RFC 3339 timestamp and returns it in UTC; it must lie
// within [Earliest, Latest].
func oracleParseTime(s string) (time.Time, error) {
	m := oracleRFC3339.FindStringSubmatch(s)
	if m == nil || m[1] > "23" || m[2] > "59" || m[3] > "59" || m[6] > "23" || m[7] > "59" {
		return time.Time{}, errors.New(reasonTime)
	}
	t, err := time.Parse(time.RFC3339Nano, s) // the calendar
	if err != nil {
		return time.Time{}, errors.New(reasonTime)
	}
	if t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, fmt.Errorf("must lie between %s and %s", Earliest.Format(time.DateOnly), Latest.Format(time.DateOnly))
	}
	return t.UTC(), nil
}

// oracleCheckDataObject checks that the data is present and is a JSON object.
func oracleCheckDataObject(data json.RawMessage) *DecodeError {
	data = bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(data) == 0 || bytes.HasPrefix(data, []byte("null")):
		return derr("data", "required")
	case data[0] != '{':
		return derr("data", reasonObject)
	}
	return nil
}

// oracleAttrs are the attributes of the ce_ headers, by lower-case name.
var oracleAttrs = map[string]string{
	"ce_specversion": "specversion", "ce_id": "id", "ce_type": "type", "ce_source": "source",
	"ce_time": "time", "ce_subject": "subject", "ce_datacontenttype": "datacontenttype",
	"content-type": "content-type",
}

// oracleLowerASCII lower-cases the ASCII letters of s only.
func oracleLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Decode decodes and validates one input record: key is the Kafka message
// key, headers its headers, value its value. The record is a CloudEvent in
// binary mode when a ce_specversion header is present, otherwise in
// structured mode. Every refusal is a *DecodeError. The returned event's
// times are in UTC.
func (d Decoder) oracleDecode(key []byte, headers []Header, value []byte) (Event, error) {
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(value) > maxBytes {
		return Event{}, derr("value", fmt.Sprintf("is %d bytes, more than the limit of %d", len(value), maxBytes))
	}

	got := map[string]Header{} // by lower-case name
	for _, h := range headers {
		name := oracleLowerASCII(h.Key)
		attr, ok := oracleAttrs[name]
		if !ok {
			continue
		}
		if first, ok := got[name]; ok {
			reason := "header " + name + " repeated"
			if first.Key != h.Key {
				reason += fmt.Sprintf(" (as %q and %q: header names are compared ignoring case)", first.Key, h.Key)
			}
			return Event{}, derr(attr, reason)
		}
		got[name] = h
	}
	contentType := string(got["content-type"].Value)
	var env oracleEnvelopeIn
	_, binary := got["ce_specversion"]
	if binary {
		for _, f := range []struct {
			dst  *string
			name string
		}{
			{&env.SpecVersion, "ce_specversion"}, {&env.ID, "ce_id"}, {&env.Type, "ce_type"}, {&env.Source, "ce_source"},
			{&env.Time, "ce_time"}, {&env.Subject, "ce_subject"}, {&env.DataContentType, "ce_datacontenttype"},
		} {
			*f.dst = string(got[f.name].Value)
		}
		if contentType != "" {
			ok, err := oracleMediaType("content-type", contentType, ContentTypeJSON)
			if err != nil {
				return Event{}, err
			}
			if !ok {
				return Event{}, derr("content-type", `must be "application/json" in binary mode, not `+oracleShort(contentType))
			}
		}
		env.Data = value
	} else {
		if contentType != "" {
			ok, err := oracleMediaType("content-type", contentType, ContentTypeCloudEvents, ContentTypeJSON)
			if err != nil {
				return Event{}, err
			}
			if !ok {
				return Event{}, derr("content-type", `must be "application/cloudevents+json" (or a ce_specversion header for binary mode), not `+oracleShort(contentType))
			}
		}
		if len(bytes.TrimSpace(value)) == 0 {
			return Event{}, derr("value", "empty")
		}
		if err := oracleUnmarshal(value, "", &env); err != nil {
			return Event{}, err
		}
	}

	if err := env.oracleCheckAttributes(); err != nil {
		return Event{}, err
	}
	if !binary {
		for _, f := range []struct {
			attr string
			v    string
		}{{"id", env.ID}, {"type", env.Type}, {"source", env.Source}, {"time", env.Time}, {"subject", env.Subject}} {
			if h, ok := got["ce_"+f.attr]; ok && string(h.Value) != f.v {
				return Event{}, derr(f.attr, fmt.Sprintf("header ce_%s %s contradicts the event's %s %s", f.attr, oracleShort(string(h.Value)), f.attr, oracleShort(f.v)))
			}
		}
		if h, ok := got["ce_datacontenttype"]; ok {
			ok, err := oracleMediaType("datacontenttype", string(h.Value), ContentTypeJSON)
			if err != nil {
				return Event{}, err
			}
			if !ok {
				return Event{}, derr("datacontenttype", `header ce_datacontenttype must be "application/json", not `+oracleShort(string(h.Value)))
			}
		}
	}
	if !IsInputType(env.Type) {
		return Event{}, derr("type", "unknown event type "+oracleShort(env.Type))
	}
	if len(key) > 0 && string(key) != env.Subject {
		return Event{}, derr("key", "must equal the subject when not empty")
	}
	t, err := oracleParseTime(env.Time)
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
	if err := oracleCheckDataObject(env.Data); err != nil {
		return Event{}, err
	}

	e := Event{ID: env.ID, Type: env.Type, Source: env.Source, Subject: env.Subject, Time: t}
	var dataErr *DecodeError
	switch env.Type {
	case TypePayment:
		e.Payment, dataErr = oracleDecodePayment(env.Data, env.Subject)
	case TypeLogin:
		e.Login, dataErr = oracleDecodeLogin(env.Data, env.Subject)
	case TypeRepaymentDue:
		e.Due, dataErr = oracleDecodeDue(env.Data, env.Subject)
	case TypeRepaymentPaid:
		e.Paid, dataErr = oracleDecodePaid(env.Data, env.Subject)
	case TypeProfile:
		e.Profile, dataErr = oracleDecodeProfile(env.Data, env.Subject)
	case TypeOperator:
		e.Op, dataErr = oracleDecodeOperator(env.Data, env.Subject, t)
	}
	if dataErr != nil {
		return Event{}, dataErr
	}
	return e, nil
}

// oracleUnmarshal is json.Unmarshal(text, v) (v a pointer to a wire
// struct) with the rules it lacks: syntax errors first, then the first
// fault of a member (oracleMembers), then the values.
func oracleUnmarshal(text []byte, prefix string, v any) *DecodeError {
	err := json.Unmarshal(text, v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return oracleJSONError(err)
	}
	if fault := oracleMembers(text, prefix, oracleFieldTypes(reflect.TypeOf(v).Elem())); fault != nil {
		return fault
	}
	if err != nil { // a type error oracleMembers did not see
		return derr("value", "oracle: "+err.Error())
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// oracleFieldTypes maps the JSON names of a wire struct to their types.
func oracleFieldTypes(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = t.Field(i).Type
	}
	return m
}

// oracleMembers returns the first fault of the members of the JSON object
// text, in order: for each member, a name that is not valid Unicode, that
// differs from a field's name only by case folding, or that is repeated;
// then a value of the wrong JSON type for its field; then a string in the
// value that is not valid Unicode. The envelope refuses data_base64 and
// does not look into data.
func oracleMembers(text []byte, prefix string, fields map[string]reflect.Type) *DecodeError {
	container := "data"
	if prefix == "" {
		container = "value"
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	tok, err := dec.Token()
	switch d, isDelim := tok.(json.Delim); {
	case err != nil || tok == nil: // null: no members
		return nil
	case !isDelim || d != '{':
		return derr(container, reasonObject)
	}
	seen := map[string]bool{}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return derr("value", "oracle: "+err.Error())
		}
		name := tok.(string)
		rawName := bytes.TrimLeft(text[start:dec.InputOffset()], " \t\r\n,")
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return derr("value", "oracle: "+err.Error())
		}
		if !oracleValidString(rawName, name) {
			return derr(container, "a member name is not "+validUnicode)
		}
		typ, known := fields[name]
		if !known {
			for f := range fields {
				if strings.EqualFold(name, f) {
					return derr(prefix+f, fmt.Sprintf("member name %s differs from %q: member names are matched exactly", oracleShort(name), f))
				}
			}
		}
		if seen[name] {
			if known {
				return derr(prefix+name, "repeated: a member may appear once")
			}
			return derr(container, fmt.Sprintf("member %s repeated: a member may appear once", oracleShort(name)))
		}
		seen[name] = true
		switch {
		case prefix == "" && name == "data_base64":
			return derr("data", reasonDataBase64)
		case typ == rawMessageType:
			continue // the data, read on its own
		case known:
			if err := json.Unmarshal(value, reflect.New(typ).Interface()); err != nil {
				reason, ok := fieldReasons[name]
				if !ok {
					reason = reasonAttr // the envelope's attributes
				}
				return derr(prefix+name, reason)
			}
		}
		if !oracleValidStrings(value) {
			if known {
				return derr(prefix+name, reasonUTF8)
			}
			return derr(container, fmt.Sprintf("member %s holds a string that is not %s", oracleShort(name), validUnicode))
		}
	}
	return nil
}

// oracleValidStrings reports whether every string of the JSON value raw
// (member names too) is valid Unicode.
func oracleValidStrings(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			panic(fmt.Sprintf("oracle: %q: %v", raw, err))
		}
		if s, ok := tok.(string); ok && !oracleValidString(bytes.TrimLeft(raw[prev:dec.InputOffset()], " \t\r\n,:"), s) {
			return false
		}
		prev = dec.InputOffset()
	}
}

// oracleFFFDEscape matches an escaped backslash, or an escaped U+FFFD.
var oracleFFFDEscape = regexp.MustCompile(`\\\\|\\u[fF]{3}[dD]`)

// oracleValidString reports whether the JSON string token raw, which
// encoding/json decoded to s, is valid Unicode: raw is valid UTF-8, and s
// holds no more U+FFFD than raw writes (encoding/json writes U+FFFD for
// an unpaired surrogate).
func oracleValidString(raw []byte, s string) bool {
	if !utf8.Valid(raw) {
		return false
	}
	written := bytes.Count(raw, []byte("\uFFFD"))
	for _, m := range oracleFFFDEscape.FindAll(raw, -1) {
		if len(m) == len(`\uFFFD`) {
			written++
		}
	}
	return strings.Count(s, "\uFFFD") == written
}

func oracleDecodePayment(data []byte, subject string) (*Payment, *DecodeError) {
	w := Payment{Installments: installmentsAbsent}
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckUser(w.UserID, subject); err != nil {
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
	if err := oracleRequireText("data.merchant_id", w.MerchantID); err != nil {
		return nil, err
	}
	switch {
	case w.Installments == installmentsAbsent:
		return nil, derr("data.installments", "required; "+reasonInstall)
	case !ValidInstallments(w.Installments):
		return nil, derr("data.installments", reasonInstall)
	}
	if err := oracleRequireText("data.device_id", w.DeviceID); err != nil {
		return nil, err
	}
	if err := oracleRequireText("data.city", w.City); err != nil {
		return nil, err
	}
	if !w.Auth.Valid() {
		return nil, derr("data.auth", reasonAuth)
	}
	return &w, nil
}

func oracleDecodeLogin(data []byte, subject string) (*Login, *DecodeError) {
	var w Login
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckUser(w.UserID, subject); err != nil {
		return nil, err
	}
	if err := oracleRequireText("data.device_id", w.DeviceID); err != nil {
		return nil, err
	}
	if err := oracleRequireText("data.city", w.City); err != nil {
		return nil, err
	}
	switch {
	case w.IP == "":
		return nil, derr("data.ip", reasonIP)
	case !w.Auth.Valid():
		return nil, derr("data.auth", reasonAuth)
	case strings.Contains(w.IP, "%"):
		return nil, derr("data.ip", reasonIP)
	}
	if _, err := netip.ParseAddr(w.IP); err != nil {
		return nil, derr("data.ip", reasonIP)
	}
	return &w, nil
}

type oracleDueIn struct {
	UserID    string `json:"user_id"`
	BillID    string `json:"bill_id"`
	AmountFen int64  `json:"amount_fen"`
	DueAt     string `json:"due_at"`
	Pool      string `json:"pool"`
}

// oraclePools are the quota pools a bill may name.
var oraclePools = []string{PoolPayScore, PoolIndependent, PoolSharedWeilidai, PoolSpecialTemporary}

func oracleDecodeDue(data []byte, subject string) (*RepaymentDue, *DecodeError) {
	var w oracleDueIn
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckBill(w.UserID, subject, w.BillID, w.AmountFen); err != nil {
		return nil, err
	}
	if w.DueAt == "" {
		return nil, derr("data.due_at", "required; "+reasonTime)
	}
	due, err := oracleParseTime(w.DueAt)
	if err != nil {
		return nil, derr("data.due_at", err.Error())
	}
	if w.Pool != "" && !slices.Contains(oraclePools, w.Pool) {
		return nil, derr("data.pool", reasonPool+", not "+oracleShort(w.Pool))
	}
	return &RepaymentDue{UserID: w.UserID, BillID: w.BillID, AmountFen: w.AmountFen, DueAt: due, Pool: w.Pool}, nil
}

func oracleDecodePaid(data []byte, subject string) (*RepaymentPaid, *DecodeError) {
	var w RepaymentPaid
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckBill(w.UserID, subject, w.BillID, w.AmountFen); err != nil {
		return nil, err
	}
	return &w, nil
}

// oracleCheckBill checks what a repayment event's data shares: the user, the
// bill id and the amount.
func oracleCheckBill(userID, subject, billID string, amountFen int64) *DecodeError {
	if err := oracleCheckUser(userID, subject); err != nil {
		return err
	}
	if err := oracleRequireText("data.bill_id", billID); err != nil {
		return err
	}
	if amountFen <= 0 || amountFen > MaxAmountFen {
		return derr("data.amount_fen", reasonAmount)
	}
	return nil
}

type oracleProfileIn struct {
	UserID                    string  `json:"user_id"`
	PayScore                  *int    `json:"pay_score"`
	RealNameVerified          *bool   `json:"real_name_verified"`
	IdentityComplete          *bool   `json:"identity_complete"`
	CardBoundSince            *string `json:"card_bound_since"`
	CardBankBlacklisted       *bool   `json:"card_bank_blacklisted"`
	WealthBalanceFen          *int64  `json:"wealth_balance_fen"`
	JudicialDefaulter         *bool   `json:"judicial_defaulter"`
	LinkedAccountNegative     *bool   `json:"linked_account_negative"`
	TransactionLimitFen       *int64  `json:"transaction_limit_fen"`
	Timezone                  string  `json:"timezone"`
	PartnerLimitFen           *int64  `json:"partner_limit_fen"`
	WeilidaiLimitFen          *int64  `json:"weilidai_limit_fen"`
	AlertThresholdFen         *int64  `json:"alert_threshold_fen"`
	SeriousDefaultElsewhereOn *string `json:"serious_default_elsewhere_on"`
}

// oracleDate is a date of the calendar, checked by time.Parse.
var oracleDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

func oracleDecodeProfile(data []byte, subject string) (*Profile, *DecodeError) {
	var w oracleProfileIn
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckUser(w.UserID, subject); err != nil {
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
	}
	for _, f := range []struct {
		name string
		n    *int64
	}{
		{"partner_limit_fen", w.PartnerLimitFen},
		{"weilidai_limit_fen", w.WeilidaiLimitFen},
		{"alert_threshold_fen", w.AlertThresholdFen},
	} {
		if f.n != nil && (*f.n < 0 || *f.n > MaxAmountFen) {
			return nil, derr("data."+f.name, reasonNonNeg)
		}
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
	for dst, n := range map[*int64]*int64{&p.PartnerLimitFen: w.PartnerLimitFen, &p.WeilidaiLimitFen: w.WeilidaiLimitFen,
		&p.AlertThresholdFen: w.AlertThresholdFen} {
		if n != nil {
			*dst = *n
		}
	}
	if w.CardBoundSince != nil && *w.CardBoundSince != "" {
		s := *w.CardBoundSince
		if !oracleDate.MatchString(s) {
			return nil, derr("data.card_bound_since", reasonDate)
		}
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return nil, derr("data.card_bound_since", reasonDate)
		}
		p.CardBoundSince = s
	}
	if w.SeriousDefaultElsewhereOn != nil && *w.SeriousDefaultElsewhereOn != "" {
		s := *w.SeriousDefaultElsewhereOn
		if _, err := time.Parse(time.DateOnly, s); err != nil || !oracleDate.MatchString(s) {
			return nil, derr("data.serious_default_elsewhere_on", reasonDefaultOn)
		}
		p.SeriousDefaultElsewhereOn = s
	}
	if w.Timezone != "" {
		if err := oracleText("data.timezone", w.Timezone, 128); err != nil {
			return nil, err
		}
		if !oracleValidZone(w.Timezone) {
			return nil, derr("data.timezone", reasonZone)
		}
	}
	return p, nil
}

type oracleOperatorIn struct {
	UserID    string  `json:"user_id"`
	Action    string  `json:"action"`
	QuotaFen  *int64  `json:"quota_fen"`
	Reason    string  `json:"reason"`
	Operator  string  `json:"operator"`
	ExpiresAt *string `json:"expires_at"`
}

// oracleActions are the actions of an operator event; the first two of
// each kind set a grant.
var (
	oracleActions      = []string{"set_override", "clear_override", "quota_check", "set_special", "clear_special"}
	oracleGrantActions = []string{"set_override", "set_special"}
)

func oracleDecodeOperator(data []byte, subject string, at time.Time) (*Operator, *DecodeError) {
	var w oracleOperatorIn
	if err := oracleUnmarshal(data, "data.", &w); err != nil {
		return nil, err
	}
	if err := oracleCheckUser(w.UserID, subject); err != nil {
		return nil, err
	}
	if w.Action == "" {
		return nil, derr("data.action", "required; "+reasonAction)
	}
	if !slices.Contains(oracleActions, w.Action) {
		return nil, derr("data.action", reasonAction+", not "+oracleShort(w.Action))
	}
	if err := oracleRequireText("data.operator", w.Operator); err != nil {
		return nil, err
	}
	o := &Operator{UserID: w.UserID, Action: w.Action, Operator: w.Operator, Reason: w.Reason}
	if !slices.Contains(oracleGrantActions, w.Action) {
		if w.QuotaFen != nil {
			return nil, derr("data.quota_fen", "must be absent for action "+w.Action)
		}
		if w.ExpiresAt != nil {
			return nil, derr("data.expires_at", "must be absent for action "+w.Action)
		}
		if err := oracleText("data.reason", w.Reason, 128); err != nil {
			return nil, err
		}
		return o, nil
	}
	if w.QuotaFen == nil {
		return nil, derr("data.quota_fen", "required; "+reasonNonNeg)
	}
	if *w.QuotaFen < 0 || *w.QuotaFen > MaxAmountFen {
		return nil, derr("data.quota_fen", reasonNonNeg)
	}
	o.QuotaFen = *w.QuotaFen
	if err := oracleRequireText("data.reason", w.Reason); err != nil {
		return nil, err
	}
	if w.ExpiresAt == nil || *w.ExpiresAt == "" {
		return nil, derr("data.expires_at", "required; "+reasonTime)
	}
	exp, err := oracleParseTime(*w.ExpiresAt)
	if err != nil {
		return nil, derr("data.expires_at", err.Error())
	}
	if exp.Compare(at) <= 0 {
		return nil, derr("data.expires_at", "must be after the event's time")
	}
	o.ExpiresAt = exp
	return o, nil
}

func oracleCheckUser(userID, subject string) *DecodeError {
	if userID == "" {
		return derr("data.user_id", reasonString)
	}
	if userID != subject {
		return derr("data.user_id", reasonUser)
	}
	return nil
}

// oracleZones caches the time zone names known to be valid: time.LoadLocation
// reads and parses the zone data on every call.
var oracleZones sync.Map // string -> struct{}

// oracleValidZone reports whether name is a time zone time.LoadLocation accepts,
// other than "Local" (the server's zone means nothing for a user) and "".
func oracleValidZone(name string) bool {
	if _, ok := oracleZones.Load(name); ok {
		return true
	}
	if name == "" || name == "Local" {
		return false
	}
	if _, err := time.LoadLocation(name); err != nil {
		return false
	}
	oracleZones.Store(name, struct{}{})
	return true
}
