//go:build unix

package jobs_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/internal/tuning"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// BenchmarkRecompute1M measures recomputing the quota of N users with
// realistic state (N from FENQI_BENCH_USERS: `make bench-recompute` runs
// 1,000,000; plain `go test -bench` runs 20,000), next to only reading
// those users' state from Redis, in the same run on the same redis-server.
//
// Setup (not measured): a redis-server of its own; the generated state
// checked first (see verifyLayout: a generated user must read back as
// generated, and real events applied to it with state.Store.Apply must
// leave the bytes its generated state with those events encodes to); then
// N users generated as engine.State values (35 daily and 7 monthly
// buckets, 2 devices and 2 cities, profile, a 32-entry dedup ring, 15
// payment times, offsets, a quota for 90%, an open bill for 30%; see
// rcSynth) and written straight as one value each (SET state.UserKey to
// engine.Encode's bytes) with big pipelines, every user in the cycle's
// phase index (state.PhaseKey) and due now (Store.RecomputeAll).
//
// Passes (each sub-benchmark op is one pass over all N users):
//   - read_*: store.Users in chunks of 500 (one MGET of the users'
//     values, decoded into read views), in the order a recompute
//     visits the users (by phase); once more at the end in the order they
//     were written (read_1goroutine_in_write_order), where neighbours'
//     values lie together in Redis's memory: faster than any order a
//     production Redis gives, so only a reference;
//   - read_states_1goroutine: the same users read as a recompute reads
//     them (store.ReadStates: the same MGET, decoded, no read views);
//   - recompute_*: the real loop, jobs.Runner.RunOnce until nothing is due
//     (ScheduleStats, ClaimRecomputes, ReadStates, FactsOf, credit.Evaluate,
//     NextDue, rules.Quota, Publish, SaveQuotas: a compare-and-set of each
//     user's value, read again) with a Publisher that only encodes each
//     batch's decisions as fenqid's does (producers.Publisher's
//     DecisionMessages): publishing to Kafka is NOT included; 2 instances
//     = two Runners at once;
//   - steps_1goroutine: the same steps as recomputeOnce written out, timed
//     phase by phase; "cpu" (Facts+Evaluate+NextDue+Quota+Marshal on users
//     already read) is the pure CPU part.
//
// Figures are printed (a table on stdout and b.ReportMetric); nothing is
// asserted about time. Go CPU is this process's rusage, Redis CPU is INFO
// cpu: the machine's cores are shared by both.
func BenchmarkRecompute1M(b *testing.B) {
	gc := tuning.Apply() // fenqid's garbage-collector setting, for both reads and recomputes
	defer debug.SetGCPercent(100)
	n := rcEnvInt(b, "FENQI_BENCH_USERS", 20_000)
	ctx := context.Background()
	e := newRCBench(b, n)
	e.verifyLayout(b, ctx)
	e.populate(b, ctx)

	pass := func(name string, arm bool, fn func() (string, error)) {
		b.Run(name, func(b *testing.B) {
			var row rcRow
			for range b.N {
				b.StopTimer()
				if arm {
					e.armSchedule(b, ctx)
				}
				row = e.measure(b, ctx, name, fn)
			}
			e.rows = append(e.rows, row)
			if e.cpuOnly > 0 {
				e.rows = append(e.rows, rcRow{name: "  of which cpu only (facts..marshal)", users: row.users, wall: e.cpuOnly, alloc: math.MaxUint64})
				e.cpuOnly = 0
			}
			b.ReportMetric(float64(row.users)/row.wall.Seconds(), "users/s")
			b.ReportMetric(float64(row.alloc)/float64(row.users), "alloc_B/user")
			b.ReportMetric(float64(row.peakHeap)/(1<<20), "peak_heap_MB")
			b.ReportMetric(row.goCPU, "go_cpu_s")
			b.ReportMetric(row.redisCPU, "redis_cpu_s")
		})
	}
	// The machine's two cores are shared with redis-server and whatever
	// else runs, so a pass varies by 10-20% from one run to the next: each
	// read and its recompute run back to back, FENQI_BENCH_ROUNDS times,
	// and the summary gives every round's ratio and their median.
	rounds := rcEnvInt(b, "FENQI_BENCH_ROUNDS", 3)
	for round := range rounds {
		e.round = round + 1
		pass("read_1goroutine", false, func() (string, error) { return e.readPass(ctx, 1, e.byPhase) })
		pass("read_states_1goroutine", false, func() (string, error) { return e.readStatesPass(ctx, e.byPhase) })
		pass("recompute_1instance", true, func() (string, error) { return e.runnerPass(ctx, 1) })
		pass("read_2goroutines", false, func() (string, error) { return e.readPass(ctx, 2, e.byPhase) })
		pass("recompute_2instances", true, func() (string, error) { return e.runnerPass(ctx, 2) })
	}
	e.round = 0
	// For reference: the same read in the order the users were written,
	// whose keys lie next to each other in Redis's memory, which no
	// production order gives (see readPass).
	pass("read_1goroutine_in_write_order", false, func() (string, error) { return e.readPass(ctx, 1, e.ids) })
	pass("steps_1goroutine", true, func() (string, error) { return e.stepsPass(ctx) })
	e.printTable(gc)
}

// rcBench is one redis-server with N generated users.
type rcBench struct {
	n         int
	now       time.Time
	srv       interface{ Addr() string }
	rdb       *redis.Client // the store's client, fenqid's defaults
	bulk      *redis.Client // population and bookkeeping, long timeouts
	store     *state.Store
	pol       *policy.Policy
	rules     *scoring.Rules
	ids       []string // in the order they were written
	byPhase   []string // in the order a recompute visits them (state.Phase)
	zones     map[string]*time.Location
	lease     time.Duration
	popWall   time.Duration
	memBase   int64 // used_memory of the empty server
	memPop    int64 // after population
	idxMem    map[string]int64
	sample    int64                            // MEMORY USAGE of one verified user's value
	sampleLen int64                            // and its length
	logf      func(format string, args ...any) // setup's lines: stdout (tests: t.Logf)
	cpuOnly   time.Duration                    // set by stepsPass: its Facts..Marshal time
	round     int                              // of read and recompute passes (0: not a round)
	rows      []rcRow
}

type rcRow struct {
	name       string
	round      int
	users      int
	wall       time.Duration
	alloc      uint64 // TotalAlloc delta
	peakHeap   uint64 // highest HeapInuse seen during the pass
	goCPU      float64
	redisCPU   float64
	mem0, mem1 int64 // Redis used_memory before and after
	note       string
	redisCmds  string // where Redis spent its time in the pass (INFO commandstats)
}

func rcEnvInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(strings.ReplaceAll(v, "_", ""), ",", ""))
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func newRCBench(tb testing.TB, n int) *rcBench {
	tb.Helper()
	e := newRCGenerator(tb)
	e.n, e.lease = n, time.Minute
	e.logf = func(format string, args ...any) { fmt.Printf(format, args...) }
	e.srv = testenv.RedisServer(tb)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.srv.Addr()}) // as cmd/fenqid
	e.bulk = redis.NewClient(&redis.Options{Addr: e.srv.Addr(), ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute})
	tb.Cleanup(func() { _ = e.rdb.Close(); _ = e.bulk.Close() })
	var err error
	if e.store, err = state.New(e.rdb, state.Config{Now: func() time.Time { return e.now }}); err != nil {
		tb.Fatal(err)
	}
	if err := e.store.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	e.ids = make([]string, n)
	for i := range e.ids {
		e.ids[i] = rcUserID(i)
	}
	e.byPhase = slices.Clone(e.ids)
	slices.SortFunc(e.byPhase, func(a, b string) int { // the phase index's order
		return cmp.Or(cmp.Compare(state.Phase(a), state.Phase(b)), strings.Compare(a, b))
	})
	return e
}

// newRCGenerator is what rcSynth needs to generate users (the zones and
// now) and what evaluates them (the wechat policy and its rules), with no
// server: newRCBench adds one.
func newRCGenerator(tb testing.TB) *rcBench {
	tb.Helper()
	// now: 2026-11-20 12:00 in Shanghai (as the state tests), so that the
	// generated data and the figures are the same from run to run.
	zones := map[string]*time.Location{}
	for _, z := range []string{"Asia/Shanghai", "Asia/Hong_Kong", "Europe/London"} {
		loc, err := time.LoadLocation(z)
		if err != nil {
			tb.Fatal(err)
		}
		zones[z] = loc
	}
	zones[""] = zones["Asia/Shanghai"] // the store's default zone
	pol, err := policy.Preset("wechat")
	if err != nil {
		tb.Fatal(err)
	}
	rules, err := scoring.NewRules(pol)
	if err != nil {
		tb.Fatal(err)
	}
	return &rcBench{now: time.Date(2026, 11, 20, 12, 0, 0, 0, zones["Asia/Shanghai"]), zones: zones, pol: pol, rules: rules}
}

// rcUserID: zero-padded, so the ids' byte order is their index order.
func rcUserID(i int) string { return fmt.Sprintf("u%08d", i) }

// ---- population -----------------------------------------------------------

func (e *rcBench) populate(tb testing.TB, ctx context.Context) {
	tb.Helper()
	e.memBase = e.usedMemory(tb, ctx)
	start := time.Now()
	const chunk = 500
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= e.n {
					return
				}
				hi := min(lo+chunk, e.n)
				pipe := e.bulk.Pipeline()
				zs := make([]redis.Z, 0, hi-lo)
				var timers []redis.Z
				var buf []byte // the chunk's values, one after the other
				for i := lo; i < hi; i++ {
					s := e.rcSynth(e.ids[i], uint64(i))
					at := len(buf)
					buf = engine.Encode(buf, s.st)
					pipe.Set(ctx, state.UserKey(s.id), buf[at:len(buf):len(buf)], 0)
					zs = append(zs, redis.Z{Score: state.Phase(s.id), Member: s.id})
					if z, ok := s.openTimer(); ok {
						timers = append(timers, z)
					}
				}
				pipe.ZAdd(ctx, state.PhaseKey, zs...)
				if len(timers) > 0 {
					pipe.ZAdd(ctx, state.TimersKey, timers...)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	e.popWall = time.Since(start)
	e.memPop = e.usedMemory(tb, ctx)
	e.idxMem = map[string]int64{}
	for _, k := range []string{state.PhaseKey, state.TimersKey} {
		e.idxMem[k] = e.bulk.MemoryUsage(ctx, k, 0).Val()
	}
	if n := e.bulk.ZCard(ctx, state.PhaseKey).Val(); n != int64(e.n) {
		tb.Fatalf("%d users in the recompute schedule, want %d", n, e.n)
	}
	e.logf("populated %d users in %.1fs (%.0f users/s); Redis used_memory %.1f MB (+%.0f B/user incl. indexes; %s %.1f MB, %s %.1f MB)\n",
		e.n, e.popWall.Seconds(), float64(e.n)/e.popWall.Seconds(), float64(e.memPop)/(1<<20),
		float64(e.memPop-e.memBase)/float64(e.n), state.PhaseKey, float64(e.idxMem[state.PhaseKey])/(1<<20),
		state.TimersKey, float64(e.idxMem[state.TimersKey])/(1<<20))
}

// armSchedule makes every user due now again (after a recompute pass).
func (e *rcBench) armSchedule(tb testing.TB, ctx context.Context) {
	tb.Helper()
	if err := e.store.RecomputeAll(ctx, e.now, jobs.CycleOf(e.pol)); err != nil {
		tb.Fatal(err)
	}
}

// ---- the passes ---------------------------------------------------------------

// readPass reads every user with store.Users, 500 at a time, in the
// order of ids. The read a recompute is compared with goes in the order a
// recompute visits the users (their phase): in the order they were
// written, neighbours' keys lie next to each other in Redis's memory and
// the read is faster than any production order allows.
func (e *rcBench) readPass(ctx context.Context, workers int, ids []string) (string, error) {
	return e.readPassWith(ctx, workers, ids, func(ids []string) (int, error) {
		us, err := e.store.Users(ctx, ids)
		var d int
		for _, u := range us {
			d += len(u.Days)
		}
		return d, err
	})
}

// readStatesPass reads every user as a recompute reads them
// (store.ReadStates: the compact states, no read views), 500 at a time in
// the order of ids.
func (e *rcBench) readStatesPass(ctx context.Context, ids []string) (string, error) {
	return e.readPassWith(ctx, 1, ids, func(ids []string) (int, error) {
		b := &state.RecomputeBatch{Claims: make([]state.Claim, len(ids))}
		for i, id := range ids {
			b.Claims[i].Member = id
		}
		sts, err := e.store.ReadStates(ctx, b)
		var d int
		for _, st := range sts {
			d += len(st.Days)
		}
		return d, err
	})
}

// readPassWith reads ids in chunks of 500 with read, which returns how
// many daily buckets it read, on workers goroutines.
func (e *rcBench) readPassWith(ctx context.Context, workers int, ids []string, read func([]string) (int, error)) (string, error) {
	const chunk = 500
	var next, days atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= e.n {
					return
				}
				d, err := read(ids[lo:min(lo+chunk, e.n)])
				if err != nil {
					errs <- err
					return
				}
				days.Add(int64(d))
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	if days.Load() != int64(35*e.n) {
		return "", fmt.Errorf("read %d daily buckets, want %d", days.Load(), 35*e.n)
	}
	return "", nil
}

// rcPublisher stands in for Kafka: it encodes each decision as fenqid's
// producer does (a producers.Publisher that is never connected encodes
// them: producers.Publisher.DecisionMessages) and drops it.
type rcPublisher struct {
	n, bytes atomic.Int64
	enc      *producers.Publisher
}

func newRCPublisher() (*rcPublisher, error) {
	enc, err := producers.New(producers.Config{Brokers: []string{"127.0.0.1:1"}}) // never dialled: only its encoding is used
	return &rcPublisher{enc: enc}, err
}

func (p *rcPublisher) Topics() (string, string) { return p.enc.Topics() }

func (p *rcPublisher) DecisionMessages(ds []events.Decision) ([]kafka.Message, error) {
	return p.enc.DecisionMessages(ds)
}

func (p *rcPublisher) Write(_ context.Context, msgs []kafka.Message) error {
	var sz int64
	for _, m := range msgs {
		sz += int64(len(m.Value))
	}
	p.n.Add(int64(len(msgs)))
	p.bytes.Add(sz)
	return nil
}

// runnerPass runs the real recompute loop (jobs.Runner.RunOnce until
// nothing is due) on instances Runners at once.
func (e *rcBench) runnerPass(ctx context.Context, instances int) (string, error) {
	pub, err := newRCPublisher()
	if err != nil {
		return "", err
	}
	runners := make([]*jobs.Runner, instances)
	for i := range runners {
		r, err := jobs.New(jobs.Config{Now: func() time.Time { return e.now }, Batch: 500, Lease: e.lease,
			Retry: retry.Policy{MaxElapsed: 30 * time.Second}},
			e.store, pub, func() (*policy.Policy, *scoring.Rules) { return e.pol, e.rules }, nil, nil)
		if err != nil {
			return "", err
		}
		runners[i] = r
	}
	var wg sync.WaitGroup
	errs := make(chan error, instances)
	for _, r := range runners {
		wg.Go(func() {
			for {
				n, err := r.RunOnce(ctx)
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	var done int64
	for _, r := range runners {
		done += r.Recomp.Done.Load()
	}
	if done != int64(e.n) || pub.n.Load() != int64(e.n) {
		return "", fmt.Errorf("recomputed %d users, published %d decisions; want %d", done, pub.n.Load(), e.n)
	}
	return fmt.Sprintf("decisions %.0f B avg", float64(pub.bytes.Load())/float64(e.n)), nil
}

// stepsPass does what recomputeOnce does, batch by batch on one goroutine,
// timing each step.
func (e *rcBench) stepsPass(ctx context.Context) (string, error) {
	var claim, read, cpu, marshal, save time.Duration
	var n int
	enc, err := newRCPublisher()
	if err != nil {
		return "", err
	}
	for {
		t0 := time.Now()
		cyc := jobs.CycleOf(e.pol)
		if _, _, err := e.store.RecomputeStats(ctx, e.now, cyc); err != nil {
			return "", err
		}
		batch, err := e.store.ClaimRecomputes(ctx, e.now, 500, e.lease, cyc)
		if err != nil {
			return "", err
		}
		claims := batch.Claims
		t1 := time.Now()
		claim += t1.Sub(t0)
		if len(claims) == 0 {
			break
		}
		users, err := e.store.ReadStates(ctx, batch) // as the recompute reads
		if err != nil {
			return "", err
		}
		t2 := time.Now()
		read += t2.Sub(t1)
		ds := make([]events.Decision, len(claims))
		quotas := make([]state.Quota, len(claims))
		for i, c := range claims {
			st := users[i]
			res := credit.Evaluate(e.pol, jobs.FactsOf(st, e.store.ZoneOf(st), e.pol, e.now))
			cause := "recompute:" + c.Member + ":" + strconv.FormatInt(st.Recomputes+1, 10) + ":" + strconv.FormatInt(c.Due.Unix(), 10) // as evaluateChunk
			ds[i] = scoring.WithPools(e.rules.Quota(c.Member, cause, st.QuotaFen, res, c.Next), jobs.PoolViewsOf(st, res.QuotaFen, e.now))
			quotas[i] = state.Quota{UserID: c.Member, QuotaFen: res.QuotaFen, Seq: st.Recomputes + 1, CycleDone: c.Due}
		}
		t3 := time.Now()
		cpu += t3.Sub(t2)
		if _, err := enc.DecisionMessages(ds); err != nil {
			return "", err
		}
		t4 := time.Now()
		marshal += t4.Sub(t3)
		if err := e.store.SaveQuotas(ctx, batch, quotas); err != nil {
			return "", err
		}
		save += time.Since(t4)
		n += len(claims)
	}
	if n != e.n {
		return "", fmt.Errorf("recomputed %d users, want %d", n, e.n)
	}
	e.cpuOnly = cpu + marshal
	return fmt.Sprintf("steps: claim %.2fs, read %.2fs, facts+evaluate+quota %.2fs, marshal %.2fs, save %.2fs",
		claim.Seconds(), read.Seconds(), cpu.Seconds(), marshal.Seconds(), save.Seconds()), nil
}

// ---- measuring ------------------------------------------------------------------

// measure runs one pass with the benchmark timer on, and what it cost.
func (e *rcBench) measure(b *testing.B, ctx context.Context, name string, fn func() (string, error)) rcRow {
	b.Helper()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	row := rcRow{name: name, round: e.round, users: e.n, mem0: e.usedMemory(b, ctx), peakHeap: m0.HeapInuse}
	if err := e.bulk.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cpu0, rcpu0 := rcProcessCPU(), e.redisCPU(b, ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				row.peakHeap = max(row.peakHeap, ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	b.StartTimer()
	note, err := fn()
	b.StopTimer()
	row.wall = time.Since(start)
	close(stop)
	<-done
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	runtime.ReadMemStats(&m1)
	row.peakHeap = max(row.peakHeap, m1.HeapInuse)
	row.alloc = m1.TotalAlloc - m0.TotalAlloc
	row.goCPU, row.redisCPU = rcProcessCPU()-cpu0, e.redisCPU(b, ctx)-rcpu0
	row.mem1 = e.usedMemory(b, ctx)
	row.note = note
	row.redisCmds = e.commandStats(b, ctx)
	b.StartTimer()
	return row
}

func rcProcessCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (e *rcBench) info(tb testing.TB, ctx context.Context, section string) map[string]string {
	tb.Helper()
	raw, err := e.bulk.Info(ctx, section).Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (e *rcBench) usedMemory(tb testing.TB, ctx context.Context) int64 {
	n, _ := strconv.ParseInt(e.info(tb, ctx, "memory")["used_memory"], 10, 64)
	return n
}

func (e *rcBench) redisCPU(tb testing.TB, ctx context.Context) float64 {
	in := e.info(tb, ctx, "cpu")
	u, _ := strconv.ParseFloat(in["used_cpu_user"], 64)
	s, _ := strconv.ParseFloat(in["used_cpu_sys"], 64)
	return u + s
}

func (e *rcBench) printTable(gcPercent int) {
	// Each recompute is compared with the read of its own round and of
	// its parallelism; read_2goroutines with read_1goroutine.
	base := map[string]string{"recompute_1instance": "read_1goroutine", "recompute_2instances": "read_2goroutines", "read_2goroutines": "read_1goroutine"}
	wall := map[[2]any]float64{}
	for _, r := range e.rows {
		wall[[2]any{r.name, r.round}] = r.wall.Seconds()
	}
	median := func(name string) float64 {
		var xs []float64
		for _, r := range e.rows {
			if r.name == name && r.round > 0 {
				xs = append(xs, r.wall.Seconds())
			}
		}
		return rcMedian(xs)
	}
	ratio := func(r rcRow) float64 {
		if b, ok := base[r.name]; ok && r.round > 0 {
			return r.wall.Seconds() / wall[[2]any{b, r.round}]
		}
		if r.name == "read_1goroutine" && r.round > 0 {
			return 1
		}
		return r.wall.Seconds() / median("read_1goroutine")
	}
	label := func(r rcRow) string {
		if r.round > 0 {
			return fmt.Sprintf("%s #%d", r.name, r.round)
		}
		return r.name
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nRecompute of %d users (GOMAXPROCS %d, %d CPUs shared with redis-server; GC percent %d, as fenqid runs; Kafka publishing excluded)\n",
		e.n, runtime.GOMAXPROCS(0), runtime.NumCPU(), gcPercent)
	fmt.Fprintf(w, "%-42s %8s %10s %8s %8s %9s %10s %9s %11s %11s\n",
		"pass", "wall s", "users/s", "x read", "Go CPU s", "Redis CPU", "Go alloc", "B/user", "peak heap", "Redis mem")
	for _, r := range e.rows {
		if r.alloc == math.MaxUint64 { // a derived line: time only
			fmt.Fprintf(w, "%-42s %8.2f %10.0f %8.2f\n", r.name, r.wall.Seconds(), float64(r.users)/r.wall.Seconds(), ratio(r))
			continue
		}
		fmt.Fprintf(w, "%-42s %8.2f %10.0f %8.2f %8.1f %9.1f %8.0fMB %9.0f %9.0fMB %9.0fMB\n",
			label(r), r.wall.Seconds(), float64(r.users)/r.wall.Seconds(), ratio(r), r.goCPU, r.redisCPU,
			float64(r.alloc)/(1<<20), float64(r.alloc)/float64(r.users), float64(r.peakHeap)/(1<<20), float64(r.mem1)/(1<<20))
		if r.note != "" {
			fmt.Fprintf(w, "%-42s %s\n", "", r.note)
		}
		if r.redisCmds != "" {
			fmt.Fprintf(w, "%-42s Redis time by command: %s\n", "", r.redisCmds)
		}
		if d := r.mem1 - r.mem0; d > 64<<10 || d < -64<<10 {
			fmt.Fprintf(w, "%-42s Redis used_memory %+.1f MB over the pass\n", "", float64(r.mem1-r.mem0)/(1<<20))
		}
	}
	// The recompute reads compact states, without the read views
	// store.Users builds: compared with that read too.
	for _, c := range [][2]string{{"recompute_1instance", "read_1goroutine"}, {"recompute_1instance", "read_states_1goroutine"},
		{"recompute_2instances", "read_2goroutines"}} {
		name, of := c[0], c[1]
		var rs []float64
		var each []string
		for _, r := range e.rows {
			if r.name == name && r.round > 0 {
				x := r.wall.Seconds() / wall[[2]any{of, r.round}]
				rs = append(rs, x)
				each = append(each, fmt.Sprintf("%.2f", x))
			}
		}
		fmt.Fprintf(w, "%s vs %s, round by round: %s; median %.2f (median walls %.2fs vs %.2fs)\n",
			name, of, strings.Join(each, " "), rcMedian(rs), median(name), median(of))
	}
	fmt.Fprintf(w, "population: %.1fs; Redis used_memory %.1f MB for %d users (%.0f B/user incl. the two indexes); one verified user's value %d B, %d B in Redis (MEMORY USAGE)\n\n",
		e.popWall.Seconds(), float64(e.memPop)/(1<<20), e.n, float64(e.memPop-e.memBase)/float64(e.n), e.sampleLen, e.sample)
}

func rcMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// commandStats sums Redis's INFO commandstats since the pass began: each
// command's total time and its time per call, biggest first.
func (e *rcBench) commandStats(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	type stat struct {
		name        string
		calls, usec float64
	}
	var stats []stat
	for k, v := range e.info(tb, ctx, "commandstats") {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || name == "info" || name == "config|resetstat" {
			continue
		}
		st := stat{name: name}
		for _, kv := range strings.Split(v, ",") {
			f, x, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseFloat(x, 64)
			switch f {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		stats = append(stats, st)
	}
	slices.SortFunc(stats, func(a, b stat) int { return cmp.Compare(b.usec, a.usec) })
	var parts []string
	for _, st := range stats {
		if st.usec < 1000 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2fs (%.0f calls)", st.name, st.usec/1e6, st.calls))
	}
	return strings.Join(parts, ", ")
}
