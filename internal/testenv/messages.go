package testenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Produce writes msgs to topic through a kafka-go Writer with acks=all, a
// 1 ms batch timeout and the murmur2 key balancer (the partitioning of the
// Java client and franz-go), and fails the test if the write fails within
// 15 s. A message's own Topic, when set, must equal topic.
func Produce(t testing.TB, addrs []string, topic string, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ProduceContext(ctx, addrs, topic, msgs...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// ProduceContext is Produce returning the error instead of failing a test,
// for use outside the test goroutine.
func ProduceContext(ctx context.Context, addrs []string, topic string, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// A Transport per call: kafka.DefaultTransport pools connections by
	// address, and a connection pooled before a broker restart (tests
	// restart kfake on the same address) fails with EOF after it.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Transport:    tr,
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    len(msgs),
		MaxAttempts:  5,
	}
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		if m.Topic != "" && m.Topic != topic {
			return fmt.Errorf("produce to %s: message %d has topic %q", topic, i, m.Topic)
		}
		m.Topic = topic
		out[i] = m
	}
	err := w.WriteMessages(ctx, out...)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("produce %d messages to %s: %w", len(msgs), topic, err)
	}
	return nil
}

// ReadN reads topic from the start of every partition, without a consumer
// group, until it has n messages, and returns them ordered by partition
// then offset. It fails the test, saying how many it got, when timeout
// passes first. Messages beyond the n-th are not returned.
func ReadN(t testing.TB, addrs []string, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got, err := readN(ctx, addrs, topic, n, nil)
	if err != nil {
		t.Fatalf("testenv: read %s: got %d of %d messages within %s: %v", topic, len(got), n, timeout, err)
	}
	return got
}

// ReadAll returns every message of topic present now (up to each
// partition's high watermark), ordered by partition then offset. Use it to
// assert that nothing more than expected was written.
func ReadAll(t testing.TB, addrs []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ends, err := endOffsets(ctx, addrs, topic)
	if err != nil {
		t.Fatalf("testenv: read all of %s: %v", topic, err)
	}
	total := 0
	for _, e := range ends {
		total += int(e)
	}
	got, err := readN(ctx, addrs, topic, total, ends)
	if err != nil {
		t.Fatalf("testenv: read all of %s: got %d of %d messages: %v", topic, len(got), total, err)
	}
	return got
}

// newClient returns a kafka-go client with a Transport of its own (see
// ProduceContext) and the function that releases its connections.
func newClient(addrs []string) (*kafka.Client, func()) {
	tr := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(addrs...), Transport: tr}, tr.CloseIdleConnections
}

// partitions returns the partition ids of topic.
func partitions(ctx context.Context, addrs []string, topic string) ([]int, error) {
	c, release := newClient(addrs)
	defer release()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	for _, tp := range md.Topics {
		if tp.Name != topic {
			continue
		}
		if tp.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, tp.Error)
		}
		ps := make([]int, 0, len(tp.Partitions))
		for _, p := range tp.Partitions {
			ps = append(ps, p.ID)
		}
		slices.Sort(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("metadata: no topic %s", topic)
}

// endOffsets returns the high watermark of every partition of topic.
// Offsets start at 0 and nothing is deleted in tests, so it is also the
// number of records in the partition.
func endOffsets(ctx context.Context, addrs []string, topic string) (map[int]int64, error) {
	ps, err := partitions(ctx, addrs, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, len(ps))
	for i, p := range ps {
		reqs[i] = kafka.LastOffsetOf(p)
	}
	c, release := newClient(addrs)
	defer release()
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	ends := make(map[int]int64, len(ps))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
	}
	return ends, nil
}

// readN reads up to n messages from all partitions of topic from offset 0;
// with ends, partition p is read only below ends[p]. It returns what it got
// and an error when ctx ends before n.
func readN(ctx context.Context, addrs []string, topic string, n int, ends map[int]int64) ([]kafka.Message, error) {
	if n <= 0 {
		return nil, nil
	}
	ps, err := partitions(ctx, addrs, topic)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu   sync.Mutex
		got  []kafka.Message
		done = make(chan struct{})
		wg   sync.WaitGroup
		errs []error
	)
	for _, p := range ps {
		end, bounded := ends[p]
		if ends != nil && (!bounded || end == 0) {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   addrs,
			Topic:     topic,
			Partition: p,
			MinBytes:  1,
			MaxBytes:  10 << 20,
			MaxWait:   50 * time.Millisecond,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
				mu.Unlock()
				return
			}
			for {
				m, err := r.ReadMessage(rctx)
				if err != nil {
					if rctx.Err() == nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				if len(got) < n {
					got = append(got, m)
					if len(got) == n {
						close(done)
					}
				}
				mu.Unlock()
				if bounded && m.Offset+1 >= end {
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()

	slices.SortFunc(got, func(a, b kafka.Message) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	if len(got) < n {
		err := ctx.Err()
		if len(errs) > 0 {
			err = errors.Join(append([]error{err}, errs...)...)
		}
		return got, err
	}
	return got, nil
}
