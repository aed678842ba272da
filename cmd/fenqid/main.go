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
	"net"
	"net/http"
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
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/retry"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/simulator"
	"github.com/fenqi/fenqi/state"
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
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
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
	zone, _ := time.LoadLocation(cfg.DefaultTZ)

	// Embedded mode: the broker and Redis run inside (or beside) this process.
	brokers, redisAddr := cfg.brokers(), cfg.RedisAddr
	if cfg.Embedded {
		k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{
			Addr:    "127.0.0.1:9092",
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

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB})
	defer func() { _ = rdb.Close() }()
	store, err := state.New(rdb, state.Config{DefaultZone: zone})
	if err != nil {
		return err
	}
	// Wait for Redis at start like for any transient fault, saying so.
	if err := retry.Do(ctx, retry.Policy{}, "redis_start", func(_ string, err error, wait time.Duration) {
		log.Warn("redis not ready; retrying", "addr", redisAddr, "err", err, "wait", wait)
	}, store.Load); err != nil {
		return fmt.Errorf("redis at %s: %w", redisAddr, err)
	}

	pub, err := producers.New(producers.Config{Brokers: brokers, DecisionsTopic: cfg.DecisionsTopic, DLQTopic: cfg.DLQTopic})
	if err != nil {
		return err
	}
	defer func() {
		if err := pub.Close(); err != nil {
			log.Error("closing the publisher", "err", err)
		}
	}()

	rules := scoring.DefaultRules()
	obs := &observer{log: log, print: cfg.PrintDecisions, out: stdout, zone: zone}
	pipe, err := consumers.New(consumers.Config{
		Brokers: brokers, GroupID: cfg.GroupID, Topics: cfg.Topics,
		BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, ShutdownGrace: cfg.ShutdownGrace,
		Decoder: events.Decoder{MaxBytes: cfg.MaxEventBytes, MaxFuture: cfg.MaxFuture},
	}, store, func() consumers.Rules { return rules }, pub, obs, log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pipe.Run(gctx) })
	g.Go(func() error { return progress(gctx, log, pipe) })
	if cfg.HTTPAddr != "" {
		g.Go(func() error { return serveAdmin(gctx, log, cfg.HTTPAddr, rdb, brokers) })
	}
	if cfg.Simulate {
		g.Go(func() error { return simulate(gctx, log, cfg, brokers) })
	}
	log.Info("fenqid started", "group", cfg.GroupID, "topics", cfg.Topics.List())
	err = g.Wait()
	log.Info("fenqid stopped", "events", pipe.Stats().Events.Load(), "decisions", pipe.Stats().Decisions.Load())
	return err
}

// progress logs throughput every 10 seconds.
func progress(ctx context.Context, log *slog.Logger, pipe *consumers.Pipeline) error {
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
				"repeats", s.Repeats.Load(), "dead_letters", s.DeadLetters.Load(), "decisions", s.Decisions.Load(), "lag", pipe.Lag())
		}
	}
}

// simulate produces simulated traffic into the input topics.
func simulate(ctx context.Context, log *slog.Logger, cfg *config, brokers []string) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer func() { _ = w.Close() }()
	var sc simulator.Config
	sc.Users, sc.Rate, sc.Seed = cfg.SimUsers, cfg.SimRate, time.Now().UnixNano()
	sc.Topics.Payments, sc.Topics.Logins = cfg.Topics.Payments, cfg.Topics.Logins
	sc.Topics.Repayments, sc.Topics.Profiles = cfg.Topics.Repayments, cfg.Topics.Profiles
	log.Info("simulating traffic", "users", sc.Users, "events_per_s", sc.Rate)
	if err := simulator.New(sc).Run(ctx, w); err != nil && ctx.Err() == nil {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}

// serveAdmin serves /healthz (the process is alive) and /readyz (Redis and
// Kafka answer) until ctx ends.
func serveAdmin(ctx context.Context, log *slog.Logger, addr string, rdb *redis.Client, brokers []string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if err := rdb.Ping(rctx).Err(); err != nil {
			problems = append(problems, "redis: "+err.Error())
		}
		conn, err := (&net.Dialer{}).DialContext(rctx, "tcp", brokers[0])
		if err != nil {
			problems = append(problems, "kafka: "+err.Error())
		} else {
			_ = conn.Close()
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				_, _ = io.WriteString(w, p+"\n")
			}
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", addr, err)
	}
	log.Info("admin listener", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener: %w", err)
	}
	return nil
}
