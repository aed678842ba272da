package credit

import (
	"strings"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// CodeQuotaExceeded is the code of a credit purchase above the available
// quota (DOMAIN.md §3). A policy whose reasons catalogue defines it wins
// over the built-in text (see ReasonOf).
const CodeQuotaExceeded = policy.CodeQuotaExceeded

// Codes of a quota held back (Evaluate): by the standard tier's cap, by
// the per-recompute guardrail.
const (
	CodeTierCap   = "FENQI_TIER_CAP"
	CodeGuardrail = "FENQI_GUARDRAIL"
)

// OfferCheckQuota is the name of the offer's quota check (Check.Name).
const OfferCheckQuota = "available_quota"

// builtinReasons are the texts of the codes the credit core emits that the
// presets do not catalogue, in the catalogue's style.
var builtinReasons = map[string]events.ReasonCode{
	CodeQuotaExceeded: {
		Code:    CodeQuotaExceeded,
		Message: "Amount above your available quota (超出可用额度)",
		Advice:  "Choose a smaller amount, or repay outstanding installments to free quota (降低金额, 或先还款释放额度)",
	},
	policy.CodeFrozen: {
		Code:    policy.CodeFrozen,
		Message: "Installments are suspended on this account (账户分期功能已冻结)",
		Advice:  "Repay the overdue bill, or settle the court judgement; installments resume once the cause is cleared (结清逾期账单或履行判决后恢复)",
	},
	CodeTierCap: {
		Code:    CodeTierCap,
		Message: "Quota held at the standard tier's cap (额度受标准档上限限制)",
		Advice:  "Meet the quality-user standards to unlock the high tier (达到优质用户标准可解锁更高额度)",
	},
	CodeGuardrail: {
		Code:    CodeGuardrail,
		Message: "Quota raised step by step (额度逐步提升)",
		Advice:  "The rest can come at the next recompute if your record stays as good (保持良好记录, 下次评估可继续提升)",
	},
	policy.CodeAlertThreshold: {
		Code:    policy.CodeAlertThreshold,
		Message: "A payment at or above the alert amount you set (达到您设置的提醒金额)",
		Advice:  "If it was not you, freeze your account and contact support (非本人操作请立即冻结账户并联系客服)",
	},
}

// Builtin is the credit core's own text of a code the presets do not
// catalogue (FENQI_QUOTA_EXCEEDED, FENQI_FROZEN, FENQI_ALERT_THRESHOLD,
// FENQI_TIER_CAP, FENQI_GUARDRAIL),
// and false for any other code.
func Builtin(code string) (events.ReasonCode, bool) {
	rc, ok := builtinReasons[code]
	return rc, ok
}

// ReasonOf is the policy's catalogue entry of a code, else the credit
// core's built-in one, else the bare code.
func ReasonOf(p *policy.Policy, code string) events.ReasonCode {
	if rc, ok := p.Reason(code); ok {
		return rc
	}
	if rc, ok := builtinReasons[code]; ok {
		return rc
	}
	return events.ReasonCode{Code: code, Message: code}
}

// OfferRequest is a credit purchase a user asks the price of, and what is
// known of the user.
type OfferRequest struct {
	AmountFen int64
	Periods   int // 1 = pay later
	// Context is the purchase's scene, merchant and time and the user's
	// pay score and promotion conditions.
	Context PromoContext
	// Eligible and IneligibleReasons are the user's quota evaluation's
	// verdict (Result.Eligible and Result.Reasons; an active override makes
	// the user eligible, as it wins over the gates for the quota).
	Eligible          bool
	IneligibleReasons []events.ReasonCode
	// Frozen: the user's installments are suspended (FENQI_FROZEN).
	Frozen bool
	// AvailableFen is the quota the purchase may draw on.
	AvailableFen int64
}

// Offer is the answer to an OfferRequest: a quote, or a refusal.
type Offer struct {
	Accepted bool
	Quote    QuoteResult  // when Accepted
	Refusal  OfferRefusal // when not
}

// OfferRefusal says why a purchase is refused, with every code that
// applies and its advice, as the payment rules would refuse it.
type OfferRefusal struct {
	// Error is every reason in one sentence.
	Error        string `json:"error"`
	Eligible     bool   `json:"eligible"`
	AvailableFen int64  `json:"available_fen"`
	// Reasons are the catalogue entries of every code that applies, each
	// once: the failing eligibility gates', the scene's, then
	// FENQI_QUOTA_EXCEEDED.
	Reasons []events.ReasonCode `json:"reason_codes"`
	// Checks are the scene's checks and the quota check, passed or not
	// (the quota is not checked for an ineligible user, whose quota is 0
	// because of the gates).
	Checks []Check `json:"checks"`
	// Scene is the scene check in full.
	Scene SceneCheck `json:"scene_check"`
}

// MakeOffer prices a credit purchase (Quote) and refuses it as the payment
// rules would (DOMAIN.md §3, §5): when the user is frozen (FENQI_FROZEN),
// when the user is not eligible (the
// failing gates' codes), when the scene refuses it (CheckScene:
// WECHAT_CREDIT_401, WECHAT_ORDER_500), or when the amount is above
// AvailableFen (FENQI_QUOTA_EXCEEDED). Every reason that applies is
// reported. An accepted quote carries the scene's quota pool and second
// verification.
//
// The error is Quote's, for an amount or a period count no offer can have.
func MakeOffer(p *policy.Policy, req OfferRequest) (Offer, error) {
	q, err := Quote(p, req.AmountFen, req.Periods, req.Context)
	if err != nil {
		return Offer{}, err
	}
	r, ok := Verdict(p, req)
	if !ok {
		return Offer{Refusal: r}, nil
	}
	q.Scene, q.QuotaPool, q.SecondVerification = r.Scene.Scene, r.Scene.QuotaPool, r.Scene.SecondVerification
	return Offer{Accepted: true, Quote: q}, nil
}

// Verdict judges a credit purchase as MakeOffer and the payment rules do,
// without pricing it: true when it is accepted, else the refusal with
// every reason that applies. Periods is not read.
func Verdict(p *policy.Policy, req OfferRequest) (OfferRefusal, bool) {
	scene := CheckScene(p, req.Context.Scene, req.AmountFen, req.Context.PayScore)
	r := OfferRefusal{Eligible: req.Eligible, AvailableFen: req.AvailableFen, Reasons: []events.ReasonCode{},
		Checks: append([]Check{}, scene.Checks...), Scene: scene}
	seen := map[string]bool{}
	add := func(rc events.ReasonCode) {
		if !seen[rc.Code] {
			seen[rc.Code] = true
			r.Reasons = append(r.Reasons, rc)
		}
	}
	var why []string
	if req.Frozen {
		add(ReasonOf(p, policy.CodeFrozen))
		why = append(why, "installments are suspended on this account")
	}
	if !req.Eligible {
		codes := make([]string, 0, len(req.IneligibleReasons))
		for _, rc := range req.IneligibleReasons {
			add(rc)
			codes = append(codes, rc.Code)
		}
		why = append(why, "not eligible for credit ("+strings.Join(codes, ", ")+")")
	}
	for _, rc := range scene.Reasons {
		add(rc)
	}
	why = append(why, scene.Detail...)
	if req.Eligible {
		detail := txt().s("asked ").d64(req.AmountFen).s(" fen, available ").d64(req.AvailableFen).s(" fen").String()
		quota := Check{Name: OfferCheckQuota, Passed: req.AmountFen <= req.AvailableFen, Detail: detail}
		if !quota.Passed {
			quota.Code = CodeQuotaExceeded
			add(ReasonOf(p, CodeQuotaExceeded))
			why = append(why, "amount exceeds the available quota ("+detail+")")
		}
		r.Checks = append(r.Checks, quota)
	}
	if len(why) > 0 {
		r.Error = strings.Join(why, "; ")
		return r, false
	}
	return r, true
}
