package consumers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// LagMonitor measures the consumer group's lag per input partition: the
// partition's high watermark less the group's committed offset. It asks
// the broker every Interval (kafka-go's group reader only reports one
// total), and Lag returns the last answer without blocking.
type LagMonitor struct {
	client   *kafka.Client
	group    string
	topics   []string
	interval time.Duration

	mu       sync.Mutex
	lag      map[string]map[int]int64
	assigned int       // input partitions assigned to the group's members at the last look
	groupErr error     // why the last look at the group failed, if it did
	lookedAt time.Time // when the group was last looked at
}

// LagConfig configures a LagMonitor.
type LagConfig struct {
	Brokers  []string
	GroupID  string
	Topics   []string
	Interval time.Duration // default 10s
	// Transport carries the monitor's requests (conn.KafkaConn.Transport:
	// TLS, SASL): give it one of its own, so that its connections are not
	// shared with the reader or the writer and a broker restart is met
	// with new ones. nil = a plaintext kafka.Transport of its own.
	Transport kafka.RoundTripper
}

// NewLag returns a monitor of cfg.GroupID's lag on cfg.Topics.
func NewLag(cfg LagConfig) *LagMonitor {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = &kafka.Transport{}
	}
	return &LagMonitor{
		client:   &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: cfg.Transport},
		group:    cfg.GroupID,
		topics:   cfg.Topics,
		interval: cfg.Interval,
		lag:      map[string]map[int]int64{},
	}
}

// NewLagMonitor returns a monitor of group's lag on topics, over plaintext
// connections (NewLag with no Transport).
func NewLagMonitor(brokers []string, group string, topics []string, interval time.Duration) *LagMonitor {
	return NewLag(LagConfig{Brokers: brokers, GroupID: group, Topics: topics, Interval: interval})
}

// Lag returns the last measured lag by topic and partition.
func (m *LagMonitor) Lag() map[string]map[int]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]map[int]int64, len(m.lag))
	for t, ps := range m.lag {
		out[t] = make(map[int]int64, len(ps))
		for p, l := range ps {
			out[t][p] = l
		}
	}
	return out
}

// Assigned says whether the consumer group had input partitions assigned
// at the last look (every Interval), with the reason when not: a
// readiness check.
func (m *LagMonitor) Assigned() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.lookedAt.IsZero():
		return false, "consumer group not looked at yet"
	case m.groupErr != nil:
		return false, "consumer group: " + m.groupErr.Error()
	case m.assigned == 0:
		return false, fmt.Sprintf("consumer group %s has no partitions assigned yet", m.group)
	}
	return true, ""
}

// Run measures until ctx ends. A failed measurement keeps the last one.
func (m *LagMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if lag, err := m.Measure(ctx); err == nil {
			m.mu.Lock()
			m.lag = lag
			m.mu.Unlock()
		}
		n, err := m.assignedPartitions(ctx)
		m.mu.Lock()
		m.assigned, m.groupErr, m.lookedAt = n, err, time.Now()
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Measure asks the broker for the group's lag now.
func (m *LagMonitor) Measure(ctx context.Context) (map[string]map[int]int64, error) {
	offs, err := groupOffsets(ctx, m.client, m.group, m.topics)
	if err != nil {
		return nil, fmt.Errorf("consumers: lag: %w", err)
	}
	out := make(map[string]map[int]int64, len(offs))
	for t, ps := range offs {
		out[t] = make(map[int]int64, len(ps))
		for _, p := range ps {
			out[t][p.partition] = p.lag()
		}
	}
	return out, nil
}

// assignedPartitions counts the input partitions assigned to the group's
// members now.
func (m *LagMonitor) assignedPartitions(ctx context.Context) (int, error) {
	resp, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{m.group}})
	if err != nil {
		return 0, fmt.Errorf("describe group: %w", err)
	}
	n := 0
	for _, g := range resp.Groups {
		if g.Error != nil {
			return 0, fmt.Errorf("describe group: %w", g.Error)
		}
		for _, mem := range g.Members {
			for _, t := range mem.MemberAssignments.Topics {
				n += len(t.Partitions)
			}
		}
	}
	return n, nil
}
