package scoring

import (
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
)

func TestNightLargePayment(t *testing.T) {
	t.Parallel()
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, h, m, s int) time.Time { return time.Date(2026, 11, 20, h, m, s, 0, loc) }
	cases := []struct {
		name   string
		zone   *time.Location
		when   time.Time
		amount int64
		kind   string // "payment" or "login"
		fires  bool
	}{
		{"midnight sharp, exactly 2,000 yuan", sh, at(sh, 0, 0, 0), 200_000, "payment", true},
		{"05:59:59, large", sh, at(sh, 5, 59, 59), 500_000, "payment", true},
		{"06:00:00 is morning", sh, at(sh, 6, 0, 0), 500_000, "payment", false},
		{"23:59:59 the evening before", sh, at(sh, 23, 59, 59), 500_000, "payment", false},
		{"03:00, 1,999.99 yuan is not large", sh, at(sh, 3, 0, 0), 199_999, "payment", false},
		{"03:00 Shanghai = 19:00 UTC the day before", sh, at(time.UTC, 19, 0, 0), 200_000, "payment", true},
		{"03:00 UTC is 11:00 in Shanghai", sh, at(time.UTC, 3, 0, 0), 200_000, "payment", false},
		{"the user's own zone counts: 02:00 in New York", ny, at(ny, 2, 0, 0), 300_000, "payment", true},
		{"a login at night is not a payment", sh, at(sh, 2, 0, 0), 0, "login", false},
	}
	r := DefaultRules()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &events.Event{ID: "evt-1", Type: events.TypePayment, Subject: "u1", Time: tc.when}
			if tc.kind == "payment" {
				e.Payment = &events.Payment{UserID: "u1", AmountFen: tc.amount, Currency: "CNY", Scene: events.SceneEcommerce}
			} else {
				e.Type, e.Login = events.TypeLogin, &events.Login{UserID: "u1", City: "shanghai"}
			}
			got := r.Evaluate(Input{Event: e, Zone: tc.zone})
			if !tc.fires {
				if len(got) != 0 {
					t.Fatalf("want no decision, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("want one alert, got %d: %+v", len(got), got)
			}
			d := got[0]
			if d.Type != events.TypeDecisionAlert || d.Data.Action != ActionSMSVerify || d.Data.Rule != RuleNightLargePayment {
				t.Fatalf("wrong decision: %+v", d)
			}
			if d.Subject != "u1" || d.Data.UserID != "u1" || d.Data.CausationID != "evt-1" || d.Data.PolicyVersion == "" {
				t.Fatalf("wrong identity fields: %+v", d)
			}
			if len(d.Data.ReasonCodes) != 1 || d.Data.ReasonCodes[0].Code == "" || d.Data.ReasonCodes[0].Advice == "" {
				t.Fatalf("reason codes: %+v", d.Data.ReasonCodes)
			}
			if again := r.Evaluate(Input{Event: e, Zone: tc.zone}); again[0].ID != d.ID {
				t.Fatalf("decision id not stable: %s then %s", d.ID, again[0].ID)
			}
			e2 := *e
			e2.ID = "evt-2"
			if other := r.Evaluate(Input{Event: &e2, Zone: tc.zone}); other[0].ID == d.ID {
				t.Fatalf("two events share decision id %s", d.ID)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultRules().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultRules()
	bad.LargeFen = 0
	if err := bad.Validate(); err == nil {
		t.Fatal("LargeFen 0 accepted")
	}
}
