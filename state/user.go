package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/events"
)

// Counts are the counters of one bucket.
type Counts struct {
	SpendN, SpendFen   int64 // consumption payments
	SocialN, SocialFen int64 // transfers and red packets
	FinanceN, FinFen   int64 // bill payments, wealth, donations
	Logins             int64
	LoginDays          int64 // monthly buckets only: distinct local days with a login
}

// parseCounts reads a packed bucket ("n:n:n…"; a month's ninth field, the
// login-day mask, is not needed by readers). Hand-written: it runs for
// every bucket of every user a recompute reads.
func parseCounts(s string) (Counts, error) {
	var v [8]int64
	i := 0
	var n int64
	digits := false
	for j := 0; j <= len(s); j++ {
		if j == len(s) || s[j] == ':' {
			if !digits {
				return Counts{}, fmt.Errorf("state: bad bucket %q", s)
			}
			if i < len(v) {
				v[i] = n
			}
			i, n, digits = i+1, 0, false
			continue
		}
		c := s[j]
		if c < '0' || c > '9' {
			return Counts{}, fmt.Errorf("state: bad bucket %q", s)
		}
		n, digits = n*10+int64(c-'0'), true
	}
	return Counts{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
}

// parseBill reads a value of the bills hash: open is false for a bill
// repaid before its due event arrived ("P…") or settled ("S…"; see
// apply.lua).
func parseBill(v string) (b Bill, open bool, err error) {
	if strings.HasPrefix(v, "P") || strings.HasPrefix(v, "S") {
		return Bill{}, false, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return Bill{}, false, fmt.Errorf("state: bad bill %q", v)
	}
	rem, _ := strconv.ParseInt(parts[0], 10, 64)
	due, _ := strconv.ParseInt(parts[1], 10, 64)
	stage, _ := strconv.Atoi(parts[2])
	return Bill{RemainingFen: rem, DueAt: time.Unix(due, 0).UTC(), Stage: stage}, true, nil
}

// Bill is an open bill.
type Bill struct {
	RemainingFen int64
	DueAt        time.Time
	// Stage is how many overdue checks have fired: 1–3 the reminders of
	// days 1–3, 4 the freeze.
	Stage int
}

// Episode is a settled overdue bill.
type Episode struct {
	DueDay      int // local day number of the due date
	DaysOverdue int // whole days between due time and settlement
}

// Place is a device or city last seen on a local day.
type Place struct {
	LastDay int   // days since 1970-01-01 in the user's zone
	Logins  int64 // devices only: logins from it
}

// User is a read view of one user's state.
type User struct {
	ID      string
	Zone    *time.Location
	Days    map[int]Counts // local day number (days since 1970-01-01) -> counters
	Months  map[int]Counts // yyyymm -> counters
	Devices map[string]Place
	Cities  map[string]Place
	Bills   map[string]Bill
	Profile *events.Profile // nil before the first profile

	FrozenOverdue   bool // installments suspended: a bill overdue too long
	FrozenJudicial  bool // installments suspended: on the judgement-defaulter list
	SettledEpisodes int  // settled overdue episodes, lifetime
	// RecentEpisodes are the settled overdue episodes of the last ~200 days.
	RecentEpisodes []Episode
	// QuotaFen is the last published quota; HasQuota false before the first.
	QuotaFen int64
	HasQuota bool
	// Recomputes counts the user's saved recomputes: a recompute's decision
	// id includes it, so a replay of one recompute repeats its id and the
	// next recompute, even at the same instant, gets a new one.
	Recomputes int64
	// CycleDone is when the last periodic recompute saved was due (zero:
	// none yet): a cycle batch claimed again skips the users it has.
	CycleDone time.Time
	// Override is an operator's fixed quota, nil when none was set.
	Override *Override
	// QuotaChecks are the times of the user's latest quota checks (at most
	// 16, newest first; see RecordQuotaCheck).
	QuotaChecks []time.Time
}

// Override is an operator's fixed quota: it wins over the model until it
// expires.
type Override struct {
	QuotaFen  int64     `json:"quota_fen"`
	Reason    string    `json:"reason"`
	Operator  string    `json:"operator,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Day is the local day number of t in the user's zone.
func (u *User) Day(t time.Time) int {
	_, off := t.In(u.Zone).Zone()
	return int((t.Unix() + int64(off)) / 86400)
}

// User reads a user's whole state in one round trip. A user never seen has
// empty maps and a nil Profile.
func (s *Store) User(ctx context.Context, userID string) (*User, error) {
	us, err := s.Users(ctx, []string{userID})
	if err != nil {
		return nil, err
	}
	return us[0], nil
}

type userReads struct {
	a, m, b *redis.MapStringStringCmd
	p       *redis.StringCmd
}

// Users reads several users' state in one round trip (one pipeline).
func (s *Store) Users(ctx context.Context, userIDs []string) ([]*User, error) {
	pipe := s.rdb.Pipeline()
	reads := make([]userReads, len(userIDs))
	for i, id := range userIDs {
		k := userKeys(id)
		reads[i] = userReads{
			a: pipe.HGetAll(ctx, k[keyActivity]), m: pipe.HGetAll(ctx, k[keyMeta]), p: pipe.Get(ctx, k[keyProfile]), b: pipe.HGetAll(ctx, k[keyBills]),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("state: read %d users: %w", len(userIDs), err)
	}
	out := make([]*User, len(userIDs))
	for i, id := range userIDs {
		u, err := s.parseUser(id, reads[i])
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}

func (s *Store) parseUser(userID string, r userReads) (*User, error) {
	a, m, p, b := r.a, r.m, r.p, r.b
	// The maps are sized up front: a recompute parses every user once, and
	// growing a map of 35 days three times over costs more than the parse.
	av := a.Val()
	u := &User{ID: userID, Zone: s.storedZone(m.Val()["tz"]), Days: make(map[int]Counts, min(len(av), s.cfg.Days)),
		Months: make(map[int]Counts, s.cfg.Months+1), Devices: map[string]Place{}, Cities: map[string]Place{}, Bills: map[string]Bill{}}
	for f, v := range av {
		if len(f) < 2 {
			continue
		}
		if f[1] == ':' { // a place: "d:<device>" or "c:<city>"
			dayStr, nStr, _ := strings.Cut(v, ":")
			day, _ := strconv.Atoi(dayStr)
			n, _ := strconv.ParseInt(nStr, 10, 64)
			switch f[0] {
			case 'd':
				u.Devices[f[2:]] = Place{LastDay: day, Logins: n}
			case 'c':
				u.Cities[f[2:]] = Place{LastDay: day}
			}
			continue
		}
		n, err := strconv.Atoi(f[1:])
		if err != nil {
			return nil, fmt.Errorf("state: bad bucket field %q: %w", f, err)
		}
		c, err := parseCounts(v)
		if err != nil {
			return nil, err
		}
		switch f[0] {
		case 'd':
			u.Days[n] = c
		case 'm':
			u.Months[n] = c
		}
	}
	for id, v := range b.Val() {
		bill, open, err := parseBill(v)
		if err != nil {
			return nil, fmt.Errorf("%w of %s", err, userID)
		}
		if open {
			u.Bills[id] = bill
		}
	}
	meta := m.Val()
	u.FrozenOverdue, u.FrozenJudicial = meta["fz"] == "1", meta["fj"] == "1"
	u.SettledEpisodes, _ = strconv.Atoi(meta["oe"])
	if q, ok := meta["q"]; ok {
		if err := u.parseQuota(q, meta["rs"]); err != nil {
			return nil, err
		}
	}
	if qc := meta["qc"]; qc != "" {
		var err error
		if u.QuotaChecks, err = parseRecent(qc); err != nil {
			return nil, err
		}
	}
	if ov := meta["ov"]; ov != "" {
		u.Override = new(Override)
		if err := json.Unmarshal([]byte(ov), u.Override); err != nil {
			return nil, fmt.Errorf("state: decode override of %s: %w", userID, err)
		}
	}
	for _, ep := range strings.Split(meta["oh"], ",") {
		d, n, ok := strings.Cut(ep, ":")
		if !ok {
			continue
		}
		dd, _ := strconv.Atoi(d)
		nn, _ := strconv.Atoi(n)
		u.RecentEpisodes = append(u.RecentEpisodes, Episode{DueDay: dd, DaysOverdue: nn})
	}
	if raw, err := p.Bytes(); err == nil {
		var prof events.Profile
		if err := json.Unmarshal(raw, &prof); err != nil {
			return nil, fmt.Errorf("state: decode profile of %s: %w", userID, err)
		}
		u.Profile = &prof
	}
	return u, nil
}

// MemoryUsage is the sum of Redis's MEMORY USAGE over the user's keys, in bytes.
func (s *Store) MemoryUsage(ctx context.Context, userID string) (int64, error) {
	var total int64
	for _, k := range userKeys(userID) { // every key of the user, including ones not yet created
		n, err := s.rdb.MemoryUsage(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("state: memory usage of %s: %w", k, err)
		}
		total += n
	}
	return total, nil
}

// SetOverride stores an operator override for a user (nil removes it) and
// makes the user's recompute due now, so the new quota is published at once.
func (s *Store) SetOverride(ctx context.Context, userID string, ov *Override) error {
	k := userKeys(userID)[keyMeta]
	pipe := s.rdb.Pipeline()
	if ov == nil {
		pipe.HDel(ctx, k, "ov")
	} else {
		raw, err := json.Marshal(ov)
		if err != nil {
			return fmt.Errorf("state: encode override: %w", err)
		}
		pipe.HSet(ctx, k, "ov", raw)
	}
	dueAt(ctx, pipe, s.cfg.Now(), userID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("state: set override of %s: %w", userID, err)
	}
	return nil
}

// recordCheckScript puts a quota check's time at the front of the user's
// list of checks (6 base-36 digits each, newest first), keeping those of
// the last ARGV[2] seconds and at most 16.
var recordCheckScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
local n, t = now, {}
for i = 6, 1, -1 do
  local d = n % 36
  t[i] = string.sub(B36, d + 1, d + 1)
  n = math.floor(n / 36)
end
local out = {table.concat(t)}
local cur = redis.call("HGET", KEYS[1], "qc") or ""
for i = 1, #cur, 6 do
  local s = string.sub(cur, i, i + 5)
  if #out < 16 and tonumber(s, 36) > now - window then out[#out + 1] = s end
end
redis.call("HSET", KEYS[1], "qc", table.concat(out))
return #out
`)

// RecordQuotaCheck counts a quota check by the user at now (DOMAIN.md §3:
// repeated checks within 30 days lower the score) and returns how many the
// user made in the last 30 days, this one included.
func (s *Store) RecordQuotaCheck(ctx context.Context, userID string, now time.Time) (int, error) {
	n, err := recordCheckScript.Run(ctx, s.rdb, []string{userKeys(userID)[keyMeta]}, now.Unix(), 30*86400).Int()
	if err != nil {
		return 0, fmt.Errorf("state: record quota check of %s: %w", userID, err)
	}
	return n, nil
}

// quotaField is meta "q": the last saved recompute, "<quota fen>:<recompute
// count>:<due time of the last periodic recompute, 0 for none>", one field
// so that saving a quota is one short HSET.
func quotaField(q Quota) string {
	var cd int64
	if !q.CycleDone.IsZero() {
		cd = q.CycleDone.Unix()
	}
	b := make([]byte, 0, 40)
	b = strconv.AppendInt(b, q.QuotaFen, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, q.Seq, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, cd, 10)
	return string(b)
}

// parseQuota reads meta "q" (see quotaField). A bare number is the layout
// before the cycle index: the quota, with the count in meta "rs".
func (u *User) parseQuota(q, rs string) error {
	u.HasQuota = true
	fen, rest, ok := strings.Cut(q, ":")
	var err error
	if u.QuotaFen, err = strconv.ParseInt(fen, 10, 64); err != nil {
		return fmt.Errorf("state: bad quota %q of %s", q, u.ID)
	}
	if !ok {
		u.Recomputes, _ = strconv.ParseInt(rs, 10, 64)
		return nil
	}
	seq, cd, _ := strings.Cut(rest, ":")
	u.Recomputes, err = strconv.ParseInt(seq, 10, 64)
	sec, err2 := strconv.ParseInt(cd, 10, 64)
	if err != nil || err2 != nil {
		return fmt.Errorf("state: bad quota %q of %s", q, u.ID)
	}
	if sec != 0 {
		u.CycleDone = time.Unix(sec, 0)
	}
	return nil
}
