// Package scoring is fenqi's pure decision core.
//
// In: a validated *policy.Policy (NewRules; DefaultRules is the wechat
// preset), then per event the event and the facts about its user that the
// state layer found (Input). Out: the decisions to publish
// ([]events.Decision). Rules.Evaluate applies the risk rules of DOMAIN.md
// §5 and §6 to payments and logins (alerts and refusals) and freezes a
// judgement defaulter's installments on a profile; Rules.Late says whether
// an event came too late to be judged. The builders Overdue, Frozen,
// Unfrozen and Quota shape the decisions the state layer's timers and quota
// recomputes publish (the quota itself comes from scoring/credit).
//
// It does no I/O, reads no clock and imports no Kafka or Redis types, so
// every rule is tested without a server, and the same input always yields
// the same decisions with the same ids (events.DecisionID of the rule and
// the causing event's id, or of the builder's identifying arguments).
// Every decision carries the policy's version.
package scoring
