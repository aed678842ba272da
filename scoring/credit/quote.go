package credit

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// Quote errors; Quote wraps them with the amount and the period count.
var (
	ErrInvalidAmount     = errors.New("amount must be between 1 fen and 10^14 fen")
	ErrPeriodsNotOffered = errors.New("period count not offered by the policy")
	ErrNoPurchaseTime    = errors.New("a pay-later quote needs the purchase time")
)

// maxQuoteFen keeps amount × basis points inside int64.
const maxQuoteFen = 100_000_000_000_000 // 10^14 fen = 10^12 yuan

// PromoContext is what the price depends on beyond the amount and the
// period count: the conditions of the promotions, the pay score and the
// merchant of the adjustments, and the purchase time of pay later. Its
// zero value is a purchase with no promotion and no adjustment.
type PromoContext struct {
	Scene   events.Scene // the payment's scene
	NewUser bool         // the user's first installment plan
	Invited bool         // the user was invited to the offer
	// PayScore is the user's pay score: its band in
	// pricing.adjustments.pay_score_bands raises the fee (0 = unknown).
	PayScore int
	// MerchantID is the merchant of the purchase: its subsidy in
	// pricing.adjustments.merchant_subsidies lowers the fee ("" = none).
	MerchantID string
	// At is when the purchase is made. A pay-later quote (1 period) dates
	// its statement and due date from it, in the policy's zone; it is
	// required there (ErrNoPurchaseTime) and unused otherwise.
	At time.Time
}

// Installment is one period of a repayment schedule.
type Installment struct {
	Period       int   `json:"period"` // 1-based; paid one month after the previous
	PrincipalFen int64 `json:"principal_fen"`
	FeeFen       int64 `json:"fee_fen"`
	PaymentFen   int64 `json:"payment_fen"` // principal + fee
}

// Fee line kinds (FeeLine.Kind), in the order a quote applies them.
const (
	LinePromotion       = "promotion"        // a promotional rate replaces the base rate
	LinePayScoreBand    = "pay_score_band"   // the user's pay-score band raises the fee
	LineMerchantSubsidy = "merchant_subsidy" // the merchant's subsidy lowers it
	LineClamp           = "clamp"            // back inside [min_fee_bp, max_fee_bp]
)

// FeeLine is one step from a plan's base fee to the fee charged, in basis
// points per period.
type FeeLine struct {
	Kind string `json:"kind"` // one of the Line constants
	// Name is the promotion's, band's or subsidy's name in the policy;
	// for a clamp, the bound: "max_fee_bp" or "min_fee_bp".
	Name    string `json:"name"`
	DeltaBP int    `json:"delta_bp"` // negative lowers the fee
	Detail  string `json:"detail"`
}

// PayLaterBill dates the one bill of a pay-later purchase (1 period) in
// the policy's zone. No fee is charged when it is repaid by the end of
// DueDate.
type PayLaterBill struct {
	// PurchaseDate is the purchase's local date; StatementDate the date of
	// the statement it is on (the first statement day on or after it) and
	// DueDate that statement's due date (pricing.pay_later.days_to_due
	// later). Dates are YYYY-MM-DD.
	PurchaseDate  string `json:"purchase_date"`
	StatementDate string `json:"statement_date"`
	DueDate       string `json:"due_date"`
	// OverdueFrom is the first instant past the due date: 00:00 of the next
	// day in the policy's zone. Repaid before it, the bill costs nothing.
	OverdueFrom time.Time `json:"overdue_from"`
	// InterestFreeDays is this purchase's free period, in days from
	// PurchaseDate to DueDate; LongestFreeDays the product's longest
	// (pricing.interest_free_days).
	InterestFreeDays int `json:"interest_free_days"`
	LongestFreeDays  int `json:"longest_free_days"`
}

// QuoteResult is the price of paying AmountFen in Periods monthly
// installments. (Go does not let the type share the function's name.)
type QuoteResult struct {
	Product       string `json:"product"`
	PolicyVersion string `json:"policy_version"`
	AmountFen     int64  `json:"amount_fen"`
	Periods       int    `json:"periods"`
	// BaseFeeBP is the plan's base fee per period, FeeBP the one charged,
	// in basis points of the original principal: BaseFeeBP plus every
	// line's DeltaBP of Adjustments is FeeBP. Promotion names the
	// promotion that replaced the base rate, if one did. Pay later has
	// neither fee nor lines.
	BaseFeeBP   int       `json:"base_fee_bp"`
	FeeBP       int       `json:"fee_bp"`
	Promotion   string    `json:"promotion,omitempty"`
	Adjustments []FeeLine `json:"adjustments"`
	// PayLater dates the bill of a 1-period (pay-later) quote; nil for
	// installment plans.
	PayLater *PayLaterBill `json:"pay_later,omitempty"`

	Schedule        []Installment `json:"schedule"`
	TotalFeeFen     int64         `json:"total_fee_fen"`
	TotalPaymentFen int64         `json:"total_payment_fen"`

	// MonthlyIRR is the internal rate of return of the schedule per month:
	// the r with AmountFen = Σ PaymentFen_k / (1+r)^k, k = 1…Periods.
	MonthlyIRR float64 `json:"monthly_irr"`
	// NominalAnnualRate is MonthlyIRR × 12: the true annualised rate
	// (年化利率, IRR method) lenders disclose.
	NominalAnnualRate float64 `json:"nominal_annual_rate"`
	// EffectiveAnnualRate is (1 + MonthlyIRR)^12 − 1, compounding monthly.
	EffectiveAnnualRate float64 `json:"effective_annual_rate"`

	// Scene, QuotaPool and SecondVerification come from the scene check
	// of an offer (Offer fills them; Quote leaves them empty): the pool the
	// purchase draws on and the second verification it needs.
	Scene              events.Scene `json:"scene,omitempty"`
	QuotaPool          string       `json:"quota_pool,omitempty"`
	SecondVerification string       `json:"second_verification,omitempty"`
}

// Quote prices a purchase under a validated policy: pay later for 1
// period, an installment plan otherwise.
//
// Pay later (pricing.pay_later): one bill of the whole amount, fee 0, due
// on the due date of the statement the purchase is on (see PayLaterBill);
// promo.At is required.
//
// A plan: the fee per period starts at the plan's base rate; the lowest
// promotional rate whose condition holds replaces it; the pay-score band
// of promo.PayScore raises it and the subsidy of promo.MerchantID lowers
// it (pricing.adjustments); the result is clamped to the product's range
// [min_fee_bp, max_fee_bp]. Each step is a line of Adjustments. The fee is
// charged on the original principal every period: each period's fee is
// AmountFen × FeeBP / 10,000 rounded half up to the fen, the same in every
// period, so TotalFeeFen = Periods × that fee. The principal is split into
// equal whole-fen parts; the remainder (fewer fen than Periods) is paid
// with the first installment.
//
// It refuses amounts outside [1, 10^14] fen (ErrInvalidAmount), period
// counts the policy does not offer (ErrPeriodsNotOffered) and a pay-later
// quote without a purchase time (ErrNoPurchaseTime).
func Quote(p *policy.Policy, amountFen int64, periods int, promo PromoContext) (QuoteResult, error) {
	if amountFen <= 0 || amountFen > maxQuoteFen {
		return QuoteResult{}, fmt.Errorf("credit: quote %d fen over %d periods: %w", amountFen, periods, ErrInvalidAmount)
	}
	q := QuoteResult{
		Product:       p.Product,
		PolicyVersion: p.Version,
		AmountFen:     amountFen,
		Periods:       periods,
		Adjustments:   []FeeLine{},
	}
	if periods == 1 && p.Pricing.PayLater.Offered() {
		if promo.At.IsZero() {
			return QuoteResult{}, fmt.Errorf("credit: quote %d fen over 1 period: %w", amountFen, ErrNoPurchaseTime)
		}
		bill := PayLaterBillOf(p, promo.At)
		q.PayLater = &bill
		q.Schedule = []Installment{{Period: 1, PrincipalFen: amountFen, PaymentFen: amountFen}}
		q.TotalPaymentFen = amountFen
		return q, nil
	}
	plan, ok := p.Plan(periods)
	if !ok {
		return QuoteResult{}, fmt.Errorf("credit: quote %d fen over %d periods: %w (%s offers %v)",
			amountFen, periods, ErrPeriodsNotOffered, p.Product, p.Pricing.PeriodsOffered())
	}
	q.BaseFeeBP = plan.FeeBP
	q.FeeBP, q.Promotion, q.Adjustments = feeOf(p.Pricing, plan, promo)

	fee := (amountFen*int64(q.FeeBP) + 5_000) / 10_000 // half up
	part, rest := amountFen/int64(periods), amountFen%int64(periods)
	q.Schedule = make([]Installment, periods)
	payments := make([]float64, periods)
	for k := range q.Schedule {
		principal := part
		if k == 0 {
			principal += rest
		}
		q.Schedule[k] = Installment{Period: k + 1, PrincipalFen: principal, FeeFen: fee, PaymentFen: principal + fee}
		q.TotalFeeFen += fee
		q.TotalPaymentFen += principal + fee
		payments[k] = float64(principal + fee)
	}
	q.MonthlyIRR = irr(float64(amountFen), payments)
	q.NominalAnnualRate = 12 * q.MonthlyIRR
	q.EffectiveAnnualRate = math.Pow(1+q.MonthlyIRR, 12) - 1
	return q, nil
}

// feeOf is a plan's fee per period for a purchase: the base rate, the
// promotion, the adjustments and the clamp, with a line for each step that
// moved it (see Quote).
func feeOf(pr policy.Pricing, plan policy.Plan, promo PromoContext) (feeBP int, promotion string, lines []FeeLine) {
	lines = []FeeLine{}
	feeBP = plan.FeeBP
	for _, p := range plan.Promotions {
		if p.FeeBP < feeBP && promoHolds(p.When, promo) {
			feeBP, promotion = p.FeeBP, p.Name
		}
	}
	if promotion != "" {
		lines = append(lines, FeeLine{Kind: LinePromotion, Name: promotion, DeltaBP: feeBP - plan.FeeBP,
			Detail: txt().s("promotional rate ").d(feeBP).s(" bp instead of the base ").d(plan.FeeBP).s(" bp").String()})
	}
	if b, ok := pr.Adjustments.Band(promo.PayScore); ok {
		feeBP += b.AddBP
		lines = append(lines, FeeLine{Kind: LinePayScoreBand, Name: b.Name, DeltaBP: b.AddBP,
			Detail: txt().s("pay score ").d(promo.PayScore).s(" in [").d(b.MinPayScore).s(", ").d(b.MaxPayScore).s("]").String()})
	}
	if s, ok := pr.Adjustments.Subsidy(promo.MerchantID); ok {
		feeBP -= s.SubsidyBP
		lines = append(lines, FeeLine{Kind: LineMerchantSubsidy, Name: s.Name, DeltaBP: -s.SubsidyBP,
			Detail: txt().s("merchant ").s(promo.MerchantID).s(" subsidises ").d(s.SubsidyBP).s(" bp").String()})
	}
	switch {
	case feeBP > pr.MaxFeeBP:
		lines = append(lines, FeeLine{Kind: LineClamp, Name: "max_fee_bp", DeltaBP: pr.MaxFeeBP - feeBP,
			Detail: txt().s("the product's highest fee is ").d(pr.MaxFeeBP).s(" bp a period").String()})
		feeBP = pr.MaxFeeBP
	case feeBP < pr.MinFeeBP:
		lines = append(lines, FeeLine{Kind: LineClamp, Name: "min_fee_bp", DeltaBP: pr.MinFeeBP - feeBP,
			Detail: txt().s("the product's lowest fee is ").d(pr.MinFeeBP).s(" bp a period").String()})
		feeBP = pr.MinFeeBP
	}
	return feeBP, promotion, lines
}

// PayLaterBillOf dates the bill of a pay-later purchase made at t, under a
// validated policy that offers pay later, in the policy's zone: a purchase
// up to the end of the statement day is on that day's statement, a later
// one on next month's; the bill is due days_to_due days after its
// statement date.
func PayLaterBillOf(p *policy.Policy, t time.Time) PayLaterBill {
	pl := p.Pricing.PayLater
	loc := p.Location()
	y, m, d := t.In(loc).Date()
	// Civil dates are counted in UTC, where every day has 24 hours.
	purchase := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if d > pl.StatementDay {
		m++ // time.Date normalises month 13 to January of the next year
	}
	statement := time.Date(y, m, pl.StatementDay, 0, 0, 0, 0, time.UTC)
	due := statement.AddDate(0, 0, pl.DaysToDue)
	after := due.AddDate(0, 0, 1)
	return PayLaterBill{
		PurchaseDate:     purchase.Format(time.DateOnly),
		StatementDate:    statement.Format(time.DateOnly),
		DueDate:          due.Format(time.DateOnly),
		OverdueFrom:      time.Date(after.Year(), after.Month(), after.Day(), 0, 0, 0, 0, loc),
		InterestFreeDays: int(due.Sub(purchase) / (24 * time.Hour)),
		LongestFreeDays:  pl.LongestFreeDays(),
	}
}

// promoHolds: every condition the promotion sets holds for the payment.
func promoHolds(when policy.Condition, c PromoContext) bool {
	return (when.Scene == "" || when.Scene == c.Scene) &&
		(!when.NewUser || c.NewUser) &&
		(!when.Invited || c.Invited)
}

// irr returns the monthly rate r ≥ 0 at which the payments, made at the end
// of months 1…n, are worth the amount lent today. The present value falls
// strictly as r rises, so the root is unique; Newton's method runs inside a
// bracket that bisection keeps shrinking, so it always converges.
func irr(amount float64, payments []float64) float64 {
	npv := func(r float64) (v, dv float64) {
		d := 1.0
		for k, pay := range payments {
			d /= 1 + r
			v += pay * d
			dv -= float64(k+1) * pay * d / (1 + r)
		}
		return v - amount, dv
	}
	lo, hi := 0.0, 1.0
	if v, _ := npv(lo); v <= 0 {
		return 0 // nothing paid beyond the principal
	}
	for v, _ := npv(hi); v > 0 && hi < 1e6; v, _ = npv(hi) {
		lo, hi = hi, hi*2
	}
	r := (lo + hi) / 2
	for range 200 {
		v, dv := npv(r)
		if v > 0 {
			lo = r
		} else {
			hi = r
		}
		next := r - v/dv
		if dv == 0 || math.IsNaN(next) || next <= lo || next >= hi {
			next = (lo + hi) / 2
		}
		if math.Abs(next-r) < 1e-15 || hi-lo < 1e-15 {
			return next
		}
		r = next
	}
	return r
}
