package consumers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/state"
)

// BenchmarkPipelineShadow measures what a shadow policy costs (issue 15):
// the same drain of simulated events, already on the broker, without and
// with a candidate (a lower large-payment threshold and other weights),
// alternately twice in one run, each on a fresh state; it prints events/s
// of each and the ratio. Run with -benchtime 1x.
func BenchmarkPipelineShadow(b *testing.B) {
	const total = 50_000
	live, err := policy.Preset("wechat")
	if err != nil {
		b.Fatal(err)
	}
	cand := *live
	cand.Version = "wechat-candidate"
	cand.Risk.LargePaymentFen = 100_000
	cand.Quota.Weights.PayScore, cand.Quota.Weights.Stability = live.Quota.Weights.PayScore+0.1, live.Quota.Weights.Stability-0.1
	liveRules, err := scoring.NewRules(live)
	if err != nil {
		b.Fatal(err)
	}
	candRules, err := scoring.NewRules(&cand)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	for range b.N {
		rates := map[bool][]float64{}
		var records int64
		for _, withShadow := range []bool{false, true, false, true} {
			e := newEnvB(b)
			simNow := time.Now()
			fill(b, e, total, simNow)
			sc := state.Config{Now: func() time.Time { return simNow }, Credit: jobs.CreditCheck(func() *policy.Policy { return live })}
			pc := consumers.Config{Brokers: e.kafka.Addrs(), Now: func() time.Time { return simNow }}
			if withShadow {
				sc.ShadowCredit = jobs.CreditCheck(func() *policy.Policy { return &cand })
				pc.ShadowRules = func() consumers.Rules { return candRules }
			}
			store, err := state.New(e.rdb, sc)
			if err != nil {
				b.Fatal(err)
			}
			p, err := consumers.New(pc, store, func() consumers.Rules { return liveRules }, e.pub, nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			took := drain(b, p, total)
			rates[withShadow] = append(rates[withShadow], float64(total)/took.Seconds())
			if withShadow {
				records += p.Stats().Shadow.Total()
			}
		}
		mean := func(xs []float64) float64 { return (xs[0] + xs[1]) / 2 }
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nshadow policy cost, %d simulated events a drain, alternately without and with a shadow:\n", total)
		fmt.Fprintf(&sb, "  without: %.0f, %.0f events/s\n  with:    %.0f, %.0f events/s (%d shadow records a drain)\n",
			rates[false][0], rates[false][1], rates[true][0], rates[true][1], records/2)
		fmt.Fprintf(&sb, "  with/without = %.2f\n", mean(rates[true])/mean(rates[false]))
		b.ReportMetric(mean(rates[true])/mean(rates[false]), "with/without")
		fmt.Println(sb.String())
	}
}
