package state

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The compare-and-set of users' values. A value is written only if the
// stored one still carries the token its writer read (bytes 2..9 of the
// value, Rev), or, for a user read as not stored, only if it is still not
// stored. Redis 7.0 has no conditional SET, so the check is Lua; what costs
// in Lua is a value going in or out of it (Redis's Lua hashes every byte
// of every string it makes: about 1.2 µs for a 600-byte value; perf shows
// the hash loop on top) and each redis.call (about 1 µs). A script that
// took the new values as arguments and read the old ones with MGET cost
// 3.2–4.2 µs a user (500 users of 606 random bytes a call); WATCH was
// worse still (Redis 7.0 scans a client's watched keys for every key
// watched: 3.2 µs a user for WATCH and MSET alone). So, with one
// redis-server, the values never enter Lua (casStaged): in one MULTI/EXEC,
// one MSET writes every new value to its user's staged key (<key>:new),
// and stagedScript then, for each user whose token still matches, renames
// the staged key over the user's key, and deletes it for the others.
//
// It fails safe: the MSET writes only staged keys, which nothing reads,
// and a user's key changes only by a rename right after its check. If the
// script stops half way (a command refused by an ACL, a Redis error), the
// users before that point were checked and written, the rest were not:
// the caller gets an error and writes again, and the users written fail
// that compare-and-set (their token changed) and are computed again. Staged
// keys it left are overwritten by the next write of the same users. A
// user twice in one write is written once and reported as not written the
// second time (its token changed): a conflict, computed again, never lost.
// (Moving the changed users aside, a blind MSET of the users' keys and a
// restore was cheaper still, but a script stopping half way then lets the
// blind MSET overwrite users that changed.)
//
// In Redis Cluster a transaction cannot span slots, so each user gets a
// script call of its own (casScript, the value through Lua).

// stagedScript renames staged values over users' keys. KEYS: per user its
// key, then its staged key; ARGV: per user the token read, "" for one read
// as not stored. Returns the positions (1-based, in ARGV) of the users it
// did not write. pcall: a key of another type does not match, it does not
// stop the script.
var stagedScript = redis.NewScript(`
local failed = {}
for i = 1, #ARGV do
  local k, staged, want = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i]
  local ok
  if want == "" then
    ok = redis.call("EXISTS", k) == 0
  else
    ok = redis.pcall("GETRANGE", k, 1, 8) == want
  end
  if ok then
    redis.call("RENAME", staged, k)
  else
    failed[#failed + 1] = i
    redis.call("DEL", staged)
  end
end
return failed
`)

// stagedSuffix names a user's staged key: its key and this.
const stagedSuffix = ":new"

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

// expected is the token a write compares with, as stagedScript takes it.
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
		result = s.casStaged(ctx, pipe, ws)
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		// Exec reports the first error only: a NOSCRIPT of extra is
		// handled below, any other one is the write's. A command refused
		// as it was queued (an ACL, OOM) keeps its own error and makes the
		// others EXECABORT: name it.
		var first error
		for _, c := range cmds {
			err := c.Err()
			if err == nil || isNoScript(err) || errors.Is(err, redis.Nil) {
				continue
			}
			if first == nil || strings.HasPrefix(first.Error(), "EXECABORT") {
				first = err
			}
		}
		if first != nil {
			return nil, fmt.Errorf("state: write %d users: %w", len(ws), first)
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

// casStaged queues ws's compare-and-set on a transaction (see above) and
// returns what reads its replies after Exec.
func (s *Store) casStaged(ctx context.Context, tx redis.Pipeliner, ws []write) func() ([]string, error) {
	if len(ws) == 0 {
		return func() ([]string, error) { return nil, nil }
	}
	kv := make([]any, 0, 2*len(ws))
	for _, w := range ws {
		kv = append(kv, s.userKey(w.user)+stagedSuffix, w.val)
	}
	set := tx.MSet(ctx, kv...)
	type chunk struct {
		cmd   *redis.Cmd
		users []write
	}
	var chunks []chunk
	for lo := 0; lo < len(ws); lo += maxScriptUsers {
		part := ws[lo:min(lo+maxScriptUsers, len(ws))]
		keys := make([]string, 0, 2*len(part))
		args := make([]any, len(part))
		for i, w := range part {
			k := s.userKey(w.user)
			keys = append(keys, k, k+stagedSuffix)
			args[i] = w.expected()
		}
		// Eval, not EvalSha: a NOSCRIPT inside EXEC would leave every
		// user unwritten, for nothing; the script is short.
		chunks = append(chunks, chunk{stagedScript.Eval(ctx, tx, keys, args...), part})
	}
	return func() ([]string, error) {
		if err := set.Err(); err != nil {
			return nil, fmt.Errorf("state: stage %d users: %w", len(ws), err)
		}
		var failed []string
		for _, c := range chunks {
			pos, err := c.cmd.Int64Slice()
			if err != nil {
				return nil, fmt.Errorf("state: write %d users: %w", len(c.users), err)
			}
			for _, p := range pos {
				failed = append(failed, c.users[p-1].user)
			}
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
