package state

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
)

//go:embed apply.lua
var applySource string

var applyScript = redis.NewScript(applySource)

// Config shapes the state kept per user. The zero value takes the defaults.
type Config struct {
	// DefaultZone is the time zone of users whose profile names none
	// (default Asia/Shanghai).
	DefaultZone *time.Location
	// DedupIDs is how many recent event ids per user are remembered to drop
	// upstream duplicates (default 32).
	DedupIDs int
	// Days of daily buckets kept (default 35) and full months of monthly
	// buckets kept besides the current one (default 6).
	Days, Months int
	// GeoDays is how long a device or city counts as seen (default 90) and
	// GeoMax how many of them are kept per user (default 48).
	GeoDays, GeoMax int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.DefaultZone == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			return fmt.Errorf("state: load default zone: %w", err)
		}
		c.DefaultZone = loc
	}
	if c.DedupIDs == 0 {
		c.DedupIDs = 32
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

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.DedupIDs < 1 || c.DedupIDs > 1024:
		return fmt.Errorf("state: DedupIDs must be 1..1024, got %d", c.DedupIDs)
	case c.Days < 31 || c.Days > 400:
		return fmt.Errorf("state: Days must be 31..400 (rules need 30 days), got %d", c.Days)
	case c.Months < 3 || c.Months > 36:
		return fmt.Errorf("state: Months must be 3..36 (stability needs 3 full months), got %d", c.Months)
	case c.GeoDays < 1 || c.GeoMax < 2:
		return fmt.Errorf("state: GeoDays must be ≥ 1 and GeoMax ≥ 2, got %d and %d", c.GeoDays, c.GeoMax)
	}
	return nil
}

// Store applies events to Redis and reads users' state back. It is safe for
// concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	cfg     Config
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
	return &Store{rdb: rdb, cfg: cfg, cluster: cluster}, nil
}

// Load loads the scripts into Redis. Apply reloads them by itself when Redis
// has forgotten them (a restart or failover); calling Load at start makes the
// first batch one round trip too.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{applyScript, claimScript, advanceScript, claimCycleScript, casScript, doneTriggersScript, knownScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("state: load scripts: %w", err)
		}
	}
	return nil
}

// Item is one event to apply, with where it was read from. Topic is the
// index of the input topic (1..n, fixed per deployment: it names the offset
// field); Offset -1 means the event has no Kafka offset (only the id check
// then guards against repeats).
type Item struct {
	Event     *events.Event
	Topic     int
	Partition int
	Offset    int64
}

// Status says what Apply did with an event.
type Status int

const (
	// Applied: the event changed the user's state.
	Applied Status = iota
	// Redelivered: the event's offset was applied before (a consumer
	// restarted or rebalanced before committing); nothing changed.
	Redelivered
	// Duplicate: an event with the same id was applied before (an upstream
	// retry); nothing changed.
	Duplicate
)

func (s Status) String() string {
	switch s {
	case Applied:
		return "applied"
	case Redelivered:
		return "redelivered"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Outcome is what Apply tells of one event.
type Outcome struct {
	Status Status
	// NewCity: a login from a city not among the user's logins of the last
	// GeoDays days, for a user with login history. Only set when Applied.
	NewCity bool
	// NewDevice: a login or payment from a device not seen in the last
	// GeoDays days, for a user with device history. Only set when Applied.
	NewDevice bool
	// Zone is the user's time zone when the event was applied (a profile
	// later in the same batch does not change it).
	Zone *time.Location
	// RecentPayments are the event times of the user's latest payments
	// before this one (payments only; at most 15), newest first.
	RecentPayments []time.Time
	// LastOtherCityLogin is the latest login from another city before this
	// event (zero if none).
	LastOtherCityLogin time.Time
	// TransactionLimitFen is the user's own limit from the profile when the
	// event was applied (0: none); a profile later in the same batch does
	// not change it.
	TransactionLimitFen int64
	// Unfroze: this repayment settled the user's last overdue bill while
	// the user was frozen for being overdue; the user is no longer frozen.
	Unfroze bool
	// BecameJudicialDefaulter / ClearedJudicialDefaulter: this profile
	// turned the judicial-defaulter flag on / off.
	BecameJudicialDefaulter, ClearedJudicialDefaulter bool
}

const (
	// recentPayments is how many payment times each user keeps for the
	// velocity rule (a rule of "N payments in a window" needs N−1).
	recentPayments = 15
	// overdueHistoryDays is how long settled overdue episodes are listed
	// one by one (the eligibility rule looks back 6 months).
	overdueHistoryDays = 200
)

// Keys of one user, in the order the script takes them.
func userKeys(userID string) []string {
	tag := "{u:" + userID + "}:"
	return []string{tag + "a", tag + "m", tag + "x", tag + "p", tag + "b"}
}

// Positions in userKeys.
const (
	keyActivity = iota
	keyMeta
	keyRings
	keyProfile
	keyBills
	keysPerUser
)

// fingerprint is a 64-bit FNV-1a of the event id in 11 base64 characters:
// collisions among a user's last few dozen ids are out of reach.
func fingerprint(id string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

const fingerprintLen = 11

type scriptEvent struct {
	T   int    `json:"t"`
	P   int    `json:"p"`
	O   int64  `json:"o"`
	F   string `json:"f"`
	K   string `json:"k"`
	TS  int64  `json:"ts"`
	A   int64  `json:"a"`
	C   int    `json:"c"`
	Dv  string `json:"dv,omitempty"`
	Ci  string `json:"ci,omitempty"`
	B   string `json:"b,omitempty"`
	Due int64  `json:"due"`
	Pr  string `json:"pr,omitempty"`
	TZ  string `json:"tz,omitempty"`
	TZO int    `json:"tzo,omitempty"`
	Lim int64  `json:"lim,omitempty"`
	JD  int    `json:"jd,omitempty"`
}

type scriptRequest struct {
	Now    int64           `json:"now"`
	DZ     int             `json:"dz"`
	Ring   int             `json:"ring"`
	FPL    int             `json:"fpl"`
	Days   int             `json:"days"`
	Months int             `json:"months"`
	Geo    int             `json:"geo"`
	GeoMax int             `json:"geomax"`
	Vel    int             `json:"vel"`
	OHDays int             `json:"ohdays"`
	U      [][]scriptEvent `json:"u"`
}

func (s *Store) toScript(it Item) (scriptEvent, error) {
	e := it.Event
	se := scriptEvent{T: it.Topic, P: it.Partition, O: it.Offset, F: fingerprint(e.ID), TS: e.Time.Unix()}
	switch {
	case e.Payment != nil:
		se.K, se.A, se.C, se.Dv = "pay", e.Payment.AmountFen, int(e.Payment.Scene.Class()), e.Payment.DeviceID
	case e.Login != nil:
		se.K, se.Dv, se.Ci = "login", e.Login.DeviceID, e.Login.City
	case e.Due != nil:
		se.K, se.B, se.A, se.Due = "due", e.Due.BillID, e.Due.AmountFen, e.Due.DueAt.Unix()
	case e.Paid != nil:
		se.K, se.B, se.A = "paid", e.Paid.BillID, e.Paid.AmountFen
	case e.Profile != nil:
		pr, err := json.Marshal(e.Profile)
		if err != nil {
			return se, fmt.Errorf("state: encode profile of event %s: %w", e.ID, err)
		}
		se.K, se.Pr = "prof", string(pr)
		loc, err := s.zone(e.Profile.Timezone)
		if err != nil {
			return se, err
		}
		se.TZ = e.Profile.Timezone
		_, se.TZO = e.Time.In(loc).Zone()
		se.Lim = e.Profile.TransactionLimitFen
		if e.Profile.JudicialDefaulter {
			se.JD = 1
		}
	default:
		return se, fmt.Errorf("state: event %s of type %q has no data", e.ID, e.Type)
	}
	return se, nil
}

func (s *Store) zone(name string) (*time.Location, error) {
	if name == "" {
		return s.cfg.DefaultZone, nil
	}
	return loadZone(name)
}

// storedZone is the zone a stored name stands for: the default zone for
// none, and for a zone this binary cannot load.
func (s *Store) storedZone(name string) *time.Location {
	loc, err := s.zone(name)
	if err != nil {
		return s.cfg.DefaultZone
	}
	return loc
}

// Apply applies a batch of events in one round trip (one script call; in
// Redis Cluster one per user, pipelined) and returns one Outcome per item,
// in order. It is idempotent (see the package doc), so a failed call may be
// retried whole. Events of one user must come in their partition order.
func (s *Store) Apply(ctx context.Context, items []Item) ([]Outcome, error) {
	if len(items) == 0 {
		return nil, nil
	}
	// Group by user, keeping each user's order and the users' first-seen order.
	groupOf := make(map[string]int, len(items))
	var users []string
	var groups [][]scriptEvent
	pos := make([][2]int, len(items)) // item -> (group, index in group)
	for i, it := range items {
		se, err := s.toScript(it)
		if err != nil {
			return nil, err
		}
		uid := it.Event.UserID()
		g, ok := groupOf[uid]
		if !ok {
			g = len(users)
			groupOf[uid] = g
			users = append(users, uid)
			groups = append(groups, nil)
		}
		pos[i] = [2]int{g, len(groups[g])}
		groups[g] = append(groups[g], se)
	}

	_, dz := s.cfg.Now().In(s.cfg.DefaultZone).Zone()
	req := scriptRequest{
		Now: s.cfg.Now().Unix(), DZ: dz, Ring: s.cfg.DedupIDs, FPL: fingerprintLen,
		Days: s.cfg.Days, Months: s.cfg.Months, Geo: s.cfg.GeoDays, GeoMax: s.cfg.GeoMax,
		Vel: recentPayments, OHDays: overdueHistoryDays,
	}
	type call struct {
		first int // index of its first user; -1: an index update
		cmd   *redis.Cmd
	}
	var calls []call
	run := func(p redis.Cmdable, first, last int) error {
		r := req
		r.U = groups[first:last]
		keys := make([]string, 0, keysPerUser*(last-first))
		for _, uid := range users[first:last] {
			keys = append(keys, userKeys(uid)...)
		}
		arg, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("state: encode batch: %w", err)
		}
		calls = append(calls, call{first, applyScript.EvalSha(ctx, p, keys, arg)})
		return nil
	}
	exec := func() error {
		calls = calls[:0]
		pipe := s.rdb.Pipeline()
		if !s.cluster {
			if err := run(pipe, 0, len(users)); err != nil {
				return err
			}
		} else {
			for g := range users {
				if err := run(pipe, g, g+1); err != nil {
					return err
				}
			}
		}
		for _, cmd := range s.indexUpdates(ctx, pipe, items, users) {
			calls = append(calls, call{-1, cmd})
		}
		_, err := pipe.Exec(ctx)
		if err != nil && !isNoScript(err) {
			return fmt.Errorf("state: apply pipeline: %w", err)
		}
		return nil
	}
	if err := exec(); err != nil {
		return nil, err
	}
	// NOSCRIPT: Redis restarted or failed over and forgot the script. Load
	// it and send the batch again. A NOSCRIPT call touched no key; in a
	// cluster, calls that did run on other nodes are recognised as repeats
	// the second time, since Apply is idempotent.
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			if err := s.Load(ctx); err != nil {
				return nil, err
			}
			if err := exec(); err != nil {
				return nil, err
			}
			break
		}
	}

	out := make([]Outcome, len(items))
	zones := make([]*time.Location, len(users))
	lims := make([]int64, len(users))
	statuses := make([][]eventReply, len(users))
	for _, c := range calls {
		if c.first < 0 { // the schedule's index
			if err := c.cmd.Err(); err != nil {
				return nil, fmt.Errorf("state: index users of %d events: %w", len(items), err)
			}
			continue
		}
		raw, err := c.cmd.Text()
		if err != nil {
			return nil, fmt.Errorf("state: apply batch of %d events: %w", len(items), err)
		}
		res, err := decodeReply(raw)
		if err != nil {
			return nil, err
		}
		for j, r := range res {
			g := c.first + j
			if g >= len(users) || len(r.Evs) != len(groups[g]) {
				return nil, fmt.Errorf("state: script reply does not match the batch (user %d)", g)
			}
			zones[g], statuses[g], lims[g] = s.storedZone(r.TZ), r.Evs, r.Lim
		}
	}
	for i := range items {
		g, j := pos[i][0], pos[i][1]
		if statuses[g] == nil {
			return nil, fmt.Errorf("state: script reply lacks user %d", g)
		}
		r := statuses[g][j]
		o := Outcome{Status: r.Status, NewCity: r.NewCity, NewDevice: r.NewDevice, Zone: zones[g],
			TransactionLimitFen: lims[g], Unfroze: r.Flags&1 != 0, BecameJudicialDefaulter: r.Flags&2 != 0,
			ClearedJudicialDefaulter: r.Flags&4 != 0}
		if r.PerEvent { // applied before a profile of the batch changed them
			o.Zone, o.TransactionLimitFen = s.storedZone(r.TZ), r.Lim
		}
		if r.LastOtherCityLogin > 0 {
			o.LastOtherCityLogin = time.Unix(r.LastOtherCityLogin, 0)
		}
		var err error
		o.RecentPayments, err = parseRecent(r.Recent)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

type eventReply struct {
	Status             Status
	NewCity, NewDevice bool
	LastOtherCityLogin int64
	Recent             string
	Flags              int
	// PerEvent: the batch held a profile, and Lim and TZ are the values
	// this event was applied under.
	PerEvent bool
	Lim      int64
	TZ       string
}

type userReply struct {
	TZ  string
	Lim int64
	Evs []eventReply
}

// parseLimit reads the limit the script returns as a decimal string.
func parseLimit(raw json.RawMessage) (int64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// decodeReply reads the script's JSON: per user [tz, lim, [[status,
// newCity, newDevice, lastOtherCityLogin, recent, flags(, lim, tz)], ...]].
func decodeReply(raw string) ([]userReply, error) {
	var arr [][3]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &arr); err != nil {
		return nil, fmt.Errorf("state: decode script reply: %w", err)
	}
	out := make([]userReply, len(arr))
	for i, a := range arr {
		var evs [][]json.RawMessage
		lim, limErr := parseLimit(a[1])
		out[i].Lim = lim
		if err := errors.Join(json.Unmarshal(a[0], &out[i].TZ), limErr, json.Unmarshal(a[2], &evs)); err != nil {
			return nil, fmt.Errorf("state: decode script reply: %w", err)
		}
		out[i].Evs = make([]eventReply, len(evs))
		for j, e := range evs {
			var st, nc, nd int
			r := &out[i].Evs[j]
			if len(e) != 6 && len(e) != 8 {
				return nil, fmt.Errorf("state: decode script reply event: %d fields", len(e))
			}
			if len(e) == 8 {
				r.PerEvent = true
				lim, limErr := parseLimit(e[6])
				if err := errors.Join(limErr, json.Unmarshal(e[7], &r.TZ)); err != nil {
					return nil, fmt.Errorf("state: decode script reply event: %w", err)
				}
				r.Lim = lim
			}
			if err := errors.Join(json.Unmarshal(e[0], &st), json.Unmarshal(e[1], &nc), json.Unmarshal(e[2], &nd),
				json.Unmarshal(e[3], &r.LastOtherCityLogin), json.Unmarshal(e[4], &r.Recent),
				json.Unmarshal(e[5], &r.Flags)); err != nil {
				return nil, fmt.Errorf("state: decode script reply event: %w", err)
			}
			r.Status, r.NewCity, r.NewDevice = Status(st), nc == 1, nd == 1
		}
	}
	return out, nil
}

// parseRecent decodes the payment-times ring: 6 base-36 digits of unix
// seconds each, newest first.
func parseRecent(s string) ([]time.Time, error) {
	if len(s)%6 != 0 {
		return nil, fmt.Errorf("state: bad payment-times ring %q", s)
	}
	out := make([]time.Time, 0, len(s)/6)
	for i := 0; i < len(s); i += 6 {
		n, err := strconv.ParseInt(s[i:i+6], 36, 64)
		if err != nil {
			return nil, fmt.Errorf("state: bad payment-times ring %q: %w", s, err)
		}
		out = append(out, time.Unix(n, 0))
	}
	return out, nil
}

// IsScriptError reports an error raised inside a state script (Apply's):
// the only kind a single odd event can cause, and so the only kind worth
// isolating by applying events one at a time.
func IsScriptError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "user_script") || strings.Contains(msg, "Error running script")
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
