package shadow

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"time"
)

// The colours of the plots (the browser test looks for them).
const (
	histogramColour = "#2b6cb0" // the quota shift histogram's bars
	liveColour      = "#a0aec0" // live alerts
	shadowColour    = "#dd6b20" // the candidate's alerts
)

// WriteHTML writes the report as one self-contained HTML page: no
// scripts, and no external stylesheet, font or image. It has inline SVG
// plots of the quota shift histogram and of the alerts per rule under
// each policy, and the report's tables. Every text from the records (user
// ids, rule names, codes) is escaped by html/template.
func (r Report) WriteHTML(w io.Writer) error {
	p := htmlPage{
		R:         r,
		Title:     r.Title(),
		Histogram: histogramChart(r.Quota),
		Alerts:    alertsChart(r.Alerts),
		Freezes: []changeList{
			{"Freezes that would not happen (removed)", r.Freezes.Removed},
			{"Freezes that would happen (added)", r.Freezes.Added},
			{"Unfreezes that would not happen (removed)", r.Unfreezes.Removed},
			{"Unfreezes that would happen (added)", r.Unfreezes.Added},
		},
		MaxListed: maxListed,
	}
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("shadow: write report HTML: %w", err)
	}
	return nil
}

// htmlPage is what the page template reads.
type htmlPage struct {
	R         Report
	Title     string
	Histogram *barChart // nil: no quota moves
	Alerts    *barChart // nil: no alerts
	Freezes   []changeList
	MaxListed int
}

type changeList struct {
	Title string
	Rows  []DecisionRow
}

// barChart is an SVG bar chart laid out for the template: groups of bars
// (one bar per series) along x, counts up y. Coordinates are
// preformatted.
type barChart struct {
	Title          string
	Width, Height  int
	PlotLeft       string
	PlotRight      string
	Baseline       string
	PlotTop        string
	XTitle, YTitle string
	XTitleX        string
	XTitleY        string
	YTitleY        string
	Bars           []svgBar
	XLabels        []svgLabel
	YTicks         []svgTick
	Legend         []svgLegend
}

type svgBar struct {
	X, Y, W, H   string
	Fill, Series string
	Value        int
	Group        string
	LabelX       string
	LabelY       string
}

type svgLabel struct {
	X, Y, Text string
	Rotate     bool
}

type svgTick struct {
	Y, LabelY, Label string
}

type svgLegend struct {
	X, TextX, Y, TextY string
	Fill, Text         string
}

type chartSeries struct {
	Name, Colour string
}

func histogramChart(q QuotaMoves) *barChart {
	if q.Users == 0 {
		return nil
	}
	labels := make([]string, len(q.Histogram))
	values := make([][]int, len(q.Histogram))
	for i, b := range q.Histogram {
		labels[i] = b.Label
		values[i] = []int{b.Count}
	}
	c := newBarChart(labels, []chartSeries{{"users", histogramColour}}, values, 110, false)
	c.Title = "Quota shift per user (shadow − live)"
	c.XTitle, c.YTitle = "shift (yuan)", "users"
	return &c
}

func alertsChart(alerts []AlertCount) *barChart {
	if len(alerts) == 0 {
		return nil
	}
	labels := make([]string, len(alerts))
	values := make([][]int, len(alerts))
	for i, a := range alerts {
		labels[i] = a.Rule
		values[i] = []int{a.Live, a.Shadow}
	}
	c := newBarChart(labels, []chartSeries{{"live", liveColour}, {"shadow", shadowColour}}, values, 90, true)
	c.Title = "Alerts per rule, live and shadow"
	c.XTitle, c.YTitle = "rule", "alerts"
	return &c
}

// newBarChart lays out groups of bars: values[g][s] is series s in group
// g, labelled labels[g]; slot is a group's width in pixels; rotate tilts
// the group labels (long ones).
func newBarChart(labels []string, series []chartSeries, values [][]int, slot float64, rotate bool) barChart {
	const (
		right, top = 24.0, 44.0
		plotH      = 240.0
		charW      = 6.5 // about, of an 11px label
	)
	left, bottom := 64.0, 56.0
	if rotate {
		// Labels tilted by 35° hang down and to the left of their group.
		longest := 0
		for _, l := range labels {
			longest = max(longest, len([]rune(l)))
		}
		run := float64(longest) * charW
		bottom = math.Min(200, 40+run*math.Sin(35*math.Pi/180))
		left = math.Min(200, math.Max(left, run*math.Cos(35*math.Pi/180)-slot/2+12))
	}
	width := math.Max(480, left+right+slot*float64(len(labels)))
	slot = (width - left - right) / float64(len(labels))
	height := top + plotH + bottom
	base := top + plotH

	peak := 0
	for _, g := range values {
		for _, v := range g {
			peak = max(peak, v)
		}
	}
	step := niceStep(float64(peak) / 4)
	yMax := step * math.Ceil(float64(peak)/step)
	if yMax == 0 {
		yMax = step
	}
	y := func(v float64) float64 { return base - v/yMax*plotH }

	c := barChart{
		Width: int(math.Ceil(width)), Height: int(math.Ceil(height)),
		PlotLeft: f1(left), PlotRight: f1(width - right), Baseline: f1(base), PlotTop: f1(top),
		XTitleX: f1(left + (width-left-right)/2), XTitleY: f1(height - 8), YTitleY: f1(top + plotH/2),
	}
	for v := 0.0; v <= yMax+step/2; v += step {
		c.YTicks = append(c.YTicks, svgTick{Y: f1(y(v)), LabelY: f1(y(v) + 4), Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	barW := slot * 0.72 / float64(len(series))
	for g, label := range labels {
		x0 := left + slot*float64(g) + slot*0.14
		for s, ser := range series {
			v := values[g][s]
			x := x0 + barW*float64(s)
			c.Bars = append(c.Bars, svgBar{
				X: f1(x), Y: f1(y(float64(v))), W: f1(barW - 2), H: f1(base - y(float64(v))),
				Fill: ser.Colour, Series: ser.Name, Value: v, Group: label,
				LabelX: f1(x + (barW-2)/2), LabelY: f1(y(float64(v)) - 5),
			})
		}
		cx := left + slot*float64(g) + slot/2
		if rotate {
			c.XLabels = append(c.XLabels, svgLabel{X: f1(cx), Y: f1(base + 16), Text: label, Rotate: true})
		} else {
			c.XLabels = append(c.XLabels, svgLabel{X: f1(cx), Y: f1(base + 18), Text: label})
		}
	}
	if len(series) > 1 {
		for i, s := range series {
			x := left + 8 + float64(i)*110
			c.Legend = append(c.Legend, svgLegend{
				X: f1(x), Y: f1(top - 30), TextX: f1(x + 18), TextY: f1(top - 20), Fill: s.Colour, Text: s.Name,
			})
		}
	}
	return c
}

// niceStep is the smallest of 1, 2, 5 × 10^k (at least 1) not below x.
func niceStep(x float64) float64 {
	if x <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"yuan":   Yuan,
	"signed": SignedYuan,
	"time":   func(t time.Time) string { return timeText(t) },
	"codes":  codesText,
	"num":    num,
	"delta":  func(a, b float64) string { return fmt.Sprintf("%+.4f", b-a) },
	"sign": func(v int64) string {
		switch {
		case v > 0:
			return "up"
		case v < 0:
			return "down"
		}
		return "flat"
	},
	"inc":   func(i int) int { return i + 1 },
	"more":  func(rows []DecisionRow, n int) int { return len(rows) - n },
	"first": func(rows []DecisionRow, n int) []DecisionRow { return rows[:min(n, len(rows))] },
	"join":  versions,
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
  :root { --ink: #1a202c; --muted: #5a6472; --line: #e2e8f0; --panel: #f7fafc; --up: #276749; --down: #c53030; }
  * { box-sizing: border-box; }
  body { margin: 0; background: #edf2f7; color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
  main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
  h3 { font-size: 15px; margin: 20px 0 8px; }
  .sub { color: var(--muted); margin: 0 0 16px; }
  .cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
  .card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
  .card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
  .card .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .plot { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin: 10px 0; overflow-x: auto; }
  .plot svg { display: block; max-width: 100%; height: auto; }
  svg text { font-family: inherit; fill: var(--ink); }
  table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
  th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
  th { background: var(--panel); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
  td.n, th.n { text-align: right; }
  tbody tr:nth-child(even) td { background: #fbfcfd; }
  .up { color: var(--up); font-weight: 600; }
  .down { color: var(--down); font-weight: 600; }
  .flat { color: var(--muted); }
  .none { color: var(--muted); font-style: italic; }
  code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
  .moves { display: grid; grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); gap: 12px; }
  .move { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; background: var(--panel); }
  .move h4 { margin: 0 0 4px; font-size: 14px; }
  .move table { width: 100%; margin: 4px 0 0; background: #fff; }
  .move .codes { color: var(--muted); font-size: 12.5px; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p class="sub">{{.R.Records}} records{{if .R.Duplicates}} ({{.R.Duplicates}} duplicates left out){{end}}, from {{time .R.From}} to {{time .R.To}}</p>
<div class="cards">
  <div class="card"><div class="k">Live policy</div><div class="v">{{join .R.LivePolicyVersions}}</div></div>
  <div class="card"><div class="k">Shadow policy</div><div class="v">{{join .R.ShadowPolicyVersions}}</div></div>
  <div class="card"><div class="k">Same</div><div class="v">{{.R.Diffs.Same}}</div></div>
  <div class="card"><div class="k">Changed</div><div class="v">{{.R.Diffs.Changed}}</div></div>
  <div class="card"><div class="k">Added</div><div class="v">{{.R.Diffs.Added}}</div></div>
  <div class="card"><div class="k">Removed</div><div class="v">{{.R.Diffs.Removed}}</div></div>
</div>

<h2>Quota shift</h2>
{{with .Histogram}}<div class="plot">{{template "chart" .}}</div>{{else}}<p class="none">No quota pairs.</p>{{end}}

<h2>Alerts per rule</h2>
{{with .Alerts}}<div class="plot">{{template "chart" .}}</div>{{else}}<p class="none">No alerts under either policy.</p>{{end}}

<h2>Decisions by rule and action</h2>
<p class="sub">Each decision counts under its own rule and action: a decision whose action changes (say SMS_VERIFY to REFUSE) is removed from the live action and added to the shadow one.</p>
{{if .R.ByRuleAction}}
<table>
<thead><tr><th>Rule</th><th>Action</th><th class="n">Live</th><th class="n">Shadow</th><th class="n">Same</th><th class="n">Changed</th><th class="n">Added</th><th class="n">Removed</th></tr></thead>
<tbody>
{{range .R.ByRuleAction}}<tr><td>{{.Rule}}</td><td><code>{{.Action}}</code></td><td class="n">{{.Live}}</td><td class="n">{{.Shadow}}</td><td class="n">{{.Same}}</td><td class="n">{{.Changed}}</td><td class="n{{if .Added}} up{{end}}">{{.Added}}</td><td class="n{{if .Removed}} down{{end}}">{{.Removed}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none">No decisions.</p>{{end}}

{{with .R.Quota}}
<h2>Quota moves</h2>
<p class="sub">Per user, the latest quota pair (by time, then decision id); shift = shadow quota − live quota, in yuan.</p>
<div class="cards">
  <div class="card"><div class="k">Quota pairs</div><div class="v">{{.Pairs}}</div></div>
  {{if .Unreadable}}<div class="card"><div class="k">Unreadable</div><div class="v">{{.Unreadable}}</div></div>{{end}}
  <div class="card"><div class="k">Users</div><div class="v">{{.Users}}</div></div>
  <div class="card"><div class="k">Up</div><div class="v up">{{.Up}}</div></div>
  <div class="card"><div class="k">Down</div><div class="v down">{{.Down}}</div></div>
  <div class="card"><div class="k">Unchanged</div><div class="v">{{.Unchanged}}</div></div>
  <div class="card"><div class="k">Total shift</div><div class="v {{sign .TotalShiftFen}}">{{signed .TotalShiftFen}}</div></div>
  {{if .Users}}
  <div class="card"><div class="k">Mean</div><div class="v">{{signed .MeanShiftFen}}</div></div>
  <div class="card"><div class="k">Median</div><div class="v">{{signed .MedianShiftFen}}</div></div>
  <div class="card"><div class="k">P10</div><div class="v">{{signed .P10ShiftFen}}</div></div>
  <div class="card"><div class="k">P90</div><div class="v">{{signed .P90ShiftFen}}</div></div>
  {{end}}
</div>
<table>
<thead><tr><th>Shift (yuan)</th>{{range .Histogram}}<th class="n">{{.Label}}</th>{{end}}</tr></thead>
<tbody><tr><td>Users</td>{{range .Histogram}}<td class="n">{{.Count}}</td>{{end}}</tr></tbody>
</table>

{{if .Largest}}
<h3>The {{len .Largest}} largest moves</h3>
<table>
<thead><tr><th class="n">#</th><th>User</th><th class="n">Live quota</th><th class="n">Shadow quota</th><th class="n">Shift</th><th>Live eligibility codes</th><th>Shadow eligibility codes</th></tr></thead>
<tbody>
{{range $i, $m := .Largest}}<tr><td class="n">{{inc $i}}</td><td class="mono">{{$m.UserID}}</td><td class="n">{{yuan $m.LiveQuotaFen}}</td><td class="n">{{yuan $m.ShadowQuotaFen}}</td><td class="n {{sign $m.ShiftFen}}">{{signed $m.ShiftFen}}</td><td><code>{{codes $m.LiveEligibilityCodes}}</code></td><td><code>{{codes $m.ShadowEligibilityCodes}}</code></td></tr>
{{end}}</tbody>
</table>

<h3>Factor breakdowns</h3>
<div class="moves">
{{range $i, $m := .Largest}}<div class="move">
<h4>{{inc $i}}. <span class="mono">{{$m.UserID}}</span>: {{yuan $m.LiveQuotaFen}} → {{yuan $m.ShadowQuotaFen}} <span class="{{sign $m.ShiftFen}}">({{signed $m.ShiftFen}})</span></h4>
<div class="codes">score {{printf "%.4f" $m.LiveScore}} → {{printf "%.4f" $m.ShadowScore}}{{if or $m.LiveTier $m.ShadowTier}}, tier {{$m.LiveTier}} → {{$m.ShadowTier}}{{end}}; eligibility codes live <code>{{codes $m.LiveEligibilityCodes}}</code>, shadow <code>{{codes $m.ShadowEligibilityCodes}}</code></div>
{{if $m.Factors}}<table>
<thead><tr><th>Factor</th><th class="n">Live weight</th><th class="n">Shadow weight</th><th class="n">Live contrib.</th><th class="n">Shadow contrib.</th><th class="n">Change</th></tr></thead>
<tbody>
{{range $m.Factors}}<tr><td>{{.Name}}</td><td class="n">{{num .InLive .LiveWeight 3}}</td><td class="n">{{num .InShadow .ShadowWeight 3}}</td><td class="n">{{num .InLive .LiveContribution 4}}</td><td class="n">{{num .InShadow .ShadowContribution 4}}</td><td class="n">{{delta .LiveContribution .ShadowContribution}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="none">No factors.</p>{{end}}
</div>
{{end}}</div>
{{end}}
{{end}}

<h2>Freezes and unfreezes</h2>
{{range .Freezes}}
<h3>{{.Title}}: {{len .Rows}}</h3>
{{if .Rows}}<table>
<thead><tr><th>User</th><th>Causation</th><th>Rule</th><th>Time</th></tr></thead>
<tbody>
{{range first .Rows $.MaxListed}}<tr><td class="mono">{{.UserID}}</td><td class="mono">{{.CausationID}}</td><td>{{.Rule}}</td><td>{{time .Time}}</td></tr>
{{end}}{{if gt (more .Rows $.MaxListed) 0}}<tr><td colspan="4" class="none">… {{more .Rows $.MaxListed}} more</td></tr>{{end}}
</tbody>
</table>{{end}}
{{end}}

<h2>Eligibility codes gained and lost</h2>
{{if .R.Eligibility}}
<table>
<thead><tr><th>Code</th><th class="n">Users gained</th><th class="n">Users lost</th></tr></thead>
<tbody>
{{range .R.Eligibility}}<tr><td><code>{{.Code}}</code></td><td class="n{{if .Gained}} down{{end}}">{{.Gained}}</td><td class="n{{if .Lost}} up{{end}}">{{.Lost}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none">No eligibility code gained or lost.</p>{{end}}
</main>
</body>
</html>
{{define "chart"}}<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
<title>{{.Title}}</title>
{{range .YTicks}}<line x1="{{$.PlotLeft}}" x2="{{$.PlotRight}}" y1="{{.Y}}" y2="{{.Y}}" stroke="#e2e8f0" stroke-width="1"/>
<text x="{{$.PlotLeft}}" dx="-6" y="{{.LabelY}}" text-anchor="end" font-size="11">{{.Label}}</text>
{{end}}<line x1="{{.PlotLeft}}" x2="{{.PlotRight}}" y1="{{.Baseline}}" y2="{{.Baseline}}" stroke="#4a5568" stroke-width="1"/>
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"><title>{{.Group}}, {{.Series}}: {{.Value}}</title></rect>
<text x="{{.LabelX}}" y="{{.LabelY}}" text-anchor="middle" font-size="11">{{.Value}}</text>
{{end}}{{range .XLabels}}{{if .Rotate}}<text x="{{.X}}" y="{{.Y}}" text-anchor="end" font-size="11" transform="rotate(-35 {{.X}} {{.Y}})">{{.Text}}</text>
{{else}}<text x="{{.X}}" y="{{.Y}}" text-anchor="middle" font-size="12">{{.Text}}</text>
{{end}}{{end}}<text x="{{.XTitleX}}" y="{{.XTitleY}}" text-anchor="middle" font-size="12" fill="#5a6472">{{.XTitle}}</text>
<text x="16" y="{{.YTitleY}}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {{.YTitleY}})">{{.YTitle}}</text>
{{range .Legend}}<rect x="{{.X}}" y="{{.Y}}" width="12" height="12" fill="{{.Fill}}"/><text x="{{.TextX}}" y="{{.TextY}}" font-size="12">{{.Text}}</text>
{{end}}</svg>{{end}}`
