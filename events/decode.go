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
)

// MaxAmountFen is the largest amount accepted: 2^53-1 fen (about 90 billion
// yuan), the largest integer that every JSON parser and Redis's Lua (whose
// numbers are doubles) keep exactly.
const MaxAmountFen = 1<<53 - 1

// Defaults of a zero Decoder.
const (
	DefaultMaxBytes  = 64 << 10
	DefaultMaxFuture = 5 * time.Minute
)

// DecodeError says why an input record was refused. Field names the part of
// the record at fault:
//
//   - "value": the record value as a whole (too large, not JSON, not an object);
//   - "key": the Kafka message key (must equal the subject);
//   - "content-type": the content-type header;
//   - a CloudEvents attribute name: "specversion", "id", "type", "source",
//     "subject", "time", "datacontenttype" (the same names in binary mode,
//     where they come from the ce_<attr> headers);
//   - "data": the event data as a whole (missing, not an object);
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

// IsInputType reports whether t is one of the input event types.
func IsInputType(t string) bool {
	switch t {
	case TypePayment, TypeLogin, TypeRepaymentDue, TypeRepaymentPaid, TypeProfile:
		return true
	}
	return false
}

// ValidInstallments reports whether n is an accepted number of installment
// periods (0 = pay now).
func ValidInstallments(n int) bool {
	switch n {
	case 0, 3, 6, 12, 24:
		return true
	}
	return false
}

// Reasons, shared by the checks and by the JSON type errors of the same field.
const (
	reasonString   = "must be a non-empty string"
	reasonAmount   = "must be a positive integer of at most 9007199254740991 (2^53-1) fen"
	reasonNonNeg   = "must be a non-negative integer of at most 9007199254740991 (2^53-1) fen"
	reasonInstall  = "must be one of 0, 3, 6, 12, 24"
	reasonScene    = "must be one of ecommerce, local_life, offline_retail, education, medical, transfer, red_packet, bill_pay, donation, wealth, other"
	reasonAuth     = "must be one of password, face, fingerprint, none"
	reasonCurrency = `must be "CNY"`
	reasonTime     = "must be an RFC 3339 timestamp"
	reasonDate     = "must be a date YYYY-MM-DD, or empty or absent when no card is bound"
	reasonIP       = "must be an IPv4 or IPv6 address"
	reasonBool     = "must be true or false"
	reasonScore    = "must be an integer from 300 to 850"
	reasonZone     = "must be an IANA time zone name"
	reasonObject   = "must be a JSON object"
	reasonUser     = "must equal the subject"
	reasonAttr     = "must be a non-empty string"
)

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

// checkAttributes checks the attributes every CloudEvent must carry.
func (env *envelopeIn) checkAttributes() *DecodeError {
	switch {
	case env.SpecVersion == "":
		return derr("specversion", "required")
	case env.SpecVersion != SpecVersion:
		return derr("specversion", `must be "1.0", not `+short(env.SpecVersion))
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
	case env.DataContentType != "" && !isMediaType(env.DataContentType, ContentTypeJSON):
		return derr("datacontenttype", `must be "application/json", not `+short(env.DataContentType))
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

// parseTime parses an RFC 3339 timestamp and returns it in UTC; it must lie
// within [Earliest, Latest].
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New(reasonTime)
	}
	if t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, fmt.Errorf("must lie between %s and %s", Earliest.Format(time.DateOnly), Latest.Format(time.DateOnly))
	}
	return t.UTC(), nil
}

// checkDataObject checks that the data is present and is a JSON object.
func checkDataObject(data, dataBase64 json.RawMessage) *DecodeError {
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

// isMediaType reports whether the content type ct, parameters ignored,
// is want (case-insensitive).
func isMediaType(ct, want string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), want)
}

// Header names of the CloudEvents Kafka protocol binding.
const (
	headerContentType = "content-type"
	headerSpecVersion = "ce_specversion"
)

// Decode decodes and validates one input record: key is the Kafka message
// key, headers its headers, value its value. The record is a CloudEvent in
// binary mode when a ce_specversion header is present, otherwise in
// structured mode. Every refusal is a *DecodeError. The returned event's
// times are in UTC.
func (d Decoder) Decode(key []byte, headers []Header, value []byte) (Event, error) {
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(value) > maxBytes {
		return Event{}, derr("value", fmt.Sprintf("is %d bytes, more than the limit of %d", len(value), maxBytes))
	}

	var env envelopeIn
	binary := false
	var contentType []byte // the last content-type header
	for i := range headers {
		switch k := headers[i].Key; {
		case strings.EqualFold(k, headerSpecVersion):
			binary = true
		case strings.EqualFold(k, headerContentType):
			contentType = headers[i].Value
		}
	}
	if binary {
		if err := env.fromHeaders(headers); err != nil {
			return Event{}, err
		}
		if len(contentType) > 0 && !isMediaType(string(contentType), ContentTypeJSON) {
			return Event{}, derr("content-type", `must be "application/json" in binary mode, not `+short(string(contentType)))
		}
		env.Data = value
	} else {
		if len(contentType) > 0 && !isMediaType(string(contentType), ContentTypeCloudEvents) && !isMediaType(string(contentType), ContentTypeJSON) {
			return Event{}, derr("content-type", `must be "application/cloudevents+json" (or a ce_specversion header for binary mode), not `+short(string(contentType)))
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
	}
	if dataErr != nil {
		return Event{}, dataErr
	}
	return e, nil
}

// read fills the attributes and data from a structured-mode value, as
// json.Unmarshal(value, env) would, and returns the error it would give.
// The data is kept raw (checked, not decoded: its type may come after it)
// and decoded by decodePayment etc. once the attributes have passed.
func (env *envelopeIn) read(value []byte) *DecodeError {
	r := reader{buf: value}
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
			env.DataBase64 = r.raw()
		default:
			r.skip()
		}
	}
	return r.close("")
}

// fromHeaders fills the attributes from the ce_<attr> headers of a
// binary-mode record. A repeated attribute header is an error.
func (env *envelopeIn) fromHeaders(headers []Header) *DecodeError {
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
		*dst = intern(headers[i].Value)
	}
	return nil
}

// The wire forms of the data. Strings and amounts whose zero value is
// invalid are plain fields (absent = zero = refused). Where zero is valid,
// absence must show: a payment's installments start at a sentinel (any
// value other than 0, 3, 6, 12, 24 is refused anyway, so a sentinel sent
// on purpose is still refused), and the profile, a rare event, uses
// pointers.

const installmentsAbsent = math.MinInt

func decodePayment(data []byte, subject string) (*Payment, *DecodeError) {
	w := Payment{Installments: installmentsAbsent}
	r := reader{buf: data, share: subject}
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
	if err := r.close("data."); err != nil {
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

func decodeLogin(data []byte, subject string) (*Login, *DecodeError) {
	var w Login
	r := reader{buf: data, share: subject}
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
	if err := r.close("data."); err != nil {
		return nil, err
	}
	if err := checkUser(w.UserID, subject); err != nil {
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

type dueIn struct {
	UserID    string `json:"user_id"`
	BillID    string `json:"bill_id"`
	AmountFen int64  `json:"amount_fen"`
	DueAt     string `json:"due_at"`
}

func decodeDue(data []byte, subject string) (*RepaymentDue, *DecodeError) {
	var w dueIn
	r := reader{buf: data, share: subject}
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
		default:
			r.skip()
		}
	}
	if err := r.close("data."); err != nil {
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
	return &RepaymentDue{UserID: w.UserID, BillID: w.BillID, AmountFen: w.AmountFen, DueAt: due}, nil
}

func decodePaid(data []byte, subject string) (*RepaymentPaid, *DecodeError) {
	var w RepaymentPaid
	r := reader{buf: data, share: subject}
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
	if err := r.close("data."); err != nil {
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
	switch {
	case billID == "":
		return derr("data.bill_id", reasonString)
	case amountFen <= 0 || amountFen > MaxAmountFen:
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
}

func decodeProfile(data []byte, subject string) (*Profile, *DecodeError) {
	var w profileIn
	r := reader{buf: data, share: subject}
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
		default:
			r.skip()
		}
	}
	if err := r.close("data."); err != nil {
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
	if w.Timezone != "" && !validZone(w.Timezone) {
		return nil, derr("data.timezone", reasonZone)
	}
	return p, nil
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
