package jobs_test

// The jobs' shadow policy (jobs.Config.Shadow): every recompute and every
// overdue step is decided a second time under a candidate policy, from
// the same state, and the pair goes to the shadow topic; the live
// decisions, and the state, are the live policy's alone.

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/state"
)

var shadowZone = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai") // the store's default zone
	if err != nil {
		panic(err)
	}
	return loc
}()

// shadowWorld is a world whose runner has a candidate policy beside the
// live wechat preset.
type shadowWorld struct {
	*world
	live, cand *policy.Policy
	r          *jobs.Runner
	n          int
}

func newShadowWorld(t *testing.T, start time.Time, cand *policy.Policy) *shadowWorld {
	t.Helper()
	live, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	if err := cand.Validate(); err != nil {
		t.Fatal(err)
	}
	candRules, err := scoring.NewRules(cand)
	if err != nil {
		t.Fatal(err)
	}
	w := &shadowWorld{world: newWorld(t, start, shadow.DefaultTopic), live: live, cand: cand}
	// runnerWith runs the wechat preset live.
	w.r = w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute,
		Shadow: func() (*policy.Policy, *scoring.Rules) { return cand, candRules }}, w.pub)
	return w
}

func (w *shadowWorld) id() string { w.n++; return fmt.Sprintf("sh%d", w.n) }

// applyAll applies events and fails unless every one is applied.
func (w *shadowWorld) applyAll(evs []*events.Event) {
	w.t.Helper()
	items := make([]state.Item, len(evs))
	for i, e := range evs {
		items[i] = state.Item{Event: e, Topic: 1, Offset: -1}
	}
	out, err := w.store.Apply(context.Background(), items)
	if err != nil {
		w.t.Fatal(err)
	}
	for i, o := range out {
		if o.Status != state.Applied {
			w.t.Fatalf("event %s: %v %v", evs[i].ID, o.Status, o.Err)
		}
	}
}

func (w *shadowWorld) payment(user string, at time.Time, scene events.Scene, fen int64) *events.Event {
	return &events.Event{ID: w.id(), Type: events.TypePayment, Subject: user, Time: at,
		Payment: &events.Payment{UserID: user, AmountFen: fen, Currency: "CNY", Scene: scene, MerchantID: "m",
			DeviceID: "phone", City: "shanghai", Auth: events.AuthPassword}}
}

func (w *shadowWorld) loginOn(user string, at time.Time, device string) *events.Event {
	return &events.Event{ID: w.id(), Type: events.TypeLogin, Subject: user, Time: at,
		Login: &events.Login{UserID: user, DeviceID: device, City: "shanghai", IP: "10.0.0.1", Auth: events.AuthPassword}}
}

func (w *shadowWorld) profile(user string, at time.Time, payScore int, wealthFen int64) *events.Event {
	return &events.Event{ID: w.id(), Type: events.TypeProfile, Subject: user, Time: at,
		Profile: &events.Profile{UserID: user, PayScore: payScore, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2024-01-01", WealthBalanceFen: wealthFen}}
}

// shadowRecords reads every shadow record, checking its key and diff
// header against its body.
func (w *shadowWorld) shadowRecords() []shadow.Record {
	w.t.Helper()
	var out []shadow.Record
	for _, m := range testenv.ReadAll(w.t, w.kafka.Addrs(), shadow.DefaultTopic) {
		r, err := shadow.Unmarshal(m.Value)
		if err != nil {
			w.t.Fatal(err)
		}
		if string(m.Key) != r.UserID || header(m.Headers, shadow.HeaderDiff) != r.Diff {
			w.t.Fatalf("record %s: key %q, diff header %q; body says %s, %s", r.ID, m.Key, header(m.Headers, shadow.HeaderDiff), r.UserID, r.Diff)
		}
		if r.LivePolicyVersion != w.live.Version || r.ShadowPolicyVersion != w.cand.Version {
			w.t.Fatalf("record %s: versions %q / %q, want %q / %q", r.ID, r.LivePolicyVersion, r.ShadowPolicyVersion, w.live.Version, w.cand.Version)
		}
		out = append(out, r)
	}
	return out
}

// liveDecisions reads the decisions topic: every record must be a live
// decision (a shadow record does not decode as one).
func (w *shadowWorld) liveDecisions() []events.Decision {
	w.t.Helper()
	var out []events.Decision
	for _, m := range testenv.ReadAll(w.t, w.kafka.Addrs(), "fenqi.decisions") {
		d, err := events.DecodeDecision(m.Value)
		if err != nil {
			w.t.Fatalf("the decisions topic holds a record that is no decision (a shadow record?): %v", err)
		}
		if d.Data.PolicyVersion != w.live.Version {
			w.t.Fatalf("decision %s (%s) of policy %q on the live topic, want %q", d.ID, d.Type, d.Data.PolicyVersion, w.live.Version)
		}
		out = append(out, d)
	}
	return out
}

func header(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// quotaOf is a quota decision's detail; it fails on anything else.
func quotaOf(t *testing.T, d *events.Decision) shadow.Quota {
	t.Helper()
	if d == nil {
		t.Fatal("no decision")
	}
	q, err := shadow.QuotaOf(*d)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func codesOf(d *events.Decision) []string {
	var out []string
	for _, rc := range d.Data.ReasonCodes {
		out = append(out, rc.Code)
	}
	return out
}

// DOMAIN §3: a candidate policy with other quota weights moves quotas as
// computed by hand from the model's formula, for three users: one whose
// quota the candidate raises, one it lowers, one ineligible under both
// (quota 0: "same", though its score differs). A second recompute of one
// user shows the guardrail, which bounds both policies by the live
// previous quota, hiding the difference ("same" again). The live quotas,
// the live decisions topic and the saved quotas are the live policy's.
func TestShadowPolicyNewWeightsMovesQuotasAsComputedByHand(t *testing.T) {
	t.Parallel()
	// 2026-11-20 20:00 in Shanghai: the three full months before it are
	// August, September and October; the 30 days are Oct 22 … Nov 20.
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	cand, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	// The candidate moves 0.15 of weight from assets to pay score:
	// live 0.35/0.25/0.20/0.15/0.05, candidate 0.50/0.10/0.20/0.15/0.05.
	cand.Version = "wechat-2025.1-payscore50"
	cand.Quota.Weights = policy.Weights{PayScore: 0.50, Assets: 0.10, Stability: 0.20, Social: 0.15, Device: 0.05}
	w := newShadowWorld(t, now, cand)
	if w.live.Quota.Weights == cand.Quota.Weights {
		t.Fatal("the candidate has the live weights")
	}

	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 10, 0, 0, 0, shadowZone) }
	// history gives a user, besides the profile: 5 bill payments (no spend,
	// no social) on each of the last 30 days (5.00 a day: the activity gate
	// and the quality standard), a login on each of them and on Aug 1–10
	// and Sep 1–10 (10 login days in each full month; 40 logins in the last
	// 90 days: Sep 1–10 and the 30 days, August being older), one
	// e-commerce payment on the 5th of each full month (the monthly spend)
	// and social transfers from the 6th (outside the 30 days, so that they
	// do not change the payment count).
	history := func(user string, payScore int, wealthFen int64, spend [3]int64, socialPerMonth int) []*events.Event {
		evs := []*events.Event{w.profile(user, now.AddDate(0, 0, -31), payScore, wealthFen)}
		for i := range 30 {
			at := day(time.November, 20).AddDate(0, 0, -i)
			for range 5 {
				evs = append(evs, w.payment(user, at, events.SceneBillPay, 1_000))
			}
			evs = append(evs, w.loginOn(user, at, "phone"))
		}
		for d := 1; d <= 10; d++ {
			evs = append(evs, w.loginOn(user, day(time.August, d), "phone"), w.loginOn(user, day(time.September, d), "phone"))
		}
		for i, m := range []time.Month{time.August, time.September, time.October} {
			if spend[i] > 0 {
				evs = append(evs, w.payment(user, day(m, 5), events.SceneEcommerce, spend[i]))
			}
			for k := range socialPerMonth {
				evs = append(evs, w.payment(user, day(m, 6+k), events.SceneTransfer, 2_000))
			}
		}
		return evs
	}
	var evs []*events.Event
	// ada: a quality user (pay score 780 ≥ 750, 5 payments a day, 10 login
	// days in each full month, no overdue): cap 50,000 yuan.
	evs = append(evs, history("ada", 780, 1_000_000, [3]int64{100_000, 200_000, 300_000}, 12)...)
	// bob: eligible, not a quality user (pay score 600 < 750): cap 20,000
	// yuan; 8 logins from a tablet besides the phone's 40.
	evs = append(evs, history("bob", 600, 3_000_000, [3]int64{100_000, 100_000, 400_000}, 0)...)
	for d := 1; d <= 8; d++ {
		evs = append(evs, w.loginOn("bob", day(time.November, d).Add(time.Hour), "tablet"))
	}
	// cai: pay score 580 < 600 fails a gate (WECHAT_CREDIT_401); no spend.
	evs = append(evs, history("cai", 580, 0, [3]int64{}, 0)...)
	w.applyAll(evs)

	// The factors, by hand (scoring/credit: normalised to [0, 1]).
	const (
		payZero, payFull = 550.0, 750.0
		assetsFull       = 5_000_000.0
		cvFull, cvZero   = 0.30, 1.00
		socialFull       = 20.0
		deviceFull       = 0.90
	)
	payNorm := func(score float64) float64 { return math.Min((score-payZero)/(payFull-payZero), 1) }
	stabNorm := func(cv float64) float64 { return math.Min((cvZero-cv)/(cvZero-cvFull), 1) }
	// ada: spend 1000, 2000, 3000 yuan: mean 2000, population sd
	// sqrt((1000² + 0 + 1000²)/3) = 1000·sqrt(2/3): cv = sqrt(2/3)/2 ≈ 0.4082
	// (≥ 0.30): (1 − 0.4082)/0.7 ≈ 0.8454.
	ada := [5]float64{payNorm(780) /* 1.15 → 1 */, 1_000_000 / assetsFull /* 0.2 */, stabNorm(math.Sqrt(2.0/3) / 2), 12 / socialFull /* 0.6 */, math.Min(1/deviceFull, 1) /* 40 of 40 */}
	// bob: spend 1000, 1000, 4000 yuan: mean 2000, sd sqrt((1000²·2 +
	// 2000²)/3) = 1000·sqrt(2): cv = 1/sqrt(2) ≈ 0.7071: (1 − 0.7071)/0.7 ≈
	// 0.4184; device 40 of 48 logins from the phone: (40/48)/0.9 ≈ 0.9259.
	bob := [5]float64{payNorm(600) /* 0.25 */, 3_000_000 / assetsFull /* 0.6 */, stabNorm(1 / math.Sqrt2), 0, (40.0 / 48) / deviceFull}
	// cai: (580 − 550)/200 = 0.15; no assets, no spend (stability 0), no
	// social, every login from the phone (1).
	cai := [5]float64{payNorm(580), 0, 0, 0, 1}
	liveW := [5]float64{0.35, 0.25, 0.20, 0.15, 0.05}
	candW := [5]float64{0.50, 0.10, 0.20, 0.15, 0.05}
	score := func(f, w [5]float64) float64 {
		s := 0.0
		for i := range f {
			s += f[i] * w[i] // no quota checks: the penalty is 0
		}
		return s
	}

	type want struct {
		user                 string
		liveScore, candScore float64
		liveFen, candFen     int64
		diff                 string
		decidedBy            string
		codes                []string
	}
	// The curve is linear from (0, 0) to (1, 5,000,000 fen); quotas are
	// rounded down to 10,000 fen (100 yuan); no previous quota: no guardrail.
	wants := []want{
		// live 0.35·1 + 0.25·0.2 + 0.20·0.8454 + 0.15·0.6 + 0.05·1 = 0.7091
		// → 3,545,360 fen → 3,540,000 (a quality user's cap, 5,000,000,
		// does not bind); candidate 0.50·1 + 0.10·0.2 + 0.1691 + 0.09 +
		// 0.05 = 0.8291 → 4,145,360 → 4,140,000: up 600,000 fen.
		{"ada", score(ada, liveW), score(ada, candW), 3_540_000, 4_140_000, shadow.Changed, credit.DecidedScore, nil},
		// live 0.35·0.25 + 0.25·0.6 + 0.20·0.4184 + 0 + 0.05·0.9259 = 0.3675
		// → 1,837,400 → 1,830,000 (under the standard cap, 2,000,000);
		// candidate 0.50·0.25 + 0.10·0.6 + 0.0837 + 0.0463 = 0.3150 →
		// 1,574,900 → 1,570,000: down 260,000 fen.
		{"bob", score(bob, liveW), score(bob, candW), 1_830_000, 1_570_000, shadow.Changed, credit.DecidedScore, nil},
		// live 0.35·0.15 + 0.05·1 = 0.1025, candidate 0.50·0.15 + 0.05 =
		// 0.125: ineligible either way, quota 0 with the same code: same.
		{"cai", score(cai, liveW), score(cai, candW), 0, 0, shadow.Same, credit.DecidedIneligible, []string{policy.CodeCreditLow}},
	}
	// The numbers above, as literals: the formula's arithmetic, checked once.
	for i, s := range [][2]float64{{0.70907192, 0.82907192}, {0.36748007, 0.31498007}, {0.1025, 0.125}} {
		if math.Abs(wants[i].liveScore-s[0]) > 1e-8 || math.Abs(wants[i].candScore-s[1]) > 1e-8 {
			t.Fatalf("%s: hand scores %.9f, %.9f; the comments say %.8f, %.8f", wants[i].user, wants[i].liveScore, wants[i].candScore, s[0], s[1])
		}
	}

	runOnce(t, w.r)
	recs := w.shadowRecords()
	if len(recs) != 3 {
		t.Fatalf("%d shadow records, want one per user", len(recs))
	}
	// The progress counts them by diff: ada's and bob's changed, cai's same.
	if got, want := w.r.Recomp.Shadow.Map(), map[string]int64{shadow.Same: 1, shadow.Changed: 2, shadow.Added: 0, shadow.Removed: 0}; !maps.Equal(got, want) {
		t.Errorf("recompute progress: shadow records %v, want %v", got, want)
	}
	byUser := map[string]shadow.Record{}
	for _, r := range recs {
		byUser[r.UserID] = r
	}
	check := func(wt want, r shadow.Record, oldFen int64) {
		t.Helper()
		if r.Type != events.TypeDecisionQuota || r.Rule != scoring.RuleQuota || r.Live == nil || r.Shadow == nil || r.Live.ID != r.ID || r.Shadow.ID != r.ID {
			t.Fatalf("%s: record %+v, want a quota decision of each policy with the record's id", wt.user, r)
		}
		if r.Live.Data.PolicyVersion != w.live.Version || r.Shadow.Data.PolicyVersion != cand.Version {
			t.Errorf("%s: decisions of policies %q and %q", wt.user, r.Live.Data.PolicyVersion, r.Shadow.Data.PolicyVersion)
		}
		lq, sq := quotaOf(t, r.Live), quotaOf(t, r.Shadow)
		if lq.QuotaFen != wt.liveFen || sq.QuotaFen != wt.candFen {
			t.Errorf("%s: live quota %d, shadow %d; by hand %d and %d", wt.user, lq.QuotaFen, sq.QuotaFen, wt.liveFen, wt.candFen)
		}
		if got, want := sq.QuotaFen-lq.QuotaFen, wt.candFen-wt.liveFen; got != want || r.Diff != wt.diff {
			t.Errorf("%s: the candidate moves the quota by %d (%s), by hand %d (%s)", wt.user, got, r.Diff, want, wt.diff)
		}
		if math.Abs(lq.Score-wt.liveScore) > 1e-9 || math.Abs(sq.Score-wt.candScore) > 1e-9 {
			t.Errorf("%s: scores %.9f and %.9f, by hand %.9f and %.9f", wt.user, lq.Score, sq.Score, wt.liveScore, wt.candScore)
		}
		if lq.DecidedBy != wt.decidedBy || sq.DecidedBy != wt.decidedBy {
			t.Errorf("%s: decided by %s and %s, want %s", wt.user, lq.DecidedBy, sq.DecidedBy, wt.decidedBy)
		}
		// The candidate's previous quota (its guardrail's) is the live one.
		if lq.OldQuotaFen != oldFen || sq.OldQuotaFen != oldFen {
			t.Errorf("%s: old quotas %d and %d, want the live %d", wt.user, lq.OldQuotaFen, sq.OldQuotaFen, oldFen)
		}
		if !slices.Equal(codesOf(r.Live), wt.codes) || !slices.Equal(codesOf(r.Shadow), wt.codes) {
			t.Errorf("%s: codes %v and %v, want %v", wt.user, codesOf(r.Live), codesOf(r.Shadow), wt.codes)
		}
		// The factors each carry the policy's own weight.
		for _, f := range sq.Factors {
			if f.Name == credit.FactorPayScore && f.Weight != 0.50 || f.Name == credit.FactorAssets && f.Weight != 0.10 {
				t.Errorf("%s: shadow factor %+v", wt.user, f)
			}
		}
	}
	for _, wt := range wants {
		r, ok := byUser[wt.user]
		if !ok {
			t.Fatalf("no shadow record for %s", wt.user)
		}
		check(wt, r, 0)
	}
	// The live topic: the live decisions only, the same ones the records
	// pair; and the quota saved is the live one.
	live := w.liveDecisions()
	if len(live) != 3 {
		t.Fatalf("%d live decisions, want 3 quotas", len(live))
	}
	for _, d := range live {
		if r := byUser[d.Subject]; d.ID != r.ID || quotaOf(t, &d).QuotaFen != quotaOf(t, r.Live).QuotaFen {
			t.Errorf("%s: live decision %s is not the record's live side %s", d.Subject, d.ID, r.ID)
		}
	}
	saved := func(user string) int64 {
		t.Helper()
		u, err := w.store.User(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if !u.HasQuota {
			t.Fatalf("%s: no quota saved", user)
		}
		return u.QuotaFen
	}
	for _, wt := range wants {
		if got := saved(wt.user); got != wt.liveFen {
			t.Errorf("%s: saved quota %d, want the live %d (not the candidate's %d)", wt.user, got, wt.liveFen, wt.candFen)
		}
	}

	// An hour later bob's pay score is 750: a quality user now (cap
	// 5,000,000), recomputed at once. The factors are bob's but pay score 1:
	// live 0.35 + 0.15 + 0.0837 + 0.0463 = 0.6300 → 3,149,900 → 3,140,000;
	// candidate 0.50 + 0.06 + 0.0837 + 0.0463 = 0.6900 → 3,449,900 →
	// 3,440,000. The guardrail, from the live previous quota 1,830,000:
	// ±1,830,000·0.5 = 915,000, bounds rounded inward to 10,000 fen:
	// [ceil(915,000), floor(2,745,000)] = [920,000, 2,740,000]. Both are
	// held at 2,740,000 with FENQI_GUARDRAIL: the same decision.
	w.set(now.Add(time.Hour))
	w.applyAll([]*events.Event{w.profile("bob", now.Add(time.Hour-time.Minute), 750, 3_000_000)})
	bob[0] = payNorm(750)
	runOnce(t, w.r)
	recs = w.shadowRecords()
	if len(recs) != 4 {
		t.Fatalf("%d shadow records after bob's second recompute, want 4", len(recs))
	}
	var second shadow.Record // the record of no first recompute
	for _, r := range recs {
		if r.ID != byUser[r.UserID].ID {
			second = r
		}
	}
	if second.UserID != "bob" {
		t.Fatalf("the new record %+v, want bob's second recompute", second)
	}
	bob2 := want{"bob", score(bob, liveW), score(bob, candW), 2_740_000, 2_740_000, shadow.Same, credit.DecidedGuardrailCeiling, []string{credit.CodeGuardrail}}
	if math.Abs(bob2.liveScore-0.62998007) > 1e-8 || math.Abs(bob2.candScore-0.68998007) > 1e-8 {
		t.Fatalf("bob's hand scores %.9f, %.9f", bob2.liveScore, bob2.candScore)
	}
	check(bob2, second, 1_830_000)
	if same := w.r.Recomp.Shadow.Same.Load(); same != 2 {
		t.Errorf("recompute progress: %d same records, want 2 (cai's, bob's second)", same)
	}
	if q := quotaOf(t, second.Shadow); q.Tier != credit.TierHigh || !q.Eligible {
		t.Errorf("bob's shadow quota %+v: want an eligible high-tier quota", q)
	}
	if got := saved("bob"); got != 2_740_000 {
		t.Errorf("bob's saved quota %d, want 2,740,000", got)
	}
	if n := len(w.liveDecisions()); n != 4 {
		t.Errorf("%d live decisions, want 4", n)
	}
}

// DOMAIN §6 under a candidate freeze rule: the live policy freezes a bill
// overdue more than 3 days; at each of its checks, the candidate's verdict
// on the same bill is paired with the live one (jobs' shadowOverdue: its
// freeze once past its own delay, else the latest day's reminder it
// sends). The state's freeze follows the live policy alone.
func TestShadowPolicyOverdueFreezeRule(t *testing.T) {
	t.Parallel()
	const user, bill = "olga", "bill-1"
	reminder := func(day int) string {
		return events.DecisionID(scoring.RuleOverdueReminder, user, bill, fmt.Sprint(day))
	}
	freeze := events.DecisionID(scoring.RuleOverdueFreeze, events.TypeDecisionFrozen, user, "bill:"+bill)
	type rec struct{ id, diff string }
	cases := []struct {
		name string
		cand func(p *policy.Policy)
		// the records of the live checks at day 1, day 2 and the freeze
		steps [3][]rec
	}{
		{
			// A freeze after 2 days (48 h + 1 s): at day 1 both remind
			// (the same decision, though the candidate's freeze_at is a day
			// earlier); at the live day-2 check, 48 h 1 min overdue, the
			// candidate freezes where the live policy reminds; at the live
			// freeze both freeze (one id: the same decision).
			name: "freeze after 2 days",
			cand: func(p *policy.Policy) { p.Risk.OverdueFreezeAfterDays = 2 },
			steps: [3][]rec{
				{{reminder(1), shadow.Same}},
				{{reminder(2), shadow.Removed}, {freeze, shadow.Added}},
				{{freeze, shadow.Same}},
			},
		},
		{
			// No freeze: reminders on days 1, 2 and 3; the live freeze is
			// the candidate's day-3 reminder.
			name: "freeze off",
			cand: func(p *policy.Policy) { p.Risk.Rules.OverdueFreeze.Enabled = false },
			steps: [3][]rec{
				{{reminder(1), shadow.Same}},
				{{reminder(2), shadow.Same}},
				{{freeze, shadow.Removed}, {reminder(3), shadow.Added}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
			cand, err := policy.Preset("wechat")
			if err != nil {
				t.Fatal(err)
			}
			cand.Version = "wechat-2025.1-" + tc.name
			tc.cand(cand)
			w := newShadowWorld(t, dueAt.Add(-time.Hour), cand)
			w.applyAll([]*events.Event{due(w.id(), user, bill, 50_000, dueAt)})
			frozen := func() bool {
				t.Helper()
				u, err := w.store.User(context.Background(), user)
				if err != nil {
					t.Fatal(err)
				}
				return u.FrozenOverdue
			}
			var seen int // overdue records read so far
			for i, at := range []time.Duration{24 * time.Hour, 48*time.Hour + time.Minute, 72*time.Hour + time.Second} {
				w.set(dueAt.Add(at))
				runOnce(t, w.r)
				var got []rec
				var step []shadow.Record
				for _, r := range w.shadowRecords() {
					if r.Type != events.TypeDecisionQuota { // the recomputes' records aside
						step = append(step, r)
					}
				}
				step, seen = step[seen:], len(step)
				for _, r := range step {
					got = append(got, rec{r.ID, r.Diff})
					if r.UserID != user || r.CausationID != "bill:"+bill {
						t.Errorf("due+%v: record %+v", at, r)
					}
					if r.Live != nil && r.Live.Data.PolicyVersion != w.live.Version || r.Shadow != nil && r.Shadow.Data.PolicyVersion != cand.Version {
						t.Errorf("due+%v: record %s: decisions of the wrong policies", at, r.ID)
					}
				}
				if !slices.Equal(got, tc.steps[i]) {
					t.Errorf("due+%v: records %v, want %v", at, got, tc.steps[i])
				}
				// Frozen in state at the live freeze only.
				if want := i == 2; frozen() != want {
					t.Errorf("due+%v: frozen in state %v, want %v (the live policy's)", at, frozen(), want)
				}
			}
			// The progress counts the overdue records by diff.
			want := map[string]int64{}
			for _, st := range tc.steps {
				for _, r := range st {
					want[r.diff]++
				}
			}
			for _, d := range []string{shadow.Same, shadow.Changed, shadow.Added, shadow.Removed} {
				if got := w.r.Overdue.Shadow.Map()[d]; got != want[d] {
					t.Errorf("overdue progress: %d %s records, want %d", got, d, want[d])
				}
			}
			// The live topic: the live policy's two reminders and freeze.
			var ids []string
			for _, d := range w.liveDecisions() {
				if d.Type != events.TypeDecisionQuota {
					ids = append(ids, d.ID)
				}
			}
			if want := []string{reminder(1), reminder(2), freeze}; !slices.Equal(ids, want) {
				t.Errorf("live overdue decisions %v, want %v", ids, want)
			}
		})
	}
}
