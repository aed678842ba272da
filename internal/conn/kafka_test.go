package conn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
	"github.com/fenqi/fenqi/retry"
)

const topic = "fenqi.test"

// secureKafka starts a broker that serves TLS only and wants SASL.
func secureKafka(t *testing.T, pki *conntest.PKI, auth tls.ClientAuthType) []string {
	t.Helper()
	return conntest.Kafka(t, pki, auth, topic)
}

func load(t *testing.T, k conn.Kafka) *conn.KafkaConn {
	t.Helper()
	kc, err := k.Load()
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func TestKafkaTLSAndSASL(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	brokers := secureKafka(t, pki, tls.VerifyClientCertIfGiven)
	mtls := secureKafka(t, pki, tls.RequireAndVerifyClientCert)
	for _, c := range []struct {
		name, mech, user string
		brokers          []string
		cert             bool
	}{
		{"PLAIN", conn.Plain, "plain-user", brokers, false},
		{"SCRAM-SHA-256", conn.ScramSHA256, "scram256-user", brokers, false},
		{"SCRAM-SHA-512, lower case", "scram-sha-512", "scram512-user", brokers, false},
		{"SCRAM-SHA-256 with a client certificate", conn.ScramSHA256, "scram256-user", mtls, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile}, SASL: conn.SASL{Mechanism: c.mech, Username: c.user, Password: conntest.KafkaPassword}}
			if c.cert {
				k.TLS.CertFile, k.TLS.KeyFile = pki.ClientCertFile, pki.ClientKeyFile
			}
			kc := load(t, k)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := kc.Check(ctx, c.brokers); err != nil {
				t.Fatalf("check: %v", err)
			}
			tr := kc.Transport()
			defer tr.CloseIdleConnections()
			w := &kafka.Writer{Addr: kafka.TCP(c.brokers...), Transport: tr, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
			defer func() { _ = w.Close() }()
			want := "hello " + c.name
			if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(c.name), Value: []byte(want)}); err != nil {
				t.Fatalf("write: %v", err)
			}
			// A group reader: the group coordinator's connections take the
			// Dialer too.
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers, GroupID: "g-" + c.user, Topic: topic, Dialer: kc.Dialer(),
				StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
			defer func() { _ = r.Close() }()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if string(m.Value) == want {
					break
				}
			}
			// A kafka.Client over the Transport.
			cl := &kafka.Client{Addr: kafka.TCP(c.brokers...), Transport: kc.Transport(), Timeout: 10 * time.Second}
			md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
			if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
				t.Fatalf("metadata: %+v, %v", md, err)
			}
		})
	}
}

// What a misconfigured client sees: a refusal that says which setting to
// look at, never the password, and only the errors that pass with time
// (the server closing the connection) retried.
func TestKafkaRefusals(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	other := conntest.New(t)
	brokers := secureKafka(t, pki, tls.VerifyClientCertIfGiven)
	mtls := secureKafka(t, pki, tls.RequireAndVerifyClientCert)
	plainBroker := plaintextKafka(t)
	good := conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile}, SASL: conn.SASL{Mechanism: conn.ScramSHA256, Username: "scram256-user", Password: conntest.KafkaPassword}}
	for _, c := range []struct {
		name      string
		edit      func(*conn.Kafka)
		brokers   []string
		want      []string
		retryable bool
	}{
		{"wrong password", func(k *conn.Kafka) { k.SASL.Password = "wrong-s3cret" }, brokers,
			[]string{"SASL Authentication", `the broker refused user "scram256-user"`, "-kafka-sasl-username"}, false},
		{"wrong PLAIN password", func(k *conn.Kafka) {
			k.SASL = conn.SASL{Mechanism: conn.Plain, Username: "plain-user", Password: "wrong-s3cret"}
		}, brokers,
			[]string{"SASL Authentication", `the broker refused user "plain-user"`}, false},
		{"unknown user", func(k *conn.Kafka) { k.SASL.Username = "mallory"; k.SASL.Password = "wrong-s3cret" }, brokers,
			[]string{`the broker refused user "mallory"`}, false},
		{"unknown CA", func(k *conn.Kafka) { k.TLS.CAFile = other.CAFile }, brokers,
			[]string{"certificate signed by unknown authority", "not signed by a CA of -kafka-tls-ca-file"}, false},
		{"system roots", func(k *conn.Kafka) { k.TLS.CAFile = "" }, brokers,
			[]string{"certificate signed by unknown authority"}, false},
		{"wrong server name", func(k *conn.Kafka) { k.TLS.ServerName = "kafka.example.com" }, brokers,
			[]string{"not kafka.example.com", "-kafka-tls-server-name"}, false},
		{"plaintext client", func(k *conn.Kafka) { k.TLS = conn.TLS{} }, brokers,
			[]string{"set -kafka-tls"}, true},
		{"plaintext client without SASL", func(k *conn.Kafka) { *k = conn.Kafka{} }, brokers,
			[]string{"set -kafka-tls", "set -kafka-sasl-mechanism"}, true},
		{"no client certificate", func(*conn.Kafka) {}, mtls,
			[]string{"certificate required", "the server wants a client certificate: set -kafka-tls-cert-file and -kafka-tls-key-file"}, true},
		{"client certificate of another CA", func(k *conn.Kafka) { k.TLS.CertFile, k.TLS.KeyFile = other.ClientCertFile, other.ClientKeyFile }, mtls,
			[]string{"unknown certificate authority", "refused the client certificate of -kafka-tls-cert-file"}, true},
		{"TLS to a plaintext broker", func(k *conn.Kafka) { k.SASL = conn.SASL{} }, plainBroker,
			[]string{"no answer within 1s", "a plaintext listener does not answer a TLS handshake", "turn -kafka-tls off"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := good
			c.edit(&k)
			kc := load(t, k)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := conn.CheckWithin(ctx, kc, c.brokers, time.Second)
			refused(t, err, c.want, c.retryable)
			// The clients built by the package are refused the same way.
			w := &kafka.Writer{Addr: kafka.TCP(c.brokers...), Transport: kc.Transport(), MaxAttempts: 1}
			defer func() { _ = w.Close() }()
			wctx, wcancel := context.WithTimeout(ctx, time.Second)
			defer wcancel()
			if err := w.WriteMessages(wctx, kafka.Message{Topic: topic, Value: []byte("x")}); err == nil {
				t.Error("the writer was accepted")
			}
		})
	}
}

func plaintextKafka(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// A nil KafkaConn (and the zero Kafka) connects in plaintext.
func TestKafkaPlaintext(t *testing.T) {
	t.Parallel()
	brokers := plaintextKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var nilConn *conn.KafkaConn
	for _, kc := range []*conn.KafkaConn{nilConn, load(t, conn.Kafka{})} {
		if err := kc.Check(ctx, brokers); err != nil {
			t.Fatal(err)
		}
		if d := kc.Dialer(); d.TLS != nil || d.SASLMechanism != nil {
			t.Errorf("dialer %+v", d)
		}
	}
	if err := nilConn.Check(ctx, nil); err == nil {
		t.Error("no brokers accepted")
	}
	var kerr kafka.Error
	if err := nilConn.Explain(kafka.SASLAuthenticationFailed); !errors.As(err, &kerr) {
		t.Errorf("explained error %v does not unwrap", err)
	}
}

// kafka-go's Transport reports a refused password as the connection
// ending; Explaining says why.
func TestExplainingTransport(t *testing.T) {
	t.Parallel()
	pki := conntest.New(t)
	brokers := secureKafka(t, pki, tls.VerifyClientCertIfGiven)
	for _, c := range []struct {
		name string
		k    conn.Kafka
		want string
	}{
		{"wrong password", conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile},
			SASL: conn.SASL{Mechanism: conn.ScramSHA256, Username: "scram256-user", Password: "wrong-s3cret"}}, `the broker refused user "scram256-user"`},
		{"plaintext", conn.Kafka{}, "set -kafka-tls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			kc := load(t, c.k)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tr := kc.Transport()
			defer tr.CloseIdleConnections()
			cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: kc.Explaining(tr, brokers)}
			_, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
			if retry.Retryable(err) != (c.name == "plaintext") {
				t.Errorf("retryable %v", retry.Retryable(err))
			}
		})
	}
	// A broker that accepts: nothing changes.
	kc := load(t, conn.Kafka{TLS: conn.TLS{Enabled: true, CAFile: pki.CAFile},
		SASL: conn.SASL{Mechanism: conn.Plain, Username: "plain-user", Password: conntest.KafkaPassword}})
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: kc.Explaining(kc.Transport(), brokers)}
	if _, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}}); err != nil {
		t.Fatal(err)
	}
}

// refused checks a refusal: an error with every one of want, never the
// password (the tests' wrong ones hold "s3cret"), retried or not as
// retryable says.
func refused(t *testing.T, err error, want []string, retryable bool) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	t.Logf("error: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if got := retry.Retryable(err); got != retryable {
		t.Errorf("retryable %v, want %v", got, retryable)
	}
}
