package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const overrideAbout = `Set an operator override of a user's quota: a fixed quota, with a reason,
that wins over the credit model until it expires (fenqid recomputes and
publishes the user's quota at once). --clear removes it.`

// overrideBody is the body of PUT /v1/users/{id}/override.
type overrideBody struct {
	QuotaFen  int64     `json:"quota_fen"`
	Reason    string    `json:"reason"`
	Operator  string    `json:"operator,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// override sets or clears an operator override.
func (c *cli) override(ctx context.Context, args []string) error {
	var (
		base     string
		timeout  time.Duration
		quota    int64
		reason   string
		operator string
		expires  string
		clear    bool
	)
	fs := c.flagSet("override", "USER --quota-fen N --reason R --expires D | USER --clear", overrideAbout)
	fs.api(&base, &timeout)
	fs.Int64Var(&quota, "quota-fen", -1, "the fixed quota, in fen (1 yuan = 100 fen)")
	fs.StringVar(&reason, "reason", "", "why (kept with the override and shown by explain); required")
	fs.StringVar(&operator, "operator", "", "who sets it (default: $USER)")
	fs.StringVar(&expires, "expires", "", "when it ends: a duration from now (720h) or an RFC 3339 time; required")
	fs.BoolVar(&clear, "clear", false, "remove the user's override instead")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 1 || operands[0] == "" {
		return c.usageOf(fs, "override: want exactly one USER, got %d arguments", len(operands))
	}
	user := operands[0]
	api, err := newAPIClient(base, fs.token, timeout)
	if err != nil {
		return err
	}
	u := api.userURL(user, "override", nil)
	if clear {
		ans, err := api.do(ctx, http.MethodDelete, u, nil)
		if err != nil {
			return fmt.Errorf("override %s: DELETE %s: %w", user, u, err)
		}
		fmt.Fprintf(c.stdout, "override of %s removed (event %s on the operator topic); its quota is recomputed once fenqid applies it\n", user, eventID(ans))
		return nil
	}
	if quota < 0 {
		return c.usageOf(fs, "override: --quota-fen must be given, ≥ 0")
	}
	if strings.TrimSpace(reason) == "" {
		return c.usageOf(fs, "override: --reason is required")
	}
	until, err := parseExpiry(expires, time.Now())
	if err != nil {
		return c.usageOf(fs, "override: --expires: %v", err)
	}
	if operator == "" {
		operator = c.getenv("USER")
	}
	body, err := json.Marshal(overrideBody{QuotaFen: quota, Reason: reason, Operator: operator, ExpiresAt: until})
	if err != nil {
		return err
	}
	ans, err := api.do(ctx, http.MethodPut, u, body)
	if err != nil {
		return fmt.Errorf("override %s: PUT %s: %w", user, u, err)
	}
	fmt.Fprintf(c.stdout, "override of %s: quota %s until %s (%s), event %s on the operator topic; its quota is recomputed once fenqid applies it\n",
		user, yuan(quota), until.Format(time.RFC3339), reason, eventID(ans))
	return nil
}

// eventID is the event_id of fenqid's 202 answer to a write ("?" when
// there is none: an older fenqid).
func eventID(answer []byte) string {
	var v struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(answer, &v) != nil || v.EventID == "" {
		return "?"
	}
	return v.EventID
}

// parseExpiry reads a duration from now or an RFC 3339 time in the future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("required (a duration such as 720h, or an RFC 3339 time)")
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q is not in the future", s)
		}
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (720h) nor an RFC 3339 time", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%s is not in the future", s)
	}
	return t, nil
}
