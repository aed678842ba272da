package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOverride(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string // "METHOD path body"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(b), `"quota_fen":13`) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"expires_at 2020-01-01T00:00:00Z is not in the future"}`)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"FENQI_API_URL": srv.URL, "USER": "ops-wang"}

	r := runCmd(t, env, "", "override", "u 1", "--quota-fen", "300000", "--reason", "VIP review", "--expires", "720h")
	if r.err != nil || !strings.Contains(r.stdout, "3,000.00 yuan") {
		t.Fatalf("set: %v\n%s", r.err, r.stdout)
	}
	mu.Lock()
	req := got[0]
	mu.Unlock()
	method, rest, _ := strings.Cut(req, " ")
	path, body, _ := strings.Cut(rest, " ")
	if method != http.MethodPut || path != "/v1/users/u%201/override" {
		t.Fatalf("request %s %s", method, path)
	}
	var ob overrideBody
	if err := json.Unmarshal([]byte(body), &ob); err != nil {
		t.Fatal(err)
	}
	if ob.QuotaFen != 300_000 || ob.Reason != "VIP review" || ob.Operator != "ops-wang" ||
		ob.ExpiresAt.Before(time.Now().Add(719*time.Hour)) || ob.ExpiresAt.After(time.Now().Add(721*time.Hour)) {
		t.Fatalf("body %+v", ob)
	}

	if r := runCmd(t, env, "", "override", "u1", "--clear"); r.err != nil {
		t.Fatal(r.err)
	}
	mu.Lock()
	if !strings.HasPrefix(got[1], "DELETE /v1/users/u1/override") {
		t.Fatalf("clear sent %q", got[1])
	}
	mu.Unlock()

	for _, bad := range [][]string{
		{"override", "u1", "--reason", "x", "--expires", "1h"},                       // no quota
		{"override", "u1", "--quota-fen", "1", "--expires", "1h"},                    // no reason
		{"override", "u1", "--quota-fen", "1", "--reason", "x"},                      // no expiry
		{"override", "u1", "--quota-fen", "1", "--reason", "x", "--expires", "-1h"},  // in the past
		{"override", "u1", "--quota-fen", "1", "--reason", "x", "--expires", "soon"}, // not a time
	} {
		if r := runCmd(t, env, "", bad...); r.code() != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", bad, r.code())
		}
	}
	r = runCmd(t, env, "", "override", "u1", "--quota-fen", "13", "--reason", "x", "--expires", "1h")
	if r.code() != 1 || !strings.Contains(r.err.Error(), "not in the future") {
		t.Fatalf("refusal: exit %d, %v", r.code(), r.err)
	}
}
