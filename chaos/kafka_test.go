package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
)

// inputTopics are fenqid's input topics (its defaults).
var inputTopics = consumers.DefaultTopics().List()

// produce writes recs, keeping their order within each partition: the
// records are grouped by topic and partition (the murmur2 partitioner of
// the Java client and franz-go, by key), and each group is written in
// sub-batches of at most 500, one at a time, each a single produce batch
// retried (on a fresh connection: one pooled before a broker restart fails
// after it) until it succeeds or ctx ends. A sub-batch written again after
// an ambiguous failure repeats its records after themselves — the same
// CloudEvents source and id, as an upstream re-send, which fenqid must
// recognise anyway — and never reorders a record before one written
// earlier.
func produce(ctx context.Context, addr string, parts int, recs []rec) error {
	type tp struct {
		topic string
		p     int
	}
	groups := map[tp][]kafka.Message{}
	var order []tp
	ps := make([]int, parts)
	for i := range ps {
		ps[i] = i
	}
	for _, r := range recs {
		m := kafka.Message{Topic: r.topic, Key: []byte(r.key), Value: r.value}
		k := tp{r.topic, kafka.Murmur2Balancer{}.Balance(m, ps...)}
		m.Partition = k.p
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	for _, k := range order {
		msgs := groups[k]
		for len(msgs) > 0 {
			n := min(len(msgs), 500)
			if err := writeBatch(ctx, addr, msgs[:n]); err != nil {
				return err
			}
			msgs = msgs[n:]
		}
	}
	return nil
}

// fixedPartition sends each message to its own Partition.
type fixedPartition struct{}

func (fixedPartition) Balance(m kafka.Message, _ ...int) int { return m.Partition }

func writeBatch(ctx context.Context, addr string, msgs []kafka.Message) error {
	var last error
	for {
		tr := &kafka.Transport{DialTimeout: 2 * time.Second}
		w := &kafka.Writer{
			Addr:         kafka.TCP(addr),
			Transport:    tr,
			Balancer:     fixedPartition{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			BatchSize:    len(msgs),
			BatchBytes:   64 << 20,
			MaxAttempts:  1,
			WriteTimeout: 10 * time.Second,
		}
		err := w.WriteMessages(ctx, msgs...)
		_ = w.Close()
		tr.CloseIdleConnections()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("produce %d records to %s/%d: %w (last error: %v)", len(msgs), msgs[0].Topic, msgs[0].Partition, ctx.Err(), last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// groupLag asks the broker for the group's lag on the input topics: the
// partitions' end offsets less the group's committed offsets (a partition
// never committed counts from 0). A fresh connection each time.
func groupLag(ctx context.Context, addr, group string, parts int) (int64, error) {
	tr := &kafka.Transport{DialTimeout: time.Second}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 3 * time.Second, Transport: tr}
	req := map[string][]kafka.OffsetRequest{}
	fetch := map[string][]int{}
	for _, t := range inputTopics {
		for p := range parts {
			req[t] = append(req[t], kafka.LastOffsetOf(p))
			fetch[t] = append(fetch[t], p)
		}
	}
	lo, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	end := map[string]map[int]int64{}
	for t, ps := range lo.Topics {
		end[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return 0, fmt.Errorf("list offsets %s/%d: %w", t, p.Partition, p.Error)
			}
			end[t][p.Partition] = p.LastOffset
		}
	}
	of, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: fetch})
	if err != nil {
		return 0, fmt.Errorf("offset fetch: %w", err)
	}
	committed := map[string]map[int]int64{}
	switch {
	case errors.Is(of.Error, kafka.GroupIdNotFound):
	case of.Error != nil:
		return 0, fmt.Errorf("offset fetch: %w", of.Error)
	default:
		for t, ps := range of.Topics {
			committed[t] = map[int]int64{}
			for _, p := range ps {
				if p.Error != nil {
					return 0, fmt.Errorf("offset fetch %s/%d: %w", t, p.Partition, p.Error)
				}
				committed[t][p.Partition] = p.CommittedOffset
			}
		}
	}
	var total int64
	for t, ps := range end {
		for p, e := range ps {
			if len(end[t]) != parts {
				return 0, fmt.Errorf("list offsets: %s has %d partitions, want %d", t, len(end[t]), parts)
			}
			total += e - max(committed[t][p], 0)
		}
	}
	return total, nil
}

// decisionLog follows the decisions topic from its start, on every
// partition, and keeps what a notifier would see.
type decisionLog struct {
	mu      sync.Mutex
	records int
	count   map[string]int       // decision id -> records with it
	byID    map[string]decInfo   // decision id -> what it is
	byCause map[string]time.Time // causation id -> when first seen
	last    time.Time            // when the last new id arrived
	errs    int                  // records that did not decode
}

type decInfo struct {
	typ, user, cause string
}

// follow reads the decisions topic until ctx ends.
func follow(ctx context.Context, addr string, parts int) *decisionLog {
	l := &decisionLog{count: map[string]int{}, byID: map[string]decInfo{}, byCause: map[string]time.Time{}}
	for p := range parts {
		go func() {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: []string{addr}, Topic: events.TopicDecisions, Partition: p,
				MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond,
				ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: 300 * time.Millisecond,
				Dialer: &kafka.Dialer{Timeout: 2 * time.Second},
			})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
					continue
				}
				l.add(m.Value)
			}
		}()
	}
	return l
}

func (l *decisionLog) add(v []byte) {
	d, err := events.DecodeDecision(v)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	if err != nil {
		l.errs++
		return
	}
	l.count[d.ID]++
	if l.count[d.ID] == 1 {
		l.byID[d.ID] = decInfo{typ: d.Type, user: d.Subject, cause: d.Data.CausationID}
		l.last = now
		if _, ok := l.byCause[d.Data.CausationID]; !ok {
			l.byCause[d.Data.CausationID] = now
		}
	}
}

// seen returns when a decision with that causation id was first seen.
func (l *decisionLog) seen(cause string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.byCause[cause]
	return t, ok
}

// snapshot copies the log.
func (l *decisionLog) snapshot() decisions {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := decisions{records: l.records, errs: l.errs, count: map[string]int{}, byID: map[string]decInfo{}}
	for k, v := range l.count {
		d.count[k] = v
	}
	for k, v := range l.byID {
		d.byID[k] = v
	}
	return d
}

func (l *decisionLog) lastNew() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// decisions is a snapshot of the decisions topic.
type decisions struct {
	records int
	errs    int
	count   map[string]int
	byID    map[string]decInfo
}

// repeats counts records beyond the first of each id.
func (d decisions) repeats() (records, ids int) {
	for _, n := range d.count {
		if n > 1 {
			records += n - 1
			ids++
		}
	}
	return
}

// stable returns the ids whose decision does not depend on when a job ran
// (every type but quota), and the users that have a quota decision.
func (d decisions) stable() (ids map[string]decInfo, quotaUsers map[string]bool) {
	ids, quotaUsers = map[string]decInfo{}, map[string]bool{}
	for id, in := range d.byID {
		if in.typ == events.TypeDecisionQuota {
			quotaUsers[in.user] = true
			continue
		}
		ids[id] = in
	}
	return
}

// groupMembers returns, for each member of the group, how many input
// partitions it is assigned, and the group's state.
func groupMembers(ctx context.Context, addr, group string) (map[string]int, string, error) {
	tr := &kafka.Transport{DialTimeout: time.Second}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 3 * time.Second, Transport: tr}
	resp, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, "", err
	}
	if len(resp.Groups) != 1 {
		return nil, "", fmt.Errorf("describe groups: %d groups in the answer", len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return nil, "", g.Error
	}
	out := map[string]int{}
	for _, m := range g.Members {
		n := 0
		for _, t := range m.MemberAssignments.Topics {
			n += len(t.Partitions)
		}
		out[m.MemberID] = n
	}
	return out, g.GroupState, nil
}
