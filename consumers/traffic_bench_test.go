package consumers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/shadow"
	"github.com/fenqi/fenqi/simulator"
)

// The benchmarks' broker and traffic run in a process of their own (this
// test binary started again with trafficEnv set), as Kafka and the
// upstream producers do in production: kfake keeps every record in its Go
// heap (gigabytes after a few runs), and in the pipeline's process its
// garbage would be the pipeline's to collect, its collections the
// pipeline's pauses. The two processes still share this machine's cores.
//
// The child speaks lines on stdin and stdout:
//
//	child:  addr <host:port>             (started, topics created)
//	parent: fill <n> <unix-nanos>        (write n events of fill's traffic at once)
//	parent: gen <rate> <seconds> <users> (generate that live traffic)
//	parent: send                         (write what gen made, paced at its rate)
//	child:  go                           (after send: the first write)
//	parent: cpu                          (its CPU time so far)
//	child:  ok <n>                       (after each: records written, or CPU ns)
const trafficEnv = "FENQI_BENCH_TRAFFIC_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(trafficEnv) != "" {
		if err := trafficProcess(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "traffic process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchTopics are the topics of the benchmarks' broker.
func benchTopics() []string {
	return append(consumers.DefaultTopics().List(), "fenqi.decisions", "fenqi.dlq", shadow.DefaultTopic)
}

// trafficProcess is the child's side.
func trafficProcess(in io.Reader, out io.Writer) error {
	ctx := context.Background()
	k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{Addr: "127.0.0.1:0", Topics: benchTopics(), Partitions: testenv.DefaultPartitions})
	if err != nil {
		return err
	}
	defer k.Close()
	// fill writes 5,000 records a call, send what is due every offerTick
	// (a few hundred): kafka-go allocates (and zeroes) BatchSize messages
	// for each partition's batch, so each writer has its own.
	w := benchWriter(k.Addrs(), fillBatch)
	defer w.Close()
	paced := benchWriter(k.Addrs(), 0)
	defer paced.Close()
	fmt.Fprintln(out, "addr", k.Addrs()[0])
	var live *offered
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var n int64
		switch {
		case len(f) == 3 && f[0] == "fill":
			total, _ := strconv.Atoi(f[1])
			at, _ := strconv.ParseInt(f[2], 10, 64)
			n, err = fillTo(ctx, w, total, time.Unix(0, at))
		case len(f) == 4 && f[0] == "gen":
			rate, _ := strconv.ParseFloat(f[1], 64)
			secs, _ := strconv.ParseFloat(f[2], 64)
			users, _ := strconv.Atoi(f[3])
			live = generate(rate, time.Duration(secs*float64(time.Second)), users)
			n = int64(len(live.msgs))
		case len(f) == 1 && f[0] == "send" && live != nil:
			n, err = live.send(ctx, paced, func() { fmt.Fprintln(out, "go") })
			live = nil
		case len(f) == 1 && f[0] == "cpu":
			var d time.Duration
			d, err = selfCPU()
			n = int64(d)
		default:
			err = fmt.Errorf("unknown command %q", sc.Text())
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "ok", n)
	}
	return sc.Err()
}

// fillBatch is how many records fillTo writes a call.
const fillBatch = 5000

// benchWriter is the benchmarks' writer of simulated traffic to brokers:
// acks from all replicas, batches sent after 1 ms, each partition's batch
// of at most batchSize records (0: kafka-go's default, 100).
func benchWriter(brokers []string, batchSize int) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: batchSize}
}

// fillTo writes total simulated events (20,000 users, seed 42, every event
// at simNow) as fast as the broker takes them.
func fillTo(ctx context.Context, w *kafka.Writer, total int, simNow time.Time) (int64, error) {
	sim := simulator.New(simulator.Config{Users: 20_000, Seed: 42, Now: func() time.Time { return simNow }})
	msgs := make([]kafka.Message, 0, fillBatch)
	for i := 0; i < total; i++ {
		topic, key, value := sim.Next()
		msgs = append(msgs, kafka.Message{Topic: topic, Key: key, Value: value})
		if len(msgs) == cap(msgs) || i == total-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return 0, err
			}
			msgs = msgs[:0]
		}
	}
	return int64(total), nil
}

// offerTick is how often send writes what is due, as fenqictl simulate
// does (simulator.Run). Every 5 ms instead, the writes cost the broker's
// process half as much CPU again (7.1–7.8 s against 4.3–4.7 s for 12 s
// at 21,000 events/s) and the latencies were no better: p50 5–9 ms, p99
// 19–49 ms, against 9–10 ms and 20–30 ms; at 40,000 p50 46–51 ms, p99
// 91–561, against 37–42 and 84–235.
const offerTick = 20 * time.Millisecond

// offered is live traffic generated ahead, to be written at its rate.
type offered struct {
	rate  float64
	start time.Time // the planned time of the first record
	msgs  []kafka.Message
}

// generate makes rate × how live simulated events of users users (seed 7,
// none malformed), each timed at its planned write (so that the rules see
// the traffic's real spacing), the first a second after the generation is
// expected to end (8 µs an event, more than it takes here; send shifts
// the plan if it starts later). Generated before the writes, the events' encoding does
// not share the cores with the pipeline: only writing them does, as an
// upstream on other machines would.
func generate(rate float64, how time.Duration, users int) *offered {
	n := int(rate * how.Seconds())
	o := &offered{rate: rate, start: time.Now().Add(time.Second + time.Duration(n)*8*time.Microsecond), msgs: make([]kafka.Message, n)}
	k := 0
	sim := simulator.New(simulator.Config{Users: users, Seed: 7, Rate: rate, MalformedRatio: -1, Now: func() time.Time {
		return o.start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
	}})
	header := []kafka.Header{{Key: "content-type", Value: []byte(events.ContentTypeCloudEvents)}}
	for ; k < len(o.msgs); k++ {
		topic, key, value := sim.Next()
		o.msgs[k] = kafka.Message{Topic: topic, Key: key, Value: value, Headers: header}
	}
	return o
}

// send writes the records, every offerTick those due by then, calling
// started before the first write.
func (o *offered) send(ctx context.Context, w *kafka.Writer, started func()) (int64, error) {
	if d := time.Until(o.start); d > 0 {
		time.Sleep(d)
	}
	started()
	start := time.Now()
	t := time.NewTicker(offerTick)
	defer t.Stop()
	sent := 0
	for sent < len(o.msgs) {
		<-t.C
		due := min(len(o.msgs), int(time.Since(start).Seconds()*o.rate))
		if due <= sent {
			continue
		}
		if err := w.WriteMessages(ctx, o.msgs[sent:due]...); err != nil {
			return int64(sent), err
		}
		sent = due
	}
	return int64(sent), nil
}

// traffic is the parent's handle on the child.
type traffic struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

// startTraffic starts the broker and traffic process; tb.Cleanup stops it.
func startTraffic(tb testing.TB) *traffic {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), trafficEnv+"=1", "GOGC=400")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tr := &traffic{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	tb.Cleanup(func() {
		_ = in.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("traffic process: %v", err)
		}
	})
	line := tr.line(tb)
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		tb.Fatalf("traffic process said %q, not its address", line)
	}
	tr.addr = addr
	return tr
}

func (tr *traffic) line(tb testing.TB) string {
	tb.Helper()
	if !tr.out.Scan() {
		tb.Fatalf("traffic process ended: %v", tr.out.Err())
	}
	return tr.out.Text()
}

// do sends a command and returns the number of its answer.
func (tr *traffic) do(tb testing.TB, format string, args ...any) int64 {
	tb.Helper()
	tr.send(tb, format, args...)
	return tr.answer(tb)
}

func (tr *traffic) send(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if _, err := fmt.Fprintf(tr.in, format+"\n", args...); err != nil {
		tb.Fatal(err)
	}
}

// answer reads a command's "ok <n>".
func (tr *traffic) answer(tb testing.TB) int64 {
	tb.Helper()
	line := tr.line(tb)
	v, ok := strings.CutPrefix(line, "ok ")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		tb.Fatalf("traffic process said %q", line)
	}
	return n
}

// cpu is the child's CPU time so far.
func (tr *traffic) cpu(tb testing.TB) time.Duration { return time.Duration(tr.do(tb, "cpu")) }
