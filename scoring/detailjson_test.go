package scoring

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
)

// QuotaDetail writes itself in events.MarshalDecision.
var _ events.JSONAppender = QuotaDetail{}

// TestQuotaDetailReflects guards the reference: the tests hold AppendJSON to
// json.Marshal's reflection, which a MarshalJSON or MarshalText would
// replace.
func TestQuotaDetailReflects(t *testing.T) {
	t.Parallel()
	for _, v := range []any{QuotaDetail{}, &QuotaDetail{}} {
		if _, ok := v.(json.Marshaler); ok {
			t.Errorf("%T implements json.Marshaler", v)
		}
		if _, ok := v.(encoding.TextMarshaler); ok {
			t.Errorf("%T implements encoding.TextMarshaler", v)
		}
	}
}

// overrideReasons are operator notes of every kind encoding/json escapes.
var overrideReasons = []string{
	"",
	"manual review passed",
	"客服复核通过, 临时提额",
	`VIP <gold> & "friends"`,
	"line\nbreak\ttab\x00nul\x1f",
	"separators \u2028\u2029",
	"invalid \xff utf-8 \xe4\xb8",
}

// awkwardFloats are floats on every side of encoding/json's format switch.
var awkwardFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 0.26249999999999996,
	1e-6, 9.99e-7, 1e-7, -1e-7, 2.5e-8, 1.5e-10, 1e-100, math.SmallestNonzeroFloat64,
	1e20, 1e21 - 65536, 1e21, -1e21, 1.2345e25, math.MaxFloat64, 123456789012345678,
}

// randomFacts draws a user: eligible or not (every gate can fail), quality
// or standard, with or without a previous quota and an override (active,
// expired, clamped, negative), in several zones.
func randomFacts(rng *rand.Rand, base time.Time) credit.Facts {
	zones := []*time.Location{nil, shanghai, newYork, time.UTC}
	now := base.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
	logins := rng.IntN(200)
	f := credit.Facts{
		Now:                   now,
		Location:              zones[rng.IntN(len(zones))],
		PayScore:              rng.IntN(900),
		RealNameVerified:      rng.IntN(8) != 0,
		IdentityComplete:      rng.IntN(8) != 0,
		CardBankBlacklisted:   rng.IntN(12) == 0,
		WealthBalanceFen:      rng.Int64N(10_000_000),
		JudicialDefaulter:     rng.IntN(15) == 0,
		LinkedAccountNegative: rng.IntN(15) == 0,
		Payments30d:           rng.IntN(250),
		LoginDays30d:          rng.IntN(31),
		MonthlySpendFen:       [3]int64{rng.Int64N(1_000_000) - 50_000, rng.Int64N(1_000_000), rng.Int64N(1_000_000)},
		MonthlyLoginDays:      [3]int{rng.IntN(32), rng.IntN(32), rng.IntN(32)},
		MonthlySocial:         [3]int{rng.IntN(40), rng.IntN(40), rng.IntN(40)},
		UsualDeviceLogins90d:  rng.IntN(logins + 1),
		Logins90d:             logins,
		OverdueNow:            rng.IntN(10) == 0,
		MaxOverdue6m:          time.Duration(rng.IntN(45*24)) * time.Hour,
		OverdueEpisodes:       rng.IntN(5),
		QuotaChecks30d:        rng.IntN(12),
		HasPreviousQuota:      rng.IntN(3) != 0,
		PreviousQuotaFen:      []int64{0, -1, 1, 12_345, rng.Int64N(6_000_000)}[rng.IntN(5)],
	}
	if rng.IntN(8) != 0 {
		f.CardBoundSince = now.AddDate(0, -rng.IntN(24), -rng.IntN(28))
	}
	if rng.IntN(3) == 0 { // a quality user, give or take one standard
		f.PayScore, f.WealthBalanceFen, f.Payments30d = 750+rng.IntN(100), 6_000_000, 150+rng.IntN(60)
		f.RealNameVerified, f.IdentityComplete, f.CardBankBlacklisted = true, true, false
		f.JudicialDefaulter, f.LinkedAccountNegative, f.OverdueNow = false, false, rng.IntN(10) == 0
		f.MonthlyLoginDays = [3]int{10 + rng.IntN(20), 10 + rng.IntN(20), 9 + rng.IntN(20)}
		f.CardBoundSince = now.AddDate(-1, 0, 0)
	}
	if rng.IntN(3) == 0 {
		o := &credit.Override{
			QuotaFen:  []int64{500_000, 3_000_000, 1_000_000_000, -5}[rng.IntN(4)],
			Reason:    overrideReasons[rng.IntN(len(overrideReasons))],
			Operator:  []string{"", "ops-1", "运营-李"}[rng.IntN(3)],
			ExpiresAt: now.Add(time.Duration(rng.IntN(96)-48) * time.Hour),
		}
		if rng.IntN(6) == 0 {
			o.ExpiresAt = time.Time{}
		}
		f.Override = o
	}
	return f
}

// randomDetails builds n quota details per preset through Rules.Quota, some
// with awkward floats or reason codes (which Quota leaves out) put back.
func randomDetails(t testing.TB, n int) []QuotaDetail {
	rng := rand.New(rand.NewPCG(20250517, 1))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, shanghai)
	var ds []QuotaDetail
	for _, name := range policy.Presets() {
		p, r := presetRules(t, name)
		for i := range n {
			f := randomFacts(rng, base)
			res := credit.Evaluate(p, f)
			next := []time.Time{{}, f.Now.AddDate(0, 0, 90), f.Now.In(newYork).Add(time.Nanosecond)}[rng.IntN(3)]
			d := r.Quota(fmt.Sprintf("u%d", i), "recompute", rng.Int64N(6_000_000), res, next).Data.Detail.(QuotaDetail)
			if rng.IntN(10) == 0 {
				for j := range d.Factors {
					d.Factors[j].Raw = awkwardFloats[rng.IntN(len(awkwardFloats))]
				}
				d.Score = awkwardFloats[rng.IntN(len(awkwardFloats))]
			}
			if rng.IntN(10) == 0 {
				d.Reasons = res.Reasons
			}
			ds = append(ds, d)
		}
	}
	return ds
}

func TestQuotaDetailAppendJSON(t *testing.T) {
	t.Parallel()
	ds := randomDetails(t, 1500)
	seen := map[string]bool{}
	for i, d := range ds {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AppendJSON([]byte("prefix")); string(got) != "prefix"+string(want) {
			t.Fatalf("detail %d: AppendJSON =\n%s\njson.Marshal =\n%s", i, got[len("prefix"):], want)
		}
		seen["eligible="+fmt.Sprint(d.Eligible)] = true
		seen["quality="+fmt.Sprint(d.QualityUser)] = true
		seen["guardrail="+fmt.Sprint(d.Guardrail.Applied)] = true
		seen["decided_by="+d.DecidedBy] = true
		seen["reasons="+fmt.Sprint(len(d.Reasons) > 0)] = true
		if o := d.Override; o != nil {
			seen["override="+o.Status] = true
			seen["clamped="+fmt.Sprint(o.Clamped)] = true
		}
	}
	// The draw must have reached every branch the encoder has.
	for _, k := range []string{"eligible=true", "eligible=false", "quality=true", "quality=false",
		"guardrail=true", "guardrail=false", "reasons=true", "reasons=false",
		"override=active", "override=expired", "clamped=true", "clamped=false",
		"decided_by=" + credit.DecidedIneligible, "decided_by=" + credit.DecidedScore, "decided_by=" + credit.DecidedTierCap,
		"decided_by=" + credit.DecidedGuardrailFloor, "decided_by=" + credit.DecidedGuardrailCeiling, "decided_by=" + credit.DecidedOverride} {
		if !seen[k] {
			t.Errorf("no generated detail with %s", k)
		}
	}

	t.Run("zero and empty", func(t *testing.T) {
		t.Parallel()
		empty := QuotaDetail{EligibilityCodes: []string{}, Result: credit.Result{
			Gates: []credit.Check{}, Quality: []credit.Check{}, Factors: []credit.Factor{}, Reasons: []events.ReasonCode{},
			Override: &credit.OverrideResult{},
		}}
		for _, d := range []QuotaDetail{{}, empty} {
			want, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("AppendJSON =\n%s\njson.Marshal =\n%s", got, want)
			}
		}
	})
}

// TestQuotaDecisionMatchesReference holds the whole published document of
// a quota decision to the json.Marshal-based encoding it replaces.
func TestQuotaDecisionMatchesReference(t *testing.T) {
	t.Parallel()
	r := rulesOf(t, nil)
	p := wechat(t)
	rng := rand.New(rand.NewPCG(7, 7))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, shanghai)
	for i := range 500 {
		f := randomFacts(rng, base)
		d := r.Quota(fmt.Sprintf("u-%d", i), fmt.Sprintf("recompute:u-%d:2025Q%d", i, i%4+1), rng.Int64N(5_000_000),
			credit.Evaluate(p, f), f.Now.AddDate(0, 0, 90))
		want, err := referenceMarshalDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := events.MarshalDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decision %d: MarshalDecision =\n%s\nreference =\n%s", i, got, want)
		}
	}
}

// TestQuotaDetailAppendJSONCoversEveryField fills every field reachable
// from QuotaDetail through reflection, so that a field added to it, to
// credit.Result or to any type they hold is filled too, and requires
// AppendJSON to write every json key and match json.Marshal.
func TestQuotaDetailAppendJSONCoversEveryField(t *testing.T) {
	t.Parallel()
	var d QuotaDetail
	seq := 0
	fill(t, reflect.ValueOf(&d).Elem(), &seq)
	got := d.AppendJSON(nil)
	want, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON =\n%s\njson.Marshal =\n%s", got, want)
	}
	keys := map[string]bool{}
	jsonKeys(reflect.TypeFor[QuotaDetail](), keys)
	if len(keys) < 40 {
		t.Fatalf("found only %d json keys: %v", len(keys), keys)
	}
	for k := range keys {
		if !bytes.Contains(got, []byte(`"`+k+`":`)) {
			t.Errorf("AppendJSON does not write %q:\n%s", k, got)
		}
	}
}

// fill sets v and everything reachable from it to non-zero values, each
// number and string different: omitempty leaves nothing out.
func fill(t *testing.T, v reflect.Value, seq *int) {
	t.Helper()
	*seq++
	n := *seq
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Date(2025, 5, 17, 10, 0, n, n*1000, shanghai)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d <&> 支付分", n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n * sign(n)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n*sign(n)) + 0.25)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), seq)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range s.Len() {
			fill(t, s.Index(i), seq)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), seq)
		v.Set(p)
	default:
		t.Fatalf("fill: %s (%s) is new to this test: teach fill, and AppendJSON", v.Type(), v.Kind())
	}
}

// sign alternates: numbers are negative every other time.
func sign(n int) int { return 1 - 2*(n%2) }

// jsonKeys collects the json key of every field reachable from t, the
// fields of embedded structs included as encoding/json flattens them.
func jsonKeys(t reflect.Type, keys map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
			continue
		case f.Anonymous && name == "":
			jsonKeys(f.Type, keys)
			continue
		case name == "":
			name = f.Name
		}
		keys[name] = true
		jsonKeys(f.Type, keys)
	}
}

func TestAppendFloat(t *testing.T) {
	t.Parallel()
	check := func(f float64) {
		t.Helper()
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); !bytes.Equal(got, want) {
			t.Fatalf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	for _, f := range awkwardFloats {
		check(f)
		check(-f)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50_000 {
		if f := math.Float64frombits(rng.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			check(f)
		}
		check(rng.Float64())
		check(rng.NormFloat64() * math.Pow10(rng.IntN(60)-30))
		// decimals of a few places (appendShortDecimal's), and next to them
		n, k := rng.Int64N(2e13)-1e13, rng.IntN(7)
		x := float64(n) / math.Pow10(k)
		check(x)
		check(math.Nextafter(x, math.Inf(1)))
		check(float64(rng.IntN(2001)-1000) / 100)
	}
	check(math.Copysign(0, -1))
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := appendFloat(nil, f); string(got) != "0" {
			t.Errorf("appendFloat(%v) = %s, want 0", f, got)
		}
	}
}

func TestAppendTime(t *testing.T) {
	t.Parallel()
	zones := []*time.Location{time.UTC, shanghai, newYork, time.FixedZone("", 5*3600+30*60+15), time.FixedZone("W", -12*3600)}
	for _, tm := range []time.Time{
		{},
		time.Date(2025, 5, 17, 10, 0, 0, 0, shanghai),
		time.Date(2025, 5, 17, 10, 0, 0, 1, time.UTC),
		time.Date(2025, 5, 17, 10, 0, 0, 120_000_000, newYork),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(), // with a monotonic reading
	} {
		for _, z := range zones {
			for _, tm := range []time.Time{tm, tm.In(z)} {
				want, err := json.Marshal(tm)
				if err != nil {
					continue // outside RFC 3339 once moved to z
				}
				if got := appendTime(nil, tm); !bytes.Equal(got, want) {
					t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
				}
			}
		}
	}
	// json.Marshal refuses these; appendTime writes the layout anyway.
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got, want := string(appendTime(nil, tm)), `"`+tm.Format(time.RFC3339Nano)+`"`; got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// referenceMarshalDecision is events.MarshalDecision as it was before
// QuotaDetail wrote itself (validation left out): json.Marshal of the
// detail, the data and the envelope head, spliced.
func referenceMarshalDecision(d events.Decision) ([]byte, error) {
	detail, err := json.Marshal(d.Data.Detail)
	if err != nil {
		return nil, fmt.Errorf("reference: detail: %w", err)
	}
	codes := d.Data.ReasonCodes
	if codes == nil {
		codes = []events.ReasonCode{}
	}
	data, err := json.Marshal(struct {
		UserID        string              `json:"user_id"`
		CausationID   string              `json:"causation_id"`
		Rule          string              `json:"rule"`
		Action        string              `json:"action"`
		ReasonCodes   []events.ReasonCode `json:"reason_codes"`
		PolicyVersion string              `json:"policy_version"`
	}{d.Data.UserID, d.Data.CausationID, d.Data.Rule, d.Data.Action, codes, d.Data.PolicyVersion})
	if err != nil {
		return nil, fmt.Errorf("reference: data: %w", err)
	}
	head, err := json.Marshal(struct {
		SpecVersion     string `json:"specversion"`
		ID              string `json:"id"`
		Type            string `json:"type"`
		Source          string `json:"source"`
		Time            string `json:"time"`
		Subject         string `json:"subject"`
		DataContentType string `json:"datacontenttype"`
	}{events.SpecVersion, d.ID, d.Type, events.DecisionSource, d.Time.UTC().Format(time.RFC3339Nano), d.Subject, events.ContentTypeJSON})
	if err != nil {
		return nil, fmt.Errorf("reference: head: %w", err)
	}
	out := make([]byte, 0, len(head)+len(data)+len(detail)+20)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, data[:len(data)-1]...)
	out = append(out, `,"detail":`...)
	out = append(out, detail...)
	return append(out, "}}"...), nil
}

// benchQuotaDecisions are a quota decision without reason codes and one
// with three (whose messages hold non-ASCII text).
func benchQuotaDecisions(tb testing.TB) []events.Decision {
	p := wechat(tb)
	r := rulesOf(tb, nil)
	evaluated := time.Date(2025, 5, 17, 10, 0, 0, 0, shanghai)
	eligible := credit.Facts{
		Now: evaluated, PayScore: 700, RealNameVerified: true, IdentityComplete: true,
		CardBoundSince: time.Date(2024, 1, 1, 0, 0, 0, 0, shanghai), WealthBalanceFen: 1_000_000,
		Payments30d: 120, LoginDays30d: 14, MonthlySpendFen: [3]int64{300_000, 320_000, 310_000}, MonthlyLoginDays: [3]int{12, 15, 20},
		MonthlySocial: [3]int{10, 12, 8}, UsualDeviceLogins90d: 45, Logins90d: 50, QuotaChecks30d: 1,
		HasPreviousQuota: true, PreviousQuotaFen: 1_500_000,
	}
	refused := eligible
	refused.PayScore, refused.IdentityComplete, refused.OverdueNow = 580, false, true
	next := evaluated.AddDate(0, 0, 90)
	return []events.Decision{
		r.Quota(user, "recompute:u1:2025Q2", 1_500_000, credit.Evaluate(p, eligible), next),
		r.Quota(user, "recompute:u1:2025Q2", 1_500_000, credit.Evaluate(p, refused), next),
	}
}

func BenchmarkMarshalQuotaDecision(b *testing.B) {
	for _, d := range benchQuotaDecisions(b) {
		for _, m := range []struct {
			name    string
			marshal func(events.Decision) ([]byte, error)
		}{{"reference", referenceMarshalDecision}, {"MarshalDecision", events.MarshalDecision}} {
			b.Run(fmt.Sprintf("%s/codes=%d", m.name, len(d.Data.ReasonCodes)), func(b *testing.B) {
				b.ReportAllocs()
				var n int
				for b.Loop() {
					out, err := m.marshal(d)
					if err != nil {
						b.Fatal(err)
					}
					n = len(out)
				}
				b.ReportMetric(float64(n), "bytes")
			})
		}
	}
}
