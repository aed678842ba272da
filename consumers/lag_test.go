package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/scoring"
)

// The lag monitor reports lag per partition and, for readiness, whether
// the group has partitions assigned.
func TestLagMonitor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", record(t, pay("l1", "lee", now, 100)), record(t, pay("l2", "lee", now, 100)))
	m := consumers.NewLagMonitor(e.kafka.Addrs(), "fenqi", consumers.DefaultTopics().List(), 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()

	total := func() int64 {
		var n int64
		for _, ps := range m.Lag() {
			for _, l := range ps {
				n += l
			}
		}
		return n
	}
	waitFor(t, "a lag of 2 before anything is consumed", func() bool { return total() == 2 })
	if ok, why := m.Assigned(); ok || why == "" {
		t.Fatalf("assigned before any consumer joined: %v %q", ok, why)
	}
	rules := scoring.DefaultRules()
	p, err := consumers.New(consumers.Config{Brokers: e.kafka.Addrs(), Now: clock}, e.store,
		func() consumers.Rules { return rules }, e.pub, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	waitFor(t, "partitions assigned", func() bool { ok, _ := m.Assigned(); return ok })
	waitFor(t, "the lag drained", func() bool { return total() == 0 })
	pcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
