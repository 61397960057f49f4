package wt2

import (
	"flag"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// pushEnv, when set in the environment, has the sessions the test helpers
// make (newPair, newRaw) take their input pushed (pushConn) instead of
// reading it: TestPushMode runs the package's tests so.
const pushEnv = "WT2_TEST_PUSH"

// wrapPush returns c, or c as a pushConn when the tests run in push mode.
func wrapPush(c net.Conn) net.Conn {
	if os.Getenv(pushEnv) == "" {
		return c
	}
	return &pushConn{Conn: c, end: make(chan struct{})}
}

// pushConn hands what it reads from its connection to the session's data
// handler (dataHandlerSetter) on a goroutine of its own, in pieces of at
// most 4093 bytes, holding a lock around each call as h2conn's read loop
// holds its own; Read only reports the end of the input.
type pushConn struct {
	net.Conn
	mu  sync.Mutex
	end chan struct{}
	err error
}

func (c *pushConn) SetDataHandler(h func([]byte)) {
	go func() {
		defer close(c.end)
		buf := make([]byte, 4093)
		for {
			n, err := c.Conn.Read(buf)
			if n > 0 {
				c.mu.Lock()
				h(buf[:n])
				c.mu.Unlock()
			}
			if err != nil {
				c.err = err
				return
			}
		}
	}()
}

func (c *pushConn) Read([]byte) (int, error) {
	<-c.end
	return 0, c.err
}

func (c *pushConn) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }

// TestPushMode runs the package's other tests again with every session of
// the helpers parsing capsules pushed to it, as over h2conn, so that both
// of the session's ways of reading meet the same tests.
func TestPushMode(t *testing.T) {
	if os.Getenv(pushEnv) != "" {
		t.Skip("running in push mode")
	}
	if testing.Short() {
		t.Skip("short")
	}
	args := []string{"-test.run", "^Test", "-test.skip", "^TestPushMode$", "-test.count", "1"}
	if f := flag.Lookup("test.timeout"); f != nil {
		args = append(args, "-test.timeout", f.Value.String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), pushEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests in push mode: %v\n%s", err, out)
	}
}
