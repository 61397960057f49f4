//go:build linux

package dialertest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestStartOverOnTakenPort: when a fault cannot bind the port reserve
// chose, the server starts over on another port instead of failing. Here
// the port is taken by a connection that an earlier server on [::1] closed
// first, left in TIME_WAIT: reserve's listeners (SO_REUSEADDR) can share
// the port with it, RefuseTCP's socket cannot.
func TestStartOverOnTakenPort(t *testing.T) {
	port := timeWaitPort(t)
	// The port defeats a single start: reserve's sockets take it, and then
	// RefuseTCP's cannot.
	var reserveErr error
	at := func() (*sockets, error) {
		k, err := reserveAt(port)
		reserveErr = err
		return k, err
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := startServerOnce(Options{H1: true}, []Fault{RefuseTCP(IPv6)}, at)
		if reserveErr != nil {
			t.Skipf("cannot reserve port %d again: %v", port, reserveErr)
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if time.Now().After(deadline) {
			t.Skipf("RefuseTCP could bind [::1]:%d: no TIME_WAIT left there", port)
		}
	}

	calls := 0
	s, err := startServer(Options{H1: true}, []Fault{RefuseTCP(IPv6)}, func() (*sockets, error) {
		calls++
		if calls == 1 {
			return at()
		}
		return reserve()
	})
	if err != nil {
		t.Fatalf("startServer did not start over on a new port: %v", err)
	}
	defer s.Close()
	if calls != 2 || s.Port() == port {
		t.Errorf("reserved %d times, port %d (the taken one is %d); want a second reservation and another port", calls, s.Port(), port)
	}
	if c, err := net.Dial("tcp6", s.Addr(IPv6)); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial %s: %v, want connection refused", s.Addr(IPv6), err)
	}
}

// timeWaitPort returns a port on which a server on [::1] accepted a
// connection and closed it first, so that the connection stays in
// TIME_WAIT there for a minute.
func timeWaitPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			err = c.Close() // the server closes first
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp6", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c) // until the server's FIN
	c.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// reserveAt reserves port as reserve does: TCP and UDP on both loopback
// families.
func reserveAt(port int) (*sockets, error) {
	k := &sockets{port: port}
	for i, fam := range families {
		addr := net.JoinHostPort(fam.host(), strconv.Itoa(port))
		l, err := net.Listen("tcp"+strconv.Itoa(int(fam)), addr)
		if err != nil {
			k.closeRest()
			return nil, err
		}
		k.l[i] = l
		pc, err := net.ListenPacket("udp"+strconv.Itoa(int(fam)), addr)
		if err != nil {
			k.closeRest()
			return nil, err
		}
		k.u[i] = pc
	}
	return k, nil
}
