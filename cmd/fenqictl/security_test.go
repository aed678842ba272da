package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
)

// secureKafkaEnv starts a broker that serves TLS and wants SASL, and
// returns the variables fenqid would read to reach it (the password in a
// file).
func secureKafkaEnv(t *testing.T, topics ...string) map[string]string {
	t.Helper()
	pki := conntest.New(t)
	brokers := conntest.Kafka(t, pki, tls.VerifyClientCertIfGiven, topics...)
	pw := filepath.Join(t.TempDir(), "kafka-pw")
	if err := os.WriteFile(pw, []byte(conntest.KafkaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"FENQI_KAFKA_BROKERS":            strings.Join(brokers, ","),
		"FENQI_KAFKA_TLS":                "true",
		"FENQI_KAFKA_TLS_CA_FILE":        pki.CAFile,
		"FENQI_KAFKA_SASL_MECHANISM":     conn.ScramSHA256,
		"FENQI_KAFKA_SASL_USERNAME":      conntest.KafkaUsers[conn.ScramSHA256],
		"FENQI_KAFKA_SASL_PASSWORD_FILE": pw,
	}
}

// produce writes over the broker's transport and tail reads with its
// dialer, both with fenqid's variables.
func TestKafkaOverTLSAndSASL(t *testing.T) {
	t.Parallel()
	env := secureKafkaEnv(t, append(inputTopicNames, defaultDecisions)...)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(marshal(t, payment("pay-1", "u-1", 12345))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, env, "", "produce", file); r.err != nil || !strings.Contains(r.stdout, "sent 1 events") {
		t.Fatalf("produce: %v\n%s", r.err, r.stdout)
	}
	// A decision on the topic, written with produce's own access.
	kc, err := conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: env["FENQI_KAFKA_TLS_CA_FILE"]},
		SASL: conn.SASL{Mechanism: conn.ScramSHA256, Username: env["FENQI_KAFKA_SASL_USERNAME"], Password: conntest.KafkaPassword}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(strings.Split(env["FENQI_KAFKA_BROKERS"], ","), kc)
	defer b.close()
	m := decision(t, events.TypeDecisionAlert, "u-1", "pay-1", recent, "FENQI_LATE_NIGHT_LARGE")
	m.Topic = defaultDecisions
	w := b.writer(nil)
	if err := w.WriteMessages(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	r := runCmd(t, env, "", "tail", "--from-beginning", "--n", "1")
	if r.err != nil || !strings.Contains(r.stdout, "user=u-1") {
		t.Fatalf("tail: %v\n%s", r.err, r.stdout)
	}
	// The flags work as well as the variables.
	r = runCmd(t, map[string]string{"FENQI_KAFKA_SASL_PASSWORD_FILE": env["FENQI_KAFKA_SASL_PASSWORD_FILE"]}, "", "tail",
		"--brokers", env["FENQI_KAFKA_BROKERS"], "--kafka-tls", "--kafka-tls-ca-file", env["FENQI_KAFKA_TLS_CA_FILE"],
		"--kafka-sasl-mechanism", conn.ScramSHA256, "--kafka-sasl-username", env["FENQI_KAFKA_SASL_USERNAME"], "--from-beginning", "--n", "1")
	if r.err != nil || !strings.Contains(r.stdout, "user=u-1") {
		t.Fatalf("tail with flags: %v\n%s", r.err, r.stdout)
	}
}

func TestKafkaSecurityRefusals(t *testing.T) {
	t.Parallel()
	env := secureKafkaEnv(t, defaultDecisions)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("wrong-s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range env {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"password on the command line", env, []string{"--kafka-sasl-password", "s3cret"}, 2,
			[]string{"-kafka-sasl-password: a secret is not accepted on the command line", "FENQI_KAFKA_SASL_PASSWORD"}},
		{"certificate without key", with("FENQI_KAFKA_TLS_CERT_FILE", "/etc/fenqi/client.pem"), nil, 2,
			[]string{"--kafka-tls-cert-file (env FENQI_KAFKA_TLS_CERT_FILE): a client certificate needs its key"}},
		{"unknown mechanism", with("FENQI_KAFKA_SASL_MECHANISM", "GSSAPI"), nil, 2,
			[]string{`--kafka-sasl-mechanism (env FENQI_KAFKA_SASL_MECHANISM): must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`}},
		{"wrong password", with("FENQI_KAFKA_SASL_PASSWORD_FILE", wrong), nil, 1,
			[]string{"SASL Authentication", `the broker refused user "scram256-user"`}},
		{"plaintext", with("FENQI_KAFKA_TLS", "false", "FENQI_KAFKA_TLS_CA_FILE", ""), nil, 1,
			[]string{"set -kafka-tls"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t, c.env, "", append([]string{"tail", "--n", "1"}, c.args...)...)
			if r.code() != c.code {
				t.Fatalf("exit status %d, want %d: %v", r.code(), c.code, r.err)
			}
			for _, w := range c.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q lacks %q", r.err, w)
				}
			}
			if strings.Contains(r.err.Error()+r.stderr, "s3cret") {
				t.Errorf("a password shows: %v\n%s", r.err, r.stderr)
			}
		})
	}
}

// epoch --redis over TLS as fenqi's ACL user (the rule of the docs).
func TestEpochRedisOverTLSAndACL(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	addr, admin := conntest.Redis(t, pki)
	conntest.AddRedisUser(t, admin, "../../docs/operations.md", "fenqi", "redis-pw", "")
	env := map[string]string{
		"FENQI_REDIS_ADDR":        addr,
		"FENQI_REDIS_TLS":         "true",
		"FENQI_REDIS_TLS_CA_FILE": pki.CAFile,
		"FENQI_REDIS_USERNAME":    "fenqi",
		"FENQI_REDIS_PASSWORD":    "redis-pw",
	}
	if r := runCmd(t, env, "", "epoch", "--redis", "--raise", defaultPayments); r.err != nil || !strings.Contains(r.stdout, defaultPayments) {
		t.Fatalf("epoch --raise: %v\n%s", r.err, r.stdout)
	}
	env["FENQI_REDIS_PASSWORD"] = "wrong-s3cret"
	r := runCmd(t, env, "", "epoch", "--redis", "--timeout", "2s")
	if r.code() != 1 || !strings.Contains(r.err.Error(), "WRONGPASS") || !strings.Contains(r.err.Error(), `Redis refused user "fenqi"`) ||
		strings.Contains(r.err.Error(), "s3cret") {
		t.Errorf("wrong password: %v", r.err)
	}
	r = runCmd(t, env, "", "epoch", "--redis", "--redis-password", "s3cret")
	if r.code() != 2 || !strings.Contains(r.err.Error(), "FENQI_REDIS_PASSWORD") || strings.Contains(r.err.Error(), "s3cret") {
		t.Errorf("password on the command line: %v", r.err)
	}
}
