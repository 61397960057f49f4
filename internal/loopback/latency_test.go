package loopback

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// latencySlack is how much later than the delay it models a proxied
// exchange may end: scheduling under -race, not a round trip. The tests that
// check it do not run in parallel, so that other tests (the stream below,
// TLS handshakes elsewhere in the package) do not starve the proxy.
const latencySlack = 60 * time.Millisecond

// latencyTCPEcho starts a TCP echo server on host (a loopback literal) that
// echoes until the client half-closes, then half-closes too. Each accept
// time is sent on accepted. The server stops at the end of the test.
func latencyTCPEcho(t *testing.T, host string) (addr string, accepted <-chan time.Time) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan time.Time, 16)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case acc <- time.Now():
			default:
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), acc
}

// latencyUDPEcho starts a UDP echo server on host until the end of the test.
func latencyUDPEcho(t *testing.T, host string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				c.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c.LocalAddr().String()
}

func closeProxy(t *testing.T, p *Proxy) {
	t.Helper()
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// roundTrip writes msg to c and reads its echo, and returns how long that
// took.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	return time.Since(start)
}

func checkDelay(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got < want || got > want+latencySlack {
		t.Errorf("%s took %v, want %v (up to %v more)", what, got, want, latencySlack)
	}
}

// TestLatencyTCPRoundTrips checks that the first exchange costs the TCP
// handshake's round trip too, that the server sees the connection when the
// handshake's last ACK would reach it, and that later exchanges cost one
// round trip each.
func TestLatencyTCPRoundTrips(t *testing.T) {
	const oneWay = 50 * time.Millisecond
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			upstream, accepted := latencyTCPEcho(t, host)
			p, err := LatencyTCP(net.JoinHostPort(host, "0"), upstream, oneWay)
			if err != nil {
				t.Fatal(err)
			}
			defer closeProxy(t, p)
			a := p.Addr().(*net.TCPAddr)
			if !a.IP.Equal(net.ParseIP(host)) || a.Port == 0 || p.Port() != a.Port {
				t.Fatalf("Addr() %v, Port() %d: want %s and the bound port", a, p.Port(), host)
			}

			start := time.Now()
			c, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, []byte("hello"))
			checkDelay(t, "connect and first exchange", time.Since(start), 4*oneWay)
			checkDelay(t, "upstream connect", (<-accepted).Sub(start), 3*oneWay)
			for i := range 3 {
				checkDelay(t, "round trip "+strconv.Itoa(i), roundTrip(t, c, []byte("ping"+strconv.Itoa(i))), 2*oneWay)
			}
			if n := p.Count(); n != 1 {
				t.Errorf("Count() = %d, want 1", n)
			}
		})
	}
}

// TestLatencyTCPStream sends a large payload through the proxy and back and
// checks that it arrives intact, in order, with both half-closes passed on,
// and at loopback speed: a proxy that held one chunk per delay would need
// hundreds of delays.
func TestLatencyTCPStream(t *testing.T) {
	t.Parallel()
	const oneWay = 25 * time.Millisecond
	upstream, _ := latencyTCPEcho(t, "127.0.0.1")
	p, err := LatencyTCP("127.0.0.1:0", upstream, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProxy(t, p)
	payload := make([]byte, 4<<20)
	rand.Read(payload)

	start := time.Now()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c) // ends with the echo server's FIN
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent, in order", len(got), len(payload))
	}
	if elapsed < 4*oneWay || elapsed > 2*time.Second {
		t.Errorf("4 MiB echo took %v, want at least %v and well under 2s", elapsed, 4*oneWay)
	}
}

// TestLatencyTCPUpstreamRefused checks that a client of a proxy whose
// upstream refuses sees its connection closed once the proxy tried.
func TestLatencyTCPUpstreamRefused(t *testing.T) {
	t.Parallel()
	const oneWay = 20 * time.Millisecond
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := l.Addr().String()
	l.Close()
	p, err := LatencyTCP("127.0.0.1:0", upstream, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProxy(t, p)
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("hello"))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
	}
	if d := time.Since(start); d < 3*oneWay {
		t.Errorf("closed after %v, before the proxy's connect at %v", d, 3*oneWay)
	}
}

// TestLatencyTCPClose checks that Close ends connections in every phase:
// one carrying data and one whose simulated handshake never ends.
func TestLatencyTCPClose(t *testing.T) {
	t.Parallel()
	upstream, _ := latencyTCPEcho(t, "127.0.0.1")
	p, err := LatencyTCP("127.0.0.1:0", upstream, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, []byte("hello"))

	slow, err := LatencyTCP("127.0.0.1:0", upstream, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := net.Dial("tcp", slow.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.Write([]byte("never delivered"))

	for _, tc := range []struct {
		p *Proxy
		c net.Conn
	}{{p, c}, {slow, sc}} {
		addr := tc.p.Addr().String()
		closeProxy(t, tc.p)
		tc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := tc.c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("read through %s after Close: %v, want the connection closed", addr, err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("dial %s after Close succeeded", addr)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestLatencyRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, upstream string }{
		{"0.0.0.0:0", "127.0.0.1:1"},
		{"192.0.2.1:0", "127.0.0.1:1"},
		{"localhost:0", "127.0.0.1:1"},
		{"127.0.0.1:0", "192.0.2.1:443"},
		{"127.0.0.1:0", "localhost:443"},
		{"127.0.0.1:0", "[::]:443"},
		{"127.0.0.1:0", "127.0.0.1:0"},
	} {
		if p, err := LatencyTCP(tc.listen, tc.upstream, time.Millisecond); err == nil {
			p.Close()
			t.Errorf("LatencyTCP(%q, %q) succeeded", tc.listen, tc.upstream)
		}
		if p, err := LatencyUDP(tc.listen, tc.upstream, time.Millisecond); err == nil {
			p.Close()
			t.Errorf("LatencyUDP(%q, %q) succeeded", tc.listen, tc.upstream)
		}
	}
	if p, err := LatencyTCP("127.0.0.1:0", "127.0.0.1:1", -time.Millisecond); err == nil {
		p.Close()
		t.Error("LatencyTCP with a negative delay succeeded")
	}
	if p, err := LatencyUDP("127.0.0.1:0", "127.0.0.1:1", -time.Millisecond); err == nil {
		p.Close()
		t.Error("LatencyUDP with a negative delay succeeded")
	}
}

// udpRoundTrip sends msg from c and reads its echo, and returns how long
// that took.
func udpRoundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("echo %q, want %q", buf[:n], msg)
	}
	return time.Since(start)
}

// TestLatencyUDPRoundTrips checks that every datagram costs the delay each
// way, that each client address has its own session, and that a burst is
// delayed as a whole, not datagram by datagram, and kept in order.
func TestLatencyUDPRoundTrips(t *testing.T) {
	const oneWay = 50 * time.Millisecond
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			p, err := LatencyUDP(net.JoinHostPort(host, "0"), latencyUDPEcho(t, host), oneWay)
			if err != nil {
				t.Fatal(err)
			}
			defer closeProxy(t, p)
			a := p.Addr().(*net.UDPAddr)
			if !a.IP.Equal(net.ParseIP(host)) || a.Port == 0 || p.Port() != a.Port {
				t.Fatalf("Addr() %v, Port() %d: want %s and the bound port", a, p.Port(), host)
			}
			c1, err := net.Dial("udp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := net.Dial("udp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			for i := range 2 {
				checkDelay(t, "client 1 round trip", udpRoundTrip(t, c1, []byte("one"+strconv.Itoa(i))), 2*oneWay)
				checkDelay(t, "client 2 round trip", udpRoundTrip(t, c2, []byte("two"+strconv.Itoa(i))), 2*oneWay)
			}
			if n := p.Count(); n != 2 {
				t.Errorf("Count() = %d, want one session per client", n)
			}

			// A burst small enough for default socket buffers: UDP drops
			// what a full receive buffer cannot take.
			const burst = 50
			start := time.Now()
			for i := range burst {
				msg := binary.BigEndian.AppendUint32(bytes.Repeat([]byte{'x'}, 100), uint32(i))
				if _, err := c1.Write(msg); err != nil {
					t.Fatal(err)
				}
			}
			c1.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 2048)
			for i := range burst {
				n, err := c1.Read(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if got := binary.BigEndian.Uint32(buf[n-4 : n]); got != uint32(i) {
					t.Fatalf("datagram %d arrived as number %d", got, i)
				}
			}
			checkDelay(t, "a burst of datagrams", time.Since(start), 2*oneWay)
		})
	}
}

// TestLatencyUDPClose checks that Close ends a proxy with datagrams in
// flight and sessions open.
func TestLatencyUDPClose(t *testing.T) {
	t.Parallel()
	p, err := LatencyUDP("127.0.0.1:0", latencyUDPEcho(t, "127.0.0.1"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 10 {
		c.Write([]byte("queued for an hour"))
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.Count() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p.Count() != 1 {
		t.Fatalf("Count() = %d, want the session open", p.Count())
	}
	closeProxy(t, p)
}
