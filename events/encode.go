package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
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

// IsDecisionType reports whether t is one of the TypeDecision* constants.
func IsDecisionType(t string) bool {
	switch t {
	case TypeDecisionAlert, TypeDecisionQuota, TypeDecisionFrozen, TypeDecisionUnfrozen, TypeDecisionOverdue:
		return true
	}
	return false
}

// MarshalDecision returns d as a structured-mode CloudEvents 1.0 JSON
// document with source "fenqi" and data d.Data. It is an error when
// d.Type is not a decision type, d.ID or d.Subject is empty, d.Time is
// zero, or d.Data.Detail does not marshal to a JSON object (a nil Detail
// is left out). A nil ReasonCodes is written as [].
func MarshalDecision(d Decision) ([]byte, error) {
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
			// a typed nil: leave it out
		case len(raw) > 0 && raw[0] == '{':
			w.Detail = raw
		default:
			return nil, fmt.Errorf("events: marshal decision %s: detail must be a JSON object, got %.20s", d.ID, raw)
		}
	}
	// Splice rather than nest: encoding/json would validate and compact a
	// nested json.RawMessage again, which for a quota decision's large
	// detail costs as much as marshalling it.
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

// envelopeHead is the envelope's attributes: envelopeOut without its data
// (MarshalDecision splices the data in).
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
