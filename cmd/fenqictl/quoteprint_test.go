package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/scoring/credit"
)

// fenqictl offer prints a pay-later bill's dates and an installment plan's
// fee adjustments line by line.
func TestPrintQuoteLines(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	at := time.Date(2026, 1, 10, 16, 30, 0, 0, time.UTC)
	q, err := credit.Quote(p, 80_000, 1, credit.PromoContext{At: at})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printQuote(&b, "u-1", q); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "pay later") || !strings.Contains(out, "due "+q.PayLater.DueDate) ||
		!strings.Contains(out, "no fee") {
		t.Errorf("pay later:\n%s", out)
	}
	q, err = credit.Quote(p, 300_000, 6, credit.PromoContext{PayScore: 620, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Adjustments) == 0 {
		t.Fatalf("no adjustment for a pay score of 620: %+v", q)
	}
	b.Reset()
	if err := printQuote(&b, "u-1", q); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, a := range q.Adjustments {
		if !strings.Contains(out, a.Kind+" "+a.Name) {
			t.Errorf("adjustment %+v not printed:\n%s", a, out)
		}
	}
	if !strings.Contains(out, "charged") || !strings.Contains(out, "PERIOD") {
		t.Errorf("plan:\n%s", out)
	}
}
