// Package credit is the pure credit model: eligibility, quota, guardrails
// and pricing (DOMAIN.md §1, §3, §4, §5).
//
// In: a validated *policy.Policy and plain data — Facts about one user for
// Evaluate (filled by the state layer from its rolling counters and the
// profile snapshot), an amount, a period count and a PromoContext for
// Quote, a scene, an amount and a pay score for CheckScene, an
// OfferRequest (the purchase, the user's eligibility and available quota)
// for MakeOffer. Out: a Result (the quota decision with every gate,
// factor, cap, guardrail and override that produced it, ready to be the
// Detail of a quota decision and to be shown by `fenqictl explain`), a
// QuoteResult (the fee line by line, the repayment schedule and its true
// annual rate, or the pay-later bill and its due date), a SceneCheck, an
// Offer (the quote, or the refusal with every reason code).
//
// Nothing here does I/O, reads the clock or keeps state: Facts.Now is the
// evaluation time, so the same inputs always give the same outputs, and
// every function is safe for concurrent use.
//
// Money is integer fen (int64). Quotas are rounded down to the policy's
// unit (100 yuan); fees are rounded half up to the fen. Floats appear only
// for scores, weights, shares and rates.
//
// The quota, step by step (Evaluate):
//
//  1. Eligibility: every gate is checked and each failure listed with its
//     reason code; any failure means quota 0.
//  2. Quality user: eligible and every quality standard met.
//  3. Factors: pay score, assets, spending stability, social graph and
//     device security, each normalised to [0, 1] and weighted; the
//     quota-check penalty subtracts up to check_penalty.max.
//  4. Score → quota along the policy's curve, rounded down to round_fen.
//  5. Tier cap: the standard cap for everyone but quality users.
//  6. Guardrail: a recompute moves a positive previous quota by at most
//     max_change_share either way; a first quota, a quota after a 0, and a
//     drop to 0 for ineligibility are not held. The tier cap wins over the
//     guardrail's floor.
//  7. Override: an active operator override replaces the quota (clamped
//     to the product's highest quota) until it expires.
package credit
