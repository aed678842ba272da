package consumers_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/tuning"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/simulator"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/telemetry"
)

// minimalScript is the baseline of the state-engine issue: dedupe by
// offset and two HINCRBY per event, over one hash per user.
// KEYS: one per event; ARGV: per event its offset and amount.
var minimalScript = redis.NewScript(`
for i, k in ipairs(KEYS) do
  local off = tonumber(ARGV[2 * i - 1])
  if off > tonumber(redis.call("HGET", k, "o") or "-1") then
    redis.call("HSET", k, "o", off)
    redis.call("HINCRBY", k, "n", 1)
    redis.call("HINCRBY", k, "f", ARGV[2 * i])
  end
end
return 0
`)

// cpu is a process's and Redis's CPU time so far.
type cpu struct{ self, redis time.Duration }

func cpuNow(tb testing.TB, rdb *redis.Client) cpu {
	tb.Helper()
	self, err := selfCPU()
	if err != nil {
		tb.Fatal(err)
	}
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var secs float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			secs += f
		}
	}
	return cpu{self: self, redis: time.Duration(secs * float64(time.Second))}
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// row is one line of the table.
type row struct {
	name         string
	events       int
	took         time.Duration
	redis, goCPU time.Duration
	note         string
}

func (r row) rate() float64 { return float64(r.events) / r.took.Seconds() }

// simulated returns n decoded simulated events with their coordinates.
func simulated(tb testing.TB, n int, simNow time.Time) []state.Item {
	tb.Helper()
	sim := simulator.New(simulator.Config{Users: 20_000, Seed: 42, Now: func() time.Time { return simNow }})
	dec := events.Decoder{Now: func() time.Time { return simNow.Add(time.Hour) }}
	topics := map[string]int{}
	for i, t := range consumers.DefaultTopics().List() {
		topics[t] = i + 1
	}
	offsets := map[string]int64{}
	items := make([]state.Item, 0, n)
	evs := make([]events.Event, n)
	for i := 0; len(items) < n; i++ {
		topic, key, value := sim.Next()
		offsets[topic]++
		ev, err := dec.Decode(key, nil, value)
		if err != nil {
			continue // the simulator's malformed records: dead letters
		}
		evs[len(items)] = ev
		items = append(items, state.Item{Event: &evs[len(items)], Topic: topics[topic], Offset: offsets[topic]})
	}
	return items
}

// BenchmarkStateEngineRows prints the state-engine issue's figures, side
// by side on one redis-server in one run: (a) the minimal script, one call
// per batch of 500; (b) the same script, one call per event; (c) fenqi's
// Prepare and Commit of batches of 500 (no Kafka); (d) the whole pipeline
// draining 100,000 simulated events from kfake. With Redis CPU per event
// (INFO cpu before and after) and this process's CPU per event; for (d)
// also the broker's, in a process of its own (see trafficProcess). The
// rows run FENQI_BENCH_ROUNDS times (default 3), each round's table
// printed, then the medians (of the ratios taken within each round). Then
// the latency at 70% (and 30%) of (d)'s median rate. Run with -benchtime
// 1x.
func BenchmarkStateEngineRows(b *testing.B) {
	const total = 100_000
	const perEvent = 20_000 // (b) is slow: fewer events give the same rate
	b.StopTimer()
	// fenqid's garbage-collector setting (GOGC=400 unless set), so that (d)
	// and the latencies are fenqid's.
	tuning.Apply()
	defer debug.SetGCPercent(100)
	rounds := benchRounds()
	for range b.N {
		tr := startTraffic(b)
		e := envOn(b, []string{tr.addr})
		simNow := time.Now()
		items := simulated(b, total, simNow)
		// The rows again and again, each round on a fresh state: this
		// machine's speed drifts within a minute, so the ratios are taken
		// within each round, and the summary gives their medians.
		var all [][]row
		var sb strings.Builder
		for r := range rounds {
			rows := rowsRound(b, e, tr, items, simNow, total, perEvent)
			all = append(all, rows)
			fmt.Fprintf(&sb, "\nround %d of %d\n", r+1, rounds)
			printRows(&sb, rows)
		}
		med := func(f func(rows []row) float64) float64 {
			vs := make([]float64, len(all))
			for i, rows := range all {
				vs[i] = f(rows)
			}
			slices.Sort(vs)
			return vs[len(vs)/2]
		}
		us := func(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) / 1e3 }
		dRate := med(func(rows []row) float64 { return rows[3].rate() })
		fmt.Fprintf(&sb, "\nmedians of %d rounds:\n", rounds)
		for i, name := range []string{"(a)", "(b)", "(c)", "(d)"} {
			fmt.Fprintf(&sb, "  %s %.0f events/s, Redis %.2fµs, Go %.2fµs an event\n", name,
				med(func(rows []row) float64 { return rows[i].rate() }),
				med(func(rows []row) float64 { return us(rows[i].redis, rows[i].events) }),
				med(func(rows []row) float64 { return us(rows[i].goCPU, rows[i].events) }))
		}
		fmt.Fprintf(&sb, "  (d)/(a) = %.2f (target ≥ 0.5); (d)/(b) = %.1f (target ≥ 15); (c)/(a) = %.2f (each round's ratio)\n",
			med(func(rows []row) float64 { return rows[3].rate() / rows[0].rate() }),
			med(func(rows []row) float64 { return rows[3].rate() / rows[1].rate() }),
			med(func(rows []row) float64 { return rows[2].rate() / rows[0].rate() }))
		b.ReportMetric(dRate, "events/s")
		b.ReportMetric(med(func(rows []row) float64 { return us(rows[3].redis, rows[3].events) }), "redis_us/event")

		// Each latency row on a broker and a redis-server of its own, as
		// fresh as (d)'s state: not behind the records and users the rows
		// before left. The traffic's writer, the broker and the pipeline
		// share this machine's cores: also at 30%, where they do not
		// saturate it.
		at := func(rate float64) latencyFigures {
			tr := startTraffic(b)
			return latencyAt(b, envOn(b, []string{tr.addr}), tr, rate, 10*time.Second)
		}
		lat, low := at(0.7*dRate), at(0.3*dRate)
		fmt.Fprintf(&sb, "latency, event appended to decision acknowledged (target p99 ≤ 25ms), 12 s of traffic, 5 events a user:\n")
		fmt.Fprintf(&sb, "  at 70%% of (d)'s median = %.0f events/s: %v\n", 0.7*dRate, lat)
		fmt.Fprintf(&sb, "  at 30%% of (d)'s median = %.0f events/s: %v\n", 0.3*dRate, low)
		b.Log(sb.String())
		fmt.Println(sb.String())
	}
}

// benchRounds is how many times the rows run (FENQI_BENCH_ROUNDS, default 3).
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("FENQI_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// profileCPU writes a CPU profile of this process (the pipeline's) to
// path until the returned func is called; no path, no profile. Each
// round overwrites the last one's.
func profileCPU(b *testing.B, path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// rowsRound measures rows (a) to (d) once, each on a fresh Redis: (d)
// drains total more records, filled now, with a new pipeline of the same
// group.
func rowsRound(b *testing.B, e *env, tr *traffic, items []state.Item, simNow time.Time, total, perEvent int) []row {
	ctx := context.Background()
	fresh := func() {
		if err := e.rdb.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		if err := minimalScript.Load(ctx, e.rdb).Err(); err != nil {
			b.Fatal(err)
		}
		if err := e.store.Load(ctx); err != nil {
			b.Fatal(err)
		}
	}
	fresh()
	var rows []row
	measure := func(name string, n int, fn func()) *row {
		c0, t0 := cpuNow(b, e.rdb), time.Now()
		fn()
		took, c1 := time.Since(t0), cpuNow(b, e.rdb)
		rows = append(rows, row{name: name, events: n, took: took, redis: c1.redis - c0.redis, goCPU: c1.self - c0.self})
		return &rows[len(rows)-1]
	}
	amount := func(it state.Item) int64 {
		if p := it.Event.Payment; p != nil {
			return p.AmountFen
		}
		return 1
	}
	script := func(prefix string, part []state.Item) {
		keys := make([]string, len(part))
		args := make([]any, 0, 2*len(part))
		for k, it := range part {
			keys[k] = prefix + it.Event.UserID()
			args = append(args, it.Offset, amount(it))
		}
		if err := minimalScript.EvalSha(ctx, e.rdb, keys, args...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	measure("(a) minimal script, 1 call / 500 events", total, func() {
		for lo := 0; lo < total; lo += 500 {
			script("min-a:", items[lo:min(lo+500, total)])
		}
	})
	measure("(b) minimal script, 1 call / event", perEvent, func() {
		for i := range perEvent {
			script("min-b:", items[i:i+1])
		}
	})
	if err := e.rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	measure("(c) fenqi Prepare+Commit, batches of 500", total, func() {
		var d state.Drafts
		for lo := 0; lo < total; lo += 500 {
			sb, err := e.store.Prepare(ctx, items[lo:min(lo+500, total)], &d)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.store.Commit(ctx, sb, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
	stats := os.Getenv("FENQI_BENCH_COMMANDSTATS") != ""
	if stats {
		fmt.Println("after (a), (b) and (c):", e.rdb.Info(ctx, "commandstats").Val())
	}
	fresh() // (d) on a fresh state too
	if stats {
		e.rdb.ConfigResetStat(ctx)
	}
	tr.do(b, "fill %d %d", total, simNow.UnixNano())
	rules := scoring.DefaultRules()
	p, err := consumers.New(consumers.Config{Brokers: e.brokers, Now: func() time.Time { return simNow }},
		e.store, func() consumers.Rules { return rules }, e.pub, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	k0 := tr.cpu(b)
	d := measure("(d) whole pipeline, 100k simulated events", total, func() {
		defer profileCPU(b, os.Getenv("FENQI_BENCH_CPUPROFILE"))()
		drain(b, p, int64(total))
	})
	k1 := tr.cpu(b)
	d.note = fmt.Sprintf("broker process %.2fµs", float64((k1-k0).Nanoseconds())/float64(total)/1e3)
	if stats {
		fmt.Println("(d):", e.rdb.Info(ctx, "commandstats").Val())
	}
	return rows
}

// printRows writes a round's table and its ratios.
func printRows(sb *strings.Builder, rows []row) {
	fmt.Fprintf(sb, "%-44s %12s %16s %14s\n", "row", "events/s", "Redis CPU/event", "Go CPU/event")
	for _, r := range rows {
		fmt.Fprintf(sb, "%-44s %12.0f %14.2fµs %12.2fµs %s\n", r.name, r.rate(),
			float64(r.redis.Nanoseconds())/float64(r.events)/1e3, float64(r.goCPU.Nanoseconds())/float64(r.events)/1e3, r.note)
	}
	a, bb, c, d := rows[0], rows[1], rows[2], rows[3]
	fmt.Fprintf(sb, "(d)/(a) = %.2f (target ≥ 0.5); (d)/(b) = %.1f (target ≥ 15); (c)/(a) = %.2f\n",
		d.rate()/a.rate(), d.rate()/bb.rate(), c.rate()/a.rate())
}

// latencies collects the append-time latency of every decision.
type latencies struct {
	consumers.NopObserver
	mu sync.Mutex
	on bool // after the warm-up
	ds []time.Duration
}

func (l *latencies) Latency(clock string, d time.Duration) {
	if clock != telemetry.ClockAppendTime {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on {
		l.ds = append(l.ds, d)
	}
}

func (l *latencies) start() {
	l.mu.Lock()
	l.on = true
	l.mu.Unlock()
}

type latencyFigures struct {
	p50, p99 time.Duration
	n        int
	users    int
	// CPU per event offered while the traffic was written and decided:
	// this process (the pipeline), Redis, and the traffic process (the
	// broker, and the writes of the traffic into it).
	self, redis, traffic time.Duration
	busy                 float64 // their sum over the run's wall time, in cores
}

func (l latencyFigures) String() string {
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return fmt.Sprintf("p50 %v, p99 %v (%d decisions, %d users); CPU an event: pipeline %.2fµs, Redis %.2fµs, broker and traffic %.2fµs: %.2f of %d cores busy",
		l.p50.Round(10*time.Microsecond), l.p99.Round(10*time.Microsecond), l.n, l.users, us(l.self), us(l.redis), us(l.traffic), l.busy, runtime.NumCPU())
}

// latencyAt offers simulated traffic at rate events/s for how long (after
// two seconds of warm-up) to a pipeline, and returns the latencies from each decided record's append to
// its decision's acknowledgement. The traffic has (d)'s shape: five events
// a user over the run (100,000 events of 20,000 users there), so that
// about as many events are a user's first and as many decide something
// (with (d)'s 20,000 users at this rate, each would pay every few
// seconds, and nearly every payment would raise a velocity alert).
func latencyAt(b *testing.B, e *env, tr *traffic, rate float64, how time.Duration) latencyFigures {
	b.Helper()
	obs := &latencies{}
	rules := scoring.DefaultRules()
	p, err := consumers.New(consumers.Config{Brokers: e.brokers, BatchWait: latencyBatchWait}, e.store, func() consumers.Rules { return rules }, e.pub, obs, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The warm-up (the group join, the first fetches) is not counted.
	const warmup = 2 * time.Second
	secs := (warmup + how).Seconds()
	users := int(rate * secs / 5)
	n := tr.do(b, "gen %g %g %d", rate, secs, users)
	c0, k0, t0 := cpuNow(b, e.rdb), tr.cpu(b), time.Now()
	tr.send(b, "send")
	if line := tr.line(b); line != "go" {
		b.Fatalf("the traffic process said %q, not go", line)
	}
	warm := time.AfterFunc(warmup, obs.start)
	defer warm.Stop()
	if sent := tr.answer(b); sent != n {
		b.Fatalf("the traffic process wrote %d events of %d", sent, n)
	}
	// Every event offered is decided in this run, those of a backlog too:
	// their latencies are this rate's, not the next run's.
	deadline := time.Now().Add(time.Minute)
	for p.Stats().Events.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c1, k1, took := cpuNow(b, e.rdb), tr.cpu(b), time.Since(t0)
	fig := latencyFigures{users: users, self: (c1.self - c0.self) / time.Duration(n), redis: (c1.redis - c0.redis) / time.Duration(n), traffic: (k1 - k0) / time.Duration(n)}
	fig.busy = float64(c1.self-c0.self+c1.redis-c0.redis+k1-k0) / float64(took)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	ds := obs.ds
	if len(ds) > 0 {
		slices.Sort(ds)
		fig.p50, fig.p99, fig.n = ds[len(ds)/2], ds[len(ds)*99/100], len(ds)
	}
	return fig
}

// latencyBatchWait is the pipeline's BatchWait in the latency rows
// (FENQI_BENCH_BATCH_WAIT, default the pipeline's own 10ms).
var latencyBatchWait = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("FENQI_BENCH_BATCH_WAIT"))
	return d
}()
