package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// partitionOffsets is where one partition's log starts and ends, and the
// consumer group's committed offset on it (-1: never committed).
type partitionOffsets struct {
	partition             int
	first, end, committed int64
}

// next is the first offset the group has not processed: the committed
// offset, or the first record kept when the group never committed (or
// committed below the log start, records since deleted): the group then
// reads from there (StartOffset FirstOffset).
func (p partitionOffsets) next() int64 { return max(p.committed, p.first) }

// lag is how many records the group has not processed.
func (p partitionOffsets) lag() int64 { return max(p.end-p.next(), 0) }

// groupOffsets asks the broker, in four requests, for the partitions of
// topics (Metadata), their first and end offsets (ListOffsets) and the
// group's committed offsets (OffsetFetch). A topic the broker does not
// know is left out of the answer (an error when none is known); every
// partition of the others is in it.
func groupOffsets(ctx context.Context, client *kafka.Client, group string, topics []string) (map[string][]partitionOffsets, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("consumers: offsets of %v: metadata: %w", topics, err)
	}
	parts := map[string][]int{}
	var missing error
	for _, t := range meta.Topics {
		if t.Error != nil {
			missing = errors.Join(missing, fmt.Errorf("consumers: offsets of %s: metadata: %w", t.Name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, errors.Join(missing, fmt.Errorf("consumers: offsets of %v: metadata: %w", topics, kafka.UnknownTopicOrPartition))
	}
	// First and end offsets in two requests: a broker refuses a partition
	// named twice in one.
	first, err := listOffsets(ctx, client, parts, kafka.FirstOffsetOf)
	if err != nil {
		return nil, err
	}
	end, err := listOffsets(ctx, client, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, err
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return nil, fmt.Errorf("consumers: offsets of group %s: offset fetch: %w", group, err)
	}
	switch {
	case errors.Is(committed.Error, kafka.GroupIdNotFound):
		// A group that never committed (some brokers, kfake among them,
		// say so rather than answer -1): every partition from its start.
		committed.Topics = nil
	case committed.Error != nil:
		return nil, fmt.Errorf("consumers: offsets of group %s: offset fetch: %w", group, committed.Error)
	}
	done := map[string]map[int]int64{}
	for t, ps := range committed.Topics {
		done[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("consumers: offsets of group %s on %s/%d: offset fetch: %w", group, t, p.Partition, p.Error)
			}
			done[t][p.Partition] = p.CommittedOffset
		}
	}
	out := make(map[string][]partitionOffsets, len(parts))
	for t, ps := range parts {
		for _, p := range ps {
			c, ok := done[t][p]
			if !ok {
				c = -1 // not in the answer: never committed
			}
			out[t] = append(out[t], partitionOffsets{partition: p, first: first[t][p], end: end[t][p], committed: c})
		}
	}
	return out, nil
}

// listOffsets lists one offset (first or last) of each partition.
func listOffsets(ctx context.Context, client *kafka.Client, parts map[string][]int, of func(int) kafka.OffsetRequest) (map[string]map[int]int64, error) {
	reqs := make(map[string][]kafka.OffsetRequest, len(parts))
	for t, ps := range parts {
		for _, p := range ps {
			reqs[t] = append(reqs[t], of(p))
		}
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return nil, fmt.Errorf("consumers: list offsets: %w", err)
	}
	firsts := of(0).Timestamp == kafka.FirstOffset
	out := make(map[string]map[int]int64, len(parts))
	for t, ps := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("consumers: list offsets of %s/%d: %w", t, p.Partition, p.Error)
			}
			if firsts {
				out[t][p.Partition] = p.FirstOffset
			} else {
				out[t][p.Partition] = p.LastOffset
			}
		}
	}
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := out[t][p]; !ok {
				return nil, fmt.Errorf("consumers: list offsets of %s/%d: no answer for the partition: %w", t, p, kafka.UnknownTopicOrPartition)
			}
		}
	}
	return out, nil
}
