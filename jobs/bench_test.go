//go:build unix

package jobs_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
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
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/simulator"
	"github.com/fenqi/fenqi/state"
)

// BenchmarkRecompute1M measures recomputing the quota of N users with
// realistic state (N from FENQI_BENCH_USERS: `make bench-recompute` runs
// 1,000,000; plain `go test -bench` runs 20,000), next to only reading
// those users' state from Redis, in the same run on the same redis-server.
//
// Setup (not measured): a redis-server of its own; the real layout checked
// first (see rcVerifyLayout: real events applied with state.Store.Apply to
// a generated user must read back and rewrite exactly as generated); then
// N users written straight in that layout with big pipelines (35 daily and
// 7 monthly buckets, meta, 2 devices and 2 cities, profile, a 32-entry
// dedup ring, 15 payment times, an open bill for 30%), every user in the
// cycle's phase index (state.PhaseKey) and due now (Store.RecomputeAll).
//
// Passes (each sub-benchmark op is one pass over all N users):
//   - read_*: store.Users in chunks of 500, what a recompute reads, in
//     the order a recompute visits the users (by phase); once more at the
//     end in the order they were written (read_1goroutine_in_write_order),
//     where neighbours' keys lie together in Redis's memory: faster than
//     any order a production Redis gives, so only a reference;
//   - recompute_*: the real loop, jobs.Runner.RunOnce until nothing is due
//     (ScheduleStats, ClaimRecomputes, Users, Facts, credit.Evaluate,
//     NextDue, rules.Quota, Publish, SaveQuotas) with a Publisher that only
//     encodes each decision with events.MarshalDecision: publishing to
//     Kafka is NOT included; 2 instances = two Runners at once;
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
	n       int
	now     time.Time
	srv     interface{ Addr() string }
	rdb     *redis.Client // the store's client, fenqid's defaults
	bulk    *redis.Client // population and bookkeeping, long timeouts
	store   *state.Store
	pol     *policy.Policy
	rules   *scoring.Rules
	ids     []string // in the order they were written
	byPhase []string // in the order a recompute visits them (state.Phase)
	zones   map[string]*time.Location
	lease   time.Duration
	popWall time.Duration
	memBase int64 // used_memory of the empty server
	memPop  int64 // after population
	idxMem  map[string]int64
	sample  int64         // MEMORY USAGE of one generated user's keys
	cpuOnly time.Duration // set by stepsPass: its Facts..Marshal time
	round   int           // of read and recompute passes (0: not a round)
	rows    []rcRow
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

func rcEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(strings.ReplaceAll(v, "_", ""), ",", ""))
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func newRCBench(b *testing.B, n int) *rcBench {
	b.Helper()
	// now: 2026-11-20 12:00 in Shanghai (as the state tests), so that the
	// generated data and the figures are the same from run to run.
	zones := map[string]*time.Location{}
	for _, z := range []string{"Asia/Shanghai", "Asia/Hong_Kong", "Europe/London"} {
		loc, err := time.LoadLocation(z)
		if err != nil {
			b.Fatal(err)
		}
		zones[z] = loc
	}
	zones[""] = zones["Asia/Shanghai"] // the store's default zone
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, zones["Asia/Shanghai"])

	srv := testenv.RedisServer(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()}) // as cmd/fenqid
	bulk := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute})
	b.Cleanup(func() { _ = rdb.Close(); _ = bulk.Close() })
	store, err := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	pol, err := policy.Preset("wechat")
	if err != nil {
		b.Fatal(err)
	}
	rules, err := scoring.NewRules(pol)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = rcUserID(i)
	}
	byPhase := slices.Clone(ids)
	slices.SortFunc(byPhase, func(a, b string) int { // the phase index's order
		return cmp.Or(cmp.Compare(state.Phase(a), state.Phase(b)), strings.Compare(a, b))
	})
	return &rcBench{n: n, now: now, srv: srv, rdb: rdb, bulk: bulk, store: store, pol: pol, rules: rules,
		ids: ids, byPhase: byPhase, zones: zones, lease: time.Minute}
}

// rcUserID: zero-padded, so the ids' byte order is their index order.
func rcUserID(i int) string { return fmt.Sprintf("u%08d", i) }

// ---- the generated state ------------------------------------------------

type rcBucket struct {
	n int      // day number or yyyymm
	c [8]int64 // spendN spendFen socialN socialFen finN finFen logins loginDays
}

type rcPlace struct {
	name    string
	lastDay int
	logins  int64
}

type rcOffset struct {
	p int
	o int64
}

type rcBill struct {
	id    string
	rem   int64
	due   int64
	stage int
}

// rcUser is one user's generated state, written by write exactly as
// state/apply.lua lays it out.
type rcUser struct {
	id       string
	tz       string // the profile's zone name as stored ("" = default)
	tzo      int
	today    int
	pd       int
	days     []rcBucket // 35, oldest first
	months   []rcBucket // 7: six full months and the current one
	devices  [2]rcPlace
	cities   [2]rcPlace
	profile  events.Profile
	profJSON []byte
	ringIDs  []string // the event ids behind the dedup ring, oldest first
	ring     string
	velTimes []int64 // newest first
	vel      string
	offs     [4]*rcOffset // topics 1 payments, 2 logins, 3 bills, 4 profiles
	lo       int64
	quota    int64
	hasQuota bool
	oe       int
	oh       []state.Episode
	fz       string // "" (never written), "0" or "1"
	bill     *rcBill
}

var rcCities = []string{"shanghai", "beijing", "shenzhen", "guangzhou", "hangzhou", "chengdu", "wuhan", "nanjing", "xian", "suzhou", "tianjin", "chongqing"}

// rcSynth generates a user from a seed: an active user (a bucket every
// day: 1–4 logins, 0–2·k spend payments with k 1..5 a day, a social
// payment one day in three, a finance one in ten), profiles distributed
// as the simulator draws them.
func (e *rcBench) rcSynth(id string, seed uint64) *rcUser {
	r := rand.New(rand.NewPCG(0xfe9c1, seed))
	s := &rcUser{id: id}

	// Profile, as the simulator draws a first profile.
	score := min(820, max(450, int(math.Round(680+r.NormFloat64()*60))))
	p := simulator.DrawProfile(r, id, e.now, e.zones[""])
	p.PayScore = score
	s.profile = p
	raw, err := json.Marshal(&p) // as Store.toScript encodes it
	if err != nil {
		panic(err)
	}
	s.profJSON = raw
	s.tz = p.Timezone
	_, s.tzo = e.now.In(e.zones[s.tz]).Zone()
	s.today = int((e.now.Unix() + int64(s.tzo)) / 86400)
	s.pd = s.today

	// Buckets: every day of the 7 months, the last 35 kept day by day.
	civil := time.Unix(int64(s.today)*86400, 0).UTC()
	var first [8]int
	for i := range 7 {
		mt := time.Date(civil.Year(), civil.Month()-time.Month(6-i), 1, 0, 0, 0, 0, time.UTC)
		first[i] = int(mt.Unix() / 86400)
		s.months = append(s.months, rcBucket{n: mt.Year()*100 + int(mt.Month())})
	}
	first[7] = s.today + 1
	lvl := uint64(1 + r.IntN(5))
	avg := int64(1_000 + r.IntN(30_000))
	var totalLogins, totalEvents int64
	for mi := range 7 {
		m := &s.months[mi]
		for d := first[mi]; d < first[mi+1]; d++ {
			x := r.Uint64()
			var c [8]int64
			c[0] = int64(x % (2*lvl + 1))
			x >>= 8
			c[1] = c[0]*avg + c[0]*int64(x%1000)
			x >>= 10
			if x%3 == 0 {
				c[2], c[3] = 1, 100+int64(x>>2)%20_000
			}
			x >>= 20
			if x%10 == 0 {
				c[4], c[5] = 1, 5_000+int64(x>>4)%100_000
			}
			x >>= 20
			c[6] = 1 + int64(x%4)
			for k := range 7 {
				m.c[k] += c[k]
			}
			m.c[7]++ // a day with a login
			totalLogins += c[6]
			totalEvents += c[0] + c[2] + c[4] + c[6]
			if d > s.today-35 {
				s.days = append(s.days, rcBucket{n: d, c: c})
			}
		}
	}

	// Places: the usual phone and another device; the home city and one
	// other within 90 days.
	n1 := totalLogins * 85 / 100
	s.devices[0] = rcPlace{name: fmt.Sprintf("dev-%016x", r.Uint64()), lastDay: s.today, logins: n1}
	s.devices[1] = rcPlace{name: fmt.Sprintf("dev-%016x", r.Uint64()), lastDay: s.today - r.IntN(60), logins: totalLogins - n1}
	c1 := r.IntN(len(rcCities))
	c2 := (c1 + 1 + r.IntN(len(rcCities)-1)) % len(rcCities)
	s.cities[0] = rcPlace{name: rcCities[c1], lastDay: s.today}
	s.cities[1] = rcPlace{name: rcCities[c2], lastDay: s.today - 1 - r.IntN(80)}
	s.lo = int64(s.cities[1].lastDay)*86400 - int64(s.tzo) + 10*3600 // a login there at 10:00

	// The dedup ring: the last 32 events, oldest first.
	for j := range 32 {
		eid := fmt.Sprintf("%s-e%d", id, totalEvents-31+int64(j))
		s.ringIDs = append(s.ringIDs, eid)
		facts := "00" // a login: no new place, no payment times seen
		if j%5 < 3 {
			facts = "0f" // a payment that saw 15 earlier payment times
		}
		s.ring += rcFingerprint(eid) + facts
	}
	// The payment-times ring, newest first.
	t := e.now.Unix() - r.Int64N(3600)
	for range 15 {
		s.velTimes = append(s.velTimes, t)
		s.vel += rcB36(t)
		t -= 300 + r.Int64N(2*86400/int64(lvl))
	}

	s.offs[0] = &rcOffset{r.IntN(12), 1_000_000 + r.Int64N(2_000_000_000)}
	s.offs[1] = &rcOffset{r.IntN(12), 1_000_000 + r.Int64N(2_000_000_000)}
	s.offs[3] = &rcOffset{r.IntN(12), 1_000 + r.Int64N(50_000_000)}
	if r.Float64() < 0.9 {
		s.quota, s.hasQuota = 10_000*(10+r.Int64N(491)), true
	}
	if r.Float64() < 0.05 { // settled overdue bills in the past
		s.oe = 1 + r.IntN(3)
		s.oh = []state.Episode{{DueDay: s.today - 10 - r.IntN(150), DaysOverdue: 1 + r.IntN(10)}}
		s.fz = "0"
	}
	switch x := r.Float64(); {
	case x < 0.30: // an open bill falling due within 30 days: a timer at due+1d
		s.bill = &rcBill{id: fmt.Sprintf("bill-%d-%04x", s.months[6].n, r.IntN(1<<16)),
			rem: 10_000 + r.Int64N(490_000), due: e.now.Unix() + 3600 + r.Int64N(30*86400)}
	case x < 0.303: // overdue beyond the freeze: stage 4, frozen, no timer left
		s.bill = &rcBill{id: fmt.Sprintf("bill-%d-%04x", s.months[5].n, r.IntN(1<<16)),
			rem: 10_000 + r.Int64N(490_000), due: e.now.Unix() - int64(5+r.IntN(15))*86400, stage: 4}
		s.fz = "1"
	}
	if s.bill != nil || s.oe > 0 {
		s.offs[2] = &rcOffset{r.IntN(12), 1_000 + r.Int64N(50_000_000)}
	}
	return s
}

// rcFingerprint is state's fingerprint of an event id (FNV-1a 64, 11
// base64url characters). verifyLayout checks it against the script.
func rcFingerprint(id string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// rcB36 is the script's 6-digit base-36 time.
func rcB36(t int64) string {
	s := strconv.FormatInt(t, 36)
	return strings.Repeat("0", 6-len(s)) + s
}

// rcTimerMember is state's timerMember (unexported); verifyLayout checks
// it against the member Apply schedules.
func rcTimerMember(userID, billID string) string {
	return strconv.Itoa(len(userID)) + ":" + userID + billID
}

func rcPack(c [8]int64, n int) string {
	buf := make([]byte, 0, 64)
	for i := range n {
		if i > 0 {
			buf = append(buf, ':')
		}
		buf = strconv.AppendInt(buf, c[i], 10)
	}
	return string(buf)
}

func (b *rcBill) value() string { return fmt.Sprintf("%d:%d:%d", b.rem, b.due, b.stage) }

func rc01(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// monthValue is a monthly bucket as the script packs it: eight counters
// and the login-day mask (bit d-1 for day d): the days of the month whose
// daily bucket has logins, then the lowest other days up to LoginDays.
func (s *rcUser) monthValue(m rcBucket) string {
	var mask int64
	set := 0
	for _, d := range s.days {
		t := time.Unix(int64(d.n)*86400, 0).UTC()
		if t.Year()*100+int(t.Month()) == m.n && d.c[6] > 0 {
			mask |= 1 << (t.Day() - 1)
			set++
		}
	}
	for bit := 0; bit < 31 && int64(set) < m.c[7]; bit++ {
		if mask&(1<<bit) == 0 {
			mask |= 1 << bit
			set++
		}
	}
	return rcPack(m.c, 8) + ":" + strconv.FormatInt(mask, 10)
}

// write queues the user's keys on a pipeline: 4 or 5 commands.
func (s *rcUser) write(ctx context.Context, p redis.Pipeliner) {
	tag := "{u:" + s.id + "}:"
	a := make([]any, 0, 2*(len(s.days)+len(s.months)+4))
	for _, d := range s.days {
		a = append(a, "d"+strconv.Itoa(d.n), rcPack(d.c, 7))
	}
	for _, m := range s.months {
		a = append(a, "m"+strconv.Itoa(m.n), s.monthValue(m))
	}
	a = append(a,
		"d:"+s.devices[0].name, strconv.Itoa(s.devices[0].lastDay)+":"+strconv.FormatInt(s.devices[0].logins, 10),
		"d:"+s.devices[1].name, strconv.Itoa(s.devices[1].lastDay)+":"+strconv.FormatInt(s.devices[1].logins, 10),
		"c:"+s.cities[0].name, s.cities[0].lastDay,
		"c:"+s.cities[1].name, s.cities[1].lastDay)
	p.HSet(ctx, tag+"a", a...)
	meta := []any{"tz", s.tz, "tzo", s.tzo, "pd", s.pd, "lim", s.profile.TransactionLimitFen,
		"fj", rc01(s.profile.JudicialDefaulter), "lo", s.lo}
	for t, o := range s.offs {
		if o != nil {
			meta = append(meta, "o"+strconv.Itoa(t+1), strconv.Itoa(o.p)+":"+strconv.FormatInt(o.o, 10))
		}
	}
	if s.hasQuota {
		meta = append(meta, "q", strconv.FormatInt(s.quota, 10)+":1:0") // a user recomputed once, by a trigger
	}
	if s.oe > 0 {
		var oh []string
		for _, ep := range s.oh {
			oh = append(oh, strconv.Itoa(ep.DueDay)+":"+strconv.Itoa(ep.DaysOverdue))
		}
		meta = append(meta, "oe", s.oe, "oh", strings.Join(oh, ","))
	}
	if s.fz != "" {
		meta = append(meta, "fz", s.fz)
	}
	p.HSet(ctx, tag+"m", meta...)
	p.Set(ctx, tag+"x", s.vel+"|"+s.ring, 0)
	p.Set(ctx, tag+"p", s.profJSON, 0)
	if s.bill != nil {
		p.HSet(ctx, tag+"b", s.bill.id, s.bill.value())
	}
}

// expect is the state.User a read of the generated keys must give.
func (s *rcUser) expect(zones map[string]*time.Location) *state.User {
	prof := s.profile
	u := &state.User{ID: s.id, Zone: zones[s.tz], Days: map[int]state.Counts{}, Months: map[int]state.Counts{},
		Devices: map[string]state.Place{}, Cities: map[string]state.Place{}, Bills: map[string]state.Bill{},
		Profile: &prof, FrozenOverdue: s.fz == "1", FrozenJudicial: prof.JudicialDefaulter,
		SettledEpisodes: s.oe, QuotaFen: s.quota, HasQuota: s.hasQuota}
	if s.hasQuota {
		u.Recomputes = 1
	}
	counts := func(c [8]int64) state.Counts {
		return state.Counts{SpendN: c[0], SpendFen: c[1], SocialN: c[2], SocialFen: c[3], FinanceN: c[4], FinFen: c[5], Logins: c[6], LoginDays: c[7]}
	}
	for _, d := range s.days {
		u.Days[d.n] = counts(d.c)
	}
	for _, m := range s.months {
		u.Months[m.n] = counts(m.c)
	}
	for _, d := range s.devices {
		u.Devices[d.name] = state.Place{LastDay: d.lastDay, Logins: d.logins}
	}
	for _, c := range s.cities {
		u.Cities[c.name] = state.Place{LastDay: c.lastDay}
	}
	if s.bill != nil {
		u.Bills[s.bill.id] = state.Bill{RemainingFen: s.bill.rem, DueAt: time.Unix(s.bill.due, 0).UTC(), Stage: s.bill.stage}
	}
	if len(s.oh) > 0 {
		u.RecentEpisodes = append([]state.Episode(nil), s.oh...)
	}
	return u
}

// rcSameUser says how got differs from want ("" if it does not).
func rcSameUser(got, want *state.User) string {
	var diffs []string
	if got.Zone.String() != want.Zone.String() {
		diffs = append(diffs, fmt.Sprintf("zone %s, want %s", got.Zone, want.Zone))
	}
	g, w := *got, *want
	g.Zone, w.Zone = nil, nil
	gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface()))
		}
	}
	return strings.Join(diffs, "\n")
}

// ---- the layout check ----------------------------------------------------

// rcFind generates users from seed 1_000_000 on until one has what ok asks.
func (e *rcBench) rcFind(id string, ok func(*rcUser) bool) *rcUser {
	for seed := uint64(1_000_000); ; seed++ {
		if s := e.rcSynth(id, seed); ok(s) {
			return s
		}
	}
}

// verifyLayout proves the generated layout is the script's: a generated
// user reads back as generated; then real events applied to it with
// state.Store.Apply see its dedup ring, offsets, payment times and places
// (duplicate, redelivery, no new city or device), rewrite its buckets, geo
// values, profile and meta fields byte for byte as the generator writes
// them, and schedule a bill's timer under the member the generator uses;
// and a user whose daily prune is due loses none of the 35 days, 7 months
// and 4 places. Any difference stops the benchmark.
func (e *rcBench) verifyLayout(b *testing.B, ctx context.Context) {
	b.Helper()
	fail := func(format string, args ...any) {
		b.Helper()
		b.Fatalf("generated layout differs from state/apply.lua's: "+format, args...)
	}
	s := e.rcFind("verify-1", func(s *rcUser) bool {
		return s.tz == "" && s.hasQuota && s.oe > 0 && s.bill != nil && s.bill.stage == 0 && s.fz == "0" &&
			s.profile.TransactionLimitFen > 0 && !s.profile.JudicialDefaulter
	})
	pipe := e.bulk.Pipeline()
	s.write(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	u, err := e.store.User(ctx, s.id)
	if err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u, s.expect(e.zones)); d != "" {
		fail("read of the generated user:\n%s", d)
	}

	// Real events through Apply.
	now := e.now
	pay := func(id string, fen int64, dev string) *events.Event {
		return &events.Event{ID: id, Type: events.TypePayment, Subject: s.id, Time: now,
			Payment: &events.Payment{UserID: s.id, AmountFen: fen, Currency: "CNY", Scene: events.SceneEcommerce,
				MerchantID: "m1", DeviceID: dev, City: s.cities[0].name, Auth: events.AuthFace}}
	}
	login := func(id, dev, city string) *events.Event {
		return &events.Event{ID: id, Type: events.TypeLogin, Subject: s.id, Time: now,
			Login: &events.Login{UserID: s.id, DeviceID: dev, City: city, IP: "10.0.0.1", Auth: events.AuthPassword}}
	}
	dueAt := time.Unix(now.Unix()+10*86400, 0)
	prof := s.profile
	o := s.offs
	items := []state.Item{
		{Event: pay("vfy-pay-1", 12_345, s.devices[0].name), Topic: 1, Partition: o[0].p, Offset: o[0].o + 1},
		{Event: login("vfy-login-1", s.devices[0].name, s.cities[0].name), Topic: 2, Partition: o[1].p, Offset: o[1].o + 1},
		{Event: login("vfy-login-2", s.devices[1].name, s.cities[1].name), Topic: 2, Partition: o[1].p, Offset: o[1].o + 2},
		{Event: pay(s.ringIDs[7], 999, s.devices[0].name), Topic: 1, Partition: o[0].p, Offset: o[0].o + 2}, // an id in the ring
		{Event: pay("vfy-pay-old", 777, s.devices[0].name), Topic: 1, Partition: o[0].p, Offset: o[0].o},    // an offset applied before
		{Event: &events.Event{ID: "vfy-due-1", Type: events.TypeRepaymentDue, Subject: s.id, Time: now,
			Due: &events.RepaymentDue{UserID: s.id, BillID: "bill-vfy", AmountFen: 50_000, DueAt: dueAt}}, Topic: 3, Partition: o[2].p, Offset: o[2].o + 1},
		{Event: &events.Event{ID: "vfy-prof-1", Type: events.TypeProfile, Subject: s.id, Time: now, Profile: &prof},
			Topic: 4, Partition: o[3].p, Offset: o[3].o + 1},
	}
	out, err := e.store.Apply(ctx, items)
	if err != nil {
		fail("apply: %v", err)
	}
	wantStatus := []state.Status{state.Applied, state.Applied, state.Applied, state.Duplicate, state.Redelivered, state.Applied, state.Applied}
	for i, oc := range out {
		if oc.Status != wantStatus[i] || oc.NewCity || oc.NewDevice || oc.Unfroze || oc.BecameJudicialDefaulter || oc.ClearedJudicialDefaulter {
			fail("event %d (%s): outcome %+v, want status %v and no new place, no flag", i, items[i].Event.ID, oc, wantStatus[i])
		}
	}
	var recent []int64
	for _, t := range out[0].RecentPayments {
		recent = append(recent, t.Unix())
	}
	if !reflect.DeepEqual(recent, s.velTimes) {
		fail("payment times seen by the script %v, generated %v", recent, s.velTimes)
	}
	if out[0].LastOtherCityLogin.Unix() != s.lo || out[0].TransactionLimitFen != s.profile.TransactionLimitFen || out[0].Zone.String() != "Asia/Shanghai" {
		fail("outcome lo %v lim %d zone %v, want lo %d lim %d", out[0].LastOtherCityLogin.Unix(), out[0].TransactionLimitFen, out[0].Zone, s.lo, s.profile.TransactionLimitFen)
	}

	// The state afterwards, read and raw.
	want := s.expect(e.zones)
	dc, mc := s.days[len(s.days)-1].c, s.months[6].c
	if s.days[len(s.days)-1].n != s.today {
		fail("the last generated day is %d, today %d", s.days[len(s.days)-1].n, s.today)
	}
	for _, c := range []*[8]int64{&dc, &mc} {
		c[0]++
		c[1] += 12_345
		c[6] += 2
	}
	want.Days[s.today] = state.Counts{SpendN: dc[0], SpendFen: dc[1], SocialN: dc[2], SocialFen: dc[3], FinanceN: dc[4], FinFen: dc[5], Logins: dc[6]}
	want.Months[s.months[6].n] = state.Counts{SpendN: mc[0], SpendFen: mc[1], SocialN: mc[2], SocialFen: mc[3], FinanceN: mc[4], FinFen: mc[5], Logins: mc[6], LoginDays: mc[7]}
	want.Devices[s.devices[0].name] = state.Place{LastDay: s.today, Logins: s.devices[0].logins + 1}
	want.Devices[s.devices[1].name] = state.Place{LastDay: s.today, Logins: s.devices[1].logins + 1}
	want.Cities[s.cities[1].name] = state.Place{LastDay: s.today}
	want.Bills["bill-vfy"] = state.Bill{RemainingFen: 50_000, DueAt: dueAt.UTC()}
	if u, err = e.store.User(ctx, s.id); err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u, want); d != "" {
		fail("read after the events:\n%s", d)
	}
	tag := "{u:" + s.id + "}:"
	rawEq := func(what, got, want string) {
		b.Helper()
		if got != want {
			fail("%s: script wrote %q, generator writes %q", what, got, want)
		}
	}
	rawEq("today's bucket", e.bulk.HGet(ctx, tag+"a", "d"+strconv.Itoa(s.today)).Val(), rcPack(dc, 7))
	m6 := s.months[6]
	m6.c = mc
	rawEq("this month's bucket", e.bulk.HGet(ctx, tag+"a", "m"+strconv.Itoa(s.months[6].n)).Val(), s.monthValue(m6))
	rawEq("device", e.bulk.HGet(ctx, tag+"a", "d:"+s.devices[1].name).Val(), fmt.Sprintf("%d:%d", s.today, s.devices[1].logins+1))
	rawEq("city", e.bulk.HGet(ctx, tag+"a", "c:"+s.cities[1].name).Val(), strconv.Itoa(s.today))
	rawEq("profile", e.bulk.Get(ctx, tag+"p").Val(), string(s.profJSON))
	rawEq("bill", e.bulk.HGet(ctx, tag+"b", "bill-vfy").Val(), (&rcBill{rem: 50_000, due: dueAt.Unix()}).value())
	meta := e.bulk.HGetAll(ctx, tag+"m").Val()
	rawEq("meta tz", meta["tz"], s.tz)
	rawEq("meta tzo", meta["tzo"], strconv.Itoa(s.tzo))
	rawEq("meta lim", meta["lim"], strconv.FormatInt(s.profile.TransactionLimitFen, 10))
	rawEq("meta fj", meta["fj"], "0")
	rawEq("meta o1", meta["o1"], fmt.Sprintf("%d:%d", o[0].p, o[0].o+2))
	rawEq("meta o2", meta["o2"], fmt.Sprintf("%d:%d", o[1].p, o[1].o+2))
	rawEq("meta o3", meta["o3"], fmt.Sprintf("%d:%d", o[2].p, o[2].o+1))
	rawEq("meta o4", meta["o4"], fmt.Sprintf("%d:%d", o[3].p, o[3].o+1))
	velGot, ringGot, _ := strings.Cut(e.bulk.Get(ctx, tag+"x").Val(), "|")
	rawEq("dedup ring", ringGot, s.ring[5*13:]+
		rcFingerprint("vfy-pay-1")+"0f"+rcFingerprint("vfy-login-1")+"00"+rcFingerprint("vfy-login-2")+"00"+
		rcFingerprint("vfy-due-1")+"00"+rcFingerprint("vfy-prof-1")+"00")
	rawEq("payment times", velGot, rcB36(now.Unix())+s.vel[:14*6])
	if sc, err := e.bulk.ZScore(ctx, state.TimersKey, rcTimerMember(s.id, "bill-vfy")).Result(); err != nil || int64(sc) != dueAt.Unix()+86400 {
		fail("timer of the new bill under %q: %v %v", rcTimerMember(s.id, "bill-vfy"), sc, err)
	}
	for _, k := range []string{"a", "m", "b"} {
		if enc := e.bulk.ObjectEncoding(ctx, tag+k).Val(); enc != "listpack" {
			fail("%s is %s, not listpack", tag+k, enc)
		}
	}
	mem, err := e.store.MemoryUsage(ctx, s.id)
	if err != nil {
		b.Fatal(err)
	}
	e.sample = mem

	// The daily prune over the generated window (a London user: another offset).
	s2 := e.rcFind("verify-2", func(s *rcUser) bool { return s.tz == "Europe/London" })
	s2.pd = s2.today - 1
	pipe = e.bulk.Pipeline()
	s2.write(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := e.store.Apply(ctx, []state.Item{{Event: &events.Event{ID: "vfy2-login", Type: events.TypeLogin, Subject: s2.id, Time: now,
		Login: &events.Login{UserID: s2.id, DeviceID: s2.devices[0].name, City: s2.cities[0].name, IP: "10.0.0.2", Auth: events.AuthFace}},
		Topic: 2, Partition: s2.offs[1].p, Offset: s2.offs[1].o + 1}}); err != nil {
		fail("apply: %v", err)
	}
	want2 := s2.expect(e.zones)
	d2, m2 := s2.days[len(s2.days)-1].c, s2.months[6].c
	d2[6]++
	m2[6]++
	want2.Days[s2.today] = state.Counts{SpendN: d2[0], SpendFen: d2[1], SocialN: d2[2], SocialFen: d2[3], FinanceN: d2[4], FinFen: d2[5], Logins: d2[6]}
	want2.Months[s2.months[6].n] = state.Counts{SpendN: m2[0], SpendFen: m2[1], SocialN: m2[2], SocialFen: m2[3], FinanceN: m2[4], FinFen: m2[5], Logins: m2[6], LoginDays: m2[7]}
	want2.Devices[s2.devices[0].name] = state.Place{LastDay: s2.today, Logins: s2.devices[0].logins + 1}
	u2, err := e.store.User(ctx, s2.id)
	if err != nil {
		fail("read: %v", err)
	}
	if d := rcSameUser(u2, want2); d != "" {
		fail("after the daily prune (35 days, 7 months, 4 places must stay):\n%s", d)
	}
	rawEq("meta pd", e.bulk.HGet(ctx, "{u:"+s2.id+"}:m", "pd").Val(), strconv.Itoa(s2.today))

	fmt.Printf("layout verified against state/apply.lua (8 real events applied with Store.Apply to 2 generated users); one generated user's keys: %d B (MEMORY USAGE)\n", e.sample)
	if err := e.bulk.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
}

// ---- population -----------------------------------------------------------

func (e *rcBench) populate(b *testing.B, ctx context.Context) {
	b.Helper()
	e.memBase = e.usedMemory(b, ctx)
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
				for i := lo; i < hi; i++ {
					s := e.rcSynth(e.ids[i], uint64(i))
					s.write(ctx, pipe)
					zs = append(zs, redis.Z{Score: state.Phase(s.id), Member: s.id})
					if s.bill != nil && s.bill.stage == 0 {
						timers = append(timers, redis.Z{Score: float64(s.bill.due + 86400), Member: rcTimerMember(s.id, s.bill.id)})
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
		b.Fatal(err)
	}
	e.popWall = time.Since(start)
	e.memPop = e.usedMemory(b, ctx)
	e.idxMem = map[string]int64{}
	for _, k := range []string{state.PhaseKey, state.TimersKey} {
		e.idxMem[k] = e.bulk.MemoryUsage(ctx, k, 0).Val()
	}
	if n := e.bulk.ZCard(ctx, state.PhaseKey).Val(); n != int64(e.n) {
		b.Fatalf("%d users in the recompute schedule, want %d", n, e.n)
	}
	fmt.Printf("populated %d users in %.1fs (%.0f users/s); Redis used_memory %.1f MB (+%.0f B/user incl. indexes; %s %.1f MB, %s %.1f MB)\n",
		e.n, e.popWall.Seconds(), float64(e.n)/e.popWall.Seconds(), float64(e.memPop)/(1<<20),
		float64(e.memPop-e.memBase)/float64(e.n), state.PhaseKey, float64(e.idxMem[state.PhaseKey])/(1<<20),
		state.TimersKey, float64(e.idxMem[state.TimersKey])/(1<<20))
}

// armSchedule makes every user due now again (after a recompute pass).
func (e *rcBench) armSchedule(b *testing.B, ctx context.Context) {
	b.Helper()
	if err := e.store.RecomputeAll(ctx, e.now, jobs.CycleOf(e.pol)); err != nil {
		b.Fatal(err)
	}
}

// ---- the passes ---------------------------------------------------------------

// readPass reads every user with store.Users, 500 at a time, in the
// order of ids. The read a recompute is compared with goes in the order a
// recompute visits the users (their phase): in the order they were
// written, neighbours' keys lie next to each other in Redis's memory and
// the read is faster than any production order allows.
func (e *rcBench) readPass(ctx context.Context, workers int, ids []string) (string, error) {
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
				us, err := e.store.Users(ctx, ids[lo:min(lo+chunk, e.n)])
				if err != nil {
					errs <- err
					return
				}
				var d int
				for _, u := range us {
					d += len(u.Days)
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

// rcPublisher stands in for Kafka: it encodes each decision as the
// producer does (producers.Publisher.DecisionMessage: the record's value is
// events.MarshalDecision's) and drops it.
type rcPublisher struct{ n, bytes atomic.Int64 }

func (p *rcPublisher) Topics() (string, string) { return events.TopicDecisions, events.TopicDLQ }

func (p *rcPublisher) DecisionMessage(d events.Decision) (kafka.Message, error) {
	v, err := events.MarshalDecision(d)
	if err != nil {
		return kafka.Message{}, err
	}
	return kafka.Message{Topic: events.TopicDecisions, Key: []byte(d.Subject), Value: v}, nil
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
	pub := &rcPublisher{}
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
		ids := make([]string, len(claims))
		for i, c := range claims {
			ids[i] = c.Member
		}
		users, err := e.store.Users(ctx, ids)
		if err != nil {
			return "", err
		}
		t2 := time.Now()
		read += t2.Sub(t1)
		ds := make([]events.Decision, len(claims))
		quotas := make([]state.Quota, len(claims))
		for i, c := range claims {
			u := users[i]
			res := credit.Evaluate(e.pol, jobs.Facts(u, e.pol, e.now))
			cause := "recompute:" + u.ID + ":" + strconv.FormatInt(u.Recomputes+1, 10) + ":" + strconv.FormatInt(c.Due.Unix(), 10) // as recomputeChunk
			ds[i] = e.rules.Quota(u.ID, cause, u.QuotaFen, res, c.Next)
			quotas[i] = state.Quota{UserID: u.ID, QuotaFen: res.QuotaFen, Seq: u.Recomputes + 1, CycleDone: c.Due}
		}
		t3 := time.Now()
		cpu += t3.Sub(t2)
		for _, d := range ds {
			if _, err := events.MarshalDecision(d); err != nil {
				return "", err
			}
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

func (e *rcBench) info(b *testing.B, ctx context.Context, section string) map[string]string {
	b.Helper()
	raw, err := e.bulk.Info(ctx, section).Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (e *rcBench) usedMemory(b *testing.B, ctx context.Context) int64 {
	n, _ := strconv.ParseInt(e.info(b, ctx, "memory")["used_memory"], 10, 64)
	return n
}

func (e *rcBench) redisCPU(b *testing.B, ctx context.Context) float64 {
	in := e.info(b, ctx, "cpu")
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
	for _, name := range []string{"recompute_1instance", "recompute_2instances"} {
		var rs []float64
		var each []string
		for _, r := range e.rows {
			if r.name == name && r.round > 0 {
				rs = append(rs, ratio(r))
				each = append(each, fmt.Sprintf("%.2f", ratio(r)))
			}
		}
		fmt.Fprintf(w, "%s vs %s, round by round: %s; median %.2f (median walls %.2fs vs %.2fs)\n",
			name, base[name], strings.Join(each, " "), rcMedian(rs), median(name), median(base[name]))
	}
	fmt.Fprintf(w, "population: %.1fs; Redis used_memory %.1f MB for %d users (%.0f B/user incl. the two indexes); one verified user's keys %d B (MEMORY USAGE)\n\n",
		e.popWall.Seconds(), float64(e.memPop)/(1<<20), e.n, float64(e.memPop-e.memBase)/float64(e.n), e.sample)
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
func (e *rcBench) commandStats(b *testing.B, ctx context.Context) string {
	b.Helper()
	type stat struct {
		name        string
		calls, usec float64
	}
	var stats []stat
	for k, v := range e.info(b, ctx, "commandstats") {
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
