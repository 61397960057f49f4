package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const dialTimeout = 300 * time.Millisecond

// expectTimeout dials addr with a short timeout and fails unless the connect
// hangs until that timeout (no refusal, no success).
func expectTimeout(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	c, err := (&net.Dialer{Timeout: dialTimeout}).Dial("tcp", addr)
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s: connected, want a timeout", addr)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: refused, want a timeout: %v", addr, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial %s: %v, want a timeout", addr, err)
	}
	if elapsed < dialTimeout-50*time.Millisecond {
		t.Fatalf("dial %s failed after %v, before the %v timeout: %v", addr, elapsed, dialTimeout, err)
	}
}

func TestBlackholeTimesOut(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			f, err := Blackhole(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Port() == 0 {
				t.Fatalf("Port() = 0, want the bound port")
			}
			expectTimeout(t, f.Addr().String())
			if n := f.Count(); n != 0 {
				t.Errorf("Count() = %d, want 0", n)
			}
		})
	}
}

// TestBlackholeBesideServer blackholes one family on the port where the
// other family serves.
func TestBlackholeBesideServer(t *testing.T) {
	t.Parallel()
	for _, dead := range []string{"::1", "127.0.0.1"} {
		t.Run(dead, func(t *testing.T) {
			t.Parallel()
			v4, v6, port, err := ListenPair()
			if err != nil {
				t.Fatal(err)
			}
			live, liveHost := v4, "127.0.0.1"
			if dead == "127.0.0.1" {
				live, liveHost = v6, "::1"
				v4.Close()
			} else {
				v6.Close()
			}
			defer live.Close()
			f, err := Blackhole(net.JoinHostPort(dead, strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			c, err := (&net.Dialer{Timeout: dialTimeout}).Dial("tcp", net.JoinHostPort(liveHost, strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("dial live family: %v", err)
			}
			c.Close()
			expectTimeout(t, net.JoinHostPort(dead, strconv.Itoa(port)))
		})
	}
}

func TestBlackholeRejectsNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"192.0.2.1:0", "localhost:0", "[::]:0"} {
		if f, err := Blackhole(addr); err == nil {
			f.Close()
			t.Errorf("Blackhole(%q) succeeded, want an error", addr)
		}
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			f, err := Reset(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			start := time.Now()
			c, err := net.DialTimeout("tcp", f.Addr().String(), time.Second)
			if err == nil {
				// The reset came after connect returned: the first read sees it.
				defer c.Close()
				c.SetReadDeadline(start.Add(time.Second))
				_, err = c.Read(make([]byte, 1))
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Fatalf("dial and read: %v, want a reset or EOF", err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("reset took %v", d)
			}
			if n := f.Count(); n != 1 {
				t.Errorf("Count() = %d, want 1", n)
			}
		})
	}
}

// TestRefuse: a connect to a refusing port fails at once with
// ECONNREFUSED, and the port stays taken until Close.
func TestRefuse(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			f, err := Refuse(addr)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = net.DialTimeout("tcp", f.Addr().String(), time.Second)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial: %v, want ECONNREFUSED", err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("refusal took %v", d)
			}
			if l, err := net.Listen("tcp", f.Addr().String()); err == nil {
				l.Close()
				t.Errorf("listening on the refusing port %s succeeded", f.Addr())
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", f.Addr().String())
			if err != nil {
				t.Fatalf("port not free after Close: %v", err)
			}
			l.Close()
		})
	}
}

func TestTLSStall(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	f, err := TLSStall("[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", f.Addr().String())
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("TLS handshake completed, want a stall")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial: %v, want the client's deadline", err)
	}
	if elapsed < dialTimeout-50*time.Millisecond {
		t.Fatalf("handshake failed after %v, before the deadline: %v", elapsed, err)
	}
	if n := f.Count(); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
}

func TestUDPBlackhole(t *testing.T) {
	t.Parallel()
	f, err := UDPBlackhole("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.Dial("udp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3
	for range n {
		if _, err := c.Write([]byte("quic initial")); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if got := f.Count(); got != n {
		t.Fatalf("Count() = %d, want %d", got, n)
	}
}
