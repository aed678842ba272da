package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/internal/conn"
	"github.com/fenqi/fenqi/state"
)

const epochAbout = `List the offset epochs of fenqid's input topics, or raise one topic's epoch
(--raise TOPIC).

fenqid remembers, per user, input topic and partition, the last offset it
applied, and takes a record at or below it in the same epoch for a
redelivery: nothing is applied and no decision is published. When a topic's
offsets start over lower than before, its new records would all be dropped
that way. Raising the topic's epoch makes fenqid compare the topic's offsets
only with those applied in the new epoch, so that its records count as new.

When: after an input topic was deleted and recreated, or its offsets otherwise
start over lower than before (the topic was moved to another cluster or
restored from a backup). fenqid's log warns of it: "an event at an offset
already applied is not among its user's latest events". Not after
fenqictl rewind: a rewind replays records already applied, and those must
stay redeliveries.

How: stop fenqid (or at least be sure that its consumers have not yet read
the new records), raise the epoch of each such topic, once, then start fenqid.
  - With every fenqid stopped: fenqictl epoch --redis --raise fenqi.payments
    raises it in Redis directly, with fenqid's Redis settings (--redis-addr,
    --redis-prefix, … or the FENQI_REDIS_* variables) and topic names (--topic-*
    or the FENQI_TOPIC_* variables).
  - Without --redis the command asks fenqid's admin API (--api; a raise needs
    the write token in FENQI_ADMIN_TOKEN or --admin-token-file), so a fenqid must be running: raise
    before it reads any of the new records (the recreated topic is still empty,
    say). A running fenqid takes a new epoch from its next batch.
TOPIC is the topic's name as fenqid consumes it (its -topic-* settings).

Records already dropped as redeliveries had their offsets committed: after the
raise, with fenqid stopped, fenqictl rewind --to <when the topic started over>
makes fenqid read them again.`

// epochView is one input topic's offset epoch, as fenqid's admin API
// answers it (cmd/fenqid's TestEpochsAPI pins the field names).
type epochView struct {
	Topic string `json:"topic"`
	Index int    `json:"index"`
	Epoch uint32 `json:"epoch"`
}

// epochsView is the answer of GET /v1/epochs.
type epochsView struct {
	Topics []epochView `json:"topics"`
}

// redisFlags are fenqid's Redis settings, for --redis.
type redisFlags struct {
	addr, prefix string
	db           int
	cluster      bool
	sec          conn.Redis // TLS, the ACL user, the password
}

// redis registers fenqid's Redis flags, reading the variables fenqid reads.
func (f *flags) redis(r *redisFlags) {
	f.StringVar(&r.addr, "redis-addr", "localhost:6379", "with --redis: fenqid's -redis-addr, host:port (with --redis-cluster: comma-separated seed nodes) (env FENQI_REDIS_ADDR)")
	f.env["redis-addr"] = "FENQI_REDIS_ADDR"
	f.IntVar(&r.db, "redis-db", 0, "with --redis: fenqid's -redis-db (env FENQI_REDIS_DB)")
	f.env["redis-db"] = "FENQI_REDIS_DB"
	f.BoolVar(&r.cluster, "redis-cluster", false, "with --redis: fenqid's -redis-cluster (env FENQI_REDIS_CLUSTER)")
	f.env["redis-cluster"] = "FENQI_REDIS_CLUSTER"
	f.StringVar(&r.prefix, "redis-prefix", "", "with --redis: fenqid's -redis-prefix, the namespace of its keys (env FENQI_REDIS_PREFIX)")
	f.env["redis-prefix"] = "FENQI_REDIS_PREFIX"
	// fenqid's -redis-tls…, -redis-username and the secret redis-password.
	f.security(conn.RedisFlags(f.FlagSet, &r.sec), func() []conn.Problem { return r.sec.Problems() })
}

// store returns a Redis client for the flags and fenqid's state store on
// it, in the flags' namespace (--redis-prefix); the caller closes the client.
func (r redisFlags) store() (redis.UniversalClient, *state.Store, error) {
	rdb, err := r.client()
	if err != nil {
		return nil, nil, err
	}
	store, err := state.New(rdb, state.Config{Prefix: r.prefix})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, usageErrorf("--redis-prefix: %v", err)
	}
	return rdb, store, nil
}

// client returns a Redis client for the flags, checking the addresses.
func (r redisFlags) client() (redis.UniversalClient, error) {
	var addrs []string
	for a := range strings.SplitSeq(r.addr, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			return nil, usageErrorf("--redis-addr: %q is not host:port", a)
		}
		addrs = append(addrs, a)
	}
	switch {
	case len(addrs) == 0:
		return nil, usageErrorf("--redis-addr: no address given")
	case r.cluster:
		o := &redis.ClusterOptions{Addrs: addrs}
		if err := r.sec.ApplyCluster(o); err != nil {
			return nil, usageErrorf("%w", err)
		}
		return redis.NewClusterClient(o), nil
	case len(addrs) > 1:
		return nil, usageErrorf("--redis-addr: several addresses are for a cluster: add --redis-cluster")
	}
	o := &redis.Options{Addr: addrs[0], DB: r.db}
	if err := r.sec.Apply(o); err != nil {
		return nil, usageErrorf("%w", err)
	}
	return redis.NewClient(o), nil
}

// epochs is where the epochs are read and raised: fenqid's admin API, or
// Redis itself.
type epochs interface {
	list(ctx context.Context) (epochsView, []byte, error) // the view, and the API's body (nil from Redis)
	raise(ctx context.Context, topic string) (epochView, []byte, error)
}

// epoch lists the input topics' offset epochs, or raises one.
func (c *cli) epoch(ctx context.Context, args []string) error {
	var (
		base    string
		timeout time.Duration
		raise   string
		raw     bool
		direct  bool
		rf      redisFlags
		topics  inputTopics
	)
	fs := c.flagSet("epoch", "[--raise TOPIC]", epochAbout)
	fs.api(&base, &timeout)
	fs.StringVar(&raise, "raise", "", "raise the epoch of this input topic (its name, as fenqid's -topic-*)")
	fs.BoolVar(&raw, "json", false, "print the answer as JSON")
	fs.BoolVar(&direct, "redis", false, "read and raise the epochs in Redis directly rather than through fenqid's admin API: for when every fenqid is stopped")
	fs.redis(&rf)
	fs.inputs(&topics)
	operands, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 0 {
		return c.usageOf(fs, "epoch: unexpected argument %q (the topic to raise goes with --raise)", operands[0])
	}
	raising := false
	fs.Visit(func(f *flag.Flag) { raising = raising || f.Name == "raise" })
	if raising && strings.TrimSpace(raise) == "" {
		return c.usageOf(fs, "epoch: --raise wants a topic name")
	}
	if timeout <= 0 {
		return usageErrorf("--timeout must be > 0, got %v", timeout)
	}

	var src epochs
	if direct {
		if err := topics.check(); err != nil {
			return err
		}
		rdb, store, err := rf.store()
		if err != nil {
			return err
		}
		defer func() { _ = rdb.Close() }()
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := rdb.Ping(pctx).Err(); err != nil {
			return fmt.Errorf("epoch: redis at %s (--redis-addr, FENQI_REDIS_ADDR): %w", rf.addr, rf.sec.Explain(err))
		}
		src = &redisEpochs{store: store, topics: topics.list(), timeout: timeout}
	} else {
		api, err := newAPIClient(base, fs.token, timeout)
		if err != nil {
			return err
		}
		src = apiEpochs{api}
	}

	if !raising {
		v, body, err := src.list(ctx)
		if err != nil {
			return fmt.Errorf("epoch: %w", err)
		}
		if raw {
			return printJSON(c, v, body)
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tINDEX\tEPOCH")
		for _, e := range v.Topics {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", e.Topic, e.Index, e.Epoch)
		}
		_ = tw.Flush()
		_, err = fmt.Fprint(c.stdout, b.String())
		return err
	}

	v, body, err := src.raise(ctx, raise)
	if err != nil {
		return fmt.Errorf("epoch --raise %s: %w", raise, err)
	}
	if raw {
		return printJSON(c, v, body)
	}
	next := "fenqid takes it from its next batch"
	if direct {
		next = "start fenqid"
	}
	fmt.Fprintf(c.stdout, "%s (topic index %d): offset epoch raised from %d to %d; its offsets count as new from here on: %s\n",
		v.Topic, v.Index, v.Epoch-1, v.Epoch, next)
	return nil
}

// printJSON prints the API's body as it came, or v as fenqid would.
func printJSON(c *cli, v any, body []byte) error {
	if body == nil {
		var err error
		if body, err = json.MarshalIndent(v, "", "  "); err != nil {
			return err
		}
	}
	return printRaw(c.stdout, body)
}

// apiEpochs asks fenqid's admin API.
type apiEpochs struct{ api *apiClient }

func (a apiEpochs) list(ctx context.Context) (epochsView, []byte, error) {
	u := a.api.url("/v1/epochs", nil)
	body, err := a.api.get(ctx, u)
	if err != nil {
		return epochsView{}, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var v epochsView
	if err := decodeBody(http.MethodGet, u, body, &v); err != nil {
		return epochsView{}, nil, err
	}
	return v, body, nil
}

func (a apiEpochs) raise(ctx context.Context, topic string) (epochView, []byte, error) {
	u := a.api.url("/v1/epochs/"+url.PathEscape(topic), nil)
	body, err := a.api.do(ctx, http.MethodPost, u, nil)
	if err != nil {
		return epochView{}, nil, fmt.Errorf("POST %s: %w", u, err)
	}
	var v epochView
	if err := decodeBody(http.MethodPost, u, body, &v); err != nil {
		return epochView{}, nil, err
	}
	return v, body, nil
}

// redisEpochs reads and raises the epochs in Redis, with fenqictl's topic
// names (in consumers.Topics order: index = position + 1).
type redisEpochs struct {
	store   *state.Store
	topics  []string
	timeout time.Duration
}

func (r *redisEpochs) list(ctx context.Context) (epochsView, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	eps, err := r.store.Epochs(ctx)
	if err != nil {
		return epochsView{}, nil, err
	}
	v := epochsView{Topics: []epochView{}}
	for i, name := range r.topics {
		v.Topics = append(v.Topics, epochView{Topic: name, Index: i + 1, Epoch: eps[i+1]})
	}
	return v, nil, nil
}

func (r *redisEpochs) raise(ctx context.Context, topic string) (epochView, []byte, error) {
	i := slices.Index(r.topics, topic)
	if i < 0 {
		return epochView{}, nil, fmt.Errorf("no input topic is named %q: the input topics are %s (set by --topic-* or FENQI_TOPIC_*, as for fenqid)",
			topic, strings.Join(r.topics, ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	e, err := r.store.RaiseEpoch(ctx, i+1)
	if err != nil {
		return epochView{}, nil, err
	}
	return epochView{Topic: topic, Index: i + 1, Epoch: e}, nil, nil
}
