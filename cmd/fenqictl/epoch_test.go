package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

// fakeEpochs is fenqid's /v1/epochs as cmd/fenqid serves it (its
// TestEpochsAPI pins the same answers): the five default input topics, a
// raise by name with the admin token, 404 for a name that is not an input
// topic. It records the requests, "METHOD path Authorization".
type fakeEpochs struct {
	mu     sync.Mutex
	epochs map[int]uint32
	reqs   []string
}

func newFakeEpochs(t *testing.T, token string) (*fakeEpochs, *httptest.Server) {
	t.Helper()
	f := &fakeEpochs{epochs: map[int]uint32{}}
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(adminJSON(t, v))
	}
	mux.HandleFunc("GET /ops/v1/epochs", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v := epochsView{}
		for i, name := range inputTopicNames {
			v.Topics = append(v.Topics, epochView{Topic: name, Index: i + 1, Epoch: f.epochs[i+1]})
		}
		write(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /ops/v1/epochs/{topic}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			write(w, http.StatusUnauthorized, map[string]string{"error": "a valid Authorization: Bearer token is required"})
			return
		}
		name := r.PathValue("topic")
		i := slices.Index(inputTopicNames, name)
		if i < 0 {
			write(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no input topic is named %q: the input topics are %s",
				name, strings.Join(inputTopicNames, ", "))})
			return
		}
		f.mu.Lock()
		f.epochs[i+1]++
		e := f.epochs[i+1]
		f.mu.Unlock()
		write(w, http.StatusOK, epochView{Topic: name, Index: i + 1, Epoch: e})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("Authorization"))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeEpochs) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// epochLines is what fenqictl epoch prints for the four default topics at
// the given epochs, one "topic index epoch" per line after the header.
func epochLines(t *testing.T, out string) [][3]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "TOPIC INDEX EPOCH" {
		t.Fatalf("no header in\n%s", out)
	}
	var rows [][3]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("line %q is not topic, index, epoch", l)
		}
		rows = append(rows, [3]string{f[0], f[1], f[2]})
	}
	return rows
}

func TestEpochThroughTheAPI(t *testing.T) {
	t.Parallel()
	f, srv := newFakeEpochs(t, "s3cret")
	env := map[string]string{"FENQI_API_URL": srv.URL + "/ops"}

	r := runCmd(t, env, "", "epoch")
	want := [][3]string{{defaultPayments, "1", "0"}, {defaultLogins, "2", "0"}, {defaultRepayments, "3", "0"}, {defaultProfiles, "4", "0"},
		{defaultOperator, "5", "0"}}
	if r.err != nil || !slices.Equal(epochLines(t, r.stdout), want) {
		t.Fatalf("epoch: %v\n%s", r.err, r.stdout)
	}

	// A raise is a write: without the token fenqid refuses it.
	r = runCmd(t, env, "", "epoch", "--raise", defaultPayments)
	if r.code() != 1 || !strings.Contains(r.err.Error(), "401 Unauthorized") {
		t.Fatalf("raise without the token: exit %d, %v", r.code(), r.err)
	}
	env["FENQI_ADMIN_TOKEN"] = "s3cret"
	r = runCmd(t, env, "", "epoch", "--raise", defaultPayments)
	if r.err != nil || !strings.Contains(r.stdout, defaultPayments+" (topic index 1): offset epoch raised from 0 to 1") ||
		!strings.Contains(r.stdout, "fenqid takes it from its next batch") {
		t.Fatalf("raise: %v\n%s", r.err, r.stdout)
	}
	r = runCmd(t, env, "", "epoch", "--raise", defaultPayments, "--json")
	var v epochView
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &v) != nil || v != (epochView{defaultPayments, 1, 2}) {
		t.Fatalf("raise --json: %v\n%s", r.err, r.stdout)
	}
	r = runCmd(t, env, "", "epoch", "--raise", "fenqi.payment")
	if r.code() != 1 || !strings.Contains(r.err.Error(), `404 Not Found: no input topic is named "fenqi.payment"`) {
		t.Fatalf("raise of a mistyped topic: exit %d, %v", r.code(), r.err)
	}

	r = runCmd(t, env, "", "epoch")
	want[0][2] = "2"
	if r.err != nil || !slices.Equal(epochLines(t, r.stdout), want) {
		t.Fatalf("epoch after two raises: %v\n%s", r.err, r.stdout)
	}
	r = runCmd(t, env, "", "epoch", "--json")
	var vs epochsView
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &vs) != nil || len(vs.Topics) != 5 || vs.Topics[0].Epoch != 2 {
		t.Fatalf("epoch --json: %v\n%s", r.err, r.stdout)
	}

	wantReqs := []string{
		"GET /ops/v1/epochs ",
		"POST /ops/v1/epochs/fenqi.payments ",
		"POST /ops/v1/epochs/fenqi.payments Bearer s3cret",
		"POST /ops/v1/epochs/fenqi.payments Bearer s3cret",
		"POST /ops/v1/epochs/fenqi.payment Bearer s3cret",
		"GET /ops/v1/epochs Bearer s3cret",
		"GET /ops/v1/epochs Bearer s3cret",
	}
	if got := f.requests(); !slices.Equal(got, wantReqs) {
		t.Fatalf("requests\n%q\nwant\n%q", got, wantReqs)
	}
}

// Mistakes on the command line are caught before asking fenqid or Redis.
func TestEpochCommandLine(t *testing.T) {
	t.Parallel()
	f, srv := newFakeEpochs(t, "")
	env := map[string]string{"FENQI_API_URL": srv.URL + "/ops"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"epoch", "fenqi.payments"}, `unexpected argument "fenqi.payments"`},
		{[]string{"epoch", "--raise", ""}, "--raise wants a topic name"},
		{[]string{"epoch", "--api", "fenqid:8080"}, "is not an http:// or https:// URL"},
		{[]string{"epoch", "--timeout", "0s"}, "--timeout must be > 0"},
		{[]string{"epoch", "--redis", "--redis-addr", "redis"}, `--redis-addr: "redis" is not host:port`},
		{[]string{"epoch", "--redis", "--redis-addr", "a:1,b:2"}, "add --redis-cluster"},
		{[]string{"epoch", "--redis", "--redis-prefix", "{x}"}, "--redis-prefix"},
		{[]string{"epoch", "--redis", "--topic-logins", defaultPayments}, `are both "fenqi.payments"`},
	} {
		r := runCmd(t, env, "", tt.args...)
		if r.code() != 2 || r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("%q: exit %d, %v; want 2 and %q", tt.args, r.code(), r.err, tt.want)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests to fenqid", n)
	}
}

// With fenqid stopped, --redis reads and raises the epochs in Redis, in
// fenqid's namespace and with its topic names, as fenqid's state reads them.
func TestEpochInRedis(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := context.Background()
	env := map[string]string{
		"FENQI_REDIS_ADDR": rdb.Options().Addr, "FENQI_REDIS_PREFIX": "replay:",
		"FENQI_TOPIC_PAYMENTS": "ops.payments",
		"FENQI_API_URL":        testenv.ClosedAddr(t), // never asked
	}
	r := runCmd(t, env, "", "epoch", "--redis")
	want := [][3]string{{"ops.payments", "1", "0"}, {defaultLogins, "2", "0"}, {defaultRepayments, "3", "0"}, {defaultProfiles, "4", "0"},
		{defaultOperator, "5", "0"}}
	if r.err != nil || !slices.Equal(epochLines(t, r.stdout), want) {
		t.Fatalf("epoch --redis: %v\n%s", r.err, r.stdout)
	}
	r = runCmd(t, env, "", "epoch", "--redis", "--raise", "ops.payments")
	if r.err != nil || !strings.Contains(r.stdout, "ops.payments (topic index 1): offset epoch raised from 0 to 1") ||
		!strings.Contains(r.stdout, "start fenqid") {
		t.Fatalf("raise: %v\n%s", r.err, r.stdout)
	}
	r = runCmd(t, env, "", "epoch", "--redis", "--raise", defaultProfiles, "--json")
	var v epochView
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &v) != nil || v != (epochView{defaultProfiles, 4, 1}) {
		t.Fatalf("raise --json: %v\n%s", r.err, r.stdout)
	}
	// fenqid's store, in the same namespace, sees them; another does not.
	for prefix, want := range map[string]map[int]uint32{"replay:": {1: 1, 4: 1}, "": {}} {
		s, err := state.New(rdb, state.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if eps, err := s.Epochs(ctx); err != nil || !maps.Equal(eps, want) {
			t.Errorf("epochs under prefix %q: %v, %v; want %v", prefix, eps, err, want)
		}
	}
	// A name fenqid does not consume (the default, here) is refused.
	r = runCmd(t, env, "", "epoch", "--redis", "--raise", defaultPayments)
	if r.code() != 1 || !strings.Contains(r.err.Error(), `no input topic is named "fenqi.payments": the input topics are ops.payments, `) {
		t.Fatalf("raise of a topic not configured: exit %d, %v", r.code(), r.err)
	}
	r = runCmd(t, env, "", "epoch", "--redis", "--json")
	var vs epochsView
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &vs) != nil ||
		!slices.Equal(vs.Topics, []epochView{{"ops.payments", 1, 1}, {defaultLogins, 2, 0}, {defaultRepayments, 3, 0}, {defaultProfiles, 4, 1},
			{defaultOperator, 5, 0}}) {
		t.Fatalf("epoch --redis --json: %v\n%s", r.err, r.stdout)
	}

	r = runCmd(t, map[string]string{"FENQI_REDIS_ADDR": testenv.ClosedAddr(t)}, "", "epoch", "--redis", "--timeout", "2s")
	if r.code() != 1 || !strings.Contains(r.err.Error(), "redis at ") {
		t.Fatalf("Redis down: exit %d, %v", r.code(), r.err)
	}
}
