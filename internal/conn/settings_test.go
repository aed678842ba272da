package conn_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
)

func TestKafkaProblems(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	on := func(t conn.TLS) conn.TLS { t.Enabled = true; return t }
	scram := conn.SASL{Mechanism: conn.ScramSHA256, Username: "u", Password: "s3cret"}
	for _, c := range []struct {
		name string
		k    conn.Kafka
		want []string // "flag: part of the message", one a problem
	}{
		{"none", conn.Kafka{}, nil},
		{"TLS, system roots", conn.Kafka{TLS: on(conn.TLS{})}, nil},
		{"mTLS and SCRAM", conn.Kafka{TLS: on(conn.TLS{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, ServerName: "kafka"}), SASL: scram}, nil},
		{"SASL without TLS", conn.Kafka{SASL: conn.SASL{Mechanism: "plain", Username: "u", Password: "s3cret"}}, nil},
		{"files while TLS is off", conn.Kafka{TLS: conn.TLS{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, ServerName: "kafka"}}, []string{
			"kafka-tls-ca-file: given while -kafka-tls is off: turn it on (FENQI_KAFKA_TLS=true) or drop this setting",
			"kafka-tls-cert-file: given while -kafka-tls is off",
			"kafka-tls-key-file: given while -kafka-tls is off",
			"kafka-tls-server-name: given while -kafka-tls is off"}},
		{"cert without key", conn.Kafka{TLS: on(conn.TLS{CertFile: pki.ClientCertFile})}, []string{
			"kafka-tls-cert-file: a client certificate needs its key: set -kafka-tls-key-file"}},
		{"key without cert", conn.Kafka{TLS: on(conn.TLS{KeyFile: pki.ClientKeyFile})}, []string{
			"kafka-tls-key-file: a client key needs its certificate: set -kafka-tls-cert-file"}},
		{"key of another certificate", conn.Kafka{TLS: on(conn.TLS{CertFile: pki.ClientCertFile, KeyFile: pki.ServerKeyFile})}, []string{
			"kafka-tls-cert-file: cannot load the certificate " + pki.ClientCertFile + " with the key " + pki.ServerKeyFile + ": tls: private key does not match public key"}},
		{"missing CA file", conn.Kafka{TLS: on(conn.TLS{CAFile: filepath.Join(dir, "nope.pem")})}, []string{
			"kafka-tls-ca-file: cannot read the CA file: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"}},
		{"CA file without PEM", conn.Kafka{TLS: on(conn.TLS{CAFile: notPEM})}, []string{
			"kafka-tls-ca-file: " + notPEM + " holds no PEM certificate"}},
		{"unknown mechanism", conn.Kafka{SASL: conn.SASL{Mechanism: "GSSAPI", Username: "u", Password: "s3cret"}}, []string{
			`kafka-sasl-mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (or empty for none), got "GSSAPI"`}},
		{"mechanism without username and password", conn.Kafka{SASL: conn.SASL{Mechanism: conn.ScramSHA512}}, []string{
			"kafka-sasl-username: SASL SCRAM-SHA-512 needs a username",
			"kafka-sasl-password: SASL SCRAM-SHA-512 needs a password: set FENQI_KAFKA_SASL_PASSWORD or name a file with -kafka-sasl-password-file"}},
		{"username and password without mechanism", conn.Kafka{SASL: conn.SASL{Username: "u", Password: "s3cret"}}, []string{
			"kafka-sasl-username: given without -kafka-sasl-mechanism",
			"kafka-sasl-password: given without -kafka-sasl-mechanism"}},
		{"password SASLprep refuses", conn.Kafka{SASL: conn.SASL{Mechanism: conn.ScramSHA256, Username: "u", Password: "s3cret\u0007"}}, []string{
			"kafka-sasl-username: the username or the password is not valid for SCRAM-SHA-256"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, p := range c.k.Problems() {
				got = append(got, p.Flag+": "+p.Msg)
				if strings.Contains(p.Error(), "s3cret") {
					t.Errorf("a problem shows the password: %v", p)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %q", got, c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("problem %q, want %q", got[i], c.want[i])
				}
			}
			_, err := c.k.Load()
			if (err != nil) != (len(c.want) > 0) {
				t.Errorf("load: %v", err)
			}
		})
	}
}

func TestProblemNamesTheSettingBothWays(t *testing.T) {
	t.Parallel()
	p := conn.Problem{Flag: "kafka-tls-cert-file", Msg: "bad"}
	if got, want := p.Error(), "setting -kafka-tls-cert-file (FENQI_KAFKA_TLS_CERT_FILE): bad"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestRedisProblems(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	for _, c := range []struct {
		name string
		r    conn.Redis
		want []string
	}{
		{"none", conn.Redis{}, nil},
		{"password alone", conn.Redis{Password: "s3cret"}, nil},
		{"ACL user over mTLS", conn.Redis{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}, Username: "fenqi", Password: "s3cret"}, nil},
		{"user without password", conn.Redis{Username: "fenqi"}, []string{"redis-username: an ACL user needs its password"}},
		{"CA while TLS is off", conn.Redis{TLS: conn.TLS{CAFile: pki.CAFile}}, []string{"redis-tls-ca-file: given while -redis-tls is off: turn it on (FENQI_REDIS_TLS=true)"}},
		{"cert without key", conn.Redis{TLS: conn.TLS{Enabled: true, CertFile: pki.ClientCertFile}}, []string{"redis-tls-cert-file: a client certificate needs its key: set -redis-tls-key-file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, p := range c.r.Problems() {
				got = append(got, p.Flag+": "+p.Msg)
			}
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %q", got, c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("problem %q, want %q", got[i], c.want[i])
				}
			}
		})
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var k conn.Kafka
	var r conn.Redis
	kf, rf := conn.KafkaFlags(fs, &k), conn.RedisFlags(fs, &r)
	wantNames := []string{"kafka-tls", "kafka-tls-ca-file", "kafka-tls-cert-file", "kafka-tls-key-file", "kafka-tls-server-name",
		"kafka-sasl-mechanism", "kafka-sasl-username", "kafka-sasl-password-file"}
	if got := kf.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("kafka names %q, want %q", got, wantNames)
	}
	wantNames = []string{"redis-tls", "redis-tls-ca-file", "redis-tls-cert-file", "redis-tls-key-file", "redis-tls-server-name", "redis-username", "redis-password-file"}
	if got := rf.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("redis names %q, want %q", got, wantNames)
	}
	if err := fs.Parse([]string{"-kafka-tls", "-kafka-sasl-mechanism", "PLAIN", "-kafka-sasl-username", "u", "-redis-password-file", pwFile}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FENQI_KAFKA_SASL_PASSWORD": "from-env"}
	getenv := func(k string) string { return env[k] }
	if err := kf.Resolve(getenv, true); err != nil {
		t.Fatal(err)
	}
	if err := rf.Resolve(getenv, true); err != nil {
		t.Fatal(err)
	}
	want := conn.Kafka{TLS: conn.TLS{Enabled: true}, SASL: conn.SASL{Mechanism: "PLAIN", Username: "u", Password: "from-env"}}
	if k != want || r != (conn.Redis{Password: "from-file"}) {
		t.Errorf("kafka %+v, redis %+v", k, r)
	}

	// A password on the command line is refused, naming what to do.
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kf = conn.KafkaFlags(fs, &k)
	if err := fs.Parse([]string{"-kafka-sasl-password", "s3cret"}); err != nil {
		t.Fatal(err)
	}
	err := kf.Resolve(getenv, true)
	if err == nil || !strings.Contains(err.Error(), "FENQI_KAFKA_SASL_PASSWORD") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("password flag: %v", err)
	}
}
