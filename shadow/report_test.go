package shadow

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

const (
	liveV   = "2025.03-live"
	shadowV = "2025.04-cand"
)

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// decision makes a decision of any type; version is its policy version.
func decision(id, typ, user, rule, action, version string, at time.Time, detail any, codes ...string) events.Decision {
	rcs := []events.ReasonCode{}
	for _, c := range codes {
		rcs = append(rcs, events.ReasonCode{Code: c, Message: c})
	}
	return events.Decision{
		ID: id, Type: typ, Subject: user, Time: at,
		Data: events.DecisionData{
			UserID: user, CausationID: "cause-" + id, Rule: rule, Action: action,
			ReasonCodes: rcs, PolicyVersion: version, Detail: detail,
		},
	}
}

func alert(id, user, rule, action, version string, at time.Time, codes ...string) events.Decision {
	return decision(id, events.TypeDecisionAlert, user, rule, action, version, at, map[string]any{"amount_fen": 100}, codes...)
}

// quota makes a quota decision whose detail is a map, as a policy's
// detail marshals.
func quota(id, user, version string, at time.Time, quotaFen int64, elig []string, factors ...Factor) events.Decision {
	if elig == nil {
		elig = []string{}
	}
	detail := map[string]any{
		"quota_fen": quotaFen, "old_quota_fen": 0, "eligible": len(elig) == 0,
		"eligibility_codes": elig, "score": 0.5, "tier": "B", "decided_by": "model", "factors": factors,
	}
	return decision(id, events.TypeDecisionQuota, user, "quota", "QUOTA_UPDATED", version, at, detail)
}

func pair(live, cand []events.Decision) []Record { return Pair(liveV, shadowV, live, cand) }

func one(d events.Decision) []events.Decision { return []events.Decision{d} }

// handRecords is a small set whose report the tests below work out by
// hand.
func handRecords() []Record {
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	var recs []Record
	add := func(r []Record) { recs = append(recs, r...) }
	// An action that changes: SMS_VERIFY → REFUSE.
	add(pair(one(alert("a1", "u1", "night_large_payment", "SMS_VERIFY", liveV, at(1))),
		one(alert("a1", "u1", "night_large_payment", "REFUSE", shadowV, at(1)))))
	// Only the live policy alerts.
	add(pair(one(alert("a2", "u2", "velocity", "SMS_VERIFY", liveV, at(2))), nil))
	// Only the candidate alerts.
	add(pair(nil, one(alert("a3", "u3", "other_city_login", "FACE_VERIFY", shadowV, at(3)))))
	// The same alert.
	add(pair(one(alert("a4", "u1", "alert_threshold", "NOTIFY_USER", liveV, at(4))),
		one(alert("a4", "u1", "alert_threshold", "NOTIFY_USER", shadowV, at(4)))))
	// The same rule and action, other reason codes.
	add(pair(one(alert("a5", "u2", "night_large_payment", "SMS_VERIFY", liveV, at(5), "FENQI_NIGHT")),
		one(alert("a5", "u2", "night_large_payment", "SMS_VERIFY", shadowV, at(5), "FENQI_NIGHT", "FENQI_LARGE"))))
	// Freezes and an unfreeze only one side makes.
	add(pair(nil, one(decision("f1", events.TypeDecisionFrozen, "u4", "overdue_freeze", "INSTALLMENTS_SUSPENDED", shadowV, at(6), nil))))
	add(pair(one(decision("f2", events.TypeDecisionFrozen, "u5", "judicial_freeze", "INSTALLMENTS_SUSPENDED", liveV, at(7), nil)), nil))
	add(pair(nil, one(decision("f3", events.TypeDecisionUnfrozen, "u6", "overdue_freeze", "INSTALLMENTS_RESUMED", shadowV, at(8), nil))))

	// Quotas: u1 twice (the later pair counts), u2 the same, u3 up.
	fl := []Factor{{Name: "pay_score", Weight: 0.35, Contribution: 0.30}, {Name: "assets", Weight: 0.25, Contribution: 0.10}}
	fs := []Factor{{Name: "pay_score", Weight: 0.40, Contribution: 0.34}, {Name: "device", Weight: 0.05, Contribution: 0.04}}
	add(pair(one(quota("q1old", "u1", liveV, at(0), 500000, nil)),
		one(quota("q1old", "u1", shadowV, at(0), 800000, []string{"FENQI_OLD_CODE"}))))
	add(pair(one(quota("q1", "u1", liveV, at(9), 1000000, nil, fl...)),
		one(quota("q1", "u1", shadowV, at(9), 850000, []string{"FENQI_LOW_SCORE"}, fs...))))
	add(pair(one(quota("q2", "u2", liveV, at(9), 200000, nil)),
		one(quota("q2", "u2", shadowV, at(9), 200000, nil))))
	add(pair(one(quota("q3", "u3", liveV, at(10), 300000, []string{"FENQI_NO_HISTORY", "FENQI_LOW_ACTIVITY"})),
		one(quota("q3", "u3", shadowV, at(10), 325050, []string{"FENQI_LOW_ACTIVITY"}))))
	return recs
}

func TestBuildCounts(t *testing.T) {
	r := Build(handRecords())
	if r.Records != 12 || r.Duplicates != 0 {
		t.Errorf("records %d, duplicates %d; want 12, 0", r.Records, r.Duplicates)
	}
	if want := (DiffCounts{Same: 2, Changed: 5, Added: 3, Removed: 2}); r.Diffs != want {
		t.Errorf("diffs %+v; want %+v", r.Diffs, want)
	}
	if !reflect.DeepEqual(r.LivePolicyVersions, []string{liveV}) || !reflect.DeepEqual(r.ShadowPolicyVersions, []string{shadowV}) {
		t.Errorf("versions %v / %v", r.LivePolicyVersions, r.ShadowPolicyVersions)
	}
	if !r.From.Equal(t0) || !r.To.Equal(t0.Add(10*time.Hour)) {
		t.Errorf("time range %v..%v", r.From, r.To)
	}
	want := []RuleAction{
		{Rule: "alert_threshold", Action: "NOTIFY_USER", Live: 1, Shadow: 1, Same: 1},
		{Rule: "judicial_freeze", Action: "INSTALLMENTS_SUSPENDED", Live: 1, Removed: 1},
		{Rule: "night_large_payment", Action: "REFUSE", Shadow: 1, Added: 1},
		{Rule: "night_large_payment", Action: "SMS_VERIFY", Live: 2, Shadow: 1, Changed: 1, Removed: 1},
		{Rule: "other_city_login", Action: "FACE_VERIFY", Shadow: 1, Added: 1},
		{Rule: "overdue_freeze", Action: "INSTALLMENTS_RESUMED", Shadow: 1, Added: 1},
		{Rule: "overdue_freeze", Action: "INSTALLMENTS_SUSPENDED", Shadow: 1, Added: 1},
		{Rule: "quota", Action: "QUOTA_UPDATED", Live: 4, Shadow: 4, Same: 1, Changed: 3},
		{Rule: "velocity", Action: "SMS_VERIFY", Live: 1, Removed: 1},
	}
	if !reflect.DeepEqual(r.ByRuleAction, want) {
		t.Errorf("by rule and action:\n got %+v\nwant %+v", r.ByRuleAction, want)
	}
	for _, x := range r.ByRuleAction {
		if x.Live != x.Same+x.Changed+x.Removed || x.Shadow != x.Same+x.Changed+x.Added {
			t.Errorf("%s/%s: counts do not add up: %+v", x.Rule, x.Action, x)
		}
	}
	wantAlerts := []AlertCount{
		{Rule: "alert_threshold", Live: 1, Shadow: 1},
		{Rule: "night_large_payment", Live: 2, Shadow: 2},
		{Rule: "other_city_login", Shadow: 1},
		{Rule: "velocity", Live: 1},
	}
	if !reflect.DeepEqual(r.Alerts, wantAlerts) {
		t.Errorf("alerts %+v; want %+v", r.Alerts, wantAlerts)
	}
}

// A changed action on its own: removed from the old action, added to the
// new one, changed under neither.
func TestBuildChangedAction(t *testing.T) {
	r := Build(pair(one(alert("a", "u", "night_large_payment", "SMS_VERIFY", liveV, t0)),
		one(alert("a", "u", "night_large_payment", "REFUSE", shadowV, t0))))
	want := []RuleAction{
		{Rule: "night_large_payment", Action: "REFUSE", Shadow: 1, Added: 1},
		{Rule: "night_large_payment", Action: "SMS_VERIFY", Live: 1, Removed: 1},
	}
	if r.Diffs != (DiffCounts{Changed: 1}) || !reflect.DeepEqual(r.ByRuleAction, want) {
		t.Errorf("diffs %+v, rows %+v; want changed 1, %+v", r.Diffs, r.ByRuleAction, want)
	}
	if want := []AlertCount{{Rule: "night_large_payment", Live: 1, Shadow: 1}}; !reflect.DeepEqual(r.Alerts, want) {
		t.Errorf("alerts %+v; want %+v", r.Alerts, want)
	}
}

func TestBuildQuotaMoves(t *testing.T) {
	q := Build(handRecords()).Quota
	if q.Pairs != 4 || q.Unreadable != 0 || q.Users != 3 || q.Up != 1 || q.Down != 1 || q.Unchanged != 1 {
		t.Errorf("pairs %d unreadable %d users %d up %d down %d unchanged %d; want 4 0 3 1 1 1",
			q.Pairs, q.Unreadable, q.Users, q.Up, q.Down, q.Unchanged)
	}
	// Shifts: u1 −150000 (its later pair), u2 0, u3 +25050.
	if q.TotalShiftFen != -124950 || q.MeanShiftFen != -41650 || q.MedianShiftFen != 0 ||
		q.P10ShiftFen != -120000 || q.P90ShiftFen != 20040 {
		t.Errorf("total %d mean %d median %d p10 %d p90 %d; want -124950 -41650 0 -120000 20040",
			q.TotalShiftFen, q.MeanShiftFen, q.MedianShiftFen, q.P10ShiftFen, q.P90ShiftFen)
	}
	counts := map[string]int{}
	for _, b := range q.Histogram {
		counts[b.Label] = b.Count
	}
	if len(q.Histogram) != 7 || counts["-5000 to -1000"] != 1 || counts["0"] != 1 || counts["0 to 1000"] != 1 {
		t.Errorf("histogram %+v", q.Histogram)
	}
	if len(q.Largest) != 2 {
		t.Fatalf("largest %+v; want u1 and u3 (u2 did not move)", q.Largest)
	}
	u1, u3 := q.Largest[0], q.Largest[1]
	if u1.UserID != "u1" || u1.ID != "q1" || u1.LiveQuotaFen != 1000000 || u1.ShadowQuotaFen != 850000 || u1.ShiftFen != -150000 {
		t.Errorf("largest[0] %+v", u1)
	}
	if u3.UserID != "u3" || u3.ShiftFen != 25050 {
		t.Errorf("largest[1] %+v", u3)
	}
	if !reflect.DeepEqual(u1.ShadowEligibilityCodes, []string{"FENQI_LOW_SCORE"}) || u1.LiveEligibilityCodes != nil ||
		!u1.LiveEligible || u1.ShadowEligible {
		t.Errorf("u1 eligibility: live %v (%t), shadow %v (%t)", u1.LiveEligibilityCodes, u1.LiveEligible, u1.ShadowEligibilityCodes, u1.ShadowEligible)
	}
	wantFactors := []FactorMove{
		{Name: "pay_score", InLive: true, InShadow: true, LiveWeight: 0.35, ShadowWeight: 0.40, LiveContribution: 0.30, ShadowContribution: 0.34},
		{Name: "assets", InLive: true, LiveWeight: 0.25, LiveContribution: 0.10},
		{Name: "device", InShadow: true, ShadowWeight: 0.05, ShadowContribution: 0.04},
	}
	if !reflect.DeepEqual(u1.Factors, wantFactors) {
		t.Errorf("u1 factors:\n got %+v\nwant %+v", u1.Factors, wantFactors)
	}
}

func TestBuildEligibility(t *testing.T) {
	got := Build(handRecords()).Eligibility
	// FENQI_OLD_CODE is only in u1's earlier pair: not counted.
	want := []EligibilityCount{{Code: "FENQI_LOW_SCORE", Gained: 1}, {Code: "FENQI_NO_HISTORY", Lost: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("eligibility %+v; want %+v", got, want)
	}
}

func TestBuildFreezes(t *testing.T) {
	r := Build(handRecords())
	if len(r.Freezes.Added) != 1 || len(r.Freezes.Removed) != 1 || len(r.Unfreezes.Added) != 1 || len(r.Unfreezes.Removed) != 0 {
		t.Fatalf("freezes %+v, unfreezes %+v", r.Freezes, r.Unfreezes)
	}
	want := DecisionRow{UserID: "u4", CausationID: "cause-f1", Rule: "overdue_freeze", Action: "INSTALLMENTS_SUSPENDED",
		ID: "f1", Time: t0.Add(6 * time.Hour)}
	if r.Freezes.Added[0] != want {
		t.Errorf("added freeze %+v; want %+v", r.Freezes.Added[0], want)
	}
	if got := r.Freezes.Removed[0]; got.UserID != "u5" || got.Rule != "judicial_freeze" {
		t.Errorf("removed freeze %+v", got)
	}
	if got := r.Unfreezes.Added[0]; got.UserID != "u6" || got.Action != "INSTALLMENTS_RESUMED" {
		t.Errorf("added unfreeze %+v", got)
	}
}

// moveRecords makes one quota pair per user with the given shifts (fen)
// from a live quota of 10,000 yuan.
func moveRecords(shifts map[string]int64) []Record {
	var recs []Record
	for user, s := range shifts {
		id := "q-" + user
		recs = append(recs, pair(one(quota(id, user, liveV, t0, 1000000, nil)), one(quota(id, user, shadowV, t0, 1000000+s, nil)))...)
	}
	return recs
}

func TestBuildLargestOrder(t *testing.T) {
	shifts := map[string]int64{
		"zed": 0, "b": -90000, "a": 90000, "c": 90000, // ties by |shift|: a, b, c
		"big": 700000, "neg": -800000, "one": 1,
	}
	for i := range 25 {
		shifts[fmt.Sprintf("m%02d", i)] = int64(1000 + i)
	}
	q := Build(moveRecords(shifts)).Quota
	if len(q.Largest) != LargestMoves {
		t.Fatalf("%d largest; want %d", len(q.Largest), LargestMoves)
	}
	var got []string
	for _, m := range q.Largest[:7] {
		got = append(got, m.UserID)
	}
	want := []string{"neg", "big", "a", "b", "c", "m24", "m23"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("largest start %v; want %v", got, want)
	}
	if last := q.Largest[LargestMoves-1]; last.UserID != "m10" {
		t.Errorf("20th largest %s; want m10", last.UserID)
	}
	if q.Users != len(shifts) || q.Unchanged != 1 {
		t.Errorf("users %d unchanged %d", q.Users, q.Unchanged)
	}
	counts := map[string]int{}
	for _, b := range q.Histogram {
		counts[b.Label] = b.Count
	}
	want2 := map[string]int{"< -5000": 1, "-1000 to 0": 1, "0": 1, "0 to 1000": 28, "> 5000": 1}
	for label, n := range want2 {
		if counts[label] != n {
			t.Errorf("bucket %q: %d; want %d (%+v)", label, counts[label], n, q.Histogram)
		}
	}
}

func TestShiftBucketsCoverAll(t *testing.T) {
	b := ShiftBuckets()
	if b[0].MinFen != math.MinInt64 || b[len(b)-1].MaxFen != math.MaxInt64 {
		t.Fatalf("open ends %+v", b)
	}
	for i := 1; i < len(b); i++ {
		if b[i].MinFen != b[i-1].MaxFen+1 {
			t.Errorf("gap or overlap between %+v and %+v", b[i-1], b[i])
		}
	}
}

func TestBuildOrderIndependent(t *testing.T) {
	recs := append(handRecords(), moveRecords(map[string]int64{"x": 5, "y": -5, "z": 123456})...)
	// A duplicate (a redelivered record) is counted once, wherever it is.
	recs = append(recs, recs[3])
	want := Build(recs)
	if want.Duplicates != 1 {
		t.Errorf("duplicates %d; want 1", want.Duplicates)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		shuffled := append([]Record(nil), recs...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if got := Build(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: report differs:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// Records through Marshal and Unmarshal (as read from the topic) make the
// same report, even from decisions whose times are not in UTC.
func TestBuildRoundTrip(t *testing.T) {
	recs := handRecords()
	cst := time.FixedZone("CST", 8*3600)
	for i := range recs {
		recs[i].Time = recs[i].Time.In(cst)
	}
	want := Build(recs)
	var back []Record
	for _, r := range recs {
		b, err := Marshal(r)
		if err != nil {
			t.Fatalf("marshal %s: %v", r.ID, err)
		}
		r2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("unmarshal %s: %v", r.ID, err)
		}
		back = append(back, r2)
	}
	if got := Build(back); !reflect.DeepEqual(got, want) {
		t.Errorf("report after the round trip differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestBuildEmpty(t *testing.T) {
	r := Build(nil)
	if r.Records != 0 || r.Quota.Users != 0 || len(r.Quota.Histogram) != 7 || !r.From.IsZero() {
		t.Errorf("empty report %+v", r)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
}

func TestBuildUnreadableQuota(t *testing.T) {
	bad := quota("q", "u", liveV, t0, 1, nil)
	bad.Data.Detail = map[string]any{"quota_fen": "lots"}
	r := Build(pair(one(bad), one(quota("q", "u", shadowV, t0, 2, nil))))
	if r.Quota.Unreadable != 1 || r.Quota.Pairs != 0 || r.Quota.Users != 0 {
		t.Errorf("quota %+v; want one unreadable pair", r.Quota)
	}
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{
		0: "0.00", 5: "0.05", -5: "-0.05", 100: "1.00", 123456: "1,234.56", -150000: "-1,500.00",
		100000000: "1,000,000.00", math.MinInt64: "-92,233,720,368,547,758.08",
	} {
		if got := Yuan(fen); got != want {
			t.Errorf("Yuan(%d) = %q; want %q", fen, got, want)
		}
	}
	if got := SignedYuan(25050); got != "+250.50" {
		t.Errorf("SignedYuan(25050) = %q", got)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := Build(handRecords()).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	// The sections, in order.
	last := -1
	for _, s := range []string{liveV, "Decisions by rule and action", "Alerts per rule", "Quota moves",
		"Largest moves", "Factor breakdowns", "Freezes", "Unfreezes", "Eligibility codes"} {
		i := strings.Index(out, s)
		if i < 0 || i < last {
			t.Errorf("section %q missing or out of order", s)
		}
		last = i
	}
	for _, s := range []string{
		shadowV, "-1,500.00", "+250.50", "-1,249.50", "10,000.00", "8,500.00", "FENQI_LOW_SCORE",
		"night_large_payment", "REFUSE", "u4", "cause-f1",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q", s)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestWriteErrors(t *testing.T) {
	r := Build(handRecords())
	if err := r.WriteTable(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTable: %v; want the writer's error", err)
	}
	if err := r.WriteHTML(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteHTML: %v; want the writer's error", err)
	}
}

// syntheticRecords is a larger, varied set for the HTML page and its
// screenshot: n users with quota moves of every size, alerts of several
// rules, freezes, and a user id and a rule name that need escaping.
func syntheticRecords(n int) []Record {
	rng := rand.New(rand.NewPCG(7, 11))
	rules := []string{"night_large_payment", "velocity", "other_city_login", "new_device_large_payment", "other_city_then_large_payment", "<i>rule</i>"}
	factors := func(scale float64) []Factor {
		return []Factor{
			{Name: "pay_score", Weight: 0.35 * scale, Contribution: 0.3 * scale},
			{Name: "assets", Weight: 0.25, Contribution: 0.12 * scale},
			{Name: "stability", Weight: 0.20, Contribution: 0.15},
			{Name: "social", Weight: 0.15, Contribution: 0.05 * scale},
			{Name: "device", Weight: 0.05, Contribution: 0.04},
		}
	}
	var recs []Record
	for i := range n {
		user := fmt.Sprintf("user-%04d", i)
		if i == 3 {
			user = "<b>x</b>"
		}
		at := t0.Add(time.Duration(i) * time.Minute)
		liveQ := int64(rng.IntN(50000)) * 100
		var shift int64
		switch k := rng.IntN(10); {
		case k < 2:
			shift = 0
		case k < 6:
			shift = int64(rng.NormFloat64() * 60000)
		default:
			shift = int64(rng.NormFloat64() * 400000)
		}
		liveCodes, candCodes := []string(nil), []string(nil)
		if rng.IntN(8) == 0 {
			candCodes = []string{"FENQI_LOW_SCORE"}
		}
		if rng.IntN(10) == 0 {
			liveCodes = []string{"FENQI_NO_HISTORY"}
		}
		id := "q-" + user
		recs = append(recs, pair(one(quota(id, user, liveV, at, liveQ, liveCodes, factors(1)...)),
			one(quota(id, user, shadowV, at, max(0, liveQ+shift), candCodes, factors(1+float64(shift)/1e6)...)))...)

		rule := rules[rng.IntN(len(rules))]
		aid := fmt.Sprintf("a-%d", i)
		switch k := rng.IntN(6); k {
		case 0:
			recs = append(recs, pair(one(alert(aid, user, rule, "SMS_VERIFY", liveV, at)), nil)...)
		case 1, 2:
			recs = append(recs, pair(nil, one(alert(aid, user, rule, "SMS_VERIFY", shadowV, at)))...)
		case 3:
			recs = append(recs, pair(one(alert(aid, user, rule, "SMS_VERIFY", liveV, at)), one(alert(aid, user, rule, "REFUSE", shadowV, at)))...)
		default:
			recs = append(recs, pair(one(alert(aid, user, rule, "SMS_VERIFY", liveV, at)), one(alert(aid, user, rule, "SMS_VERIFY", shadowV, at)))...)
		}
		if i%17 == 0 {
			fid := fmt.Sprintf("f-%d", i)
			fr := decision(fid, events.TypeDecisionFrozen, user, "overdue_freeze", "INSTALLMENTS_SUSPENDED", shadowV, at, nil)
			if i%34 == 0 {
				fr.Data.PolicyVersion = liveV
				recs = append(recs, pair(one(fr), nil)...)
			} else {
				recs = append(recs, pair(nil, one(fr))...)
			}
		}
	}
	return recs
}
