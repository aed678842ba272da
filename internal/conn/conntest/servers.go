package conntest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fenqi/fenqi/internal/testenv"
)

// KafkaUsers are the SASL users of Kafka, one a mechanism, all with the
// password KafkaPassword.
var KafkaUsers = map[string]string{
	"PLAIN":         "plain-user",
	"SCRAM-SHA-256": "scram256-user",
	"SCRAM-SHA-512": "scram512-user",
}

// KafkaPassword is the password of the KafkaUsers.
const KafkaPassword = "pw"

// Kafka starts an in-process one-broker Kafka (kfake) that serves TLS
// only, with the PKI's server certificate, checking client certificates
// as auth says (tls.RequireAndVerifyClientCert for mTLS), and wants SASL
// from every client (KafkaUsers). The topics have one partition each;
// t.Cleanup stops it. It returns the broker addresses.
func Kafka(t testing.TB, p *PKI, auth tls.ClientAuthType, topics ...string) []string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL(), kfake.TLS(p.ServerConfig(t, auth))}
	for mech, user := range KafkaUsers {
		opts = append(opts, kfake.Superuser(mech, user, KafkaPassword))
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Redis starts a real redis-server (testenv.RedisServer) that serves TLS
// on a port of its own, with the PKI's server certificate, checking client
// certificates when given, besides its plaintext port. It returns the TLS
// address and a client of the plaintext port as the default user, for the
// test's own set-up (ACL users…).
func Redis(t testing.TB, p *PKI) (string, *redis.Client) {
	t.Helper()
	port := freePort(t)
	srv := testenv.RedisServer(t, testenv.WithRedisArgs(
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", p.ServerCertFile, "--tls-key-file", p.ServerKeyFile,
		"--tls-ca-cert-file", p.CAFile, "--tls-auth-clients", "optional"))
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), admin
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// AddRedisUser creates the ACL user with the rule that docs/operations.md
// (at docsPath) gives, as written there, its key patterns behind prefix
// (fenqi's -redis-prefix).
func AddRedisUser(t testing.TB, admin *redis.Client, docsPath, user, password, prefix string) {
	t.Helper()
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^user fenqi on >CHANGE-ME (.*)$").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no line `user fenqi on >CHANGE-ME …`", docsPath)
	}
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password}
	for _, w := range strings.Fields(string(m[1])) {
		if strings.HasPrefix(w, "~") {
			w = "~" + prefix + w[1:]
		}
		args = append(args, w)
	}
	if err := admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER with the rule of %s: %v", docsPath, err)
	}
}
