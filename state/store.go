package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/internal/par"
	"github.com/fenqi/fenqi/state/engine"
)

// Config shapes the state kept per user. The zero value takes the defaults.
type Config struct {
	// DefaultZone is the time zone of users whose profile names none
	// (default Asia/Shanghai).
	DefaultZone *time.Location
	// Days of daily payment counts kept (default 35) and full months of
	// monthly counters kept besides the current one (default 6).
	Days, Months int
	// GeoDays is how long a device or city counts as seen (default 90) and
	// GeoMax how many of them are kept per user (default 48).
	GeoDays, GeoMax int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Prefix goes before every key fenqi writes (default none), so that a
	// second fenqi (a replay, a test) can share a Redis in a namespace of
	// its own. It must not contain '{' or '}': the keys' hash tags keep a
	// user, and the recompute schedule, in one Redis Cluster slot.
	Prefix string
	// Credit judges credit payments as they are applied (see
	// engine.CreditCheck, jobs.CreditCheck); nil accepts every one.
	Credit engine.CreditCheck
	// ShadowCredit judges credit payments again for a candidate policy,
	// changing nothing (engine.Config.ShadowCredit); nil: no shadow.
	ShadowCredit engine.CreditCheck
	// MaxAmountFen and MaxOpenBills are the policy's limits (engine.Config;
	// 0: none but the decoder's, and the state's 32 bills).
	MaxAmountFen int64
	MaxOpenBills int
}

func (c *Config) setDefaults() error {
	if c.DefaultZone == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			return fmt.Errorf("state: load default zone: %w", err)
		}
		c.DefaultZone = loc
	}
	if c.Days == 0 {
		c.Days = 35
	}
	if c.Months == 0 {
		c.Months = 6
	}
	if c.GeoDays == 0 {
		c.GeoDays = 90
	}
	if c.GeoMax == 0 {
		c.GeoMax = 48
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func (c Config) engine() engine.Config {
	return engine.Config{DefaultZone: c.DefaultZone, Days: c.Days, Months: c.Months, GeoDays: c.GeoDays, GeoMax: c.GeoMax,
		Credit: c.Credit, ShadowCredit: c.ShadowCredit, MaxAmountFen: c.MaxAmountFen, MaxOpenBills: c.MaxOpenBills}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Prefix, "{}") || len(c.Prefix) > 64 {
		return fmt.Errorf("state: Prefix %q must be at most 64 bytes, without '{' or '}' (they would change the keys' cluster slots)", c.Prefix)
	}
	if err := c.engine().Validate(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Store reads users' state from Redis, applies events to it in Go and
// writes it back with a compare-and-set. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	cfg     Config
	ecfg    engine.Config
	cluster bool
}

// New returns a Store over rdb (a *redis.Client or *redis.ClusterClient).
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, cfg: cfg, ecfg: cfg.engine(), cluster: cluster}, nil
}

// Load loads the scripts into Redis. Calls reload them by themselves when
// Redis has forgotten them (a restart or failover); calling Load at start
// makes the first batch one round trip too.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{casScript, claimScript, claimCycleScript, cursorCASScript, doneTriggersScript, knownScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("state: load scripts: %w", err)
		}
	}
	return nil
}

// The engine's types, under the names the rest of fenqi uses.
type (
	// Item is one event to apply, with where it was read from.
	Item = engine.Item
	// Status says what Apply did with an event.
	Status = engine.Status
	// Outcome is what applying an event tells of it.
	Outcome = engine.Outcome
)

// The statuses of an Outcome.
const (
	Applied     = engine.Applied
	Redelivered = engine.Redelivered
	Duplicate   = engine.Duplicate
	Refused     = engine.Refused
)

// UserKey is the Redis key of a user's state with no Prefix: one string,
// under the user's own hash tag so that Redis Cluster places it by user.
func UserKey(userID string) string { return "{u:" + userID + "}" }

// Key is the name of one of the keys above (TimersKey…, or UserKey's) in
// this store's namespace (Config.Prefix).
func (s *Store) Key(name string) string { return s.cfg.Prefix + name }

func (s *Store) userKey(userID string) string { return s.cfg.Prefix + UserKey(userID) }

// casScript writes users' states, each only if the stored state still has
// the token the writer read (its bytes 2..9). A user not stored yet is
// written with SET NX instead (see cas).
// KEYS: the users; ARGV: per user the token read, then the new value.
// Returns the positions (1-based) of the users it did not write.
//
// One MGET and one MSET for all of them, not a GETRANGE and a SET each:
// inside a script every redis.call costs about as much as the command
// itself (~2 µs each here), and the values have to come in as arguments
// anyway. With 490 users of 606 bytes a call, Redis spent 5.1–5.4 µs a
// user this way against 5.6–6.8 µs with a call per user (interleaved,
// one redis-server). At most maxScriptUsers users a call: unpack is
// bounded by Lua's stack.
var casScript = redis.NewScript(`
local vals = redis.call("MGET", unpack(KEYS))
local failed, set = {}, {}
for i, k in ipairs(KEYS) do
  local v = vals[i]
  if v and string.sub(v, 2, 9) == ARGV[2 * i - 1] then
    set[#set + 1] = k
    set[#set + 1] = ARGV[2 * i]
  else
    failed[#failed + 1] = i
  end
end
if #set > 0 then redis.call("MSET", unpack(set)) end
return failed
`)

// ConflictError says the state of some users changed between the read and
// the write (another writer: a consumer that took over the partition, or
// a job): nothing of theirs was written; compute them again from fresh
// state.
type ConflictError struct{ Users []string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("state: %d users changed since they were read (first %q)", len(e.Users), e.Users[0])
}

// IsConflict reports a ConflictError.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}

// token is the compare-and-set token of a state (Rev), as the script
// compares it: the 8 bytes after the version byte.
func token(rev uint64) string { return string(binary.BigEndian.AppendUint64(nil, rev)) }

// newRev is a fresh write token: random, so that no other writer can
// produce the token a draft expects.
func newRev() uint64 { return rand.Uint64() | 1 }

// read reads users' states in one round trip.
func (s *Store) read(ctx context.Context, userIDs []string) ([]*engine.State, error) {
	sts, _, err := s.readWith(ctx, userIDs, false)
	return sts, err
}

// readWith reads users' states, and with epochs the input topics' offset
// epochs (see RaiseEpoch), in one round trip.
func (s *Store) readWith(ctx context.Context, userIDs []string, epochs bool) ([]*engine.State, map[int]uint32, error) {
	if len(userIDs) == 0 && !epochs {
		return nil, nil, nil
	}
	pipe := s.rdb.Pipeline()
	var mget *redis.SliceCmd
	var exists *redis.IntCmd
	var gets []*redis.StringCmd
	switch {
	case len(userIDs) == 0:
	case !s.cluster:
		keys := make([]string, len(userIDs))
		for i, id := range userIDs {
			keys[i] = s.userKey(id)
		}
		mget = pipe.MGet(ctx, keys...)
		// MGET answers nil for a key of another type as for no key:
		// EXISTS counts both, so that a key that is no state is not read
		// as a user never seen (see probe).
		exists = pipe.Exists(ctx, keys...)
	default: // a GET per user: each goes to its slot's node
		gets = make([]*redis.StringCmd, len(userIDs))
		for i, id := range userIDs {
			gets[i] = pipe.Get(ctx, s.userKey(id))
		}
	}
	var ep *redis.MapStringStringCmd
	if epochs {
		ep = pipe.HGetAll(ctx, s.Key(EpochsKey))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return nil, nil, fmt.Errorf("state: read %d users: %w", len(userIDs), err)
	}
	vals := make([]string, len(userIDs))
	errs := make([]error, len(userIDs)) // a key that is no state
	if mget != nil {
		if err := mget.Err(); err != nil {
			return nil, nil, fmt.Errorf("state: read %d users: %w", len(userIDs), err)
		}
		var absent []int
		for i, v := range mget.Val() {
			switch v := v.(type) {
			case string:
				vals[i] = v
				if v == "" {
					errs[i] = errEmptyValue
				}
			case nil: // a user never seen, or a key of another type
				absent = append(absent, i)
			default:
				return nil, nil, fmt.Errorf("state: read user %s: unexpected %T", userIDs[i], v)
			}
		}
		n, err := exists.Result()
		if err != nil {
			return nil, nil, fmt.Errorf("state: read %d users: %w", len(userIDs), err)
		}
		if int(n) > len(userIDs)-len(absent) { // some of absent have a key
			if err := s.probe(ctx, userIDs, absent, errs); err != nil {
				return nil, nil, err
			}
		}
	}
	var wrong []int
	for i, c := range gets {
		// Exec reports the first error only, and a user never seen is
		// one (redis.Nil): look at each.
		switch err := c.Err(); {
		case err == nil:
			vals[i] = c.Val()
			if vals[i] == "" {
				errs[i] = errEmptyValue
			}
		case isWrongType(err):
			wrong = append(wrong, i)
		case !errors.Is(err, redis.Nil):
			return nil, nil, fmt.Errorf("state: read user %s: %w", userIDs[i], err)
		}
	}
	if err := s.probe(ctx, userIDs, wrong, errs); err != nil {
		return nil, nil, err
	}
	out := make([]*engine.State, len(userIDs))
	par.For(len(userIDs), func(i int) {
		if errs[i] != nil {
			return
		}
		if out[i], errs[i] = engine.Decode([]byte(vals[i])); errs[i] != nil {
			out[i] = nil
		}
	})
	var bad []Unreadable
	for i, err := range errs {
		if err != nil {
			// Never a reason to stop: the user is quarantined (out[i]
			// nil), its value kept as it is for an operator to look at.
			bad = append(bad, Unreadable{UserID: userIDs[i], Err: err})
		}
	}
	if err := s.quarantine(ctx, bad); err != nil {
		return nil, nil, err
	}
	var eps map[int]uint32
	if ep != nil {
		if err := ep.Err(); err != nil {
			return nil, nil, fmt.Errorf("state: read the offset epochs: %w", err)
		}
		var err error
		if eps, err = parseEpochs(ep.Val()); err != nil {
			return nil, nil, err
		}
	}
	return out, eps, nil
}

// errEmptyValue is a user's key holding an empty string: no state is.
var errEmptyValue = errors.New("state: the user's key holds an empty string, not a state")

func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// probe tells, among users whose read found no string (ask, positions in
// userIDs), those whose key holds another type (TYPE): their errs are set.
// It costs a round trip, and runs only when there is such a key: in a
// cluster GET says so (WRONGTYPE), and MGET's EXISTS counts more keys than
// MGET found strings.
func (s *Store) probe(ctx context.Context, userIDs []string, ask []int, errs []error) error {
	if len(ask) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	types := make([]*redis.StatusCmd, len(ask))
	for k, i := range ask {
		types[k] = pipe.Type(ctx, s.userKey(userIDs[i]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: look at %d users' keys: %w", len(ask), err)
	}
	for k, i := range ask {
		if t := types[k].Val(); t != "none" && t != "string" {
			errs[i] = fmt.Errorf("state: the user's key holds a %s, not a state", t)
		}
	}
	return nil
}

// Unreadable is a user whose state cannot be decoded (a value written by
// something else, a corrupted key, a version this binary does not read).
type Unreadable struct {
	UserID string
	Err    error
}

// ErrQuarantined says a user's state cannot be read: the user is in
// QuarantineKey, its events are refused (dead-lettered) and the jobs skip it.
var ErrQuarantined = errors.New("state: the user's state cannot be read; the user is quarantined (fenqictl quarantine)")

// quarantine records users whose state cannot be read (HSETNX: the first
// reason stays).
func (s *Store) quarantine(ctx context.Context, bad []Unreadable) error {
	if len(bad) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, u := range bad {
		pipe.HSetNX(ctx, s.Key(QuarantineKey), u.UserID, s.cfg.Now().UTC().Format(time.RFC3339)+" "+u.Err.Error())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: quarantine %d unreadable users: %w", len(bad), err)
	}
	return nil
}

// Quarantined lists the quarantined users: user id → when and why.
func (s *Store) Quarantined(ctx context.Context) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.Key(QuarantineKey)).Result()
	if err != nil {
		return nil, fmt.Errorf("state: read the quarantine: %w", err)
	}
	return m, nil
}

// parseEpochs reads EpochsKey's fields: topic index -> epoch.
func parseEpochs(m map[string]string) (map[int]uint32, error) {
	out := make(map[int]uint32, len(m))
	for k, v := range m {
		t, err1 := strconv.Atoi(k)
		e, err2 := strconv.ParseUint(v, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("state: bad offset epoch %q = %q in %s", k, v, EpochsKey)
		}
		out[t] = uint32(e)
	}
	return out, nil
}

// Epochs reads the input topics' offset epochs (topic index -> epoch; a
// topic not there is at epoch 0).
func (s *Store) Epochs(ctx context.Context) (map[int]uint32, error) {
	m, err := s.rdb.HGetAll(ctx, s.Key(EpochsKey)).Result()
	if err != nil {
		return nil, fmt.Errorf("state: read the offset epochs: %w", err)
	}
	return parseEpochs(m)
}

// RaiseEpoch starts a new offset epoch for an input topic (its index) and
// returns it: from the next batch on, the topic's offsets are compared
// with those applied in the same epoch only, so the events of a topic
// recreated (or whose offsets were reset) count as new instead of as
// redeliveries. Raise it once the consumers have stopped and before they
// read the topic from its new start (fenqictl epoch).
func (s *Store) RaiseEpoch(ctx context.Context, topic int) (uint32, error) {
	if topic < 1 {
		return 0, fmt.Errorf("state: no input topic of index %d", topic)
	}
	n, err := s.rdb.HIncrBy(ctx, s.Key(EpochsKey), strconv.Itoa(topic), 1).Result()
	if err != nil {
		return 0, fmt.Errorf("state: raise the offset epoch of topic %d: %w", topic, err)
	}
	return uint32(n), nil
}

// write is one user's state to write, and the token it was read with.
type write struct {
	user   string
	expect uint64
	val    []byte
}

// cas writes states with the compare-and-set, with other commands queued
// before them in the same round trip (extra may be nil), and returns the
// users it could not write.
func (s *Store) cas(ctx context.Context, ws []write, extra func(redis.Pipeliner) []*redis.Cmd) ([]string, error) {
	// A user not stored before needs no script: SET NX writes it only if
	// it is still not there. The others go through casScript.
	var olds, news []write
	for _, w := range ws {
		if w.expect == 0 {
			news = append(news, w)
		} else {
			olds = append(olds, w)
		}
	}
	type call struct {
		cmd   *redis.Cmd
		users []write
	}
	// exec sends the extra commands (if any), the scripts for olds and SET
	// NX for news, in one round trip.
	exec := func(extra func(redis.Pipeliner) []*redis.Cmd, olds, news []write) ([]*redis.Cmd, []call, []*redis.BoolCmd, error) {
		pipe := s.rdb.Pipeline()
		var ex []*redis.Cmd
		if extra != nil {
			ex = extra(pipe)
		}
		var calls []call
		script := func(part []write) {
			keys := make([]string, len(part))
			args := make([]any, 0, 2*len(part))
			for i, w := range part {
				keys[i] = s.userKey(w.user)
				args = append(args, token(w.expect), w.val)
			}
			calls = append(calls, call{casScript.EvalSha(ctx, pipe, keys, args...), part})
		}
		if s.cluster { // one slot per call
			for i := range olds {
				script(olds[i : i+1])
			}
		} else {
			for lo := 0; lo < len(olds); lo += maxScriptUsers {
				script(olds[lo:min(lo+maxScriptUsers, len(olds))])
			}
		}
		setnx := make([]*redis.BoolCmd, len(news))
		for i, w := range news {
			setnx[i] = pipe.SetNX(ctx, s.userKey(w.user), w.val, 0)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && !isNoScript(err) {
			return nil, nil, nil, fmt.Errorf("state: write %d users: %w", len(ws), err)
		}
		return ex, calls, setnx, nil
	}
	ex, calls, setnx, err := exec(extra, olds, news)
	if err != nil {
		return nil, err
	}
	// Redis restarted or failed over and forgot casScript: load it and
	// send again the calls that did not run (a NOSCRIPT call wrote
	// nothing). The extra commands and SET NX need no loaded script
	// (knownScript goes by EVAL): they ran.
	var again []write
	done := calls[:0:0]
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			again = append(again, c.users...)
		} else {
			done = append(done, c)
		}
	}
	if len(again) > 0 {
		if err := s.Load(ctx); err != nil {
			return nil, err
		}
		_, more, _, err := exec(nil, again, nil)
		if err != nil {
			return nil, err
		}
		calls = append(done, more...)
	}
	for _, c := range ex {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("state: index %d users: %w", len(ws), err)
		}
	}
	var failed []string
	for _, c := range calls {
		pos, err := c.cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("state: write %d users: %w", len(ws), err)
		}
		for _, p := range pos {
			failed = append(failed, c.users[p-1].user)
		}
	}
	for i, c := range setnx {
		ok, err := c.Result()
		if err != nil {
			return nil, fmt.Errorf("state: write user %s: %w", news[i].user, err)
		}
		if !ok {
			failed = append(failed, news[i].user)
		}
	}
	return failed, nil
}

// Drafts are the states of users computed by prepared batches not yet
// written: the next batch of the same users starts from them, not from
// Redis (which does not have them yet), and writes against their tokens.
// One consumer keeps one Drafts, and finishes its batches in the order it
// prepared them; the zero value is ready.
//
// A draft goes stale when the write of its batch conflicts (another writer
// changed the user): the batches computed on it are stale too, and so is a
// batch that read from Redis a user an unwritten batch had changed. A
// stale batch must be computed again (Reprepare) before its decisions are
// published: when it is the oldest unwritten batch, Redis holds every
// batch before it.
type Drafts struct {
	mu       sync.Mutex
	m        map[string]draft
	inflight map[string]int // unwritten batches changing the user
	seq      uint64
	gen      uint64 // conflicts so far
}

type draft struct {
	st    *engine.State
	seq   uint64 // the batch that wrote it last
	gen   uint64
	stale bool
}

// Len is how many users have a draft.
func (d *Drafts) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// Batch is a batch of events computed on the users' states, to be written
// with Commit once its decisions are published.
type Batch struct {
	// Outcomes has one entry per item, in order.
	Outcomes []Outcome
	seq      uint64
	gen      uint64
	stale    bool
	writes   []write
	items    []Item
	newUsers []string // users the schedule does not know yet
}

// Users are the users the batch writes.
func (b *Batch) Users() []string {
	out := make([]string, len(b.writes))
	for i, w := range b.writes {
		out[i] = w.user
	}
	return out
}

// Stale says whether the batch was computed on a state that is no longer
// the one it will be written over (see Drafts): compute it again with
// Reprepare before publishing its decisions.
func (b *Batch) Stale(d *Drafts) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return b.stale || b.gen != d.gen
}

// group splits items by user, keeping each user's order and the users'
// first-seen order.
func group(items []Item) (users []string, groups [][]int) {
	groupOf := map[string]int{}
	for i, it := range items {
		uid := it.Event.UserID()
		g, ok := groupOf[uid]
		if !ok {
			g = len(users)
			groupOf[uid] = g
			users = append(users, uid)
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return users, groups
}

// Prepare computes a batch of events on the users' states: from d's
// drafts where a batch before it left one, else read from Redis in one
// round trip. Nothing is written: Commit writes. d may be nil (no batch in
// flight). Events of one user must come in their partition order.
func (s *Store) Prepare(ctx context.Context, items []Item, d *Drafts) (*Batch, error) {
	return s.prepare(ctx, items, d, nil)
}

// Reprepare computes again the events of the given users (nil: all) of a
// batch whose write conflicted or which is stale, from Redis, and returns
// the batch to publish and commit instead (of those users' events only).
// b must be the oldest batch of d not written.
func (s *Store) Reprepare(ctx context.Context, b *Batch, users []string, d *Drafts) (*Batch, error) {
	var items []Item
	if users == nil {
		items = b.items
	} else {
		again := make(map[string]bool, len(users))
		for _, u := range users {
			again[u] = true
		}
		for _, it := range b.items {
			if again[it.Event.UserID()] {
				items = append(items, it)
			}
		}
	}
	if d != nil {
		d.mu.Lock()
		for _, w := range b.writes {
			if users == nil || slices.Contains(users, w.user) {
				d.release(w.user, b.seq)
			}
		}
		d.mu.Unlock()
	}
	return s.prepare(ctx, items, d, b)
}

// release ends a batch's claim on a user's draft (d.mu held).
func (d *Drafts) release(user string, seq uint64) {
	if d.inflight[user]--; d.inflight[user] <= 0 {
		delete(d.inflight, user)
	}
	if dr, ok := d.m[user]; ok && dr.seq == seq {
		delete(d.m, user)
	}
}

// prepare computes items; again is the batch they are computed again for
// (from Redis), nil for a new batch.
func (s *Store) prepare(ctx context.Context, items []Item, d *Drafts, again *Batch) (*Batch, error) {
	b := &Batch{items: items, Outcomes: make([]Outcome, len(items))}
	fresh := again != nil
	users, groups := group(items)
	base := make([]*engine.State, len(users))
	var missing []string
	var missingAt []int
	if d != nil {
		d.mu.Lock()
		b.gen = d.gen
		for g, u := range users {
			if dr, ok := d.m[u]; ok && !fresh {
				base[g] = dr.st.Clone()
				b.stale = b.stale || dr.stale || dr.gen != d.gen
			} else if d.inflight[u] > 0 && !fresh {
				b.stale = true // an unwritten batch changed it, and its draft is gone
			}
		}
		d.mu.Unlock()
	}
	for g, u := range users {
		if base[g] == nil {
			missing, missingAt = append(missing, u), append(missingAt, g)
		}
	}
	read, epochs, err := s.readWith(ctx, missing, true)
	if err != nil {
		return nil, err
	}
	for k, st := range read {
		base[missingAt[k]] = st
	}
	// Every item is in its topic's current epoch (RaiseEpoch).
	if len(epochs) > 0 {
		items = slices.Clone(items)
		for i := range items {
			items[i].Epoch = epochs[items[i].Topic]
		}
		b.items = items
	}
	// Each user's events on its own state: independent of the others, so
	// on every core; the results are gathered in the users' order.
	now := s.cfg.Now()
	written := make([]bool, len(users))
	writes := make([]write, len(users))
	isNew := make([]bool, len(users))
	par.For(len(users), func(g int) {
		st := base[g]
		if st == nil {
			// Unreadable: every event of the user is refused (dead-lettered,
			// so none is lost) and nothing is written over its value.
			for _, i := range groups[g] {
				b.Outcomes[i] = Outcome{Status: Refused, Err: fmt.Errorf("user %s: %w", users[g], ErrQuarantined)}
			}
			return
		}
		its := make([]Item, len(groups[g]))
		for k, i := range groups[g] {
			its[k] = items[i]
		}
		outs := engine.Apply(st, its, s.ecfg, now)
		// What a write would keep: a repeat keeps nothing; a refused
		// event keeps its offset (it is dead-lettered once), but does not
		// make a user of its own.
		changed := false
		for k, i := range groups[g] {
			b.Outcomes[i] = outs[k]
			switch outs[k].Status {
			case Applied, Duplicate:
				changed = true
			case Refused:
				changed = changed || st.Rev != 0
			}
		}
		if !changed {
			return
		}
		if !st.Known && anyApplied(outs) {
			// Its first event: the recompute schedule learns the user.
			st.Known = true
			isNew[g] = true
		}
		expect := st.Rev
		st.Rev = newRev()
		writes[g] = write{user: users[g], expect: expect, val: encode(st)}
		written[g] = true
	})
	for g, u := range users {
		if isNew[g] {
			b.newUsers = append(b.newUsers, u)
		}
		if written[g] {
			b.writes = append(b.writes, writes[g])
		}
	}
	if d != nil {
		d.mu.Lock()
		if fresh {
			b.seq = again.seq // its place in the order
		} else {
			d.seq++
			b.seq = d.seq
		}
		if d.m == nil {
			d.m, d.inflight = map[string]draft{}, map[string]int{}
		}
		for g, u := range users {
			if !written[g] {
				continue
			}
			d.inflight[u]++
			// A recomputed batch does not replace a later batch's draft:
			// that batch is stale and computes its own again.
			if dr, ok := d.m[u]; !fresh || !ok || dr.seq <= b.seq {
				d.m[u] = draft{st: base[g], seq: b.seq, gen: b.gen, stale: b.stale}
			}
		}
		d.mu.Unlock()
	}
	return b, nil
}

// Commit writes a prepared batch's states, each with a compare-and-set
// against the token it was computed from, and the schedule entries its
// applied events imply, in one round trip. A user whose state changed
// meanwhile is not written: Commit returns a *ConflictError naming them
// (the others are written), and every batch prepared on d since is stale.
// Reprepare those users' events (publish their decisions again) and commit
// the result.
func (s *Store) Commit(ctx context.Context, b *Batch, d *Drafts) error {
	if len(b.writes) == 0 {
		return nil
	}
	failed, err := s.cas(ctx, b.writes, func(pipe redis.Pipeliner) []*redis.Cmd {
		return s.indexUpdates(ctx, pipe, b)
	})
	if err != nil {
		return err
	}
	// The recomputes the batch makes due were scheduled RecomputeGrace
	// ahead with the write (indexUpdates), so that no job computes them on
	// the value before it: due at once now that the value is written. (A
	// user whose recompute was already due may have been claimed in
	// between and computed on the value before: made due again, it runs
	// again on the new one; a claim leaves an entry made due again
	// meanwhile.)
	var again []string
	for _, u := range b.recomputeNow() {
		if !slices.Contains(failed, u) {
			again = append(again, u)
		}
	}
	if err := s.RecomputeSoon(ctx, s.cfg.Now(), again...); err != nil {
		return err
	}
	if d != nil {
		d.mu.Lock()
		if len(failed) > 0 {
			d.gen++
		}
		for _, w := range b.writes {
			if !slices.Contains(failed, w.user) {
				d.release(w.user, b.seq)
			}
		}
		d.mu.Unlock()
	}
	if len(failed) > 0 {
		return &ConflictError{Users: failed}
	}
	return nil
}

// Apply prepares and commits a batch at once, computing again the users
// whose state changed meanwhile, and returns one Outcome per item: for
// callers with no decisions to publish in between (tools and tests).
func (s *Store) Apply(ctx context.Context, items []Item) ([]Outcome, error) {
	out := make([]Outcome, len(items))
	todo := make([]int, len(items))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		its := make([]Item, len(todo))
		for k, i := range todo {
			its[k] = items[i]
		}
		b, err := s.Prepare(ctx, its, nil)
		if err != nil {
			return nil, err
		}
		for k, i := range todo {
			out[i] = b.Outcomes[k]
		}
		err = s.Commit(ctx, b, nil)
		var c *ConflictError
		if !errors.As(err, &c) || attempt >= 100 {
			return out, err
		}
		again := map[string]bool{}
		for _, u := range c.Users {
			again[u] = true
		}
		todo = todo[:0]
		for i, it := range items {
			if again[it.Event.UserID()] {
				todo = append(todo, i)
			}
		}
	}
}

// update changes users' states with fn, read fresh and written with the
// compare-and-set, computing again those that changed meanwhile. fn is
// called on each user's state (maybe more than once: keep no effect of a
// call but the state's) and says whether to write it; an error ends the
// update with nothing of that round written.
func (s *Store) update(ctx context.Context, userIDs []string, fn func(i int, st *engine.State) (bool, error)) error {
	todo := make([]int, len(userIDs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 100 {
			return fmt.Errorf("state: %d users keep changing under an update", len(todo))
		}
		ids := make([]string, len(todo))
		for k, i := range todo {
			ids[k] = userIDs[i]
		}
		sts, err := s.read(ctx, ids)
		if err != nil {
			return err
		}
		ws := make([]write, 0, len(todo))
		for k, i := range todo {
			st := sts[k]
			if st == nil {
				return fmt.Errorf("user %s: %w", ids[k], ErrQuarantined)
			}
			ok, err := fn(i, st)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			expect := st.Rev
			st.Rev = newRev()
			ws = append(ws, write{user: ids[k], expect: expect, val: encode(st)})
		}
		failed, err := s.cas(ctx, ws, nil)
		if err != nil {
			return err
		}
		again := map[string]bool{}
		for _, u := range failed {
			again[u] = true
		}
		next := todo[:0:0]
		for k, i := range todo {
			if again[ids[k]] {
				next = append(next, i)
			}
		}
		todo = next
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// encode encodes a state into a buffer sized for a typical user (about
// 600 bytes), so that the encoding does not grow it again and again.
func encode(st *engine.State) []byte { return engine.Encode(make([]byte, 0, 1024), st) }

func anyApplied(outs []Outcome) bool {
	for _, o := range outs {
		if o.Status == Applied {
			return true
		}
	}
	return false
}
