package jobs_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/state"
)

// The first state engine's "freeze never lifted": the overdue batch was
// cut off after it published a freeze and before it wrote it to state, the
// bill was repaid before the lease ended, and the repayment, finding the
// user not frozen in state, never unfroze; the check claimed again found
// the bill settled and dropped it. Now the freeze is written before it is
// published: cut off between the two, the repayment finds the user frozen
// and unfreezes, and the check claimed again publishes nothing.
func TestFreezeCutOffBeforePublishIsLiftedByTheRepayment(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour))
	w.apply(due("d1", "fz1", "bill-1", 50_000, dueAt))
	// Four days overdue: the check freezes, and its publish fails (the
	// instance dies there).
	w.set(dueAt.Add(4*24*time.Hour + time.Minute))
	cut := &failingPublisher{Publisher: w.pub, failAt: 1}
	r := w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute}, cut)
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("the cut-off run did not fail")
	}
	if u, err := w.store.User(context.Background(), "fz1"); err != nil || !u.FrozenOverdue {
		t.Fatalf("the freeze is not in state before it is published: %+v, %v", u, err)
	}
	// The bill is repaid before the lease ends: the repayment unfreezes.
	out, err := w.store.Apply(context.Background(), []state.Item{{Event: paid("p1", "fz1", "bill-1", 50_000, w.clock()), Topic: 3, Offset: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Unfroze {
		t.Fatal("the repayment of the bill that froze the user did not unfreeze")
	}
	// The lease ends; the check is claimed again, finds the bill settled
	// and publishes nothing.
	w.set(w.clock().Add(2 * time.Minute))
	runOnce(t, w.runner())
	if ds := w.decisions(); len(ds[events.TypeDecisionFrozen]) != 0 || len(ds[events.TypeDecisionOverdue]) != 0 {
		t.Fatalf("decisions for a bill repaid during the lease: %v", ds)
	}
	if u, _ := w.store.User(context.Background(), "fz1"); u.FrozenOverdue {
		t.Fatal("the user stays frozen")
	}
}

// ackThenDie publishes, then fails as an instance that dies right after
// the broker's acknowledgement would.
type ackThenDie struct{ *failingPublisher }

func (p ackThenDie) Write(ctx context.Context, msgs []kafka.Message) error {
	if err := p.Publisher.Write(ctx, msgs); err != nil {
		return err
	}
	return errors.New("test: the instance died after the acknowledgement")
}

// Cut off after publishing a step and before moving its check on, the
// check claimed again when its lease ends publishes the same decision
// again (same id): no step's decision is lost.
func TestOverdueStepCutOffAfterPublishIsPublishedAgain(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour))
	w.apply(due("d1", "fz2", "bill-1", 50_000, dueAt))
	w.set(dueAt.Add(4*24*time.Hour + time.Minute))
	r := w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute}, ackThenDie{&failingPublisher{Publisher: w.pub}})
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("the cut-off run did not fail")
	}
	first := w.decisions()[events.TypeDecisionFrozen]
	if len(first) != 1 {
		t.Fatalf("%d freezes, want 1", len(first))
	}
	w.set(w.clock().Add(2 * time.Minute)) // the lease ends
	runOnce(t, w.runner())
	again := w.decisions()[events.TypeDecisionFrozen]
	if len(again) != 2 || again[1].ID != first[0].ID {
		t.Fatalf("after the check was claimed again: %d freezes (%v), want the first one's id again", len(again), again)
	}
	// And then the check is over: nothing more.
	w.set(w.clock().Add(48 * time.Hour))
	runOnce(t, w.runner())
	if n := len(w.decisions()[events.TypeDecisionFrozen]); n != 2 {
		t.Fatalf("%d freezes after the check ended", n)
	}
}

// slowPublisher tells when a write starts and takes a while to finish it.
type slowPublisher struct {
	*failingPublisher
	started chan struct{}
	once    sync.Once
}

func (p *slowPublisher) Write(ctx context.Context, msgs []kafka.Message) error {
	p.once.Do(func() { close(p.started) })
	time.Sleep(200 * time.Millisecond)
	return p.Publisher.Write(ctx, msgs)
}

// A shutdown while an overdue batch is in flight lets it finish within
// the grace: the freeze written is published and its check ended, not
// left to the lease.
func TestShutdownFinishesTheOverdueBatchInFlight(t *testing.T) {
	t.Parallel()
	dueAt := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	w := newWorld(t, dueAt.Add(-time.Hour))
	w.apply(due("d1", "sd1", "bill-1", 50_000, dueAt))
	w.set(dueAt.Add(4*24*time.Hour + time.Minute))
	pub := &slowPublisher{failingPublisher: &failingPublisher{Publisher: w.pub}, started: make(chan struct{})}
	r := w.runnerWith(jobs.Config{Now: w.clock, Lease: time.Minute, ShutdownGrace: 10 * time.Second}, pub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-pub.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the job never published")
	}
	cancel() // SIGTERM while the freeze is being published
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(w.decisions()[events.TypeDecisionFrozen]); n != 1 {
		t.Fatalf("%d freezes published, want 1", n)
	}
	if _, total, err := w.store.ScheduleStats(context.Background(), state.TimersKey, w.clock()); err != nil || total != 0 {
		t.Fatalf("%d checks left (%v): the batch did not finish", total, err)
	}
}
