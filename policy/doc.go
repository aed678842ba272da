// Package policy holds a credit product as data: one YAML file per product
// with its eligibility gates, quality-user standards, quota model (factor
// weights and full-marks points, score → quota curve, tier caps, guardrail,
// quota-check penalty), recompute cycle, fee table, scene rules, anomaly
// rules and reason-code catalogue (DOMAIN.md §1–§8).
//
// In: a YAML document (a file, bytes, or one of the presets compiled into
// the binary: wechat — the default —, huabei, baitiao). Out: a validated
// *Policy, read-only and safe to share between goroutines, that the scoring
// core (scoring/credit) and the risk rules read.
//
// Errors cite the file, the line and the field:
//
//	wechat.yaml:30: quota.weights: weights must sum to 1.0 (got 0.95)
//
// Unknown fields, values of the wrong type and every failed check are
// reported together (errors.Join of *FieldError), not just the first.
//
// Conventions: money is integer fen (int64, 1 yuan = 100 fen); fees are
// integer basis points per period (100 bp = 1%); weights, shares and
// coefficients of variation are float64 fractions; durations are Go
// duration strings ("10m", "24h"). The risk section, the guardrail, the
// quota-check penalty, the recompute cycle and the timezone have defaults
// (DefaultRisk and the wechat figures) and may be left out of a file; every
// other field is required.
package policy
