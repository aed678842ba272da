package conn

import (
	"flag"
	"fmt"

	"github.com/fenqi/fenqi/internal/secret"
)

// Flags are the security settings of one connection (Kafka or Redis)
// registered on a flag set.
type Flags struct {
	names    []string
	password *secret.Setting
	dst      *string
}

// KafkaFlags registers the Kafka security settings on fs, which fill k:
// -kafka-tls, -kafka-tls-ca-file, -kafka-tls-cert-file,
// -kafka-tls-key-file, -kafka-tls-server-name, -kafka-sasl-mechanism,
// -kafka-sasl-username, and the secret kafka-sasl-password
// (FENQI_KAFKA_SASL_PASSWORD, or a file: -kafka-sasl-password-file or
// FENQI_KAFKA_SASL_PASSWORD_FILE), which Resolve reads.
func KafkaFlags(fs *flag.FlagSet, k *Kafka) *Flags {
	f := &Flags{}
	f.tls(fs, &k.TLS, "kafka", "Kafka brokers")
	f.string(fs, &k.SASL.Mechanism, "kafka-sasl-mechanism", "SASL mechanism to authenticate to Kafka: PLAIN (send the password as it is: over TLS only), SCRAM-SHA-256 or SCRAM-SHA-512; empty = none")
	f.string(fs, &k.SASL.Username, "kafka-sasl-username", "SASL username for Kafka")
	f.secret(fs, &k.SASL.Password, "kafka-sasl-password", "the Kafka SASL password")
	return f
}

// RedisFlags registers the Redis security settings on fs, which fill r:
// -redis-tls, -redis-tls-ca-file, -redis-tls-cert-file,
// -redis-tls-key-file, -redis-tls-server-name, -redis-username, and the
// secret redis-password (FENQI_REDIS_PASSWORD, or a file:
// -redis-password-file or FENQI_REDIS_PASSWORD_FILE), which Resolve reads.
func RedisFlags(fs *flag.FlagSet, r *Redis) *Flags {
	f := &Flags{}
	f.tls(fs, &r.TLS, "redis", "Redis")
	f.string(fs, &r.Username, "redis-username", "Redis ACL user (empty = the default user; the rule it needs is in docs/operations.md)")
	f.secret(fs, &r.Password, "redis-password", "the Redis password")
	return f
}

func (f *Flags) tls(fs *flag.FlagSet, t *TLS, prefix, what string) {
	name := prefix + "-tls"
	fs.BoolVar(&t.Enabled, name, false, fmt.Sprintf("connect to %s over TLS (env %s)", what, secret.EnvName(name)))
	f.names = append(f.names, name)
	f.string(fs, &t.CAFile, name+"-ca-file", fmt.Sprintf("with -%s: PEM file of the CAs that sign the certificates of %s (empty = the system's roots)", name, what))
	f.string(fs, &t.CertFile, name+"-cert-file", fmt.Sprintf("with -%s: PEM file of the client certificate, for %s that authenticate clients by certificate (mTLS); with -%s-key-file", name, what, name))
	f.string(fs, &t.KeyFile, name+"-key-file", fmt.Sprintf("with -%s: PEM file of the client certificate's key", name))
	f.string(fs, &t.ServerName, name+"-server-name", fmt.Sprintf("with -%s: the name the certificates of %s must be for (empty = the host dialled)", name, what))
}

func (f *Flags) string(fs *flag.FlagSet, p *string, name, usage string) {
	fs.StringVar(p, name, "", usage+" (env "+secret.EnvName(name)+")")
	f.names = append(f.names, name)
}

func (f *Flags) secret(fs *flag.FlagSet, p *string, name, what string) {
	f.password, f.dst = secret.Register(fs, name, what), p
	f.names = append(f.names, name+"-file")
}

// Names are the flags registered that read their FENQI_* variable like any
// other flag (the secret's -NAME-file among them); the secret itself is
// not one: Resolve reads its variable.
func (f *Flags) Names() []string { return append([]string(nil), f.names...) }

// Resolve reads the secret into the settings, once the flags are parsed
// (and, with fileFromEnv false, filled from their variables): see
// secret.Setting.Resolve.
func (f *Flags) Resolve(getenv func(string) string, fileFromEnv bool) error {
	v, err := f.password.Resolve(getenv, fileFromEnv)
	if err != nil {
		return err
	}
	*f.dst = v
	return nil
}
