package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/telemetry"
)

// observer feeds the metrics and prints decisions (with -print-decisions).
type observer struct {
	*telemetry.Metrics
	print bool
	zone  *time.Location
	mu    sync.Mutex
	out   io.Writer
}

func (o *observer) Decision(d events.Decision) {
	o.Metrics.Decision(d)
	if !o.print {
		return
	}
	if q, ok := d.Data.Detail.(scoring.QuotaDetail); ok && q.OldQuotaFen == q.QuotaFen {
		// A recompute that changed nothing (most first quotas of new,
		// still ineligible users): published, but not worth a line.
		return
	}
	var why []string
	for _, rc := range d.Data.ReasonCodes {
		why = append(why, rc.Code+": "+rc.Message)
	}
	line := fmt.Sprintf("%s %-22s user=%-8s action=%-14s rule=%s cause=%s | %s\n",
		d.Time.In(o.zone).Format("01-02 15:04:05"), strings.TrimPrefix(d.Type, "fenqi.decision."),
		d.Subject, d.Data.Action, d.Data.Rule, d.Data.CausationID, strings.Join(why, "; "))
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = io.WriteString(o.out, line)
}

var _ consumers.Observer = (*observer)(nil)
