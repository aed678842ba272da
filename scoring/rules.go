package scoring

import (
	"fmt"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Actions a rule may ask of the notifier.
const (
	ActionSMSVerify = "SMS_VERIFY"
)

// Rule names, as they appear in decisions and metrics.
const (
	RuleNightLargePayment = "night_large_payment"
)

// Rules holds the thresholds of the risk rules (DOMAIN.md §6). The zero
// value is not useful: start from DefaultRules.
type Rules struct {
	PolicyVersion string
	// Night is the local-time window [NightFrom, NightTo) of "late at
	// night", as offsets from local midnight.
	NightFrom, NightTo time.Duration
	// LargeFen is the smallest "large" payment, in fen.
	LargeFen int64
}

// DefaultRules are DOMAIN.md §6's decisions: 00:00–05:59 local time, large
// from 2,000 yuan.
func DefaultRules() Rules {
	return Rules{
		PolicyVersion: "builtin-1",
		NightFrom:     0,
		NightTo:       6 * time.Hour,
		LargeFen:      200_000,
	}
}

// Validate names the first bad field.
func (r Rules) Validate() error {
	switch {
	case r.PolicyVersion == "":
		return fmt.Errorf("scoring: PolicyVersion is empty")
	case r.NightFrom < 0 || r.NightFrom >= 24*time.Hour || r.NightTo <= 0 || r.NightTo > 24*time.Hour:
		return fmt.Errorf("scoring: night window %v–%v must lie within a day", r.NightFrom, r.NightTo)
	case r.LargeFen <= 0:
		return fmt.Errorf("scoring: LargeFen must be > 0, got %d", r.LargeFen)
	}
	return nil
}

// Input is one event with the facts about its user that rules need.
type Input struct {
	Event *events.Event
	// Zone is the user's time zone (never nil).
	Zone *time.Location
	// NewCity and NewDevice come from the state before the event (see
	// state.Outcome).
	NewCity, NewDevice bool
}

// Evaluate returns the decisions the event triggers, possibly none.
func (r Rules) Evaluate(in Input) []events.Decision {
	var out []events.Decision
	if p := in.Event.Payment; p != nil {
		if d, ok := r.nightLargePayment(in, p); ok {
			out = append(out, d)
		}
	}
	return out
}

func (r Rules) inNight(local time.Time) bool {
	y, m, d := local.Date()
	sinceMidnight := local.Sub(time.Date(y, m, d, 0, 0, 0, 0, local.Location()))
	if r.NightFrom <= r.NightTo {
		return sinceMidnight >= r.NightFrom && sinceMidnight < r.NightTo
	}
	return sinceMidnight >= r.NightFrom || sinceMidnight < r.NightTo // a window across midnight
}

func (r Rules) nightLargePayment(in Input, p *events.Payment) (events.Decision, bool) {
	local := in.Event.Time.In(in.Zone)
	if p.AmountFen < r.LargeFen || !r.inNight(local) {
		return events.Decision{}, false
	}
	return r.alert(in.Event, RuleNightLargePayment, ActionSMSVerify, events.ReasonCode{
		Code:    "FENQI_RISK_NIGHT_LARGE",
		Message: fmt.Sprintf("a payment of %s at %s local time, late at night", yuan(p.AmountFen), local.Format("15:04")),
		Advice:  "confirm the payment with the SMS code sent to your phone",
	}, map[string]any{
		"amount_fen": p.AmountFen,
		"local_time": local.Format(time.RFC3339),
		"scene":      p.Scene,
	}), true
}

func (r Rules) alert(e *events.Event, rule, action string, code events.ReasonCode, detail any) events.Decision {
	return events.Decision{
		ID:      events.DecisionID(rule, e.ID),
		Type:    events.TypeDecisionAlert,
		Subject: e.UserID(),
		Time:    e.Time,
		Data: events.DecisionData{
			UserID:        e.UserID(),
			CausationID:   e.ID,
			Rule:          rule,
			Action:        action,
			ReasonCodes:   []events.ReasonCode{code},
			PolicyVersion: r.PolicyVersion,
			Detail:        detail,
		},
	}
}

// yuan formats fen as yuan with two decimals, without floats.
func yuan(fen int64) string {
	return fmt.Sprintf("%d.%02d yuan", fen/100, fen%100)
}
