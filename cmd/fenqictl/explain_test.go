package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
)

// The admin API's answers here are canned, but built the way fenqid builds
// them: credit.Evaluate and credit.Quote under the wechat preset, marshalled
// with the field names of cmd/fenqid's quotaView and offer refusal and with
// its encoder settings (two-space indent). cmd/fenqid's admin tests check
// the same field names against the real handler.

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

var evaluatedAt = time.Date(2026, 3, 17, 10, 0, 0, 0, shanghai)

func wechat(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goodFacts: a steady customer, eligible, not a quality user (3.9 payments
// a day), whose quota the standard tier's cap decides.
func goodFacts() credit.Facts {
	return credit.Facts{
		Now: evaluatedAt, Location: shanghai,
		PayScore: 780, RealNameVerified: true, IdentityComplete: true,
		CardBoundSince:   time.Date(2020, 1, 1, 0, 0, 0, 0, shanghai),
		WealthBalanceFen: 6_000_000, Payments30d: 117, LoginDays30d: 25,
		MonthlySpendFen:  [3]int64{1_210_000, 1_930_000, 1_720_000},
		MonthlyLoginDays: [3]int{16, 27, 24}, MonthlySocial: [3]int{7, 10, 9},
		UsualDeviceLogins90d: 72, Logins90d: 80,
	}
}

// adminJSON encodes v as fenqid's writeJSON does.
func adminJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// quotaBody is the body of GET /v1/users/{id}/quota, with cmd/fenqid's
// field names.
func quotaBody(t *testing.T, user string, published *int64, r credit.Result) []byte {
	t.Helper()
	next := r.EvaluatedAt.AddDate(0, 0, 90)
	return adminJSON(t, map[string]any{"user_id": user, "published_quota_fen": published, "next_recompute_at": next, "evaluation": r,
		"pools": []scoring.PoolView{{Pool: "pay_score", LimitFen: 2_000_000, OutstandingFen: 500_000, AvailableFen: 1_500_000}}})
}

// fakeAPI is fenqid's admin listener with canned answers; it records the
// requests it gets.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	status int
	body   []byte
}

func newFakeAPI(t *testing.T, status int, body []byte) *fakeAPI {
	t.Helper()
	f := &fakeAPI{status: status, body: body}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(r.Context()))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write(f.body)
	}))
	t.Cleanup(f.Close)
	return f
}

// only returns the one request the server got.
func (f *fakeAPI) only(t *testing.T) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 {
		t.Fatalf("%d requests to the API, want 1", len(f.reqs))
	}
	return f.reqs[0]
}

func wantAll(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

// fenqictl's quotaView has exactly the field names of the body fenqid
// writes (cmd/fenqid's TestQuotaOfAGoodCustomer pins the same four), so
// nothing of the answer is dropped when decoding.
func TestQuotaViewMatchesTheAdminBody(t *testing.T) {
	t.Parallel()
	published := int64(1_500_000)
	r := credit.Evaluate(wechat(t), goodFacts())
	body := quotaBody(t, "u-1001", &published, r)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var v quotaView
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(adminJSON(t, v), &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"evaluation", "next_recompute_at", "pools", "published_quota_fen", "user_id"}) {
		t.Errorf("quotaView fields %q", keys)
	}
	var a, b any
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(adminJSON(t, v), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip through quotaView changed the body:\n%s\nwant\n%s", adminJSON(t, v), body)
	}
}

func TestExplainEligible(t *testing.T) {
	t.Parallel()
	r := credit.Evaluate(wechat(t), goodFacts())
	if !r.Eligible || r.DecidedBy != credit.DecidedTierCap {
		t.Fatalf("the canned customer is not what the test expects: eligible %v decided by %s", r.Eligible, r.DecidedBy)
	}
	api := newFakeAPI(t, http.StatusOK, quotaBody(t, "u-1001", nil, r))
	res := runCmd(t, nil, "", "explain", "--api", api.URL, "u-1001")
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	req := api.only(t)
	if req.Method != http.MethodGet || req.URL.Path != "/v1/users/u-1001/quota" || req.URL.RawQuery != "" {
		t.Errorf("request %s %s", req.Method, req.URL)
	}
	out := res.stdout
	wantAll(t, out,
		"User u-1001: quota 20,000.00 yuan (standard tier)",
		"Evaluated 2026-03-17 10:00:00 +08:00 under policy wechat-2025.1 (wechat), model credit-5factor-1",
		"Eligible: yes, every gate passed\nGates:\n",
		"Quality user: no",
		"FAIL  payments_per_day",
		"FACTOR", "RAW", "NORMALISED", "WEIGHT", "CONTRIBUTION",
		fmt.Sprintf("Score: %.4f", r.Score),
		"from the score  "+yuan(r.RawQuotaFen),
		"tier cap        20,000.00 yuan",
		"guardrail       not applied: first quota",
		"final           20,000.00 yuan (2000000 fen), decided by the tier cap",
		"Published quota: none yet",
		"Next recompute: 2026-06-15 10:00:00 +08:00",
	)
	if strings.Contains(out, "override") {
		t.Error("an override is shown, but there is none")
	}
	// Every gate, passed.
	for _, g := range r.Gates {
		if !lineWith(out, "pass", g.Name, g.Detail) {
			t.Errorf("no line for gate %s: pass, %q", g.Name, g.Detail)
		}
	}
	// Every factor: name, raw value with its unit, normalised, weight, contribution.
	raws := map[string]string{
		credit.FactorPayScore: "780 points", credit.FactorAssets: "60,000.00 yuan", credit.FactorStability: " CV",
		credit.FactorSocial: "8.7 a month", credit.FactorDevice: "90.0% share", credit.FactorQuotaChecks: "0 checks",
	}
	if len(r.Factors) != 6 {
		t.Fatalf("%d factors", len(r.Factors))
	}
	for _, f := range r.Factors {
		weight := fmt.Sprintf("%.2f", f.Weight)
		contribution := fmt.Sprintf("%+.4f", f.Contribution+0) // +0: the penalty's −0 shows as +0.0000
		if !lineWith(out, "  "+f.Name+" ", raws[f.Name], fmt.Sprintf("%.3f", f.Normalised), weight, contribution) {
			t.Errorf("no row for factor %s with %q, %.3f, %s, %s", f.Name, raws[f.Name], f.Normalised, weight, contribution)
		}
	}
	if !lineWith(out, "quota_checks", "-0.05", "+0.0000", "3 free") {
		t.Error("the penalty's row lacks its negative weight or its note")
	}
}

// lineWith reports whether one line of out holds every part, in order.
func lineWith(out string, parts ...string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

func TestExplainIneligible(t *testing.T) {
	t.Parallel()
	f := goodFacts()
	f.PayScore, f.IdentityComplete, f.Payments30d, f.OverdueNow = 560, false, 12, true
	r := credit.Evaluate(wechat(t), f)
	if len(r.Reasons) < 4 {
		t.Fatalf("want at least 4 reasons, got %+v", r.Reasons)
	}
	published := int64(800_000)
	api := newFakeAPI(t, http.StatusOK, quotaBody(t, "u-2002", &published, r))
	res := runCmd(t, nil, "", "explain", "u-2002", "--api", api.URL)
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	out := res.stdout
	wantAll(t, out, "User u-2002: quota 0.00 yuan (no quota)", "Eligible: NO, 4 reasons\n",
		"guardrail       not applied: the user is not eligible",
		"final           0.00 yuan (0 fen), decided by a failing eligibility gate",
		"Published quota: 8,000.00 yuan (800000 fen)")
	for _, rc := range r.Reasons {
		if !lineWith(out, rc.Code, rc.Message) || !lineWith(out, "advice: "+rc.Advice) {
			t.Errorf("reason %s not shown with its message and advice", rc.Code)
		}
	}
	for _, g := range r.Gates {
		if !g.Passed && !lineWith(out, "FAIL", g.Name, g.Code, g.Detail) {
			t.Errorf("failing gate %s (%s) not shown", g.Name, g.Code)
		}
	}
}

func TestExplainGuardrailAndOverride(t *testing.T) {
	t.Parallel()
	f := goodFacts()
	f.PreviousQuotaFen, f.HasPreviousQuota = 1_000_000, true
	f.Override = &credit.Override{QuotaFen: 3_000_000, Reason: "VIP review", Operator: "ops-li",
		ExpiresAt: time.Date(2026, 4, 16, 10, 0, 0, 0, shanghai)}
	r := credit.Evaluate(wechat(t), f)
	published := int64(1_000_000)
	api := newFakeAPI(t, http.StatusOK, quotaBody(t, "u-3003", &published, r))
	res := runCmd(t, nil, "", "explain", "--api", api.URL, "u-3003")
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	wantAll(t, res.stdout,
		"User u-3003: quota 30,000.00 yuan (high tier)",
		"guardrail       5,000.00 yuan to 15,000.00 yuan around the previous 10,000.00 yuan (at most 0.5 of the previous quota either way)",
		`override        30,000.00 yuan, active until 2026-04-16 10:00 +08:00: "VIP review" by ops-li`,
		"final           30,000.00 yuan (3000000 fen), decided by an operator's override",
		"Published quota: 10,000.00 yuan (1000000 fen)")
}

func TestExplainJSON(t *testing.T) {
	t.Parallel()
	body := quotaBody(t, "u-1001", nil, credit.Evaluate(wechat(t), goodFacts()))
	api := newFakeAPI(t, http.StatusOK, body)
	res := runCmd(t, nil, "", "explain", "--json", "--api", api.URL, "u-1001")
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	if res.stdout != string(body) {
		t.Errorf("--json printed\n%s\nwant the body as it came\n%s", res.stdout, body)
	}
}

// The API's address: --api, else FENQI_API_URL, else localhost:8080; a
// base path is kept and the user id is escaped.
func TestExplainAPIAddress(t *testing.T) {
	t.Parallel()
	body := quotaBody(t, "x", nil, credit.Evaluate(wechat(t), goodFacts()))
	t.Run("from the variable", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t, http.StatusOK, body)
		if res := runCmd(t, map[string]string{"FENQI_API_URL": api.URL}, "", "explain", "u-1"); res.code() != 0 {
			t.Fatalf("exit %d: %v", res.code(), res.err)
		}
		if p := api.only(t).URL.Path; p != "/v1/users/u-1/quota" {
			t.Errorf("path %q", p)
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t, http.StatusOK, body)
		res := runCmd(t, map[string]string{"FENQI_API_URL": "http://" + testenv.ClosedAddr(t)}, "", "explain", "--api", api.URL, "u-1")
		if res.code() != 0 {
			t.Fatalf("exit %d: %v", res.code(), res.err)
		}
		api.only(t)
	})
	t.Run("base path and escaping", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t, http.StatusOK, body)
		if res := runCmd(t, nil, "", "explain", "--api", api.URL+"/fenqi/", "u 1/ä?"); res.code() != 0 {
			t.Fatalf("exit %d: %v", res.code(), res.err)
		}
		u := api.only(t).URL
		if got, want := u.EscapedPath(), "/fenqi/v1/users/u%201%2F%C3%A4%3F/quota"; got != want || u.RawQuery != "" {
			t.Errorf("path %q query %q, want %q and none", got, u.RawQuery, want)
		}
	})
}

func TestExplainFailures(t *testing.T) {
	t.Parallel()
	down := newFakeAPI(t, http.StatusServiceUnavailable,
		adminJSON(t, map[string]string{"error": "state: read 1 users: dial tcp 10.0.0.5:6379: connect: connection refused"}))
	notFenqi := newFakeAPI(t, http.StatusOK, []byte("<html>router login</html>"))
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	tests := []struct {
		name   string
		args   []string
		code   int
		err    string
		stdout string
	}{
		{"fenqid cannot read redis", []string{"explain", "--api", down.URL, "u-1"}, 1,
			"503 Service Unavailable: state: read 1 users: dial tcp 10.0.0.5:6379: connect: connection refused", ""},
		{"--json still prints the error body", []string{"explain", "--json", "--api", down.URL, "u-1"}, 1,
			"503 Service Unavailable", `"error": "state: read 1 users`},
		{"nothing listening", []string{"explain", "--api", "http://" + testenv.ClosedAddr(t), "u-1"}, 1,
			"is fenqid running, with its admin listener (-http-addr) at --api", ""},
		{"not fenqid", []string{"explain", "--api", notFenqi.URL, "u-1"}, 1, "not the answer of fenqid's admin API", ""},
		{"an old fenqid", []string{"explain", "--api", notFound.URL, "u-1"}, 1, "404 Not Found: 404 page not found", ""},
		{"no scheme", []string{"explain", "--api", "localhost:8080", "u-1"}, 2, `--api: "localhost:8080" is not an http:// or https:// URL`, ""},
		{"no host", []string{"explain", "--api", "http://", "u-1"}, 2, `--api: "http://" names no host`, ""},
		{"query in the base", []string{"explain", "--api", "http://fenqid:8080/?x=1", "u-1"}, 2, "without a query", ""},
		{"bad variable", []string{"explain", "u-1"}, 2, `is not an http:// or https:// URL`, ""},
		{"zero timeout", []string{"explain", "--timeout", "0s", "u-1"}, 2, "--timeout must be > 0", ""},
		{"no user", []string{"explain"}, 2, "want exactly one USER, got 0", ""},
		{"two users", []string{"explain", "u-1", "u-2"}, 2, "want exactly one USER, got 2", ""},
		{"empty user", []string{"explain", ""}, 2, "want exactly one USER", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var env map[string]string
			if tt.name == "bad variable" {
				env = map[string]string{"FENQI_API_URL": "fenqid:8080"}
			}
			res := runCmd(t, env, "", tt.args...)
			if res.code() != tt.code {
				t.Errorf("exit %d, want %d", res.code(), tt.code)
			}
			if res.err == nil || !strings.Contains(res.err.Error(), tt.err) {
				t.Errorf("error %v, want %q", res.err, tt.err)
			}
			if !strings.Contains(res.stdout, tt.stdout) {
				t.Errorf("stdout %q lacks %q", res.stdout, tt.stdout)
			}
		})
	}
}

func TestExplainTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	res := runCmd(t, nil, "", "explain", "--timeout", "200ms", "--api", slow.URL, "u-1")
	if res.code() != 1 || res.err == nil || !strings.Contains(res.err.Error(), "Timeout") {
		t.Errorf("exit %d error %v, want 1 and a timeout", res.code(), res.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with --timeout 200ms", d)
	}
}

func quote(t *testing.T, amount int64, periods int, promo credit.PromoContext) credit.QuoteResult {
	t.Helper()
	q, err := credit.Quote(wechat(t), amount, periods, promo)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestOffer(t *testing.T) {
	t.Parallel()
	q := quote(t, 600_000, 12, credit.PromoContext{})
	api := newFakeAPI(t, http.StatusOK, adminJSON(t, q))
	res := runCmd(t, nil, "", "offer", "u-1001", "--api", api.URL, "--amount-fen", "600000", "--periods", "12")
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	req := api.only(t)
	if req.URL.Path != "/v1/users/u-1001/offer" || req.URL.RawQuery != "amount_fen=600000&periods=12" {
		t.Errorf("request %s", req.URL)
	}
	out := res.stdout
	wantAll(t, out,
		"Offer to u-1001: 6,000.00 yuan in 12 monthly installments (policy wechat-2025.1, wechat)",
		"Fee: 1.00% of the amount a period\n",
		"PERIOD", "PRINCIPAL", "FEE", "PAYMENT",
		"(amounts in yuan)",
		fmt.Sprintf("Annual rate (IRR): %.2f%% nominal, %.2f%% effective", 100*q.NominalAnnualRate, 100*q.EffectiveAnnualRate),
	)
	for _, in := range q.Schedule {
		if !lineWith(out, fmt.Sprint(in.Period), "500.00", "60.00", "560.00") {
			t.Errorf("no row for period %d", in.Period)
		}
	}
	if !lineWith(out, "total", "6,000.00", "720.00", "6,720.00") {
		t.Error("no total row")
	}
}

func TestOfferPromotionAndQuery(t *testing.T) {
	t.Parallel()
	q := quote(t, 300_001, 3, credit.PromoContext{Scene: events.SceneEcommerce})
	api := newFakeAPI(t, http.StatusOK, adminJSON(t, q))
	res := runCmd(t, map[string]string{"FENQI_API_URL": api.URL}, "", "offer", "--amount-fen=300001", "--periods=3",
		"--scene", "ecommerce", "--new-user", "--invited", "u-1001")
	if res.code() != 0 {
		t.Fatalf("exit %d: %v", res.code(), res.err)
	}
	if got, want := api.only(t).URL.RawQuery, "amount_fen=300001&invited=true&new_user=true&periods=3&scene=ecommerce"; got != want {
		t.Errorf("query %q, want %q", got, want)
	}
	// The remainder fen goes with the first installment.
	wantAll(t, res.stdout, "Fee: 0.80% of the amount a period, promotion ecommerce_promotion (base 1.50%)")
	if !lineWith(res.stdout, "1", "1,000.01", "24.00", "1,024.01") || !lineWith(res.stdout, "3", "1,000.00", "24.00", "1,024.00") {
		t.Errorf("schedule rows wrong:\n%s", res.stdout)
	}
}

func TestOfferJSON(t *testing.T) {
	t.Parallel()
	body := adminJSON(t, quote(t, 600_000, 6, credit.PromoContext{}))
	api := newFakeAPI(t, http.StatusOK, body)
	res := runCmd(t, nil, "", "offer", "--json", "--api", api.URL, "--amount-fen", "600000", "--periods", "6", "u-1")
	if res.code() != 0 || res.stdout != string(body) {
		t.Errorf("exit %d, stdout\n%s\nwant the body\n%s", res.code(), res.stdout, body)
	}
}

func TestOfferRefused(t *testing.T) {
	t.Parallel()
	p := wechat(t)
	overQuota := adminJSON(t, map[string]any{"error": "amount exceeds the available quota", "quota_fen": 2_000_000,
		"eligible": true, "reason_codes": []events.ReasonCode{}})
	ineligible := adminJSON(t, map[string]any{"error": "amount exceeds the available quota", "quota_fen": 0,
		"eligible": false, "reason_codes": []events.ReasonCode{p.ReasonCode(policy.CodeCreditLow), p.ReasonCode(policy.CodeActivityLow)}})
	_, quoteErr := credit.Quote(p, 600_000, 5, credit.PromoContext{})
	badPeriods := adminJSON(t, map[string]string{"error": quoteErr.Error()})

	tests := []struct {
		name   string
		status int
		body   []byte
		args   []string
		code   int
		errs   []string
		stdout string
	}{
		{"over the quota", http.StatusUnprocessableEntity, overQuota, []string{"--amount-fen", "3000000", "--periods", "12"}, 1,
			[]string{"offer u-1: refused: amount exceeds the available quota (asked 30,000.00 yuan, quota of u-1 20,000.00 yuan)"}, ""},
		{"not eligible", http.StatusUnprocessableEntity, ineligible, []string{"--amount-fen", "100", "--periods", "3"}, 1,
			[]string{"quota of u-1 0.00 yuan); not eligible:", "WECHAT_CREDIT_401  Pay score below the threshold",
				"advice: Top up your WeChat change", "FENQI_ACTIVITY_LOW"}, ""},
		{"refused, --json", http.StatusUnprocessableEntity, overQuota, []string{"--json", "--amount-fen", "3000000", "--periods", "12"}, 1,
			[]string{"refused"}, `"quota_fen": 2000000`},
		{"periods not offered", http.StatusBadRequest, badPeriods, []string{"--amount-fen", "600000", "--periods", "5"}, 1,
			[]string{"400 Bad Request: credit: quote 600000 fen over 5 periods: period count not offered by the policy (wechat offers [1 3 6 12 24])"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, tt.status, tt.body)
			res := runCmd(t, nil, "", append([]string{"offer", "u-1", "--api", api.URL}, tt.args...)...)
			if res.code() != tt.code {
				t.Errorf("exit %d, want %d", res.code(), tt.code)
			}
			for _, e := range tt.errs {
				if res.err == nil || !strings.Contains(res.err.Error(), e) {
					t.Errorf("error %v, want %q", res.err, e)
				}
			}
			if res.stdout != "" && tt.stdout == "" || !strings.Contains(res.stdout, tt.stdout) {
				t.Errorf("stdout %q, want %q", res.stdout, tt.stdout)
			}
		})
	}
}

// Mistakes on the command line are caught before asking fenqid.
func TestOfferUsage(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, http.StatusInternalServerError, nil)
	tests := []struct {
		name string
		args []string
		msg  string // in the error or on stderr
	}{
		{"no amount", []string{"u-1", "--periods", "12"}, "--amount-fen must be a positive number of fen, got 0"},
		{"negative amount", []string{"u-1", "--amount-fen", "-5", "--periods", "12"}, "--amount-fen must be a positive number of fen, got -5"},
		{"amount in yuan", []string{"u-1", "--amount-fen", "60.5", "--periods", "12"}, `invalid value "60.5" for flag -amount-fen`},
		{"no periods", []string{"u-1", "--amount-fen", "100"}, "--periods must be a positive number of installments, got 0"},
		{"unknown scene", []string{"u-1", "--amount-fen", "100", "--periods", "3", "--scene", "casino"}, `--scene "casino" is not a scene`},
		{"no user", []string{"--amount-fen", "100", "--periods", "3"}, "want exactly one USER, got 0"},
		{"bad api", []string{"u-1", "--amount-fen", "100", "--periods", "3", "--api", "fenqid"}, `--api: "fenqid" is not an http:// or https:// URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"offer"}, tt.args...)
			if tt.name != "bad api" {
				args = append(args, "--api", api.URL)
			}
			res := runCmd(t, nil, "", args...)
			if res.code() != 2 {
				t.Errorf("exit %d, want 2", res.code())
			}
			if !strings.Contains(res.stderr, tt.msg) && (res.err == nil || !strings.Contains(res.err.Error(), tt.msg)) {
				t.Errorf("neither error %v nor stderr %q says %q", res.err, res.stderr, tt.msg)
			}
		})
	}
	t.Cleanup(func() { // after the parallel subtests
		api.mu.Lock()
		defer api.mu.Unlock()
		if len(api.reqs) != 0 {
			t.Errorf("%d requests reached the API", len(api.reqs))
		}
	})
}

func TestAmountYuan(t *testing.T) {
	t.Parallel()
	for fen, want := range map[int64]string{
		0: "0.00", 5: "0.05", 100: "1.00", 123_456: "1,234.56", 2_000_000: "20,000.00", 100_000_000_000: "1,000,000,000.00",
		-1: "-0.01", -123_456: "-1,234.56", -9223372036854775808: "-92,233,720,368,547,758.08",
	} {
		if got := amountYuan(fen); got != want {
			t.Errorf("amountYuan(%d) = %q, want %q", fen, got, want)
		}
	}
}
