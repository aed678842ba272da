package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/secret"
)

// Default topic names: the same as fenqid's.
const (
	defaultPayments   = events.TopicPayments
	defaultLogins     = events.TopicLogins
	defaultRepayments = events.TopicRepayments
	defaultProfiles   = events.TopicProfiles
	defaultOperator   = events.TopicOperator
	defaultDecisions  = events.TopicDecisions
	defaultDLQ        = events.TopicDLQ
	defaultBrokers    = "localhost:9092"
)

// inputTopics are the names of the input topics, in fenqid's index order
// (list).
type inputTopics struct{ Payments, Logins, Repayments, Profiles, Operator string }

// list returns the input topics in their index order (index = position + 1):
// consumers.Topics.List's.
func (t inputTopics) list() []string { return consumers.Topics(t).List() }

// flags is one subcommand's flag set. Flags registered through brokers and
// topic also read an environment variable when not given on the command
// line (the command line wins).
type flags struct {
	*flag.FlagSet
	env   map[string]string // flag name → variable name
	token adminToken        // the admin API's bearer token (api registers it, parse resolves it)
	// kafka is the security of the command's Kafka connections (TLS,
	// SASL), registered with brokers and loaded by parse; nil = plaintext.
	kafka *conn.KafkaConn
	// secured are the security settings registered (with brokers, redis),
	// resolved and checked by parse.
	secured []secured
}

// secured is one connection's security settings on a flag set.
type secured struct {
	flags *conn.Flags
	load  func() []conn.Problem // checks the settings, keeping what they load
}

// security registers a connection's security settings (conn.KafkaFlags,
// conn.RedisFlags: fenqid's names and variables) on f; parse resolves the
// secret and then calls load.
func (f *flags) security(sf *conn.Flags, load func() []conn.Problem) {
	for _, name := range sf.Names() {
		f.env[name] = secret.EnvName(name)
	}
	f.secured = append(f.secured, secured{sf, load})
}

// flagSet returns the flag set of a subcommand; --help prints its usage,
// what it does (about) and its flags.
func (c *cli) flagSet(name, operands, about string) *flags {
	fs := flag.NewFlagSet("fenqictl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fenqictl %s\n\n%s\n\nFlags:\n", strings.TrimSpace(name+" [flags] "+operands), about)
		fs.PrintDefaults()
	}
	return &flags{FlagSet: fs, env: map[string]string{}}
}

// brokers registers --brokers (FENQI_KAFKA_BROKERS) and the security of
// the Kafka connections, with fenqid's names and variables (--kafka-tls…,
// --kafka-sasl-…): parse loads them into f.kafka.
func (f *flags) brokers(p *string) {
	f.StringVar(p, "brokers", defaultBrokers, "comma-separated Kafka bootstrap brokers host:port (env FENQI_KAFKA_BROKERS)")
	f.env["brokers"] = "FENQI_KAFKA_BROKERS"
	k := &conn.Kafka{}
	f.security(conn.KafkaFlags(f.FlagSet, k), func() []conn.Problem {
		kc, err := k.Load()
		if err != nil {
			return k.Problems()
		}
		f.kafka = kc
		return nil
	})
}

// topic registers --topic-<name> (FENQI_TOPIC_<NAME>, as fenqid reads it).
func (f *flags) topic(p *string, name, def, what string) {
	flagName := "topic-" + name
	envName := "FENQI_TOPIC_" + strings.ToUpper(name)
	f.StringVar(p, flagName, def, what+" (env "+envName+")")
	f.env[flagName] = envName
}

// inputs registers the input topic flags.
func (f *flags) inputs(t *inputTopics) {
	f.topic(&t.Payments, "payments", defaultPayments, "topic of payment events")
	f.topic(&t.Logins, "logins", defaultLogins, "topic of login events")
	f.topic(&t.Repayments, "repayments", defaultRepayments, "topic of repayment (bill due / paid) events")
	f.topic(&t.Profiles, "profiles", defaultProfiles, "topic of credit profile events")
	f.topic(&t.Operator, "operator", defaultOperator, "topic of operator events (overrides, special quotas, quota checks)")
}

// check refuses an empty or repeated input topic name.
func (t inputTopics) check() error {
	return checkTopics(map[string]string{
		"topic-payments": t.Payments, "topic-logins": t.Logins,
		"topic-repayments": t.Repayments, "topic-profiles": t.Profiles, "topic-operator": t.Operator,
	})
}

// decoder registers the flags of the event validator, with fenqid's
// names, defaults and variables.
func (f *flags) decoder(d *events.Decoder) {
	f.IntVar(&d.MaxBytes, "max-event-bytes", events.DefaultMaxBytes, "largest event accepted, as fenqid's -max-event-bytes (env FENQI_MAX_EVENT_BYTES)")
	f.env["max-event-bytes"] = "FENQI_MAX_EVENT_BYTES"
	f.DurationVar(&d.MaxFuture, "max-future", events.DefaultMaxFuture, "how far in the future an event time may be, as fenqid's -max-future (env FENQI_MAX_FUTURE)")
	f.env["max-future"] = "FENQI_MAX_FUTURE"
}

// parse parses args, allowing flags after operands ("produce FILE
// --skip-invalid"; everything after "--" is an operand), then fills the
// flags not given from their environment variables. It returns the
// operands. --help yields errHelp; a bad flag an exit status 2 error
// already reported by the flag package.
func (c *cli) parse(f *flags, args []string) ([]string, error) {
	var operands []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, &exitError{code: 2, err: err, reported: true}
		}
		rest := f.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			operands = append(operands, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for name, envName := range f.env {
		if given[name] || c.getenv == nil {
			continue
		}
		if v := c.getenv(envName); v != "" {
			if err := f.Set(name, v); err != nil {
				return nil, usageErrorf("%s: %s=%q: %w", f.Name(), envName, v, err)
			}
		}
	}
	if err := f.token.resolve(c.getenv); err != nil {
		return nil, usageErrorf("%s: %w", f.Name(), err)
	}
	var problems []string
	for _, s := range f.secured {
		// --NAME-file was filled from FENQI_NAME_FILE above.
		if err := s.flags.Resolve(c.getenv, false); err != nil {
			return nil, usageErrorf("%s: %w", f.Name(), err)
		}
		for _, p := range s.load() {
			problems = append(problems, fmt.Sprintf("--%s (env %s): %s", p.Flag, secret.EnvName(p.Flag), p.Msg))
		}
	}
	if len(problems) > 0 {
		return nil, usageErrorf("%s: %s", f.Name(), strings.Join(problems, "\n"))
	}
	return operands, nil
}

// usageOf reports a mistake on the command line of f, pointing at its
// --help, and returns an exit status 2 error.
func (c *cli) usageOf(f *flags, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	fmt.Fprintf(f.Output(), "fenqictl: %v\nRun '%s --help' for the flags.\n", err, f.Name())
	return &exitError{code: 2, err: err, reported: true}
}

// parseBrokers splits a comma-separated broker list and checks that each
// is host:port.
func parseBrokers(s string) ([]string, error) {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, usageErrorf("--brokers: %q is not host:port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, usageErrorf("--brokers: no broker given")
	}
	return out, nil
}

// checkTopics refuses empty topic names and one name used for two topics.
func checkTopics(named map[string]string) error {
	seen := map[string]string{}
	for _, flagName := range slices.Sorted(maps.Keys(named)) {
		topic := named[flagName]
		if topic == "" {
			return usageErrorf("--%s must not be empty", flagName)
		}
		if other, ok := seen[topic]; ok {
			return usageErrorf("--%s and --%s are both %q", other, flagName, topic)
		}
		seen[topic] = flagName
	}
	return nil
}
