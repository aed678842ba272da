package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

const recomputeAbout = `Make every known user's quota recompute due now, once: after a policy or
model change that should reach every user at once rather than over the cycle.
fenqid's jobs then work them off at the recompute rate (fenqi_jobs_due shows
what is left). --all is required, so that it is never run by accident.`

// recompute asks fenqid to recompute every known user now.
func (c *cli) recompute(ctx context.Context, args []string) error {
	var (
		base    string
		timeout time.Duration
		all     bool
	)
	fs := c.flagSet("recompute", "--all", recomputeAbout)
	fs.api(&base, &timeout)
	fs.BoolVar(&all, "all", false, "every known user (required)")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 0 || !all {
		return c.usageOf(fs, "recompute: want --all and no arguments")
	}
	api, err := newAPIClient(base, fs.token, timeout)
	if err != nil {
		return err
	}
	u := api.url("/v1/recompute", nil)
	body, err := api.do(ctx, http.MethodPost, u, nil)
	if err != nil {
		return fmt.Errorf("recompute: POST %s: %w", u, err)
	}
	var v struct{ Due, Known int64 }
	if err := decodeBody(http.MethodPost, u, body, &v); err != nil {
		return fmt.Errorf("recompute: %w", err)
	}
	fmt.Fprintf(c.stdout, "%d of %d known users are due for a recompute now\n", v.Due, v.Known)
	return nil
}
