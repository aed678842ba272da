package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// binaries are built once per test binary, into binDir.
var (
	buildOnce sync.Once
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bins builds fenqid and the broker process (go build, from the module
// root) and returns their paths.
func bins(t testing.TB) (fenqid, broker string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "fenqi-chaos-bin-")
		if buildErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		for _, b := range [][2]string{{"fenqid", "./cmd/fenqid"}, {"broker", "./chaos/internal/broker"}} {
			cmd := exec.Command(goBin, "build", "-o", filepath.Join(binDir, b[0]), b[1])
			cmd.Dir = ".." // the module root
			cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("chaos: %v", buildErr)
	}
	return filepath.Join(binDir, "fenqid"), filepath.Join(binDir, "broker")
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	exited  chan struct{} // closed once waited on
	waitErr error
}

// startProc starts bin with args, its stdout and stderr appended to
// logPath. The child gets SIGKILL if the test process dies (Pdeathsig,
// from a goroutine locked to its thread for the child's whole life). When
// ready is not nil, startProc returns once a line of stdout satisfies it
// (or fails after timeout).
func startProc(t testing.TB, name, logPath string, env []string, ready func(line string) bool, timeout time.Duration, bin string, args ...string) *proc {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("chaos: %s: log file: %v", name, err)
	}
	fmt.Fprintf(lf, "==== %s start %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	p := &proc{name: name, logPath: logPath, exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lf
	var readyCh chan struct{}
	if ready != nil {
		pr, pw := io.Pipe()
		cmd.Stdout = pw
		readyCh = make(chan struct{})
		go func() {
			sc := bufio.NewScanner(pr)
			once := false
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(lf, line)
				if !once && ready(line) {
					once = true
					close(readyCh)
				}
			}
			_, _ = io.Copy(lf, pr)
		}()
		defer func() {
			go func() { <-p.exited; _ = pw.Close() }()
		}()
	} else {
		cmd.Stdout = lf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd = cmd
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		_ = lf.Close()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		_ = lf.Close()
		t.Fatalf("chaos: start %s: %v", name, err)
	}
	p.started = time.Now()
	t.Cleanup(func() { p.kill() })
	if ready != nil {
		select {
		case <-readyCh:
		case <-p.exited:
			t.Fatalf("chaos: %s exited before it was ready (%v); log %s:\n%s", name, p.waitErr, logPath, tail(logPath, 40))
		case <-time.After(timeout):
			p.kill()
			t.Fatalf("chaos: %s not ready within %s; log %s:\n%s", name, timeout, logPath, tail(logPath, 40))
		}
	}
	return p
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if p.running() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// stop sends SIGTERM and waits up to grace for the exit; it returns the
// exit error, or an error saying it had to be killed.
func (p *proc) stop(grace time.Duration) error {
	if !p.running() {
		return fmt.Errorf("%s had exited already: %v", p.name, p.waitErr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM: killed", p.name, grace)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a 127.0.0.1 port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisServer is a redis-server child with an append-only file fsynced on
// every write, restartable on its port and data.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	log  string
	p    *proc
}

func newRedis(t testing.TB, dir string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("chaos: redis-server not on PATH (apt-get install redis-server): %v", err)
	}
	r := &redisServer{t: t, port: freePort(t), dir: filepath.Join(dir, "redis"), log: filepath.Join(dir, "redis.log")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// start starts redis-server on its port and data and waits until it
// answers PING (not LOADING), up to 30 s.
func (r *redisServer) start() {
	r.t.Helper()
	r.p = startProc(r.t, "redis-server", r.log, nil, nil, 0, "redis-server",
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir,
		"--logfile", "", "--enable-debug-command", "local")
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if !r.p.running() {
			r.t.Fatalf("chaos: redis-server exited at start (%v):\n%s", r.p.waitErr, tail(r.log, 30))
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("chaos: redis-server on %s does not answer PING within 30s: %v\n%s", r.addr(), err, tail(r.log, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client returns a client with generous timeouts (the suite's own reads).
func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr(), ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
}

// broker is the kfake broker process on a fixed address and data dir.
type broker struct {
	t       testing.TB
	bin     string
	addr    string
	dataDir string
	log     string
	parts   int
	p       *proc
}

func newBroker(t testing.TB, bin, dir string, parts int) *broker {
	b := &broker{t: t, bin: bin, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		dataDir: filepath.Join(dir, "kafka"), log: filepath.Join(dir, "broker.log"), parts: parts}
	b.start()
	return b
}

// start starts the broker and returns once it listens.
func (b *broker) start() {
	b.t.Helper()
	// A restart on the same address right after a kill can find the port
	// held for a moment: wait until it can be bound.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", b.addr)
		if err == nil {
			_ = ln.Close()
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("chaos: broker address %s still in use: %v", b.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.p = startProc(b.t, "broker", b.log, nil, func(l string) bool { return strings.HasPrefix(l, "ready ") }, 30*time.Second,
		b.bin, "-addr", b.addr, "-data-dir", b.dataDir, "-partitions", strconv.Itoa(b.parts))
}
