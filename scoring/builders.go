package scoring

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/scoring/credit"
)

// The decision builders below are pure: the state layer decides when a
// reminder, a freeze or a quota is due and calls them; they only shape the
// decision. Ids depend only on the arguments named on each builder, so a
// timer that fires twice, or a recompute that is retried, publishes the
// same id and downstream drops the repeat.

// Overdue is the reminder that a bill is daysOverdue days past its due time
// (fenqi.decision.overdue.v1, action REMIND, reason FENQI_OVERDUE_NOW). Its
// id is stable on (rule, user, bill, daysOverdue): one reminder per bill and
// day. CausationID is "bill:<billID>"; Time is dueAt + daysOverdue × 24h,
// the moment the reminder fell due. Detail: bill_id, days_overdue,
// amount_fen, due_at (RFC 3339, UTC) and, when freezeAt is not zero (the
// policy freezes overdue bills), freeze_at: when the freeze will come
// unless the bill is settled first (DOMAIN.md §6: each reminder says so).
func (r *Rules) Overdue(userID, billID string, amountFen int64, dueAt time.Time, daysOverdue int, freezeAt time.Time) events.Decision {
	d := events.Decision{
		ID:      events.DecisionID(RuleOverdueReminder, userID, billID, strconv.Itoa(daysOverdue)),
		Type:    events.TypeDecisionOverdue,
		Subject: userID,
		Time:    dueAt.Add(time.Duration(daysOverdue) * 24 * time.Hour),
		Data: events.DecisionData{
			UserID:        userID,
			CausationID:   "bill:" + billID,
			Rule:          RuleOverdueReminder,
			Action:        ActionRemind,
			ReasonCodes:   []events.ReasonCode{r.overdueCode},
			PolicyVersion: r.version,
			Detail: map[string]any{
				"bill_id":      billID,
				"days_overdue": daysOverdue,
				"amount_fen":   amountFen,
				"due_at":       dueAt.UTC().Format(time.RFC3339),
			},
		},
	}
	if !freezeAt.IsZero() {
		d.Data.Detail.(map[string]any)["freeze_at"] = freezeAt.UTC().Format(time.RFC3339)
	}
	return d
}

// Frozen suspends the user's installments (fenqi.decision.frozen.v1, action
// INSTALLMENTS_SUSPENDED) for a cause: CauseOverdue (rule overdue_freeze,
// reason FENQI_OVERDUE_NOW or the policy's code) or CauseJudicialDefaulter
// (rule judicial_freeze, reason FENQI_JUDICIAL_DEFAULTER or the policy's
// code). Another cause gets rule "freeze" and no reason code. at is when
// the freeze took effect (the timer's due time, the profile's event time);
// it must not be zero. detail is copied (never modified) and gets "cause";
// it must not hold IP addresses. The id is stable on (rule, user,
// causationID) and differs from the Unfrozen of the same arguments.
//
// The builder does not look at the rule's switch: the caller checks
// OverdueFreeze (Evaluate checks judicial_freeze itself).
func (r *Rules) Frozen(userID, causationID, cause string, at time.Time, detail map[string]any) events.Decision {
	ru := r.freezeRule(cause)
	codes := []events.ReasonCode{}
	if ru.code.Code != "" {
		codes = append(codes, ru.code)
	}
	return r.freeze(events.TypeDecisionFrozen, ActionInstallmentsSuspended, ru.name, userID, causationID, cause, at, codes, detail)
}

// Unfrozen resumes the user's installments after a freeze of that cause
// (fenqi.decision.unfrozen.v1, action INSTALLMENTS_RESUMED; the rule is the
// freeze's), with a reason code that says why: FENQI_OVERDUE_SETTLED,
// FENQI_JUDICIAL_CLEARED (none for another cause). causationID is what
// lifted it (the repayment event's id, the profile that left the list); at
// is when. The id is stable on (rule, user, causationID). detail is copied
// and gets "cause".
func (r *Rules) Unfrozen(userID, causationID, cause string, at time.Time, detail map[string]any) events.Decision {
	ru := r.freezeRule(cause)
	codes := []events.ReasonCode{}
	switch cause {
	case CauseOverdue:
		codes = append(codes, r.code(CodeOverdueSettled))
	case CauseJudicialDefaulter:
		codes = append(codes, r.code(CodeJudicialCleared))
	}
	return r.freeze(events.TypeDecisionUnfrozen, ActionInstallmentsResumed, ru.name, userID, causationID, cause, at, codes, detail)
}

// code is the policy's catalogue entry of a code, else the built-in one.
func (r *Rules) code(c string) events.ReasonCode {
	if rc, ok := r.catalogue[c]; ok {
		return rc
	}
	if rc, ok := Builtin(c); ok {
		return rc
	}
	return events.ReasonCode{Code: c, Message: c}
}

func (r *Rules) freezeRule(cause string) rule {
	switch cause {
	case CauseOverdue:
		return r.overdueFreeze
	case CauseJudicialDefaulter:
		return r.judicialFreeze
	}
	return rule{name: "freeze"}
}

func (r *Rules) freeze(typ, action, ruleName, userID, causationID, cause string, at time.Time,
	codes []events.ReasonCode, detail map[string]any) events.Decision {
	d := make(map[string]any, len(detail)+1)
	maps.Copy(d, detail)
	d["cause"] = cause
	return events.Decision{
		ID:      events.DecisionID(ruleName, typ, userID, causationID),
		Type:    typ,
		Subject: userID,
		Time:    at,
		Data: events.DecisionData{
			UserID:        userID,
			CausationID:   causationID,
			Rule:          ruleName,
			Action:        action,
			ReasonCodes:   codes,
			PolicyVersion: r.version,
			Detail:        d,
		},
	}
}

// withoutReasons drops the reason codes from a result: a quota decision
// carries them once, in its data's reason_codes.
func withoutReasons(res credit.Result) credit.Result {
	res.Reasons = nil
	return res
}

// QuotaDetail is the Detail of a quota decision: the whole credit.Result
// but its reason codes, which the decision carries once in its data
// (product, model and policy versions, evaluation time, every gate, the
// quality standards, every factor's raw value,
// normalised value, weight and contribution, the score, the caps, the
// guardrail, the override, the quota, tier and deciding step), plus the
// previous quota, the failing gates' codes and when the next recompute is
// due. It marshals to one flat JSON object.
type QuotaDetail struct {
	credit.Result
	OldQuotaFen int64 `json:"old_quota_fen"`
	// EligibilityCodes are the codes of the failing eligibility gates, each
	// once, in gate order; empty when eligible.
	EligibilityCodes []string  `json:"eligibility_codes"`
	NextDueAt        time.Time `json:"next_due_at"`
	// Pools are each quota pool's limit, outstanding principal and
	// available quota under the new quota (DOMAIN.md §3, §5; WithPools).
	Pools []PoolView `json:"pools,omitempty"`
}

// PoolView is one quota pool as a decision or the API shows it.
type PoolView struct {
	Pool           string `json:"pool"`
	LimitFen       int64  `json:"limit_fen"`
	OutstandingFen int64  `json:"outstanding_fen"`
	AvailableFen   int64  `json:"available_fen"`
}

// WithPools returns the quota decision d with its detail's pools set.
func WithPools(d events.Decision, pools []PoolView) events.Decision {
	if det, ok := d.Data.Detail.(QuotaDetail); ok {
		det.Pools = pools
		d.Data.Detail = det
	}
	return d
}

// Quota publishes a recomputed quota (fenqi.decision.quota.v1, action
// QUOTA_UPDATED, rule quota): res.QuotaFen replaces oldQuotaFen, with
// res.Reasons as the reason codes and a QuotaDetail. Time is
// res.EvaluatedAt. The decision's PolicyVersion is the rules' policy; the
// detail keeps res's own versions (the same when both come from one policy). causationID is "recompute:<user>:<cycle>" for a
// scheduled recompute, or the id of the event that triggered it; the id is
// stable on (rule, user, causationID).
func (r *Rules) Quota(userID, causationID string, oldQuotaFen int64, res credit.Result, nextDue time.Time) events.Decision {
	codes := make([]events.ReasonCode, len(res.Reasons))
	copy(codes, res.Reasons)
	elig := []string{}
	for _, g := range res.Gates {
		if !g.Passed && g.Code != "" && !slices.Contains(elig, g.Code) {
			elig = append(elig, g.Code)
		}
	}
	return events.Decision{
		ID:      events.DecisionID(RuleQuota, userID, causationID),
		Type:    events.TypeDecisionQuota,
		Subject: userID,
		Time:    res.EvaluatedAt,
		Data: events.DecisionData{
			UserID:        userID,
			CausationID:   causationID,
			Rule:          RuleQuota,
			Action:        ActionQuotaUpdated,
			ReasonCodes:   codes,
			PolicyVersion: r.version,
			Detail: QuotaDetail{
				Result:           withoutReasons(res),
				OldQuotaFen:      oldQuotaFen,
				EligibilityCodes: elig,
				NextDueAt:        nextDue,
			},
		},
	}
}
