package policy

import (
	"fmt"
	"strings"
	"testing"
)

// DOMAIN.md §4 and §8: each preset's pay-later cycle gives exactly the
// longest interest-free period the product promises.
func TestDomain4PayLaterPresetsPromiseTheirFreeDays(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]int{"wechat": 50, "huabei": 40, "baitiao": 30} {
		p, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		pl := p.Pricing.PayLater
		if !pl.Offered() || pl.LongestFreeDays() != want || p.Pricing.InterestFreeDays != want {
			t.Errorf("%s: pay later %+v gives %d days, promises %d; want %d", name, pl, pl.LongestFreeDays(), p.Pricing.InterestFreeDays, want)
		}
		if got := p.Pricing.PeriodsOffered(); fmt.Sprint(got) != "[1 3 6 12 24]" {
			t.Errorf("%s: periods offered %v, want [1 3 6 12 24]", name, got)
		}
		if _, ok := p.Plan(1); ok || !p.Pricing.Offers(1) || p.Pricing.Offers(2) {
			t.Errorf("%s: 1 period must be pay later, not a plan; 2 periods not offered", name)
		}
	}
}

// Invalid pay-later cycles and pricing adjustments are refused with the
// field, the line and a readable message.
func TestParseRefusesInvalidPricing(t *testing.T) {
	t.Parallel()
	type want struct {
		at    string // the text of the line the error must cite
		field string
		msg   string
	}
	cases := []struct {
		name     string
		old, new string // one replacement in wechat.yaml
		want     []want
	}{
		{"free period not the one promised",
			"    days_to_due: 20", "    days_to_due: 17",
			[]want{{"    days_to_due: 17", "pricing.pay_later.days_to_due",
				"the longest interest-free period is 30 + days_to_due = 47 days, but pricing.interest_free_days promises 50 (days_to_due: 20 gives it)"}}},
		{"a promise no cycle keeps",
			"  interest_free_days: 50", "  interest_free_days: 90",
			[]want{{"    days_to_due: 20", "pricing.pay_later.days_to_due", "promises 90 (no days_to_due in [0, 28] gives it"}}},
		{"statement day not in every month",
			"    statement_day: 10", "    statement_day: 31",
			[]want{{"    statement_day: 31", "pricing.pay_later.statement_day", "must be a day of the month in [1, 28], or 0 for no pay later (got 31)"}}},
		{"due date too far",
			"    days_to_due: 20", "    days_to_due: 40",
			[]want{{"    days_to_due: 40", "pricing.pay_later.days_to_due", "must be in [0, 28] days after the statement date (got 40)"}}},
		{"free days promised without pay later",
			"    statement_day: 10", "    statement_day: 0",
			[]want{{"    statement_day: 0", "pricing.pay_later.statement_day", "required (a day in [1, 28]) when days_to_due is set"},
				{"  interest_free_days: 50", "pricing.interest_free_days", "50 interest-free days are promised but pay later is not offered"}}},
		{"a plan of 1 period",
			"    - periods: 3\n", "    - periods: 1\n",
			[]want{{"    - periods: 1", "pricing.plans[0].periods", "must be in [2, max_periods=24] (got 1; 1 period is pay later, pricing.pay_later)"}}},
		{"bands overlap",
			"min_pay_score: 650, max_pay_score: 699", "min_pay_score: 640, max_pay_score: 699",
			[]want{{"      - {name: pay_score_650_699", "pricing.adjustments.pay_score_bands[1]", "[640, 699] overlaps pay_score_bands[0] [600, 649]"}}},
		{"band upside down",
			"min_pay_score: 650, max_pay_score: 699", "min_pay_score: 650, max_pay_score: 649",
			[]want{{"      - {name: pay_score_650_699", "pricing.adjustments.pay_score_bands[1].max_pay_score", "must be >= min_pay_score (650), got 649"}}},
		{"band that lowers the fee",
			"max_pay_score: 649, add_bp: 20}", "max_pay_score: 649, add_bp: -20}",
			[]want{{"      - {name: pay_score_600_649", "pricing.adjustments.pay_score_bands[0].add_bp", "must be in [1, 10000] bp (got -20)"}}},
		{"band without a name",
			"{name: pay_score_600_649, ", "{",
			[]want{{"      - {min_pay_score: 600", "pricing.adjustments.pay_score_bands[0].name", "required"}}},
		{"two lines of one name",
			"{name: pay_score_650_699,", "{name: pay_score_600_649,",
			[]want{{"      - {name: pay_score_600_649, min_pay_score: 650", "pricing.adjustments.pay_score_bands[1].name",
				`name "pay_score_600_649" already used by pricing.adjustments.pay_score_bands[0]`}}},
		{"a merchant subsidised twice",
			"merchants: [m-jd, m-pinduoduo]", "merchants: [m-jd, m-jd]",
			[]want{{"merchants: [m-jd, m-jd]", "pricing.adjustments.merchant_subsidies[0].merchants[1]",
				`merchant "m-jd" already subsidised by pricing.adjustments.merchant_subsidies[0]`}}},
		{"a subsidy of nobody",
			"merchants: [m-jd, m-pinduoduo]", "merchants: []",
			[]want{{"merchants: []", "pricing.adjustments.merchant_subsidies[0].merchants", "at least one merchant id is required"}}},
		{"a subsidy of nothing",
			"subsidy_bp: 20}", "subsidy_bp: 0}",
			[]want{{"subsidy_bp: 0}", "pricing.adjustments.merchant_subsidies[0].subsidy_bp", "must be in [1, 10000] bp (got 0)"}}},
	}
	base := wechatText(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if strings.Count(base, tc.old) != 1 {
				t.Fatalf("%q occurs %d times in wechat.yaml", tc.old, strings.Count(base, tc.old))
			}
			text := strings.Replace(base, tc.old, tc.new, 1)
			_, err := Parse([]byte(text), "wechat.yaml")
			if err == nil {
				t.Fatal("Parse accepted the policy")
			}
			for _, w := range tc.want {
				prefix := fmt.Sprintf("wechat.yaml:%d: %s: ", lineOf(t, text, w.at), w.field)
				found := false
				for _, l := range strings.Split(err.Error(), "\n") {
					if strings.HasPrefix(l, prefix) && strings.Contains(l, w.msg) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error %q…%q in:\n%v", prefix, w.msg, err)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

// A policy without pay later and without adjustments is valid: it offers
// its plans only and charges their rates.
func TestPricingWithoutPayLaterOrAdjustments(t *testing.T) {
	t.Parallel()
	text := wechatText(t)
	for _, r := range [][2]string{
		{"  interest_free_days: 50", "  interest_free_days: 0"},
		{"    statement_day: 10", "    statement_day: 0"},
		{"    days_to_due: 20", "    days_to_due: 0"},
	} {
		text = strings.Replace(text, r[0], r[1], 1)
	}
	i, j := strings.Index(text, "  adjustments:\n"), strings.Index(text, "\n# §5 scenes")
	text = text[:i] + text[j+1:]
	p, err := Parse([]byte(text), "wechat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Pricing.PayLater.Offered() || p.Pricing.Offers(1) || len(p.Pricing.Adjustments.PayScoreBands) != 0 {
		t.Errorf("pricing %+v", p.Pricing)
	}
	if got := p.Pricing.PeriodsOffered(); fmt.Sprint(got) != "[3 6 12 24]" {
		t.Errorf("periods offered %v", got)
	}
}

func TestAdjustmentsLookup(t *testing.T) {
	t.Parallel()
	p, err := Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	a := p.Pricing.Adjustments
	for score, want := range map[int]string{0: "", 599: "", 600: "pay_score_600_649", 649: "pay_score_600_649",
		650: "pay_score_650_699", 699: "pay_score_650_699", 700: "", 780: ""} {
		if b, _ := a.Band(score); b.Name != want {
			t.Errorf("band of %d = %q, want %q", score, b.Name, want)
		}
	}
	for merchant, want := range map[string]string{"m-jd": "jd_pinduoduo_subsidy", "m-pinduoduo": "jd_pinduoduo_subsidy", "m-vipshop": "", "": ""} {
		if s, _ := a.Subsidy(merchant); s.Name != want {
			t.Errorf("subsidy of %q = %q, want %q", merchant, s.Name, want)
		}
	}
}
