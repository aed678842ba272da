//go:build unix

package jobs_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
)

// BenchmarkRecomputeUserCPU is the part of a recompute that runs in Go on
// a user already read, with no server: facts, the credit model, the quota
// decision with its pools, and its encoding, over 1,000 of
// BenchmarkRecompute1M's generated users (one op is one user). It is that
// benchmark's "cpu only" step, small enough to profile:
//
//	go test -run '^$' -bench RecomputeUserCPU -cpuprofile cpu.out ./jobs/
func BenchmarkRecomputeUserCPU(b *testing.B) {
	e := newRCGenerator(b)
	pol, rules := e.pol, e.rules
	users := make([]*rcUser, 1000)
	for i := range users {
		users[i] = e.rcSynth(rcUserID(i), uint64(i))
	}
	next := e.now.Add(90 * 24 * time.Hour)
	var bytes int
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := users[i%len(users)]
		i++
		res := credit.Evaluate(pol, jobs.FactsOf(u.st, e.zones[u.profile.Timezone], pol, e.now))
		cause := "recompute:" + u.id + ":" + strconv.FormatInt(u.st.Recomputes+1, 10) + ":" + strconv.FormatInt(e.now.Unix(), 10)
		d := scoring.WithPools(rules.Quota(u.id, cause, u.st.QuotaFen, res, next), jobs.PoolViewsOf(u.st, res.QuotaFen, e.now))
		n := len(buf)
		var err error
		if buf, err = events.AppendDecision(buf, d); err != nil { // as producers.Publisher.DecisionMessages
			b.Fatal(err)
		}
		bytes += len(buf) - n
		if len(buf) > 60<<10 {
			buf = make([]byte, 0, 64<<10)
		}
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "B/decision")
}
