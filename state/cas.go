package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The compare-and-set of users' values. A value is written only if the
// stored one still carries the token its writer read (bytes 2..9 of the
// value, Rev), or, for a user read as not stored, only if it is still not
// stored. Redis 7.0 has no conditional SET, so the check is Lua; what costs
// in Lua is a value going in or out of it (Redis's Lua hashes every byte
// of every string it makes: about 1.2 µs for a 600-byte value, perf shows
// the hash loop on top) and each redis.call (about 1 µs). A script that
// took the new values as arguments and read the old ones with MGET cost
// 3.2–4.2 µs a user (500 users of 606 random bytes a call); WATCH was
// worse still (Redis 7.0 scans a client's watched keys for every key
// watched: 3.2 µs a user for WATCH and MSET alone). So, with one
// redis-server, the values never enter Lua (casAside): in one MULTI/EXEC,
//
//  1. asideScript compares each user's token (GETRANGE, 8 bytes) and moves
//     the value of every user that does not match out of the way
//     (RENAME to <key>:aside), listing those users in a scratch list;
//  2. one MSET writes every new value, blindly;
//  3. restoreScript puts the values moved aside back over the blind
//     writes of those users (or deletes the blind write of a user that
//     was expected stored and is not), and deletes the scratch list.
//
// EXEC runs the three with nothing in between, so no client ever sees a
// blind write of a user that did not match: 1.9–2.3 µs a user, against
// 0.6 for the MSET alone (same run). In Redis Cluster a transaction
// cannot span slots, so each user gets a script call of its own
// (casScript, the values through Lua).

// asideScript is step 1. KEYS[1]: the scratch list; KEYS[2..]: the users;
// ARGV: the token each was read with, "" for one read as not stored.
// Returns the positions (1-based, in ARGV) of the users that do not match.
// Its first command is a write, so that it cannot be stopped by SCRIPT
// KILL once it runs: the blind MSET after it is only safe if it ran to
// the end. pcall: a key of another type does not match (and is moved
// aside and back like any other), it does not stop the script.
var asideScript = redis.NewScript(`
redis.call("RPUSH", KEYS[1], "")
local failed = {}
for i = 2, #KEYS do
  local k, want = KEYS[i], ARGV[i - 1]
  local ok
  if want == "" then
    ok = redis.call("EXISTS", k) == 0
  else
    ok = redis.pcall("GETRANGE", k, 1, 8) == want
  end
  if not ok then
    failed[#failed + 1] = i - 1
    redis.call("RPUSH", KEYS[1], k)
    if redis.call("EXISTS", k) == 1 then redis.call("RENAME", k, k .. ":aside") end
  end
end
return failed
`)

// restoreScript is step 3. KEYS[1]: the scratch list. Returns how many
// users it restored.
var restoreScript = redis.NewScript(`
local ks = redis.call("LRANGE", KEYS[1], 0, -1)
redis.call("DEL", KEYS[1])
local n = 0
for _, k in ipairs(ks) do
  if k ~= "" then
    n = n + 1
    if redis.call("EXISTS", k .. ":aside") == 1 then
      redis.call("RENAME", k .. ":aside", k)
    else
      redis.call("DEL", k)
    end
  end
end
return n
`)

// casScratchKey is the scratch list of casAside, under Config.Prefix. It
// lives only inside one EXEC.
const casScratchKey = "fenqi:cas:aside"

// casScript is the compare-and-set of one user in Redis Cluster. KEYS[1]:
// the user; ARGV[1]: the token read, ARGV[2]: the new value. Returns 1 if
// it wrote, 0 if the token did not match (or the key holds another type).
var casScript = redis.NewScript(`
local v = redis.pcall("GET", KEYS[1])
if type(v) == "string" and string.sub(v, 2, 9) == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// write is one user's state to write, and the token it was read with.
type write struct {
	user   string
	expect uint64
	val    []byte
}

// expected is the token a write compares with as asideScript takes it.
func (w write) expected() string {
	if w.expect == 0 {
		return ""
	}
	return token(w.expect)
}

// cas writes states with the compare-and-set, with other commands queued
// before them in the same round trip (extra may be nil), and returns the
// users it could not write. An error says nothing about what was written:
// writing the same states again then fails the compare-and-set for those
// that were.
func (s *Store) cas(ctx context.Context, ws []write, extra func(redis.Pipeliner) []*redis.Cmd) ([]string, error) {
	var pipe redis.Pipeliner
	if s.cluster {
		pipe = s.rdb.Pipeline()
	} else {
		pipe = s.rdb.TxPipeline()
	}
	var ex []*redis.Cmd
	if extra != nil {
		ex = extra(pipe)
	}
	var result func() ([]string, error)
	if s.cluster {
		result = s.casEach(ctx, pipe, ws)
	} else {
		result = s.casAside(ctx, pipe, ws)
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		// Exec reports the first error only: a NOSCRIPT of extra is
		// handled below, any other one is the write's.
		for _, c := range cmds {
			if err := c.Err(); err != nil && !isNoScript(err) && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("state: write %d users: %w", len(ws), err)
			}
		}
	}
	failed, err := result()
	if err != nil {
		return nil, err
	}
	// Redis restarted or failed over and forgot a script of extra (the
	// writes send theirs whole): load them and run extra again (its
	// commands are idempotent).
	noScript := false
	for _, c := range ex {
		noScript = noScript || isNoScript(c.Err())
	}
	if noScript {
		if err := s.Load(ctx); err != nil {
			return nil, err
		}
		pipe := s.rdb.Pipeline()
		ex = extra(pipe)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("state: index %d users: %w", len(ws), err)
		}
	}
	for _, c := range ex {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("state: index %d users: %w", len(ws), err)
		}
	}
	return failed, nil
}

// casAside queues ws's compare-and-set on a transaction (see above) and
// returns what reads its replies after Exec.
func (s *Store) casAside(ctx context.Context, tx redis.Pipeliner, ws []write) func() ([]string, error) {
	if len(ws) == 0 {
		return func() ([]string, error) { return nil, nil }
	}
	scratch := s.Key(casScratchKey)
	type chunk struct {
		cmd   *redis.Cmd
		users []write
	}
	var chunks []chunk
	for lo := 0; lo < len(ws); lo += maxScriptUsers { // unpack's bound
		part := ws[lo:min(lo+maxScriptUsers, len(ws))]
		keys := make([]string, 1, 1+len(part))
		keys[0] = scratch
		args := make([]any, len(part))
		for i, w := range part {
			keys = append(keys, s.userKey(w.user))
			args[i] = w.expected()
		}
		// Eval, not EvalSha: a NOSCRIPT inside EXEC would fail the check
		// alone and let the blind MSET through.
		chunks = append(chunks, chunk{asideScript.Eval(ctx, tx, keys, args...), part})
	}
	kv := make([]any, 0, 2*len(ws))
	for _, w := range ws {
		kv = append(kv, s.userKey(w.user), w.val)
	}
	set := tx.MSet(ctx, kv...)
	restore := restoreScript.Eval(ctx, tx, []string{scratch})
	return func() ([]string, error) {
		var failed []string
		for _, c := range chunks {
			pos, err := c.cmd.Int64Slice()
			if err != nil {
				return nil, fmt.Errorf("state: compare %d users: %w", len(c.users), err)
			}
			for _, p := range pos {
				failed = append(failed, c.users[p-1].user)
			}
		}
		if err := set.Err(); err != nil {
			return nil, fmt.Errorf("state: write %d users: %w", len(ws), err)
		}
		n, err := restore.Int64()
		if err != nil {
			return nil, fmt.Errorf("state: restore %d users that changed: %w", len(failed), err)
		}
		if int(n) != len(failed) {
			return nil, fmt.Errorf("state: restored %d users that changed, of %d", n, len(failed))
		}
		return failed, nil
	}
}

// casEach queues a compare-and-set per user (Redis Cluster: each user's
// key in its own slot) and returns what reads the replies after Exec.
func (s *Store) casEach(ctx context.Context, pipe redis.Pipeliner, ws []write) func() ([]string, error) {
	cmds := make([]redis.Cmder, len(ws))
	for i, w := range ws {
		if w.expect == 0 {
			cmds[i] = pipe.SetNX(ctx, s.userKey(w.user), w.val, 0)
		} else {
			// Eval: no NOSCRIPT to handle, and the script is a few lines.
			cmds[i] = casScript.Eval(ctx, pipe, []string{s.userKey(w.user)}, token(w.expect), w.val)
		}
	}
	return func() ([]string, error) {
		var failed []string
		for i, c := range cmds {
			var ok bool
			var err error
			switch c := c.(type) {
			case *redis.BoolCmd:
				ok, err = c.Result()
			case *redis.Cmd:
				var n int64
				n, err = c.Int64()
				ok = n == 1
			}
			if err != nil {
				return nil, fmt.Errorf("state: write user %s: %w", ws[i].user, err)
			}
			if !ok {
				failed = append(failed, ws[i].user)
			}
		}
		return failed, nil
	}
}
