package main

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/fenqi/fenqi/internal/secret"
)

// adminConfig is the admin listener's security and limits: the bearer
// tokens of its /v1 API, TLS, timeouts and caps. It is comparable (the
// tokens are kept as the text of their secret, parsed by auth).
type adminConfig struct {
	// Token and ReadToken are the secrets admin-token (the write role,
	// which may read too) and admin-read-token (read-only): one token a
	// line, each "name:token" (the operator's name, then the secret) or
	// a bare token (named "admin" / "reader"). Empty: none.
	Token, ReadToken string
	// Insecure says that the network protects the listener: with no token
	// configured, /v1 is then open to anyone who reaches it (otherwise it
	// answers 401), and a non-loopback address is accepted without one.
	Insecure bool
	// TLSCertFile and TLSKeyFile (PEM, both or neither) make the listener
	// serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// MaxConns caps the connections served at once: the next one waits
	// (in the kernel's accept queue) until one closes.
	MaxConns          int
	ReadHeaderTimeout time.Duration // to read a request's headers
	ReadTimeout       time.Duration // to read a whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	MaxHeaderBytes    int
	MaxBodyBytes      int64 // a larger request body is refused with 413
}

// defaultAdminConfig is the settings' defaults.
func defaultAdminConfig() adminConfig {
	return adminConfig{
		MaxConns:          64,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxBodyBytes:      64 << 10,
	}
}

// Identities of tokens given without a name, and of requests when the
// API is open (-admin-insecure, no token).
const (
	writerName    = "admin"
	readerName    = "reader"
	anonymousName = "anonymous"
)

// adminSecrets are the two secrets registered on a flag set, resolved
// into their adminConfig once the flags are parsed.
type adminSecrets struct {
	write, read *secret.Setting
	c           *adminConfig
}

// register adds the admin listener's settings to fs, with their defaults,
// and returns its secrets, which resolve reads once fs is parsed.
func (c *adminConfig) register(fs *flag.FlagSet) *adminSecrets {
	*c = defaultAdminConfig()
	s := &adminSecrets{c: c,
		write: secret.Register(fs, "admin-token", `the admin API's write tokens (they may read too), one a line, each "name:token" or a bare token (named "admin")`),
		read:  secret.Register(fs, "admin-read-token", `the admin API's read-only tokens, one a line, each "name:token" or a bare token (named "reader")`),
	}
	fs.BoolVar(&c.Insecure, "admin-insecure", false, "the network protects the admin listener: accept an -http-addr beyond loopback without a token, and with no token serve /v1 to anyone (without it, /v1 answers 401 until a token is set)")
	fs.StringVar(&c.TLSCertFile, "admin-tls-cert-file", "", "PEM certificate (chain) of the admin listener: serve HTTPS (with -admin-tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, "admin-tls-key-file", "", "PEM key of -admin-tls-cert-file")
	fs.IntVar(&c.MaxConns, "admin-max-conns", c.MaxConns, "most connections the admin listener serves at once; the next wait until one closes")
	fs.DurationVar(&c.ReadHeaderTimeout, "admin-read-header-timeout", c.ReadHeaderTimeout, "admin listener: how long a client may take to send a request's headers")
	fs.DurationVar(&c.ReadTimeout, "admin-read-timeout", c.ReadTimeout, "admin listener: how long a client may take to send a whole request, body included")
	fs.DurationVar(&c.WriteTimeout, "admin-write-timeout", c.WriteTimeout, "admin listener: how long an answer may take, from the end of the request's headers")
	fs.DurationVar(&c.IdleTimeout, "admin-idle-timeout", c.IdleTimeout, "admin listener: how long a keep-alive connection may wait for its next request")
	fs.IntVar(&c.MaxHeaderBytes, "admin-max-header-bytes", c.MaxHeaderBytes, "admin listener: largest request headers accepted")
	fs.Int64Var(&c.MaxBodyBytes, "admin-max-body-bytes", c.MaxBodyBytes, "admin listener: largest request body accepted (larger: 413)")
	return s
}

// resolve reads the two secrets (their -NAME-file already filled from
// FENQI_NAME_FILE by the caller's loop).
func (s *adminSecrets) resolve(getenv func(string) string) []error {
	var errs []error
	var err error
	if s.c.Token, err = s.write.Resolve(getenv, false); err != nil {
		errs = append(errs, err)
	}
	if s.c.ReadToken, err = s.read.Resolve(getenv, false); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// validate checks the settings, and refuses an httpAddr beyond loopback
// without a token unless Insecure (httpAddr "": the listener is off).
func (c *adminConfig) validate(httpAddr string) []error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("setting -%s (%s): %s", flagName, envName(flagName), fmt.Sprintf(format, a...)))
	}
	auth, authErr := c.auth()
	if authErr != nil {
		errs = append(errs, authErr)
	}
	if httpAddr != "" {
		if host, _, err := net.SplitHostPort(httpAddr); err != nil {
			bad("http-addr", "%q is not host:port (127.0.0.1:8080, or :8080 for every interface)", httpAddr)
		} else if authErr == nil && !loopback(host) && len(auth.tokens) == 0 && !c.Insecure {
			bad("http-addr", "%q is reachable from other hosts, and no admin token is set: anyone who reaches it could read and change users' credit. "+
				"Set FENQI_ADMIN_TOKEN or FENQI_ADMIN_TOKEN_FILE (and FENQI_ADMIN_READ_TOKEN[_FILE] for read-only clients), "+
				"listen on loopback (127.0.0.1:8080), or set -admin-insecure (FENQI_ADMIN_INSECURE=true) if the network protects the listener",
				httpAddr)
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		bad("admin-tls-cert-file", "a certificate needs its key: set -admin-tls-key-file")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		bad("admin-tls-key-file", "a key needs its certificate: set -admin-tls-cert-file")
	case c.TLSCertFile != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			bad("admin-tls-cert-file", "cannot load the certificate and its key (-admin-tls-key-file): %v", err)
		}
	}
	if c.MaxConns < 1 || c.MaxConns > 100_000 {
		bad("admin-max-conns", "must be 1..100000, got %d", c.MaxConns)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"admin-read-header-timeout", c.ReadHeaderTimeout}, {"admin-read-timeout", c.ReadTimeout},
		{"admin-write-timeout", c.WriteTimeout}, {"admin-idle-timeout", c.IdleTimeout},
	} {
		if d.v < time.Millisecond || d.v > time.Hour {
			bad(d.flag, "must be 1ms..1h, got %v", d.v)
		}
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		bad("admin-max-header-bytes", "must be 1 KiB..1 MiB, got %d", c.MaxHeaderBytes)
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 16<<20 {
		bad("admin-max-body-bytes", "must be 1 KiB..16 MiB, got %d", c.MaxBodyBytes)
	}
	return errs
}

// loopback reports whether a listener on host is reachable from this host
// only: "localhost" or a loopback IP. An empty host (every interface) or a
// name is not.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// adminToken is one bearer token: who holds it (the operator recorded on
// the changes made with it) and its role.
type adminToken struct {
	name  string
	sum   [sha256.Size]byte // of the secret: compared in constant time, whatever its length
	write bool
}

// adminAuth is who may call the /v1 API.
type adminAuth struct {
	tokens []adminToken
	// open: no token is configured and -admin-insecure is set: every
	// request is the anonymous writer.
	open bool
}

// auth parses the tokens. A line "name:token" names its holder (the part
// before the first ':'; so a token holding a ':' must be given with a
// name); a bare token is "admin" or "reader"; blank lines and lines
// starting with '#' are skipped. Errors name the setting, never a secret.
func (c *adminConfig) auth() (adminAuth, error) {
	var a adminAuth
	var errs []error
	seen := map[[sha256.Size]byte]bool{}
	names := map[string]string{}
	for _, role := range []struct {
		flag, text, def string
		write           bool
	}{
		{"admin-token", c.Token, writerName, true},
		{"admin-read-token", c.ReadToken, readerName, false},
	} {
		bad := func(line int, format string, args ...any) {
			errs = append(errs, fmt.Errorf("setting %s (or -%s-file): line %d: %s", secret.EnvName(role.flag), role.flag, line, fmt.Sprintf(format, args...)))
		}
		lines := strings.Split(strings.ReplaceAll(role.text, "\r\n", "\n"), "\n")
		for i, line := range lines {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, tok, ok := strings.Cut(line, ":")
			if !ok {
				name, tok = role.def, line
			}
			switch {
			case !validName(name):
				bad(i+1, `the name before ':' must be 1 to 64 letters, digits or ._@- (a token holding ':' is given as "name:token")`)
				continue
			case len(tok) < 16:
				bad(i+1, "the token must be at least 16 bytes, got %d", len(tok))
				continue
			case strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
				bad(i+1, "the token must be printable ASCII without spaces (it goes in an HTTP header)")
				continue
			}
			sum := sha256.Sum256([]byte(tok))
			if seen[sum] {
				bad(i+1, "the same token is given twice (each holder, and each role, needs a token of its own)")
				continue
			}
			if other, dup := names[name]; dup {
				bad(i+1, "the name %q is also given to another token (in %s)", name, other)
				continue
			}
			seen[sum], names[name] = true, secret.EnvName(role.flag)
			a.tokens = append(a.tokens, adminToken{name: name, sum: sum, write: role.write})
		}
	}
	if len(errs) > 0 {
		return adminAuth{}, errors.Join(errs...)
	}
	a.open = len(a.tokens) == 0 && c.Insecure
	return a, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return false
		}
	}
	return true
}

// listen opens the admin listener on addr, serving at most MaxConns
// connections at once (the next wait in the accept queue).
func (c *adminConfig) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", addr, err)
	}
	if c.MaxConns > 0 {
		ln = netutil.LimitListener(ln, c.MaxConns)
	}
	return ln, nil
}

// server is the http.Server of h with the timeouts and caps, and the TLS
// certificate when one is set (loaded once: restart to rotate it). Its
// own errors (a failed TLS handshake, a handler's panic) go to log.
func (c *adminConfig) server(h http.Handler, log *slog.Logger) (*http.Server, error) {
	srv := &http.Server{
		Handler:           h,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("setting -admin-tls-cert-file (FENQI_ADMIN_TLS_CERT_FILE): %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return srv, nil
}
