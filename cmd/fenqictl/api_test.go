package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The admin token comes from FENQI_ADMIN_TOKEN or a file, in fenqid's
// format ("name:token" or a bare token; only the token is sent), never
// from the command line.
func TestAdminTokenOfTheAPI(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fenqid admin"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error": "this route needs the header Authorization: Bearer <token>"}`)
			return
		}
		_, _ = io.WriteString(w, `{"due": 1, "known": 2}`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := file("named", "ops-li:w-0123456789abcdef\n")
	bare := file("bare", "# mine\nw-bare-0123456789\n")
	several := file("several", "ops-li:w-0123456789abcdef\nops-wang:w-0123456789abcdeg\n")

	for _, tt := range []struct {
		name    string
		env     map[string]string
		args    []string
		sent    string // the Authorization header
		wantErr string // a part of the error; "" = succeeds
	}{
		{"variable", map[string]string{"FENQI_ADMIN_TOKEN": "s3cret"}, nil, "Bearer s3cret", ""},
		{"named variable", map[string]string{"FENQI_ADMIN_TOKEN": "ops-li:s3cret"}, nil, "Bearer s3cret", ""},
		{"file flag", nil, []string{"--admin-token-file", named}, "Bearer w-0123456789abcdef", ""},
		{"file variable", map[string]string{"FENQI_ADMIN_TOKEN_FILE": bare}, nil, "Bearer w-bare-0123456789", ""},
		{"several tokens", nil, []string{"--admin-token-file", several}, "", "holds 2 tokens: give fenqictl one, yours"},
		{"no token", nil, nil, "", "401 Unauthorized: this route needs the header Authorization: Bearer <token> (fenqictl sent no token: set FENQI_ADMIN_TOKEN or --admin-token-file)"},
		{"--token on the command line", nil, []string{"--token", "s3cret"}, "",
			"--token: the admin token is not accepted on the command line (any local user can read it there); set FENQI_ADMIN_TOKEN in the environment or name a file holding it with --admin-token-file / FENQI_ADMIN_TOKEN_FILE"},
		{"--admin-token on the command line", nil, []string{"--admin-token=s3cret"}, "",
			"-admin-token: a secret is not accepted on the command line (any local user can read it there); set FENQI_ADMIN_TOKEN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"FENQI_API_URL": srv.URL}
			for k, v := range tt.env {
				env[k] = v
			}
			mu.Lock()
			got = nil
			mu.Unlock()
			r := runCmd(t, env, "", append([]string{"recompute", "--all"}, tt.args...)...)
			mu.Lock()
			sent := append([]string(nil), got...)
			mu.Unlock()
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", r.err, tt.wantErr)
				}
				if strings.Contains(r.err.Error()+r.stderr, "s3cret") || strings.Contains(r.err.Error()+r.stderr, "0123456789abcdef") {
					t.Fatalf("the error shows the token: %v\n%s", r.err, r.stderr)
				}
				if strings.HasPrefix(tt.name, "--") && (r.code() != 2 || len(sent) != 0) {
					t.Fatalf("exit %d after %d requests, want 2 before any", r.code(), len(sent))
				}
				return
			}
			if r.err != nil || len(sent) != 1 || sent[0] != tt.sent {
				t.Fatalf("%v; sent %q, want %q", r.err, sent, tt.sent)
			}
		})
	}
}
