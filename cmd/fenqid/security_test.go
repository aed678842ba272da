package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
)

// secureWorld is a broker that serves TLS and wants SASL, and a Redis that
// serves TLS with fenqi's ACL user (the rule of docs/operations.md), and
// the variables that point fenqid at them, its passwords in files.
type secureWorld struct {
	brokers []string
	env     env
	kafka   *conn.KafkaConn // the test's own clients
}

func newSecureWorld(t *testing.T) *secureWorld {
	t.Helper()
	pki := conntest.New(t)
	cfg, _, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	brokers := conntest.Kafka(t, pki, tls.VerifyClientCertIfGiven, cfg.allTopics()...)
	redisAddr, admin := conntest.Redis(t, pki)
	conntest.AddRedisUser(t, admin, "../../docs/operations.md", "fenqi", "redis-pw", "")
	dir := t.TempDir()
	kafkaPW, redisPW := filepath.Join(dir, "kafka-pw"), filepath.Join(dir, "redis-pw")
	for f, pw := range map[string]string{kafkaPW: conntest.KafkaPassword, redisPW: "redis-pw"} {
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sasl := conn.SASL{Mechanism: conn.ScramSHA512, Username: conntest.KafkaUsers[conn.ScramSHA512], Password: conntest.KafkaPassword}
	kc, err := conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile}, SASL: sasl}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &secureWorld{brokers: brokers, kafka: kc, env: env{
		"FENQI_KAFKA_BROKERS":            strings.Join(brokers, ","),
		"FENQI_KAFKA_TLS":                "true",
		"FENQI_KAFKA_TLS_CA_FILE":        pki.CAFile,
		"FENQI_KAFKA_SASL_MECHANISM":     sasl.Mechanism,
		"FENQI_KAFKA_SASL_USERNAME":      sasl.Username,
		"FENQI_KAFKA_SASL_PASSWORD_FILE": kafkaPW,
		"FENQI_REDIS_ADDR":               redisAddr,
		"FENQI_REDIS_TLS":                "true",
		"FENQI_REDIS_TLS_CA_FILE":        pki.CAFile,
		"FENQI_REDIS_TLS_CERT_FILE":      pki.ClientCertFile,
		"FENQI_REDIS_TLS_KEY_FILE":       pki.ClientKeyFile,
		"FENQI_REDIS_USERNAME":           "fenqi",
		"FENQI_REDIS_PASSWORD_FILE":      redisPW,
		"FENQI_JOBS_INTERVAL":            "50ms",
		"FENQI_LOG_LEVEL":                "warn",
	}}
}

// fenqid consumes, keeps state and publishes over TLS and SASL/SCRAM to
// Kafka and TLS to Redis as an ACL user: a profile event gets its quota
// decision.
func TestRunOverTLSAndSASL(t *testing.T) {
	t.Parallel()
	w := newSecureWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	var stderr logBuffer // read once run has returned
	done := make(chan error, 1)
	go func() { done <- run(rctx, []string{"-http-addr="}, w.env.get, io.Discard, &stderr) }()

	e := events.Event{ID: "pr-1", Type: events.TypeProfile, Source: "//test", Subject: "u-1", Time: time.Now().Add(-time.Minute),
		Profile: &events.Profile{UserID: "u-1", PayScore: 700, RealNameVerified: true, IdentityComplete: true}}
	v, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	kw := &kafka.Writer{Addr: kafka.TCP(w.brokers...), Transport: w.kafka.Transport(), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer func() { _ = kw.Close() }()
	if err := kw.WriteMessages(ctx, kafka.Message{Topic: events.TopicProfiles, Key: []byte("u-1"), Value: v}); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: w.brokers, Topic: events.TopicDecisions, Dialer: w.kafka.Dialer(), MaxWait: 100 * time.Millisecond})
	defer func() { _ = r.Close() }()
	m, readErr := r.ReadMessage(ctx)
	stop()
	runErr := <-done
	stderr.mu.Lock()
	log := stderr.b.String()
	stderr.mu.Unlock()
	if readErr != nil || runErr != nil {
		t.Fatalf("decision: %v; run: %v\nfenqid's log:\n%s", readErr, runErr, log)
	}
	if d, err := events.DecodeDecision(m.Value); err != nil || d.Subject != "u-1" {
		t.Fatalf("decision %+v, %v", d, err)
	}
	for _, secret := range []string{conntest.KafkaPassword + "\n", "redis-pw"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a password:\n%s", log)
		}
	}
}

// A refused password stops fenqid at start with the error and the
// setting to look at.
func TestRunRefusedPasswords(t *testing.T) {
	t.Parallel()
	w := newSecureWorld(t)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("wrong-s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		vars env
		want []string
	}{
		{"kafka", env{"FENQI_KAFKA_SASL_PASSWORD_FILE": wrong}, []string{"kafka: kafka broker", "SASL Authentication", `the broker refused user "scram512-user"`}},
		{"redis", env{"FENQI_REDIS_PASSWORD_FILE": wrong}, []string{"redis at", "WRONGPASS", `Redis refused user "fenqi"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vars := env{}
			for k, v := range w.env {
				vars[k] = v
			}
			for k, v := range c.vars {
				vars[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, []string{"-http-addr="}, vars.get, io.Discard, &stderr)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("run: %v (context: %v)", err, ctx.Err())
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error()+stderr.String(), "s3cret") {
				t.Errorf("a password shows: %v\n%s", err, stderr.String())
			}
		})
	}
}
