package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The fuzz targets of the decoder (issue 12), one per mode, with their
// seed corpus in testdata/fuzz/<name>/: a few valid and invalid records of
// every event type. Briefly, as make test runs them:
//
//	go test -run '^$' -fuzz '^FuzzDecodeStructured$' -fuzztime 5s ./events/
//	go test -run '^$' -fuzz '^FuzzDecodeBinary$' -fuzztime 5s ./events/
//
// FuzzDecodeMatchesOracle (decode_diff_test.go) is the third: the
// decoder against the oracle.

// FuzzDecodeStructured decodes structured-mode records: a content-type
// header (none when empty), more headers as "name: value" lines, and the
// value (the envelope).
func FuzzDecodeStructured(f *testing.F) {
	d := testDecoder()
	f.Fuzz(func(t *testing.T, key []byte, contentType, extra string, value []byte) {
		var headers []Header
		if contentType != "" {
			headers = append(headers, Header{Key: "content-type", Value: []byte(contentType)})
		}
		checkDecodeProperty(t, d, key, append(headers, decodeHeaders(extra)...), value)
	})
}

// FuzzDecodeBinary decodes binary-mode records: the ce_ attribute headers
// (ce_specversion always; the others none when empty), a content-type
// header (none when empty), more headers as "name: value" lines, and the
// value (the data).
func FuzzDecodeBinary(f *testing.F) {
	d := testDecoder()
	f.Fuzz(func(t *testing.T, key []byte, specversion, id, typ, source, subject, tm, contentType, extra string, value []byte) {
		headers := []Header{{Key: "ce_specversion", Value: []byte(specversion)}}
		for _, h := range []Header{{"ce_id", []byte(id)}, {"ce_type", []byte(typ)}, {"ce_source", []byte(source)},
			{"ce_subject", []byte(subject)}, {"ce_time", []byte(tm)}, {"content-type", []byte(contentType)}} {
			if len(h.Value) > 0 {
				headers = append(headers, h)
			}
		}
		checkDecodeProperty(t, d, key, append(headers, decodeHeaders(extra)...), value)
	})
}

// checkDecodeProperty decodes a record and checks what every record must
// give: no panic; a *DecodeError with a field and a reason, both valid
// UTF-8, and a zero Event; or an Event within the limits (checkLimits)
// that re-encodes, in either mode, to a record that decodes to the same
// Event.
func checkDecodeProperty(t *testing.T, d Decoder, key []byte, headers []Header, value []byte) {
	t.Helper()
	e, err := d.Decode(key, headers, value)
	if err != nil {
		var de *DecodeError
		switch {
		case !errors.As(err, &de):
			t.Fatalf("error %v is a %T, not a *DecodeError", err, err)
		case de.Field == "" || de.Reason == "":
			t.Fatalf("error %#v has no field or no reason", de)
		case !utf8.ValidString(de.Error()):
			t.Fatalf("error %q is not valid UTF-8", de.Error())
		case !reflect.DeepEqual(e, Event{}):
			t.Fatalf("refused (%v) but returned %+v", err, e)
		}
		return
	}
	checkLimits(t, e)

	structured, err := Marshal(e)
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", e, err)
	}
	again, err := d.Decode([]byte(e.Subject), []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvents)}}, structured)
	if err != nil {
		t.Fatalf("the re-encoded event is refused: %v\n%s", err, structured)
	}
	if !reflect.DeepEqual(again, e) {
		t.Fatalf("re-encoded and decoded (structured)\n%+v\nwant\n%+v", again, e)
	}

	hs, data := binaryRecord(t, e)
	again, err = d.Decode([]byte(e.Subject), hs, data)
	if err != nil {
		t.Fatalf("the re-encoded event is refused in binary mode: %v\n%q %s", err, hs, data)
	}
	if !reflect.DeepEqual(again, e) {
		t.Fatalf("re-encoded and decoded (binary)\n%+v\nwant\n%+v", again, e)
	}
}

// binaryRecord is e as a binary-mode record.
func binaryRecord(t *testing.T, e Event) ([]Header, []byte) {
	t.Helper()
	var data any
	switch {
	case e.Payment != nil:
		data = e.Payment
	case e.Login != nil:
		data = e.Login
	case e.Due != nil:
		data = e.Due
	case e.Paid != nil:
		data = e.Paid
	case e.Profile != nil:
		data = e.Profile
	case e.Op != nil:
		data = e.Op
	}
	value, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return []Header{
		{Key: "ce_specversion", Value: []byte(SpecVersion)}, {Key: "ce_id", Value: []byte(e.ID)},
		{Key: "ce_type", Value: []byte(e.Type)}, {Key: "ce_source", Value: []byte(e.Source)},
		{Key: "ce_subject", Value: []byte(e.Subject)}, {Key: "ce_time", Value: []byte(formatTime(e.Time))},
		{Key: "content-type", Value: []byte(ContentTypeJSON)},
	}, value
}

// checkLimits checks an accepted event against docs/events.md's limits:
// exactly one data pointer, the one of its type; every string valid UTF-8
// without control characters and at most MaxIDBytes long; the user's id
// the same everywhere; times in UTC between Earliest and Latest; amounts
// within MaxAmountFen.
func checkLimits(t *testing.T, e Event) {
	t.Helper()
	want := map[string]bool{TypePayment: e.Payment != nil, TypeLogin: e.Login != nil, TypeRepaymentDue: e.Due != nil,
		TypeRepaymentPaid: e.Paid != nil, TypeProfile: e.Profile != nil, TypeOperator: e.Op != nil}
	set := 0
	for typ, has := range want {
		if has {
			set++
			if typ != e.Type {
				t.Fatalf("type %s with %s data", e.Type, typ)
			}
		}
	}
	if set != 1 {
		t.Fatalf("%d data pointers set: %+v", set, e)
	}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(path, v.Elem())
			}
		case reflect.Struct:
			if tm, ok := v.Interface().(time.Time); ok {
				if tm.IsZero() && path == "Event.Op.ExpiresAt" && !OperatorGrants(e.Op.Action) {
					return // no grant, no expiry
				}
				if tm.Location() != time.UTC || tm.Before(Earliest) || tm.After(Latest) {
					t.Fatalf("%s = %v: not UTC within [%v, %v]", path, tm, Earliest, Latest)
				}
				return
			}
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.String:
			s := v.String()
			switch {
			case !utf8.ValidString(s):
				t.Fatalf("%s = %q: not valid UTF-8", path, s)
			case len(s) > MaxIDBytes:
				t.Fatalf("%s is %d bytes, over %d", path, len(s), MaxIDBytes)
			}
			for _, c := range s {
				if unicode.IsControl(c) {
					t.Fatalf("%s = %q: a control character", path, s)
				}
			}
		case reflect.Int64:
			if n := v.Int(); n < 0 || n > MaxAmountFen {
				t.Fatalf("%s = %d: outside [0, 2^53-1]", path, n)
			}
		}
	}
	walk("Event", reflect.ValueOf(e))
	for _, u := range []string{pick(e.Payment, func(p *Payment) string { return p.UserID }),
		pick(e.Login, func(l *Login) string { return l.UserID }), pick(e.Due, func(d *RepaymentDue) string { return d.UserID }),
		pick(e.Paid, func(p *RepaymentPaid) string { return p.UserID }), pick(e.Profile, func(p *Profile) string { return p.UserID }),
		pick(e.Op, func(o *Operator) string { return o.UserID })} {
		if u != "" && u != e.Subject {
			t.Fatalf("user_id %q, subject %q", u, e.Subject)
		}
	}
}

func pick[T any](p *T, f func(*T) string) string {
	if p == nil {
		return ""
	}
	return f(p)
}

// TestDecodeFuzzSeeds checks the seed corpus says what its file names
// say: a seed named "*-valid*" decodes, one named "*-invalid*" is refused.
// (go test runs every seed through the fuzz property.) The committed seeds
// of FuzzDecodeMatchesOracle (which also gets every record of
// oracleInputs) are those of the profile's and the due event's later
// fields.
func TestDecodeFuzzSeeds(t *testing.T) {
	t.Parallel()
	d := testDecoder()
	for target, toRecord := range map[string]func(args []string) (key []byte, headers []Header, value []byte){
		"FuzzDecodeStructured": func(a []string) ([]byte, []Header, []byte) {
			hs := decodeHeaders(a[2])
			if a[1] != "" {
				hs = append([]Header{{Key: "content-type", Value: []byte(a[1])}}, hs...)
			}
			return []byte(a[0]), hs, []byte(a[3])
		},
		"FuzzDecodeBinary": func(a []string) ([]byte, []Header, []byte) {
			hs := []Header{{Key: "ce_specversion", Value: []byte(a[1])}}
			for i, name := range []string{"ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type"} {
				if a[2+i] != "" {
					hs = append(hs, Header{Key: name, Value: []byte(a[2+i])})
				}
			}
			return []byte(a[0]), append(hs, decodeHeaders(a[8])...), []byte(a[9])
		},
		"FuzzDecodeMatchesOracle": func(a []string) ([]byte, []Header, []byte) {
			return []byte(a[0]), decodeHeaders(a[1]), []byte(a[2])
		},
	} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) < 10 {
			t.Fatalf("%s: %d seeds (%v)", target, len(files), err)
		}
		types := map[string]bool{}
		for _, file := range files {
			key, headers, value := toRecord(readSeed(t, file))
			e, err := d.Decode(key, headers, value)
			switch name := filepath.Base(file); {
			case strings.Contains(name, "-invalid"):
				if err == nil {
					t.Errorf("%s: accepted", file)
				}
			case strings.Contains(name, "-valid"):
				if err != nil {
					t.Errorf("%s: %v", file, err)
				}
				types[e.Type] = true
			}
		}
		if target == "FuzzDecodeMatchesOracle" {
			if !types[TypeProfile] || !types[TypeRepaymentDue] {
				t.Errorf("%s: valid seeds of the types %v only", target, types)
			}
		} else if len(types) != len(inputTypes) {
			t.Errorf("%s: valid seeds of %d types only", target, len(types))
		}
	}
}

// readSeed reads the arguments of a seed file of go test's corpus format
// ("go test fuzz v1", then one []byte("...") or string("...") a line).
func readSeed(t *testing.T, file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a corpus file", file)
	}
	var args []string
	for _, line := range lines[1:] {
		_, quoted, _ := strings.Cut(line, "(")
		s, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
		if err != nil {
			t.Fatalf("%s: %q: %v", file, line, err)
		}
		args = append(args, s)
	}
	return args
}
