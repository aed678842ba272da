package credit

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// Quote errors; Quote wraps them with the amount and the period count.
var (
	ErrInvalidAmount     = errors.New("amount must be between 1 fen and 10^14 fen")
	ErrPeriodsNotOffered = errors.New("period count not offered by the policy")
)

// maxQuoteFen keeps amount × basis points inside int64.
const maxQuoteFen = 100_000_000_000_000 // 10^14 fen = 10^12 yuan

// PromoContext is what decides whether a promotional rate applies.
type PromoContext struct {
	Scene   events.Scene // the payment's scene
	NewUser bool         // the user's first installment plan
	Invited bool         // the user was invited to the offer
}

// Installment is one period of a repayment schedule.
type Installment struct {
	Period       int   `json:"period"` // 1-based; paid one month after the previous
	PrincipalFen int64 `json:"principal_fen"`
	FeeFen       int64 `json:"fee_fen"`
	PaymentFen   int64 `json:"payment_fen"` // principal + fee
}

// QuoteResult is the price of paying AmountFen in Periods monthly
// installments. (Go does not let the type share the function's name.)
type QuoteResult struct {
	Product       string `json:"product"`
	PolicyVersion string `json:"policy_version"`
	AmountFen     int64  `json:"amount_fen"`
	Periods       int    `json:"periods"`
	// BaseFeeBP is the plan's base fee per period, FeeBP the one applied
	// (a promotion's when Promotion names one), in basis points of the
	// original principal.
	BaseFeeBP int    `json:"base_fee_bp"`
	FeeBP     int    `json:"fee_bp"`
	Promotion string `json:"promotion,omitempty"`

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
}

// Quote prices an installment plan under a validated policy.
//
// The fee is charged on the original principal every period: each
// period's fee is AmountFen × FeeBP / 10,000 rounded half up to the fen,
// the same in every period, so TotalFeeFen = Periods × that fee. The
// principal is split into equal whole-fen parts; the remainder (fewer fen
// than Periods) is paid with the first installment. The lowest
// promotional rate whose condition holds replaces the base rate.
//
// It refuses amounts outside [1, 10^14] fen (ErrInvalidAmount) and period
// counts the policy does not offer (ErrPeriodsNotOffered).
func Quote(p *policy.Policy, amountFen int64, periods int, promo PromoContext) (QuoteResult, error) {
	if amountFen <= 0 || amountFen > maxQuoteFen {
		return QuoteResult{}, fmt.Errorf("credit: quote %d fen over %d periods: %w", amountFen, periods, ErrInvalidAmount)
	}
	plan, ok := p.Plan(periods)
	if !ok {
		offered := make([]int, 0, len(p.Pricing.Plans))
		for _, pl := range p.Pricing.Plans {
			offered = append(offered, pl.Periods)
		}
		slices.Sort(offered)
		return QuoteResult{}, fmt.Errorf("credit: quote %d fen over %d periods: %w (%s offers %v)",
			amountFen, periods, ErrPeriodsNotOffered, p.Product, offered)
	}
	q := QuoteResult{
		Product:       p.Product,
		PolicyVersion: p.Version,
		AmountFen:     amountFen,
		Periods:       periods,
		BaseFeeBP:     plan.FeeBP,
		FeeBP:         plan.FeeBP,
	}
	for _, pr := range plan.Promotions {
		if pr.FeeBP < q.FeeBP && promoHolds(pr.When, promo) {
			q.FeeBP, q.Promotion = pr.FeeBP, pr.Name
		}
	}

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
