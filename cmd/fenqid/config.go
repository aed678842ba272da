package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/secret"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/simulator"
)

// config is every setting of fenqid. Each is a flag and a FENQI_* variable
// (the flag name upper-cased, dashes as underscores); a flag given on the
// command line wins over the variable.
type config struct {
	Embedded       bool
	DataDir        string
	KafkaBrokers   string
	RedisAddr      string
	RedisDB        int
	RedisPrefix    string
	GroupID        string
	Topics         consumers.Topics
	DecisionsTopic string
	DLQTopic       string
	BatchSize      int
	BatchWait      time.Duration
	MaxEventBytes  int
	// Kafka and Redis are the connections' security: TLS, SASL, the Redis
	// ACL user, their passwords (secrets: read from a file or the
	// environment, never the command line). Not used with -embedded.
	Kafka conn.Kafka
	Redis conn.Redis
	// KafkaCompression of produced records (producers.Config.Compression).
	KafkaCompression string
	MaxFuture        time.Duration
	DefaultTZ        string
	HTTPAddr         string
	LogFormat        string
	LogLevel         string
	PrintDecisions   bool
	Simulate         bool
	SimUsers         int
	SimRate          float64
	SimHistoryDays   int
	ShutdownGrace    time.Duration
	Policy           string
	// ShadowPolicy is a candidate policy decided beside the live one
	// (docs/policy-testing.md); ShadowTopic gets its records.
	ShadowPolicy  string
	ShadowTopic   string
	JobsInterval  time.Duration
	SpansFile     string
	UserIDHMACKey string
	RedisCluster  bool
	// Admin is the admin listener's tokens, TLS, timeouts and caps.
	Admin adminConfig
}

// envName is the variable of a flag: the same rule as the secrets'.
var envName = secret.EnvName

// parseConfig reads flags, then FENQI_* variables for flags not given, then
// validates. Errors name the setting both ways.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("fenqid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.Embedded, "embedded", false, "run an in-process Kafka-protocol broker (kfake) and Redis, for trying fenqi on one machine")
	fs.StringVar(&c.DataDir, "data-dir", ".fenqi-data", "embedded mode: where the broker keeps its topics and offsets across restarts")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "localhost:9092", "comma-separated Kafka bootstrap brokers (ignored with -embedded)")
	fs.StringVar(&c.RedisAddr, "redis-addr", "localhost:6379", "Redis address host:port (ignored with -embedded)")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "-redis-addr names seed nodes (comma-separated) of a Redis Cluster")
	fs.IntVar(&c.RedisDB, "redis-db", 0, "Redis database number")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "", "prefix of every Redis key fenqid writes, so that a second fenqi (a replay, a test) can share a Redis in a namespace of its own (no '{' or '}')")
	fs.StringVar(&c.GroupID, "group-id", consumers.DefaultGroupID, "Kafka consumer group id")
	d := consumers.DefaultTopics()
	fs.StringVar(&c.Topics.Payments, "topic-payments", d.Payments, "input topic of payment events")
	fs.StringVar(&c.Topics.Logins, "topic-logins", d.Logins, "input topic of login events")
	fs.StringVar(&c.Topics.Repayments, "topic-repayments", d.Repayments, "input topic of repayment (bill due / paid) events")
	fs.StringVar(&c.Topics.Profiles, "topic-profiles", d.Profiles, "input topic of credit profile events")
	fs.StringVar(&c.Topics.Operator, "topic-operator", d.Operator, "input topic of operator events (overrides, special quotas, quota checks), which the admin API writes")
	fs.StringVar(&c.DecisionsTopic, "topic-decisions", events.TopicDecisions, "output topic of decisions")
	fs.StringVar(&c.DLQTopic, "topic-dlq", events.TopicDLQ, "output topic of dead letters (records that cannot be processed)")
	fs.StringVar(&c.KafkaCompression, "kafka-compression", "lz4", "compression of the records fenqid produces: none, gzip, snappy, lz4 or zstd")
	fs.IntVar(&c.BatchSize, "batch-size", consumers.DefaultBatchSize, "most records per batch (one Redis round trip and one commit per batch)")
	fs.DurationVar(&c.BatchWait, "batch-wait", 10*time.Millisecond, "the longest a batch waits for more records after its first (only while the batch before it is being written)")
	fs.IntVar(&c.MaxEventBytes, "max-event-bytes", events.DefaultMaxBytes, "largest record value accepted; larger ones are dead-lettered")
	fs.DurationVar(&c.MaxFuture, "max-future", events.DefaultMaxFuture, "how far in the future an event time may be before it is dead-lettered")
	fs.StringVar(&c.DefaultTZ, "default-timezone", "Asia/Shanghai", "time zone of users whose profile names none")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "admin listener: /healthz, /readyz, /metrics and the /v1 API (empty = off; beyond loopback, e.g. :8080, it needs an admin token or -admin-insecure)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.PrintDecisions, "print-decisions", false, "print each decision as one readable line once the broker acknowledged it")
	fs.BoolVar(&c.Simulate, "simulate", false, "produce simulated traffic into the input topics")
	fs.IntVar(&c.SimUsers, "sim-users", simulator.DefaultUsers, "simulated users")
	fs.Float64Var(&c.SimRate, "sim-rate", simulator.DefaultRate, "simulated events per second")
	fs.IntVar(&c.SimHistoryDays, "sim-history-days", simulator.DefaultHistoryDays, "days of back-dated history the simulated users get at start (0 = none)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 30*time.Second, "how long the batch in flight may take to finish on shutdown")
	fs.StringVar(&c.Policy, "policy", "wechat", "policy file (YAML; reloaded on SIGHUP and when it changes) or a preset: wechat, huabei, baitiao")
	fs.StringVar(&c.ShadowPolicy, "shadow-policy", "", "a candidate policy (file or preset) decided beside the live one on every event and recompute, from the same state; its decisions go to -topic-shadow, never to -topic-decisions, and change no state (docs/policy-testing.md)")
	fs.StringVar(&c.ShadowTopic, "topic-shadow", shadow.DefaultTopic, "output topic of the shadow policy's decisions, each paired with the live one (with -shadow-policy)")
	adminSecrets := c.Admin.register(fs)
	fs.StringVar(&c.SpansFile, "spans-file", "", "also write every span as a JSON line to this file (a look at traces without a collector); exporters otherwise come from the OTEL_* variables")
	fs.StringVar(&c.UserIDHMACKey, "user-id-hmac-key", "", "when set (≥ 16 bytes), spans carry fenqi.user.hmac, a keyed HMAC of the user id; by default no user id appears in spans or logs")
	fs.DurationVar(&c.JobsInterval, "jobs-interval", time.Second, "how often the overdue-check and recompute schedules are looked at when idle")
	security := []*conn.Flags{conn.KafkaFlags(fs, &c.Kafka), conn.RedisFlags(fs, &c.Redis)}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags or FENQI_* variables)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		// A secret's -NAME is refused on the command line, and its
		// variable is read by its Resolve.
		if given[f.Name] || secret.IsSecret(f) {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("setting %s (-%s): %q: %w", envName(f.Name), f.Name, v, err))
			}
		}
	})
	for _, sf := range security {
		// -NAME-file was filled from FENQI_NAME_FILE above.
		if err := sf.Resolve(getenv, false); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, adminSecrets.resolve(getenv)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("setting -%s (%s): %s", flagName, envName(flagName), fmt.Sprintf(format, a...)))
	}
	if !c.Embedded {
		if len(c.brokers()) == 0 {
			bad("kafka-brokers", "no broker given")
		}
		for _, b := range c.brokers() {
			if !strings.Contains(b, ":") {
				bad("kafka-brokers", "%q is not host:port", b)
			}
		}
		for _, p := range c.Kafka.Problems() {
			bad(p.Flag, "%s", p.Msg)
		}
		for _, a := range c.redisAddrs() {
			if !strings.Contains(a, ":") {
				bad("redis-addr", "%q is not host:port", a)
			}
		}
		if len(c.redisAddrs()) > 1 && !c.RedisCluster {
			bad("redis-addr", "several addresses are for a cluster: add -redis-cluster")
		}
		for _, p := range c.Redis.Problems() {
			bad(p.Flag, "%s", p.Msg)
		}
	} else if c.DataDir == "" {
		bad("data-dir", "must not be empty in embedded mode")
	}
	if c.GroupID == "" {
		bad("group-id", "must not be empty")
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") || len(c.RedisPrefix) > 64 {
		bad("redis-prefix", "must be at most 64 bytes, without '{' or '}' (they would move keys to other cluster slots), got %q", c.RedisPrefix)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("batch-size", "must be 1..10000, got %d", c.BatchSize)
	}
	if c.BatchWait < 0 || c.BatchWait > 10*time.Second {
		bad("batch-wait", "must be 0..10s, got %v", c.BatchWait)
	}
	if _, err := producers.ParseCompression(c.KafkaCompression); err != nil {
		bad("kafka-compression", "must be none, gzip, snappy, lz4 or zstd, got %q", c.KafkaCompression)
	}
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > 1<<20 {
		bad("max-event-bytes", "must be 1 KiB..1 MiB, got %d", c.MaxEventBytes)
	}
	if c.MaxFuture < 0 {
		bad("max-future", "must not be negative")
	}
	if c.DefaultTZ == "" || c.DefaultTZ == "Local" {
		bad("default-timezone", "must name an IANA zone such as Asia/Shanghai, got %q", c.DefaultTZ)
	} else if _, err := time.LoadLocation(c.DefaultTZ); err != nil {
		bad("default-timezone", "%v", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log-format", "must be json or text, got %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.UserIDHMACKey != "" && len(c.UserIDHMACKey) < 16 {
		bad("user-id-hmac-key", "must be at least 16 bytes, got %d", len(c.UserIDHMACKey))
	}
	if c.Policy == "" {
		bad("policy", "must name a policy file or a preset")
	}
	if c.JobsInterval < 10*time.Millisecond || c.JobsInterval > time.Hour {
		bad("jobs-interval", "must be 10ms..1h, got %v", c.JobsInterval)
	}
	if c.SimUsers < 1 {
		bad("sim-users", "must be ≥ 1")
	}
	if !(c.SimRate > 0) || math.IsInf(c.SimRate, 0) {
		bad("sim-rate", "must be > 0")
	}
	if c.SimHistoryDays < 0 || c.SimHistoryDays > simulator.MaxHistoryDays {
		bad("sim-history-days", "must be 0..%d, got %d", simulator.MaxHistoryDays, c.SimHistoryDays)
	}
	names := map[string]string{}
	for _, ft := range [][2]string{
		{"topic-payments", c.Topics.Payments}, {"topic-logins", c.Topics.Logins}, {"topic-repayments", c.Topics.Repayments},
		{"topic-profiles", c.Topics.Profiles}, {"topic-operator", c.Topics.Operator}, {"topic-decisions", c.DecisionsTopic}, {"topic-dlq", c.DLQTopic},
		{"topic-shadow", c.ShadowTopic},
	} {
		flagName, topic := ft[0], ft[1]
		if topic == "" {
			bad(flagName, "must not be empty")
			continue
		}
		if other, ok := names[topic]; ok {
			bad(flagName, "topic %q is also the value of -%s", topic, other)
		}
		names[topic] = flagName
	}
	errs = append(errs, c.Admin.validate(c.HTTPAddr)...)
	return errors.Join(errs...)
}

func (c *config) brokers() []string    { return splitList(c.KafkaBrokers) }
func (c *config) redisAddrs() []string { return splitList(c.RedisAddr) }

// splitList reads a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c *config) allTopics() []string {
	ts := append(c.Topics.List(), c.DecisionsTopic, c.DLQTopic)
	if c.ShadowPolicy != "" {
		ts = append(ts, c.ShadowTopic)
	}
	return ts
}
