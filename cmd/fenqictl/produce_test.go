package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
)

// A file of valid and invalid lines is refused whole, naming every invalid
// line; with --skip-invalid the valid events arrive on their topics.
func TestProduceFile(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	bad := payment("pay-bad", "u-2", 100)
	bad.Payment.Currency = "cny"
	lines := []string{
		marshal(t, payment("pay-1", "u-1", 12345)), // 1
		marshal(t, login("login-1", "u-1")),        // 2
		"",                                         // 3
		marshal(t, bad),                            // 4: refused, data.currency
		marshal(t, due("due-1", "u-2", "b-1")),     // 5
		`{"specversion":"1.0", "id":`,              // 6: refused, not JSON
		marshal(t, profile("profile-1", "u-3")),    // 7
		"   " + marshal(t, paid("paid-1", "u-2", "b-1")) + "\r", // 8
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(k.Addrs(), ",")

	r := runCmd(t, nil, "", "produce", "--brokers", brokers, file)
	if r.code() != 1 {
		t.Fatalf("exit status %d, want 1 (refused)", r.code())
	}
	for _, want := range []string{
		file + `:4: events: field "data.currency": must be "CNY"`,
		file + `:6: events: field "value": `,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not report %q", want)
		}
	}
	if n := strings.Count(r.stderr, file+":"); n != 2 {
		t.Errorf("stderr reports %d invalid lines, want 2", n)
	}
	if !strings.Contains(r.err.Error(), "2 of 7 events are invalid; nothing sent") {
		t.Errorf("error = %v", r.err)
	}
	for _, topic := range inputTopicNames {
		if got := testenv.ReadAll(t, k.Addrs(), topic); len(got) != 0 {
			t.Errorf("%s: %d records after a refused file, want none", topic, len(got))
		}
	}

	// The brokers from the environment, flags after the file.
	r = runCmd(t, map[string]string{"FENQI_KAFKA_BROKERS": brokers}, "", "produce", file, "--skip-invalid")
	if r.err != nil {
		t.Fatalf("--skip-invalid: %v", r.err)
	}
	if !strings.Contains(r.stdout, "sent 5 events: fenqi.payments 1, fenqi.logins 1, fenqi.repayments 2, fenqi.profiles 1") {
		t.Errorf("summary missing from stdout")
	}
	if !strings.Contains(r.stderr, file+":4:") || !strings.Contains(r.stderr, file+":6:") {
		t.Errorf("skipped lines not reported")
	}
	want := map[string][]string{
		defaultPayments:   {"pay-1"},
		defaultLogins:     {"login-1"},
		defaultRepayments: {"due-1", "paid-1"},
		defaultProfiles:   {"profile-1"},
	}
	for topic, ids := range want {
		got := testenv.ReadAll(t, k.Addrs(), topic)
		var gotIDs []string
		for _, m := range got {
			e := decode(t, m)
			gotIDs = append(gotIDs, e.ID)
			if string(m.Key) != e.Subject {
				t.Errorf("%s: key %q, want the subject %q", e.ID, m.Key, e.Subject)
			}
			if ct := header(m, "content-type"); !slices.Equal(ct, []string{events.ContentTypeCloudEvents}) {
				t.Errorf("%s: content-type %q", e.ID, ct)
			}
		}
		slices.Sort(gotIDs) // one user's events are ordered; across users only per partition
		if !slices.Equal(gotIDs, ids) {
			t.Errorf("%s: got %v, want %v", topic, gotIDs, ids)
		}
	}
}

// A JSON array on standard input; the line of each invalid element is
// where the element starts.
func TestProduceArrayFromStdin(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t, inputTopicNames...)
	stale := login("login-future", "u-9")
	stale.Time = time.Now().Add(time.Hour)
	input := "[\n  " + marshal(t, payment("pay-a", "u-7", 500)) + ",\n" +
		"  {\n    \"specversion\": \"1.0\",\n    \"id\": \"x\"\n  },\n" + // element at line 3
		"  " + marshal(t, stale) + "\n]\n" // line 7: time in the future

	r := runCmd(t, nil, input, "produce", "--brokers", k.Addr(), "-")
	if r.code() != 1 {
		t.Fatalf("exit status %d, want 1", r.code())
	}
	for _, want := range []string{`stdin:3: events: field "type"`, `stdin:7: events: field "time"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not report %q", want)
		}
	}

	r = runCmd(t, nil, input, "produce", "--brokers", k.Addr(), "--skip-invalid", "-")
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := testenv.ReadN(t, k.Addrs(), defaultPayments, 1, 15*time.Second)
	if e := decode(t, got[0]); e.ID != "pay-a" || e.Payment.AmountFen != 500 {
		t.Errorf("got %+v", e)
	}
	if got := testenv.ReadAll(t, k.Addrs(), defaultLogins); len(got) != 0 {
		t.Errorf("logins: %d records, want none", len(got))
	}
}

// --dry-run validates and sends nothing; it needs no broker.
func TestProduceDryRun(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "one.json")
	if err := os.WriteFile(file, []byte(marshal(t, login("l-1", "u-1"))), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, nil, "", "produce", "--dry-run", "--brokers", "127.0.0.1:1", "--topic-logins", "my.logins", file)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stdout, "would send 1 events: my.logins 1") {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestSplitEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		lines   []int
		values  []string
		wantErr string
	}{
		{name: "lines", in: "{\"a\":1}\n\n  {\"b\":2}  \r\n", lines: []int{1, 3}, values: []string{`{"a":1}`, `{"b":2}`}},
		{name: "empty", in: " \n\n"},
		{name: "array", in: "\ufeff[\n {\"a\": 1},\n\n {\n  \"b\": [1, 2]\n }\n]", lines: []int{2, 4}, values: []string{`{"a":1}`, `{"b":[1,2]}`}},
		{name: "array of non-objects", in: `[1, "x"]`, lines: []int{1, 1}, values: []string{`1`, `"x"`}},
		{name: "empty array", in: "[]"},
		{name: "broken array", in: "[\n{\"a\":1},\n{\"b\":}\n]", wantErr: "3: not a JSON array of events"},
		{name: "unterminated array", in: "[\n{\"a\":1}\n", wantErr: "not a JSON array of events"},
		{name: "data after the array", in: "[{\"a\":1}]\n{\"b\":2}", wantErr: "2: not a JSON array of events: unexpected data after the closing ]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := splitEvents([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			var values []string
			for _, r := range got {
				lines, values = append(lines, r.line), append(values, string(r.value))
			}
			if !slices.Equal(lines, tt.lines) || !slices.Equal(values, tt.values) {
				t.Errorf("got lines %v values %q, want %v %q", lines, values, tt.lines, tt.values)
			}
		})
	}
}
