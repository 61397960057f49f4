package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// TestSlowTLS: every server write waits d, so the TLS handshake takes at
// least d; the server still answers, and its Close is not slowed down.
func TestSlowTLS(t *testing.T) {
	t.Parallel()
	const d = 200 * time.Millisecond
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartSlowTLS(l, conf, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}), d)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	start := time.Now()
	c, err := tls.Dial("tcp", l.Addr().String(), ca.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("TLS handshake took %v, want at least %v", took, d)
	}
	c.Close()

	tr := &http.Transport{TLSClientConfig: ca.ClientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Errorf("body %q, want HTTP/2.0", b)
	}
	start = time.Now()
	if err := srv.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	// The server wrote close_notify alerts: without the delay.
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
}

// udpExchange sends n datagrams through addr in a burst and returns how
// many came back, each in the order sent, until none came for wait.
func udpExchange(t *testing.T, addr string, n int, wait time.Duration) int {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := fmt.Fprintf(c, "datagram %d", i); err != nil {
			t.Fatal(err)
		}
	}
	got, last := 0, -1
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		k, err := c.Read(buf)
		if err != nil {
			return got
		}
		var i int
		if _, err := fmt.Sscanf(string(buf[:k]), "datagram %d", &i); err != nil || i <= last {
			t.Fatalf("got %q back after datagram %d", buf[:k], last)
		}
		got, last = got+1, i
	}
}

// TestDropUDP: every third datagram is dropped in each direction: of 30
// sent, 20 reach the echo server and 14 of its 20 answers come back.
func TestDropUDP(t *testing.T) {
	t.Parallel()
	echo := latencyUDPEcho(t, "127.0.0.1")
	p, err := DropUDP("127.0.0.1:0", echo, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := udpExchange(t, p.Addr().String(), 30, 300*time.Millisecond); got != 14 {
		t.Errorf("%d of 30 came back, want 14", got)
	}
	if n := p.Dropped(); n != 16 {
		t.Errorf("Dropped() = %d, want 16", n)
	}
	closeProxy(t, p.Proxy)
	if _, err := DropUDP("127.0.0.1:0", echo, 0); err == nil {
		t.Error("DropUDP with n=0 did not fail")
	}
}

// TestImpairJitter: through TCP and UDP proxies with a one-way delay and
// jitter, every round trip costs between twice the delay and twice the
// delay plus jitter, and what is sent arrives in order.
func TestImpairJitter(t *testing.T) {
	const delay, jitter = 20 * time.Millisecond, 30 * time.Millisecond
	check := func(t *testing.T, rtt time.Duration) {
		t.Helper()
		if rtt < 2*delay || rtt > 2*(delay+jitter)+latencySlack {
			t.Errorf("round trip %v, want %v to %v", rtt, 2*delay, 2*(delay+jitter))
		}
	}
	t.Run("tcp", func(t *testing.T) {
		echo, _ := latencyTCPEcho(t, "127.0.0.1")
		p, err := LatencyJitterTCP("127.0.0.1:0", echo, delay, jitter)
		if err != nil {
			t.Fatal(err)
		}
		defer closeProxy(t, p.Proxy)
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		roundTrip(t, c, []byte("handshake")) // includes the simulated TCP handshake
		var seen [2]bool                     // some short and some long round trips
		for i := range 10 {
			rtt := roundTrip(t, c, []byte(fmt.Sprintf("message %d", i)))
			check(t, rtt)
			seen[min(int((rtt-2*delay)/jitter), 1)] = true
		}
		if !seen[0] || !seen[1] {
			t.Errorf("no jitter seen: %v", seen)
		}
		// Many writes in a row come back in order whatever each one drew.
		var want strings.Builder
		for i := range 50 {
			msg := fmt.Sprintf("[%d]", i)
			want.WriteString(msg)
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		got := make([]byte, want.Len())
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Errorf("reordered: %q", got)
		}
	})
	t.Run("udp", func(t *testing.T) {
		echo := latencyUDPEcho(t, "127.0.0.1")
		p, err := LatencyJitterUDP("127.0.0.1:0", echo, delay, jitter)
		if err != nil {
			t.Fatal(err)
		}
		defer closeProxy(t, p.Proxy)
		c, err := net.Dial("udp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		for i := range 10 {
			start := time.Now()
			c.Write([]byte{byte(i)})
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("datagram %d: %v %v", i, buf[:n], err)
			}
			check(t, time.Since(start))
		}
		// A burst comes back in order.
		for i := range 20 {
			c.Write([]byte{byte(i)})
		}
		for i := range 20 {
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("burst datagram %d: %v %v", i, buf[:n], err)
			}
		}
	})
	t.Run("rejects", func(t *testing.T) {
		if _, err := ImpairTCP("127.0.0.1:0", "127.0.0.1:1", Impairment{DropEvery: 2}); err == nil {
			t.Error("ImpairTCP accepted DropEvery")
		}
		if _, err := ImpairUDP("127.0.0.1:0", "127.0.0.1:1", Impairment{Jitter: -1}); err == nil {
			t.Error("ImpairUDP accepted a negative jitter")
		}
		if _, err := ImpairUDP("192.0.2.1:0", "127.0.0.1:1", Impairment{}); err == nil {
			t.Error("ImpairUDP listened on a non-loopback address")
		}
	})
}

// startH2Fault starts an H2FaultServer on 127.0.0.1, with an HTTP/1.1
// handler that answers "h1".
func startH2Fault(t *testing.T, ca *CA, fault H2Fault) *H2FaultServer {
	t.Helper()
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartH2Fault(l, conf, fault, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "h1")
	}))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// TestH2Fault: an h2 client reads the faulty first frame; an HTTP/1.1
// client is served; the server sees the connections closed.
func TestH2Fault(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	for _, fault := range []H2Fault{H2CloseAfterSettings, H2SettingsBadLength, H2SettingsTooLarge} {
		t.Run(fault.String(), func(t *testing.T) {
			t.Parallel()
			s := startH2Fault(t, ca, fault)
			p := newH2Peer(t, ca, s.Addr().String())
			f, err := p.fr.ReadFrame()
			switch fault {
			case H2CloseAfterSettings:
				sf, ok := f.(*http2.SettingsFrame)
				if err != nil || !ok {
					t.Fatalf("first frame %v, %v: want SETTINGS", f, err)
				}
				if v, ok := sf.Value(http2.SettingEnableConnectProtocol); !ok || v != 1 {
					t.Errorf("SETTINGS without extended CONNECT: %v", sf)
				}
				if f, err := p.fr.ReadFrame(); !errors.Is(err, io.EOF) {
					t.Errorf("after SETTINGS: %v, %v, want EOF", f, err)
				}
			case H2SettingsBadLength:
				var ce http2.ConnectionError
				if !errors.As(err, &ce) || http2.ErrCode(ce) != http2.ErrCodeFrameSize {
					t.Errorf("first frame %v, %v: want FRAME_SIZE_ERROR", f, err)
				}
			case H2SettingsTooLarge:
				sf, ok := f.(*http2.SettingsFrame)
				if err != nil || !ok || sf.Header().Length != H2SettingsTooLargeLen {
					t.Fatalf("first frame %v, %v: want SETTINGS of %d bytes", f, err, H2SettingsTooLargeLen)
				}
			}
			p.c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := s.WaitOpen(ctx, "h2", 0); err != nil {
				t.Error(err)
			}

			tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "h1" || s.Accepted("http/1.1") != 1 {
				t.Errorf("HTTP/1.1: %q, %d connections", b, s.Accepted("http/1.1"))
			}
		})
	}
	if _, err := StartH2Fault(nil, nil, H2CloseAfterSettings, nil); err == nil {
		t.Error("StartH2Fault without a listener did not fail")
	}
}

// TestH2FaultNoHandler: without a handler only h2 is offered.
func TestH2FaultNoHandler(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartH2Fault(l, conf, H2SettingsBadLength, nil)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer s.Close()
	// Go's TLS server accepts a client that offers only http/1.1 without
	// ALPN; the server then closes the connection.
	cc := ca.ClientConfig()
	cc.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", s.Addr().String(), cc)
	if err != nil {
		return // refused in the handshake: fine too
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("HTTP/1.1 client read %d bytes, %v, want EOF", n, err)
	}
}

// TestH3Fault: quic-go's HTTP/3 client meets each fault: the connection
// closed after valid SETTINGS, or closed by the client itself on bad ones.
func TestH3Fault(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	for _, tc := range []struct {
		fault  H3Fault
		codes  []http3.ErrCode
		remote bool
	}{
		{H3CloseAfterSettings, []http3.ErrCode{http3.ErrCodeNoError}, true},
		// quic-go reads a SETTINGS payload cut short as the end of the
		// control stream.
		{H3SettingsMalformed, []http3.ErrCode{http3.ErrCodeFrameError, http3.ErrCodeClosedCriticalStream}, false},
		{H3SettingsDuplicate, []http3.ErrCode{http3.ErrCodeFrameError, http3.ErrCodeSettingsError}, false},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			conf, err := ca.ServerConfig("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			s, err := StartH3Fault(pc, conf, tc.fault)
			if err != nil {
				pc.Close()
				t.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			tr := &quic.Transport{Conn: udp}
			defer func() { tr.Close(); udp.Close() }()
			cconf := ca.ClientConfig()
			cconf.NextProtos = []string{http3.NextProtoH3}
			cconf.ServerName = "127.0.0.1"
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			qc, err := tr.Dial(ctx, s.Addr(), cconf, quicServerConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer qc.CloseWithError(0, "")
			cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qc)
			if tc.fault == H3CloseAfterSettings {
				select {
				case <-cc.ReceivedSettings():
					if s := cc.Settings(); !s.EnableExtendedConnect || !s.EnableDatagrams || s.Other[h3SettingWTEnabled] != 1 {
						t.Errorf("SETTINGS %+v", s)
					}
				case <-ctx.Done():
					t.Fatal("no SETTINGS")
				}
				// A request gets no answer: the connection closes.
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1/", nil)
				if resp, err := cc.RoundTrip(req); err == nil {
					resp.Body.Close()
					t.Errorf("request answered %d", resp.StatusCode)
				}
			}
			select {
			case <-qc.Context().Done():
			case <-ctx.Done():
				t.Fatal("the connection stayed open")
			}
			var ae *quic.ApplicationError
			if err := context.Cause(qc.Context()); !errors.As(err, &ae) || !slices.Contains(tc.codes, http3.ErrCode(ae.ErrorCode)) || ae.Remote != tc.remote {
				t.Errorf("connection closed with %v, want one of %v (remote %v)", err, tc.codes, tc.remote)
			}
			if err := s.WaitOpen(ctx, 0); err != nil {
				t.Error(err)
			}
		})
	}
}
