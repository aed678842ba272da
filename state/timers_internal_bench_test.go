package state

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/internal/testenv"
)

// BenchmarkTimerIndex measures the overdue-timer index (TimersKey) at N
// open bills (N from FENQI_BENCH_BILLS: `make bench-timers` runs 1,000,000;
// plain `go test -bench` runs 100,000): one member per bill, built by
// timerMember (this is an internal test for that), scores spread over the
// next 30 days with 1% due now (in the last 24 hours).
//
// It prints the key's MEMORY USAGE (SAMPLES 0: every member counted) and
// the server's used_memory growth, per bill; then:
//   - sweep: one sweep = ClaimTimers(now, 500, 1m) repeated until it
//     returns nothing, i.e. every due entry found and leased (the overdue
//     job's own work on each batch — reading bills, publishing, advancing —
//     is not part of it); between sweeps the due entries get their scores
//     back, untimed. Reported: the sweep time and each claim's latency
//     (p50/p99/max over all claims of all sweeps);
//   - schedule_bill: ScheduleBills (ZADD XX) of one due entry to the next
//     day, which the job calls for each check after AdvanceBill (the state
//     write, a compare-and-set of the user's value, is not part of it);
//   - schedule_stats: ScheduleStats (ZCOUNT of the due + ZCARD), which the
//     job calls on every look;
//   - idle_claim: a ClaimTimers when nothing is due, the cost of each idle
//     tick.
//
// Nothing about time is asserted; a sweep must claim every due entry once.
func BenchmarkTimerIndex(b *testing.B) {
	n := 100_000
	if v := os.Getenv("FENQI_BENCH_BILLS"); v != "" {
		var err error
		if n, err = strconv.Atoi(strings.ReplaceAll(v, "_", "")); err != nil || n < 100 {
			b.Fatalf("FENQI_BENCH_BILLS=%q: want an integer ≥ 100", v)
		}
	}
	ctx := context.Background()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)
	const lease = time.Minute
	srv := testenv.RedisServer(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	b.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	usedMemory := func() int64 {
		raw, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(raw, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO memory")
		return 0
	}

	// Populate: user i has bill i; every 100th is due.
	mem0 := usedMemory()
	rng := rand.New(rand.NewPCG(4, 2))
	var due []redis.Z // the due entries and their scores, to re-arm them
	var memberBytes int
	start := time.Now()
	const perZAdd, perPipe = 1000, 50
	for lo := 0; lo < n; lo += perZAdd * perPipe {
		pipe := rdb.Pipeline()
		for c := lo; c < min(lo+perZAdd*perPipe, n); c += perZAdd {
			zs := make([]redis.Z, 0, perZAdd)
			for i := c; i < min(c+perZAdd, n); i++ {
				uid := fmt.Sprintf("u%08d", i)
				bill := fmt.Sprintf("bill-2026%02d-%04x", 11+rng.IntN(2), rng.IntN(1<<16))
				m := timerMember(uid, bill)
				memberBytes += len(m)
				var score int64
				if i%100 == 0 {
					score = now.Unix() - rng.Int64N(86400) // due within the last day
				} else {
					score = now.Unix() + 1 + rng.Int64N(30*86400-1) // within the next 30 days
				}
				z := redis.Z{Score: float64(score), Member: m}
				zs = append(zs, z)
				if i%100 == 0 {
					due = append(due, z)
				}
			}
			pipe.ZAdd(ctx, TimersKey, zs...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	popWall := time.Since(start)
	mem1 := usedMemory()
	keyMem, err := rdb.MemoryUsage(ctx, TimersKey, 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	enc := rdb.ObjectEncoding(ctx, TimersKey).Val()
	dueN, total, err := s.ScheduleStats(ctx, TimersKey, now)
	if err != nil {
		b.Fatal(err)
	}
	if total != int64(n) || dueN != int64(len(due)) {
		b.Fatalf("index holds %d entries, %d due; want %d and %d", total, dueN, n, len(due))
	}
	rearm := func() {
		for lo := 0; lo < len(due); lo += perZAdd {
			if err := rdb.ZAddXX(ctx, TimersKey, due[lo:min(lo+perZAdd, len(due))]...).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}

	var sweeps, claims []time.Duration
	var perSweep int
	b.Run("sweep", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			rearm()
			b.StartTimer()
			t0 := time.Now()
			got, calls := 0, 0
			for {
				t := time.Now()
				cs, err := s.ClaimTimers(ctx, now, 500, lease)
				claims = append(claims, time.Since(t))
				calls++
				if err != nil {
					b.Fatal(err)
				}
				if len(cs) == 0 {
					break
				}
				got += len(cs)
			}
			sweeps = append(sweeps, time.Since(t0))
			perSweep = calls
			if got != len(due) {
				b.Fatalf("a sweep claimed %d entries, %d were due", got, len(due))
			}
		}
		b.ReportMetric(float64(len(due)), "due")
		b.ReportMetric(float64(perSweep), "claims/sweep")
		b.ReportMetric(tbPct(claims, 50).Seconds()*1e6, "claim_p50_µs")
		b.ReportMetric(tbPct(claims, 99).Seconds()*1e6, "claim_p99_µs")
	})
	var stats, idle, sched time.Duration
	b.Run("schedule_bill", func(b *testing.B) {
		rearm()
		ctx := context.Background()
		tomorrow := now.Add(24 * time.Hour)
		i := 0
		b.ResetTimer()
		for range b.N {
			u, bill, ok := splitTimerMember(due[i%len(due)].Member.(string))
			if !ok {
				b.Fatalf("bad member %v", due[i%len(due)].Member)
			}
			if err := s.ScheduleBills(ctx, []NextCheck{{UserID: u, BillID: bill, Next: tomorrow}}); err != nil {
				b.Fatal(err)
			}
			i++
		}
		sched = b.Elapsed() / time.Duration(b.N)
		b.StopTimer()
		if total := rdb.ZCard(ctx, TimersKey).Val(); total != int64(n) {
			b.Fatalf("ScheduleBills changed the index's size: %d entries, want %d", total, n)
		}
		rearm()
	})
	b.Run("schedule_stats", func(b *testing.B) {
		rearm()
		b.ResetTimer()
		for range b.N {
			if d, _, err := s.ScheduleStats(ctx, TimersKey, now); err != nil || d != int64(len(due)) {
				b.Fatalf("ScheduleStats: %d due, %v", d, err)
			}
		}
		stats = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("idle_claim", func(b *testing.B) {
		// Lease every due entry first: then nothing is due.
		for {
			cs, err := s.ClaimTimers(ctx, now, 500, lease)
			if err != nil {
				b.Fatal(err)
			}
			if len(cs) == 0 {
				break
			}
		}
		b.ResetTimer()
		for range b.N {
			if cs, err := s.ClaimTimers(ctx, now, 500, lease); err != nil || len(cs) != 0 {
				b.Fatalf("idle claim: %d claimed, %v", len(cs), err)
			}
		}
		idle = b.Elapsed() / time.Duration(b.N)
	})

	slices.Sort(sweeps)
	fmt.Printf("\nTimer index (%s) at %d open bills, %d due now (1%%), scores over 30 days; members %.1f B on average (timerMember)\n",
		TimersKey, n, len(due), float64(memberBytes)/float64(n))
	fmt.Printf("  populate:                 %.2fs (%.0f ZADD members/s, pipelined)\n", popWall.Seconds(), float64(n)/popWall.Seconds())
	fmt.Printf("  MEMORY USAGE (SAMPLES 0): %.1f MB = %.1f B/bill (encoding %s)\n", float64(keyMem)/(1<<20), float64(keyMem)/float64(n), enc)
	fmt.Printf("  used_memory delta:        %.1f MB = %.1f B/bill\n", float64(mem1-mem0)/(1<<20), float64(mem1-mem0)/float64(n))
	if len(sweeps) > 0 {
		fmt.Printf("  one sweep of the %d due:  median %.2f ms (min %.2f, max %.2f; %d sweeps), %d claims of ≤500 each (the last one empty)\n",
			len(due), tbMs(sweeps[len(sweeps)/2]), tbMs(sweeps[0]), tbMs(sweeps[len(sweeps)-1]), len(sweeps), perSweep)
		fmt.Printf("  per claim (%d claims):    p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
			len(claims), tbMs(tbPct(claims, 50)), tbMs(tbPct(claims, 99)), tbMs(tbPct(claims, 100)))
	}
	fmt.Printf("  ScheduleBills (ZADD XX of one check): %.3f ms;  ScheduleStats (ZCOUNT due + ZCARD, one round trip): %.3f ms;  ClaimTimers with nothing due: %.3f ms\n\n",
		tbMs(sched), tbMs(stats), tbMs(idle))
}

// tbPct is the p-th percentile (nearest rank) of ds.
func tbPct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func tbMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
