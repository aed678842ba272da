// Package shadow compares a candidate ("shadow") policy with the live one:
// both decide on the same event or recompute, from the same state, and
// each decision id gets one Record saying whether the candidate makes the
// same decision, a different one, one the live policy does not make, or
// none where the live policy makes one. fenqid publishes the records of a
// shadow policy (fenqid -shadow-policy) to fenqi.shadow.decisions;
// fenqictl backtest makes them over recorded history; Build turns records
// into a Report, printed as a table or written as one HTML page.
//
// Decision ids do not depend on the policy (the rule and the event or
// schedule that caused it, see events.DecisionID), so the two policies'
// decisions on one trigger pair up by id.
package shadow

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
)

// DefaultTopic is where fenqid publishes shadow records unless configured.
const DefaultTopic = "fenqi.shadow.decisions"

// ContentType names a record's schema (its content-type header).
const ContentType = "application/vnd.fenqi.shadow.v1+json"

// HeaderDiff is the record header holding its Diff, for consumers that
// filter without parsing.
const HeaderDiff = "fenqi-shadow-diff"

// What the candidate does with a decision id, compared with the live policy.
const (
	Same    = "same"    // the same decision (type, rule, action, reason codes and, for a quota, the quota)
	Changed = "changed" // both decide, differently
	Added   = "added"   // only the candidate decides
	Removed = "removed" // only the live policy decides
)

// Record is one decision id as the live and the candidate policy decided
// it. Live and Shadow are the decisions (nil: that policy made none); the
// other fields repeat what identifies them, so that a record can be read
// without them.
type Record struct {
	ID                  string    `json:"id"`
	Diff                string    `json:"diff"`
	UserID              string    `json:"user_id"`
	CausationID         string    `json:"causation_id"`
	Type                string    `json:"type"`
	Rule                string    `json:"rule"`
	Time                time.Time `json:"time"`
	LivePolicyVersion   string    `json:"live_policy_version"`
	ShadowPolicyVersion string    `json:"shadow_policy_version"`

	Live   *events.Decision `json:"-"`
	Shadow *events.Decision `json:"-"`
}

// Pair pairs the live and the candidate decisions of one trigger by id:
// one Record per id, in the order the decisions come (live ones first,
// then those only the candidate makes).
func Pair(liveVersion, shadowVersion string, live, cand []events.Decision) []Record {
	if len(live) == 0 && len(cand) == 0 {
		return nil
	}
	out := make([]Record, 0, max(len(live), len(cand)))
	used := make([]bool, len(cand))
	for i := range live {
		l := &live[i]
		r := Record{LivePolicyVersion: liveVersion, ShadowPolicyVersion: shadowVersion, Live: l, Diff: Removed}
		for j := range cand {
			if !used[j] && cand[j].ID == l.ID {
				used[j] = true
				r.Shadow = &cand[j]
				r.Diff = Changed
				if Equal(*l, cand[j]) {
					r.Diff = Same
				}
				break
			}
		}
		out = append(out, r.fill())
	}
	for j := range cand {
		if !used[j] {
			r := Record{LivePolicyVersion: liveVersion, ShadowPolicyVersion: shadowVersion, Shadow: &cand[j], Diff: Added}
			out = append(out, r.fill())
		}
	}
	return out
}

// fill sets the identifying fields from the candidate's decision, or the
// live one's.
func (r Record) fill() Record {
	d := r.Shadow
	if d == nil {
		d = r.Live
	}
	r.ID, r.UserID, r.CausationID, r.Type, r.Rule, r.Time = d.ID, d.Subject, d.Data.CausationID, d.Type, d.Data.Rule, d.Time
	return r
}

// Equal reports whether two decisions of one id say the same to a
// notifier: type, rule, action, reason codes and, for a quota, the quota.
// The policy version and the rest of the detail (a factor's weight…) may
// differ.
func Equal(a, b events.Decision) bool {
	if a.Type != b.Type || a.Data.Rule != b.Data.Rule || a.Data.Action != b.Data.Action ||
		!slices.Equal(codes(a), codes(b)) {
		return false
	}
	if a.Type == events.TypeDecisionQuota {
		qa, erra := QuotaOf(a)
		qb, errb := QuotaOf(b)
		return erra == nil && errb == nil && qa.QuotaFen == qb.QuotaFen
	}
	return true
}

func codes(d events.Decision) []string {
	out := make([]string, len(d.Data.ReasonCodes))
	for i, rc := range d.Data.ReasonCodes {
		out[i] = rc.Code
	}
	return out
}

// Quota is what a quota decision's detail says, as the report reads it.
type Quota struct {
	QuotaFen         int64    `json:"quota_fen"`
	OldQuotaFen      int64    `json:"old_quota_fen"`
	Eligible         bool     `json:"eligible"`
	EligibilityCodes []string `json:"eligibility_codes"`
	Score            float64  `json:"score"`
	Tier             string   `json:"tier"`
	DecidedBy        string   `json:"decided_by"`
	Factors          []Factor `json:"factors"`
}

// Factor is one factor of a quota's breakdown (credit.Factor).
type Factor struct {
	Name         string  `json:"name"`
	Raw          float64 `json:"raw"`
	Unit         string  `json:"unit"`
	Normalised   float64 `json:"normalised"`
	Weight       float64 `json:"weight"`
	Contribution float64 `json:"contribution"`
}

// QuotaOf reads a quota decision's detail (a scoring.QuotaDetail, or the
// JSON of one as decoded from a record).
func QuotaOf(d events.Decision) (Quota, error) {
	var q Quota
	if d.Type != events.TypeDecisionQuota {
		return q, fmt.Errorf("shadow: decision %s is a %s, not a quota", d.ID, d.Type)
	}
	raw, ok := d.Data.Detail.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(d.Data.Detail)
		if err != nil {
			return q, fmt.Errorf("shadow: quota decision %s: %w", d.ID, err)
		}
		raw = b
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		return q, fmt.Errorf("shadow: quota decision %s: %w", d.ID, err)
	}
	return q, nil
}

// wire is a record's JSON: the decisions as their CloudEvents encoding.
type wire struct {
	Record
	Live   json.RawMessage `json:"live,omitempty"`
	Shadow json.RawMessage `json:"shadow,omitempty"`
}

// Marshal encodes a record as JSON, its decisions in their CloudEvents
// encoding (events.MarshalDecision) under "live" and "shadow".
func Marshal(r Record) ([]byte, error) {
	w := wire{Record: r}
	var err error
	if r.Live != nil {
		if w.Live, err = events.MarshalDecision(*r.Live); err != nil {
			return nil, fmt.Errorf("shadow: encode live decision %s: %w", r.ID, err)
		}
	}
	if r.Shadow != nil {
		if w.Shadow, err = events.MarshalDecision(*r.Shadow); err != nil {
			return nil, fmt.Errorf("shadow: encode shadow decision %s: %w", r.ID, err)
		}
	}
	return json.Marshal(w)
}

// Unmarshal decodes a record Marshal encoded.
func Unmarshal(b []byte) (Record, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Record{}, fmt.Errorf("shadow: decode record: %w", err)
	}
	r := w.Record
	switch r.Diff {
	case Same, Changed, Added, Removed:
	default:
		return Record{}, fmt.Errorf("shadow: record %s: unknown diff %q", r.ID, r.Diff)
	}
	for _, side := range []struct {
		raw json.RawMessage
		dst **events.Decision
	}{{w.Live, &r.Live}, {w.Shadow, &r.Shadow}} {
		if len(side.raw) == 0 {
			continue
		}
		d, err := events.DecodeDecision(side.raw)
		if err != nil {
			return Record{}, fmt.Errorf("shadow: record %s: %w", r.ID, err)
		}
		*side.dst = &d
	}
	if (r.Live == nil) != (r.Diff == Added) || (r.Shadow == nil) != (r.Diff == Removed) {
		return Record{}, fmt.Errorf("shadow: record %s: a %q record with live=%t shadow=%t", r.ID, r.Diff, r.Live != nil, r.Shadow != nil)
	}
	return r, nil
}

// Message is the record as fenqid publishes it on topic, keyed by user.
func Message(topic string, r Record) (kafka.Message, error) {
	v, err := Marshal(r)
	if err != nil {
		return kafka.Message{}, err
	}
	return kafka.Message{
		Topic: topic,
		Key:   []byte(r.UserID),
		Value: v,
		Headers: []kafka.Header{
			{Key: "content-type", Value: []byte(ContentType)},
			{Key: HeaderDiff, Value: []byte(r.Diff)},
		},
	}, nil
}

// Counts count records by diff, safe for concurrent use.
type Counts struct {
	Same, Changed, Added, Removed atomic.Int64
}

// Add counts one record of diff.
func (c *Counts) Add(diff string) {
	switch diff {
	case Same:
		c.Same.Add(1)
	case Changed:
		c.Changed.Add(1)
	case Added:
		c.Added.Add(1)
	case Removed:
		c.Removed.Add(1)
	}
}

// Map returns the counts by diff.
func (c *Counts) Map() map[string]int64 {
	return map[string]int64{Same: c.Same.Load(), Changed: c.Changed.Load(), Added: c.Added.Load(), Removed: c.Removed.Load()}
}

// Total is the sum of the counts.
func (c *Counts) Total() int64 {
	return c.Same.Load() + c.Changed.Load() + c.Added.Load() + c.Removed.Load()
}
