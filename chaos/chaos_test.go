package chaos

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
)

// fault is one kind of fault, injected times times in one run.
type fault struct {
	name  string
	times int
	// two: run two instances, a and b, in the group (b behind a proxy to
	// Redis when proxied).
	two, proxied bool
	// inject starts the fault, calls during (which writes the records of
	// the fault's time) while the broker is up, ends the fault and
	// returns when it ended: the process restarted, Redis or the broker
	// back, or — for an instance killed and not restarted — the kill.
	inject func(s *system, during func()) time.Time
	// after, when set, runs once the recovery from inject is measured and
	// returns the time another change ended (a killed instance started
	// again and joining the group), whose recovery is the row afterName.
	after     func(s *system) time.Time
	afterName string
}

// recovery is one measured recovery.
type recovery struct {
	lag0, decision, jobs time.Duration // to lag 0, to the canary's decision, to its freeze
	total                time.Duration // max(lag0, decision)
	failed               string
}

// row is a line of the table.
type row struct {
	name       string
	times      int
	cmp        comparison
	recs       []recovery
	warn, errs int
	failed     string // the run stopped before its comparison
}

// scale is the size of a run.
type scale struct {
	users, canaries int
	faults          []fault
}

func longMode() bool { return os.Getenv("FENQI_CHAOS") == "long" }

// seconds reads FENQI_CHAOS_<name> (whole seconds) or returns def.
func seconds(name string, def int) time.Duration {
	if v, err := strconv.Atoi(os.Getenv("FENQI_CHAOS_" + name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return time.Duration(def) * time.Second
}

func times(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv("FENQI_CHAOS_" + name + "_TIMES")); err == nil && v >= 0 {
		return v
	}
	return def
}

// The faults.

func sigkill(n int) fault {
	return fault{name: "SIGKILL of fenqid", times: n, inject: func(s *system, during func()) time.Time {
		a := s.instances["a"]
		a.down = true
		a.p.kill()
		during()
		s.start(a)
		return a.p.started
	}}
}

func sigterm(n int) fault {
	return fault{name: "SIGTERM of fenqid", times: n, inject: func(s *system, during func()) time.Time {
		a := s.instances["a"]
		a.down = true
		if err := a.p.stop(40 * time.Second); err != nil {
			s.t.Errorf("chaos: fenqid did not stop cleanly on SIGTERM: %v; log:\n%s", err, tail(a.logPath, 30))
		}
		during()
		s.start(a)
		return a.p.started
	}}
}

func redisKilled(n int) fault {
	return fault{name: "redis-server SIGKILL, restarted (AOF always)", times: n, inject: func(s *system, during func()) time.Time {
		s.redis.p.kill()
		during()
		time.Sleep(time.Second)
		s.redis.start()
		return time.Now()
	}}
}

func redisAway(n int, d time.Duration) fault {
	return fault{name: fmt.Sprintf("Redis away for %ds", int(d.Seconds())), times: n, inject: func(s *system, during func()) time.Time {
		s.redis.p.kill()
		start := time.Now()
		during()
		time.Sleep(time.Until(start.Add(d)))
		s.redis.start()
		return time.Now()
	}}
}

func redisSleep(n int, d time.Duration) fault {
	return fault{name: fmt.Sprintf("Redis frozen (DEBUG SLEEP %d)", int(d.Seconds())), times: n, inject: func(s *system, during func()) time.Time {
		c := redis.NewClient(&redis.Options{Addr: s.redis.addr(), ReadTimeout: d + 30*time.Second})
		defer c.Close()
		done := make(chan error, 1)
		go func() { done <- c.Do(context.Background(), "DEBUG", "SLEEP", strconv.Itoa(int(d.Seconds()))).Err() }()
		time.Sleep(100 * time.Millisecond)
		during()
		if err := <-done; err != nil {
			s.t.Fatalf("chaos: DEBUG SLEEP: %v", err)
		}
		return time.Now()
	}}
}

func brokerKilled(n int) fault {
	return fault{name: "broker SIGKILL, restarted on its data", times: n, inject: func(s *system, during func()) time.Time {
		s.broker.p.kill()
		time.Sleep(time.Second)
		s.broker.start()
		end := time.Now()
		during() // (nothing can be written while it is down)
		return end
	}}
}

func secondKilled(n int) fault {
	return fault{name: "second instance SIGKILL (rebalance)", times: n, two: true,
		inject: func(s *system, during func()) time.Time {
			b := s.instances["b"]
			b.down = true
			b.p.kill()
			end := time.Now()
			during()
			return end
		},
		afterName: "second instance restarted (rebalance)",
		after: func(s *system) time.Time {
			b := s.instances["b"]
			s.start(b)
			return b.p.started
		}}
}

func partitioned(n int, d time.Duration) fault {
	return fault{name: fmt.Sprintf("second instance cut off from Redis for %ds (Kafka fine)", int(d.Seconds())), times: n, two: true, proxied: true,
		inject: func(s *system, during func()) time.Time {
			px := s.proxy
			px.setPaused(true)
			start := time.Now()
			during()
			time.Sleep(time.Until(start.Add(d)))
			px.setPaused(false)
			return time.Now()
		}}
}

// runOnce runs the workload through a fresh system with fault f (nil: the
// clean run) and returns its result and the measured recoveries.
func runOnce(t *testing.T, w *workload, pol *policy.Policy, policyPath string, f *fault, clean *runResult, judgeAt time.Time) (runResult, []recovery, []recovery, *system) {
	name := "clean run"
	if f != nil {
		name = f.name
	}
	s := newSystem(t, name, policyPath)
	a := s.addInstance("a", "")
	s.start(a)
	s.waitHealthy(a, 30*time.Second)
	if f != nil && f.two {
		addr := ""
		if f.proxied {
			s.proxy = newProxy(t, s.redis.addr())
			addr = s.proxy.addr()
		}
		b := s.addInstance("b", addr)
		s.start(b)
		s.waitHealthy(b, 30*time.Second)
		s.waitMembers(2, 2*time.Minute)
	}
	nFaults := 0
	if f != nil {
		nFaults = f.times
	}
	// Faults go to the phases in turn, the largest first.
	order := []int{2, 3, 1, 2, 4, 0}
	perPhase := make([]int, len(w.phases))
	for k := range nFaults {
		perPhase[order[k%len(order)]]++
	}
	canaries := slices.Clone(w.canaries)
	nextCanary := func() (canary, bool) {
		if len(canaries) == 0 {
			return canary{}, false
		}
		c := canaries[0]
		canaries = canaries[1:]
		return c, true
	}
	var recs, afters []recovery
	for pi, ph := range w.phases {
		if pi == len(w.phases)-1 {
			// Every overdue bill has frozen its user or had its reminder
			// before its repayment is written.
			s.waitStages(w, 3*time.Minute)
		}
		n := perPhase[pi]
		chunks := split(ph.recs, 2*n+1)
		s.write(chunks[0])
		for k := range n {
			// Let fenqid get into the chunk before the fault.
			time.Sleep(300 * time.Millisecond)
			if f.two {
				s.waitMembers(2, 2*time.Minute)
			}
			end := f.inject(s, func() {
				s.write(chunks[1+2*k])
				s.probeReady("during the fault")
			})
			c, ok := nextCanary()
			if !ok {
				t.Fatalf("chaos: not enough canaries for %d faults", nFaults)
			}
			recs = append(recs, s.measure(end, c, 3*time.Minute))
			if f.after != nil {
				end := f.after(s)
				c, ok := nextCanary()
				if !ok {
					t.Fatalf("chaos: not enough canaries for %d faults", nFaults)
				}
				afters = append(afters, s.measure(end, c, 3*time.Minute))
				if f.two {
					s.waitMembers(2, 2*time.Minute)
				}
			}
			s.write(chunks[2+2*k])
		}
		if f == nil && ph.name == "payments" {
			// The clean run writes every canary here.
			for _, c := range canaries {
				s.write(c.recs)
			}
			canaries = nil
		}
		s.waitDrained("after phase "+ph.name, 3*time.Minute)
	}
	for _, c := range canaries { // those no fault used
		s.write(c.recs)
	}
	s.waitDrained("at the end", 3*time.Minute)
	var causes []string
	for c := range w.jobs {
		causes = append(causes, c)
	}
	for _, c := range w.canaries {
		causes = append(causes, c.payCause, c.billCause)
	}
	slices.Sort(causes)
	// 3 minutes: a job batch interrupted by a fault waits for its lease.
	if missing := s.waitCauses(causes, 3*time.Minute); len(missing) > 0 && clean == nil {
		t.Fatalf("chaos: clean run: %d expected decisions never came (causation ids %v); logs:\n%s", len(missing), first(missing, 10), s.logTails())
	}
	if clean != nil {
		ids, _ := clean.decisions.stable()
		s.waitIDs(ids, 2*time.Minute)
	}
	s.waitQuiet(2*time.Second, 15*time.Second)
	s.stopAll()
	res := s.snapshot(w, pol, judgeAt)
	return res, recs, afters, s
}

// measure writes a canary right after a fault ended at end and returns how
// long until the group's lag was 0 and the canary's decision came (and its
// freeze, from the overdue checks).
func (s *system) measure(end time.Time, c canary, timeout time.Duration) recovery {
	s.t.Helper()
	s.write(c.recs)
	var r recovery
	deadline := time.Now().Add(timeout)
	var lagAt, decAt, jobAt time.Time
	for lagAt.IsZero() || decAt.IsZero() || jobAt.IsZero() {
		s.checkRunning()
		now := time.Now()
		if lagAt.IsZero() && s.lag() == 0 {
			lagAt = time.Now()
		}
		if decAt.IsZero() {
			if at, ok := s.log.seen(c.payCause); ok {
				decAt = at
			}
		}
		if jobAt.IsZero() {
			if at, ok := s.log.seen(c.billCause); ok {
				jobAt = at
			}
		}
		if now.After(deadline) {
			r.failed = fmt.Sprintf("not recovered within %s (lag 0: %v, decision: %v, freeze: %v)", timeout, !lagAt.IsZero(), !decAt.IsZero(), !jobAt.IsZero())
			s.t.Errorf("chaos: %s: %s; logs:\n%s", s.name, r.failed, s.logTails())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	since := func(t time.Time) time.Duration {
		if t.IsZero() {
			return timeout
		}
		return max(t.Sub(end), 0)
	}
	r.lag0, r.decision, r.jobs = since(lagAt), since(decAt), since(jobAt)
	r.total = max(r.lag0, r.decision)
	s.t.Logf("%s: recovery %.2fs (lag 0 after %.2fs, canary decision after %.2fs, its freeze after %.2fs)",
		s.name, r.total.Seconds(), r.lag0.Seconds(), r.decision.Seconds(), r.jobs.Seconds())
	return r
}

// split cuts recs into n chunks of about equal size.
func split(recs []rec, n int) [][]rec {
	out := make([][]rec, n)
	for i := range n {
		out[i] = recs[len(recs)*i/n : len(recs)*(i+1)/n]
	}
	return out
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// TestChaos is the crash-and-restart suite: a clean run of the workload,
// then one run per fault kind, each compared with the clean run. Short by
// default (part of make test); FENQI_CHAOS=long runs every fault several
// times (make chaos) and prints the table.
func TestChaos(t *testing.T) {
	long := longMode()
	// The short suite (make test): a crash and a clean stop of fenqid,
	// Redis and the broker crashing, each once (a crashed member is noticed
	// after the group's 6 s session: consumers.GroupSessionTimeout).
	sc := scale{users: 150, canaries: 6, faults: []fault{sigkill(1), sigterm(1), redisKilled(1), brokerKilled(1)}}
	if long {
		away := seconds("REDIS_AWAY", 30)
		sleep := seconds("REDIS_SLEEP", 10)
		cut := seconds("PARTITION", 20)
		sc = scale{users: 1500, canaries: 40, faults: []fault{
			sigkill(times("SIGKILL", 5)),
			sigterm(times("SIGTERM", 3)),
			redisKilled(times("REDIS_KILL", 2)),
			brokerKilled(times("BROKER_KILL", 2)),
			secondKilled(times("SECOND_KILL", 3)),
			redisAway(times("REDIS_AWAY", 1), away),
			redisSleep(times("REDIS_SLEEP", 2), sleep),
			partitioned(times("PARTITION", 1), cut),
		}}
	}
	if v, err := strconv.Atoi(os.Getenv("FENQI_CHAOS_USERS")); err == nil && v > 0 {
		sc.users = v
	}
	if only := os.Getenv("FENQI_CHAOS_ONLY"); only != "" {
		var keep []fault
		for _, f := range sc.faults {
			if strings.Contains(strings.ToLower(f.name), strings.ToLower(only)) {
				keep = append(keep, f)
			}
		}
		sc.faults = keep
	}
	base := time.Now().UTC().Truncate(time.Second)
	w := genWorkload(14, sc.users, sc.canaries, base)
	policyPath, pol := chaosPolicy(t, t.TempDir())
	judgeAt := base.Add(time.Hour)
	t.Logf("workload: %d users (+%d canary pairs), %d records: %v", sc.users, sc.canaries, w.size(), w.stats)

	started := time.Now()
	clean, _, _, cs := runOnce(t, w, pol, policyPath, nil, nil, judgeAt)
	checkClean(t, w, clean)
	cr, ci := clean.decisions.repeats()
	cw, ce := cs.warnLines()
	t.Logf("clean run: repeated decision ids by type: %v", compare(clean, clean).repeatsByType)
	t.Logf("clean run: %s, %d decision records, %d ids (%d ids repeated, %d extra records), %d dead letters, %d WARN / %d ERROR lines",
		time.Since(started).Round(time.Second), clean.decisions.records, len(clean.decisions.count), ci, cr, len(clean.dlq), cw, ce)

	var rows []row
	for _, f := range sc.faults {
		if f.times == 0 {
			continue
		}
		before := len(rows)
		ok := t.Run(strings.NewReplacer(" ", "_", "(", "", ")", "").Replace(f.name), func(t *testing.T) {
			started := time.Now()
			res, recs, afters, s := runOnce(t, w, pol, policyPath, &f, &clean, judgeAt)
			c := compare(clean, res)
			warn, errs := s.warnLines()
			rows = append(rows, row{name: f.name, times: f.times, cmp: c, recs: recs, warn: warn, errs: errs})
			if f.after != nil {
				rows = append(rows, row{name: f.afterName, times: f.times, cmp: c, recs: afters, warn: -1})
			}
			t.Logf("%s: %s", f.name, time.Since(started).Round(time.Second))
			report(t, f.name, c)
		})
		if !ok && len(rows) == before {
			rows = append(rows, row{name: f.name, times: f.times, failed: "FAILED before the comparison (see the test log)"})
		}
	}
	table := formatTable(rows) + fmt.Sprintf("\nlost, doubled: users whose final state has a counter lower, higher than after the clean run (%d users, %d records, %d re-sent).\n"+
		"recovery: from the fault's end (process restarted, Redis or broker back; for a killed second instance, the kill) to the group's lag at 0 and\n"+
		"the decision of a record written after the fault seen on %s; overdue checks back: to the freeze of a bill written after it.\n"+
		"WARN lines: every instance's log over the run (the clean run has %d: start-up and dead letters).",
		len(w.users), w.size(), w.stats["re-sent"], events.TopicDecisions, cw)
	fmt.Println(table)
	if p := os.Getenv("FENQI_CHAOS_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(table+"\n"), 0o644); err != nil {
			t.Errorf("chaos: write %s: %v", p, err)
		}
	}
}

// checkClean checks that the clean run exercised what the comparison
// relies on: without it, a comparison with it would prove little.
func checkClean(t *testing.T, w *workload, clean runResult) {
	t.Helper()
	byType := map[string]int{}
	for _, in := range clean.decisions.byID {
		byType[in.typ]++
	}
	for _, typ := range []string{events.TypeDecisionAlert, events.TypeDecisionQuota, events.TypeDecisionFrozen, events.TypeDecisionUnfrozen, events.TypeDecisionOverdue} {
		if byType[typ] == 0 {
			t.Errorf("chaos: clean run: no %s decision: the workload does not exercise it (decisions by type: %v)", typ, byType)
		}
	}
	freezes := 0
	for _, typ := range w.jobs {
		if typ == events.TypeDecisionFrozen {
			freezes++
		}
	}
	if byType[events.TypeDecisionFrozen] < freezes {
		t.Errorf("chaos: clean run: %d freezes, want at least the %d of the bills overdue 5 days", byType[events.TypeDecisionFrozen], freezes)
	}
	if len(clean.dlq) == 0 && w.stats["malformed"] > 0 {
		t.Errorf("chaos: clean run: no dead letter for %d malformed records", w.stats["malformed"])
	}
	seen := 0
	for _, u := range clean.users {
		if u.exists {
			seen++
		}
	}
	if seen != len(w.users) {
		t.Errorf("chaos: clean run: %d of %d users have state", seen, len(w.users))
	}
	t.Logf("clean run decisions by type: %v", byType)
}

// report fails the test on any loss, doubling or missing decision.
func report(t *testing.T, name string, c comparison) {
	t.Helper()
	t.Logf("%s: repeated decision ids by type: %v", name, c.repeatsByType)
	if c.lost > 0 || c.doubled > 0 || c.otherDiff > 0 {
		t.Errorf("%s: final state differs from the clean run: %d users lost something, %d doubled, %d differ otherwise (model quota differs for %d); e.g.:\n%s",
			name, c.lost, c.doubled, c.otherDiff, c.modelDiff, strings.Join(c.examples, "\n"))
	}
	if len(c.missing) > 0 {
		t.Errorf("%s: %d decisions of the clean run missing, e.g. %v", name, len(c.missing), first(c.missing, 5))
	}
	if len(c.unexpected) > 0 {
		t.Errorf("%s: %d decision ids that the clean run did not publish, e.g. %v", name, len(c.unexpected), first(c.unexpected, 5))
	}
	if c.dlqMissing > 0 {
		t.Errorf("%s: %d dead letters of the clean run missing", name, c.dlqMissing)
	}
}

func formatTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| fault | × | lost | doubled | decisions missing | repeated decision ids (extra records) | recovery (s): max | each (lag 0 / decision) | overdue checks back (s): max | WARN lines |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.failed != "" {
			fmt.Fprintf(&b, "| %s | %d | %s | | | | | | | |\n", r.name, r.times, r.failed)
			continue
		}
		var each []string
		var worst, worstJobs time.Duration
		failed := false
		for _, x := range r.recs {
			each = append(each, fmt.Sprintf("%.1f/%.1f", x.lag0.Seconds(), x.decision.Seconds()))
			worst = max(worst, x.total)
			worstJobs = max(worstJobs, x.jobs)
			failed = failed || x.failed != ""
		}
		mark := ""
		if failed {
			mark = " (timed out)"
		}
		warn := strconv.Itoa(r.warn)
		if r.warn < 0 {
			warn = "(above)"
		}
		missing := strconv.Itoa(len(r.cmp.missing))
		if n := len(r.cmp.unexpected); n > 0 {
			missing += fmt.Sprintf(" (+%d ids not in the clean run)", n)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %d (%d) | %.1f%s | %s | %.1f | %s |\n",
			r.name, r.times, r.cmp.lost, r.cmp.doubled, missing, r.cmp.repeatIDs, r.cmp.repeatRecords,
			round1(worst.Seconds()), mark, strings.Join(each, ", "), round1(worstJobs.Seconds()), warn)
	}
	return b.String()
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
