package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
)

const explainAbout = `Explain a user's quota (查看评估明细): what a recompute would decide now, step
by step — eligibility with every failing reason code and its advice, each
factor of the score, the score, the quota's caps, guardrail and override, and
the quota last published. Asks fenqid's admin API:
GET {api}/v1/users/{USER}/quota. Nothing is changed or published.`

const offerAbout = `Price an installment plan for a user: the schedule of paying --amount-fen in
--periods monthly installments, with the fee, any promotion and the annual
rate. Refused when the amount is over the user's quota. Asks fenqid's admin
API: GET {api}/v1/users/{USER}/offer. Nothing is changed or published.`

// quotaView is the body of GET /v1/users/{id}/quota (cmd/fenqid's
// quotaView: keep the two in step).
type quotaView struct {
	UserID            string             `json:"user_id"`
	PublishedQuotaFen *int64             `json:"published_quota_fen"`
	NextRecomputeAt   *time.Time         `json:"next_recompute_at"`
	Evaluation        credit.Result      `json:"evaluation"`
	Pools             []scoring.PoolView `json:"pools"`
}

// offerRefusal is the body of a 422 answer of GET /v1/users/{id}/offer.
type offerRefusal struct {
	Error    string              `json:"error"`
	QuotaFen int64               `json:"quota_fen"`
	Eligible bool                `json:"eligible"`
	Reasons  []events.ReasonCode `json:"reason_codes"`
}

// explain prints the quota evaluation of a user (DOMAIN.md §3).
func (c *cli) explain(ctx context.Context, args []string) error {
	var (
		base    string
		timeout time.Duration
		raw     bool
	)
	fs := c.flagSet("explain", "USER", explainAbout)
	fs.api(&base, &timeout)
	fs.BoolVar(&raw, "json", false, "print the API's JSON answer as it is")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 1 || operands[0] == "" {
		return c.usageOf(fs, "explain: want exactly one USER, got %d arguments", len(operands))
	}
	user := operands[0]
	api, err := newAPIClient(base, fs.token, timeout)
	if err != nil {
		return err
	}
	u := api.userURL(user, "quota", nil)
	body, err := api.get(ctx, u)
	if err != nil {
		if b, ok := rawErrorBody(err); ok && raw {
			_ = printRaw(c.stdout, b)
		}
		return fmt.Errorf("explain %s: GET %s: %w", user, u, err)
	}
	if raw {
		return printRaw(c.stdout, body)
	}
	var v quotaView
	if err := decodeBody(http.MethodGet, u, body, &v); err != nil {
		return fmt.Errorf("explain %s: %w", user, err)
	}
	return printExplanation(c.stdout, v)
}

// offer prices an installment plan for a user.
func (c *cli) offer(ctx context.Context, args []string) error {
	var (
		base             string
		timeout          time.Duration
		raw              bool
		amount           int64
		periods          int
		scene            string
		newUser, invited bool
	)
	fs := c.flagSet("offer", "USER --amount-fen N --periods P", offerAbout)
	fs.api(&base, &timeout)
	fs.Int64Var(&amount, "amount-fen", 0, "amount to pay in installments, in fen (1 yuan = 100 fen); required")
	fs.IntVar(&periods, "periods", 0, "number of monthly installments, one the policy offers (wechat: 3, 6, 12, 24); required")
	fs.StringVar(&scene, "scene", "", "scene of the payment, for scene promotions (ecommerce, local_life, offline_retail, education, medical, …)")
	fs.BoolVar(&newUser, "new-user", false, "the user's first installment plan (new-user promotions)")
	fs.BoolVar(&invited, "invited", false, "the user was invited to the offer (invitation promotions)")
	fs.BoolVar(&raw, "json", false, "print the API's JSON answer as it is")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 1 || operands[0] == "" {
		return c.usageOf(fs, "offer: want exactly one USER, got %d arguments", len(operands))
	}
	user := operands[0]
	if amount <= 0 {
		return c.usageOf(fs, "offer: --amount-fen must be a positive number of fen, got %d", amount)
	}
	if periods <= 0 {
		return c.usageOf(fs, "offer: --periods must be a positive number of installments, got %d", periods)
	}
	if scene != "" && !events.Scene(scene).Valid() {
		return c.usageOf(fs, "offer: --scene %q is not a scene (ecommerce, local_life, offline_retail, education, medical, transfer, red_packet, bill_pay, donation, wealth, other)", scene)
	}
	api, err := newAPIClient(base, fs.token, timeout)
	if err != nil {
		return err
	}
	q := url.Values{}
	q.Set("amount_fen", strconv.FormatInt(amount, 10))
	q.Set("periods", strconv.Itoa(periods))
	if scene != "" {
		q.Set("scene", scene)
	}
	if newUser {
		q.Set("new_user", "true")
	}
	if invited {
		q.Set("invited", "true")
	}
	u := api.userURL(user, "offer", q)
	body, err := api.get(ctx, u)
	if err != nil {
		if b, ok := rawErrorBody(err); ok && raw {
			_ = printRaw(c.stdout, b)
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity {
			var r offerRefusal
			if decodeBody(http.MethodGet, u, ae.Body, &r) == nil {
				return fmt.Errorf("offer %s: refused: %s", user, refusalText(user, amount, r))
			}
		}
		return fmt.Errorf("offer %s: GET %s: %w", user, u, err)
	}
	if raw {
		return printRaw(c.stdout, body)
	}
	var quote credit.QuoteResult
	if err := decodeBody(http.MethodGet, u, body, &quote); err != nil {
		return fmt.Errorf("offer %s: %w", user, err)
	}
	return printQuote(c.stdout, user, quote)
}

func refusalText(user string, amount int64, r offerRefusal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (asked %s, quota of %s %s)", r.Error, yuan(amount), user, yuan(r.QuotaFen))
	if len(r.Reasons) > 0 {
		if !r.Eligible {
			b.WriteString("; not eligible")
		}
		b.WriteString(":")
		for _, rc := range r.Reasons {
			writeReason(&b, "  ", rc)
		}
	}
	return b.String()
}

func writeReason(w io.Writer, indent string, rc events.ReasonCode) {
	fmt.Fprintf(w, "\n%s%s  %s", indent, rc.Code, rc.Message)
	if rc.Advice != "" {
		fmt.Fprintf(w, "\n%s    advice: %s", indent, rc.Advice)
	}
}

// decidedBy says in words which step fixed the quota.
var decidedBy = map[string]string{
	credit.DecidedIneligible:       "a failing eligibility gate",
	credit.DecidedScore:            "the score's curve",
	credit.DecidedTierCap:          "the tier cap",
	credit.DecidedGuardrailFloor:   "the guardrail's floor (it would have fallen too far)",
	credit.DecidedGuardrailCeiling: "the guardrail's ceiling (it would have risen too far)",
	credit.DecidedOverride:         "an operator's override",
}

// printExplanation writes the quota evaluation for a person to read.
func printExplanation(w io.Writer, v quotaView) error {
	r := v.Evaluation
	var b strings.Builder
	fmt.Fprintf(&b, "User %s: quota %s (%s)\n", v.UserID, yuan(r.QuotaFen), tierText(r.Tier))
	fmt.Fprintf(&b, "Evaluated %s under policy %s (%s), model %s\n\n",
		r.EvaluatedAt.Format("2006-01-02 15:04:05 -07:00"), r.PolicyVersion, r.Product, r.ModelVersion)

	// Eligibility: every failing reason with its advice, then every gate.
	if r.Eligible {
		b.WriteString("Eligible: yes, every gate passed\n")
	} else {
		fmt.Fprintf(&b, "Eligible: NO, %d %s", len(r.Reasons), plural(len(r.Reasons), "reason", "reasons"))
		for _, rc := range r.Reasons {
			writeReason(&b, "  ", rc)
		}
		b.WriteString("\n")
	}
	b.WriteString("Gates:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, g := range r.Gates {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", passFail(g.Passed), g.Name, g.Code, g.Detail)
	}
	_ = tw.Flush()

	if r.QualityUser {
		b.WriteString("\nQuality user: yes, the high tier is open\n")
	} else {
		b.WriteString("\nQuality user: no, the standard tier's cap applies\n")
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, q := range r.Quality {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", passFail(q.Passed), q.Name, q.Detail)
	}
	_ = tw.Flush()

	// Factors: contribution = normalised × weight; the score is their sum.
	b.WriteString("\nFactors:\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FACTOR\tRAW\tNORMALISED\tWEIGHT\tCONTRIBUTION\t")
	for _, f := range r.Factors {
		contribution := f.Contribution
		if contribution == 0 {
			contribution = 0 // not "-0.0000" for the penalty's 0 × −0.05
		}
		fmt.Fprintf(tw, "  %s\t%s\t%.3f\t%.2f\t%+.4f\t%s\n", f.Name, rawValue(f), f.Normalised,
			f.Weight, contribution, f.Note)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "Score: %.4f (the contributions' sum, within 0..1)\n\n", r.Score)

	b.WriteString("Quota:\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  from the score\t%s\n", yuan(r.RawQuotaFen))
	fmt.Fprintf(tw, "  tier cap\t%s\n", yuan(r.TierCapFen))
	g := r.Guardrail
	if g.Applied {
		fmt.Fprintf(tw, "  guardrail\t%s to %s around the previous %s (%s)\n", yuan(g.MinFen), yuan(g.MaxFen), yuan(g.PreviousFen), g.Note)
	} else {
		fmt.Fprintf(tw, "  guardrail\t%s\n", g.Note)
	}
	if o := r.Override; o != nil {
		line := fmt.Sprintf("%s, %s until %s: %q", yuan(o.QuotaFen), o.Status,
			o.ExpiresAt.Format("2006-01-02 15:04 -07:00"), o.Reason)
		if o.Operator != "" {
			line += " by " + o.Operator
		}
		if o.Clamped {
			line += " (clamped to the product's highest quota)"
		}
		fmt.Fprintf(tw, "  override\t%s\n", line)
	}
	why := decidedBy[r.DecidedBy]
	if why == "" {
		why = r.DecidedBy
	}
	fmt.Fprintf(tw, "  final\t%s (%d fen), decided by %s\n", yuan(r.QuotaFen), r.QuotaFen, why)
	_ = tw.Flush()

	if v.PublishedQuotaFen == nil {
		b.WriteString("\nPublished quota: none yet\n")
	} else {
		fmt.Fprintf(&b, "\nPublished quota: %s (%d fen)\n", yuan(*v.PublishedQuotaFen), *v.PublishedQuotaFen)
	}
	if v.NextRecomputeAt != nil {
		fmt.Fprintf(&b, "Next recompute: %s\n", v.NextRecomputeAt.In(r.EvaluatedAt.Location()).Format("2006-01-02 15:04:05 -07:00"))
	}
	if len(v.Pools) > 0 {
		b.WriteString("\nQuota pools (limit, outstanding, available):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, p := range v.Pools {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Pool, yuan(p.LimitFen), yuan(p.OutstandingFen), yuan(p.AvailableFen))
		}
		_ = tw.Flush()
	}
	_, err := io.WriteString(w, trimLines(b.String()))
	return err
}

// printQuote writes a repayment schedule for a person to read.
func printQuote(w io.Writer, user string, q credit.QuoteResult) error {
	var b strings.Builder
	if pl := q.PayLater; pl != nil {
		fmt.Fprintf(&b, "Offer to %s: %s, pay later (policy %s, %s)\n", user, yuan(q.AmountFen), q.PolicyVersion, q.Product)
		fmt.Fprintf(&b, "Bought %s, on the statement of %s, due %s: no fee if repaid by then (%d days free; the longest %d)\n",
			pl.PurchaseDate, pl.StatementDate, pl.DueDate, pl.InterestFreeDays, pl.LongestFreeDays)
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "Offer to %s: %s in %d monthly installments (policy %s, %s)\n",
		user, yuan(q.AmountFen), q.Periods, q.PolicyVersion, q.Product)
	fmt.Fprintf(&b, "Fee: %s of the amount a period", percentBP(q.FeeBP))
	if q.Promotion != "" {
		fmt.Fprintf(&b, ", promotion %s (base %s)", q.Promotion, percentBP(q.BaseFeeBP))
	}
	b.WriteString("\n")
	if len(q.Adjustments) > 0 {
		fmt.Fprintf(&b, "  base fee %s\n", percentBP(q.BaseFeeBP))
		for _, a := range q.Adjustments {
			fmt.Fprintf(&b, "  %+d bp  %s %s: %s\n", a.DeltaBP, a.Kind, a.Name, a.Detail)
		}
		fmt.Fprintf(&b, "  charged  %s\n", percentBP(q.FeeBP))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PERIOD\tPRINCIPAL\tFEE\tPAYMENT\t")
	var principal int64
	for _, in := range q.Schedule {
		principal += in.PrincipalFen
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t\n", in.Period, amountYuan(in.PrincipalFen), amountYuan(in.FeeFen), amountYuan(in.PaymentFen))
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t%s\t\n", amountYuan(principal), amountYuan(q.TotalFeeFen), amountYuan(q.TotalPaymentFen))
	_ = tw.Flush()
	fmt.Fprintf(&b, "(amounts in yuan)\n\nAnnual rate (IRR): %.2f%% nominal, %.2f%% effective; %.4f%% a month\n",
		100*q.NominalAnnualRate, 100*q.EffectiveAnnualRate, 100*q.MonthlyIRR)
	_, err := io.WriteString(w, trimLines(b.String()))
	return err
}

// trimLines drops the spaces tabwriter leaves at the ends of lines.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

func tierText(tier string) string {
	switch tier {
	case credit.TierNone:
		return "no quota"
	case "":
		return "tier not given"
	}
	return tier + " tier"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// rawValue is a factor's raw value with its unit.
func rawValue(f credit.Factor) string {
	switch f.Unit {
	case "fen":
		return yuan(int64(f.Raw))
	case "points", "checks":
		return strconv.FormatFloat(f.Raw, 'f', -1, 64) + " " + f.Unit
	case "cv":
		return fmt.Sprintf("%.3f CV", f.Raw)
	case "per_month":
		return fmt.Sprintf("%.1f a month", f.Raw)
	case "share":
		return fmt.Sprintf("%.1f%% share", 100*f.Raw)
	}
	return strings.TrimSpace(strconv.FormatFloat(f.Raw, 'g', 6, 64) + " " + f.Unit)
}

// yuan formats fen as "12,345.67 yuan".
func yuan(fen int64) string { return amountYuan(fen) + " yuan" }

// amountYuan formats fen as "12,345.67".
func amountYuan(fen int64) string { return events.FormatYuan(fen) }

// percentBP formats basis points as a percentage: 150 → "1.50%".
func percentBP(bp int) string { return fmt.Sprintf("%.2f%%", float64(bp)/100) }
