package policy

import (
	"errors"
	"testing"
)

// FuzzParse feeds the policy loader any bytes; its seed corpus
// (testdata/fuzz/FuzzParse/) holds the three presets and a few broken
// variants of them. Briefly, as make test runs it:
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 5s ./policy/
//
// The property: Parse never panics; a policy it returns validates and has
// its time zone; otherwise every error it reports is a *FieldError naming
// the file, with a message.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and the error %v", err)
			}
			checkFieldErrors(t, err)
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("a policy that Parse accepted does not validate: %v\n%s", err, data)
		}
		if p.Location() == nil || p.Location().String() != p.Timezone {
			t.Fatalf("Location() = %v, timezone %q", p.Location(), p.Timezone)
		}
		if p.Name() != "fuzz.yaml" {
			t.Fatalf("Name() = %q", p.Name())
		}
	})
}

// checkFieldErrors checks that err is a *FieldError of fuzz.yaml, or a
// join of them.
func checkFieldErrors(t *testing.T, err error) {
	t.Helper()
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			checkFieldErrors(t, e)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "fuzz.yaml" || fe.Msg == "" {
		t.Fatalf("error %v (%T) is not a *FieldError of fuzz.yaml with a message", err, err)
	}
}
