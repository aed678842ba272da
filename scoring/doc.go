// Package scoring is fenqi's pure decision core.
//
// In: one event and the facts about its user that the state layer found
// (Input). Out: the decisions to publish ([]events.Decision). It does no
// I/O and imports no Kafka or Redis types, so every rule is tested without
// a server, and the same input always yields the same decisions with the
// same ids (events.DecisionID of the rule and the causing event's id).
package scoring
