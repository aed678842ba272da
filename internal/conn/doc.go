// Package conn turns the security settings of fenqi's connections into
// what the Kafka and Redis clients need.
//
// In: the settings (Kafka: TLS and SASL; Redis: TLS and an ACL user), from
// flags and FENQI_* variables that KafkaFlags and RedisFlags register with
// the same names in fenqid and fenqictl, the passwords through package
// secret (a file or the environment, never the command line).
//
// Out: Problems that name the flag of each bad setting; a *tls.Config
// from CA, certificate, key and server-name settings; a kafka-go
// sasl.Mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); a KafkaConn that
// makes kafka-go Dialers (for kafka.NewReader) and Transports (for
// kafka.Writer and kafka.Client), each call a new one; the security fields
// of go-redis options; and errors of refused connections explained (which
// setting to look at), never showing a password.
//
// The zero values (Kafka{}, Redis{}, a nil *KafkaConn) are plaintext
// connections without authentication: what the embedded mode and tests use.
package conn
