package conn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/fenqi/fenqi/internal/secret"
)

// TLS is the client side of a TLS connection. The files are PEM.
type TLS struct {
	Enabled bool
	// CAFile holds the CA certificates the server's certificate must be
	// signed by; "" = the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, for
	// servers that authenticate clients by certificate (mTLS): both or
	// neither.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must be for; "" =
	// the host of the address dialled.
	ServerName string
}

// Problem is one bad setting, named by its flag.
type Problem struct {
	Flag string // e.g. "kafka-tls-cert-file"
	Msg  string // what is wrong, never a secret
}

// Error says "setting -FLAG (FENQI_FLAG): Msg", as fenqid names settings.
func (p Problem) Error() string {
	return fmt.Sprintf("setting -%s (%s): %s", p.Flag, secret.EnvName(p.Flag), p.Msg)
}

// joinProblems is nil without problems, else their errors.Join.
func joinProblems(ps []Problem) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// config builds the client TLS configuration: nil when TLS is off.
// Problems name the flags of prefix ("kafka" for -kafka-tls-*).
func (t TLS) config(prefix string) (*tls.Config, []Problem) {
	flag := func(name string) string { return prefix + "-tls" + name }
	var ps []Problem
	if !t.Enabled {
		for _, f := range []struct{ name, v string }{
			{"-ca-file", t.CAFile}, {"-cert-file", t.CertFile}, {"-key-file", t.KeyFile}, {"-server-name", t.ServerName},
		} {
			if f.v != "" {
				ps = append(ps, Problem{flag(f.name), fmt.Sprintf("given while -%s is off: turn it on (%s=true) or drop this setting", flag(""), secret.EnvName(flag("")))})
			}
		}
		return nil, ps
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		switch {
		case err != nil:
			ps = append(ps, Problem{flag("-ca-file"), fmt.Sprintf("cannot read the CA file: %v", err)})
		default:
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				ps = append(ps, Problem{flag("-ca-file"), fmt.Sprintf("%s holds no PEM certificate", t.CAFile)})
			}
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		ps = append(ps, Problem{flag("-cert-file"), fmt.Sprintf("a client certificate needs its key: set -%s", flag("-key-file"))})
	case t.CertFile == "" && t.KeyFile != "":
		ps = append(ps, Problem{flag("-key-file"), fmt.Sprintf("a client key needs its certificate: set -%s", flag("-cert-file"))})
	case t.CertFile != "":
		// The errors of LoadX509KeyPair name files and formats, never
		// the key's bytes.
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			ps = append(ps, Problem{flag("-cert-file"), fmt.Sprintf("cannot load the certificate %s with the key %s: %v", t.CertFile, t.KeyFile, err)})
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}
