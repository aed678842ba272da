package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/backtest"
	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/shadow"
)

const backtestAbout = `Replay the input topics' history with the live policy and a candidate side by
side, and report what the candidate would have changed: decisions added and
removed by rule and action, quota moves (distribution and the 20 largest,
with their factors), freezes that would or would not have happened, and
eligibility codes gained and lost (docs/policy-testing.md).

The records from --from (to --to, or to the ends as they are at the start) are
read partition by partition (fenqid's consumer group and its offsets are
untouched; the replay's own position goes to a group of its own,
fenqi-backtest-<namespace>, deleted at the end) and replayed in event-time order through fenqi's own
pipeline into a Redis namespace of their own (--redis-prefix, by default a
fresh "fenqi-backtest-<random>:"; with --scratch-redis a redis-server this
command starts and stops), on a clock that follows event time: overdue checks
and quota recomputes fire as they would have. Nothing is published: the live
topics and fenqid's keys are untouched. The namespace is deleted at the end
(--keep leaves it). --from and --to select records by their Kafka timestamps,
as fenqictl rewind does; state starts empty at --from, so start early enough
for the windows the policy reads (90 days for the quota model).

The report goes to stdout as a table; --html writes it as one self-contained
page, --records the records themselves (JSON lines, for fenqictl shadow
report --records).`

// backtest replays history with a candidate policy beside the live one.
func (c *cli) backtest(ctx context.Context, args []string) error {
	var (
		brokers, candSpec, liveSpec, from, to string
		htmlPath, recordsPath, zone           string
		scratch, keep                         bool
		topics                                inputTopics
		rf                                    redisFlags
		dec                                   events.Decoder
	)
	fs := c.flagSet("backtest", "", backtestAbout)
	fs.brokers(&brokers)
	fs.inputs(&topics)
	fs.decoder(&dec)
	fs.redis(&rf)
	fs.StringVar(&candSpec, "policy", "", "the candidate policy: a YAML file or a preset (required)")
	fs.StringVar(&liveSpec, "live", "wechat", "the live policy, as fenqid's -policy: a YAML file or a preset (env FENQI_POLICY)")
	fs.env["live"] = "FENQI_POLICY"
	fs.StringVar(&from, "from", "", `replay records from this time: RFC 3339, a negative duration back from now (-2160h) or "earliest" (required)`)
	fs.StringVar(&to, "to", "", "replay records before this time (RFC 3339 or a negative duration; default: up to the ends at the start)")
	fs.BoolVar(&scratch, "scratch-redis", false, "run the replay in a redis-server of its own, started and stopped by this command (redis-server on PATH), instead of --redis-addr")
	fs.BoolVar(&keep, "keep", false, "leave the namespace in Redis at the end (to look at the users' state; delete it yourself)")
	fs.StringVar(&htmlPath, "html", "", "also write the report as a self-contained HTML page to this file")
	fs.StringVar(&recordsPath, "records", "", "also write the shadow records, one JSON line each, to this file")
	fs.StringVar(&zone, "default-timezone", "Asia/Shanghai", "time zone of users whose profile names none, as fenqid's -default-timezone (env FENQI_DEFAULT_TIMEZONE)")
	fs.env["default-timezone"] = "FENQI_DEFAULT_TIMEZONE"
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(operands) > 0:
		return c.usageOf(fs, "backtest: unexpected argument %q", operands[0])
	case candSpec == "":
		return c.usageOf(fs, "backtest: --policy (the candidate) is required")
	case from == "":
		return c.usageOf(fs, "backtest: --from is required")
	case scratch && keep:
		return usageErrorf("backtest: --keep keeps nothing with --scratch-redis (its redis-server stops at the end)")
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := topics.check(); err != nil {
		return err
	}
	now := time.Now()
	fromAt, err := parseRewindTo(from, now)
	if err != nil {
		return usageErrorf("backtest: --from: %v", err)
	}
	var toAt time.Time
	if to != "" {
		t, err := parseRewindTo(to, now)
		if err != nil || t.earliest {
			return usageErrorf("backtest: --to: want an RFC 3339 time or a negative duration, got %q", to)
		}
		if toAt = t.at; !fromAt.earliest && !toAt.After(fromAt.at) {
			return usageErrorf("backtest: --to %s is not after --from %s", toAt.Format(time.RFC3339), fromAt.at.Format(time.RFC3339))
		}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return usageErrorf("backtest: --default-timezone: %v", err)
	}
	live, err := policy.Open(liveSpec)
	if err != nil {
		return usageErrorf("backtest: --live: %v", err)
	}
	cand, err := policy.Open(candSpec)
	if err != nil {
		return usageErrorf("backtest: --policy: %v", err)
	}

	var rdb redis.UniversalClient
	if scratch {
		r, err := embedded.StartRedis(ctx, embedded.RedisConfig{NoFallback: true}, nil)
		if err != nil {
			return fmt.Errorf("backtest: --scratch-redis: %w", err)
		}
		defer func() { _ = r.Close() }()
		rdb = redis.NewClient(&redis.Options{Addr: r.Addr()})
	} else if rdb, err = rf.client(); err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()

	b := newBroker(addrs, fs.kafka)
	defer b.close()
	var fromTime time.Time
	if !fromAt.earliest {
		fromTime = fromAt.at
	}
	ranges, err := backtest.Plan(ctx, b.client, topics.list(), fromTime, toAt)
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	bar := newProgressBar(c.stderr)
	res, err := backtest.Run(ctx, backtest.Config{
		Brokers: addrs, Open: b.reader, Ranges: ranges, Topics: consumers.Topics(topics), Client: b.client,
		Live: live, Candidate: cand, Redis: rdb, Prefix: rf.prefix, Keep: keep,
		DefaultZone: loc, Decoder: dec, Progress: bar.show,
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("backtest: interrupted (its namespace is cleaned): %w", err)
		}
		return err
	}
	fmt.Fprintf(c.stderr, "backtest: %d records replayed (%d would have been dead-lettered), event times %s to %s, %d live decisions\n",
		res.Events, res.DeadLetters, res.From.UTC().Format(time.RFC3339), res.To.UTC().Format(time.RFC3339), res.Decisions)
	if keep {
		fmt.Fprintf(c.stderr, "backtest: the users' state is kept under the prefix %q (delete it when done)\n", res.Prefix)
	}
	if recordsPath != "" {
		if err := writeRecords(recordsPath, res.Records); err != nil {
			return err
		}
	}
	return c.writeReport(shadow.Build(res.Records), htmlPath)
}

// shadow runs the shadow subcommands: report.
func (c *cli) shadow(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "report" {
		return usageErrorf("shadow: want a subcommand: report")
	}
	return c.shadowReport(ctx, args[1:])
}

const shadowReportAbout = `Report what the shadow policy (fenqid -shadow-policy) changes, from the records
it published on the shadow topic (fenqi.shadow.decisions) since --from, or
from a file of records (--records, as fenqictl backtest writes them):
decisions added and removed by rule and action, quota moves (distribution and
the 20 largest, with their factors), freezes that would or would not have
happened, and eligibility codes gained and lost. Reads without a consumer
group, to the ends as they are at the start. The table goes to stdout; --html
writes the same report as one self-contained page (docs/policy-testing.md).`

func (c *cli) shadowReport(ctx context.Context, args []string) error {
	var brokers, topic, from, recordsPath, htmlPath string
	fs := c.flagSet("shadow report", "", shadowReportAbout)
	fs.brokers(&brokers)
	fs.topic(&topic, "shadow", shadow.DefaultTopic, "topic of the shadow records, as fenqid's -topic-shadow")
	fs.StringVar(&from, "from", "earliest", `read records from this time: RFC 3339, a negative duration back from now (-24h) or "earliest"`)
	fs.StringVar(&recordsPath, "records", "", "read the records from this file (JSON lines) instead of the topic")
	fs.StringVar(&htmlPath, "html", "", "also write the report as a self-contained HTML page to this file")
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return c.usageOf(fs, "shadow report: unexpected argument %q", operands[0])
	}
	var records []shadow.Record
	if recordsPath != "" {
		if records, err = readRecords(recordsPath); err != nil {
			return err
		}
		return c.writeReport(shadow.Build(records), htmlPath)
	}
	addrs, err := parseBrokers(brokers)
	if err != nil {
		return err
	}
	if err := checkTopics(map[string]string{"topic-shadow": topic}); err != nil {
		return err
	}
	at, err := parseRewindTo(from, time.Now())
	if err != nil {
		return usageErrorf("shadow report: --from: %v", err)
	}
	var fromTime time.Time
	if !at.earliest {
		fromTime = at.at
	}
	b := newBroker(addrs, fs.kafka)
	defer b.close()
	ranges, err := backtest.Plan(ctx, b.client, []string{topic}, fromTime, time.Time{})
	if err != nil {
		return fmt.Errorf("shadow report: %w", err)
	}
	spans := make([]span, len(ranges))
	for i, r := range ranges {
		spans[i] = span{partition: r.Partition, from: r.From, to: r.To}
	}
	bad := 0
	err = b.readSpans(ctx, topic, spans, func(m kafka.Message) error {
		r, err := shadow.Unmarshal(m.Value)
		if err != nil {
			bad++
			fmt.Fprintf(c.stderr, "shadow report: %s/%d@%d skipped: %v\n", m.Topic, m.Partition, m.Offset, err)
			return nil
		}
		records = append(records, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("shadow report: %w", err)
	}
	fmt.Fprintf(c.stderr, "shadow report: %d records read from %s (%d unreadable)\n", len(records), topic, bad)
	return c.writeReport(shadow.Build(records), htmlPath)
}

// writeReport prints the report's table and, with htmlPath, writes its page.
func (c *cli) writeReport(rep shadow.Report, htmlPath string) error {
	if err := rep.WriteTable(c.stdout); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if htmlPath == "" {
		return nil
	}
	if err := writeFile(htmlPath, rep.WriteHTML); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "report written to %s\n", htmlPath)
	return nil
}

// writeRecords writes records as JSON lines.
func writeRecords(path string, records []shadow.Record) error {
	return writeFile(path, func(w io.Writer) error {
		for _, r := range records {
			b, err := shadow.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}

// readRecords reads records written by writeRecords.
func readRecords(path string) ([]shadow.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("--records: %v", err)
	}
	defer func() { _ = f.Close() }()
	var out []shadow.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		r, err := shadow.Unmarshal([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// writeFile writes a file through fn, removing it when fn fails.
func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	err = fn(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// progressBar draws a replay's progress on one line of w.
type progressBar struct {
	w     io.Writer
	start time.Time
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w, start: time.Now()} }

func (p *progressBar) show(pr backtest.Progress) {
	const width = 30
	frac := 1.0
	if pr.Total > 0 {
		frac = float64(pr.Records) / float64(pr.Total)
	}
	n := int(frac * width)
	at := "-"
	if !pr.EventTime.IsZero() && pr.EventTime.Unix() > 0 {
		at = pr.EventTime.UTC().Format("2006-01-02 15:04")
	}
	rate := float64(pr.Records) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\rbacktest [%s%s] %3.0f%% %d/%d records, event time %s, %.0f records/s",
		strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, pr.Records, pr.Total, at, rate)
	if pr.Done {
		fmt.Fprintln(p.w)
	}
}
