package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster starts a real Redis Cluster of three masters (three
// redis-server processes on free ports, 16384 slots split between them)
// and returns a cluster client; t.Cleanup stops everything. It lets a
// contract test check that every multi-key operation stays within one
// slot and that pipelines and scripts work across nodes.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	const nodes = 3
	addrs := make([]string, nodes)
	for i := range addrs {
		srv := RedisServer(t, WithRedisArgs("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000"))
		addrs[i] = srv.Addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := make([]*redis.Client, nodes)
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	per := 16384 / nodes
	for i, c := range clients {
		lo, hi := i*per, (i+1)*per-1
		if i == nodes-1 {
			hi = 16383
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("testenv: cluster: add slots to %s: %v", addrs[i], err)
		}
	}
	for _, a := range addrs[1:] {
		host, port, _ := strings.Cut(a, ":")
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
			t.Fatalf("testenv: cluster: meet %s: %v", a, err)
		}
	}
	for _, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", nodes)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("testenv: cluster did not become ready: %v\n%s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = cc.Close() })
	// Every node must agree on the slot map before the client's first use.
	for {
		if err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err == nil {
			if slots, err := cc.ClusterSlots(ctx).Result(); err == nil && len(slots) == nodes {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("testenv: cluster client not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cc
}
