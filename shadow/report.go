package shadow

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fenqi/fenqi/events"
)

// LargestMoves is how many quota moves a Report lists with their factor
// breakdowns: the largest by |shift|.
const LargestMoves = 20

// maxListed caps the rows of one list (freezes, unfreezes) that WriteTable
// and WriteHTML print; the Report itself keeps them all.
const maxListed = 200

// Report sums up the records of one comparison of a candidate ("shadow")
// policy with the live one. Build makes it; WriteTable and WriteHTML print
// it. Every list in it is sorted by stable keys, so the same records, in
// any order, make the same Report. Times are in UTC; money is in fen.
type Report struct {
	// LivePolicyVersions and ShadowPolicyVersions are the policy versions
	// the records name (a record's own field, else its decision's), sorted.
	LivePolicyVersions   []string `json:"live_policy_versions,omitempty"`
	ShadowPolicyVersions []string `json:"shadow_policy_versions,omitempty"`

	// Records is how many records were counted; Duplicates how many more
	// came with an id already counted (a redelivered record) and were
	// left out.
	Records    int        `json:"records"`
	Duplicates int        `json:"duplicates,omitempty"`
	Diffs      DiffCounts `json:"diffs"`
	// From and To are the earliest and the latest record time (zero when
	// there are no records).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`

	// ByRuleAction counts the decisions of each (rule, action), on each
	// side, sorted by rule then action; see RuleAction for what its
	// counts mean.
	ByRuleAction []RuleAction `json:"by_rule_action,omitempty"`
	// Alerts counts the alert decisions (events.TypeDecisionAlert) of each
	// rule on each side, whatever their action, sorted by rule.
	Alerts []AlertCount `json:"alerts,omitempty"`

	// Quota is how the candidate moves users' quotas.
	Quota QuotaMoves `json:"quota"`

	// Freezes are the freezes (events.TypeDecisionFrozen) the candidate
	// adds or removes; Unfreezes the same for events.TypeDecisionUnfrozen.
	Freezes   DecisionChanges `json:"freezes"`
	Unfreezes DecisionChanges `json:"unfreezes"`

	// Eligibility counts, per eligibility code, the users whose latest
	// quota pair gains or loses it under the candidate; sorted by code.
	Eligibility []EligibilityCount `json:"eligibility,omitempty"`
}

// DiffCounts counts records by their Diff. A record with another Diff
// counts only in Report.Records.
type DiffCounts struct {
	Same    int `json:"same"`
	Changed int `json:"changed"`
	Added   int `json:"added"`
	Removed int `json:"removed"`
}

// RuleAction counts the decisions of one (rule, action) pair. Each record
// counts each of its decisions under that decision's own rule and action:
//
//   - Live: records whose live decision has this rule and action;
//     Shadow: records whose candidate decision has them.
//   - Same: records whose two decisions both have them, Diff same.
//   - Changed: records whose two decisions both have them but differ
//     otherwise (reason codes, a quota): Diff changed.
//   - Added: records whose candidate decision has them and whose live
//     decision does not, because there is none (Diff added) or because it
//     has another rule or action (Diff changed).
//   - Removed: records whose live decision has them and whose candidate
//     decision does not, likewise.
//
// So a record whose action changes from SMS_VERIFY to REFUSE counts as
// Removed under (rule, SMS_VERIFY) and as Added under (rule, REFUSE), and
// always Live = Same + Changed + Removed, Shadow = Same + Changed + Added.
type RuleAction struct {
	Rule    string `json:"rule"`
	Action  string `json:"action"`
	Live    int    `json:"live"`
	Shadow  int    `json:"shadow"`
	Same    int    `json:"same"`
	Changed int    `json:"changed"`
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
}

// AlertCount is how many alert decisions one rule makes under each policy.
type AlertCount struct {
	Rule   string `json:"rule"`
	Live   int    `json:"live"`
	Shadow int    `json:"shadow"`
}

// QuotaMoves is how the candidate moves quotas. It reads the quota pairs:
// the quota records (events.TypeDecisionQuota) with both decisions, whose
// details QuotaOf reads. A user's move is their latest pair (by Time,
// then decision id): ShiftFen = candidate's quota − live quota.
type QuotaMoves struct {
	// Pairs is how many quota pairs were read, Unreadable how many quota
	// records with both decisions had a detail QuotaOf could not read
	// (left out).
	Pairs      int `json:"pairs"`
	Unreadable int `json:"unreadable,omitempty"`

	// Users is how many users have a move: Up of them get more quota
	// from the candidate, Down less, Unchanged the same.
	Users     int `json:"users"`
	Up        int `json:"up"`
	Down      int `json:"down"`
	Unchanged int `json:"unchanged"`
	// TotalShiftFen is the sum of the users' shifts. The mean, median and
	// percentiles are of the users' shifts, rounded to the nearest fen;
	// the percentiles interpolate linearly between the closest ranks
	// (the median of an even count is the mean of the middle two).
	TotalShiftFen  int64 `json:"total_shift_fen"`
	MeanShiftFen   int64 `json:"mean_shift_fen"`
	MedianShiftFen int64 `json:"median_shift_fen"`
	P10ShiftFen    int64 `json:"p10_shift_fen"`
	P90ShiftFen    int64 `json:"p90_shift_fen"`

	// Histogram counts the users' shifts in the signed buckets of
	// ShiftBuckets, in that order (present even when empty).
	Histogram []Bucket `json:"histogram"`
	// Largest are the LargestMoves largest non-zero moves by |shift|,
	// ties by user id.
	Largest []Move `json:"largest,omitempty"`
}

// Bucket is one bar of the quota shift histogram: the shifts s with
// MinFen <= s <= MaxFen (math.MinInt64 and math.MaxInt64 for open ends).
type Bucket struct {
	Label  string `json:"label"` // in yuan
	MinFen int64  `json:"min_fen"`
	MaxFen int64  `json:"max_fen"`
	Count  int    `json:"count"`
}

// ShiftBuckets returns the empty buckets of the quota shift histogram, in
// yuan: < −5000, [−5000, −1000), [−1000, 0), 0, (0, 1000], (1000, 5000],
// > 5000 (symmetric in magnitude around 0).
func ShiftBuckets() []Bucket {
	const y = 100 // fen per yuan
	return []Bucket{
		{Label: "< -5000", MinFen: math.MinInt64, MaxFen: -5000*y - 1},
		{Label: "-5000 to -1000", MinFen: -5000 * y, MaxFen: -1000*y - 1},
		{Label: "-1000 to 0", MinFen: -1000 * y, MaxFen: -1},
		{Label: "0", MinFen: 0, MaxFen: 0},
		{Label: "0 to 1000", MinFen: 1, MaxFen: 1000 * y},
		{Label: "1000 to 5000", MinFen: 1000*y + 1, MaxFen: 5000 * y},
		{Label: "> 5000", MinFen: 5000*y + 1, MaxFen: math.MaxInt64},
	}
}

// Move is one user's quota under each policy, from their latest quota
// pair, with both breakdowns.
type Move struct {
	UserID      string    `json:"user_id"`
	ID          string    `json:"id"` // the decision id of the pair
	CausationID string    `json:"causation_id"`
	Time        time.Time `json:"time"`

	LiveQuotaFen   int64 `json:"live_quota_fen"`
	ShadowQuotaFen int64 `json:"shadow_quota_fen"`
	ShiftFen       int64 `json:"shift_fen"` // ShadowQuotaFen − LiveQuotaFen

	LiveEligible   bool    `json:"live_eligible"`
	ShadowEligible bool    `json:"shadow_eligible"`
	LiveScore      float64 `json:"live_score"`
	ShadowScore    float64 `json:"shadow_score"`
	LiveTier       string  `json:"live_tier,omitempty"`
	ShadowTier     string  `json:"shadow_tier,omitempty"`
	// The eligibility codes of each side, in the decision's (gate) order.
	LiveEligibilityCodes   []string `json:"live_eligibility_codes,omitempty"`
	ShadowEligibilityCodes []string `json:"shadow_eligibility_codes,omitempty"`

	// Factors are both breakdowns side by side: the live decision's
	// factors in its order, then those only the candidate has.
	Factors []FactorMove `json:"factors,omitempty"`
}

// FactorMove is one factor of a quota under each policy. InLive and
// InShadow say which breakdowns have it; the other side's numbers are 0.
type FactorMove struct {
	Name               string  `json:"name"`
	InLive             bool    `json:"in_live"`
	InShadow           bool    `json:"in_shadow"`
	LiveWeight         float64 `json:"live_weight"`
	ShadowWeight       float64 `json:"shadow_weight"`
	LiveContribution   float64 `json:"live_contribution"`
	ShadowContribution float64 `json:"shadow_contribution"`
}

// DecisionChanges lists the decisions of one type that the candidate
// adds (it makes one and the live policy makes none of that type for the
// id) and removes (the other way round), sorted by time, user, then id.
type DecisionChanges struct {
	Added   []DecisionRow `json:"added,omitempty"`
	Removed []DecisionRow `json:"removed,omitempty"`
}

// DecisionRow is one decision of a DecisionChanges.
type DecisionRow struct {
	UserID      string    `json:"user_id"`
	CausationID string    `json:"causation_id"`
	Rule        string    `json:"rule"`
	Action      string    `json:"action"`
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
}

// EligibilityCount is, for one eligibility code, how many users' latest
// quota pair has it only under the candidate (Gained) or only under the
// live policy (Lost).
type EligibilityCount struct {
	Code   string `json:"code"`
	Gained int    `json:"gained"`
	Lost   int    `json:"lost"`
}

// Build sums up records into a Report. It is pure: it reads the records
// and their decisions and modifies neither, and the same records in any
// order make the same Report. Records with the same non-empty id count
// once (the one with the latest time, then by content), the others in
// Report.Duplicates.
func Build(records []Record) Report {
	recs, dups := dedupe(records)
	rep := Report{Records: len(recs), Duplicates: dups}

	live, cand := map[string]bool{}, map[string]bool{}
	ra := map[[2]string]*RuleAction{}
	alerts := map[string]*AlertCount{}
	latest := map[string]Move{} // each user's latest quota pair
	for i := range recs {
		r := &recs[i]
		switch r.Diff {
		case Same:
			rep.Diffs.Same++
		case Changed:
			rep.Diffs.Changed++
		case Added:
			rep.Diffs.Added++
		case Removed:
			rep.Diffs.Removed++
		}
		t := r.Time.UTC()
		if i == 0 || t.Before(rep.From) {
			rep.From = t
		}
		if i == 0 || t.After(rep.To) {
			rep.To = t
		}
		if v := version(r.LivePolicyVersion, r.Live); v != "" {
			live[v] = true
		}
		if v := version(r.ShadowPolicyVersion, r.Shadow); v != "" {
			cand[v] = true
		}

		countRuleAction(ra, r)
		countAlerts(alerts, r)
		addChange(&rep.Freezes, r, events.TypeDecisionFrozen)
		addChange(&rep.Unfreezes, r, events.TypeDecisionUnfrozen)

		if r.Type == events.TypeDecisionQuota && r.Live != nil && r.Shadow != nil &&
			r.Live.Type == events.TypeDecisionQuota && r.Shadow.Type == events.TypeDecisionQuota {
			m, ok := readPair(r)
			if !ok {
				rep.Quota.Unreadable++
				continue
			}
			rep.Quota.Pairs++
			if cur, seen := latest[m.UserID]; !seen || later(m, cur) {
				latest[m.UserID] = m
			}
		}
	}

	rep.LivePolicyVersions = sortedKeys(live)
	rep.ShadowPolicyVersions = sortedKeys(cand)
	for _, row := range ra {
		rep.ByRuleAction = append(rep.ByRuleAction, *row)
	}
	slices.SortFunc(rep.ByRuleAction, func(a, b RuleAction) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Action, b.Action))
	})
	for _, row := range alerts {
		rep.Alerts = append(rep.Alerts, *row)
	}
	slices.SortFunc(rep.Alerts, func(a, b AlertCount) int { return cmp.Compare(a.Rule, b.Rule) })
	for _, c := range []*DecisionChanges{&rep.Freezes, &rep.Unfreezes} {
		slices.SortFunc(c.Added, compareRows)
		slices.SortFunc(c.Removed, compareRows)
	}

	moves := make([]Move, 0, len(latest))
	for _, m := range latest {
		moves = append(moves, m)
	}
	rep.Quota = summariseMoves(rep.Quota, moves)
	rep.Eligibility = eligibility(moves)
	return rep
}

// dedupe returns the records with one per non-empty id, sorted by time,
// id, then content, and how many it left out.
func dedupe(records []Record) ([]Record, int) {
	recs := slices.Clone(records)
	slices.SortStableFunc(recs, func(a, b Record) int {
		// Latest first within an id, so that the one kept is the latest.
		return cmp.Or(cmp.Compare(a.ID, b.ID), b.Time.Compare(a.Time), compareContent(a, b))
	})
	out := make([]Record, 0, len(recs))
	dups := 0
	for i, r := range recs {
		if i > 0 && r.ID != "" && r.ID == recs[i-1].ID {
			dups++
			continue
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID), compareContent(a, b))
	})
	return out, dups
}

// compareContent orders two records by what the report reads of them, so
// that ties on time and id still sort the same way in any input order.
func compareContent(a, b Record) int {
	return cmp.Or(
		cmp.Compare(a.Diff, b.Diff), cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Type, b.Type),
		cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.CausationID, b.CausationID),
		cmp.Compare(a.LivePolicyVersion, b.LivePolicyVersion), cmp.Compare(a.ShadowPolicyVersion, b.ShadowPolicyVersion),
		compareDecision(a.Live, b.Live), compareDecision(a.Shadow, b.Shadow),
	)
}

func compareDecision(a, b *events.Decision) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	c := cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Data.Rule, b.Data.Rule),
		cmp.Compare(a.Data.Action, b.Data.Action), slices.Compare(codes(*a), codes(*b)))
	if c != 0 || a.Type != events.TypeDecisionQuota {
		return c
	}
	qa, _ := QuotaOf(*a)
	qb, _ := QuotaOf(*b)
	return cmp.Compare(qa.QuotaFen, qb.QuotaFen)
}

// version is a record's policy version, else its decision's.
func version(v string, d *events.Decision) string {
	if v == "" && d != nil {
		return d.Data.PolicyVersion
	}
	return v
}

func countRuleAction(rows map[[2]string]*RuleAction, r *Record) {
	row := func(d *events.Decision) *RuleAction {
		k := [2]string{d.Data.Rule, d.Data.Action}
		if rows[k] == nil {
			rows[k] = &RuleAction{Rule: k[0], Action: k[1]}
		}
		return rows[k]
	}
	l, s := r.Live, r.Shadow
	sameKey := l != nil && s != nil && l.Data.Rule == s.Data.Rule && l.Data.Action == s.Data.Action
	if l != nil {
		x := row(l)
		x.Live++
		switch {
		case !sameKey:
			x.Removed++
		case r.Diff == Same:
			x.Same++
		default:
			x.Changed++
		}
	}
	if s != nil {
		x := row(s)
		x.Shadow++
		if !sameKey {
			x.Added++
		}
	}
}

func countAlerts(rows map[string]*AlertCount, r *Record) {
	row := func(rule string) *AlertCount {
		if rows[rule] == nil {
			rows[rule] = &AlertCount{Rule: rule}
		}
		return rows[rule]
	}
	if r.Live != nil && r.Live.Type == events.TypeDecisionAlert {
		row(r.Live.Data.Rule).Live++
	}
	if r.Shadow != nil && r.Shadow.Type == events.TypeDecisionAlert {
		row(r.Shadow.Data.Rule).Shadow++
	}
}

// addChange lists r's decision of type typ in c when only one side has
// one of that type.
func addChange(c *DecisionChanges, r *Record, typ string) {
	isType := func(d *events.Decision) bool { return d != nil && d.Type == typ }
	switch l, s := isType(r.Live), isType(r.Shadow); {
	case s && !l:
		c.Added = append(c.Added, rowOf(r, r.Shadow))
	case l && !s:
		c.Removed = append(c.Removed, rowOf(r, r.Live))
	}
}

func rowOf(r *Record, d *events.Decision) DecisionRow {
	user := d.Subject
	if user == "" {
		user = r.UserID
	}
	return DecisionRow{
		UserID: user, CausationID: d.Data.CausationID, Rule: d.Data.Rule, Action: d.Data.Action,
		ID: d.ID, Time: r.Time.UTC(),
	}
}

func compareRows(a, b DecisionRow) int {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.ID, b.ID),
		cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Action, b.Action), cmp.Compare(a.CausationID, b.CausationID))
}

// later reports whether move a comes from a later pair than b: by time,
// then decision id.
func later(a, b Move) bool {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) > 0
}

// readPair reads a quota record with both decisions into a Move; false
// when a detail does not read.
func readPair(r *Record) (Move, bool) {
	lq, err := QuotaOf(*r.Live)
	if err != nil {
		return Move{}, false
	}
	sq, err := QuotaOf(*r.Shadow)
	if err != nil {
		return Move{}, false
	}
	user := r.UserID
	if user == "" {
		user = r.Shadow.Subject
	}
	m := Move{
		UserID: user, ID: r.ID, CausationID: r.CausationID, Time: r.Time.UTC(),
		LiveQuotaFen: lq.QuotaFen, ShadowQuotaFen: sq.QuotaFen, ShiftFen: sq.QuotaFen - lq.QuotaFen,
		LiveEligible: lq.Eligible, ShadowEligible: sq.Eligible,
		LiveScore: lq.Score, ShadowScore: sq.Score,
		LiveTier: lq.Tier, ShadowTier: sq.Tier,
		LiveEligibilityCodes:   nonEmpty(lq.EligibilityCodes),
		ShadowEligibilityCodes: nonEmpty(sq.EligibilityCodes),
		Factors:                factorMoves(lq.Factors, sq.Factors),
	}
	return m, true
}

// factorMoves pairs two breakdowns by factor name: live's order, then the
// candidate's own factors in its order.
func factorMoves(live, cand []Factor) []FactorMove {
	var out []FactorMove
	at := map[string]int{}
	for _, f := range live {
		if _, dup := at[f.Name]; dup {
			continue
		}
		at[f.Name] = len(out)
		out = append(out, FactorMove{Name: f.Name, InLive: true, LiveWeight: f.Weight, LiveContribution: f.Contribution})
	}
	for _, f := range cand {
		i, ok := at[f.Name]
		if !ok {
			i = len(out)
			at[f.Name] = i
			out = append(out, FactorMove{Name: f.Name})
		} else if out[i].InShadow {
			continue
		}
		out[i].InShadow, out[i].ShadowWeight, out[i].ShadowContribution = true, f.Weight, f.Contribution
	}
	return out
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// summariseMoves fills q's distribution from the users' moves.
func summariseMoves(q QuotaMoves, moves []Move) QuotaMoves {
	q.Histogram = ShiftBuckets()
	q.Users = len(moves)
	if len(moves) == 0 {
		return q
	}
	shifts := make([]int64, len(moves))
	for i, m := range moves {
		shifts[i] = m.ShiftFen
		q.TotalShiftFen += m.ShiftFen
		switch {
		case m.ShiftFen > 0:
			q.Up++
		case m.ShiftFen < 0:
			q.Down++
		default:
			q.Unchanged++
		}
		for b := range q.Histogram {
			if q.Histogram[b].MinFen <= m.ShiftFen && m.ShiftFen <= q.Histogram[b].MaxFen {
				q.Histogram[b].Count++
				break
			}
		}
	}
	slices.Sort(shifts)
	q.MeanShiftFen = int64(math.Round(float64(q.TotalShiftFen) / float64(len(shifts))))
	q.MedianShiftFen = percentile(shifts, 0.5)
	q.P10ShiftFen = percentile(shifts, 0.1)
	q.P90ShiftFen = percentile(shifts, 0.9)

	largest := slices.DeleteFunc(slices.Clone(moves), func(m Move) bool { return m.ShiftFen == 0 })
	slices.SortFunc(largest, func(a, b Move) int {
		return cmp.Or(cmp.Compare(abs(b.ShiftFen), abs(a.ShiftFen)), cmp.Compare(a.UserID, b.UserID))
	})
	if len(largest) > LargestMoves {
		largest = largest[:LargestMoves]
	}
	q.Largest = nonEmptyMoves(largest)
	return q
}

func nonEmptyMoves(m []Move) []Move {
	if len(m) == 0 {
		return nil
	}
	return slices.Clip(m)
}

// percentile is the p-quantile (0 <= p <= 1) of sorted, interpolated
// linearly between the closest ranks and rounded to the nearest fen.
func percentile(sorted []int64, p float64) int64 {
	pos := p * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	v := float64(sorted[lo]) + frac*float64(sorted[hi]-sorted[lo])
	return int64(math.Round(v))
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// eligibility counts, per code, the users who gain or lose it.
func eligibility(moves []Move) []EligibilityCount {
	rows := map[string]*EligibilityCount{}
	row := func(c string) *EligibilityCount {
		if rows[c] == nil {
			rows[c] = &EligibilityCount{Code: c}
		}
		return rows[c]
	}
	for _, m := range moves {
		for _, c := range setMinus(m.ShadowEligibilityCodes, m.LiveEligibilityCodes) {
			row(c).Gained++
		}
		for _, c := range setMinus(m.LiveEligibilityCodes, m.ShadowEligibilityCodes) {
			row(c).Lost++
		}
	}
	var out []EligibilityCount
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b EligibilityCount) int { return cmp.Compare(a.Code, b.Code) })
	return out
}

// setMinus is the distinct elements of a not in b.
func setMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Title names the comparison: both policies' versions.
func (r Report) Title() string {
	return fmt.Sprintf("Shadow policy report: live %s vs shadow %s",
		versions(r.LivePolicyVersions), versions(r.ShadowPolicyVersions))
}

func versions(v []string) string {
	if len(v) == 0 {
		return "(unknown)"
	}
	return strings.Join(v, ", ")
}

// Yuan formats an amount in fen as yuan with two decimals and thousands
// separators: -123456 → "-1,234.56" (events.FormatYuan).
func Yuan(fen int64) string { return events.FormatYuan(fen) }

// SignedYuan is Yuan with a "+" before a positive amount.
func SignedYuan(fen int64) string {
	if fen > 0 {
		return "+" + Yuan(fen)
	}
	return Yuan(fen)
}

// timeText formats a report time; "-" for none.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func codesText(c []string) string {
	if len(c) == 0 {
		return "-"
	}
	return strings.Join(c, ",")
}

// WriteTable writes the report as plain-text tables, in the order of the
// Report's fields: versions and counts, decisions by rule and action,
// alerts per rule, quota moves (distribution, histogram, the largest moves
// with their factors), freezes and unfreezes, eligibility codes. Money is
// in yuan with two decimals.
func (r Report) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	section := func(title string) {
		p("\n%s\n%s\n", title, strings.Repeat("=", len(title)))
	}

	p("%s\n", r.Title())
	p("records:\t%d\n", r.Records)
	if r.Duplicates > 0 {
		p("duplicates left out:\t%d\n", r.Duplicates)
	}
	p("same / changed / added / removed:\t%d / %d / %d / %d\n", r.Diffs.Same, r.Diffs.Changed, r.Diffs.Added, r.Diffs.Removed)
	p("from:\t%s\nto:\t%s\n", timeText(r.From), timeText(r.To))

	section("Decisions by rule and action")
	if len(r.ByRuleAction) == 0 {
		p("(none)\n")
	} else {
		p("RULE\tACTION\tLIVE\tSHADOW\tSAME\tCHANGED\tADDED\tREMOVED\n")
		for _, x := range r.ByRuleAction {
			p("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", x.Rule, x.Action, x.Live, x.Shadow, x.Same, x.Changed, x.Added, x.Removed)
		}
	}

	section("Alerts per rule")
	if len(r.Alerts) == 0 {
		p("(none)\n")
	} else {
		p("RULE\tLIVE\tSHADOW\tCHANGE\n")
		for _, a := range r.Alerts {
			p("%s\t%d\t%d\t%+d\n", a.Rule, a.Live, a.Shadow, a.Shadow-a.Live)
		}
	}

	q := r.Quota
	section("Quota moves")
	p("quota pairs:\t%d\n", q.Pairs)
	if q.Unreadable > 0 {
		p("unreadable quota pairs:\t%d\n", q.Unreadable)
	}
	p("users (latest pair each):\t%d\n", q.Users)
	p("up / down / unchanged:\t%d / %d / %d\n", q.Up, q.Down, q.Unchanged)
	p("total shift (yuan):\t%s\n", SignedYuan(q.TotalShiftFen))
	if q.Users > 0 {
		p("mean / median (yuan):\t%s / %s\n", SignedYuan(q.MeanShiftFen), SignedYuan(q.MedianShiftFen))
		p("p10 / p90 (yuan):\t%s / %s\n", SignedYuan(q.P10ShiftFen), SignedYuan(q.P90ShiftFen))
	}
	p("\nSHIFT (YUAN)\tUSERS\t\n")
	peak := 0
	for _, b := range q.Histogram {
		peak = max(peak, b.Count)
	}
	for _, b := range q.Histogram {
		bar := ""
		if peak > 0 {
			bar = strings.Repeat("#", (b.Count*40+peak-1)/peak)
		}
		p("%s\t%d\t%s\n", b.Label, b.Count, bar)
	}
	if len(q.Largest) > 0 {
		p("\nLargest moves\n")
		p("#\tUSER\tLIVE QUOTA\tSHADOW QUOTA\tSHIFT\tLIVE CODES\tSHADOW CODES\n")
		for i, m := range q.Largest {
			p("%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, m.UserID, Yuan(m.LiveQuotaFen), Yuan(m.ShadowQuotaFen),
				SignedYuan(m.ShiftFen), codesText(m.LiveEligibilityCodes), codesText(m.ShadowEligibilityCodes))
		}
		p("\nFactor breakdowns (weight, contribution: live -> shadow)\n")
		for i, m := range q.Largest {
			p("\n%d. %s  %s -> %s (%s)  score %.4f -> %.4f\n", i+1, m.UserID, Yuan(m.LiveQuotaFen), Yuan(m.ShadowQuotaFen),
				SignedYuan(m.ShiftFen), m.LiveScore, m.ShadowScore)
			if len(m.Factors) == 0 {
				p("   (no factors)\n")
				continue
			}
			p("   FACTOR\tLIVE WEIGHT\tSHADOW WEIGHT\tLIVE CONTRIB\tSHADOW CONTRIB\tCHANGE\n")
			for _, f := range m.Factors {
				p("   %s\t%s\t%s\t%s\t%s\t%+.4f\n", f.Name, num(f.InLive, f.LiveWeight, 3), num(f.InShadow, f.ShadowWeight, 3),
					num(f.InLive, f.LiveContribution, 4), num(f.InShadow, f.ShadowContribution, 4), f.ShadowContribution-f.LiveContribution)
			}
		}
	}

	for _, s := range []struct {
		title string
		c     DecisionChanges
	}{{"Freezes", r.Freezes}, {"Unfreezes", r.Unfreezes}} {
		section(s.title)
		for _, l := range []struct {
			what string
			rows []DecisionRow
		}{{"would not happen (removed)", s.c.Removed}, {"would happen (added)", s.c.Added}} {
			p("%s: %d\n", l.what, len(l.rows))
			if len(l.rows) == 0 {
				continue
			}
			p("   USER\tCAUSATION\tRULE\tTIME\n")
			for i, x := range l.rows {
				if i == maxListed {
					p("   … %d more\n", len(l.rows)-maxListed)
					break
				}
				p("   %s\t%s\t%s\t%s\n", x.UserID, x.CausationID, x.Rule, timeText(x.Time))
			}
		}
	}

	section("Eligibility codes")
	if len(r.Eligibility) == 0 {
		p("(none gained or lost)\n")
	} else {
		p("CODE\tUSERS GAINED\tUSERS LOST\n")
		for _, e := range r.Eligibility {
			p("%s\t%d\t%d\n", e.Code, e.Gained, e.Lost)
		}
	}
	if err := cmp.Or(tw.Flush(), ew.err); err != nil {
		return fmt.Errorf("shadow: write report table: %w", err)
	}
	return nil
}

// errWriter keeps the first error of w, and writes nothing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

// num formats a factor's number, or "-" when that side lacks the factor.
func num(present bool, v float64, prec int) string {
	if !present {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
