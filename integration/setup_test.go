// Package integration holds end-to-end tests of the dialer against real
// servers on loopback: a DNS server answering per test, HTTP/1.1 WebSocket
// servers on 127.0.0.1 and [::1], and faults (blackholed families, refused
// ports). Nothing here leaves the machine.
package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// host is the name the tests dial; only the test DNS server knows it.
const host = "ws.example.test"

// env is one test's world: a DNS server, a CA and WebSocket echo servers on
// both loopback families on the same port.
type env struct {
	t    testing.TB
	dns  *dnstest.Server
	ca   *testkit.CA
	port int
	// v4 and v6 count the connections each family's server accepted; nil
	// when that family has no server.
	v4, v6 *testkit.Counter
}

// family says what listens on one family's address.
type family int

const (
	serve     family = iota // a WebSocket echo server
	blackhole               // a full accept queue: SYNs are dropped
	closed                  // nothing: connections are refused
)

// newEnv starts the servers. tls selects wss:// servers.
func newEnv(t testing.TB, tls bool, v4, v6 family) *env {
	t.Helper()
	checkFDs(t)
	e := &env{t: t, dns: dnstest.Start(t)}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	l4, l6, port, err := testkit.ListenPair()
	if err != nil {
		t.Fatal(err)
	}
	e.port = port
	e.v4 = e.setup(l4, v4, fmt.Sprintf("127.0.0.1:%d", port), tls)
	e.v6 = e.setup(l6, v6, fmt.Sprintf("[::1]:%d", port), tls)
	return e
}

func (e *env) setup(l net.Listener, f family, addr string, secure bool) *testkit.Counter {
	t := e.t
	switch f {
	case serve:
		c := testkit.NewCounter(l)
		var conf *tls.Config
		if secure {
			sc, err := e.ca.ServerConfig(host, "localhost", "127.0.0.1", "::1")
			if err != nil {
				t.Fatal(err)
			}
			conf = sc
		}
		srv, err := testkit.StartHTTP(c, conf, testkit.EchoHandler())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return c
	case blackhole:
		l.Close()
		f, err := testkit.Blackhole(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
	default:
		l.Close()
	}
	return nil
}

// url returns the URL of the echo endpoint by name.
func (e *env) url(secure bool) string {
	scheme := "ws"
	if secure {
		scheme = "wss"
	}
	return fmt.Sprintf("%s://%s:%d/echo", scheme, host, e.port)
}

// dialer returns a Dialer that asks only the test DNS server, trusts only
// the test CA and ignores /etc/hosts.
func (e *env) dialer(opts ...dialer.Option) *dialer.Dialer {
	base := []dialer.Option{
		dialer.WithNameservers(e.dns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(e.ca.ClientConfig()),
	}
	return dialer.New(append(base, opts...)...)
}

// ctx returns a context bounded well above what any test should need.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// checkFDs fails the test if it ends with more open file descriptors than
// it started with (sockets outliving the test). Call it before starting
// servers so that its cleanup runs after theirs.
func checkFDs(t testing.TB) {
	before := countFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		n := countFDs(t)
		for n > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			n = countFDs(t)
		}
		if n > before {
			t.Errorf("%d file descriptors open after the test, %d before", n, before)
		}
	})
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

func itoa(n int) string { return strconv.Itoa(n) }
