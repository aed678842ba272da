package scoring

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// Actions a decision asks of the notifier. The anomaly rules take theirs
// from the policy (risk.rules.<rule>.action: one of the first four); the
// decision builders' actions are fixed.
const (
	ActionSMSVerify      = policy.ActionSMSVerify
	ActionFaceVerify     = policy.ActionFaceVerify
	ActionDocumentVerify = policy.ActionDocumentVerify
	ActionRefuse         = policy.ActionRefuse
	ActionNotifyUser     = policy.ActionNotifyUser

	ActionRemind                = "REMIND"                 // Overdue
	ActionInstallmentsSuspended = "INSTALLMENTS_SUSPENDED" // Frozen
	ActionInstallmentsResumed   = "INSTALLMENTS_RESUMED"   // Unfrozen
	ActionQuotaUpdated          = "QUOTA_UPDATED"          // Quota
)

// Rule names, as they appear in decisions (DecisionData.Rule), in decision
// ids and in metrics.
const (
	// Alerts and refusals of Evaluate, on payments and logins.
	RuleOtherCityLogin     = "other_city_login"
	RuleNightLargePayment  = "night_large_payment"
	RuleOtherCityThenLarge = "other_city_then_large_payment"
	RuleNewDeviceLarge     = "new_device_large_payment"
	RuleVelocity           = "velocity"
	RuleSceneLimit         = "scene_limit"
	RuleTransactionLimit   = "transaction_limit"
	RuleSecondVerification = "second_verification"
	RuleCreditRefusal      = "credit_refusal"
	RuleAlertThreshold     = "alert_threshold"

	// Freezes (Frozen, Unfrozen; Evaluate on a judicial profile).
	RuleOverdueFreeze  = "overdue_freeze"
	RuleJudicialFreeze = "judicial_freeze"

	// Timer-driven and credit decisions.
	RuleOverdueReminder = "overdue_reminder"
	RuleQuota           = "quota"
)

// Causes of a freeze (Frozen, Unfrozen).
const (
	CauseOverdue           = "overdue"
	CauseJudicialDefaulter = "judicial_defaulter"
)

// MaxRecentPayments is the most payment times the state layer keeps for
// Input.RecentPayments (state keeps 15). A velocity rule needing more
// (velocity_count − 1 earlier payments) could never fire, so NewRules
// refuses it.
const MaxRecentPayments = 15

// Rules applies one policy's risk rules (DOMAIN.md §5, §6) and builds the
// decisions the state layer's timers and quota recomputes publish. Build it
// with NewRules (or DefaultRules); the zero value is not usable. A *Rules is
// immutable and safe for concurrent use; every method is pure: the same
// arguments always give the same decisions with the same ids.
type Rules struct {
	version string
	zone    *time.Location // the policy's zone, for an Input without one
	risk    policy.Risk    // thresholds and windows; the night window via IsNight
	scenes  map[events.Scene]policy.SceneRule

	otherCityLogin, nightLarge, otherCityThenLarge, newDeviceLarge, velocity rule
	sceneLimit, transactionLimit, secondVerification                         rule
	creditRefusal, alertThreshold                                            rule
	overdueFreeze, judicialFreeze                                            rule
	overdueCode                                                              events.ReasonCode
	// catalogue is the policy's reasons, for the codes of a credit refusal
	catalogue map[string]events.ReasonCode
}

// rule is one rule as the policy configures it, its reason code resolved.
type rule struct {
	name   string
	on     bool
	action string
	code   events.ReasonCode
}

// NewRules builds the rules of a policy: thresholds, windows, actions,
// switches and reason texts from p.Risk, p.Scenes and p.Reasons, and
// p.Version as every decision's PolicyVersion. p is validated (a policy from
// policy.Parse, Load or Preset always passes) and not kept: changing it
// afterwards does not change the rules.
//
// A rule's reason code is, in order: the rule's own code in the policy
// (risk.rules.<rule>.code), else the code scoring assigns the rule (see
// Builtin) as the policy's catalogue defines it, else scoring's built-in
// text for that code.
func NewRules(p *policy.Policy) (*Rules, error) {
	if p == nil {
		return nil, errors.New("scoring: new rules: nil policy")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("scoring: new rules: %w", err)
	}
	rk := p.Risk
	if rk.Rules.Velocity.Enabled && rk.VelocityCount-1 > MaxRecentPayments {
		return nil, fmt.Errorf("scoring: new rules: risk.velocity_count %d needs %d earlier payments, the state layer keeps %d",
			rk.VelocityCount, rk.VelocityCount-1, MaxRecentPayments)
	}
	rs := rk.Rules
	r := &Rules{
		version: p.Version,
		zone:    p.Location(),
		risk:    rk,
		scenes:  maps.Clone(p.Scenes),

		otherCityLogin:     resolve(p, RuleOtherCityLogin, rs.OtherCityLogin, CodeOtherCityLogin),
		nightLarge:         resolve(p, RuleNightLargePayment, rs.NightLarge, CodeNightLarge),
		otherCityThenLarge: resolve(p, RuleOtherCityThenLarge, rs.OtherCityThenLarge, CodeOtherCityLarge),
		newDeviceLarge:     resolve(p, RuleNewDeviceLarge, rs.NewDeviceLarge, CodeNewDeviceLarge),
		velocity:           resolve(p, RuleVelocity, rs.Velocity, CodeVelocity),
		sceneLimit:         resolve(p, RuleSceneLimit, rs.SceneLimit, policy.CodeOrderLimited),
		transactionLimit:   resolve(p, RuleTransactionLimit, rs.TransactionLimit, policy.CodeUserLimit),
		secondVerification: resolve(p, RuleSecondVerification, rs.SecondVerification, CodeSecondVerification),
		creditRefusal:      resolve(p, RuleCreditRefusal, rs.CreditRefusal, policy.CodeQuotaExceeded),
		alertThreshold:     resolve(p, RuleAlertThreshold, rs.AlertThreshold, policy.CodeAlertThreshold),
		overdueFreeze:      resolve(p, RuleOverdueFreeze, rs.OverdueFreeze, policy.CodeOverdueNow),
		judicialFreeze:     resolve(p, RuleJudicialFreeze, rs.JudicialFreeze, policy.CodeJudicialDefaulter),
	}
	r.overdueCode = catalogued(p, policy.CodeOverdueNow)
	r.catalogue = map[string]events.ReasonCode{}
	for _, rc := range p.Reasons {
		r.catalogue[rc.Code] = catalogued(p, rc.Code)
	}
	return r, nil
}

// resolve reads one rule's switch, action and reason code from the policy.
func resolve(p *policy.Policy, name string, pr policy.Rule, defaultCode string) rule {
	code := defaultCode
	if pr.Code != "" {
		code = pr.Code
	}
	return rule{name: name, on: pr.Enabled, action: pr.Action, code: catalogued(p, code)}
}

// catalogued is the policy's catalogue entry of a code, else scoring's
// built-in one, else the bare code.
func catalogued(p *policy.Policy, code string) events.ReasonCode {
	if rc, ok := p.Reason(code); ok {
		return rc
	}
	if rc, ok := Builtin(code); ok {
		return rc
	}
	return events.ReasonCode{Code: code, Message: code}
}

// DefaultRules are the rules of the wechat preset (policy.DefaultPreset).
// The preset is compiled in and tested, so a failure here is a build bug
// and panics.
func DefaultRules() *Rules {
	p, err := policy.Preset(policy.DefaultPreset)
	if err != nil {
		panic(fmt.Sprintf("scoring: default rules: %v", err))
	}
	r, err := NewRules(p)
	if err != nil {
		panic(fmt.Sprintf("scoring: default rules: %v", err))
	}
	return r
}

// PolicyVersion is the version of the policy the rules come from; every
// decision carries it.
func (r *Rules) PolicyVersion() string { return r.version }

// OverdueFreeze says after how many days overdue a bill freezes the user's
// installments (risk.overdue_freeze_after_days: frozen when overdue more
// than that) and whether the policy's overdue_freeze rule is on. The state
// layer's timers use it before calling Frozen.
func (r *Rules) OverdueFreeze() (afterDays int, enabled bool) {
	return r.risk.OverdueFreezeAfterDays, r.overdueFreeze.on
}

// Input is one event with the facts about its user that rules need. Every
// fact describes the user's state just before the event.
type Input struct {
	Event *events.Event
	// Zone is the user's time zone (never nil).
	Zone *time.Location
	// Now is when the event is processed; Now − Event.Time is how late it
	// arrived.
	Now time.Time
	// NewCity: a login from a city not among the user's logins of the last
	// 90 days, for a user with login history. NewDevice: a login or payment
	// from a device not seen in the last 90 days, for a user with device
	// history.
	NewCity, NewDevice bool
	// RecentPayments are the event times of the user's latest payments
	// before this one (at most MaxRecentPayments), newest first. Whole
	// seconds are enough: the velocity rule compares at the second.
	RecentPayments []time.Time
	// LastOtherCityLogin is the event time of the user's latest login that
	// was from another city (NewCity), zero if none.
	LastOtherCityLogin time.Time
	// TransactionLimitFen is the user's own single-payment limit from the
	// profile (信用守护), 0 when none is set; AlertThresholdFen the user's
	// alert threshold, 0 when none is set.
	TransactionLimitFen, AlertThresholdFen int64
	// CreditRefused are the reason codes with which the state layer refused
	// a credit payment (installments ≥ 1; none: accepted, or not a credit
	// payment), Pool the quota pool it was to draw on and Available what
	// that pool had available before it.
	CreditRefused []string
	Pool          string
	AvailableFen  int64
	// WasJudicialDefaulter: before this profile event the user was flagged
	// a judgement defaulter.
	WasJudicialDefaulter bool
	// SettledLastOverdue: this repayment settled the last overdue bill of a
	// user frozen for being overdue.
	SettledLastOverdue bool
}

// Late reports whether the event arrived later than the policy's
// risk.allowed_lateness: Now − Event.Time > AllowedLateness. A zero Now
// (the caller does not track lateness) is never late. Evaluate judges no
// payment or login that is late (see Evaluate); the consumer counts them.
func (r *Rules) Late(in Input) bool {
	if in.Event == nil || in.Now.IsZero() {
		return false
	}
	return in.Now.Sub(in.Event.Time) > r.risk.AllowedLateness
}

// Evaluate returns the decisions the event triggers, possibly none, one per
// rule that fires, in a fixed order. Each decision's id is
// events.DecisionID(rule, event id), so a redelivered event yields the same
// decisions and downstream drops the repeats.
//
// On a payment: the refusals (scene_limit: over the scene's single-payment
// limit; transaction_limit: over the user's own limit), the second
// verification (an installment payment in a scene that needs one, unless
// the payment was refused), then the alerts (night_large_payment,
// new_device_large_payment, other_city_then_large_payment, velocity). On a
// login: other_city_login. Times are event times, read in Input.Zone.
//
// A late event (Late) fires none of these: a verification or a refusal of
// a payment made more than the allowed lateness ago can no longer stop it,
// and the facts the state layer computed for it (new city, recent payments)
// describe its arrival order, not its place in time.
//
// On a profile whose user is on the judgement-defaulter list, and the
// judicial_freeze rule is on: a Frozen decision (cause judicial_defaulter),
// however late the profile, since a freeze is a state, not a verdict on one
// payment — but only when the flag turns on (Input.WasJudicialDefaulter
// false); a profile that clears the flag yields an Unfrozen. A repayment
// that settles the user's last overdue bill while the user is frozen for
// it (Input.SettledLastOverdue) yields an Unfrozen (cause overdue); the
// reminders and the overdue freeze run on the state layer's timers.
func (r *Rules) Evaluate(in Input) []events.Decision {
	e := in.Event
	if e == nil {
		return nil
	}
	if pr := e.Profile; pr != nil {
		switch {
		case !r.judicialFreeze.on:
		case pr.JudicialDefaulter && !in.WasJudicialDefaulter:
			return []events.Decision{r.Frozen(e.UserID(), e.ID, CauseJudicialDefaulter, e.Time, nil)}
		case !pr.JudicialDefaulter && in.WasJudicialDefaulter:
			return []events.Decision{r.Unfrozen(e.UserID(), e.ID, CauseJudicialDefaulter, e.Time, nil)}
		}
		return nil
	}
	if e.Paid != nil && in.SettledLastOverdue {
		// The repayment that settles the last overdue bill lifts the freeze.
		return []events.Decision{r.Unfrozen(e.UserID(), e.ID, CauseOverdue, e.Time,
			map[string]any{"bill_id": e.Paid.BillID})}
	}
	var refusal []events.Decision
	if e.Payment != nil && len(in.CreditRefused) > 0 && r.creditRefusal.on {
		// The principal was not drawn on the pool: a state, published
		// however late the payment, as a freeze is.
		refusal = []events.Decision{r.refusal(in, e.Payment)}
	}
	if r.Late(in) {
		return refusal
	}
	switch {
	case e.Payment != nil:
		return append(refusal, r.payment(in, e.Payment, len(refusal) > 0)...)
	case e.Login != nil:
		return r.login(in, e.Login)
	}
	return nil
}

func (r *Rules) local(in Input) time.Time {
	zone := in.Zone
	if zone == nil {
		zone = r.zone
	}
	return in.Event.Time.In(zone)
}

func (r *Rules) login(in Input, l *events.Login) []events.Decision {
	if !in.NewCity || !r.otherCityLogin.on {
		return nil
	}
	// The city, never the IP.
	return []events.Decision{r.alert(in.Event, r.otherCityLogin, map[string]any{
		"city":        l.City,
		"local_time":  r.local(in).Format(time.RFC3339),
		"window_days": r.risk.OtherCityWindowDays,
	})}
}

// refusal is the REFUSE decision of a credit payment the state layer
// refused, with every code that applied.
func (r *Rules) refusal(in Input, p *events.Payment) events.Decision {
	d := r.alert(in.Event, r.creditRefusal, map[string]any{
		"amount_fen":    p.AmountFen,
		"scene":         p.Scene,
		"installments":  p.Installments,
		"pool":          in.Pool,
		"available_fen": in.AvailableFen,
		"local_time":    r.local(in).Format(time.RFC3339),
	})
	codes := make([]events.ReasonCode, len(in.CreditRefused))
	for i, c := range in.CreditRefused {
		codes[i] = r.code(c)
	}
	d.Data.ReasonCodes = codes
	return d
}

func (r *Rules) payment(in Input, p *events.Payment, refused bool) []events.Decision {
	e, rk := in.Event, r.risk
	local := r.local(in)
	detail := func(extra map[string]any) map[string]any {
		d := map[string]any{
			"amount_fen": p.AmountFen,
			"scene":      p.Scene,
			"local_time": local.Format(time.RFC3339),
		}
		maps.Copy(d, extra)
		return d
	}
	var out []events.Decision
	fire := func(ru rule, extra map[string]any) {
		out = append(out, r.alert(e, ru, detail(extra)))
		refused = refused || ru.action == ActionRefuse
	}

	// A scene's single-payment limit binds credit payments only, and is
	// one of the credit refusal's checks (in.CreditRefused).
	scene := r.scenes[p.Scene]
	if ru := r.transactionLimit; ru.on && in.TransactionLimitFen > 0 && p.AmountFen > in.TransactionLimitFen {
		fire(ru, map[string]any{"limit_fen": in.TransactionLimitFen})
	}
	if ru := r.secondVerification; ru.on && !refused && p.Installments > 0 && scene.SecondVerification != "" {
		fire(ru, map[string]any{"installments": p.Installments, "verification": scene.SecondVerification})
	}
	if ru := r.alertThreshold; ru.on && in.AlertThresholdFen > 0 && p.AmountFen >= in.AlertThresholdFen {
		fire(ru, map[string]any{"threshold_fen": in.AlertThresholdFen})
	}

	large := p.AmountFen >= rk.LargePaymentFen
	if ru := r.nightLarge; ru.on && large && rk.IsNight(local, nil) {
		fire(ru, map[string]any{"large_fen": rk.LargePaymentFen, "night": rk.NightStart + "-" + rk.NightEnd})
	}
	if ru := r.newDeviceLarge; ru.on && large && in.NewDevice {
		fire(ru, map[string]any{"large_fen": rk.LargePaymentFen})
	}
	if ru := r.otherCityThenLarge; ru.on && large && !in.LastOtherCityLogin.IsZero() {
		if since := e.Time.Sub(in.LastOtherCityLogin); since >= 0 && since <= rk.OtherCityThenLargeWindow {
			fire(ru, map[string]any{
				"large_fen":           rk.LargePaymentFen,
				"other_city_login_at": in.LastOtherCityLogin.In(local.Location()).Format(time.RFC3339),
				"since":               since.String(),
				"window":              rk.OtherCityThenLargeWindow.String(),
			})
		}
	}
	if ru := r.velocity; ru.on {
		// This payment and every earlier one at most the window before it,
		// in whole seconds (the precision the state layer keeps).
		now := e.Time.Truncate(time.Second)
		count, first := 1, now
		for _, t := range in.RecentPayments {
			t = t.Truncate(time.Second)
			if d := now.Sub(t); d >= 0 && d <= rk.VelocityWindow {
				count++
				if t.Before(first) {
					first = t
				}
			}
		}
		if count >= rk.VelocityCount {
			fire(ru, map[string]any{
				"count":     count,
				"threshold": rk.VelocityCount,
				"window":    rk.VelocityWindow.String(),
				"first_at":  first.In(local.Location()).Format(time.RFC3339),
			})
		}
	}
	return out
}

// alert is the decision of a rule that fired on an input event.
func (r *Rules) alert(e *events.Event, ru rule, detail map[string]any) events.Decision {
	return events.Decision{
		ID:      events.DecisionID(ru.name, e.ID),
		Type:    events.TypeDecisionAlert,
		Subject: e.UserID(),
		Time:    e.Time,
		Data: events.DecisionData{
			UserID:        e.UserID(),
			CausationID:   e.ID,
			Rule:          ru.name,
			Action:        ru.action,
			ReasonCodes:   []events.ReasonCode{ru.code},
			PolicyVersion: r.version,
			Detail:        detail,
		},
	}
}
