// Package integration holds end-to-end tests of the dialer against real
// servers on loopback: a DNS server answering per test, HTTP/1.1 WebSocket
// servers on 127.0.0.1 and [::1], and faults (blackholed families, refused
// ports). Nothing here leaves the machine.
package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// TestMain re-executes the test binary with GODEBUG=http2xconnect=1, which
// net/http's HTTP/2 server needs in its environment at start-up to offer
// RFC 8441 extended CONNECT, then checks for leaked goroutines.
func TestMain(m *testing.M) {
	if code, ok := testkit.EnsureXConnect(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// host is the name the tests dial; only the test DNS server knows it.
const host = "ws.example.test"

// env is one test's world: a DNS server, a CA, and servers or faults on
// both loopback families, TCP and UDP, all on the same port.
type env struct {
	t    testing.TB
	dns  *dnstest.Server
	ca   *testkit.CA
	port int
	// v4 and v6 count the TCP connections each family's server accepted;
	// nil when that family has no counted TCP server.
	v4, v6 *testkit.Counter
	// h2fake4 and h2fake6 count the TCP connections of the h2NoExt, wtH2,
	// wtH2D13 and h2NoWT families.
	h2fake4, h2fake6 *testkit.H2FakeServer
	// h3v4 and h3v6 are the HTTP/3 servers of the h3, h3NoExt, wt and
	// h3NoWT modes; wt4 and wt6 the WebTransport servers of the wt mode.
	h3v4, h3v6 *testkit.H3Server
	wt4, wt6   *testkit.WTServer
	// wth2v4 and wth2v6 are the HTTP/2 servers of the wtH2, wtH2D13
	// and h2NoWT families.
	wth2v4, wth2v6 *testkit.WTH2Server

	udp4, udp6 net.PacketConn // reserved UDP sockets on port, until used
}

// family says what listens on one family's TCP address.
type family int

const (
	serve     family = iota // WebSocket echo over HTTP/1.1 and HTTP/2 with extended CONNECT (TLS), HTTP/1.1 (plain)
	serveH1                 // WebSocket echo over HTTP/1.1 only
	h2NoExt                 // HTTP/2 whose SETTINGS lack extended CONNECT; HTTP/1.1 echo on the same port
	wtH2                    // WebTransport (and WebSocket) echo over HTTP/2 (TLS), HTTP/1.1 echo
	wtH2D13                 // wtH2 speaking wt2.Draft13 (draft-13's SETTINGS, @fails-components' wire)
	h2NoWT                  // HTTP/2 with extended CONNECT but without WebTransport (TLS), HTTP/1.1 echo
	serveMTLS               // serve, requiring a client certificate from the test CA (see clientCN)
	blackhole               // a full accept queue: SYNs are dropped
	closed                  // nothing: connections are refused
)

// udpMode says what listens on one family's UDP address.
type udpMode int

const (
	noUDP        udpMode = iota // nothing
	h3                          // WebSocket echo over HTTP/3
	h3NoExt                     // HTTP/3 whose SETTINGS lack extended CONNECT
	udpBlackhole                // reads and drops every datagram
	wt                          // WebTransport echo (and WebSocket) over HTTP/3
	h3NoWT                      // HTTP/3 with extended CONNECT but without WebTransport
)

// newEnv starts the TCP servers. tls selects wss:// servers. UDP servers
// are added with quic.
func newEnv(t testing.TB, tls bool, v4, v6 family) *env {
	t.Helper()
	checkFDs(t)
	e := &env{t: t, dns: dnstest.Start(t)}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	l4, l6 := e.listen()
	e.v4, e.h2fake4, e.wth2v4 = e.setup(l4, v4, fmt.Sprintf("127.0.0.1:%d", e.port), tls)
	e.v6, e.h2fake6, e.wth2v6 = e.setup(l6, v6, fmt.Sprintf("[::1]:%d", e.port), tls)
	t.Cleanup(func() {
		for _, c := range []net.PacketConn{e.udp4, e.udp6} {
			if c != nil {
				c.Close()
			}
		}
	})
	return e
}

// listen reserves one port on TCP and UDP of both families.
func (e *env) listen() (l4, l6 net.Listener) {
	for range 20 {
		l4, l6, port, err := testkit.ListenPair()
		if err != nil {
			e.t.Fatal(err)
		}
		u4, err4 := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		u6, err6 := net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port))
		if err4 == nil && err6 == nil {
			e.port, e.udp4, e.udp6 = port, u4, u6
			return l4, l6
		}
		for _, c := range []io.Closer{l4, l6, u4, u6} {
			if c != nil {
				c.Close()
			}
		}
	}
	e.t.Fatal("no port free on TCP and UDP of both families")
	return nil, nil
}

func (e *env) serverTLS() *tls.Config {
	conf, err := e.ca.ServerConfig(host, otherHost, "*.example.test", "localhost", "127.0.0.1", "::1")
	if err != nil {
		e.t.Fatal(err)
	}
	return conf
}

func (e *env) setup(l net.Listener, f family, addr string, secure bool) (*testkit.Counter, *testkit.H2FakeServer, *testkit.WTH2Server) {
	t := e.t
	switch f {
	case serve, serveH1, serveMTLS:
		c := testkit.NewCounter(l)
		srv := &http.Server{Handler: handler()}
		if secure {
			srv.TLSConfig = e.serverTLS()
		}
		if f == serveMTLS {
			srv.TLSConfig.ClientAuth, srv.TLSConfig.ClientCAs = tls.RequireAndVerifyClientCert, e.ca.Pool()
			srv.Handler = clientCN(srv.Handler)
		}
		if f == serveH1 {
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
		}
		hs, err := testkit.StartServer(c, srv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hs.Close() })
		return c, nil, nil
	case h2NoExt:
		fs, err := testkit.StartH2NoExtendedConnect(l, e.serverTLS(), handler())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close() })
		return nil, fs, nil
	case wtH2, wtH2D13, h2NoWT:
		start := testkit.StartWebTransportH2
		switch f {
		case h2NoWT:
			start = testkit.StartH2NoWebTransport
		case wtH2D13:
			start = testkit.StartWebTransportH2Draft13
		}
		s, err := start(l, e.serverTLS())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return nil, s.H2FakeServer, s
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
	return nil, nil, nil
}

// quic starts what listens on UDP, on the same port as TCP.
func (e *env) quic(v4, v6 udpMode) {
	e.h3v4, e.wt4 = e.setupUDP(&e.udp4, v4, fmt.Sprintf("127.0.0.1:%d", e.port))
	e.h3v6, e.wt6 = e.setupUDP(&e.udp6, v6, fmt.Sprintf("[::1]:%d", e.port))
}

func (e *env) setupUDP(pc *net.PacketConn, m udpMode, addr string) (*testkit.H3Server, *testkit.WTServer) {
	t := e.t
	conn := *pc
	*pc = nil
	switch m {
	case wt:
		s, err := testkit.StartWebTransport(conn, e.serverTLS())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.H3Server, s
	case h3NoWT:
		s, err := testkit.StartH3NoWebTransport(conn, e.serverTLS())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, nil
	case h3, h3NoExt:
		var s *testkit.H3Server
		var err error
		if m == h3 {
			s, err = testkit.StartH3(conn, e.serverTLS(), handler())
		} else {
			s, err = testkit.StartH3NoExtendedConnect(conn, e.serverTLS())
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, nil
	case udpBlackhole:
		conn.Close()
		f, err := testkit.UDPBlackhole(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
	default:
		conn.Close()
	}
	return nil, nil
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
			t.Errorf("%d file descriptors open after the test, %d before: %s", n, before, describeFDs())
		}
	})
}

// describeFDs lists the open descriptors and what they point to.
func describeFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+target)
	}
	return strings.Join(out, " ")
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

func itoa(n int) string { return strconv.Itoa(n) }
