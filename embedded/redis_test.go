package embedded_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/embedded"
)

func needRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not on PATH: install it (apt-get install redis-server)")
	}
}

func startRedis(t *testing.T, cfg embedded.RedisConfig) *embedded.Redis {
	t.Helper()
	r, err := embedded.StartRedis(context.Background(), cfg, t.Logf)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// script is what the processor does: SCRIPT LOAD then EVALSHA.
var script = redis.NewScript(`return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)`)

func exercise(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if err := script.Load(ctx, c).Err(); err != nil {
		t.Fatalf("SCRIPT LOAD: %v", err)
	}
	for want := int64(1); want <= 2; want++ {
		n, err := c.EvalSha(ctx, script.Hash(), []string{"{u:1}:h"}, "f").Int64()
		if err != nil || n != want {
			t.Fatalf("EVALSHA = %d, %v; want %d", n, err, want)
		}
	}
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by
// whoever adopted it) counts as dead.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return runtime.GOOS != "linux"
	}
	// Field 3, after "pid (comm)", is the state.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && len(stat) > i+2 {
		return stat[i+2] != 'Z'
	}
	return true
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server pid %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartRedisServer(t *testing.T) {
	needRedisServer(t)
	r := startRedis(t, embedded.RedisConfig{})
	if r.Miniredis() != nil {
		t.Fatal("fell back to miniredis although redis-server is installed")
	}
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q", r.Addr())
	}
	exercise(t, r.Addr())
	pid := r.Pid()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitDead(t, pid) // reaped by Close: must already be gone
}

func TestStartRedisPersistence(t *testing.T) {
	needRedisServer(t)
	dir := filepath.Join(t.TempDir(), "redis")
	ctx := context.Background()
	r1 := startRedis(t, embedded.RedisConfig{DataDir: dir})
	c := redis.NewClient(&redis.Options{Addr: r1.Addr()})
	if err := c.HSet(ctx, "{u:1}:p", "score", 700).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := r1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r2 := startRedis(t, embedded.RedisConfig{DataDir: dir})
	c = redis.NewClient(&redis.Options{Addr: r2.Addr()})
	defer c.Close()
	if v, err := c.HGet(ctx, "{u:1}:p", "score").Result(); err != nil || v != "700" {
		t.Fatalf("after restart HGET = %q, %v; want 700", v, err)
	}
	if v, err := c.ConfigGet(ctx, "appendonly").Result(); err != nil || v["appendonly"] != "yes" {
		t.Fatalf("appendonly = %v, %v", v, err)
	}
}

func TestStartRedisRelativeDataDir(t *testing.T) {
	needRedisServer(t)
	t.Chdir(t.TempDir())
	r := startRedis(t, embedded.RedisConfig{DataDir: filepath.Join(".fenqi-data", "redis")})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(".fenqi-data", "redis", "appendonlydir")); err != nil {
		t.Fatalf("no append-only dir in the relative data dir: %v", err)
	}
}

func TestStartRedisFixedPortAndArgs(t *testing.T) {
	needRedisServer(t)
	ln, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r := startRedis(t, embedded.RedisConfig{Port: ln, Args: []string{"--hash-max-listpack-entries", "128"}})
	if want := "127.0.0.1:" + strconv.Itoa(ln); r.Addr() != want {
		t.Fatalf("Addr = %q, want %q", r.Addr(), want)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	if v, err := c.ConfigGet(context.Background(), "hash-max-listpack-entries").Result(); err != nil || v["hash-max-listpack-entries"] != "128" {
		t.Fatalf("hash-max-listpack-entries = %v, %v", v, err)
	}
}

func TestStartRedisFailureShowsLog(t *testing.T) {
	needRedisServer(t)
	_, err := embedded.StartRedis(context.Background(), embedded.RedisConfig{Args: []string{"--no-such-option", "1"}}, nil)
	if err == nil {
		t.Fatal("StartRedis with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("error does not show the server's log: %v", err)
	}
}

func TestStartRedisFallbackToMiniredis(t *testing.T) {
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	r, err := embedded.StartRedis(context.Background(), embedded.RedisConfig{Binary: "no-such-redis-server-bin"}, logf)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	defer r.Close()
	if r.Miniredis() == nil || r.Pid() != 0 {
		t.Fatal("did not fall back to miniredis")
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "miniredis") {
		t.Fatalf("logs = %q, want one line about miniredis", logs)
	}
	exercise(t, r.Addr())
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestStartRedisNoFallback(t *testing.T) {
	_, err := embedded.StartRedis(context.Background(), embedded.RedisConfig{Binary: "no-such-redis-server-bin", NoFallback: true}, nil)
	if !errors.Is(err, embedded.ErrRedisServerNotFound) {
		t.Fatalf("err = %v, want ErrRedisServerNotFound", err)
	}
}

// TestRedisDiesWithParent runs this test binary as a child that starts a
// redis-server and is then SIGKILLed: Pdeathsig must take redis-server down.
func TestRedisDiesWithParent(t *testing.T) {
	if os.Getenv("FENQI_EMBEDDED_CHILD") == "1" {
		r, err := embedded.StartRedis(context.Background(), embedded.RedisConfig{}, nil)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("PID", r.Pid())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	needRedisServer(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisDiesWithParent$")
	cmd.Env = append(os.Environ(), "FENQI_EMBEDDED_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "PID ")
	if !ok {
		_ = cmd.Process.Kill()
		t.Fatalf("child said %q", line)
	}
	pid, _ := strconv.Atoi(pidStr)
	if !alive(pid) {
		t.Fatalf("redis-server %d not running", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	start := time.Now()
	waitDead(t, pid)
	t.Logf("redis-server gone %s after its parent was killed", time.Since(start))
}
