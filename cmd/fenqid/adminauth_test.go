package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn/conntest"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
)

// The tests' tokens: a named write token and a named read-only one.
const (
	testWriter      = "ops-li"
	testReader      = "audit-zhao"
	testWriteSecret = "w-0123456789abcdef"
	testReadSecret  = "r-0123456789abcdef"
	writeAuth       = "Bearer " + testWriteSecret
	readAuth        = "Bearer " + testReadSecret
)

// testAdminConfig is the defaults with the test tokens.
func testAdminConfig() adminConfig {
	c := defaultAdminConfig()
	c.Token = testWriter + ":" + testWriteSecret
	c.ReadToken = testReader + ":" + testReadSecret
	return c
}

// adminSettings are the admin listener's settings for the settings table
// of config_test.go (each with the others it needs; files made for t).
func adminSettings(t *testing.T) []withSettings {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wf := file("write", "ops-li:"+testWriteSecret)
	rf := file("read", testReadSecret)
	pki := conntest.New(t)
	tlsOn := func(c *config) { c.Admin.TLSCertFile, c.Admin.TLSKeyFile = pki.ServerCertFile, pki.ServerKeyFile }
	s := func(flag, value string, set func(*config), with ...string) withSettings {
		return withSettings{setting{flag, value, set}, with}
	}
	return []withSettings{
		s("admin-token-file", wf, func(c *config) { c.Admin.Token = "ops-li:" + testWriteSecret }),
		s("admin-read-token-file", rf, func(c *config) { c.Admin.ReadToken = testReadSecret }),
		s("admin-insecure", "true", func(c *config) { c.Admin.Insecure = true }),
		s("admin-tls-cert-file", pki.ServerCertFile, tlsOn, "admin-tls-key-file="+pki.ServerKeyFile),
		s("admin-tls-key-file", pki.ServerKeyFile, tlsOn, "admin-tls-cert-file="+pki.ServerCertFile),
		s("admin-max-conns", "8", func(c *config) { c.Admin.MaxConns = 8 }),
		s("admin-read-header-timeout", "2s", func(c *config) { c.Admin.ReadHeaderTimeout = 2 * time.Second }),
		s("admin-read-timeout", "20s", func(c *config) { c.Admin.ReadTimeout = 20 * time.Second }),
		s("admin-write-timeout", "1m", func(c *config) { c.Admin.WriteTimeout = time.Minute }),
		s("admin-idle-timeout", "2m", func(c *config) { c.Admin.IdleTimeout = 2 * time.Minute }),
		s("admin-max-header-bytes", "8192", func(c *config) { c.Admin.MaxHeaderBytes = 8192 }),
		s("admin-max-body-bytes", "1048576", func(c *config) { c.Admin.MaxBodyBytes = 1 << 20 }),
	}
}

func TestAdminDefaults(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := adminConfig{
		MaxConns: 64, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10, MaxBodyBytes: 64 << 10,
	}
	if c.Admin != want || c.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("admin defaults %+v on %q, want %+v on 127.0.0.1:8080", c.Admin, c.HTTPAddr, want)
	}
}

// The tokens come from a variable or a file, never the command line.
func TestAdminTokenSources(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("ops-li:"+testWriteSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		args      []string
		env       env
		token     string
		wantError string
	}{
		{"variable", nil, env{"FENQI_ADMIN_TOKEN": testWriteSecret}, testWriteSecret, ""},
		{"file variable", nil, env{"FENQI_ADMIN_TOKEN_FILE": file}, "ops-li:" + testWriteSecret, ""},
		{"file flag", []string{"-admin-token-file", file}, nil, "ops-li:" + testWriteSecret, ""},
		{"both", nil, env{"FENQI_ADMIN_TOKEN_FILE": file, "FENQI_ADMIN_TOKEN": testWriteSecret}, "",
			"FENQI_ADMIN_TOKEN and FENQI_ADMIN_TOKEN_FILE are both set: keep one"},
		{"write token on the command line", []string{"-admin-token", testWriteSecret}, nil, "",
			"-admin-token: a secret is not accepted on the command line (any local user can read it there); set FENQI_ADMIN_TOKEN in the environment or name a file with -admin-token-file / FENQI_ADMIN_TOKEN_FILE"},
		{"read token on the command line", []string{"-admin-read-token=" + testReadSecret}, nil, "",
			"-admin-read-token: a secret is not accepted on the command line (any local user can read it there); set FENQI_ADMIN_READ_TOKEN in the environment or name a file with -admin-read-token-file / FENQI_ADMIN_READ_TOKEN_FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, tt.args, tt.env)
			if tt.wantError != "" {
				if err == nil || err.Error() != tt.wantError {
					t.Fatalf("error %v, want %q", err, tt.wantError)
				}
				if strings.Contains(err.Error(), testWriteSecret) || strings.Contains(err.Error(), testReadSecret) {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || c.Admin.Token != tt.token {
				t.Fatalf("token %q, %v; want %q", c.Admin.Token, err, tt.token)
			}
		})
	}
}

// A token is "name:token" or a bare token; errors name the setting and
// the line, never the secret.
func TestAdminTokenParsing(t *testing.T) {
	t.Parallel()
	type holder struct {
		name  string
		write bool
	}
	for _, tt := range []struct {
		name         string
		write, read  string
		want         []holder
		wantErrParts []string
	}{
		{"bare tokens", testWriteSecret, testReadSecret, []holder{{writerName, true}, {readerName, false}}, nil},
		{"named tokens", "ops-li:" + testWriteSecret, "audit@corp:" + testReadSecret, []holder{{"ops-li", true}, {"audit@corp", false}}, nil},
		{"one a line, comments and blanks skipped",
			"# operators\nops-li:" + testWriteSecret + "\r\n\nops-wang:" + testWriteSecret + "-2\n", "",
			[]holder{{"ops-li", true}, {"ops-wang", true}}, nil},
		{"a colon in the token is kept", "ops-li:" + testWriteSecret + ":x", "", []holder{{"ops-li", true}}, nil},
		{"short token", "ops-li:short", "", nil,
			[]string{"setting FENQI_ADMIN_TOKEN (or -admin-token-file): line 1: the token must be at least 16 bytes, got 5"}},
		{"bad name", "ops li:" + testWriteSecret, "", nil,
			[]string{"setting FENQI_ADMIN_TOKEN (or -admin-token-file): line 1: the name before ':' must be"}},
		{"space in token", "ops-li:" + testWriteSecret + " x", "", nil,
			[]string{"line 1: the token must be printable ASCII without spaces"}},
		{"one token for both roles", testWriteSecret, "reader-x:" + testWriteSecret, nil,
			[]string{"setting FENQI_ADMIN_READ_TOKEN (or -admin-read-token-file): line 1: the same token is given twice"}},
		{"two bare write tokens", testWriteSecret + "\n" + testWriteSecret + "-2", "", nil,
			[]string{`line 2: the name "admin" is also given to another token (in FENQI_ADMIN_TOKEN)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := defaultAdminConfig()
			c.Token, c.ReadToken = tt.write, tt.read
			a, err := c.auth()
			if tt.wantErrParts != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", a)
				}
				for _, p := range tt.wantErrParts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not contain %q", err, p)
					}
				}
				if strings.Contains(err.Error(), testWriteSecret) {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []holder
			for _, tk := range a.tokens {
				got = append(got, holder{tk.name, tk.write})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("holders %v, want %v", got, tt.want)
			}
		})
	}
}

// fenqid refuses an admin address beyond loopback without a token, unless
// told the network protects it.
func TestAdminAddressNeedsAToken(t *testing.T) {
	t.Parallel()
	refusal := func(addr string) string {
		return fmt.Sprintf("setting -http-addr (FENQI_HTTP_ADDR): %q is reachable from other hosts, and no admin token is set", addr)
	}
	for _, tt := range []struct {
		name string
		args []string
		env  env
		want string // a part of the error; "" = accepted
	}{
		{"default (loopback)", nil, nil, ""},
		{"every interface", []string{"-http-addr", ":8080"}, nil, refusal(":8080")},
		{"every interface, variable", nil, env{"FENQI_HTTP_ADDR": "0.0.0.0:8080"}, refusal("0.0.0.0:8080")},
		{"a private address", []string{"-http-addr", "10.0.0.5:8080"}, nil, refusal("10.0.0.5:8080")},
		{"a host name", []string{"-http-addr", "fenqid.internal:8080"}, nil, refusal("fenqid.internal:8080")},
		{"IPv6 every interface", []string{"-http-addr", "[::]:8080"}, nil, refusal("[::]:8080")},
		{"localhost", []string{"-http-addr", "localhost:8080"}, nil, ""},
		{"IPv6 loopback", []string{"-http-addr", "[::1]:8080"}, nil, ""},
		{"off", []string{"-http-addr="}, nil, ""},
		{"with a write token", []string{"-http-addr", ":8080"}, env{"FENQI_ADMIN_TOKEN": testWriteSecret}, ""},
		{"with a read token only", []string{"-http-addr", ":8080"}, env{"FENQI_ADMIN_READ_TOKEN": testReadSecret}, ""},
		{"insecure on purpose", []string{"-http-addr", ":8080", "-admin-insecure"}, nil, ""},
		{"insecure on purpose, variable", nil, env{"FENQI_HTTP_ADDR": ":8080", "FENQI_ADMIN_INSECURE": "true"}, ""},
		{"not host:port", []string{"-http-addr", "8080"}, nil, `setting -http-addr (FENQI_HTTP_ADDR): "8080" is not host:port`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parse(t, tt.args, tt.env)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			case strings.Contains(tt.want, "reachable") && !strings.Contains(err.Error(), "-admin-insecure"):
				t.Errorf("the refusal does not say how to override it: %v", err)
			}
		})
	}
}

func TestAdminSettingErrors(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no connection", []string{"-admin-max-conns", "0"}, "setting -admin-max-conns (FENQI_ADMIN_MAX_CONNS): must be 1..100000, got 0"},
		{"no header time", []string{"-admin-read-header-timeout", "0s"}, "setting -admin-read-header-timeout (FENQI_ADMIN_READ_HEADER_TIMEOUT): must be 1ms..1h, got 0s"},
		{"no read time", []string{"-admin-read-timeout", "0s"}, "setting -admin-read-timeout (FENQI_ADMIN_READ_TIMEOUT): must be 1ms..1h, got 0s"},
		{"no write time", []string{"-admin-write-timeout", "2h"}, "setting -admin-write-timeout (FENQI_ADMIN_WRITE_TIMEOUT): must be 1ms..1h, got 2h0m0s"},
		{"no idle time", []string{"-admin-idle-timeout", "0s"}, "setting -admin-idle-timeout (FENQI_ADMIN_IDLE_TIMEOUT): must be 1ms..1h, got 0s"},
		{"tiny headers", []string{"-admin-max-header-bytes", "100"}, "setting -admin-max-header-bytes (FENQI_ADMIN_MAX_HEADER_BYTES): must be 1 KiB..1 MiB, got 100"},
		{"tiny bodies", []string{"-admin-max-body-bytes", "100"}, "setting -admin-max-body-bytes (FENQI_ADMIN_MAX_BODY_BYTES): must be 1 KiB..16 MiB, got 100"},
		{"certificate without key", []string{"-admin-tls-cert-file", pki.ServerCertFile}, "setting -admin-tls-cert-file (FENQI_ADMIN_TLS_CERT_FILE): a certificate needs its key: set -admin-tls-key-file"},
		{"key without certificate", []string{"-admin-tls-key-file", pki.ServerKeyFile}, "setting -admin-tls-key-file (FENQI_ADMIN_TLS_KEY_FILE): a key needs its certificate: set -admin-tls-cert-file"},
		{"key of another certificate", []string{"-admin-tls-cert-file", pki.ServerCertFile, "-admin-tls-key-file", pki.ClientKeyFile},
			"setting -admin-tls-cert-file (FENQI_ADMIN_TLS_CERT_FILE): cannot load the certificate and its key (-admin-tls-key-file): tls: private key does not match public key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parse(t, tt.args, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// answer is a reply of the admin listener as a client sees it.
type answer struct {
	status    int
	challenge string // WWW-Authenticate
	errMsg    string // the JSON body's "error"
	body      string
}

func (e *adminEnv) call(t *testing.T, method, path, auth, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), body: string(b)}
	var e2 struct{ Error string }
	if json.Unmarshal(b, &e2) == nil {
		a.errMsg = e2.Error
	}
	return a
}

// Every route with no token, a wrong one, the read-only one and the write
// one. Reads and writes go through the real handler and Redis; the
// refused writes change nothing.
func TestAdminRouteRoles(t *testing.T) {
	t.Parallel()
	kafka := testenv.Kafka(t)
	e := newAdmin(t, testenv.Redis(t), kafka.Addrs())
	e.admin.metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "m 1\n") })
	srv := httptest.NewServer(e.admin.handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.apply(t, history("u-r", adminNow))
	e.recompute(t) // the quota an offer draws on

	override := `{"quota_fen":100000,"reason":"review","expires_at":"2037-01-01T00:00:00Z"}`
	const (
		none, wrong, read, write = 0, 1, 2, 3
	)
	auths := []string{"", "Bearer not-a-token-of-fenqid", readAuth, writeAuth}
	routes := []struct {
		method, path, body string
		want               [4]int // by auth: none, wrong, read, write
	}{
		{"GET", "/healthz", "", [4]int{200, 200, 200, 200}},
		{"GET", "/readyz", "", [4]int{200, 200, 200, 200}},
		{"GET", "/metrics", "", [4]int{200, 200, 200, 200}},
		{"GET", "/v1/users/u-r/quota", "", [4]int{401, 401, 200, 200}},
		{"GET", "/v1/users/u-r/quota?check=1", "", [4]int{401, 401, 400, 400}},
		{"GET", "/v1/users/u-r/offer?amount_fen=100000&periods=3", "", [4]int{401, 401, 200, 200}},
		{"GET", "/v1/epochs", "", [4]int{401, 401, 200, 200}},
		{"POST", "/v1/users/u-r/quota/check", "", [4]int{401, 401, 403, 202}},
		{"PUT", "/v1/users/u-r/override", override, [4]int{401, 401, 403, 202}},
		{"DELETE", "/v1/users/u-r/override", "", [4]int{401, 401, 403, 202}},
		{"PUT", "/v1/users/u-r/special-quota", override, [4]int{401, 401, 403, 202}},
		{"DELETE", "/v1/users/u-r/special-quota", "", [4]int{401, 401, 403, 202}},
		{"POST", "/v1/recompute", "", [4]int{401, 401, 403, 200}},
		{"POST", "/v1/epochs/" + events.TopicLogins, "", [4]int{401, 401, 403, 200}},
		{"GET", "/v1/nothing", "", [4]int{401, 401, 404, 404}},
		{"PATCH", "/v1/users/u-r/override", "", [4]int{401, 401, 405, 405}},
	}
	ctx := context.Background()
	// The write token last, so that the state before shows that no
	// refused request changed it.
	for _, who := range []int{none, wrong, read, write} {
		for _, r := range routes {
			a := e.call(t, r.method, r.path, auths[who], r.body)
			if a.status != r.want[who] {
				t.Errorf("%s %s with %q: %d %s, want %d", r.method, r.path, auths[who], a.status, a.body, r.want[who])
				continue
			}
			switch a.status {
			case http.StatusUnauthorized:
				wantChallenge := `Bearer realm="fenqid admin"`
				if who == wrong {
					wantChallenge += `, error="invalid_token"`
				}
				if a.challenge != wantChallenge || a.errMsg == "" {
					t.Errorf("%s %s with %q: challenge %q, error %q; want %q and a JSON error", r.method, r.path, auths[who], a.challenge, a.errMsg, wantChallenge)
				}
			case http.StatusForbidden:
				if a.challenge != `Bearer realm="fenqid admin", error="insufficient_scope"` ||
					a.errMsg != testReader+" holds a read-only token: this route changes state and needs a write token (FENQI_ADMIN_TOKEN)" {
					t.Errorf("%s %s read-only: challenge %q, error %q", r.method, r.path, a.challenge, a.errMsg)
				}
			}
		}
		if who == read {
			u, err := e.store.User(ctx, "u-r")
			if err != nil {
				t.Fatal(err)
			}
			eps, err := e.store.Epochs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if u.Override != nil || len(eps) != 0 {
				t.Fatalf("refused writes changed the state: override %+v, epochs %v", u.Override, eps)
			}
		}
	}
}

// A GET naming a check is refused with a message saying to POST; the
// POST counts it.
func TestQuotaCheckIsAPost(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-c", adminNow))
	penalty := func(r credit.Result) float64 {
		for _, f := range r.Factors {
			if f.Name == credit.FactorQuotaChecks {
				return f.Contribution
			}
		}
		return 0
	}
	for range 10 {
		a := e.call(t, http.MethodGet, "/v1/users/u-c/quota?check=1", writeAuth, "")
		if a.status != http.StatusBadRequest || !strings.Contains(a.errMsg, "POST /v1/users/{id}/quota/check") {
			t.Fatalf("GET ?check=1: %d %q, want 400 saying to POST", a.status, a.errMsg)
		}
	}
	if p := penalty(e.quota(t, "u-c").Evaluation); p != 0 {
		t.Fatalf("refused GET checks were counted: penalty %v", p)
	}
	var last credit.Result
	for range 10 {
		a := e.call(t, http.MethodPost, "/v1/users/u-c/quota/check", writeAuth, "")
		var q quotaBody
		if a.status != http.StatusAccepted || json.Unmarshal([]byte(a.body), &q) != nil || q.UserID != "u-c" {
			t.Fatalf("POST check: %d %s", a.status, a.body)
		}
		last = q.Evaluation
	}
	if penalty(last) >= 0 {
		t.Fatalf("10 POSTed checks: penalty %v, want < 0", penalty(last))
	}
}

// The operator of an override is the token's holder: the body's operator
// is ignored.
func TestOverrideOperatorIsTheTokenHolder(t *testing.T) {
	t.Parallel()
	conf := testAdminConfig()
	conf.Token = "ops-li:" + testWriteSecret + "\n" + testWriteSecret + "-bare" // a named and a bare token
	e := newAdminWith(t, testenv.Redis(t), nil, conf)
	for _, tt := range []struct {
		auth, claimed, want string
	}{
		{writeAuth, "", "ops-li"},
		{writeAuth, "ops-li", "ops-li"},
		{writeAuth, "ops-wang", "ops-li"},
		{"Bearer " + testWriteSecret + "-bare", "ops-wang", writerName},
	} {
		body := fmt.Sprintf(`{"quota_fen":123400,"reason":"review","operator":%q,"expires_at":"2037-01-01T00:00:00Z"}`, tt.claimed)
		a := e.call(t, http.MethodPut, "/v1/users/u-op/override", tt.auth, body)
		var ov state.Override
		if a.status != http.StatusAccepted || json.Unmarshal([]byte(a.body), &ov) != nil || ov.Operator != tt.want {
			t.Errorf("claimed %q: %d %s, want operator %q", tt.claimed, a.status, a.body, tt.want)
		}
		r := e.quota(t, "u-op").Evaluation
		if r.Override == nil || r.Override.Operator != tt.want {
			t.Errorf("claimed %q: stored override %+v, want operator %q", tt.claimed, r.Override, tt.want)
		}
	}
}

// Without a token, /v1 is locked, unless -admin-insecure opens it (to an
// anonymous writer); with a token, -admin-insecure opens nothing.
func TestAdminWithoutToken(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	override := `{"quota_fen":1,"reason":"x","operator":"ops-wang","expires_at":"2037-01-01T00:00:00Z"}`

	locked := newAdminWith(t, rdb, nil, defaultAdminConfig())
	for _, auth := range []string{"", writeAuth} {
		a := locked.call(t, http.MethodGet, "/v1/users/u-n/quota", auth, "")
		if a.status != http.StatusUnauthorized || !strings.Contains(a.errMsg, "the admin API is locked: fenqid has no admin token") ||
			a.challenge == "" {
			t.Errorf("locked, %q: %d %q %q", auth, a.status, a.challenge, a.errMsg)
		}
	}
	if a := locked.call(t, http.MethodGet, "/healthz", "", ""); a.status != http.StatusOK {
		t.Errorf("locked: /healthz %d", a.status)
	}

	conf := defaultAdminConfig()
	conf.Insecure = true
	open := newAdminWith(t, rdb, nil, conf)
	if a := open.call(t, http.MethodGet, "/v1/users/u-n/quota", "", ""); a.status != http.StatusOK {
		t.Errorf("insecure: quota %d %s", a.status, a.body)
	}
	a := open.call(t, http.MethodPut, "/v1/users/u-n/override", "", override)
	var ov state.Override
	if a.status != http.StatusAccepted || json.Unmarshal([]byte(a.body), &ov) != nil || ov.Operator != anonymousName {
		t.Errorf("insecure: override %d %s, want operator %q", a.status, a.body, anonymousName)
	}

	conf = testAdminConfig()
	conf.Insecure = true
	tokens := newAdminWith(t, rdb, nil, conf)
	if a := tokens.call(t, http.MethodGet, "/v1/users/u-n/quota", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("insecure with tokens, no token sent: %d, want 401", a.status)
	}
}

// listening serves the admin listener of e with conf on a loopback port of
// its own, as fenqid does (limits, timeouts, TLS), and returns its address.
func (e *adminEnv) listening(t *testing.T, conf adminConfig) string {
	t.Helper()
	a := *e.admin
	a.conf = conf
	a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := conf.listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serveOn(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// dialRaw opens a TCP connection to addr, closed with the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reports whether the server closes c (or answers and then
// closes it) within d, and what it sent.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) (bool, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

func TestAdminTimeouts(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)

	t.Run("body trickled", func(t *testing.T) {
		t.Parallel()
		conf := testAdminConfig()
		conf.ReadTimeout = 300 * time.Millisecond
		addr := e.listening(t, conf)
		c := dialRaw(t, addr)
		body := `{"quota_fen":1,"reason":"a slow client","expires_at":"2037-01-01T00:00:00Z"}`
		fmt.Fprintf(c, "PUT /v1/users/u-slow/override HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", writeAuth, len(body))
		start := time.Now()
		go func() { // a byte every 50 ms: 4 s for the body
			for i := range len(body) {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		closed, got := closedWithin(t, c, 2*time.Second)
		if !closed || !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "not received within -admin-read-timeout") {
			t.Fatalf("after %v: closed %v, answer %q; want a 408 and the connection closed", time.Since(start), closed, got)
		}
		if u, err := e.store.User(context.Background(), "u-slow"); err != nil || u.Override != nil {
			t.Fatalf("override of the cut-off request: %+v, %v", u.Override, err)
		}
	})

	t.Run("headers trickled", func(t *testing.T) {
		t.Parallel()
		conf := testAdminConfig()
		conf.ReadHeaderTimeout = 200 * time.Millisecond
		addr := e.listening(t, conf)
		c := dialRaw(t, addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the end of the headers
		if closed, got := closedWithin(t, c, 2*time.Second); !closed || strings.Contains(got, "200 OK") {
			t.Fatalf("closed %v, answer %q; want the connection closed unanswered", closed, got)
		}
	})

	t.Run("idle keep-alive closed", func(t *testing.T) {
		t.Parallel()
		conf := testAdminConfig()
		conf.IdleTimeout = 200 * time.Millisecond
		addr := e.listening(t, conf)
		c := dialRaw(t, addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("first request: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: %v after %v, want it closed (EOF)", err, time.Since(start))
		}
	})

	t.Run("connection cap", func(t *testing.T) {
		t.Parallel()
		conf := testAdminConfig()
		conf.MaxConns = 2
		addr := e.listening(t, conf)
		// Two connections that send nothing hold the two places.
		held := []net.Conn{dialRaw(t, addr), dialRaw(t, addr)}
		get := func() error {
			client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get("http://" + addr + "/healthz")
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		if err := get(); err == nil {
			t.Fatal("a third connection was served while two were held")
		}
		_ = held[0].Close()
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := get()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a place freed, and still: %v", err)
			}
		}
	})

	t.Run("body too large", func(t *testing.T) {
		t.Parallel()
		conf := testAdminConfig()
		conf.MaxBodyBytes = 1024
		addr := e.listening(t, conf)
		env := &adminEnv{admin: e.admin, store: e.store, clock: e.clock, url: "http://" + addr}
		body := `{"quota_fen":1,"reason":"` + strings.Repeat("x", 2000) + `","expires_at":"2037-01-01T00:00:00Z"}`
		a := env.call(t, http.MethodPut, "/v1/users/u-big/override", writeAuth, body)
		if a.status != http.StatusRequestEntityTooLarge || a.errMsg != "override body: larger than 1024 bytes (-admin-max-body-bytes)" {
			t.Fatalf("%d %q, want 413", a.status, a.errMsg)
		}
	})
}

// With a certificate the listener serves HTTPS only.
func TestAdminTLS(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	pki := conntest.New(t)
	conf := testAdminConfig()
	conf.TLSCertFile, conf.TLSKeyFile = pki.ServerCertFile, pki.ServerKeyFile
	addr := e.listening(t, conf)
	ca, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/v1/epochs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", readAuth)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
	if err == nil {
		_ = plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served")
		}
	}
}
