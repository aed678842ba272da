package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// ErrRedisServerNotFound is returned by StartRedis when no redis-server
// binary is found and RedisConfig.NoFallback forbids miniredis.
var ErrRedisServerNotFound = errors.New("redis-server not found on PATH")

// DefaultRedisStartTimeout bounds how long StartRedis waits for PING.
const DefaultRedisStartTimeout = 10 * time.Second

// redisStopTimeout is how long Close waits after SIGTERM before SIGKILL.
const redisStopTimeout = 10 * time.Second

// RedisConfig configures StartRedis.
type RedisConfig struct {
	// DataDir, when set, turns persistence on: redis-server keeps an
	// append-only file there and reloads it on the next start. "" runs
	// without persistence in a temporary directory removed on Close.
	DataDir string
	// Port is the 127.0.0.1 port to listen on; 0 picks a free one.
	Port int
	// Binary is the redis-server executable; "" means "redis-server"
	// looked up on PATH.
	Binary string
	// Args are extra redis-server arguments appended to the generated
	// ones, e.g. {"--hash-max-listpack-entries", "128"}.
	Args []string
	// NoFallback makes StartRedis fail with ErrRedisServerNotFound
	// instead of falling back to miniredis when the binary is missing.
	NoFallback bool
}

// Redis is a running Redis server: a redis-server child process, or an
// in-process miniredis when no redis-server is installed.
type Redis struct {
	addr string

	// child process (nil with miniredis)
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the child has been waited on
	waitErr error         // set before exited is closed
	log     *tailBuffer
	tmpDir  string // removed on Close; "" with a DataDir

	mini *miniredis.Miniredis

	closeOnce sync.Once
	closeErr  error
}

// StartRedis starts a Redis server on 127.0.0.1 and waits until it answers
// PING. It spawns redis-server from PATH; when there is none it logs one
// line through logf (nil discards it) and falls back to the in-process
// miniredis, unless cfg.NoFallback is set. The server runs until Close;
// ctx only bounds the start-up.
func StartRedis(ctx context.Context, cfg RedisConfig, logf func(string, ...any)) (*Redis, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if cfg.NoFallback {
			return nil, fmt.Errorf("start redis: %w: %w", ErrRedisServerNotFound, err)
		}
		logf("redis-server not found on PATH; using in-process miniredis (no persistence, for trying fenqi only)")
		return startMiniredis(cfg)
	}

	ctx, cancel := context.WithTimeout(ctx, DefaultRedisStartTimeout)
	defer cancel()

	// A free port found by listening on :0 can be taken by someone else
	// before redis-server binds it: retry a few times on a bind failure.
	const attempts = 3
	for i := 1; ; i++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("start redis: %w", err)
			}
		}
		r, err := startRedisServer(ctx, path, port, cfg)
		if err == nil {
			return r, nil
		}
		if cfg.Port != 0 || i == attempts || !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			return nil, err
		}
	}
}

var errAddrInUse = errors.New("address already in use")

func startRedisServer(ctx context.Context, path string, port int, cfg RedisConfig) (*Redis, error) {
	r := &Redis{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		exited: make(chan struct{}),
		log:    &tailBuffer{max: 8 << 10},
	}
	dir := cfg.DataDir
	if dir != "" {
		// redis-server runs in dir and then changes to --dir: a relative
		// path would be taken twice.
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("start redis: data dir %q: %w", dir, err)
		}
		dir = abs
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("start redis: create data dir: %w", err)
		}
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec", "--dir", dir)
	} else {
		tmp, err := os.MkdirTemp("", "fenqi-redis-")
		if err != nil {
			return nil, fmt.Errorf("start redis: temp dir: %w", err)
		}
		r.tmpDir, dir = tmp, tmp
		args = append(args, "--appendonly", "no", "--dir", dir)
	}
	args = append(args, cfg.Args...)

	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout = r.log // redis-server logs to stdout by default
	cmd.Stderr = r.log
	cmd.SysProcAttr = childSysProcAttr()
	r.cmd = cmd

	// With Pdeathsig the child is signalled when the OS thread that
	// forked it ends, not the process: fork from a goroutine locked to
	// its thread that stays alive (blocked in Wait) as long as the child.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	if err := <-started; err != nil {
		r.removeTmp()
		return nil, fmt.Errorf("start redis: exec %s: %w", path, err)
	}

	if err := r.waitReady(ctx); err != nil {
		_ = r.stop()
		r.removeTmp()
		tail := strings.TrimSpace(r.log.String())
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return nil, fmt.Errorf("start redis-server on %s (dir %s): %w; server log tail:\n%s", r.addr, dir, err, tail)
	}
	return r, nil
}

// waitReady polls PING until it answers +PONG (not -LOADING while an
// append-only file is replayed), the child exits or ctx ends.
func (r *Redis) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = ping(ctx, r.addr); lastErr == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("redis-server exited before answering PING: %v", r.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no PING answer (last: %v): %w", lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

// ping sends one inline PING over a fresh connection. A raw exchange keeps
// the client library's dial-failure logging out of the way while the
// server is starting.
func ping(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func startMiniredis(cfg RedisConfig) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start miniredis on %s: %w", addr, err)
	}
	return &Redis{addr: m.Addr(), mini: m}, nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return r.addr }

// Miniredis returns the in-process server when StartRedis fell back to
// miniredis, nil when a real redis-server runs.
func (r *Redis) Miniredis() *miniredis.Miniredis { return r.mini }

// Pid returns the redis-server process id, 0 with miniredis.
func (r *Redis) Pid() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Close stops the server: SIGTERM (redis-server flushes its append-only
// file and exits), then SIGKILL if it has not exited in time. Calling Close
// more than once returns the first result.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		if r.mini != nil {
			r.mini.Close()
			return
		}
		r.closeErr = r.stop()
		r.removeTmp()
	})
	return r.closeErr
}

func (r *Redis) stop() error {
	select {
	case <-r.exited:
		return nil // already gone (crashed or never ready)
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop redis-server %s: SIGTERM: %w", r.addr, err)
	}
	select {
	case <-r.exited:
		var ee *exec.ExitError
		if r.waitErr != nil && !errors.As(r.waitErr, &ee) {
			return fmt.Errorf("stop redis-server %s: %w", r.addr, r.waitErr)
		}
		if ee != nil && !ee.Success() {
			return fmt.Errorf("stop redis-server %s: %w; log tail:\n%s", r.addr, r.waitErr, r.log.String())
		}
		return nil
	case <-time.After(redisStopTimeout):
		_ = r.cmd.Process.Kill()
		<-r.exited
		return fmt.Errorf("stop redis-server %s: no exit %s after SIGTERM, killed", r.addr, redisStopTimeout)
	}
}

func (r *Redis) removeTmp() {
	if r.tmpDir != "" {
		_ = os.RemoveAll(r.tmpDir)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if i := bytes.IndexByte(b, '\n'); i >= 0 && len(b) >= t.max {
		b = b[i+1:] // drop the cut first line
	}
	return string(b)
}
