package engine

import (
	"fmt"
	"time"

	"github.com/fenqi/fenqi/events"
)

// QuotaCheckWindow is how far back quota checks count (DOMAIN.md §3).
const QuotaCheckWindow = 30 * 24 * time.Hour

// operator applies an operator's change (fenqi.operator.v1) at the event's
// time ts: what the admin API once wrote to Redis directly, now applied
// like any event, so that a replay or a rebuild restores it. Setting or
// clearing an override makes the user's recompute due at once
// (Outcome.RecomputeNow). A text longer than MaxString, or an unknown
// action, refuses the event.
func (a *applier) operator(op *events.Operator, ts int64, o *Outcome) error {
	switch op.Action {
	case events.OperatorSetOverride:
		o.RecomputeNow = true
		return SetOverride(a.s, &Override{QuotaFen: op.QuotaFen, Reason: op.Reason, Operator: op.Operator, ExpiresAt: op.ExpiresAt.Unix()})
	case events.OperatorClearOverride:
		o.RecomputeNow = true
		return SetOverride(a.s, nil)
	case events.OperatorSetSpecial:
		return SetSpecial(a.s, &Special{QuotaFen: op.QuotaFen, Reason: op.Reason, Operator: op.Operator, ExpiresAt: op.ExpiresAt.Unix()})
	case events.OperatorClearSpecial:
		return SetSpecial(a.s, nil)
	case events.OperatorQuotaCheck:
		RecordQuotaCheck(a.s, time.Unix(ts, 0), QuotaCheckWindow)
		return nil
	}
	return fmt.Errorf("engine: unknown operator action %q", op.Action)
}
