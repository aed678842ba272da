package conn

import (
	"crypto/tls"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis is the security of the connections to Redis.
type Redis struct {
	TLS TLS
	// Username is the ACL user ("" = the default user, authenticated with
	// the password alone, as requirepass wants).
	Username string
	Password string // a secret: never in an error or a log
}

// Problems checks the settings, reading the TLS files, and names the flag
// of each mistake (the flags of RedisFlags).
func (r Redis) Problems() []Problem {
	_, ps := r.build()
	return ps
}

func (r Redis) build() (*tls.Config, []Problem) {
	c, ps := r.TLS.config("redis")
	if r.Username != "" && r.Password == "" {
		ps = append(ps, Problem{"redis-username", "an ACL user needs its password: set FENQI_REDIS_PASSWORD or name a file with -redis-password-file"})
	}
	return c, ps
}

// Apply sets the security fields of o: TLSConfig, Username and Password.
// The error is the Problems joined.
func (r Redis) Apply(o *redis.Options) error {
	c, ps := r.build()
	if len(ps) > 0 {
		return joinProblems(ps)
	}
	o.TLSConfig, o.Username, o.Password = c, r.Username, r.Password
	return nil
}

// ApplyCluster is Apply for a cluster client: every node gets the same
// security. (Nodes are dialled at the addresses the cluster announces,
// often IPs: their certificates must be for those, or name one with
// -redis-tls-server-name.)
func (r Redis) ApplyCluster(o *redis.ClusterOptions) error {
	c, ps := r.build()
	if len(ps) > 0 {
		return joinProblems(ps)
	}
	o.TLSConfig, o.Username, o.Password = c, r.Username, r.Password
	return nil
}

// Explain adds to a Redis error what setting to look at (the error stays
// as it is for errors.Is and errors.As, and retry.Retryable). nil stays
// nil.
func (r Redis) Explain(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"):
			if r.Username == "" {
				return hint(err, "check the password, FENQI_REDIS_PASSWORD or -redis-password-file, and -redis-username if Redis has ACL users")
			}
			return hint(err, "Redis refused user %q: check -redis-username and the password, FENQI_REDIS_PASSWORD or -redis-password-file", r.Username)
		case strings.HasPrefix(msg, "NOAUTH"):
			return hint(err, "Redis wants a password: set FENQI_REDIS_PASSWORD or -redis-password-file, and -redis-username for an ACL user")
		case strings.HasPrefix(msg, "NOPERM"):
			return hint(err, "the ACL user %q lacks a permission fenqi needs: see the ACL rule in docs/operations.md, Security", r.Username)
		}
		return err
	}
	return explainTLS(err, "redis", r.TLS.Enabled, r.Password != "")
}
