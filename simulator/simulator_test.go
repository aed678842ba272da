package simulator_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/simulator"
)

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

// fixedClock is a clock that moves 5 ms per call from start.
func fixedClock(start time.Time) func() time.Time {
	t := start
	return func() time.Time {
		t = t.Add(5 * time.Millisecond)
		return t
	}
}

type rec struct {
	topic      string
	key, value []byte
}

func generate(cfg simulator.Config, n int) []rec {
	s := simulator.New(cfg)
	out := make([]rec, n)
	for i := range out {
		out[i].topic, out[i].key, out[i].value = s.Next()
	}
	return out
}

func TestDeterministic(t *testing.T) {
	start := time.Date(2026, 3, 10, 15, 0, 0, 0, shanghai)
	cfg := func(seed int64) simulator.Config {
		return simulator.Config{Seed: seed, Users: 500, Now: fixedClock(start), MalformedRatio: 0.01}
	}
	a, b := generate(cfg(7), 5000), generate(cfg(7), 5000)
	for i := range a {
		if a[i].topic != b[i].topic || !bytes.Equal(a[i].key, b[i].key) || !bytes.Equal(a[i].value, b[i].value) {
			t.Fatalf("event %d differs with the same seed:\n%s\n%s", i, a[i].value, b[i].value)
		}
	}
	c := generate(cfg(8), 5000)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].value, c[i].value) {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("%d identical events with different seeds", same)
	}
}

// stats decodes n events and classifies them.
type stats struct {
	byType     map[string]int
	malformed  int
	nights     int
	nightLarge int
	future     int
	ids        map[string]bool
	dupIDs     int
	scenes     map[events.Scene]int
	installs   map[int]int
	large      int
	otherCity  int
	logins     int
	events     []events.Event
}

func collect(t *testing.T, cfg simulator.Config, n int, now time.Time) stats {
	t.Helper()
	dec := events.Decoder{Now: func() time.Time { return now.Add(time.Hour) }}
	st := stats{byType: map[string]int{}, ids: map[string]bool{}, scenes: map[events.Scene]int{}, installs: map[int]int{}}
	s := simulator.New(cfg)
	c := s.Config()
	topicOf := map[string]string{
		events.TypePayment: c.Topics.Payments, events.TypeLogin: c.Topics.Logins,
		events.TypeRepaymentDue: c.Topics.Repayments, events.TypeRepaymentPaid: c.Topics.Repayments,
		events.TypeProfile: c.Topics.Profiles,
	}
	homes := map[string]map[string]int{}
	for range n {
		topic, key, value := s.Next()
		e, err := dec.Decode(key, nil, value)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("decode error of type %T: %v", err, err)
			}
			st.malformed++
			continue
		}
		st.events = append(st.events, e)
		if topicOf[e.Type] != topic {
			t.Fatalf("%s on topic %s", e.Type, topic)
		}
		if string(key) != e.Subject || !strings.HasPrefix(e.Subject, "u") {
			t.Fatalf("key %q, subject %q", key, e.Subject)
		}
		if st.ids[e.ID] {
			st.dupIDs++
		}
		st.ids[e.ID] = true
		st.byType[e.Type]++
		if e.Time.After(now) {
			st.future++
		}
		switch e.Type {
		case events.TypePayment:
			p := e.Payment
			st.scenes[p.Scene]++
			st.installs[p.Installments]++
			if p.AmountFen >= 200_000 && p.Installments == 0 {
				st.large++
			}
			if h := e.Time.In(shanghai).Hour(); h < 6 && e.Time.Before(now.Add(-time.Minute)) {
				st.nights++
				if p.AmountFen >= 200_000 {
					st.nightLarge++
				}
			}
		case events.TypeLogin:
			st.logins++
			if homes[e.Subject] == nil {
				homes[e.Subject] = map[string]int{}
			}
			homes[e.Subject][e.Login.City]++
		}
	}
	// Logins away from the user's most frequent city.
	for _, cs := range homes {
		best, total := 0, 0
		for _, n := range cs {
			best = max(best, n)
			total += n
		}
		st.otherCity += total - best
	}
	return st
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tol)
	} else {
		t.Logf("%s = %.4f (want %.4f ± %.4f)", what, got, want, tol)
	}
}

func TestMixDecodesAndLooksReal(t *testing.T) {
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, shanghai) // afternoon
	const n = 60000
	st := collect(t, simulator.Config{Seed: 1, Users: 3000, Now: func() time.Time { return now }, MalformedRatio: -1}, n, now)
	if st.malformed != 0 {
		t.Fatalf("%d events do not decode with MalformedRatio < 0", st.malformed)
	}
	if st.dupIDs != 0 {
		t.Fatalf("%d duplicate ids", st.dupIDs)
	}
	if st.future != 0 {
		t.Fatalf("%d events in the future", st.future)
	}
	profiles := st.byType[events.TypeProfile]
	rest := float64(n - profiles)
	pay, login := float64(st.byType[events.TypePayment]), float64(st.byType[events.TypeLogin])
	rep := float64(st.byType[events.TypeRepaymentDue] + st.byType[events.TypeRepaymentPaid])
	within(t, "payments share", pay/rest, 0.55, 0.03)
	within(t, "logins share", login/rest, 0.35, 0.03)
	within(t, "repayments share", rep/rest, 0.10, 0.02)
	if paid, due := st.byType[events.TypeRepaymentPaid], st.byType[events.TypeRepaymentDue]; paid == 0 || paid >= 2*due {
		t.Errorf("paid %d for %d due", paid, due)
	}
	within(t, "night payments share", float64(st.nights)/pay, 0.03, 0.01)
	if st.nightLarge < st.nights/5 {
		t.Errorf("only %d of %d night payments are large", st.nightLarge, st.nights)
	}
	within(t, "large pay-now payments share", float64(st.large)/float64(st.installs[0]), 0.04, 0.025)
	within(t, "logins from another city", float64(st.otherCity)/float64(st.logins), 0.02, 0.01)
	spend := st.scenes[events.SceneEcommerce] + st.scenes[events.SceneLocalLife] + st.scenes[events.SceneOfflineRetail]
	within(t, "e-commerce+local life+retail share", float64(spend)/pay, 0.75, 0.05)
	if st.scenes[events.SceneRedPacket] == 0 || st.scenes[events.SceneTransfer] == 0 || st.scenes[events.SceneEducation] == 0 || st.scenes[events.SceneMedical] == 0 {
		t.Errorf("scenes missing: %v", st.scenes)
	}
	within(t, "pay-now share", float64(st.installs[0])/pay, 0.936, 0.02)
	for _, k := range creditPeriods() {
		if st.installs[k] == 0 {
			t.Errorf("no %d-period installments: %v", k, st.installs)
		}
	}

	// Profiles come first for every user, and their fields spread.
	seen := map[string]bool{}
	var scores []int
	verified, blacklisted, defaulters, zoned := 0, 0, 0, 0
	for _, e := range st.events {
		if e.Type == events.TypeProfile {
			if !seen[e.Subject] {
				p := e.Profile
				scores = append(scores, p.PayScore)
				if p.RealNameVerified {
					verified++
				}
				if p.CardBankBlacklisted {
					blacklisted++
				}
				if p.JudicialDefaulter {
					defaulters++
				}
				if p.Timezone != "" {
					zoned++
				}
			}
			seen[e.Subject] = true
			continue
		}
		if !seen[e.Subject] {
			t.Fatalf("%s event %s before the profile of %s", e.Type, e.ID, e.Subject)
		}
	}
	np := float64(len(scores))
	lo, hi := 1000, 0
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	if lo < 450 || hi > 820 || lo > 520 || hi < 780 {
		t.Errorf("pay scores span %d–%d, want about 450–820", lo, hi)
	}
	within(t, "verified share", float64(verified)/np, 0.95, 0.03)
	if blacklisted == 0 || defaulters == 0 {
		t.Errorf("blacklisted %d, defaulters %d: want a few", blacklisted, defaulters)
	}
	within(t, "profiles with a time zone", float64(zoned)/np, 0.05, 0.03)
}

func TestNightsNeverInFuture(t *testing.T) {
	// Around and inside the night window, in Shanghai and elsewhere.
	for _, clock := range []string{"00:00:01", "02:30:00", "05:59:59", "06:00:00", "12:00:00", "23:59:59"} {
		tm, _ := time.ParseInLocation(time.DateTime, "2026-07-01 "+clock, shanghai)
		st := collect(t, simulator.Config{Seed: 3, Users: 200, Now: func() time.Time { return tm }, MalformedRatio: -1}, 8000, tm)
		if st.future != 0 {
			t.Fatalf("at %s: %d events in the future", clock, st.future)
		}
		nights := 0
		for _, e := range st.events {
			if e.Time.Before(tm.Add(-24 * time.Hour)) {
				t.Fatalf("at %s: %s at %s, more than 24h before", clock, e.ID, e.Time)
			}
			if e.Type == events.TypePayment && !e.Time.Equal(tm) {
				nights++
			}
		}
		if nights == 0 {
			t.Fatalf("at %s: no night payments", clock)
		}
	}
}

func TestMalformed(t *testing.T) {
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, shanghai)
	st := collect(t, simulator.Config{Seed: 5, Users: 100, Now: func() time.Time { return now }, MalformedRatio: 0.2}, 5000, now)
	within(t, "malformed share", float64(st.malformed)/5000, 0.2, 0.03)

	// The default ratio is small but not zero.
	st = collect(t, simulator.Config{Seed: 5, Users: 100, Now: func() time.Time { return now }}, 20000, now)
	if st.malformed == 0 || st.malformed > 60 {
		t.Errorf("default ratio: %d malformed of 20000", st.malformed)
	}
}

func TestDefaults(t *testing.T) {
	c := simulator.New(simulator.Config{}).Config()
	if c.Users != 3000 || c.Rate != 200 || c.MalformedRatio != 0.001 ||
		c.Topics.Payments != "fenqi.payments" || c.Topics.Logins != "fenqi.logins" ||
		c.Topics.Repayments != "fenqi.repayments" || c.Topics.Profiles != "fenqi.profiles" {
		t.Fatalf("defaults: %+v", c)
	}
}

type fakeWriter struct {
	mu    sync.Mutex
	msgs  []kafka.Message
	calls int
	err   error
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.calls++
	w.msgs = append(w.msgs, msgs...)
	return nil
}

func TestRunPaces(t *testing.T) {
	s := simulator.New(simulator.Config{Seed: 9, Users: 50, Rate: 1000})
	w := &fakeWriter{}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx, w); err != nil {
		t.Fatalf("Run: %v", err)
	}
	n := len(w.msgs)
	if n < 300 || n > 600 {
		t.Fatalf("wrote %d events in 0.5 s at 1000/s", n)
	}
	if w.calls < 10 {
		t.Fatalf("%d writes: batches too large", w.calls)
	}
	for _, m := range w.msgs {
		if m.Topic == "" || len(m.Key) == 0 || len(m.Value) == 0 {
			t.Fatalf("incomplete message %+v", m)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "content-type" || string(m.Headers[0].Value) != events.ContentTypeCloudEvents {
			t.Fatalf("headers %v", m.Headers)
		}
	}
}

func TestRunMaxEventsAndErrors(t *testing.T) {
	w := &fakeWriter{}
	if err := simulator.New(simulator.Config{Rate: 5000, MaxEvents: 123}).Run(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if len(w.msgs) != 123 {
		t.Fatalf("wrote %d, want 123", len(w.msgs))
	}
	boom := errors.New("boom")
	err := simulator.New(simulator.Config{Rate: 5000}).Run(context.Background(), &fakeWriter{err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	if err := simulator.New(simulator.Config{}).Run(context.Background(), nil); !errors.Is(err, simulator.ErrNoWriter) {
		t.Fatalf("Run(nil) = %v", err)
	}
}
