package simulator

import (
	"math"
	"math/rand/v2"

	"github.com/fenqi/fenqi/events"
)

// city is a home city with the first two octets of its users' IPs.
type city struct {
	name   string
	ip     [2]int
	weight float64
}

var cities = []city{
	{"shanghai", [2]int{101, 80}, 14},
	{"beijing", [2]int{123, 112}, 13},
	{"shenzhen", [2]int{113, 116}, 11},
	{"guangzhou", [2]int{113, 108}, 11},
	{"hangzhou", [2]int{115, 192}, 9},
	{"chengdu", [2]int{171, 208}, 9},
	{"chongqing", [2]int{113, 250}, 6},
	{"wuhan", [2]int{59, 172}, 7},
	{"nanjing", [2]int{180, 110}, 6},
	{"xian", [2]int{113, 140}, 5},
	{"tianjin", [2]int{117, 8}, 5},
	{"suzhou", [2]int{58, 208}, 4},
}

var cityWeights = func() []float64 {
	w := make([]float64, len(cities))
	for i, c := range cities {
		w[i] = c.weight
	}
	return w
}()

var scenes = []events.Scene{
	events.SceneEcommerce,
	events.SceneLocalLife,
	events.SceneOfflineRetail,
	events.SceneTransfer,
	events.SceneRedPacket,
	events.SceneBillPay,
	events.SceneEducation,
	events.SceneMedical,
	events.SceneDonation,
	events.SceneWealth,
	events.SceneOther,
}

var sceneWeights = []float64{30, 25, 20, 8, 7, 3, 1.5, 1.5, 1, 1.5, 1.5}

var merchants = map[events.Scene][]string{
	events.SceneEcommerce:     {"m-jd", "m-pinduoduo", "m-vipshop", "m-dangdang", "m-xiaomi-store"},
	events.SceneLocalLife:     {"m-meituan", "m-eleme", "m-dianping", "m-huazhu-hotel", "m-didi"},
	events.SceneOfflineRetail: {"m-yonghui", "m-walmart", "m-carrefour", "m-familymart", "m-luckin", "m-heytea"},
	events.SceneTransfer:      {"wechat-transfer"},
	events.SceneRedPacket:     {"wechat-redpacket"},
	events.SceneBillPay:       {"m-state-grid", "m-china-mobile", "m-gas-utility"},
	events.SceneEducation:     {"m-new-oriental", "m-tal-education", "m-driving-school"},
	events.SceneMedical:       {"m-private-hospital", "m-dental-clinic", "m-eye-hospital"},
	events.SceneDonation:      {"m-tencent-charity"},
	events.SceneWealth:        {"m-licaitong"},
	events.SceneOther:         {"m-misc"},
}

func merchant(r *rand.Rand, s events.Scene) string {
	ms := merchants[s]
	return ms[r.IntN(len(ms))]
}

// pickWeighted returns an index drawn with the given weights.
func pickWeighted(r *rand.Rand, weights []float64) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	x := r.Float64() * total
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// logUniform draws from [lo, hi) with a uniform logarithm: small values
// are as common per decade as large ones.
func logUniform(r *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo)))
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// creditScenes are the scenes of credit purchases (installments ≥ 1), with
// their weights and amount ranges in yuan (log-uniform): every spend scene
// and bill payments. Offline retail reaches past its 5,000-yuan single
// payment limit now and then, education and medical are large.
var creditScenes = []struct {
	scene  events.Scene
	weight float64
	lo, hi float64 // yuan
}{
	{events.SceneEcommerce, 40, 200, 20_000},
	{events.SceneLocalLife, 22, 100, 6_000},
	{events.SceneOfflineRetail, 14, 200, 8_000},
	{events.SceneEducation, 6, 1_000, 30_000},
	{events.SceneMedical, 5, 500, 30_000},
	{events.SceneBillPay, 5, 200, 8_000},
	{events.SceneOther, 8, 200, 10_000},
}

var creditSceneWeights = func() []float64 {
	w := make([]float64, len(creditScenes))
	for i, c := range creditScenes {
		w[i] = c.weight
	}
	return w
}()

// poolOf is the quota pool a credit purchase of scene draws on, as the
// presets say (DOMAIN.md §5) and as a bill's due event names it:
// e-commerce the partner pool, local life the main quota linked with the
// Weilidai line, education and medical the special temporary quota,
// anything else the main quota, named ("pay_score") or left out ("", the
// same pool) at random.
func poolOf(r *rand.Rand, scene events.Scene) string {
	switch scene {
	case events.SceneEcommerce:
		return events.PoolIndependent
	case events.SceneLocalLife:
		return events.PoolSharedWeilidai
	case events.SceneEducation, events.SceneMedical:
		return events.PoolSpecialTemporary
	}
	if r.IntN(2) == 0 {
		return ""
	}
	return events.PoolPayScore
}

// spendScenes are the pay-now spending scenes of the back-dated history,
// with their weights (transfers and red packets are drawn apart, at each
// user's own social rate).
var spendScenes = []events.Scene{
	events.SceneEcommerce, events.SceneLocalLife, events.SceneOfflineRetail, events.SceneBillPay,
	events.SceneEducation, events.SceneMedical, events.SceneDonation, events.SceneWealth, events.SceneOther,
}

var spendSceneWeights = []float64{30, 27, 30, 3, 0.5, 0.5, 0.5, 1, 2}
