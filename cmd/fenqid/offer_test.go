package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
)

// offerRefusal is the 422 body of /offer, every field (decoded strictly).
type offerRefusal struct {
	Error        string              `json:"error"`
	QuotaFen     int64               `json:"quota_fen"`
	AvailableFen int64               `json:"available_fen"`
	Eligible     bool                `json:"eligible"`
	Reasons      []events.ReasonCode `json:"reason_codes"`
	Checks       []credit.Check      `json:"checks"`
	Scene        credit.SceneCheck   `json:"scene_check"`
}

func (r offerRefusal) codes() []string {
	out := []string{}
	for _, rc := range r.Reasons {
		out = append(out, rc.Code)
	}
	return out
}

// withPayScore is history(user, now) whose latest profile, an hour before
// now, carries the pay score.
func withPayScore(user string, now time.Time, score int) []state.Item {
	items := history(user, now)
	pr := *items[0].Event.Profile
	pr.PayScore = score
	return append(items, state.Item{Topic: topicProfiles, Offset: -1, Event: &events.Event{
		ID: fmt.Sprintf("%s-profile-%d", user, score), Type: events.TypeProfile, Source: "//test", Subject: user,
		Time: now.Add(-time.Hour), Profile: &pr,
	}})
}

// special grants user a special temporary quota for 30 days (education
// and medical purchases draw on it) through the API.
func (e *adminEnv) special(t *testing.T, user string, fen int64) {
	t.Helper()
	body := fmt.Sprintf(`{"quota_fen": %d, "reason": "enrolled at a partner school", "expires_at": %q}`, fen,
		adminNow.Add(30*24*time.Hour).UTC().Format(time.RFC3339))
	if status, got := e.send(t, http.MethodPut, "/v1/users/"+user+"/special-quota", "Bearer "+testWriteSecret, body); status != http.StatusAccepted {
		t.Fatalf("grant a special quota: %d %s", status, got)
	}
}

// quote asks for an offer that must be accepted, and decodes it strictly:
// fenqictl offer decodes credit.QuoteResult.
func (e *adminEnv) quote(t *testing.T, user, query string) (credit.QuoteResult, map[string]json.RawMessage) {
	t.Helper()
	status, ctype, body := e.get(t, "/v1/users/"+user+"/offer?"+query)
	if status != http.StatusOK || ctype != "application/json" {
		t.Fatalf("%s: %d %s\n%s", query, status, ctype, body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var q credit.QuoteResult
	if err := dec.Decode(&q); err != nil {
		t.Fatalf("%s: %v\n%s", query, err, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	return q, raw
}

// refusal asks for an offer that must be refused with 422, and decodes the
// refusal strictly.
func (e *adminEnv) refusal(t *testing.T, user, query string) offerRefusal {
	t.Helper()
	status, ctype, body := e.get(t, "/v1/users/"+user+"/offer?"+query)
	if status != http.StatusUnprocessableEntity || ctype != "application/json" {
		t.Fatalf("%s: %d %s, want 422\n%s", query, status, ctype, body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r offerRefusal
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s: %v\n%s", query, err, body)
	}
	for _, rc := range r.Reasons {
		if rc.Message == "" || rc.Advice == "" || rc.Message == rc.Code {
			t.Errorf("%s: reason %+v without its text", query, rc)
		}
	}
	return r
}

func TestOffer(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-1001", adminNow))
	e.recompute(t)
	e.special(t, "u-1001", 5_000_000) // education and medical draw on it

	t.Run("12 periods within the quota", func(t *testing.T) {
		t.Parallel()
		q, _ := e.quote(t, "u-1001", "amount_fen=600000&periods=12")
		if q.AmountFen != 600_000 || q.Periods != 12 || len(q.Schedule) != 12 || q.Product != "wechat" || q.PolicyVersion != wechatVersion {
			t.Fatalf("quote %+v", q)
		}
		var principal, fees, total int64
		for i, in := range q.Schedule {
			if in.Period != i+1 || in.PaymentFen != in.PrincipalFen+in.FeeFen {
				t.Errorf("installment %+v", in)
			}
			principal += in.PrincipalFen
			fees += in.FeeFen
			total += in.PaymentFen
		}
		if principal != 600_000 || fees != q.TotalFeeFen || total != q.TotalPaymentFen {
			t.Errorf("principal %d fees %d total %d; quote totals %d %d", principal, fees, total, q.TotalFeeFen, q.TotalPaymentFen)
		}
		// wechat: 1% a period for 12 periods, no promotion, and a pay
		// score of 780 is in no band.
		if q.BaseFeeBP != 100 || q.FeeBP != 100 || q.Promotion != "" || len(q.Adjustments) != 0 || q.PayLater != nil ||
			q.TotalFeeFen != 72_000 || q.NominalAnnualRate <= 0.12 {
			t.Errorf("fee %d bp (base %d) promotion %q lines %+v total fee %d nominal rate %v",
				q.FeeBP, q.BaseFeeBP, q.Promotion, q.Adjustments, q.TotalFeeFen, q.NominalAnnualRate)
		}
	})

	t.Run("promotions from the query", func(t *testing.T) {
		t.Parallel()
		for query, promo := range map[string]string{
			"amount_fen=300000&periods=3&scene=ecommerce": "ecommerce_promotion",
			"amount_fen=300000&periods=6&new_user=true":   "new_user",
			"amount_fen=300000&periods=12&invited=true":   "invited_user",
			"amount_fen=300000&periods=3&scene=education": "",
		} {
			if q, _ := e.quote(t, "u-1001", query); q.Promotion != promo {
				t.Errorf("%s: promotion %q, want %q", query, q.Promotion, promo)
			}
		}
	})

	t.Run("a merchant's subsidy, line by line, clamped to the lowest fee", func(t *testing.T) {
		t.Parallel()
		q, raw := e.quote(t, "u-1001", "amount_fen=300000&periods=6&new_user=true&merchant_id=m-jd")
		want := []credit.FeeLine{
			{Kind: credit.LinePromotion, Name: "new_user", DeltaBP: -60},
			{Kind: credit.LineMerchantSubsidy, Name: "jd_pinduoduo_subsidy", DeltaBP: -20},
			{Kind: credit.LineClamp, Name: "min_fee_bp", DeltaBP: 20},
		}
		if q.BaseFeeBP != 120 || q.FeeBP != 60 || len(q.Adjustments) != len(want) {
			t.Fatalf("base %d fee %d lines %+v", q.BaseFeeBP, q.FeeBP, q.Adjustments)
		}
		for i, l := range q.Adjustments {
			if l.Kind != want[i].Kind || l.Name != want[i].Name || l.DeltaBP != want[i].DeltaBP {
				t.Errorf("line %d %+v, want %+v", i, l, want[i])
			}
		}
		// Money stays integer fen on the wire.
		if string(raw["total_fee_fen"]) != "10800" {
			t.Errorf("total_fee_fen %s, want 10800", raw["total_fee_fen"])
		}
		q, _ = e.quote(t, "u-1001", "amount_fen=300000&periods=12&merchant_id=m-pinduoduo")
		if q.FeeBP != 80 || len(q.Adjustments) != 1 {
			t.Errorf("12 periods at Pinduoduo: %d bp, lines %+v; want 80", q.FeeBP, q.Adjustments)
		}
	})

	t.Run("pay later: one bill, fee 0, due on the statement's due date", func(t *testing.T) {
		t.Parallel()
		// Tuesday 2026-03-17 in Shanghai, after the 10th: on the April
		// statement, due 20 days later.
		q, raw := e.quote(t, "u-1001", "amount_fen=300000&periods=1&scene=local_life")
		b := q.PayLater
		if b == nil || b.PurchaseDate != "2026-03-17" || b.StatementDate != "2026-04-10" || b.DueDate != "2026-04-30" ||
			!b.OverdueFrom.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, shanghai)) || b.InterestFreeDays != 44 || b.LongestFreeDays != 50 {
			t.Fatalf("bill %+v", b)
		}
		if q.FeeBP != 0 || q.TotalFeeFen != 0 || q.TotalPaymentFen != 300_000 || len(q.Schedule) != 1 || q.NominalAnnualRate != 0 ||
			q.QuotaPool != policy.PoolSharedWeilidai {
			t.Errorf("quote %+v", q)
		}
		var bill map[string]any
		if err := json.Unmarshal(raw["pay_later"], &bill); err != nil || bill["due_date"] != "2026-04-30" ||
			bill["overdue_from"] != "2026-05-01T00:00:00+08:00" {
			t.Errorf("pay_later %s (%v)", raw["pay_later"], err)
		}
	})

	t.Run("whole quota", func(t *testing.T) {
		t.Parallel()
		e.quote(t, "u-1001", "amount_fen=2000000&periods=24")
	})

	t.Run("over the quota: FENQI_QUOTA_EXCEEDED", func(t *testing.T) {
		t.Parallel()
		r := e.refusal(t, "u-1001", "amount_fen=2000001&periods=12")
		if !r.Eligible || r.QuotaFen != 2_000_000 || r.AvailableFen != 2_000_000 || !slices.Equal(r.codes(), []string{credit.CodeQuotaExceeded}) ||
			!strings.Contains(r.Error, "amount exceeds the available quota (asked 2000001 fen, available 2000000 fen)") {
			t.Errorf("refusal %+v", r)
		}
		if len(r.Checks) != 1 || r.Checks[0].Name != credit.OfferCheckQuota || r.Checks[0].Passed || r.Checks[0].Code != credit.CodeQuotaExceeded {
			t.Errorf("checks %+v", r.Checks)
		}
	})

	t.Run("pay later over the quota", func(t *testing.T) {
		t.Parallel()
		if r := e.refusal(t, "u-1001", "amount_fen=2000001&periods=1"); !slices.Equal(r.codes(), []string{credit.CodeQuotaExceeded}) {
			t.Errorf("refusal %+v", r)
		}
	})

	t.Run("offline retail: 5,000 yuan and 5,000.01", func(t *testing.T) {
		t.Parallel()
		q, _ := e.quote(t, "u-1001", "amount_fen=500000&periods=3&scene=offline_retail")
		if q.QuotaPool != policy.PoolPayScore || q.Scene != events.SceneOfflineRetail {
			t.Errorf("quote %+v", q)
		}
		for _, query := range []string{"amount_fen=500001&periods=3&scene=offline_retail", "amount_fen=600000&periods=1&scene=offline_retail"} {
			r := e.refusal(t, "u-1001", query)
			if !r.Eligible || !slices.Equal(r.codes(), []string{policy.CodeOrderLimited}) || r.Scene.Allowed ||
				r.Scene.SinglePaymentMaxFen != 500_000 || !strings.Contains(r.Error, "scene offline_retail allows at most 500000 fen a payment") {
				t.Errorf("%s: refusal %+v", query, r)
			}
		}
	})

	refused := []struct {
		name, user, query string
		status            int
		want              string // in the error
	}{
		{"5 periods", "u-1001", "amount_fen=600000&periods=5", http.StatusBadRequest, "5 periods are not offered by the wechat policy (it offers [1 3 6 12 24])"},
		{"periods not a number", "u-1001", "amount_fen=600000&periods=twelve", http.StatusBadRequest, `periods must be an integer, got "twelve"`},
		{"no periods", "u-1001", "amount_fen=600000", http.StatusBadRequest, `periods must be an integer, got ""`},
		{"amount not a number", "u-1001", "amount_fen=abc&periods=12", http.StatusBadRequest, `amount_fen must be a positive integer, got "abc"`},
		{"amount in yuan", "u-1001", "amount_fen=6000.00&periods=12", http.StatusBadRequest, "amount_fen"},
		{"zero amount", "u-1001", "amount_fen=0&periods=12", http.StatusBadRequest, "amount_fen"},
		{"negative amount", "u-1001", "amount_fen=-5&periods=12", http.StatusBadRequest, "amount_fen"},
		{"no amount", "u-1001", "periods=12", http.StatusBadRequest, "amount_fen"},
		{"absurd amount", "u-1001", "amount_fen=100000000000001&periods=12", http.StatusBadRequest, "amount must be between 1 fen and 10^14 fen"},
		{"unknown scene", "u-1001", "amount_fen=600000&periods=12&scene=casino", http.StatusBadRequest, `scene "casino" is not a known scene`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, ctype, body := e.get(t, "/v1/users/"+tt.user+"/offer?"+tt.query)
			var r struct{ Error string }
			if err := json.Unmarshal(body, &r); err != nil || status != tt.status || ctype != "application/json" {
				t.Fatalf("%d %s %v, want %d JSON\n%s", status, ctype, err, tt.status, body)
			}
			if !strings.Contains(r.Error, tt.want) {
				t.Errorf("error %q, want %q", r.Error, tt.want)
			}
		})
	}

	t.Run("unknown user: the gates' codes", func(t *testing.T) {
		t.Parallel()
		r := e.refusal(t, "nobody", "amount_fen=100&periods=3")
		if r.Eligible || r.QuotaFen != 0 || !slices.Contains(r.codes(), policy.CodeCreditLow) || slices.Contains(r.codes(), credit.CodeQuotaExceeded) ||
			!strings.HasPrefix(r.Error, "not eligible for credit (") {
			t.Errorf("refusal %+v, want ineligible with %s", r, policy.CodeCreditLow)
		}
	})

	t.Run("a token is required", func(t *testing.T) {
		t.Parallel()
		if status, _ := e.send(t, http.MethodGet, "/v1/users/u-1001/offer?amount_fen=100&periods=3", "", ""); status != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", status)
		}
	})
}

// DOMAIN.md §5: education and medical installments need a pay score of
// 650; 600 is enough to be eligible, not for these scenes.
func TestOfferEducationNeeds650(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	for _, score := range []int{599, 600, 620, 650} {
		e.apply(t, withPayScore(fmt.Sprintf("u-%d", score), adminNow, score))
		e.special(t, fmt.Sprintf("u-%d", score), 5_000_000)
	}
	const query = "amount_fen=100000&periods=12&scene=education"

	r := e.refusal(t, "u-599", query)
	if r.Eligible || !slices.Equal(r.codes(), []string{policy.CodeCreditLow}) || r.Scene.Allowed {
		t.Errorf("599: refusal %+v, want WECHAT_CREDIT_401 once, from the gate and the scene", r)
	}
	for _, user := range []string{"u-600", "u-620"} {
		r := e.refusal(t, user, query)
		if !r.Eligible || !slices.Equal(r.codes(), []string{policy.CodeCreditLow}) || r.Scene.MinPayScore != 650 ||
			!strings.Contains(r.Error, "scene education needs pay score 650") {
			t.Errorf("%s: refusal %+v", user, r)
		}
		// Everything else is open to them, at the band's fee.
		q, _ := e.quote(t, user, "amount_fen=100000&periods=12&scene=ecommerce")
		if q.FeeBP != 120 || len(q.Adjustments) != 1 || q.Adjustments[0].Name != "pay_score_600_649" {
			t.Errorf("%s: e-commerce quote at %d bp, lines %+v; want 120", user, q.FeeBP, q.Adjustments)
		}
	}
	q, _ := e.quote(t, "u-650", query)
	if q.SecondVerification != "enrolment_check" || q.QuotaPool != policy.PoolSpecialTemporary || q.FeeBP != 110 {
		t.Errorf("650: quote %+v, want an enrolment check and 110 bp", q)
	}
	q, _ = e.quote(t, "u-650", "amount_fen=100000&periods=6&scene=medical")
	if q.SecondVerification != "proof_of_visit" {
		t.Errorf("650 medical: %+v", q)
	}
}

// Pay later is dated in the policy's zone: 16:30 UTC on 10 January is
// already the 11th in Shanghai, past the statement day, so the bill is on
// the February statement and falls due across the end of February.
func TestOfferPayLaterAcrossAMonthEnd(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 10, 16, 30, 0, 0, time.UTC)
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-3003", now.In(shanghai)))
	e.clock.Set(now)
	e.recompute(t)
	q, _ := e.quote(t, "u-3003", "amount_fen=80000&periods=1")
	if b := q.PayLater; b == nil || b.PurchaseDate != "2026-01-11" || b.StatementDate != "2026-02-10" || b.DueDate != "2026-03-02" ||
		b.InterestFreeDays != 50 || q.TotalFeeFen != 0 {
		t.Errorf("bill %+v, quote %+v", b, q)
	}
}
