package chaos

import (
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/state"
)

// TestCompareCatches checks the comparison itself: a payment counted
// twice, a login lost, a repayment applied twice, a decision missing and
// one repeated are each reported.
func TestCompareCatches(t *testing.T) {
	pol, err := policy.Preset("wechat")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	user := func(id string, payments, logins, owed int64) *state.User {
		return &state.User{ID: id, Zone: shanghai,
			Days:    map[int]state.DayCounts{20000: {Payments: payments}},
			Months:  map[int]state.MonthCounts{202602: {SpendFen: 100 * payments, LoginDays: logins}},
			Devices: map[string]state.Place{"d": {LastDay: 20000, Logins: logins}},
			Cities:  map[string]state.Place{},
			Bills:   map[string]state.Bill{"b": {RemainingFen: owed, DueAt: at}},
			Profile: &events.Profile{UserID: id, PayScore: 700},
		}
	}
	run := func(us ...*state.User) runResult {
		r := runResult{users: map[string]userSnap{}, dlq: map[string]int{"x": 1},
			decisions: decisions{count: map[string]int{}, byID: map[string]decInfo{}}}
		for _, u := range us {
			r.users[u.ID] = snapUser(u, pol, at)
		}
		return r
	}
	clean := run(user("same", 3, 2, 500), user("doubled", 3, 2, 500), user("lost", 3, 2, 500), user("paid-twice", 3, 2, 500))
	clean.decisions.count["d1"], clean.decisions.byID["d1"] = 1, decInfo{typ: events.TypeDecisionAlert, user: "same"}
	clean.decisions.count["q1"], clean.decisions.byID["q1"] = 1, decInfo{typ: events.TypeDecisionQuota, user: "lost"}
	got := run(user("same", 3, 2, 500), user("doubled", 4, 2, 500), user("lost", 3, 1, 500), user("paid-twice", 3, 2, 300))
	got.decisions.count["q2"], got.decisions.byID["q2"] = 2, decInfo{typ: events.TypeDecisionQuota, user: "lost"}
	got.dlq = map[string]int{}

	c := compare(clean, got)
	if c.lost != 1 || c.doubled != 2 || c.otherDiff != 0 {
		t.Errorf("lost %d doubled %d other %d, want 1, 2 (a payment counted twice, a repayment applied twice), 0; %v", c.lost, c.doubled, c.otherDiff, c.examples)
	}
	if len(c.missing) != 1 || c.repeatIDs != 1 || c.repeatRecords != 1 || c.dlqMissing != 1 {
		t.Errorf("missing %v, repeats %d ids %d records, dead letters missing %d; want the alert missing, 1 id repeated once, 1 dead letter missing",
			c.missing, c.repeatIDs, c.repeatRecords, c.dlqMissing)
	}
	if same := compare(clean, clean); same.lost+same.doubled+same.otherDiff+len(same.missing)+len(same.unexpected)+same.dlqMissing != 0 {
		t.Errorf("a run compared with itself differs: %+v", same)
	}
}

// TestWorkloadDeterministic: the same seed gives the same records.
func TestWorkloadDeterministic(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := genWorkload(7, 50, 3, base), genWorkload(7, 50, 3, base)
	if a.size() != b.size() || len(a.jobs) != len(b.jobs) {
		t.Fatalf("sizes %d/%d, jobs %d/%d", a.size(), b.size(), len(a.jobs), len(b.jobs))
	}
	for i := range a.phases {
		for j := range a.phases[i].recs {
			if string(a.phases[i].recs[j].value) != string(b.phases[i].recs[j].value) {
				t.Fatalf("phase %s record %d differs", a.phases[i].name, j)
			}
		}
	}
	// Every phase holds one topic per user (the determinism the suite
	// relies on), but for the last, whose profiles and repayments do not
	// touch the same part of a user's state.
	for _, p := range a.phases[:len(a.phases)-1] {
		topics := map[string]string{}
		for _, r := range p.recs {
			if t0, ok := topics[r.key]; ok && t0 != r.topic {
				t.Errorf("phase %s: user %s on %s and %s", p.name, r.key, t0, r.topic)
			}
			topics[r.key] = r.topic
		}
	}
}
