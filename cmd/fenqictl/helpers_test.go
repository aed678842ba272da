package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what a command printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) code() int { return exitCode(r.err) }

// runCmd runs one fenqictl command line with the given environment (and
// nothing of the real one) and standard input.
func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, out, errb := newTestCLI(env, stdin)
	err := c.run(ctx, args)
	t.Logf("fenqictl %s\nstdout:\n%sstderr:\n%serr: %v", strings.Join(args, " "), out, errb, err)
	return result{out.String(), errb.String(), err}
}

func newTestCLI(env map[string]string, stdin string) (*cli, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	return &cli{
		stdin: strings.NewReader(stdin), stdout: out, stderr: errb,
		getenv: func(k string) string { return env[k] },
	}, out, errb
}

var inputTopicNames = []string{defaultPayments, defaultLogins, defaultRepayments, defaultProfiles, defaultOperator}

// recent is a valid event time: the decoder refuses times more than 5
// minutes ahead of its clock.
var recent = time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)

func payment(id, user string, amount int64) events.Event {
	return events.Event{ID: id, Type: events.TypePayment, Source: "//test", Subject: user, Time: recent,
		Payment: &events.Payment{UserID: user, AmountFen: amount, Currency: "CNY", Scene: events.SceneEcommerce,
			MerchantID: "m-jd", Installments: 3, DeviceID: "dev-1", City: "Shanghai", Auth: events.AuthFace}}
}

func login(id, user string) events.Event {
	return events.Event{ID: id, Type: events.TypeLogin, Source: "//test", Subject: user, Time: recent,
		Login: &events.Login{UserID: user, DeviceID: "dev-1", City: "Shanghai", IP: "203.0.113.7", Auth: events.AuthPassword}}
}

func due(id, user, bill string) events.Event {
	return events.Event{ID: id, Type: events.TypeRepaymentDue, Source: "//test", Subject: user, Time: recent,
		Due: &events.RepaymentDue{UserID: user, BillID: bill, AmountFen: 50000, DueAt: recent.Add(240 * time.Hour)}}
}

func paid(id, user, bill string) events.Event {
	return events.Event{ID: id, Type: events.TypeRepaymentPaid, Source: "//test", Subject: user, Time: recent,
		Paid: &events.RepaymentPaid{UserID: user, BillID: bill, AmountFen: 50000}}
}

func profile(id, user string) events.Event {
	return events.Event{ID: id, Type: events.TypeProfile, Source: "//test", Subject: user, Time: recent,
		Profile: &events.Profile{UserID: user, PayScore: 700, RealNameVerified: true, IdentityComplete: true,
			CardBoundSince: "2023-05-20", WealthBalanceFen: 1000000, Timezone: "Asia/Shanghai"}}
}

func marshal(t *testing.T, e events.Event) string {
	t.Helper()
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// header returns the values of header key of m.
func header(m kafka.Message, key string) []string {
	var vs []string
	for _, h := range m.Headers {
		if h.Key == key {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

// decode decodes a record the way fenqid does, failing the test if it is
// refused.
func decode(t *testing.T, m kafka.Message) events.Event {
	t.Helper()
	hs := make([]events.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = events.Header{Key: h.Key, Value: h.Value}
	}
	e, err := events.Decoder{}.Decode(m.Key, hs, m.Value)
	if err != nil {
		t.Fatalf("%s/%d@%d refused: %v\nvalue: %s", m.Topic, m.Partition, m.Offset, err, m.Value)
	}
	return e
}

// waitForOutput waits until buf holds want; it fails the test if the
// command ends first (done) or after 20 s.
func waitForOutput(t *testing.T, buf *syncBuffer, want string, done <-chan error) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(buf.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("the command ended before printing %q: %v\n%s", want, err, buf)
		case <-deadline:
			t.Fatalf("no %q within 20s:\n%s", want, buf)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
