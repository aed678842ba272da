package scoring

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
)

// marshalled publishes d as events.MarshalDecision would and reads its data
// back, detail included.
func marshalled(t *testing.T, d events.Decision) (events.Decision, map[string]any) {
	t.Helper()
	raw, err := events.MarshalDecision(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.DecodeDecision(raw)
	if err != nil {
		t.Fatal(err)
	}
	var detail map[string]any
	if b, ok := back.Data.Detail.(json.RawMessage); ok && len(b) > 0 {
		if err := json.Unmarshal(b, &detail); err != nil {
			t.Fatal(err)
		}
	}
	return back, detail
}

func TestOverdue(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	due := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	d := r.Overdue(user, "b-7781", 50_000, due, 2, due.Add(72*time.Hour+time.Second))

	back, detail := marshalled(t, d)
	if back.Type != events.TypeDecisionOverdue || back.Subject != user || back.Data.UserID != user ||
		back.Data.CausationID != "bill:b-7781" || back.Data.Rule != RuleOverdueReminder ||
		back.Data.Action != ActionRemind || back.Data.PolicyVersion != wechatVersion {
		t.Fatalf("overdue decision: %+v", back)
	}
	if !d.Time.Equal(due.Add(48 * time.Hour)) {
		t.Errorf("time %s, want the due time + 2 days", d.Time)
	}
	if len(back.Data.ReasonCodes) != 1 || back.Data.ReasonCodes[0].Code != policy.CodeOverdueNow || back.Data.ReasonCodes[0].Advice == "" {
		t.Errorf("reason codes %+v", back.Data.ReasonCodes)
	}
	want := map[string]any{"bill_id": "b-7781", "days_overdue": 2.0, "amount_fen": 50000.0, "due_at": "2026-03-09T16:00:00Z",
		"freeze_at": "2026-03-12T16:00:01Z"}
	if len(detail) != len(want) {
		t.Errorf("detail %v, want %v", detail, want)
	}
	for k, v := range want {
		if detail[k] != v {
			t.Errorf("detail[%s] = %v, want %v", k, detail[k], v)
		}
	}
	if _, detail := marshalled(t, r.Overdue(user, "b-7781", 50_000, due, 2, time.Time{})); detail["freeze_at"] != nil {
		t.Errorf("no freeze (the rule off): freeze_at %v", detail["freeze_at"])
	}

	ids := []struct {
		name string
		d    events.Decision
		same bool
	}{
		{"the same bill and day again", r.Overdue(user, "b-7781", 50_000, due, 2, time.Time{}), true},
		{"another amount, same bill and day", r.Overdue(user, "b-7781", 40_000, due, 2, time.Time{}), true},
		{"the next day", r.Overdue(user, "b-7781", 50_000, due, 3, time.Time{}), false},
		{"another bill", r.Overdue(user, "b-7782", 50_000, due, 2, time.Time{}), false},
		{"another user", r.Overdue("u2", "b-7781", 50_000, due, 2, time.Time{}), false},
	}
	for _, tc := range ids {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if (tc.d.ID == d.ID) != tc.same {
				t.Fatalf("id %s vs %s: want same=%v", tc.d.ID, d.ID, tc.same)
			}
		})
	}
}

func TestFreeze(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	when := time.Date(2026, 3, 13, 0, 0, 0, 0, shanghai)
	in := map[string]any{"bill_id": "b-7781", "days_overdue": 4}
	cases := []struct {
		name     string
		build    func() events.Decision
		typ      string
		action   string
		rule     string
		code     string // "" = no reason code
		cause    string
		extraKey string // a detail key the caller passed
	}{
		{"overdue freeze", func() events.Decision { return r.Frozen(user, "bill:b-7781", CauseOverdue, when, in) },
			events.TypeDecisionFrozen, ActionInstallmentsSuspended, RuleOverdueFreeze, policy.CodeOverdueNow, CauseOverdue, "bill_id"},
		{"judicial freeze", func() events.Decision { return r.Frozen(user, "pr-9", CauseJudicialDefaulter, when, nil) },
			events.TypeDecisionFrozen, ActionInstallmentsSuspended, RuleJudicialFreeze, policy.CodeJudicialDefaulter, CauseJudicialDefaulter, ""},
		{"unknown cause", func() events.Decision { return r.Frozen(user, "op-1", "operator", when, nil) },
			events.TypeDecisionFrozen, ActionInstallmentsSuspended, "freeze", "", "operator", ""},
		{"overdue unfreeze", func() events.Decision { return r.Unfrozen(user, "paid-b-7781", CauseOverdue, when, in) },
			events.TypeDecisionUnfrozen, ActionInstallmentsResumed, RuleOverdueFreeze, CodeOverdueSettled, CauseOverdue, "bill_id"},
		{"judicial unfreeze", func() events.Decision { return r.Unfrozen(user, "pr-10", CauseJudicialDefaulter, when, nil) },
			events.TypeDecisionUnfrozen, ActionInstallmentsResumed, RuleJudicialFreeze, CodeJudicialCleared, CauseJudicialDefaulter, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tc.build()
			back, detail := marshalled(t, d)
			if back.Type != tc.typ || back.Data.Action != tc.action || back.Data.Rule != tc.rule ||
				back.Subject != user || back.Data.UserID != user || back.Data.PolicyVersion != wechatVersion ||
				!d.Time.Equal(when) || back.Data.CausationID != d.Data.CausationID {
				t.Fatalf("decision %+v", back)
			}
			var codes []string
			for _, rc := range back.Data.ReasonCodes {
				codes = append(codes, rc.Code)
			}
			if want := []string{tc.code}; (tc.code == "" && len(codes) != 0) || (tc.code != "" && !slices.Equal(codes, want)) {
				t.Errorf("reason codes %v, want %q", codes, tc.code)
			}
			if detail["cause"] != tc.cause {
				t.Errorf("detail cause %v, want %s", detail["cause"], tc.cause)
			}
			if tc.extraKey != "" && detail[tc.extraKey] == nil {
				t.Errorf("detail lost the caller's %s: %v", tc.extraKey, detail)
			}
			if again := tc.build(); again.ID != d.ID {
				t.Errorf("id not stable: %s then %s", d.ID, again.ID)
			}
			if want := events.DecisionID(tc.rule, tc.typ, user, d.Data.CausationID); d.ID != want {
				t.Errorf("id %s, want DecisionID(rule, type, user, causation) %s", d.ID, want)
			}
		})
	}
	if _, ok := in["cause"]; ok || len(in) != 2 {
		t.Errorf("the caller's detail was modified: %v", in)
	}

	distinct := map[string]string{}
	for name, d := range map[string]events.Decision{
		"freeze":             r.Frozen(user, "c-1", CauseOverdue, when, nil),
		"unfreeze, same ids": r.Unfrozen(user, "c-1", CauseOverdue, when, nil),
		"judicial, same ids": r.Frozen(user, "c-1", CauseJudicialDefaulter, when, nil),
		"another causation":  r.Frozen(user, "c-2", CauseOverdue, when, nil),
		"another user":       r.Frozen("u2", "c-1", CauseOverdue, when, nil),
		"alert of that rule": r.alert(&events.Event{ID: "c-1", Subject: user}, r.overdueFreeze, nil),
	} {
		if other, dup := distinct[d.ID]; dup {
			t.Errorf("%s and %s share id %s", name, other, d.ID)
		}
		distinct[d.ID] = name
	}
	if days, on := r.OverdueFreeze(); days != 3 || !on {
		t.Errorf("OverdueFreeze = %d, %v; want 3, true", days, on)
	}
	if _, on := rulesOf(t, func(p *policy.Policy) { p.Risk.Rules.OverdueFreeze.Enabled = false }).OverdueFreeze(); on {
		t.Error("overdue freeze switched off, OverdueFreeze says on")
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	r := rulesOf(t, nil)
	evaluated := time.Date(2025, 5, 17, 10, 0, 0, 0, shanghai)
	next := evaluated.AddDate(0, 0, 90)
	eligible := credit.Facts{
		Now: evaluated, PayScore: 700, RealNameVerified: true, IdentityComplete: true,
		CardBoundSince: time.Date(2024, 1, 1, 0, 0, 0, 0, shanghai), WealthBalanceFen: 1_000_000,
		Payments30d: 120, LoginDays30d: 14, MonthlySpendFen: [3]int64{300_000, 320_000, 310_000}, MonthlyLoginDays: [3]int{12, 15, 20},
		MonthlySocial: [3]int{10, 12, 8}, UsualDeviceLogins90d: 45, Logins90d: 50, QuotaChecks30d: 1,
	}
	refused := eligible
	refused.PayScore = 580
	refused.IdentityComplete = false
	refused.CardBoundSince = time.Time{}
	refused.OverdueNow = true

	cases := []struct {
		name      string
		facts     credit.Facts
		old       int64
		causation string
		wantCodes []string
		wantElig  []string // the failing gates' codes
	}{
		{"eligible, scheduled recompute: held at the standard tier's cap", eligible, 1_500_000, "recompute:u1:2025Q2",
			[]string{credit.CodeTierCap}, []string{}},
		{"ineligible on three gates, after an event", refused, 1_500_000, "profile-u1-88",
			[]string{policy.CodeCreditLow, policy.CodeAuthIncomplete, policy.CodeOverdueNow},
			[]string{policy.CodeCreditLow, policy.CodeAuthIncomplete, policy.CodeOverdueNow}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := credit.Evaluate(p, tc.facts)
			d := r.Quota(user, tc.causation, tc.old, res, next)
			back, detail := marshalled(t, d)
			if back.Type != events.TypeDecisionQuota || back.Data.Action != ActionQuotaUpdated || back.Data.Rule != RuleQuota ||
				back.Subject != user || back.Data.UserID != user || back.Data.CausationID != tc.causation ||
				back.Data.PolicyVersion != wechatVersion || !d.Time.Equal(evaluated) {
				t.Fatalf("decision %+v", back)
			}
			var codes []string
			for _, rc := range back.Data.ReasonCodes {
				codes = append(codes, rc.Code)
				if rc.Advice == "" {
					t.Errorf("%s without advice", rc.Code)
				}
			}
			if !slices.Equal(codes, tc.wantCodes) && !(len(codes) == 0 && len(tc.wantCodes) == 0) {
				t.Errorf("reason codes %v, want %v", codes, tc.wantCodes)
			}

			if detail["old_quota_fen"] != float64(tc.old) || detail["quota_fen"] != float64(res.QuotaFen) ||
				detail["score"] != res.Score || detail["product"] != "wechat" || detail["model_version"] != p.ModelVersion ||
				detail["policy_version"] != wechatVersion || detail["next_due_at"] != next.Format(time.RFC3339) {
				t.Errorf("detail head: %v", detail)
			}
			var elig []string
			for _, c := range detail["eligibility_codes"].([]any) {
				elig = append(elig, c.(string))
			}
			if !slices.Equal(elig, tc.wantElig) && !(len(elig) == 0 && len(tc.wantElig) == 0) {
				t.Errorf("eligibility codes %v, want %v", elig, tc.wantElig)
			}
			factors := detail["factors"].([]any)
			if len(factors) != len(res.Factors) || len(factors) < 5 {
				t.Fatalf("factors %v", factors)
			}
			for i, f := range factors {
				f := f.(map[string]any)
				want := res.Factors[i]
				if f["name"] != want.Name || f["raw"] != want.Raw || f["weight"] != want.Weight ||
					f["contribution"] != want.Contribution || f["normalised"] != want.Normalised {
					t.Errorf("factor %d: %v, want %+v", i, f, want)
				}
			}
			if gates := detail["gates"].([]any); len(gates) != len(res.Gates) {
				t.Errorf("gates %v", gates)
			}

			if again := r.Quota(user, tc.causation, tc.old, res, next); again.ID != d.ID {
				t.Errorf("id not stable: %s then %s", d.ID, again.ID)
			}
			if again := r.Quota(user, tc.causation, 0, credit.Evaluate(p, eligible), next.AddDate(0, 0, 1)); again.ID != d.ID {
				t.Errorf("the id depends on more than the causation: %s then %s", d.ID, again.ID)
			}
			if other := r.Quota(user, tc.causation+"-x", tc.old, res, next); other.ID == d.ID {
				t.Errorf("two causations share id %s", d.ID)
			}
		})
	}
}
