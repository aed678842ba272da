package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/state"
)

const (
	groupID    = "chaos"
	partitions = 4
)

// system is one deployment under test: a broker process, a redis-server,
// fenqid instances, and the suite's reader of the decisions topic.
type system struct {
	t         *testing.T
	name      string
	dir       string
	fenqid    string
	policy    string
	broker    *broker
	redis     *redisServer
	instances map[string]*instance
	log       *decisionLog
	stopLog   context.CancelFunc
	rdb       *redis.Client
	store     *state.Store
	proxy     *proxy // between instance b and Redis, when partitioned
}

// instance is one fenqid process and how it is started.
type instance struct {
	name      string
	redisAddr string // its Redis address (a proxy's for a partitioned instance)
	httpAddr  string
	logPath   string
	p         *proc
	starts    int
	down      bool // stopped or killed on purpose, not restarted yet
}

func newSystem(t *testing.T, name, policyPath string) *system {
	t.Helper()
	fenqid, brokerBin := bins(t)
	dir := t.TempDir()
	if os.Getenv("FENQI_CHAOS_KEEP") != "" {
		// Keep the logs and data of every run to look at.
		d, err := os.MkdirTemp("", "fenqi-chaos-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
		t.Logf("%s: data and logs kept in %s", name, dir)
	}
	s := &system{t: t, name: name, dir: dir, fenqid: fenqid, policy: policyPath, instances: map[string]*instance{}}
	s.broker = newBroker(t, brokerBin, dir, partitions)
	s.redis = newRedis(t, dir)
	s.rdb = s.redis.client()
	t.Cleanup(func() { _ = s.rdb.Close() })
	st, err := state.New(s.rdb, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.store = st
	ctx, cancel := context.WithCancel(context.Background())
	s.stopLog = cancel
	t.Cleanup(cancel)
	s.log = follow(ctx, s.broker.addr, partitions)
	return s
}

// addInstance declares an instance (started by start) that reaches Redis
// at redisAddr ("" = the server itself).
func (s *system) addInstance(name, redisAddr string) *instance {
	if redisAddr == "" {
		redisAddr = s.redis.addr()
	}
	in := &instance{name: name, redisAddr: redisAddr,
		httpAddr: "127.0.0.1:" + strconv.Itoa(freePort(s.t)), logPath: filepath.Join(s.dir, "fenqid-"+name+".log")}
	s.instances[name] = in
	return in
}

// start starts the instance's fenqid process.
func (s *system) start(in *instance) {
	s.t.Helper()
	in.starts++
	in.down = false
	in.p = startProc(s.t, "fenqid-"+in.name, in.logPath, nil, nil, 0, s.fenqid,
		"-kafka-brokers", s.broker.addr,
		"-redis-addr", in.redisAddr,
		"-group-id", groupID,
		"-http-addr", in.httpAddr,
		"-policy", s.policy,
		"-log-format", "json",
		"-shutdown-grace", "20s",
	)
}

// waitHealthy waits for the instance's /healthz (its admin listener up:
// it parsed its settings and started), failing with its log otherwise.
func (s *system) waitHealthy(in *instance, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get("http://" + in.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if !in.p.running() {
			s.t.Fatalf("chaos: fenqid %s exited at start (%v); log:\n%s", in.name, in.p.waitErr, tail(in.logPath, 40))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chaos: fenqid %s: /healthz not answering within %s; log:\n%s", in.name, timeout, tail(in.logPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRunning fails the test if an instance that should run has exited
// (fenqid stops on an error it cannot go on after: that is a finding).
func (s *system) checkRunning() {
	s.t.Helper()
	for _, in := range s.instances {
		if in.p != nil && !in.down && !in.p.running() {
			s.t.Fatalf("chaos: fenqid %s exited on its own (%v); log:\n%s", in.name, in.p.waitErr, tail(in.logPath, 40))
		}
	}
}

// write produces records into the input topics (2 min at most).
func (s *system) write(recs []rec) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := produce(ctx, s.broker.addr, partitions, recs); err != nil {
		s.t.Fatalf("chaos: %s: write the workload: %v", s.name, err)
	}
}

// lag is the group's lag now (-1 when the broker does not answer).
func (s *system) lag() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	n, err := groupLag(ctx, s.broker.addr, groupID, partitions)
	if err != nil {
		return -1
	}
	return n
}

// waitDrained waits until the group has committed every input record.
func (s *system) waitDrained(what string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	last := int64(-1)
	for {
		s.checkRunning()
		if last = s.lag(); last == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chaos: %s: %s: consumer group lag still %d after %s (-1: broker not answering); logs:\n%s", s.name, what, last, timeout, s.logTails())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMembers waits until the group is stable with n members, each
// assigned input partitions: a fault aimed at one instance of two must
// find it in the group.
func (s *system) waitMembers(n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.checkRunning()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		ms, st, err := groupMembers(ctx, s.broker.addr, groupID)
		cancel()
		ok := err == nil && st == "Stable" && len(ms) == n
		for _, p := range ms {
			ok = ok && p > 0
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chaos: %s: the group is not stable with %d members with partitions within %s (state %q, members %v, err %v); logs:\n%s",
				s.name, n, timeout, st, ms, err, s.logTails())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probeReady asks every running instance's /readyz and logs the answer
// and how long it took (what an orchestrator sees during a fault).
func (s *system) probeReady(when string) {
	s.t.Logf("%s: %s: group lag %d (-1: broker not answering)", s.name, when, s.lag())
	c := &http.Client{Timeout: 15 * time.Second}
	for _, in := range s.instances {
		if in.p == nil || !in.p.running() {
			continue
		}
		start := time.Now()
		resp, err := c.Get("http://" + in.httpAddr + "/readyz")
		took := time.Since(start)
		if err != nil {
			s.t.Logf("%s: %s: fenqid %s /readyz: %v after %s", s.name, when, in.name, err, took.Round(time.Millisecond))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		s.t.Logf("%s: %s: fenqid %s /readyz: %d in %s: %s", s.name, when, in.name, resp.StatusCode, took.Round(time.Millisecond), strings.TrimSpace(string(body)))
	}
}

// waitStages waits until every bill has reached its overdue stage in
// state (read through package state).
func (s *system) waitStages(w *workload, timeout time.Duration) {
	s.t.Helper()
	users := make([]string, 0, len(w.stages))
	for u := range w.stages {
		users = append(users, u)
	}
	deadline := time.Now().Add(timeout)
	for {
		s.checkRunning()
		behind, example := 0, ""
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		us, err := s.store.Users(ctx, users)
		cancel()
		if err == nil {
			for _, u := range us {
				for bill, want := range w.stages[u.ID] {
					if got := u.Bills[bill].Stage; got < want {
						behind++
						example = fmt.Sprintf("%s/%s at stage %d, want %d", u.ID, bill, got, want)
					}
				}
			}
			if behind == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chaos: %s: %d bills have not reached their overdue stage within %s (e.g. %s; err %v); logs:\n%s", s.name, behind, timeout, example, err, s.logTails())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitCauses waits until a decision with each causation id was seen;
// it returns the ids still missing at the deadline.
func (s *system) waitCauses(causes []string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, c := range causes {
			if _, ok := s.log.seen(c); !ok {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitIDs waits until every id is on the decisions topic; it returns the
// ids still missing at the deadline.
func (s *system) waitIDs(ids map[string]decInfo, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		d := s.log.snapshot()
		var missing []string
		for id := range ids {
			if d.count[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitQuiet waits until no new decision id arrived for quiet (at most
// timeout).
func (s *system) waitQuiet(quiet, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Since(s.log.lastNew()) < quiet && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAll stops every running instance with SIGTERM and fails the test
// if one does not exit cleanly.
func (s *system) stopAll() {
	s.t.Helper()
	for _, in := range s.instances {
		if in.p == nil || !in.p.running() {
			continue
		}
		if err := in.p.stop(40 * time.Second); err != nil {
			s.t.Errorf("chaos: %s: fenqid %s did not stop cleanly on SIGTERM: %v; log:\n%s", s.name, in.name, err, tail(in.logPath, 30))
		}
	}
}

// warnLines counts the WARN and ERROR log lines of every instance.
func (s *system) warnLines() (warn, errs int) {
	for _, in := range s.instances {
		b, err := os.ReadFile(in.logPath)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.Contains(l, `"level":"WARN"`):
				warn++
			case strings.Contains(l, `"level":"ERROR"`):
				errs++
			}
		}
	}
	return
}

func (s *system) logTails() string {
	var b strings.Builder
	for _, in := range s.instances {
		fmt.Fprintf(&b, "--- fenqid %s (%s):\n%s\n", in.name, in.logPath, tail(in.logPath, 15))
	}
	return b.String()
}
