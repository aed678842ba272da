package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestRecompute(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"due": 1200, "known": 1500}`)
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"FENQI_API_URL": srv.URL + "/ops", "FENQI_ADMIN_TOKEN": "s3cret"}
	requests := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	if r := runCmd(t, env, "", "recompute"); r.err == nil || len(requests()) != 0 {
		t.Fatalf("without --all: %v, %d requests", r.err, len(requests()))
	}
	r := runCmd(t, env, "", "recompute", "--all")
	if r.err != nil || !strings.Contains(r.stdout, "1200 of 1500 known users") {
		t.Fatalf("recompute --all: %v\n%s", r.err, r.stdout)
	}
	if g := requests(); len(g) != 1 || g[0] != "POST /ops/v1/recompute Bearer s3cret" {
		t.Fatalf("requests %q", g)
	}
}
