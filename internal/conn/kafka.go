package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// The SASL mechanisms of SASL.Mechanism.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// SASL is how a Kafka client authenticates.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case); "" =
	// no authentication. PLAIN sends the password as it is: use it over TLS.
	Mechanism string
	Username  string
	Password  string // a secret: never in an error or a log
}

// Kafka is the security of the connections to Kafka brokers.
type Kafka struct {
	TLS  TLS
	SASL SASL
}

// Problems checks the settings, reading the TLS files, and names the flag
// of each mistake (the flags of KafkaFlags).
func (k Kafka) Problems() []Problem {
	_, ps := k.build()
	return ps
}

// Load checks the settings and reads the TLS files once: the KafkaConn
// then makes as many Dialers and Transports as wanted. The error is the
// Problems joined.
func (k Kafka) Load() (*KafkaConn, error) {
	c, ps := k.build()
	if len(ps) > 0 {
		return nil, joinProblems(ps)
	}
	return c, nil
}

func (k Kafka) build() (*KafkaConn, []Problem) {
	c := &KafkaConn{user: k.SASL.Username}
	var ps []Problem
	c.tls, ps = k.TLS.config("kafka")
	s := k.SASL
	if s.Mechanism == "" {
		if s.Username != "" {
			ps = append(ps, Problem{"kafka-sasl-username", "given without -kafka-sasl-mechanism: set the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) or drop the username"})
		}
		if s.Password != "" {
			ps = append(ps, Problem{"kafka-sasl-password", "given without -kafka-sasl-mechanism: set the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) or drop the password"})
		}
		return c, ps
	}
	mech := strings.ToUpper(s.Mechanism)
	switch mech {
	case Plain, ScramSHA256, ScramSHA512:
	default:
		return c, append(ps, Problem{"kafka-sasl-mechanism", fmt.Sprintf("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (or empty for none), got %q", s.Mechanism)})
	}
	if s.Username == "" {
		ps = append(ps, Problem{"kafka-sasl-username", fmt.Sprintf("SASL %s needs a username", mech)})
	}
	if s.Password == "" {
		ps = append(ps, Problem{"kafka-sasl-password", fmt.Sprintf("SASL %s needs a password: set FENQI_KAFKA_SASL_PASSWORD or name a file with -kafka-sasl-password-file", mech)})
	}
	if len(ps) > 0 {
		return c, ps
	}
	switch mech {
	case Plain:
		c.sasl = plain.Mechanism{Username: s.Username, Password: s.Password}
	default:
		algo := scram.SHA256
		if mech == ScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// Its error quotes the password: say what is wrong instead.
			return c, append(ps, Problem{"kafka-sasl-username", fmt.Sprintf("the username or the password is not valid for %s (SASLprep, RFC 4013, refuses control and unassigned characters)", mech)})
		}
		c.sasl = m
	}
	return c, nil
}

// KafkaConn makes kafka-go connections with the loaded security. A nil
// *KafkaConn makes plaintext ones. Safe for concurrent use.
type KafkaConn struct {
	tls  *tls.Config // nil: plaintext
	sasl sasl.Mechanism
	user string // the SASL username, for explanations
}

// dialTimeout bounds a connection's dial, TLS handshake and SASL exchange.
const dialTimeout = 10 * time.Second

func (c *KafkaConn) tlsConfig() *tls.Config {
	if c == nil || c.tls == nil {
		return nil
	}
	return c.tls.Clone()
}

func (c *KafkaConn) mechanism() sasl.Mechanism {
	if c == nil {
		return nil
	}
	return c.sasl
}

// Dialer returns a new Dialer for kafka.ReaderConfig.Dialer (and
// kafka.Dialer's own methods), like kafka.DefaultDialer with TLS and SASL.
func (c *KafkaConn) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: c.tlsConfig(), SASLMechanism: c.mechanism()}
}

// Transport returns a new Transport for kafka.Writer and kafka.Client: its
// connections are its own (CloseIdleConnections closes them). The caller
// may set more of its fields (ClientID…) before first use.
func (c *KafkaConn) Transport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: dialTimeout, TLS: c.tlsConfig(), SASL: c.mechanism()}
}

// Check connects to the brokers in turn until one accepts the connection
// with its handshakes (TLS, SASL) and answers a metadata request. The
// error of each broker that does not is explained (Explain). Errors that
// pass with time (a broker not up yet) are retry.Retryable as kafka-go's
// own; a refused certificate or password is not.
func (c *KafkaConn) Check(ctx context.Context, brokers []string) error {
	return c.checkWithin(ctx, brokers, dialTimeout)
}

// checkWithin is Check with a timeout of each broker's check.
func (c *KafkaConn) checkWithin(ctx context.Context, brokers []string, timeout time.Duration) error {
	if len(brokers) == 0 {
		return errors.New("kafka: no broker to check")
	}
	var errs []error
	for _, b := range brokers {
		err := c.check(ctx, b, timeout)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("kafka broker %s: %w", b, c.Explain(err)))
	}
	return errors.Join(errs...)
}

func (c *KafkaConn) check(parent context.Context, broker string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	err := func() error {
		kc, err := c.Dialer().DialContext(ctx, "tcp", broker)
		if err != nil {
			return err
		}
		defer func() { _ = kc.Close() }()
		if dl, ok := ctx.Deadline(); ok {
			_ = kc.SetDeadline(dl)
		}
		_, err = kc.Brokers() // a metadata request: refused before authentication
		return err
	}()
	if err != nil && ctx.Err() != nil && parent.Err() == nil {
		// The check's own deadline: no answer, which may pass.
		msg := fmt.Sprintf("no answer within %v: is the broker up and reachable?", timeout)
		if c.tlsConfig() != nil {
			msg += " (a plaintext listener does not answer a TLS handshake: if it is one, turn -kafka-tls off)"
		}
		return &timeoutError{msg}
	}
	return err
}

// Explain adds to a Kafka connection error what setting to look at (the
// error stays as it is for errors.Is and errors.As). nil stays nil.
func (c *KafkaConn) Explain(err error) error {
	if err == nil {
		return nil
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.SASLAuthenticationFailed:
			return hint(err, "the broker refused user %q: check -kafka-sasl-username, -kafka-sasl-mechanism and the password, FENQI_KAFKA_SASL_PASSWORD or -kafka-sasl-password-file", c.username())
		case kafka.UnsupportedSASLMechanism:
			return hint(err, "the broker does not accept this SASL mechanism: change -kafka-sasl-mechanism")
		case kafka.IllegalSASLState:
			return hint(err, "the broker wanted SASL in another order: is -kafka-sasl-mechanism the one its listener expects?")
		}
	}
	return explainTLS(err, "kafka", c.tlsConfig() != nil, c.mechanism() != nil)
}

func (c *KafkaConn) username() string {
	if c == nil {
		return ""
	}
	return c.user
}
