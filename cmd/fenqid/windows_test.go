package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// The policy's windows drive state (a defect of the first state engine:
// it kept 35 and 90 days whatever the policy said): with a 30-day
// other-city window, a login from a city last seen 40 days before is from
// another city, and a 60-day activity window keeps 61 days of counts.
func TestPolicyWindowsDriveState(t *testing.T) {
	doc := edit(t, wechatYAML(t), "other_city_window_days: 90", "other_city_window_days: 30")
	doc = edit(t, doc, "activity_window_days: 30", "activity_window_days: 60")
	path := policyFile(t)
	writeFile(t, path, doc)
	snap, err := loadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.StateConfig(snap.p, shanghai)
	if cfg.Days != 61 || cfg.GeoDays != 30 {
		t.Fatalf("state config %+v, want 61 days of counts and 30 of places", cfg)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)
	cfg.Now = func() time.Time { return now }
	store, err := state.New(testenv.Redis(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	login := func(id, city string, at time.Time, off int64) state.Outcome {
		t.Helper()
		out, err := store.Apply(context.Background(), []state.Item{{Topic: 2, Offset: off, Event: &events.Event{ID: id, Type: events.TypeLogin,
			Source: "//test", Subject: "w1", Time: at, Login: &events.Login{UserID: "w1", DeviceID: "d1", City: city, IP: "10.0.0.1", Auth: events.AuthFace}}}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	login("l1", "beijing", now.AddDate(0, 0, -40), 1)
	login("l2", "shanghai", now.AddDate(0, 0, -1), 2)
	if o := login("l3", "beijing", now, 3); !o.NewCity {
		t.Fatal("a city last seen 40 days ago is not another city under a 30-day window")
	}
}

// A policy whose windows differ from what state keeps is refused at
// reload (state's windows are fixed until a restart), and so is one whose
// velocity rule needs more payment times than state keeps.
func TestPolicyReloadRefusesOtherWindows(t *testing.T) {
	path := policyFile(t)
	lb, log := newLogBuffer()
	ps, err := newPolicies(path, log)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps.get()
	ps.state = jobs.StateConfig(p, shanghai)
	if err := jobs.Servable(ps.state, p); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, edit(t, edit(t, wechatYAML(t), versionV1, versionV2), "other_city_window_days: 90", "other_city_window_days: 120"))
	ps.reload("test")
	if p, _ := ps.get(); p.Version != wechatVersion {
		t.Fatalf("a policy with another other-city window was taken: %s", p.Version)
	}
	recs := lb.records(t, "policy reload refused; keeping the policy in force")
	if len(recs) != 1 || !strings.Contains(recs[0]["err"].(string), "other_city_window_days 120") {
		t.Fatalf("refusal logs: %v", recs)
	}
	p.Risk.VelocityCount = 40
	if err := jobs.Servable(ps.state, p); err == nil || !strings.Contains(err.Error(), "velocity_count 40") {
		t.Fatalf("a velocity count of 40: %v", err)
	}
}

// The policy's bound on open bills is the state engine's.
func TestMaxOpenBillsKept(t *testing.T) {
	if policy.MaxOpenBillsKept != engine.MaxBills {
		t.Fatalf("policy.MaxOpenBillsKept %d, engine.MaxBills %d", policy.MaxOpenBillsKept, engine.MaxBills)
	}
}
