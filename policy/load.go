package policy

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // users' zones must load on hosts without a zoneinfo database

	"go.yaml.in/yaml/v3"
)

//go:embed presets/*.yaml
var presets embed.FS

// DefaultPreset is the preset a deployment uses when it names none.
const DefaultPreset = "wechat"

// Presets lists the names of the shipped presets, sorted.
func Presets() []string {
	entries, err := presets.ReadDir("presets")
	if err != nil { // the directory is compiled in; this cannot fail
		panic(fmt.Sprintf("policy: read embedded presets: %v", err))
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// Preset returns a fresh copy of a shipped policy: "wechat" (the default),
// "huabei" or "baitiao". The caller owns the copy.
func Preset(name string) (*Policy, error) {
	file := strings.TrimSuffix(name, ".yaml") + ".yaml"
	data, err := presets.ReadFile("presets/" + file)
	if err != nil {
		return nil, fmt.Errorf("policy: preset %q: unknown (have %s): %w",
			name, strings.Join(Presets(), ", "), err)
	}
	return Parse(data, file)
}

// Open returns the policy spec names: a policy file when one exists at
// that path, else the preset of that name (wechat, huabei, baitiao). The
// error says which it was taken for.
func Open(spec string) (*Policy, error) {
	looksLikeFile := strings.ContainsRune(spec, os.PathSeparator) || strings.HasSuffix(spec, ".yaml") || strings.HasSuffix(spec, ".yml")
	if _, statErr := os.Stat(spec); statErr != nil {
		p, err := Preset(spec)
		if err == nil {
			return p, nil
		}
		if looksLikeFile {
			return nil, fmt.Errorf("policy file: %w (nor is it a preset: %s)", statErr, strings.Join(Presets(), ", "))
		}
		return nil, fmt.Errorf("policy %q is neither a file nor a preset (presets: %s)", spec, strings.Join(Presets(), ", "))
	}
	return Load(spec)
}

// Load reads and validates the policy file at path. Errors name the path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: load: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates one YAML policy document; name is the file
// name that error messages cite. Unknown fields, type mismatches and every
// failed validation are reported together (errors.Join), each as a
// *FieldError "name:line: field: message". Fields of the risk section, the
// guardrail, the check penalty, the recompute cycle and the timezone that
// the document leaves out take their defaults (see defaults); every other
// field is required.
func Parse(data []byte, name string) (*Policy, error) {
	if name == "" {
		name = "policy"
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FieldError{File: name, Msg: "empty policy document"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{File: name, Line: root.Line, Msg: "a policy is a YAML mapping"}
	}
	src := &source{name: name, root: root}

	p := defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var errs []error
	undecoded := false // a value did not decode: validating would only echo it
	if err := dec.Decode(&p); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, syntaxError(name, err)
		}
		for _, msg := range te.Errors {
			fe, unknown := src.decodeError(msg)
			undecoded = undecoded || !unknown
			errs = append(errs, fe)
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		if err != nil {
			line = 0
		}
		errs = append(errs, &FieldError{File: name, Line: line, Msg: "a policy file holds one YAML document"})
	}
	p.src = src
	// An unknown field leaves the known ones intact, so validation still
	// runs; a value of the wrong type (or a duplicated key, which drops its
	// whole mapping) leaves zero values whose checks would only repeat the
	// decode error in other words, so those are reported alone.
	if !undecoded {
		for _, err := range p.validate() {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, errors.Join(errs...)
	}
	loc, err := time.LoadLocation(p.Timezone) // validated above
	if err != nil {
		return nil, fmt.Errorf("policy: %s: timezone: %w", name, err)
	}
	p.loc = loc
	return &p, nil
}

// defaults is the policy every document is decoded onto: the sections that
// DOMAIN.md gives defaults for.
func defaults() Policy {
	return Policy{
		Timezone: "Asia/Shanghai",
		Quota: Quota{
			CheckPenalty: CheckPenalty{WindowDays: 30, FreeChecks: 3, PerCheck: 0.01, Max: 0.05},
			Guardrail:    Guardrail{MaxChangeShare: 0.5},
		},
		Recompute: Recompute{Mode: RecomputeInterval, IntervalDays: 90},
		Risk:      DefaultRisk(),
		Limits:    Limits{MaxAmountFen: 100_000_000, MaxOpenBills: 24},
	}
}

// DefaultRisk is the risk section a policy gets when it leaves it out.
func DefaultRisk() Risk {
	return Risk{
		NightStart:               "00:00",
		NightEnd:                 "05:59",
		LargePaymentFen:          200_000,
		OtherCityWindowDays:      90,
		VelocityCount:            10,
		VelocityWindow:           10 * time.Minute,
		OtherCityThenLargeWindow: 24 * time.Hour,
		AllowedLateness:          time.Hour,
		OverdueFreezeAfterDays:   3,
		Rules: RiskRules{
			NightLarge:         Rule{Enabled: true, Action: ActionSMSVerify},
			OtherCityLogin:     Rule{Enabled: true, Action: ActionSMSVerify},
			OtherCityThenLarge: Rule{Enabled: true, Action: ActionFaceVerify},
			NewDeviceLarge:     Rule{Enabled: true, Action: ActionSMSVerify},
			Velocity:           Rule{Enabled: true, Action: ActionSMSVerify},
			SceneLimit:         Rule{Enabled: true, Action: ActionRefuse, Code: CodeOrderLimited},
			SecondVerification: Rule{Enabled: true, Action: ActionDocumentVerify},
			TransactionLimit:   Rule{Enabled: true, Action: ActionRefuse, Code: CodeUserLimit},
			CreditRefusal:      Rule{Enabled: true, Action: ActionRefuse},
			AlertThreshold:     Rule{Enabled: true, Action: ActionNotifyUser},
			OverdueFreeze:      Rule{Enabled: true, Action: ActionFreeze, Code: CodeOverdueNow},
			JudicialFreeze:     Rule{Enabled: true, Action: ActionFreeze, Code: CodeJudicialDefaulter},
		},
	}
}

// FieldError is one problem of a policy: the file, the line (0 when the
// policy was not read from YAML or the field is absent and has no parent
// line), the field's dotted path and what is wrong.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func sortByLine(errs []error) {
	line := func(err error) int {
		var fe *FieldError
		if errors.As(err, &fe) && fe.Line > 0 {
			return fe.Line
		}
		return int(^uint(0) >> 1) // unknown lines last
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns "yaml: line 3: did not find expected key" into
// "name:3: did not find expected key".
func syntaxError(name string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &FieldError{File: name, Line: n, Msg: m[2]}
	}
	return &FieldError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// source remembers the YAML tree a policy was decoded from, so that
// validation errors can cite the line of the field they are about.
type source struct {
	name string
	root *yaml.Node
}

// at returns the node of a dotted path ("quota.curve[1].score") and the
// line to cite: the key's line for a mapping entry, the item's line for a
// sequence element. When the path does not exist (the field was left out)
// it returns the line of the deepest ancestor that does.
func (s *source) at(field string) (*yaml.Node, int) {
	if s == nil || s.root == nil {
		return nil, 0
	}
	n, line := s.root, 0
	for _, seg := range splitPath(field) {
		next, nextLine := child(n, seg)
		if next == nil {
			return nil, line
		}
		n, line = next, nextLine
	}
	return n, line
}

// child steps one path segment: a mapping key or a "[i]" index.
func child(n *yaml.Node, seg string) (*yaml.Node, int) {
	if strings.HasPrefix(seg, "[") {
		i, err := strconv.Atoi(strings.Trim(seg, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil, 0
		}
		return n.Content[i], n.Content[i].Line
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == seg {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// splitPath splits "a.b[2].c" into "a", "b", "[2]", "c".
func splitPath(field string) []string {
	var segs []string
	for _, part := range strings.Split(field, ".") {
		for part != "" {
			i := strings.IndexByte(part[1:], '[')
			if i < 0 {
				segs = append(segs, part)
				break
			}
			segs = append(segs, part[:i+1])
			part = part[i+1:]
		}
	}
	return segs
}

// errorf builds a FieldError for a field of this source.
// When the field is absent from the document (so its value is the zero
// value) and markMissing is set, the message says so.
func (s *source) errorf(field string, markMissing bool, format string, args ...any) *FieldError {
	fe := &FieldError{File: "policy", Field: field, Msg: fmt.Sprintf(format, args...)}
	if s != nil {
		fe.File = s.name
		var n *yaml.Node
		n, fe.Line = s.at(field)
		if n == nil && markMissing && s.root != nil {
			fe.Msg = "missing; " + fe.Msg
		}
	}
	return fe
}

var (
	decodeLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField  = regexp.MustCompile(`^field (\S+) not found in type`)
	cannotDecode  = regexp.MustCompile("^cannot unmarshal \\S+ `([^`]*)`")
	duplicatedKey = regexp.MustCompile(`^mapping key "([^"]*)" already defined`)
)

// decodeError turns one of yaml's TypeError lines ("line 12: field foo
// not found in type policy.Quota") into a FieldError naming the field, and
// says whether it is an unknown field.
func (s *source) decodeError(msg string) (fe *FieldError, unknown bool) {
	m := decodeLine.FindStringSubmatch(msg)
	if m == nil {
		return &FieldError{File: s.name, Msg: msg}, false
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	fe = &FieldError{File: s.name, Line: line, Msg: rest}
	var key, value string
	switch {
	case unknownField.MatchString(rest):
		key = unknownField.FindStringSubmatch(rest)[1]
		fe.Msg = fmt.Sprintf("unknown field %q", key)
		unknown = true
	case duplicatedKey.MatchString(rest):
		key = duplicatedKey.FindStringSubmatch(rest)[1]
	case cannotDecode.MatchString(rest):
		value = strings.TrimSuffix(cannotDecode.FindStringSubmatch(rest)[1], "...")
	}
	fe.Field = s.fieldAt(line, key, value)
	return fe, unknown
}

// fieldAt finds the path of the entry on a line: the one whose key is key,
// else the one whose scalar value starts with value, else the deepest.
func (s *source) fieldAt(line int, key, value string) string {
	type entry struct {
		path, key string
		val       *yaml.Node
		depth     int
	}
	var found []entry
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line || v.Line == line {
					found = append(found, entry{p, k.Value, v, depth})
				}
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if v.Line == line {
					found = append(found, entry{p, "", v, depth})
				}
				walk(v, p, depth+1)
			}
		}
	}
	walk(s.root, "", 0)
	best := -1
	for i, e := range found {
		switch {
		case key != "" && e.key == key:
			return e.path
		case value != "" && e.val.Kind == yaml.ScalarNode && strings.HasPrefix(e.val.Value, value):
			return e.path
		case best < 0 || e.depth > found[best].depth:
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return found[best].path
}

// Name is the file name the policy was parsed under ("" when built in code).
func (p *Policy) Name() string {
	if p.src == nil {
		return ""
	}
	return p.src.name
}
