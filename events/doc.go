// Package events is fenqi's wire contract: the CloudEvents that flow in from
// the upstream payment systems and the decisions that flow out.
//
// In: five input topics (by default fenqi.payments, fenqi.logins,
// fenqi.repayments, fenqi.profiles, and fenqi.operator, which fenqid's admin
// API writes), keyed by user id, carry CloudEvents 1.0
// with JSON data in structured mode (the whole event is the record value,
// content-type application/cloudevents+json) or binary mode (attributes in
// ce_<attr> headers, the value is the data). The event types are
// fenqi.payment.v1, fenqi.login.v1, fenqi.repayment.due.v1,
// fenqi.repayment.paid.v1, fenqi.profile.v1 and fenqi.operator.v1; their
// data are Payment, Login, RepaymentDue, RepaymentPaid, Profile and Operator. Decoder.Decode turns one
// record into a validated Event or a *DecodeError, whose Field and Reason go
// into the headers of the dead letter on fenqi.dlq.
//
// Out: decisions (alert, quota, frozen, unfrozen, overdue) are published on
// fenqi.decisions as structured CloudEvents written by MarshalDecision, keyed
// by user id, with a stable id from DecisionID so that consumers can drop
// repeats. DecodeDecision reads them back (tests, fenqictl tail).
//
// Money is an integer number of fen; every timestamp is RFC 3339 and decoded
// times are in UTC. docs/events.md is the full contract, with examples and
// every validation rule.
package events
