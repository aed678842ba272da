package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/simulator"
)

const simulateAbout = `Produce simulated traffic (profiles, payments, logins, repayments of a
population of users; the traffic of "make run") into the input topics of any
brokers, at a steady rate, until interrupted or for --duration. A progress
line goes to standard error every --progress.`

// countingWriter counts the records its writer acknowledged.
type countingWriter struct {
	w    *kafka.Writer
	sent atomic.Int64
}

func (cw *countingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := cw.w.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	cw.sent.Add(int64(len(msgs)))
	return nil
}

func (c *cli) simulate(ctx context.Context, args []string) error {
	var (
		brokers   string
		topics    inputTopics
		users     int
		rate      float64
		duration  time.Duration
		seed      int64
		malformed float64
		maxEvents int
		every     time.Duration
	)
	fs := c.flagSet("simulate", "", simulateAbout)
	fs.brokers(&brokers)
	fs.inputs(&topics)
	fs.IntVar(&users, "users", simulator.DefaultUsers, "simulated users")
	fs.Float64Var(&rate, "rate", simulator.DefaultRate, "events per second")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (0 = until interrupted)")
	fs.Int64Var(&seed, "seed", 0, "seed of the traffic, for a reproducible run (0 = from the clock; the seed used is printed)")
	fs.Float64Var(&malformed, "malformed-ratio", simulator.DefaultMalformedRatio, "share of events made invalid on purpose, to exercise the dead-letter path (0 = none)")
	fs.IntVar(&maxEvents, "events", 0, "stop after this many events (0 = no limit)")
	fs.DurationVar(&every, "progress", 5*time.Second, "interval of the progress line on standard error (0 = none)")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "simulate: unexpected argument %q", operands[0])
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := topics.check(); err != nil {
		return err
	}
	switch {
	case users < 1:
		return usageErrorf("simulate: --users must be ≥ 1, got %d", users)
	case !(rate > 0) || math.IsInf(rate, 0):
		return usageErrorf("simulate: --rate must be > 0, got %v", rate)
	case duration < 0:
		return usageErrorf("simulate: --duration must not be negative")
	case !(malformed >= 0 && malformed <= 1):
		return usageErrorf("simulate: --malformed-ratio must be 0..1, got %v", malformed)
	case maxEvents < 0:
		return usageErrorf("simulate: --events must be ≥ 0, got %d", maxEvents)
	case every < 0:
		return usageErrorf("simulate: --progress must not be negative")
	}
	if seed == 0 {
		seed = time.Now().UnixNano()
	}

	var cfg simulator.Config
	cfg.Users, cfg.Rate, cfg.Seed, cfg.MaxEvents = users, rate, seed, maxEvents
	cfg.MalformedRatio = malformed
	if malformed == 0 {
		cfg.MalformedRatio = -1 // the simulator's "none"; 0 would mean its default
	}
	// the simulator writes no operator events
	cfg.Topics.Payments, cfg.Topics.Logins, cfg.Topics.Repayments, cfg.Topics.Profiles = topics.Payments, topics.Logins, topics.Repayments, topics.Profiles

	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	b := newBroker(addrs, fs.kafka)
	defer b.close()
	cw := &countingWriter{w: b.writer(nil)}
	fmt.Fprintf(c.stderr, "simulate: %d users, %v events/s to %v, seed %d\n", users, rate, addrs, seed)

	start := time.Now()
	var wg sync.WaitGroup
	stopProgress := make(chan struct{})
	if every > 0 {
		wg.Go(func() { c.progress(cw, start, every, stopProgress) })
	}
	runErr := simulator.New(cfg).Run(ctx, cw)
	close(stopProgress)
	wg.Wait()
	closeErr := cw.w.Close()

	elapsed := time.Since(start)
	n := cw.sent.Load()
	fmt.Fprintf(c.stderr, "simulate: sent %d events in %s (%.0f/s)\n", n, elapsed.Round(100*time.Millisecond), float64(n)/elapsed.Seconds())
	if runErr != nil {
		return fmt.Errorf("simulate: %w", runErr)
	}
	if closeErr != nil && ctx.Err() == nil {
		return fmt.Errorf("simulate: close writer: %w", closeErr)
	}
	return nil
}

// progress prints the events sent and the rate every interval until stop.
func (c *cli) progress(cw *countingWriter, start time.Time, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := cw.sent.Load()
			fmt.Fprintf(c.stderr, "simulate: %d events sent, %.0f/s now, %.0f/s since start\n",
				n, float64(n-last)/now.Sub(lastAt).Seconds(), float64(n)/now.Sub(start).Seconds())
			last, lastAt = n, now
		}
	}
}
