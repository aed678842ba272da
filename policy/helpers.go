package policy

import (
	"fmt"
	"time"

	"github.com/fenqi/fenqi/events"
)

// Reason returns the catalogue entry of a code as the wire type, and false
// when the catalogue has no such code.
func (p *Policy) Reason(code string) (events.ReasonCode, bool) {
	for _, r := range p.Reasons {
		if r.Code == code {
			return events.ReasonCode{Code: r.Code, Message: r.Message, Advice: r.Advice}, true
		}
	}
	return events.ReasonCode{}, false
}

// ReasonCode is Reason for a code the caller knows is catalogued (a
// validated policy holds every RequiredCodes entry); an unknown code comes
// back with the code as its message.
func (p *Policy) ReasonCode(code string) events.ReasonCode {
	if r, ok := p.Reason(code); ok {
		return r
	}
	return events.ReasonCode{Code: code, Message: code}
}

// Location is the policy's default user time zone (Timezone). A policy
// built in code without a loadable Timezone gets time.UTC.
func (p *Policy) Location() *time.Location {
	if p.loc != nil && p.loc.String() == p.Timezone {
		return p.loc
	}
	if loc, err := time.LoadLocation(p.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// Plan returns the plan of a period count.
func (p *Policy) Plan(periods int) (Plan, bool) {
	for _, plan := range p.Pricing.Plans {
		if plan.Periods == periods {
			return plan, true
		}
	}
	return Plan{}, false
}

// IsNight reports whether t, read in loc, falls in the late-night window
// [NightStart, NightEnd] (both minutes included; the window may wrap
// midnight). A policy that failed validation never reports night.
func (r Risk) IsNight(t time.Time, loc *time.Location) bool {
	start, err1 := clockMinute(r.NightStart)
	end, err2 := clockMinute(r.NightEnd)
	if err1 != nil || err2 != nil {
		return false
	}
	if loc != nil {
		t = t.In(loc)
	}
	m := t.Hour()*60 + t.Minute()
	if start <= end {
		return m >= start && m <= end
	}
	return m >= start || m <= end
}

// clockMinute parses "HH:MM" into the minute of the day.
func clockMinute(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("want a time of day HH:MM, got %q", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}
