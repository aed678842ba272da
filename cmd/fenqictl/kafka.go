package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/internal/conn"
)

// broker is one command's access to Kafka. It owns a Transport so that the
// command's connections are its own and are closed when it ends.
type broker struct {
	addrs  []string
	kc     *conn.KafkaConn // TLS, SASL; nil = plaintext
	tr     *kafka.Transport
	rt     kafka.RoundTripper // tr, its failed connections explained
	client *kafka.Client
}

// newBroker returns the access to the brokers at addrs with kc's security
// (the flags' kafka, loaded by parse).
func newBroker(addrs []string, kc *conn.KafkaConn) *broker {
	tr := kc.Transport()
	tr.ClientID, tr.DialTimeout = "fenqictl", 10*time.Second
	rt := kc.Explaining(tr, addrs)
	return &broker{addrs: addrs, kc: kc, tr: tr, rt: rt, client: &kafka.Client{Addr: kafka.TCP(addrs...), Transport: rt, Timeout: 15 * time.Second}}
}

// close releases the idle connections of the broker's Transport.
func (b *broker) close() { b.tr.CloseIdleConnections() }

// writer returns a synchronous writer that waits for every in-sync replica
// (a zero Writer would not wait for any: acks=0 loses writes silently) and
// fills a batch for at most 5 ms (the default is 1 s per small write). It
// never creates topics. Records name their own topic.
func (b *broker) writer(bal kafka.Balancer) *kafka.Writer {
	if bal == nil {
		// The Java client's partitioner, as fenqid and upstream producers use:
		// a user's records land on the same partition whoever writes them.
		bal = &kafka.Murmur2Balancer{}
	}
	return &kafka.Writer{
		Addr:                   kafka.TCP(b.addrs...),
		Transport:              b.rt,
		Balancer:               bal,
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		BatchSize:              1000,
		WriteTimeout:           10 * time.Second,
		MaxAttempts:            5,
		AllowAutoTopicCreation: false,
	}
}

// partitions returns the partition ids of topic, sorted.
func (b *broker) partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s from %v: %w", topic, b.addrs, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		ps := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ps = append(ps, p.ID)
		}
		if len(ps) == 0 {
			return nil, fmt.Errorf("topic %s: no partitions", topic)
		}
		slices.Sort(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("topic %s: not in the broker's metadata", topic)
}

// offsets returns, for each partition, the first offset still stored
// (which = kafka.FirstOffset) or the next offset to be written (which =
// kafka.LastOffset, the high watermark).
func (b *broker) offsets(ctx context.Context, topic string, ps []int, which int64) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(ps))
	for i, p := range ps {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: which}
	}
	resp, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(ps))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if which == kafka.FirstOffset {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
	}
	for _, p := range ps {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets of %s: no answer for partition %d", topic, p)
		}
	}
	return out, nil
}

// reader returns a reader of one partition (no consumer group, nothing is
// committed) positioned at offset.
func (b *broker) reader(topic string, partition int, offset int64) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   b.addrs,
		Dialer:    b.kc.Dialer(),
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   250 * time.Millisecond,
	})
	if err := r.SetOffset(offset); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("read %s/%d from offset %d: %w", topic, partition, offset, err)
	}
	return r, nil
}

// span is the offsets [from, to) of one partition.
type span struct {
	partition int
	from, to  int64
}

// readSpans reads the given spans of topic one after the other, in
// partition then offset order, and calls fn for each record.
func (b *broker) readSpans(ctx context.Context, topic string, spans []span, fn func(kafka.Message) error) error {
	for _, s := range spans {
		if s.from >= s.to {
			continue
		}
		if err := b.readSpan(ctx, topic, s, fn); err != nil {
			return err
		}
	}
	return nil
}

func (b *broker) readSpan(ctx context.Context, topic string, s span, fn func(kafka.Message) error) (err error) {
	r, err := b.reader(topic, s.partition, s.from)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close reader of %s/%d: %w", topic, s.partition, cerr)
		}
	}()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d at offset %d: %w", topic, s.partition, r.Offset(), err)
		}
		if m.Offset >= s.to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset+1 >= s.to {
			return nil
		}
	}
}

// spansOf returns the spans of every partition of topic that hold records
// now, narrowed to offsets from..to inclusive (-1 = unbounded) and to one
// partition (-1 = all).
func (b *broker) spansOf(ctx context.Context, topic string, partition int, from, to int64) ([]span, error) {
	ps, err := b.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if partition >= 0 {
		if !slices.Contains(ps, partition) {
			return nil, fmt.Errorf("topic %s has no partition %d (partitions %v)", topic, partition, ps)
		}
		ps = []int{partition}
	}
	firsts, err := b.offsets(ctx, topic, ps, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	ends, err := b.offsets(ctx, topic, ps, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	spans := make([]span, 0, len(ps))
	for _, p := range ps {
		s := span{partition: p, from: firsts[p], to: ends[p]}
		if from >= 0 {
			s.from = max(s.from, from)
		}
		if to >= 0 {
			s.to = min(s.to, to+1)
		}
		spans = append(spans, s)
	}
	return spans, nil
}
