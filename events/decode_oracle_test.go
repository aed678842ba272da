package events

// The decoder as it was before the single-pass reader (jsonread.go): the
// oracle of the differential tests (decode_diff_test.go) and the baseline
// of BenchmarkDecodeMix. It is the old decode.go with its functions renamed
// (oracle*); it shares the constants, fieldReasons and the types.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
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

// oracleJSONError turns an error of json.Unmarshal into a *DecodeError. prefix is
// "" for the envelope and "data." for the data.
func oracleJSONError(err error, prefix string) *DecodeError {
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

// oracleShort quotes s for a reason, cut to a readable length.
func oracleShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
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
	case env.Type == "":
		return derr("type", reasonAttr)
	case env.Source == "":
		return derr("source", reasonAttr)
	case env.Subject == "":
		return derr("subject", reasonAttr)
	case env.Time == "":
		return derr("time", "required")
	case env.DataContentType != "" && !oracleIsMediaType(env.DataContentType, ContentTypeJSON):
		return derr("datacontenttype", `must be "application/json", not `+oracleShort(env.DataContentType))
	}
	return nil
}

// oracleParseTime parses an RFC 3339 timestamp and returns it in UTC; it must lie
// within [Earliest, Latest].
func oracleParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New(reasonTime)
	}
	if t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, fmt.Errorf("must lie between %s and %s", Earliest.Format(time.DateOnly), Latest.Format(time.DateOnly))
	}
	return t.UTC(), nil
}

// oracleCheckDataObject checks that the data is present and is a JSON object.
func oracleCheckDataObject(data, dataBase64 json.RawMessage) *DecodeError {
	data = bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(data) == 0 && len(dataBase64) > 0:
		return derr("data", "data_base64 is not accepted: data must be a JSON object")
	case len(data) == 0 || bytes.HasPrefix(data, []byte("null")):
		return derr("data", "required")
	case data[0] != '{':
		return derr("data", reasonObject)
	}
	return nil
}

// oracleIsMediaType reports whether the content type ct, parameters ignored,
// is want (case-insensitive).
func oracleIsMediaType(ct, want string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), want)
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

	var env oracleEnvelopeIn
	binary := false
	contentType := ""
	for i := range headers {
		switch k := headers[i].Key; {
		case strings.EqualFold(k, headerSpecVersion):
			binary = true
		case strings.EqualFold(k, headerContentType):
			contentType = string(headers[i].Value)
		}
	}
	if binary {
		if err := env.oracleFromHeaders(headers); err != nil {
			return Event{}, err
		}
		if contentType != "" && !oracleIsMediaType(contentType, ContentTypeJSON) {
			return Event{}, derr("content-type", `must be "application/json" in binary mode, not `+oracleShort(contentType))
		}
		env.Data = value
	} else {
		if contentType != "" && !oracleIsMediaType(contentType, ContentTypeCloudEvents) && !oracleIsMediaType(contentType, ContentTypeJSON) {
			return Event{}, derr("content-type", `must be "application/cloudevents+json" (or a ce_specversion header for binary mode), not `+oracleShort(contentType))
		}
		if len(bytes.TrimSpace(value)) == 0 {
			return Event{}, derr("value", "empty")
		}
		if err := json.Unmarshal(value, &env); err != nil {
			return Event{}, oracleJSONError(err, "")
		}
	}

	if err := env.oracleCheckAttributes(); err != nil {
		return Event{}, err
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
	if err := oracleCheckDataObject(env.Data, env.DataBase64); err != nil {
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
	}
	if dataErr != nil {
		return Event{}, dataErr
	}
	return e, nil
}

// oracleFromHeaders fills the attributes from the ce_<attr> headers of a
// binary-mode record. A repeated attribute header is an error.
func (env *oracleEnvelopeIn) oracleFromHeaders(headers []Header) *DecodeError {
	var seen uint8
	for i := range headers {
		k := headers[i].Key
		if len(k) < 3 || !strings.EqualFold(k[:3], "ce_") {
			continue
		}
		var dst *string
		var bit uint8
		switch attr := k[3:]; {
		case strings.EqualFold(attr, "specversion"):
			dst, bit = &env.SpecVersion, 1
		case strings.EqualFold(attr, "id"):
			dst, bit = &env.ID, 2
		case strings.EqualFold(attr, "type"):
			dst, bit = &env.Type, 4
		case strings.EqualFold(attr, "source"):
			dst, bit = &env.Source, 8
		case strings.EqualFold(attr, "time"):
			dst, bit = &env.Time, 16
		case strings.EqualFold(attr, "subject"):
			dst, bit = &env.Subject, 32
		default:
			continue // other attributes and extensions are ignored
		}
		if seen&bit != 0 {
			return derr(strings.ToLower(k[3:]), "header "+strings.ToLower(k)+" repeated")
		}
		seen |= bit
		*dst = string(headers[i].Value)
	}
	return nil
}

// The wire forms of the data. Strings and amounts whose zero value is
// invalid are plain fields (absent = zero = refused). Where zero is valid,
// absence must show: a payment's installments start at a sentinel (any
// value other than 0, 3, 6, 12, 24 is refused anyway, so a sentinel sent
// on purpose is still refused), and the profile, a rare event, uses
// pointers.

func oracleDecodePayment(data []byte, subject string) (*Payment, *DecodeError) {
	w := Payment{Installments: installmentsAbsent}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, oracleJSONError(err, "data.")
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
	case w.MerchantID == "":
		return nil, derr("data.merchant_id", reasonString)
	case w.Installments == installmentsAbsent:
		return nil, derr("data.installments", "required; "+reasonInstall)
	case !ValidInstallments(w.Installments):
		return nil, derr("data.installments", reasonInstall)
	case w.DeviceID == "":
		return nil, derr("data.device_id", reasonString)
	case w.City == "":
		return nil, derr("data.city", reasonString)
	case !w.Auth.Valid():
		return nil, derr("data.auth", reasonAuth)
	}
	return &w, nil
}

func oracleDecodeLogin(data []byte, subject string) (*Login, *DecodeError) {
	var w Login
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, oracleJSONError(err, "data.")
	}
	if err := oracleCheckUser(w.UserID, subject); err != nil {
		return nil, err
	}
	switch {
	case w.DeviceID == "":
		return nil, derr("data.device_id", reasonString)
	case w.City == "":
		return nil, derr("data.city", reasonString)
	case w.IP == "":
		return nil, derr("data.ip", reasonIP)
	case !w.Auth.Valid():
		return nil, derr("data.auth", reasonAuth)
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
}

func oracleDecodeDue(data []byte, subject string) (*RepaymentDue, *DecodeError) {
	var w oracleDueIn
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, oracleJSONError(err, "data.")
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
	return &RepaymentDue{UserID: w.UserID, BillID: w.BillID, AmountFen: w.AmountFen, DueAt: due}, nil
}

func oracleDecodePaid(data []byte, subject string) (*RepaymentPaid, *DecodeError) {
	var w RepaymentPaid
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, oracleJSONError(err, "data.")
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
	switch {
	case billID == "":
		return derr("data.bill_id", reasonString)
	case amountFen <= 0 || amountFen > MaxAmountFen:
		return derr("data.amount_fen", reasonAmount)
	}
	return nil
}

type oracleProfileIn struct {
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
}

func oracleDecodeProfile(data []byte, subject string) (*Profile, *DecodeError) {
	var w oracleProfileIn
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, oracleJSONError(err, "data.")
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
	if w.CardBoundSince != nil && *w.CardBoundSince != "" {
		s := *w.CardBoundSince
		if len(s) != len(time.DateOnly) {
			return nil, derr("data.card_bound_since", reasonDate)
		}
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return nil, derr("data.card_bound_since", reasonDate)
		}
		p.CardBoundSince = s
	}
	if w.Timezone != "" && !oracleValidZone(w.Timezone) {
		return nil, derr("data.timezone", reasonZone)
	}
	return p, nil
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
