package credit

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

func codesOf(rcs []events.ReasonCode) []string {
	out := []string{}
	for _, rc := range rcs {
		out = append(out, rc.Code)
	}
	return out
}

// DOMAIN.md §3 and §5: an offer refuses what the payment rules refuse, with
// the same codes, every one that applies, and their advice.
func TestDomain5OfferRefusesWhatThePaymentRulesRefuse(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	at := time.Date(2026, 3, 17, 10, 0, 0, 0, shanghai)
	ineligible := []events.ReasonCode{p.ReasonCode(policy.CodeCreditLow), p.ReasonCode(policy.CodeActivityLow)}
	cases := []struct {
		name      string
		amount    int64
		periods   int
		scene     events.Scene
		payScore  int
		eligible  bool
		available int64
		codes     []string // nil: accepted
		errText   []string
	}{
		{"offline retail at 5,000 yuan", 500_000, 3, events.SceneOfflineRetail, 700, true, 2_000_000, nil, nil},
		{"offline retail at 5,000.01 yuan", 500_001, 3, events.SceneOfflineRetail, 700, true, 2_000_000,
			[]string{policy.CodeOrderLimited}, []string{"scene offline_retail allows at most 500000 fen a payment, asked 500001"}},
		{"offline retail at 6,000 yuan, pay later too", 600_000, 1, events.SceneOfflineRetail, 700, true, 2_000_000,
			[]string{policy.CodeOrderLimited}, nil},
		{"education at 599: not eligible, and the scene says so too, once", 100_000, 12, events.SceneEducation, 599, false, 0,
			[]string{policy.CodeCreditLow, policy.CodeActivityLow}, []string{"not eligible for credit (WECHAT_CREDIT_401, FENQI_ACTIVITY_LOW)", "needs pay score 650, have 599"}},
		{"education at 600", 100_000, 12, events.SceneEducation, 600, true, 2_000_000,
			[]string{policy.CodeCreditLow}, []string{"scene education needs pay score 650, have 600"}},
		{"education at 620", 100_000, 12, events.SceneEducation, 620, true, 2_000_000, []string{policy.CodeCreditLow}, nil},
		{"education at 650", 100_000, 12, events.SceneEducation, 650, true, 2_000_000, nil, nil},
		{"medical at 649", 100_000, 6, events.SceneMedical, 649, true, 2_000_000, []string{policy.CodeCreditLow}, nil},
		{"the whole available quota", 2_000_000, 24, events.SceneEcommerce, 780, true, 2_000_000, nil, nil},
		{"a fen over the available quota", 2_000_001, 24, events.SceneEcommerce, 780, true, 2_000_000,
			[]string{CodeQuotaExceeded}, []string{"amount exceeds the available quota (asked 2000001 fen, available 2000000 fen)"}},
		{"pay later over the available quota", 300_000, 1, "", 780, true, 200_000, []string{CodeQuotaExceeded}, nil},
		{"over the scene's limit and the quota", 600_000, 3, events.SceneOfflineRetail, 700, true, 100_000,
			[]string{policy.CodeOrderLimited, CodeQuotaExceeded}, nil},
		{"ineligible: the gates' codes, not the quota's", 10_000, 3, events.SceneOther, 0, false, 0,
			[]string{policy.CodeCreditLow, policy.CodeActivityLow}, []string{"not eligible for credit"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := OfferRequest{AmountFen: tc.amount, Periods: tc.periods, Eligible: tc.eligible, AvailableFen: tc.available,
				Context: PromoContext{Scene: tc.scene, PayScore: tc.payScore, At: at}}
			if !tc.eligible {
				req.IneligibleReasons = ineligible
			}
			o, err := MakeOffer(p, req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.codes == nil {
				if !o.Accepted || o.Quote.AmountFen != tc.amount || o.Quote.Periods != tc.periods {
					t.Errorf("refused: %+v", o.Refusal)
				}
				return
			}
			r := o.Refusal
			if o.Accepted || !slices.Equal(codesOf(r.Reasons), tc.codes) || r.Eligible != tc.eligible || r.AvailableFen != tc.available {
				t.Fatalf("offer %+v; want refused with %v", o, tc.codes)
			}
			for _, rc := range r.Reasons {
				if rc.Message == "" || rc.Advice == "" || rc.Message == rc.Code {
					t.Errorf("reason %+v without its text", rc)
				}
			}
			if r.Error == "" {
				t.Errorf("no error text")
			}
			for _, want := range tc.errText {
				if !strings.Contains(r.Error, want) {
					t.Errorf("error %q, want %q in it", r.Error, want)
				}
			}
			// Every failing check names its code; the quota is checked
			// only for an eligible user.
			quota := slices.IndexFunc(r.Checks, func(c Check) bool { return c.Name == OfferCheckQuota })
			if (quota >= 0) != tc.eligible {
				t.Errorf("checks %+v: quota check present %v, want %v", r.Checks, quota >= 0, tc.eligible)
			}
			for _, c := range r.Checks {
				if c.Passed == (c.Code != "") || c.Detail == "" {
					t.Errorf("check %+v", c)
				}
			}
		})
	}
}

// An accepted offer is the quote, with the scene's pool and second
// verification; pay later is dated from the purchase time.
func TestOfferAccepted(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	at := time.Date(2026, 1, 20, 15, 0, 0, 0, shanghai)
	o, err := MakeOffer(p, OfferRequest{AmountFen: 300_000, Periods: 12, Eligible: true, AvailableFen: 2_000_000,
		Context: PromoContext{Scene: events.SceneEducation, PayScore: 660, MerchantID: "m-new-oriental", At: at}})
	if err != nil || !o.Accepted {
		t.Fatalf("%+v %v", o, err)
	}
	q := o.Quote
	if q.Scene != events.SceneEducation || q.QuotaPool != policy.PoolSpecialTemporary || q.SecondVerification != "enrolment_check" ||
		q.FeeBP != 110 || len(q.Adjustments) != 1 || q.PayLater != nil {
		t.Errorf("quote %+v", q)
	}

	o, err = MakeOffer(p, OfferRequest{AmountFen: 300_000, Periods: 1, Eligible: true, AvailableFen: 300_000,
		Context: PromoContext{Scene: events.SceneLocalLife, PayScore: 620, At: at}})
	if err != nil || !o.Accepted {
		t.Fatalf("%+v %v", o, err)
	}
	if b := o.Quote.PayLater; b == nil || b.DueDate != "2026-03-02" || o.Quote.TotalFeeFen != 0 || o.Quote.FeeBP != 0 ||
		len(o.Quote.Adjustments) != 0 || o.Quote.QuotaPool != policy.PoolSharedWeilidai {
		t.Errorf("pay later %+v (bill %+v)", o.Quote, b)
	}
}

func TestOfferBadInput(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	for _, tc := range []struct {
		amount  int64
		periods int
		want    error
	}{{0, 3, ErrInvalidAmount}, {100, 5, ErrPeriodsNotOffered}, {100, 1, ErrNoPurchaseTime}} {
		if _, err := MakeOffer(p, OfferRequest{AmountFen: tc.amount, Periods: tc.periods, Eligible: true, AvailableFen: 1_000}); !errors.Is(err, tc.want) {
			t.Errorf("%d fen over %d: %v, want %v", tc.amount, tc.periods, err, tc.want)
		}
	}
}

// A policy's catalogue entry of FENQI_QUOTA_EXCEEDED wins over the
// built-in text.
func TestReasonOf(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	if rc := ReasonOf(p, CodeQuotaExceeded); !strings.Contains(rc.Message, "WeChat") {
		t.Errorf("the preset's own text: %+v", rc)
	}
	p.Reasons = slices.DeleteFunc(p.Reasons, func(r policy.Reason) bool { return r.Code == CodeQuotaExceeded })
	if rc := ReasonOf(p, CodeQuotaExceeded); rc.Code != CodeQuotaExceeded || rc.Message == "" || rc.Advice == "" {
		t.Errorf("built-in %+v", rc)
	}
	if rc := ReasonOf(p, policy.CodeOrderLimited); rc != p.ReasonCode(policy.CodeOrderLimited) {
		t.Errorf("catalogued %+v", rc)
	}
	p.Reasons = append(p.Reasons, policy.Reason{Code: CodeQuotaExceeded, Message: "over", Advice: "less"})
	if rc := ReasonOf(p, CodeQuotaExceeded); rc.Message != "over" || rc.Advice != "less" {
		t.Errorf("the policy's text does not win: %+v", rc)
	}
	if rc := ReasonOf(p, "NO_SUCH_CODE"); rc.Message != "NO_SUCH_CODE" {
		t.Errorf("unknown code %+v", rc)
	}
}
