// Command fenqid is fenqi's stream processor: it consumes payment, login,
// repayment and profile events from Kafka, keeps per-user rolling state in
// Redis and publishes decisions. Every setting is a flag and a FENQI_*
// variable; `fenqid -help` lists them. `fenqid -embedded -simulate
// -print-decisions` (what `make run` does) runs the whole system on one
// machine with an in-process broker, Redis and simulated traffic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/internal/ratelog"
	"github.com/fenqi/fenqi/internal/tuning"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/simulator"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fenqid:", err)
		os.Exit(1)
	}
}

var errHelp = errors.New("help shown")

func newLogger(c *config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts)))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	log := newLogger(cfg, stderr)
	// go-redis's own lines (a dial that failed, a pool timeout) go into
	// the log, rate-limited, not as plain text on stderr beside it. Its
	// logger is global to the process: set it for the process's own
	// stderr only (a test's run, writing to a buffer, must not leave
	// go-redis's background dials writing into it after it returned).
	if f, ok := stderr.(*os.File); ok && f == os.Stderr {
		redis.SetLogger(ratelog.New(log.With("source", "go-redis"), "redis: ", 10*time.Second).Context())
	}
	log.Debug("runtime", "gc_percent", tuning.Apply())
	zone, _ := time.LoadLocation(cfg.DefaultTZ)
	// The policy before anything that may wait: a mistyped -policy is
	// reported at once.
	pols, err := newPolicies(cfg.Policy, log)
	if err != nil {
		return fmt.Errorf("setting -policy (FENQI_POLICY): %w", err)
	}
	var shadowPols *policies // a candidate decided beside the live policy
	if cfg.ShadowPolicy != "" {
		if shadowPols, err = newShadowPolicies(cfg.ShadowPolicy, pols, log); err != nil {
			return fmt.Errorf("setting -shadow-policy (FENQI_SHADOW_POLICY): %w", err)
		}
	}

	// Telemetry first, so that it is flushed last (after the writer and
	// Redis are closed): exporters from the standard OTEL_* variables.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "fenqid", SpansFile: cfg.SpansFile, UserIDKey: []byte(cfg.UserIDHMACKey)})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Error("flushing telemetry", "err", err)
		}
	}()
	metrics, err := tel.Metrics()
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}

	// Embedded mode: the broker and Redis run inside (or beside) this process.
	brokers, redisAddr := cfg.brokers(), cfg.RedisAddr
	if cfg.Embedded {
		// A data dir kept from an earlier run holds that run's simulated
		// history: the users are not given a second one.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "kafka")); err == nil && cfg.Simulate && cfg.SimHistoryDays > 0 {
			log.Info("the data dir holds an earlier run's traffic: no simulated history this time (make clean for a fresh start)", "data_dir", cfg.DataDir)
			cfg.SimHistoryDays = 0
		}
		k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{
			Addr:    embedded.DefaultKafkaAddr,
			DataDir: filepath.Join(cfg.DataDir, "kafka"),
			Topics:  cfg.allTopics(),
		})
		if err != nil {
			return fmt.Errorf("embedded kafka: %w", err)
		}
		defer k.Close()
		r, err := embedded.StartRedis(ctx, embedded.RedisConfig{DataDir: filepath.Join(cfg.DataDir, "redis")},
			func(format string, a ...any) { log.Warn(fmt.Sprintf(format, a...)) })
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer func() { _ = r.Close() }()
		brokers, redisAddr = k.Addrs(), r.Addr()
		log.Info("embedded mode", "kafka", brokers, "redis", redisAddr, "data_dir", cfg.DataDir)
	}

	// The connections' security (validated with the settings); the
	// embedded broker and Redis are plaintext.
	kafkaSec, redisSec := cfg.Kafka, cfg.Redis
	if cfg.Embedded {
		kafkaSec, redisSec = conn.Kafka{}, conn.Redis{}
	}
	kc, err := kafkaSec.Load()
	if err != nil {
		return err
	}
	rdb, err := newRedis(cfg, redisSec, redisAddr)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	// The policy's windows say what state keeps (fixed until a restart).
	pol, _ := pols.get()
	pols.state = jobs.StateConfig(pol, zone)
	pols.state.Prefix = cfg.RedisPrefix
	// Credit payments are judged as they are applied, under the policy in
	// force then.
	pols.state.Credit = jobs.CreditCheck(func() *policy.Policy { p, _ := pols.get(); return p })
	if err := jobs.Servable(pols.state, pol); err != nil {
		return fmt.Errorf("policy %s: %w", pol.Version, err)
	}
	if shadowPols != nil {
		// The candidate reads the same state, and judges credit payments
		// on it beside the live policy, changing nothing.
		shadowPols.state = pols.state
		sp, _ := shadowPols.get()
		if err := jobs.ShadowServable(pols.state, sp); err != nil {
			return fmt.Errorf("setting -shadow-policy (FENQI_SHADOW_POLICY): policy %s: %w", sp.Version, err)
		}
		pols.state.ShadowCredit = jobs.CreditCheck(func() *policy.Policy { p, _ := shadowPols.get(); return p })
	}
	store, err := state.New(rdb, pols.state)
	if err != nil {
		return fmt.Errorf("policy %s: %w", pol.Version, err)
	}
	// Wait for Redis at start like for any transient fault, saying so.
	if err := retry.Do(ctx, retry.Policy{}, "redis_start", func(_ string, err error, wait time.Duration) {
		log.Warn("redis not ready; retrying", "addr", redisAddr, "err", err, "wait", wait)
	}, func(ctx context.Context) error { return redisSec.Explain(store.Load(ctx)) }); err != nil {
		return fmt.Errorf("redis at %s: %w", redisAddr, err)
	}

	pub, err := producers.New(producers.Config{Brokers: brokers, Transport: kc.Transport(), DecisionsTopic: cfg.DecisionsTopic, DLQTopic: cfg.DLQTopic, Compression: cfg.KafkaCompression,
		OnRefused: func(topic string, err error) {
			metrics.Refused(topic, err)
			log.Error("a record was refused for good and replaced by a stand-in dead letter", "topic", topic, "err", err)
		}})
	if err != nil {
		return err
	}
	defer func() {
		if err := pub.Close(); err != nil {
			log.Error("closing the publisher", "err", err)
		}
	}()

	// The admin API's operator events, over the decision producer's transport.
	ops := newOperatorWriter(brokers, kc.Transport(), cfg.Topics.Operator, tel)
	defer func() {
		if err := ops.Close(); err != nil {
			log.Error("closing the operator topic writer", "err", err)
		}
	}()

	obs := &observer{Metrics: metrics, print: cfg.PrintDecisions, out: stdout, zone: zone}
	pcfg := consumers.Config{
		Brokers: brokers, Dialer: kc.Dialer(), GroupID: cfg.GroupID, Topics: cfg.Topics,
		BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, ShutdownGrace: cfg.ShutdownGrace,
		Decoder: events.Decoder{MaxBytes: cfg.MaxEventBytes, MaxFuture: cfg.MaxFuture},
	}
	jcfg := jobs.Config{Interval: cfg.JobsInterval, OnDone: metrics.JobDone, Telemetry: tel, ShutdownGrace: cfg.ShutdownGrace}
	if shadowPols != nil {
		pcfg.ShadowRules = func() consumers.Rules { _, r := shadowPols.get(); return r }
		pcfg.ShadowTopic = cfg.ShadowTopic
		jcfg.Shadow, jcfg.ShadowTopic = shadowPols.get, cfg.ShadowTopic
	}
	pipe, err := consumers.New(pcfg, store, func() consumers.Rules { _, r := pols.get(); return r }, pub, obs, log, tel)
	if err != nil {
		return err
	}
	// Overdue checks are judged on the stream, not only on the clock: at
	// the time up to which the group has processed the repayments topic,
	// so that after a downtime or during a backlog no reminder or freeze
	// goes out for a bill whose repayment still waits on the topic.
	watermark, err := consumers.NewWatermark(consumers.WatermarkConfig{Brokers: brokers, Transport: kc.Transport(), GroupID: cfg.GroupID, Topic: cfg.Topics.Repayments})
	if err != nil {
		return err
	}
	jcfg.Watermark = watermark.At
	runner, err := jobs.New(jcfg, store, pub, pols.get, log, obs.Decision)
	if err != nil {
		return err
	}
	lag := consumers.NewLag(consumers.LagConfig{Brokers: brokers, GroupID: cfg.GroupID, Topics: cfg.Topics.List(), Interval: 5 * time.Second, Transport: kc.Transport()})
	metrics.RegisterLag(func() map[telemetry.TopicPartition]int64 {
		out := map[telemetry.TopicPartition]int64{}
		for topic, ps := range lag.Lag() {
			for p, l := range ps {
				out[telemetry.TopicPartition{Topic: topic, Partition: p}] = l
			}
		}
		return out
	})
	metrics.RegisterJobs(func() map[string]int64 {
		return map[string]int64{
			telemetry.ScheduleOverdueChecks: runner.Overdue.Due.Load(),
			telemetry.ScheduleRecompute:     runner.Recomp.Due.Load(),
		}
	})
	if shadowPols != nil {
		metrics.RegisterShadow(func() map[string]int64 { return shadowCounts(pipe, runner) })
	}
	metrics.RegisterJobsWatermarkLag(func() map[string]time.Duration {
		return map[string]time.Duration{telemetry.ScheduleOverdueChecks: time.Duration(runner.Overdue.Behind.Load())}
	})

	// A refused certificate or password stops fenqid before anything runs;
	// a broker not up yet is waited for while the rest starts.
	kafkaErr := kc.Check(ctx, brokers)
	if kafkaErr != nil && !retry.Retryable(kafkaErr) && ctx.Err() == nil {
		return fmt.Errorf("kafka: %w", kafkaErr)
	}
	g, gctx := errgroup.WithContext(ctx)
	if kafkaErr != nil {
		g.Go(func() error { return checkKafka(gctx, log, kc, brokers) })
	}
	g.Go(func() error { return pipe.Run(gctx) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return pols.watch(gctx) })
	if shadowPols != nil {
		g.Go(func() error { return shadowPols.watch(gctx) })
	}
	g.Go(func() error { return lag.Run(gctx) })
	g.Go(func() error { return progress(gctx, log, pipe, lag, runner, watermark) })
	if cfg.HTTPAddr != "" {
		adm := &admin{log: log, rdb: rdb, conf: cfg.Admin, brokers: brokers, store: store, policies: pols, metrics: tel.MetricsHandler(), assigned: lag.Assigned}
		adm.topics = cfg.Topics // the names of /v1/epochs and POST /v1/epochs/{topic}
		adm.ops = ops           // overrides, special quotas and quota checks go through the operator topic
		g.Go(func() error { return adm.serve(gctx, cfg.HTTPAddr) })
	}
	if cfg.Simulate {
		g.Go(func() error { return simulate(gctx, log, cfg, brokers, kc, pipe) })
	}
	if shadowPols != nil {
		sp, _ := shadowPols.get()
		log.Info("shadow policy decides beside the live one", "live", pol.Version, "shadow", sp.Version, "topic", cfg.ShadowTopic)
	}
	log.Info("fenqid started", "group", cfg.GroupID, "topics", cfg.Topics.List())
	err = g.Wait()
	log.Info("fenqid stopped", "events", pipe.Stats().Events.Load(), "decisions", pipe.Stats().Decisions.Load())
	return err
}

// newRedis returns the Redis client of the settings, with sec's security.
func newRedis(cfg *config, sec conn.Redis, addr string) (redis.UniversalClient, error) {
	if cfg.RedisCluster && !cfg.Embedded {
		// ContextTimeoutEnabled: a hung Redis (not down) answers within the
		// caller's deadline (/readyz's 400 ms), not the 3 s read timeout.
		o := &redis.ClusterOptions{Addrs: cfg.redisAddrs(), ContextTimeoutEnabled: true}
		if err := sec.ApplyCluster(o); err != nil {
			return nil, err
		}
		return redis.NewClusterClient(o), nil
	}
	o := &redis.Options{Addr: addr, DB: cfg.RedisDB, ContextTimeoutEnabled: true}
	if err := sec.Apply(o); err != nil {
		return nil, err
	}
	return redis.NewClient(o), nil
}

// checkKafka connects to a broker, with the TLS and SASL handshakes, until
// one answers: one that does not answer yet is waited for, saying so; a
// refused certificate or password stops fenqid with the error and the
// setting to look at (the reader would otherwise retry it for ever).
func checkKafka(ctx context.Context, log *slog.Logger, kc *conn.KafkaConn, brokers []string) error {
	err := retry.Do(ctx, retry.Policy{Max: 10 * time.Second}, "kafka_start", func(_ string, err error, wait time.Duration) {
		log.Warn("kafka not ready; retrying", "brokers", brokers, "err", err, "wait", wait)
	}, func(ctx context.Context) error { return kc.Check(ctx, brokers) })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// groupLag is the consumer group's lag over every partition, as the lag
// monitor last measured it (committed offsets against the ends): the
// reader's own figure is 0 for the partitions it does not hold.
func groupLag(m *consumers.LagMonitor) int64 {
	var n int64
	for _, parts := range m.Lag() {
		for _, l := range parts {
			n += l
		}
	}
	return n
}

// progress logs throughput and the schedules' progress every 10 seconds,
// and, while overdue checks are held back by the repayments topic's
// watermark, how far it is behind.
func progress(ctx context.Context, log *slog.Logger, pipe *consumers.Pipeline, lag *consumers.LagMonitor, runner *jobs.Runner, wm *consumers.Watermark) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var last int64
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s := pipe.Stats()
			ev := s.Events.Load()
			rate := float64(ev-last) / now.Sub(lastAt).Seconds()
			last, lastAt = ev, now
			log.Info("progress", "events", ev, "events_per_s", int(rate), "applied", s.Applied.Load(),
				"repeats", s.Repeats.Load(), "dead_letters", s.DeadLetters.Load(), "decisions", s.Decisions.Load(), "lag", groupLag(lag),
				"recompute_due", runner.Recomp.Due.Load(), "recompute_done", runner.Recomp.Done.Load(),
				"overdue_checks_due", runner.Overdue.Due.Load(), "overdue_checks_done", runner.Overdue.Done.Load(),
				"overdue_checks_waiting", runner.Overdue.Waiting.Load())
			if sh := shadowCounts(pipe, runner); sh[shadow.Same]+sh[shadow.Changed]+sh[shadow.Added]+sh[shadow.Removed] > 0 {
				log.Info("shadow policy", "same", sh[shadow.Same], "changed", sh[shadow.Changed], "added", sh[shadow.Added], "removed", sh[shadow.Removed])
			}
			if runner.Overdue.Waiting.Load() {
				last := wm.Last()
				log.Warn("overdue checks wait for the repayments topic", "watermark", time.Unix(0, runner.Overdue.JudgedAt.Load()).UTC(),
					"behind", time.Duration(runner.Overdue.Behind.Load()).Round(time.Second), "records_behind", last.Behind,
					"partitions_behind", last.Lagging, "checks_held", runner.Overdue.Held.Load())
			}
		}
	}
}

// shadowCounts are the shadow records published so far by the pipeline
// and the jobs, by diff.
func shadowCounts(pipe *consumers.Pipeline, runner *jobs.Runner) map[string]int64 {
	out := pipe.Stats().Shadow.Map()
	for _, c := range []*shadow.Counts{&runner.Recomp.Shadow, &runner.Overdue.Shadow} {
		for diff, n := range c.Map() {
			out[diff] += n
		}
	}
	return out
}

// simulate produces simulated traffic into the input topics.
func simulate(ctx context.Context, log *slog.Logger, cfg *config, brokers []string, kc *conn.KafkaConn, pipe *consumers.Pipeline) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Transport:    kc.Transport(),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		Compression:  kafka.Lz4, // the history is ~230 MB of JSON: ~50 MB on disk compressed
	}
	defer func() { _ = w.Close() }()
	var sc simulator.Config
	sc.Users, sc.Rate, sc.Seed = cfg.SimUsers, cfg.SimRate, time.Now().UnixNano()
	t := cfg.Topics // the simulator writes no operator events
	sc.Topics.Payments, sc.Topics.Logins, sc.Topics.Repayments, sc.Topics.Profiles = t.Payments, t.Logins, t.Repayments, t.Profiles
	sc.HistoryDays = cfg.SimHistoryDays
	// The refreshed profiles after the history trigger the quota
	// recomputes: wait until the pipeline has applied the history.
	base := pipe.Stats().Events.Load()
	sc.AfterHistory = func(ctx context.Context, h simulator.HistoryStats) error {
		log.Info("simulated history written", "users", h.Users, "events", h.Events, "from", h.From, "took", h.Took.Round(time.Millisecond))
		began := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for pipe.Stats().Events.Load() < base+int64(h.Events) {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		log.Info("simulated history applied; live traffic starts", "waited", time.Since(began).Round(time.Millisecond))
		return nil
	}
	log.Info("simulating traffic", "users", sc.Users, "events_per_s", sc.Rate, "history_days", sc.HistoryDays)
	if err := simulator.New(sc).Run(ctx, w); err != nil && ctx.Err() == nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}
