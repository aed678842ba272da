package main

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/conn/conntest"
)

// env is a fake environment: only the variables a test sets exist.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// parse runs parseConfig with args and the fake environment, returning what
// the flag package printed too.
func parse(t *testing.T, args []string, e env) (*config, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	c, err := parseConfig(args, e.get, &stderr)
	return c, stderr.String(), err
}

func defaultConfig() config {
	return config{
		DataDir:          ".fenqi-data",
		KafkaBrokers:     "localhost:9092",
		RedisAddr:        "localhost:6379",
		GroupID:          "fenqi",
		Topics:           consumers.DefaultTopics(),
		DecisionsTopic:   "fenqi.decisions",
		DLQTopic:         "fenqi.dlq",
		BatchSize:        consumers.DefaultBatchSize,
		BatchWait:        10 * time.Millisecond,
		MaxEventBytes:    64 << 10,
		KafkaCompression: "lz4",
		MaxFuture:        5 * time.Minute,
		DefaultTZ:        "Asia/Shanghai",
		HTTPAddr:         "127.0.0.1:8080",
		LogFormat:        "json",
		LogLevel:         "info",
		SimUsers:         3000,
		SimRate:          200,
		SimHistoryDays:   90,
		ShutdownGrace:    30 * time.Second,
		Policy:           "wechat",
		ShadowTopic:      "fenqi.shadow.decisions",
		JobsInterval:     time.Second,
		Admin:            defaultAdminConfig(), // spelled out in TestAdminDefaults
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); *c != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", *c, want)
	}
	if got, want := c.brokers(), []string{"localhost:9092"}; !slices.Equal(got, want) {
		t.Errorf("brokers %q, want %q", got, want)
	}
	want := []string{"fenqi.payments", "fenqi.logins", "fenqi.repayments", "fenqi.profiles", "fenqi.operator", "fenqi.decisions", "fenqi.dlq"}
	if got := c.allTopics(); !slices.Equal(got, want) {
		t.Errorf("all topics %q, want %q", got, want)
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"batch-size":       "FENQI_BATCH_SIZE",
		"topic-payments":   "FENQI_TOPIC_PAYMENTS",
		"default-timezone": "FENQI_DEFAULT_TIMEZONE",
		"embedded":         "FENQI_EMBEDDED",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// Every setting: a value other than the default, and the field it lands in.
// The same value given as the flag or as the variable gives the same
// config. TestEverySettingIsCovered keeps this list complete.
var settings = []setting{
	{"embedded", "true", func(c *config) { c.Embedded = true }},
	{"data-dir", "/var/lib/fenqi", func(c *config) { c.DataDir = "/var/lib/fenqi" }},
	{"kafka-brokers", "kafka-1:9092,kafka-2:9092", func(c *config) { c.KafkaBrokers = "kafka-1:9092,kafka-2:9092" }},
	{"redis-addr", "redis:6380", func(c *config) { c.RedisAddr = "redis:6380" }},
	{"redis-db", "3", func(c *config) { c.RedisDB = 3 }},
	{"redis-prefix", "replay1:", func(c *config) { c.RedisPrefix = "replay1:" }},
	{"group-id", "fenqi-blue", func(c *config) { c.GroupID = "fenqi-blue" }},
	{"topic-payments", "up.payments", func(c *config) { c.Topics.Payments = "up.payments" }},
	{"topic-logins", "up.logins", func(c *config) { c.Topics.Logins = "up.logins" }},
	{"topic-repayments", "up.repayments", func(c *config) { c.Topics.Repayments = "up.repayments" }},
	{"topic-profiles", "up.profiles", func(c *config) { c.Topics.Profiles = "up.profiles" }},
	{"topic-operator", "up.operator", func(c *config) { c.Topics.Operator = "up.operator" }},
	{"topic-decisions", "down.decisions", func(c *config) { c.DecisionsTopic = "down.decisions" }},
	{"topic-dlq", "down.dlq", func(c *config) { c.DLQTopic = "down.dlq" }},
	{"batch-size", "200", func(c *config) { c.BatchSize = 200 }},
	{"batch-wait", "50ms", func(c *config) { c.BatchWait = 50 * time.Millisecond }},
	{"max-event-bytes", "2048", func(c *config) { c.MaxEventBytes = 2048 }},
	{"kafka-compression", "zstd", func(c *config) { c.KafkaCompression = "zstd" }},
	{"max-future", "1m", func(c *config) { c.MaxFuture = time.Minute }},
	{"default-timezone", "Asia/Tokyo", func(c *config) { c.DefaultTZ = "Asia/Tokyo" }},
	{"http-addr", "127.0.0.1:9090", func(c *config) { c.HTTPAddr = "127.0.0.1:9090" }},
	{"log-format", "text", func(c *config) { c.LogFormat = "text" }},
	{"log-level", "debug", func(c *config) { c.LogLevel = "debug" }},
	{"print-decisions", "true", func(c *config) { c.PrintDecisions = true }},
	{"simulate", "true", func(c *config) { c.Simulate = true }},
	{"sim-users", "50000", func(c *config) { c.SimUsers = 50000 }},
	{"sim-rate", "2000.5", func(c *config) { c.SimRate = 2000.5 }},
	{"sim-history-days", "30", func(c *config) { c.SimHistoryDays = 30 }},
	{"shutdown-grace", "1m30s", func(c *config) { c.ShutdownGrace = 90 * time.Second }},
	{"policy", "huabei", func(c *config) { c.Policy = "huabei" }},
	{"shadow-policy", "huabei", func(c *config) { c.ShadowPolicy = "huabei" }},
	{"topic-shadow", "try.shadow", func(c *config) { c.ShadowTopic = "try.shadow" }},
	{"jobs-interval", "250ms", func(c *config) { c.JobsInterval = 250 * time.Millisecond }},
	{"spans-file", "/tmp/spans.jsonl", func(c *config) { c.SpansFile = "/tmp/spans.jsonl" }},
	{"user-id-hmac-key", "0123456789abcdef", func(c *config) { c.UserIDHMACKey = "0123456789abcdef" }},
	{"redis-cluster", "true", func(c *config) { c.RedisCluster = true }},
}

// setting is one setting of the tables: a flag, a value, the settings it
// needs to be valid ("flag=value", given the same way), and the fields
// they all land in.
type setting struct {
	flag, value string
	set         func(*config)
}

// withSettings is a setting and the others it needs.
type withSettings struct {
	setting
	with []string
}

// allSettings are the settings of both tables.
func allSettings(t *testing.T) []withSettings {
	out := append(securitySettings(t), adminSettings(t)...)
	for _, s := range settings {
		out = append(out, withSettings{s, nil})
	}
	return out
}

// securitySettings are the settings of the connections' security, each
// with the others it needs (the files are made for t).
func securitySettings(t *testing.T) []withSettings {
	pki := conntest.New(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := func(flag, value string, set func(*config), with ...string) withSettings {
		return withSettings{setting{flag, value, set}, with}
	}
	var out []withSettings
	for _, svc := range []struct {
		name string
		tls  func(*config) *conn.TLS
	}{
		{"kafka", func(c *config) *conn.TLS { return &c.Kafka.TLS }},
		{"redis", func(c *config) *conn.TLS { return &c.Redis.TLS }},
	} {
		n := svc.name
		on := n + "-tls=true"
		mtls := func(c *config) {
			*svc.tls(c) = conn.TLS{Enabled: true, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}
		}
		out = append(out,
			s(n+"-tls", "true", func(c *config) { svc.tls(c).Enabled = true }),
			s(n+"-tls-ca-file", pki.CAFile, func(c *config) { *svc.tls(c) = conn.TLS{Enabled: true, CAFile: pki.CAFile} }, on),
			s(n+"-tls-cert-file", pki.ClientCertFile, mtls, on, n+"-tls-key-file="+pki.ClientKeyFile),
			s(n+"-tls-key-file", pki.ClientKeyFile, mtls, on, n+"-tls-cert-file="+pki.ClientCertFile),
			s(n+"-tls-server-name", n+".internal", func(c *config) { *svc.tls(c) = conn.TLS{Enabled: true, ServerName: n + ".internal"} }, on),
		)
	}
	scram := func(c *config) {
		c.Kafka.SASL = conn.SASL{Mechanism: "SCRAM-SHA-512", Username: "fenqi", Password: "from-file"}
	}
	return append(out,
		s("kafka-sasl-mechanism", "SCRAM-SHA-512", scram, "kafka-sasl-username=fenqi", "kafka-sasl-password-file="+pw),
		s("kafka-sasl-username", "fenqi", scram, "kafka-sasl-mechanism=SCRAM-SHA-512", "kafka-sasl-password-file="+pw),
		s("kafka-sasl-password-file", pw, scram, "kafka-sasl-mechanism=SCRAM-SHA-512", "kafka-sasl-username=fenqi"),
		s("redis-username", "fenqi", func(c *config) { c.Redis.Username, c.Redis.Password = "fenqi", "from-file" }, "redis-password-file="+pw),
		s("redis-password-file", pw, func(c *config) { c.Redis.Password = "from-file" }),
	)
}

// secrets are the flags refused on the command line.
var secrets = []string{"kafka-sasl-password", "redis-password", "admin-token", "admin-read-token"}

func TestEverySettingFromFlagOrVariable(t *testing.T) {
	t.Parallel()
	for _, s := range allSettings(t) {
		t.Run(s.flag, func(t *testing.T) {
			t.Parallel()
			want := defaultConfig()
			s.set(&want)
			if want == defaultConfig() {
				t.Fatalf("the test value %q of -%s is the default", s.value, s.flag)
			}
			args, vars := []string{"-" + s.flag + "=" + s.value}, env{envName(s.flag): s.value}
			for _, w := range s.with {
				name, v, _ := strings.Cut(w, "=")
				args, vars[envName(name)] = append(args, "-"+w), v
			}
			byFlag, _, err := parse(t, args, nil)
			if err != nil {
				t.Fatalf("%s: %v", args, err)
			}
			if *byFlag != want {
				t.Errorf("%s:\n got %+v\nwant %+v", args, *byFlag, want)
			}
			byEnv, _, err := parse(t, nil, vars)
			if err != nil {
				t.Fatalf("%s=%s: %v", envName(s.flag), s.value, err)
			}
			if *byEnv != want {
				t.Errorf("%s=%s:\n got %+v\nwant %+v", envName(s.flag), s.value, *byEnv, want)
			}
		})
	}
}

// The settings table above names every flag fenqid has, so a new flag
// without a test of its variable fails here.
func TestEverySettingIsCovered(t *testing.T) {
	t.Parallel()
	_, stderr, err := parse(t, []string{"-help"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v, want flag.ErrHelp", err)
	}
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(stderr, -1) {
		listed = append(listed, m[1])
	}
	tested := slices.Clone(secrets)
	for _, s := range allSettings(t) {
		tested = append(tested, s.flag)
	}
	slices.Sort(listed)
	slices.Sort(tested)
	if !slices.Equal(listed, tested) {
		t.Errorf("flags in -help: %q\nflags tested: %q", listed, tested)
	}
}

func TestFlagWinsOverVariable(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, []string{"-batch-size", "300", "-log-level=warn", "-embedded=false"}, env{
		"FENQI_BATCH_SIZE":    "200",
		"FENQI_LOG_LEVEL":     "debug",
		"FENQI_EMBEDDED":      "true",
		"FENQI_REDIS_ADDR":    "redis:6379", // no flag: the variable applies
		"FENQI_KAFKA_BROKERS": "kafka-1:9092",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.BatchSize, want.LogLevel, want.Embedded = 300, "warn", false
	want.RedisAddr, want.KafkaBrokers = "redis:6379", "kafka-1:9092"
	if *c != want {
		t.Errorf("\n got %+v\nwant %+v", *c, want)
	}
}

// A flag given on the command line wins even when its variable is bad: the
// variable is not read at all.
func TestFlagWinsOverBadVariable(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, []string{"-batch-size=42"}, env{"FENQI_BATCH_SIZE": "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 42 {
		t.Errorf("batch size %d, want 42", c.BatchSize)
	}
}

func TestBrokersList(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, nil, env{"FENQI_KAFKA_BROKERS": " kafka-1:9092, ,kafka-2:9092 ,"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.brokers(), []string{"kafka-1:9092", "kafka-2:9092"}; !slices.Equal(got, want) {
		t.Errorf("brokers %q, want %q", got, want)
	}
}

// Every validation error names the setting both ways, whether the value
// came from the flag or the variable.
func TestValidationErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  env
		want string // the whole error
	}{
		{"no broker", []string{"-kafka-brokers", " , "}, nil,
			"setting -kafka-brokers (FENQI_KAFKA_BROKERS): no broker given"},
		{"empty broker flag", []string{"-kafka-brokers="}, nil,
			"setting -kafka-brokers (FENQI_KAFKA_BROKERS): no broker given"},
		{"broker without port", []string{"-kafka-brokers", "kafka-1:9092,kafka-2"}, nil,
			`setting -kafka-brokers (FENQI_KAFKA_BROKERS): "kafka-2" is not host:port`},
		{"broker without port, variable", nil, env{"FENQI_KAFKA_BROKERS": "kafka-2"},
			`setting -kafka-brokers (FENQI_KAFKA_BROKERS): "kafka-2" is not host:port`},
		{"redis without port", []string{"-redis-addr", "redis"}, nil,
			`setting -redis-addr (FENQI_REDIS_ADDR): "redis" is not host:port`},
		{"embedded without data dir", []string{"-embedded", "-data-dir="}, nil,
			"setting -data-dir (FENQI_DATA_DIR): must not be empty in embedded mode"},
		{"empty group", []string{"-group-id="}, nil,
			"setting -group-id (FENQI_GROUP_ID): must not be empty"},
		{"batch size 0", []string{"-batch-size", "0"}, nil,
			"setting -batch-size (FENQI_BATCH_SIZE): must be 1..10000, got 0"},
		{"batch size 0, variable", nil, env{"FENQI_BATCH_SIZE": "0"},
			"setting -batch-size (FENQI_BATCH_SIZE): must be 1..10000, got 0"},
		{"batch size too big", []string{"-batch-size", "10001"}, nil,
			"setting -batch-size (FENQI_BATCH_SIZE): must be 1..10000, got 10001"},
		{"negative batch wait", []string{"-batch-wait", "-1ms"}, nil,
			"setting -batch-wait (FENQI_BATCH_WAIT): must be 0..10s, got -1ms"},
		{"batch wait too long", nil, env{"FENQI_BATCH_WAIT": "11s"},
			"setting -batch-wait (FENQI_BATCH_WAIT): must be 0..10s, got 11s"},
		{"unknown compression", []string{"-kafka-compression", "brotli"}, nil,
			"setting -kafka-compression (FENQI_KAFKA_COMPRESSION): must be none, gzip, snappy, lz4 or zstd, got \"brotli\""},
		{"max event bytes too small", []string{"-max-event-bytes", "1023"}, nil,
			"setting -max-event-bytes (FENQI_MAX_EVENT_BYTES): must be 1 KiB..1 MiB, got 1023"},
		{"max event bytes too big", []string{"-max-event-bytes", "1048577"}, nil,
			"setting -max-event-bytes (FENQI_MAX_EVENT_BYTES): must be 1 KiB..1 MiB, got 1048577"},
		{"negative max future", []string{"-max-future", "-1s"}, nil,
			"setting -max-future (FENQI_MAX_FUTURE): must not be negative"},
		{"unknown zone", nil, env{"FENQI_DEFAULT_TIMEZONE": "Mars/Olympus_Mons"},
			"setting -default-timezone (FENQI_DEFAULT_TIMEZONE): unknown time zone Mars/Olympus_Mons"},
		{"log format", []string{"-log-format", "xml"}, nil,
			`setting -log-format (FENQI_LOG_FORMAT): must be json or text, got "xml"`},
		{"log level", nil, env{"FENQI_LOG_LEVEL": "trace"},
			`setting -log-level (FENQI_LOG_LEVEL): must be debug, info, warn or error, got "trace"`},
		{"short hmac key", nil, env{"FENQI_USER_ID_HMAC_KEY": "0123456789abcde"},
			"setting -user-id-hmac-key (FENQI_USER_ID_HMAC_KEY): must be at least 16 bytes, got 15"},
		{"empty policy", []string{"-policy="}, nil,
			"setting -policy (FENQI_POLICY): must name a policy file or a preset"},
		{"jobs interval too short", []string{"-jobs-interval", "1ms"}, nil,
			"setting -jobs-interval (FENQI_JOBS_INTERVAL): must be 10ms..1h, got 1ms"},
		{"jobs interval too long", nil, env{"FENQI_JOBS_INTERVAL": "2h"},
			"setting -jobs-interval (FENQI_JOBS_INTERVAL): must be 10ms..1h, got 2h0m0s"},
		{"no simulated users", []string{"-sim-users", "0"}, nil,
			"setting -sim-users (FENQI_SIM_USERS): must be ≥ 1"},
		{"zero rate", []string{"-sim-rate", "0"}, nil,
			"setting -sim-rate (FENQI_SIM_RATE): must be > 0"},
		{"negative rate", nil, env{"FENQI_SIM_RATE": "-5"},
			"setting -sim-rate (FENQI_SIM_RATE): must be > 0"},
		{"empty payments topic", []string{"-topic-payments="}, nil,
			"setting -topic-payments (FENQI_TOPIC_PAYMENTS): must not be empty"},
		{"empty dlq topic", []string{"-topic-dlq="}, nil,
			"setting -topic-dlq (FENQI_TOPIC_DLQ): must not be empty"},
		{"TLS file while TLS is off", []string{"-kafka-tls-ca-file", "/etc/fenqi/ca.pem"}, nil,
			"setting -kafka-tls-ca-file (FENQI_KAFKA_TLS_CA_FILE): given while -kafka-tls is off: turn it on (FENQI_KAFKA_TLS=true) or drop this setting"},
		{"TLS server name while TLS is off, variable", nil, env{"FENQI_REDIS_TLS_SERVER_NAME": "redis", "FENQI_REDIS_TLS": "false"},
			"setting -redis-tls-server-name (FENQI_REDIS_TLS_SERVER_NAME): given while -redis-tls is off: turn it on (FENQI_REDIS_TLS=true) or drop this setting"},
		{"certificate without key", []string{"-kafka-tls", "-kafka-tls-cert-file", "/etc/fenqi/client.pem"}, nil,
			"setting -kafka-tls-cert-file (FENQI_KAFKA_TLS_CERT_FILE): a client certificate needs its key: set -kafka-tls-key-file"},
		{"key without certificate", nil, env{"FENQI_REDIS_TLS": "true", "FENQI_REDIS_TLS_KEY_FILE": "/etc/fenqi/client-key.pem"},
			"setting -redis-tls-key-file (FENQI_REDIS_TLS_KEY_FILE): a client key needs its certificate: set -redis-tls-cert-file"},
		{"unreadable CA file", []string{"-redis-tls", "-redis-tls-ca-file", "/nonexistent/ca.pem"}, nil,
			"setting -redis-tls-ca-file (FENQI_REDIS_TLS_CA_FILE): cannot read the CA file: open /nonexistent/ca.pem: no such file or directory"},
		{"unknown mechanism", nil, env{"FENQI_KAFKA_SASL_MECHANISM": "GSSAPI"},
			`setting -kafka-sasl-mechanism (FENQI_KAFKA_SASL_MECHANISM): must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (or empty for none), got "GSSAPI"`},
		{"mechanism without username or password", []string{"-kafka-sasl-mechanism", "PLAIN"}, nil,
			"setting -kafka-sasl-username (FENQI_KAFKA_SASL_USERNAME): SASL PLAIN needs a username\n" +
				"setting -kafka-sasl-password (FENQI_KAFKA_SASL_PASSWORD): SASL PLAIN needs a password: set FENQI_KAFKA_SASL_PASSWORD or name a file with -kafka-sasl-password-file"},
		{"mechanism without password", []string{"-kafka-sasl-mechanism", "SCRAM-SHA-256", "-kafka-sasl-username", "fenqi"}, nil,
			"setting -kafka-sasl-password (FENQI_KAFKA_SASL_PASSWORD): SASL SCRAM-SHA-256 needs a password: set FENQI_KAFKA_SASL_PASSWORD or name a file with -kafka-sasl-password-file"},
		{"password without mechanism", nil, env{"FENQI_KAFKA_SASL_PASSWORD": "s3cret"},
			"setting -kafka-sasl-password (FENQI_KAFKA_SASL_PASSWORD): given without -kafka-sasl-mechanism: set the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) or drop the password"},
		{"redis user without password", []string{"-redis-username", "fenqi"}, nil,
			"setting -redis-username (FENQI_REDIS_USERNAME): an ACL user needs its password: set FENQI_REDIS_PASSWORD or name a file with -redis-password-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, tt.args, tt.env)
			if err == nil {
				t.Fatalf("accepted: %+v", *c)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

// In embedded mode the broker and Redis addresses are not used, so they
// are not checked.
func TestEmbeddedIgnoresAddresses(t *testing.T) {
	t.Parallel()
	c, _, err := parse(t, []string{"-embedded", "-kafka-brokers", "nope", "-redis-addr", "nope"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded {
		t.Error("not embedded")
	}
}

// An operator fixing a deployment sees every mistake in one go, in a
// fixed order (the order of the settings), one per line.
func TestSeveralErrorsAtOnce(t *testing.T) {
	t.Parallel()
	_, _, err := parse(t, []string{"-batch-size", "0", "-log-level", "trace"},
		env{"FENQI_REDIS_ADDR": "redis", "FENQI_SIM_RATE": "0"})
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`setting -redis-addr (FENQI_REDIS_ADDR): "redis" is not host:port`,
		"setting -batch-size (FENQI_BATCH_SIZE): must be 1..10000, got 0",
		`setting -log-level (FENQI_LOG_LEVEL): must be debug, info, warn or error, got "trace"`,
		"setting -sim-rate (FENQI_SIM_RATE): must be > 0",
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A variable that does not parse names the variable (and the flag), and
// quotes the value. Every bad variable is reported, not just the first.
func TestBadVariableValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  env
		want []string // substrings, in order, one line each
	}{
		{"batch size", env{"FENQI_BATCH_SIZE": "abc"},
			[]string{`setting FENQI_BATCH_SIZE (-batch-size): "abc": parse error`}},
		{"duration without unit", env{"FENQI_BATCH_WAIT": "10"},
			[]string{`setting FENQI_BATCH_WAIT (-batch-wait): "10": parse error`}},
		{"bool", env{"FENQI_EMBEDDED": "maybe"},
			[]string{`setting FENQI_EMBEDDED (-embedded): "maybe": parse error`}},
		{"float", env{"FENQI_SIM_RATE": "fast"},
			[]string{`setting FENQI_SIM_RATE (-sim-rate): "fast": parse error`}},
		{"two at once", env{"FENQI_REDIS_DB": "one", "FENQI_BATCH_SIZE": "abc"},
			[]string{`FENQI_BATCH_SIZE (-batch-size): "abc"`, `FENQI_REDIS_DB (-redis-db): "one"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, nil, tt.env)
			if err == nil {
				t.Fatalf("accepted: %+v", *c)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d %q does not contain %q", i, lines[i], w)
				}
			}
		})
	}
}

// A bad flag value is reported by the flag package, naming the flag, with
// the usage on stderr.
func TestBadFlagValue(t *testing.T) {
	t.Parallel()
	_, stderr, err := parse(t, []string{"-batch-size", "abc"}, nil)
	if err == nil || !strings.Contains(err.Error(), `invalid value "abc" for flag -batch-size`) {
		t.Errorf("error %v, want one naming -batch-size and the value", err)
	}
	if !strings.Contains(stderr, "-batch-size") {
		t.Errorf("no usage on stderr:\n%s", stderr)
	}
}

func TestArgumentsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"positional", []string{"run"}, `unexpected argument "run" (settings are flags or FENQI_* variables)`},
		{"after flags", []string{"-batch-size", "5", "extra"}, `unexpected argument "extra"`},
		{"after --", []string{"--", "-batch-size=5"}, `unexpected argument "-batch-size=5"`},
		{"unknown flag", []string{"-frobnicate"}, "flag provided but not defined: -frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, tt.args, nil)
			if err == nil {
				t.Fatalf("accepted: %+v", *c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	_, stderr, err := parse(t, []string{"-help"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-kafka-brokers", "-batch-size", "-policy", "wechat, huabei, baitiao"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help lacks %q:\n%s", want, stderr)
		}
	}
}

// One topic name for two settings is refused, naming both settings, and
// always the same way: the later setting in the fixed order (payments,
// logins, repayments, profiles, decisions, dlq) is the one reported,
// whatever the order on the command line or where the values came from.
func TestDuplicateTopicsRefusedDeterministically(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  env
		want []string
	}{
		{"input twice", []string{"-topic-logins", "fenqi.payments"}, nil, []string{
			`setting -topic-logins (FENQI_TOPIC_LOGINS): topic "fenqi.payments" is also the value of -topic-payments`}},
		{"input twice, reversed order", []string{"-topic-logins", "t", "-topic-payments", "t"}, nil, []string{
			`setting -topic-logins (FENQI_TOPIC_LOGINS): topic "t" is also the value of -topic-payments`}},
		{"input twice, flag and variable", []string{"-topic-payments", "t"}, env{"FENQI_TOPIC_LOGINS": "t"}, []string{
			`setting -topic-logins (FENQI_TOPIC_LOGINS): topic "t" is also the value of -topic-payments`}},
		{"output is an input", nil, env{"FENQI_TOPIC_DLQ": "fenqi.profiles"}, []string{
			`setting -topic-dlq (FENQI_TOPIC_DLQ): topic "fenqi.profiles" is also the value of -topic-profiles`}},
		{"operator topic is an input", []string{"-topic-operator", "fenqi.profiles"}, nil, []string{
			`setting -topic-operator (FENQI_TOPIC_OPERATOR): topic "fenqi.profiles" is also the value of -topic-profiles`}},
		{"outputs the same", []string{"-topic-dlq", "fenqi.decisions"}, nil, []string{
			`setting -topic-dlq (FENQI_TOPIC_DLQ): topic "fenqi.decisions" is also the value of -topic-decisions`}},
		{"two pairs", []string{"-topic-repayments", "a", "-topic-payments", "a", "-topic-dlq", "b", "-topic-profiles", "b"}, nil, []string{
			`setting -topic-repayments (FENQI_TOPIC_REPAYMENTS): topic "a" is also the value of -topic-payments`,
			`setting -topic-dlq (FENQI_TOPIC_DLQ): topic "b" is also the value of -topic-profiles`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 20 { // map iteration order must not leak into the message
				_, _, err := parse(t, tt.args, tt.env)
				if err == nil {
					t.Fatal("accepted")
				}
				if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.want) {
					t.Fatalf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
			}
		})
	}
}

// The variables read are exactly FENQI_<FLAG>: nothing else of the
// environment is looked at.
func TestOnlyFenqiVariablesRead(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	_, err := parseConfig(nil, func(k string) string { read[k] = true; return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range allSettings(t) {
		want = append(want, envName(s.flag))
	}
	for _, name := range secrets {
		want = append(want, envName(name))
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(read)); !slices.Equal(got, want) {
		t.Errorf("variables read %q\nwant %q", got, want)
	}
}

// A secret is read from its variable or a file, never from the command
// line; no error shows it.
func TestSecrets(t *testing.T) {
	t.Parallel()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     env
		want    string // Redis password
		wantErr string
	}{
		{"variable", nil, env{"FENQI_REDIS_PASSWORD": "s3cret"}, "s3cret", ""},
		{"file flag", []string{"-redis-password-file", pw}, nil, "from-file", ""},
		{"file variable", nil, env{"FENQI_REDIS_PASSWORD_FILE": pw}, "from-file", ""},
		{"file flag wins over file variable", []string{"-redis-password-file", pw}, env{"FENQI_REDIS_PASSWORD_FILE": "/nonexistent"}, "from-file", ""},
		{"flag refused", []string{"-redis-password", "s3cret"}, nil, "",
			"-redis-password: a secret is not accepted on the command line (any local user can read it there); set FENQI_REDIS_PASSWORD in the environment or name a file with -redis-password-file / FENQI_REDIS_PASSWORD_FILE"},
		{"flag refused even with the variable", []string{"-kafka-sasl-password=s3cret"}, env{"FENQI_KAFKA_SASL_PASSWORD": "s3cret"}, "",
			"-kafka-sasl-password: a secret is not accepted on the command line"},
		{"file and variable", nil, env{"FENQI_REDIS_PASSWORD_FILE": pw, "FENQI_REDIS_PASSWORD": "s3cret"}, "",
			"FENQI_REDIS_PASSWORD and FENQI_REDIS_PASSWORD_FILE are both set: keep one"},
		{"missing file", []string{"-kafka-sasl-password-file", "/nonexistent/pw"}, nil, "",
			"reading secret file: open /nonexistent/pw: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := parse(t, tt.args, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Redis.Password != tt.want {
				t.Errorf("password %q, want %q", c.Redis.Password, tt.want)
			}
		})
	}
}

// In embedded mode the broker and Redis are in-process and plaintext:
// the security settings are not used, so not checked.
func TestEmbeddedIgnoresSecurity(t *testing.T) {
	t.Parallel()
	if _, _, err := parse(t, []string{"-embedded", "-kafka-tls-ca-file", "/nonexistent", "-kafka-sasl-mechanism", "GSSAPI"}, nil); err != nil {
		t.Fatal(err)
	}
}
