package jobs

import (
	"fmt"
	"time"

	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// StateConfig is the state a policy needs kept per user: daily payment
// counts over its activity window (at least the 35 days the defaults
// keep), and devices and cities over its other-city window.
func StateConfig(p *policy.Policy, zone *time.Location) state.Config {
	return state.Config{
		DefaultZone:  zone,
		Days:         max(35, p.Eligibility.ActivityWindowDays+1),
		GeoDays:      p.Risk.OtherCityWindowDays,
		MaxAmountFen: p.Limits.MaxAmountFen,
		MaxOpenBills: p.Limits.MaxOpenBills,
	}
}

// Servable says why state kept as cfg cannot serve policy p, or nil: its
// windows are fixed when fenqid starts (a longer window needs history the
// state did not keep), and the velocity rule reads the payment times kept.
func Servable(cfg state.Config, p *policy.Policy) error {
	want := StateConfig(p, cfg.DefaultZone)
	switch {
	case want.Days != cfg.Days:
		return fmt.Errorf("eligibility.activity_window_days %d needs %d days of counts kept, and state keeps %d: restart fenqid to change the state's windows",
			p.Eligibility.ActivityWindowDays, want.Days, cfg.Days)
	case want.GeoDays != cfg.GeoDays:
		return fmt.Errorf("risk.other_city_window_days %d differs from the %d days state keeps places for: restart fenqid to change the state's windows",
			p.Risk.OtherCityWindowDays, cfg.GeoDays)
	case want.MaxAmountFen != cfg.MaxAmountFen || want.MaxOpenBills != cfg.MaxOpenBills:
		return fmt.Errorf("limits (max_amount_fen %d, max_open_bills %d) differ from the ones in force (%d, %d): restart fenqid to change them",
			p.Limits.MaxAmountFen, p.Limits.MaxOpenBills, cfg.MaxAmountFen, cfg.MaxOpenBills)
	case p.Quota.Factors.Device.WindowDays > cfg.GeoDays:
		return fmt.Errorf("quota.factors.device.window_days %d is longer than the %d days state keeps logins for (risk.other_city_window_days)",
			p.Quota.Factors.Device.WindowDays, cfg.GeoDays)
	case p.Risk.VelocityCount > engine.RecentPayments+1:
		return fmt.Errorf("risk.velocity_count %d needs the %d payments before each one, and state keeps %d",
			p.Risk.VelocityCount, p.Risk.VelocityCount-1, engine.RecentPayments)
	}
	return nil
}

// ShadowServable says why state kept as cfg (for the live policy) cannot
// serve a shadow policy p, which reads the same state: its activity window
// may be shorter than the days kept, but its other-city window and limits
// must be the live policy's (state judges new cities and refuses amounts
// by them as it applies events), and the rest is checked as for the live
// policy.
func ShadowServable(cfg state.Config, p *policy.Policy) error {
	if want := StateConfig(p, cfg.DefaultZone); want.Days <= cfg.Days {
		cfg.Days = want.Days
	}
	if err := Servable(cfg, p); err != nil {
		return fmt.Errorf("a shadow policy reads the live policy's state: %w", err)
	}
	return nil
}
