package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
)

// userSnap is what the comparison keeps of a user's final state.
type userSnap struct {
	exists bool
	// canon is the user's read view (package state) as JSON, without what
	// depends on when a recompute ran (the saved quota, the recompute
	// count, the cycle's mark).
	canon string
	// counters, each compared for "lost" (lower than in the clean run)
	// and "doubled" (higher).
	counters map[string]int64
	// model is the quota the five-factor model gives the state at a fixed
	// time, with no previous quota (the guardrail off): a check of every
	// fact the model reads.
	model int64
}

// runResult is the end of one run: state and decisions.
type runResult struct {
	users     map[string]userSnap
	decisions decisions
	dlq       map[string]int // dead-lettered record values -> records
}

// snapshot reads the final state of the users, the decisions seen and
// the dead letters.
func (s *system) snapshot(w *workload, pol *policy.Policy, at time.Time) runResult {
	s.t.Helper()
	res := runResult{users: map[string]userSnap{}, decisions: s.log.snapshot(), dlq: map[string]int{}}
	for chunk := range slices.Chunk(w.users, 500) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		us, err := s.store.Users(ctx, chunk)
		cancel()
		if err != nil {
			s.t.Fatalf("chaos: %s: read state: %v", s.name, err)
		}
		for _, u := range us {
			res.users[u.ID] = snapUser(u, pol, at)
		}
	}
	for _, m := range testenv.ReadAll(s.t, []string{s.broker.addr}, events.TopicDLQ) {
		res.dlq[string(m.Value)]++
	}
	return res
}

func snapUser(u *state.User, pol *policy.Policy, at time.Time) userSnap {
	n := *u
	n.QuotaFen, n.HasQuota, n.Recomputes, n.CycleDone, n.QuotaChecks = 0, false, 0, time.Time{}, nil
	sn := userSnap{counters: map[string]int64{}}
	sn.model = credit.Evaluate(pol, jobs.Facts(&n, pol, at)).QuotaFen
	zone := ""
	if n.Zone != nil {
		zone = n.Zone.String()
	}
	n.Zone = nil
	b, err := json.Marshal(struct {
		Zone string
		User state.User
	}{zone, n})
	if err != nil {
		panic(err)
	}
	sn.canon = string(b)
	c := sn.counters
	for _, d := range u.Days {
		c["payments"] += d.Payments
	}
	for _, m := range u.Months {
		c["spend_fen"] += m.SpendFen
		c["social"] += m.SocialN
		c["login_days"] += m.LoginDays
	}
	for _, d := range u.Devices {
		c["device_logins"] += d.Logins
	}
	c["devices"] = int64(len(u.Devices))
	c["cities"] = int64(len(u.Cities))
	c["open_bills"] = int64(len(u.Bills))
	for _, b := range u.Bills {
		// Owed: lower when a repayment was applied twice.
		c["-owed_fen"] -= b.RemainingFen
	}
	c["settled_episodes"] = int64(u.SettledEpisodes)
	sn.exists = u.Profile != nil || len(u.Days) > 0 || len(u.Bills) > 0 || len(u.Devices) > 0 || u.SettledEpisodes > 0 || len(u.Months) > 0
	return sn
}

// comparison is a run compared with the clean one.
type comparison struct {
	lost, doubled, otherDiff int      // users
	examples                 []string // a few differences, described
	missing                  []string // decision ids (and "quota:<user>") of the clean run absent
	unexpected               []string // decision ids (not quota) absent from the clean run
	repeatRecords, repeatIDs int
	repeatsByType            map[string]int // repeated ids by decision type
	dlqMissing               int
	modelDiff                int // users whose model quota differs
}

func compare(clean, got runResult) comparison {
	var c comparison
	note := func(s string) {
		if len(c.examples) < 8 {
			c.examples = append(c.examples, s)
		}
	}
	users := make([]string, 0, len(clean.users))
	for u := range clean.users {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		a, b := clean.users[u], got.users[u]
		if a.canon == b.canon && a.model == b.model {
			continue
		}
		lost, doubled := false, false
		if a.exists && !b.exists {
			lost = true
			note(fmt.Sprintf("%s: no state at all", u))
		}
		for k, va := range a.counters {
			switch vb := b.counters[k]; {
			case vb < va:
				lost = true
				note(fmt.Sprintf("%s: %s %d, clean run %d", u, k, vb, va))
			case vb > va:
				doubled = true
				note(fmt.Sprintf("%s: %s %d, clean run %d", u, k, vb, va))
			}
		}
		if a.model != b.model {
			c.modelDiff++
			note(fmt.Sprintf("%s: model quota %d fen, clean run %d", u, b.model, a.model))
		}
		switch {
		case lost:
			c.lost++
		case doubled:
			c.doubled++
		default:
			c.otherDiff++
			if a.canon != b.canon {
				note(fmt.Sprintf("%s: state differs:\n  clean %s\n  got   %s", u, a.canon, b.canon))
			}
		}
	}
	cleanIDs, cleanQuota := clean.decisions.stable()
	gotIDs, gotQuota := got.decisions.stable()
	for id, in := range cleanIDs {
		if _, ok := gotIDs[id]; !ok {
			c.missing = append(c.missing, fmt.Sprintf("%s (%s, user %s, cause %s)", id, in.typ, in.user, in.cause))
		}
	}
	for u := range cleanQuota {
		if !gotQuota[u] {
			c.missing = append(c.missing, "quota:"+u)
		}
	}
	for id, in := range gotIDs {
		if _, ok := cleanIDs[id]; !ok {
			c.unexpected = append(c.unexpected, fmt.Sprintf("%s (%s, user %s, cause %s)", id, in.typ, in.user, in.cause))
		}
	}
	slices.Sort(c.missing)
	slices.Sort(c.unexpected)
	c.repeatRecords, c.repeatIDs = got.decisions.repeats()
	c.repeatsByType = map[string]int{}
	for id, n := range got.decisions.count {
		if n > 1 {
			c.repeatsByType[strings.TrimSuffix(strings.TrimPrefix(got.decisions.byID[id].typ, "fenqi.decision."), ".v1")]++
		}
	}
	for v := range clean.dlq {
		if got.dlq[v] == 0 {
			c.dlqMissing++
		}
	}
	return c
}

// chaosPolicy writes the wechat preset with a 48 h allowed lateness (so
// that no event of the workload is judged late in any run, however long
// the suite takes) and returns its path and the policy.
func chaosPolicy(t testing.TB, dir string) (string, *policy.Policy) {
	t.Helper()
	b, err := os.ReadFile("../policy/presets/wechat.yaml")
	if err != nil {
		t.Fatalf("chaos: read the wechat preset: %v", err)
	}
	y := strings.Replace(string(b), "allowed_lateness: 1h", "allowed_lateness: 48h", 1)
	if y == string(b) {
		t.Fatal("chaos: the wechat preset has no \"allowed_lateness: 1h\" line to replace")
	}
	path := dir + "/policy.yaml"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatalf("chaos: the suite's policy: %v", err)
	}
	if p.Risk.AllowedLateness != 48*time.Hour {
		t.Fatalf("chaos: policy allowed lateness %v, want 48h", p.Risk.AllowedLateness)
	}
	return path, p
}
