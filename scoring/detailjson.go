package scoring

import (
	"math"
	"strconv"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/scoring/credit"
)

// AppendJSON appends d to b as the JSON object json.Marshal writes for it —
// the same keys in the same order, the same omitempty rules, the same
// number, string and time forms — without reflection, so that
// events.MarshalDecision (d is an events.JSONAppender) publishes a quota
// decision cheaply. It follows the struct tags of QuotaDetail,
// credit.Result and the types they hold; a field added to any of them must
// be added here too, and the tests fail until it is.
//
// Where json.Marshal fails instead — a NaN or infinite float, a time whose
// year is outside [0, 9999] or whose offset is a day or more — AppendJSON,
// which cannot fail, writes 0 for the float and the time in RFC 3339 as
// time.Time.Format gives it. credit.Evaluate produces neither.
func (d QuotaDetail) AppendJSON(b []byte) []byte {
	r := &d.Result
	b = append(b, `{"product":`...)
	b = events.AppendJSONString(b, r.Product)
	b = append(b, `,"policy_version":`...)
	b = events.AppendJSONString(b, r.PolicyVersion)
	b = append(b, `,"model_version":`...)
	b = events.AppendJSONString(b, r.ModelVersion)
	b = append(b, `,"evaluated_at":`...)
	b = appendTime(b, r.EvaluatedAt)
	b = append(b, `,"eligible":`...)
	b = strconv.AppendBool(b, r.Eligible)
	b = append(b, `,"gates":`...)
	b = appendList(b, r.Gates, appendCheck)
	if len(r.Reasons) > 0 { // omitempty
		b = append(b, `,"reason_codes":`...)
		b = appendList(b, r.Reasons, func(b []byte, rc *events.ReasonCode) []byte { return rc.AppendJSON(b) })
	}
	b = append(b, `,"quality_user":`...)
	b = strconv.AppendBool(b, r.QualityUser)
	b = append(b, `,"quality":`...)
	b = appendList(b, r.Quality, appendCheck)
	b = append(b, `,"factors":`...)
	b = appendList(b, r.Factors, appendFactor)
	b = append(b, `,"score":`...)
	b = appendFloat(b, r.Score)
	b = append(b, `,"raw_quota_fen":`...)
	b = strconv.AppendInt(b, r.RawQuotaFen, 10)
	b = append(b, `,"tier_cap_fen":`...)
	b = strconv.AppendInt(b, r.TierCapFen, 10)
	b = append(b, `,"guardrail":`...)
	b = appendGuardrail(b, &r.Guardrail)
	if r.Override != nil { // omitempty
		b = append(b, `,"override":`...)
		b = appendOverride(b, r.Override)
	}
	b = append(b, `,"quota_fen":`...)
	b = strconv.AppendInt(b, r.QuotaFen, 10)
	b = append(b, `,"tier":`...)
	b = events.AppendJSONString(b, r.Tier)
	b = append(b, `,"decided_by":`...)
	b = events.AppendJSONString(b, r.DecidedBy)

	b = append(b, `,"old_quota_fen":`...)
	b = strconv.AppendInt(b, d.OldQuotaFen, 10)
	b = append(b, `,"eligibility_codes":`...)
	b = appendList(b, d.EligibilityCodes, func(b []byte, c *string) []byte { return events.AppendJSONString(b, *c) })
	b = append(b, `,"next_due_at":`...)
	b = appendTime(b, d.NextDueAt)
	if len(d.Pools) > 0 { // omitempty
		b = append(b, `,"pools":`...)
		b = appendList(b, d.Pools, func(b []byte, p *PoolView) []byte {
			b = append(b, `{"pool":`...)
			b = events.AppendJSONString(b, p.Pool)
			b = append(b, `,"limit_fen":`...)
			b = strconv.AppendInt(b, p.LimitFen, 10)
			b = append(b, `,"outstanding_fen":`...)
			b = strconv.AppendInt(b, p.OutstandingFen, 10)
			b = append(b, `,"available_fen":`...)
			b = strconv.AppendInt(b, p.AvailableFen, 10)
			return append(b, '}')
		})
	}
	return append(b, '}')
}

// appendList appends xs as a JSON array, each element with each; nil is
// null, as json.Marshal writes a nil slice.
func appendList[T any](b []byte, xs []T, each func([]byte, *T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, &xs[i])
	}
	return append(b, ']')
}

// appendCheck appends a gate or a quality standard.
func appendCheck(b []byte, c *credit.Check) []byte {
	b = append(b, `{"name":`...)
	b = events.AppendJSONString(b, c.Name)
	b = append(b, `,"passed":`...)
	b = strconv.AppendBool(b, c.Passed)
	if c.Code != "" { // omitempty
		b = append(b, `,"code":`...)
		b = events.AppendJSONString(b, c.Code)
	}
	b = append(b, `,"detail":`...)
	b = events.AppendJSONString(b, c.Detail)
	return append(b, '}')
}

// appendFactor appends a factor.
func appendFactor(b []byte, f *credit.Factor) []byte {
	b = append(b, `{"name":`...)
	b = events.AppendJSONString(b, f.Name)
	b = append(b, `,"raw":`...)
	b = appendFloat(b, f.Raw)
	b = append(b, `,"unit":`...)
	b = events.AppendJSONString(b, f.Unit)
	b = append(b, `,"normalised":`...)
	b = appendFloat(b, f.Normalised)
	b = append(b, `,"weight":`...)
	b = appendFloat(b, f.Weight)
	b = append(b, `,"contribution":`...)
	b = appendFloat(b, f.Contribution)
	if f.Note != "" { // omitempty
		b = append(b, `,"note":`...)
		b = events.AppendJSONString(b, f.Note)
	}
	return append(b, '}')
}

func appendGuardrail(b []byte, g *credit.GuardrailResult) []byte {
	b = append(b, `{"applied":`...)
	b = strconv.AppendBool(b, g.Applied)
	b = append(b, `,"previous_fen":`...)
	b = strconv.AppendInt(b, g.PreviousFen, 10)
	if g.MinFen != 0 { // omitempty
		b = append(b, `,"min_fen":`...)
		b = strconv.AppendInt(b, g.MinFen, 10)
	}
	if g.MaxFen != 0 { // omitempty
		b = append(b, `,"max_fen":`...)
		b = strconv.AppendInt(b, g.MaxFen, 10)
	}
	b = append(b, `,"note":`...)
	b = events.AppendJSONString(b, g.Note)
	return append(b, '}')
}

// appendOverride appends o, its embedded credit.Override's fields first.
func appendOverride(b []byte, o *credit.OverrideResult) []byte {
	b = append(b, `{"quota_fen":`...)
	b = strconv.AppendInt(b, o.QuotaFen, 10)
	b = append(b, `,"reason":`...)
	b = events.AppendJSONString(b, o.Reason)
	if o.Operator != "" { // omitempty
		b = append(b, `,"operator":`...)
		b = events.AppendJSONString(b, o.Operator)
	}
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, o.ExpiresAt)
	b = append(b, `,"status":`...)
	b = events.AppendJSONString(b, o.Status)
	if o.Clamped { // omitempty
		b = append(b, `,"clamped":true`...)
	}
	return append(b, '}')
}

// appendFloat appends f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form (e-7, e+21) only below
// 1e-6 or from 1e21 in magnitude. NaN and ±Inf, which json.Marshal
// refuses, are written as 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	if out, ok := appendShortDecimal(b, f); ok {
		return out
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// strconv writes e-07 where encoding/json writes e-7.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// pow10 are the scales appendShortDecimal tries.
var pow10 = [...]float64{1, 10, 100, 1000, 10_000}

// appendShortDecimal writes f when it is a decimal of at most 4 places
// below 1e9 in magnitude (an integer, a weight such as 0.35, a score
// such as 0.57), as strconv's shortest form writes it, without strconv's
// general algorithm, which costs several times more: n/10^k with the
// fewest places k that reads back as f. At that size only one decimal of k
// places reads back as f, so it is the shortest one (ok false: f is not
// such a decimal, or is -0).
func appendShortDecimal(b []byte, f float64) ([]byte, bool) {
	abs := math.Abs(f)
	if abs >= 1e9 || f == 0 && math.Signbit(f) {
		return b, false
	}
	for k, scale := range pow10 {
		n := math.Round(abs * scale)
		if n/scale != abs {
			continue
		}
		if f < 0 {
			b = append(b, '-')
		}
		var buf [16]byte
		digits := strconv.AppendInt(buf[:0], int64(n), 10) // below 1e13
		switch point := len(digits) - k; {
		case k == 0:
			b = append(b, digits...)
		case point > 0: // 12.5
			b = append(b, digits[:point]...)
			b = append(b, '.')
			b = append(b, digits[point:]...)
		default: // 0.05
			b = append(b, "0.000"[:2-point]...)
			b = append(b, digits...)
		}
		return b, true
	}
	return b, false
}

// appendTime appends t quoted as time.Time.MarshalJSON writes it: RFC 3339
// with nanoseconds (trailing zeros dropped) in t's own location. Where
// MarshalJSON fails (see AppendJSON), the same layout is written anyway.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	if out, err := t.AppendText(b); err == nil {
		b = out
	} else {
		b = t.AppendFormat(b, time.RFC3339Nano)
	}
	return append(b, '"')
}
