package credit

import "time"

// Facts is everything Evaluate needs to know about one user, as plain data
// a state layer fills from its rolling counters and the latest profile
// snapshot. Zero values are safe: a user with no profile fails the pay
// score, real-name and card gates.
//
// Windows: "local day" and "calendar month" are read in Location (the
// profile's zone, else the policy's Timezone). "Full calendar months" are
// the three months before the month that contains Now: evaluated on
// 2025-05-17, they are February, March and April 2025. Windows counted in
// days end at Now and include today: "the last 30 days" on 2025-05-17 are
// the local days 2025-04-18 … 2025-05-17. The lengths come from the policy
// and are named on each field.
type Facts struct {
	// Now is when the evaluation happens: the event time of the event or
	// the scheduled time of the recompute that triggered it (never the
	// wall clock, so that a replay yields the same result).
	Now time.Time
	// Location is the user's zone; nil = the policy's Timezone.
	Location *time.Location

	// Profile snapshot (events.Profile, latest by event time).

	// PayScore is the profile's pay score (0 = none).
	PayScore int
	// RealNameVerified: real-name verification is complete.
	RealNameVerified bool
	// IdentityComplete: the advanced identity fields (occupation,
	// education) are filled in.
	IdentityComplete bool
	// CardBoundSince is when the bank card was bound: the profile's
	// card_bound_since date at 00:00 in Location. Zero = no card bound.
	CardBoundSince time.Time
	// CardBankBlacklisted: the bound card's bank is on the blacklist.
	CardBankBlacklisted bool
	// WealthBalanceFen is the wealth-fund balance (理财通), fen.
	WealthBalanceFen int64
	// JudicialDefaulter: on the courts' list of judgement defaulters.
	JudicialDefaulter bool
	// LinkedAccountNegative: negative records on same-name accounts.
	LinkedAccountNegative bool

	// Activity.

	// Payments30d counts the user's payments of every scene (spending,
	// transfers, red packets, bills: the source's "日均交易笔数 含线下支付、
	// 转账等") in the last eligibility.activity_window_days (30) local days.
	// The eligibility gate and the quality standard divide it by the window.
	Payments30d int
	// LoginDays30d counts the distinct local days with at least one login
	// in the last eligibility.activity_window_days (30) local days.
	LoginDays30d int
	// MonthlySpendFen is the amount of spend-class payments
	// (events.ClassSpend) in each of the last three full calendar months,
	// oldest first. The stability factor is its coefficient of variation.
	MonthlySpendFen [3]int64
	// MonthlyLoginDays is the number of distinct local days with at least
	// one login in each of the last three full calendar months, oldest first.
	MonthlyLoginDays [3]int
	// MonthlySocial is the number of social payments (events.ClassSocial:
	// transfers and red packets) in each of the last three full calendar
	// months, oldest first. The social factor is their average.
	MonthlySocial [3]int
	// UsualDeviceLogins90d is the number of logins in the last
	// quota.factors.device.window_days (90) days from the user's usual
	// device — the device with the most logins in that window — and
	// Logins90d the number of all logins in it.
	UsualDeviceLogins90d, Logins90d int

	// Repayment record.

	// OverdueNow: a bill is past its due time and not fully paid.
	OverdueNow bool
	// MaxOverdue6m is the longest time overdue, from the due time to the
	// settlement (or to Now while unpaid), among bills that were overdue at
	// some moment of the last eligibility.serious_default_window_months (6)
	// calendar months: judged by when they were overdue, not by their due
	// date (a bill due 200 days ago and settled 20 days ago counts with its
	// 180 days). More than serious_default_overdue_days (30) × 24 h is a
	// serious default.
	MaxOverdue6m time.Duration
	// DefaultElsewhere is the date (00:00 in Location) of the latest serious
	// default other institutions reported on the profile (Weilidai
	// overdue, credit-card bad debt, PBoC record); zero when none. One
	// within the same window is a serious default too.
	DefaultElsewhere time.Time
	// OverdueEpisodes counts the bills not fully repaid by their due time,
	// however late (a second counts), settled or still open, over the
	// user's whole history: one episode per bill (DOMAIN.md §1).
	OverdueEpisodes int

	// Quota history.

	// QuotaChecks30d counts the user's quota-check requests in the last
	// quota.check_penalty.window_days (30) days, the request being answered
	// included.
	QuotaChecks30d int
	// PreviousQuotaFen is the last quota published for the user (the final
	// quota, an override's included); read only when HasPreviousQuota.
	PreviousQuotaFen int64
	HasPreviousQuota bool
	// Override is an operator's fixed quota, if one was set.
	Override *Override
}

// Override is an operator's decision that fixes a user's quota until it
// expires. While active it wins over the model, the caps, the guardrail and
// the eligibility gates (the failing gates are still reported). It is
// clamped to the product's highest quota.
type Override struct {
	QuotaFen  int64     `json:"quota_fen"`
	Reason    string    `json:"reason"`
	Operator  string    `json:"operator,omitempty"`
	ExpiresAt time.Time `json:"expires_at"` // active while Now is before it; zero = already expired
}
