package conn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// hinted is an error with what to do about it; it unwraps to the error.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + " (" + h.hint + ")" }
func (h *hinted) Unwrap() error { return h.err }

func hint(err error, format string, a ...any) error {
	var h *hinted
	if errors.As(err, &h) {
		return err // explained already
	}
	return &hinted{err, fmt.Sprintf(format, a...)}
}

// The TLS alerts a server sends about the client's certificate, as
// crypto/tls words them ("remote error: tls: …", an unexported type).
const (
	alertCertificateRequired = "tls: certificate required"
	alertBadCertificate      = "tls: bad certificate"
	alertUnknownCA           = "tls: unknown certificate authority"
)

// explainTLS explains the errors of TLS and of a server closing the
// connection, naming the settings of prefix ("kafka" or "redis").
func explainTLS(err error, prefix string, tlsOn, authOn bool) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return hint(err, "the server's certificate is not signed by a CA of -%s-tls-ca-file, or of the system's roots without it", prefix)
	case errors.As(err, &hostname):
		return hint(err, "the server's certificate is not for the address dialled: dial a name it is for, or set -%s-tls-server-name", prefix)
	case errors.As(err, &invalid):
		return hint(err, "the server's certificate is not valid now or not for a server")
	case errors.As(err, &header):
		return hint(err, "the server does not speak TLS on this port: use its TLS port, or turn -%s-tls off", prefix)
	case strings.Contains(msg, alertCertificateRequired):
		return hint(err, "the server wants a client certificate: set -%s-tls-cert-file and -%s-tls-key-file", prefix, prefix)
	case strings.Contains(msg, alertBadCertificate), strings.Contains(msg, alertUnknownCA):
		return hint(err, "the server refused the client certificate of -%s-tls-cert-file: is it signed by a CA the server trusts?", prefix)
	case tlsOn && isTimeout(err):
		return hint(err, "no answer in time: is the server up and reachable? A plaintext port does not answer a TLS handshake: if it is one, turn -%s-tls off", prefix)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		switch {
		case !tlsOn && prefix == "kafka" && !authOn:
			return hint(err, "the server closed the connection: if its listener wants TLS, set -kafka-tls; if it wants SASL, set -kafka-sasl-mechanism")
		case !tlsOn:
			return hint(err, "the server closed the connection: if it wants TLS, set -%s-tls", prefix)
		default:
			return hint(err, "the server closed the connection: if it wants a client certificate, set -%s-tls-cert-file and -%s-tls-key-file", prefix, prefix)
		}
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// timeoutError is a connection check that got no answer in time: worth
// retrying (retry.Retryable), unlike the context's own deadline.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Timeout() bool   { return true }
