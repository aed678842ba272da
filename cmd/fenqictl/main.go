// Command fenqictl is the operator's tool for a running fenqi: it produces
// events from a file, tails the decisions, lists and replays dead letters,
// generates simulated traffic, explains a user's quota, prices an
// installment plan, rewinds fenqid's consumer group to replay the input and
// raises an input topic's offset epoch after its offsets started over.
//
//	fenqictl produce FILE|-      validate JSON CloudEvents, then send them to their input topics
//	fenqictl tail                print decisions as they are published
//	fenqictl dlq list            print the dead letters
//	fenqictl dlq replay          send dead letters back to the topic they came from
//	fenqictl simulate            produce simulated traffic
//	fenqictl explain USER        explain a user's quota: reasons, factors, score, caps
//	fenqictl offer USER          price an installment plan for a user
//	fenqictl rewind --to T       move fenqid's committed input offsets back to T, to replay from there
//	fenqictl recompute --all     recompute every known user's quota now, once
//	fenqictl epoch [--raise T]   list the input topics' offset epochs, or raise one after T's offsets started over
//	fenqictl quarantine          list the users whose state cannot be read (from Redis)
//
// Every subcommand takes --help. The brokers come from --brokers or
// FENQI_KAFKA_BROKERS (default localhost:9092); topic names from
// --topic-* flags or the FENQI_TOPIC_* variables fenqid reads, with
// fenqid's defaults. explain, offer, override, recompute and epoch ask
// fenqid's admin API at --api or FENQI_API_URL (default
// http://localhost:8080); epoch --redis asks Redis instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee *exitError
	if err != nil && !errors.Is(err, errHelp) && !(errors.As(err, &ee) && ee.reported) {
		fmt.Fprintln(os.Stderr, "fenqictl:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is the exit status for the outcome of run: 0 for success and
// help, 2 for a usage mistake, 1 otherwise.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// run runs one fenqictl command line (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return c.run(ctx, args)
}

// errHelp is returned after help was printed on request: exit status 0.
var errHelp = errors.New("help shown")

// exitError carries an exit status other than 1. reported means the
// message was already printed (by the flag package), so main stays quiet.
type exitError struct {
	code     int
	err      error
	reported bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a mistake on the command line: exit status 2.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// cli is one invocation: its standard streams and environment.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

const usage = `fenqictl is the operator's tool for fenqi.

Usage:
  fenqictl produce [flags] FILE|-   validate JSON CloudEvents (one per line, or a JSON array)
                                    and send them to their input topics
  fenqictl tail [flags]             print decisions as they are published
  fenqictl dlq list [flags]         print the dead letters
  fenqictl dlq replay [flags]       send dead letters back to the topic they came from
  fenqictl simulate [flags]         produce simulated traffic
  fenqictl explain [flags] USER     explain a user's quota: eligibility and reason codes,
                                    factors, score, caps, guardrail, override
  fenqictl offer [flags] USER --amount-fen N --periods P [--scene S]
                                    price an installment plan: the repayment schedule
  fenqictl override [flags] USER --quota-fen N --reason R --expires D
                                    fix a user's quota until it expires (--clear removes it)
  fenqictl rewind [flags] --to T    move fenqid's consumer group (--group, FENQI_GROUP_ID) back
                                    on the input topics to T (RFC 3339 time, -10m or earliest),
                                    to replay from there; fenqid must be stopped
  fenqictl recompute [flags] --all  recompute every known user's quota now, once (after a
                                    policy change)
  fenqictl epoch [flags]            list the input topics' offset epochs
  fenqictl epoch [flags] --raise TOPIC
                                    raise TOPIC's offset epoch after the topic was recreated or its
                                    offsets otherwise started over lower, before fenqid reads the
                                    new records (with fenqid stopped: --redis, in Redis directly)
  fenqictl quarantine [flags]       list the users whose state fenqid cannot read (Redis directly)
  fenqictl backtest [flags] --policy CANDIDATE --from T [--to T]
                                    replay the input topics' history with the live policy and
                                    the candidate side by side, in a Redis namespace of its own,
                                    and report what the candidate would change (--html: a page)
  fenqictl shadow report [flags]    report what fenqid's -shadow-policy changes, from the shadow
                                    topic (or a backtest's --records file)

Every command takes --help. Brokers: --brokers or FENQI_KAFKA_BROKERS
(default localhost:9092). Topics: --topic-* flags or FENQI_TOPIC_* variables,
with fenqid's defaults (fenqi.payments, fenqi.logins, fenqi.repayments,
fenqi.profiles, fenqi.operator, fenqi.decisions, fenqi.dlq). explain, offer, override, recompute and epoch ask
fenqid's admin API: --api or FENQI_API_URL (default http://localhost:8080).
`

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return usageErrorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return errHelp
	case "produce":
		return c.produce(ctx, rest)
	case "tail":
		return c.tail(ctx, rest)
	case "dlq":
		return c.dlq(ctx, rest)
	case "simulate":
		return c.simulate(ctx, rest)
	case "explain":
		return c.explain(ctx, rest)
	case "offer":
		return c.offer(ctx, rest)
	case "override":
		return c.override(ctx, rest)
	case "rewind":
		return c.rewind(ctx, rest)
	case "recompute":
		return c.recompute(ctx, rest)
	case "epoch":
		return c.epoch(ctx, rest)
	case "quarantine":
		return c.quarantine(ctx, rest)
	case "backtest":
		return c.backtest(ctx, rest)
	case "shadow":
		return c.shadow(ctx, rest)
	}
	fmt.Fprint(c.stderr, usage)
	return usageErrorf("unknown command %q", cmd)
}
