package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fenqi/fenqi/internal/secret"
)

// defaultAPI is where fenqid's admin listener is (its -http-addr default).
const defaultAPI = "http://localhost:8080"

// maxAPIBody bounds what is read of one admin API answer.
const maxAPIBody = 8 << 20

// api registers --api (FENQI_API_URL), the admin token and --timeout.
// The token is the secret admin-token: FENQI_ADMIN_TOKEN, or a file named
// by --admin-token-file / FENQI_ADMIN_TOKEN_FILE (fenqid's format: one
// "name:token" or a bare token; the name is not sent). --admin-token and
// the old --token are refused: a command line is readable by any local
// user.
func (f *flags) api(base *string, timeout *time.Duration) {
	f.StringVar(base, "api", defaultAPI, "base URL of fenqid's admin listener, its -http-addr (env FENQI_API_URL)")
	f.env["api"] = "FENQI_API_URL"
	f.token.setting = secret.Register(f.FlagSet, "admin-token",
		"the bearer token of fenqid's admin API (a write token for changes; a read-only one does for explain, offer and listing epochs)")
	f.Var(&f.token.old, "token", "not accepted (a command line is readable by any local user): set FENQI_ADMIN_TOKEN or --admin-token-file")
	f.DurationVar(timeout, "timeout", 10*time.Second, "how long to wait for fenqid's answer")
}

// adminToken is the admin API's bearer token of a command: registered by
// api, resolved by parse.
type adminToken struct {
	setting *secret.Setting // nil: the command does not call the API
	old     refusedFlag     // --token
	value   string          // the secret sent as Authorization: Bearer
}

// refusedFlag is a flag that is only remembered as given, and refused
// afterwards (its value, a secret, is never shown).
type refusedFlag struct{ given bool }

func (r *refusedFlag) String() string   { return "" }
func (r *refusedFlag) Set(string) error { r.given = true; return nil }

// resolve reads the token once the flags are parsed.
func (t *adminToken) resolve(getenv func(string) string) error {
	if t.setting == nil {
		return nil
	}
	if t.old.given {
		return errors.New("--token: the admin token is not accepted on the command line (any local user can read it there); " +
			"set FENQI_ADMIN_TOKEN in the environment or name a file holding it with --admin-token-file / FENQI_ADMIN_TOKEN_FILE")
	}
	v, err := t.setting.Resolve(getenv, true)
	if err != nil {
		return err
	}
	t.value, err = bearerOf(v)
	return err
}

// bearerOf is the secret to send of a token as fenqid reads it: one line
// (blank lines and '#' comments aside), "name:token" or a bare token.
func bearerOf(v string) (string, error) {
	var lines []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return "", nil
	case 1:
		if _, tok, ok := strings.Cut(lines[0], ":"); ok {
			return tok, nil
		}
		return lines[0], nil
	default:
		return "", fmt.Errorf("FENQI_ADMIN_TOKEN (or --admin-token-file) holds %d tokens: give fenqictl one, yours", len(lines))
	}
}

// apiClient calls fenqid's admin API.
type apiClient struct {
	base  *url.URL
	http  *http.Client
	token string
}

// newAPIClient checks --api and --timeout; the token (when set) is sent
// with every request.
func newAPIClient(base string, token adminToken, timeout time.Duration) (*apiClient, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	switch {
	case err != nil:
		return nil, usageErrorf("--api: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, usageErrorf("--api: %q is not an http:// or https:// URL", base)
	case u.Host == "":
		return nil, usageErrorf("--api: %q names no host", base)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, usageErrorf("--api: %q: give the base URL only, without a query", base)
	case timeout <= 0:
		return nil, usageErrorf("--timeout must be > 0, got %v", timeout)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &apiClient{base: u, http: &http.Client{Timeout: timeout}, token: token.value}, nil
}

// url is {api}{path}?query, path given escaped.
func (a *apiClient) url(escapedPath string, query url.Values) string {
	u := *a.base
	u.RawPath = a.base.EscapedPath() + escapedPath
	u.Path, _ = url.PathUnescape(u.RawPath) // escaped by this package: valid
	u.RawQuery = query.Encode()
	return u.String()
}

// userURL is {api}/v1/users/{user}/{what}?query, the user id escaped.
func (a *apiClient) userURL(user, what string, query url.Values) string {
	return a.url("/v1/users/"+url.PathEscape(user)+"/"+what, query)
}

// apiError is an answer of the admin API other than 200 OK.
type apiError struct {
	Status int
	Msg    string          // the body's "error", else the body's text
	Body   json.RawMessage // the whole body when it is JSON
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// get fetches url and returns the body of a 200 answer; any other status
// is an *apiError (with the body, for --json).
func (a *apiClient) get(ctx context.Context, rawURL string) ([]byte, error) {
	return a.do(ctx, http.MethodGet, rawURL, nil)
}

// do sends a request with an optional JSON body; see get.
func (a *apiClient) do(ctx context.Context, method, rawURL string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is fenqid running, with its admin listener (-http-addr) at --api %s?)", err, a.base)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, rawURL, err)
	}
	body = answer
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted { // 202: an operator event accepted
		return body, nil
	}
	ae := &apiError{Status: resp.StatusCode, Msg: strings.TrimSpace(string(body))}
	var e struct {
		Error string `json:"error"`
	}
	if json.Valid(body) {
		ae.Body = body
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			ae.Msg = e.Error
		}
	}
	if ae.Msg == "" {
		ae.Msg = "(empty answer)"
	}
	if ae.Status == http.StatusUnauthorized && a.token == "" {
		ae.Msg += " (fenqictl sent no token: set FENQI_ADMIN_TOKEN or --admin-token-file)"
	}
	return nil, ae
}

// decodeBody decodes a 200 answer, naming the request when it is not what
// fenqictl expects (a different service at --api, or a fenqid too old).
func decodeBody(method, rawURL string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		snippet := string(body)
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		return fmt.Errorf("%s %s: not the answer of fenqid's admin API: %w: %s", method, rawURL, err, snippet)
	}
	return nil
}

// printRaw writes a JSON body as it came, ending with a newline.
func printRaw(w io.Writer, body []byte) error {
	if _, err := w.Write(body); err != nil {
		return err
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

// rawErrorBody is the JSON body of an *apiError, if any.
func rawErrorBody(err error) ([]byte, bool) {
	var ae *apiError
	if errors.As(err, &ae) && len(ae.Body) > 0 {
		return ae.Body, true
	}
	return nil, false
}
