package interop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a server may take to listen.
	startTimeout = 20 * time.Second
	// stopTimeout is how long a server gets to exit after SIGTERM before
	// its process group is killed.
	stopTimeout = 5 * time.Second
	// startTries is how often a server is started on fresh ports when it
	// exits before listening (another test took a port meanwhile).
	startTries = 3
)

// proc is an independent server running as a child process of the test,
// in a process group of its own whose ID is its process ID.
type proc struct {
	name    string
	pid     int
	out     syncBuffer    // its stdout and stderr
	exited  chan struct{} // closed once it has exited and been reaped
	waitErr error         // set before exited is closed
	logs    []string      // files whose contents are shown when the test fails
}

// startProc starts bin with args in dir, with env added to the test's
// environment, and makes the test's cleanup stop it (see stop). The process
// gets SIGKILL if the thread that started it ends, which happens only if
// the test binary dies before its cleanup: a server never outlives a
// crashed test.
func startProc(t testing.TB, name, dir string, env []string, bin string, args ...string) (*proc, error) {
	t.Helper()
	p := &proc{name: name, exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Workers that inherited stdout must not hold up Wait once the
	// server itself has exited.
	cmd.WaitDelay = 2 * time.Second
	started := make(chan error, 1)
	// Pdeathsig follows the thread that forked, so that thread is kept,
	// locked to this goroutine, until the process has been reaped.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			p.dump(t)
		}
	})
	return p, nil
}

// stop sends SIGTERM to the server's process ID and waits for it to exit,
// then sends SIGKILL to what is left of its process group (workers whose
// master is gone). A server still there stopTimeout after SIGTERM gets
// SIGKILL; that is logged, not a failure: an Apache child now and then
// takes more than 10 s to leave after proxying WebSockets, a matter of the
// server's shutdown, not of what the tests check.
func (p *proc) stop(t testing.TB) {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			t.Logf("%s (pid %d) did not exit %v after SIGTERM: killed", p.name, p.pid, stopTimeout)
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	// Workers that outlived their master; ESRCH when there are none.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

// dump logs what the server printed and its log files.
func (p *proc) dump(t testing.TB) {
	t.Logf("%s (pid %d) output:\n%s", p.name, p.pid, p.out.String())
	for _, f := range p.logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 16<<10 {
			b = b[len(b)-16<<10:]
		}
		t.Logf("%s:\n%s", f, b)
	}
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

// errExited says the server exited before it listened.
var errExited = errors.New("exited before listening")

// waitListening waits until the server accepts TCP connections on
// 127.0.0.1:tcpPort (when non-zero) and has a UDP socket bound to
// 127.0.0.1:udpPort (when non-zero).
func (p *proc) waitListening(tcpPort, udpPort int) error {
	deadline := time.Now().Add(startTimeout)
	for {
		tcpOK := tcpPort == 0 || tcpListening(tcpPort)
		udpOK := udpPort == 0 || udpBound(udpPort)
		if tcpOK && udpOK {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s %w (%v):\n%s", p.name, errExited, p.waitErr, p.out.String())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on port %d/%d within %v:\n%s", p.name, tcpPort, udpPort, startTimeout, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpListening reports whether something accepts TCP on 127.0.0.1:port.
func tcpListening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// udpBound reports whether a UDP socket is bound to 127.0.0.1:port (or to
// the wildcard address and port), from /proc/net/udp: a QUIC server cannot
// be probed without a handshake.
func udpBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if f[1] == "0100007F"+suffix || f[1] == "00000000"+suffix {
			return true
		}
	}
	return false
}

// freePort returns a port that is free on 127.0.0.1 for TCP, and for UDP
// too when udp is set, at the time of the call. The server binds it a
// moment later; startTries covers the rare case that another process took
// it meanwhile.
func freePort(t testing.TB, udp bool) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		if udp {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				ok = false
			} else {
				pc.Close()
			}
		}
		l.Close()
		if ok {
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// launch is how a test starts a server: setup gets a fresh directory and
// nports free ports and says what to run (after rendering the
// configuration there); launch starts it and waits until it listens on
// every port over TCP, and on the first over UDP too when udp is set; a
// server with a single port and udp set is taken for UDP only (QUIC). A
// server that exits before listening is started again on fresh ports, up
// to startTries times; then the test fails with its output.
func launch(t testing.TB, w *world, name string, nports int, udp bool, setup func(dir string, ports []int) command) (p *proc, dir string, ports []int) {
	t.Helper()
	var lastErr error
	for range startTries {
		dir = w.serverDir(name)
		ports = make([]int, nports)
		for i := range ports {
			ports[i] = freePort(t, udp && i == 0)
		}
		c := setup(dir, ports)
		var err error
		p, err = startProc(t, name, dir, c.env, c.bin, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		p.logs = c.logs
		udpPort, tcpPorts := 0, ports
		if udp {
			udpPort = ports[0]
			if nports == 1 {
				tcpPorts = nil
			}
		}
		err = p.waitListening(0, udpPort)
		for _, port := range tcpPorts {
			if err != nil {
				break
			}
			err = p.waitListening(port, 0)
		}
		if err == nil {
			return p, dir, ports
		}
		lastErr = err
		p.stop(t)
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("%s did not start: %v", name, lastErr)
	return nil, "", nil
}

// command is what launch runs: a program, its arguments, environment
// added to the test's, and the log files to show when the test fails.
type command struct {
	bin  string
	args []string
	env  []string
	logs []string
}
