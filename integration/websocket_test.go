package integration

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
)

// echo sends msg and checks that the same message comes back.
func echo(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	gotType, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotType != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %v %q, want %v %q", gotType, trunc(got), typ, trunc(msg))
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// closeConn runs the close handshake and checks that it completed.
func closeConn(t *testing.T, c *websocket.Conn) {
	t.Helper()
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestEcho dials by name through the test DNS server with only A, only
// AAAA and both records, over ws://, wss:// to an HTTP/1.1-only server and
// wss:// to a server with HTTP/2 extended CONNECT, and echoes messages.
func TestEcho(t *testing.T) {
	for _, carrier := range []struct {
		name   string
		secure bool
		server family
		major  int
	}{
		{"ws", false, serve, 1},
		{"wss-h1", true, serveH1, 1},
		{"wss-h2", true, serve, 2},
	} {
		for _, tc := range []struct {
			name       string
			a, aaaa    bool
			wantFamily string
		}{
			{"A only", true, false, "IPv4"},
			{"AAAA only", false, true, "IPv6"},
			{"both", true, true, "IPv6"},
		} {
			t.Run(carrier.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, carrier.secure, carrier.server, carrier.server)
				if tc.a {
					e.dns.A(host, "127.0.0.1")
				}
				if tc.aaaa {
					e.dns.AAAA(host, "::1")
				}
				var rep *dialer.Report
				d := e.dialer(dialer.WithReport(func(r *dialer.Report) { rep = r }))
				defer d.CloseIdleConnections()
				c, resp, err := d.DialWebSocket(ctx(t), e.url(carrier.secure))
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				wantStatus := http.StatusSwitchingProtocols
				if carrier.major > 1 {
					wantStatus = http.StatusOK
				}
				if resp.StatusCode != wantStatus || resp.ProtoMajor != carrier.major {
					t.Errorf("response %s HTTP/%d, want %d over HTTP/%d", resp.Status, resp.ProtoMajor, wantStatus, carrier.major)
				}
				echo(t, c, websocket.MessageText, []byte("hello"))
				echo(t, c, websocket.MessageBinary, bytes.Repeat([]byte{0, 1, 2}, 1000))
				closeConn(t, c)
				if rep == nil || rep.Winner < 0 {
					t.Fatalf("no winner in report: %+v", rep)
				}
				if got := rep.Attempts[rep.Winner].Family; got != tc.wantFamily {
					t.Errorf("winner family %s, want %s\n%s", got, tc.wantFamily, rep)
				}
				if carrier.secure && e.dns.Count(host, dnstest.TypeHTTPS) != 1 {
					t.Errorf("HTTPS queried %d times, want 1", e.dns.Count(host, dnstest.TypeHTTPS))
				}
				if !carrier.secure && e.dns.Count(host, dnstest.TypeHTTPS) != 0 {
					t.Errorf("HTTPS queried for ws://")
				}
			})
		}
	}
}

// TestIPv6Blackholed: [::1] drops SYNs while 127.0.0.1 serves on the same
// port. The dial succeeds over IPv4, whose attempt starts one attempt delay
// after the IPv6 attempt, and the IPv6 attempt is cancelled.
func TestIPv6Blackholed(t *testing.T) {
	e := newEnv(t, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	var rep *dialer.Report
	d := e.dialer(dialer.WithReport(func(r *dialer.Report) { rep = r }))
	start := time.Now()
	c, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	defer c.CloseNow()
	echo(t, c, websocket.MessageText, []byte("over v4"))
	closeConn(t, c)

	if len(rep.Attempts) != 2 {
		t.Fatalf("want 2 attempts\n%s", rep)
	}
	v6, v4 := rep.Attempts[0], rep.Attempts[1]
	if v6.Family != "IPv6" || v6.Outcome != "lost" || v4.Family != "IPv4" || rep.Winner != 1 {
		t.Fatalf("want IPv6 lost, IPv4 won\n%s", rep)
	}
	gap := v4.Start - v6.Start
	if gap < 240*time.Millisecond || gap > 450*time.Millisecond {
		t.Errorf("IPv4 attempt started %v after IPv6, want about 250ms\n%s", gap, rep)
	}
	if elapsed > 1500*time.Millisecond {
		t.Errorf("dial took %v", elapsed)
	}
}

// TestSlowAAAA: the AAAA answer takes a second. The dial goes ahead with
// IPv4 after the resolution delay instead of waiting for it.
func TestSlowAAAA(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	e.dns.Set(host, dnstest.TypeAAAA, dnstest.Delay(time.Second, dnstest.Default()))
	var rep *dialer.Report
	d := e.dialer(dialer.WithReport(func(r *dialer.Report) { rep = r }))
	start := time.Now()
	c, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	defer c.CloseNow()
	closeConn(t, c)
	if elapsed > 700*time.Millisecond {
		t.Errorf("dial took %v: it waited for the slow AAAA answer\n%s", elapsed, rep)
	}
	first := rep.Attempts[0]
	if first.Family != "IPv4" || first.Start > 300*time.Millisecond {
		t.Errorf("first attempt %s at %v, want IPv4 right after the 50ms resolution delay\n%s", first.Family, first.Start, rep)
	}
}

// TestAllAttemptsFail: both addresses refuse. The error lists each
// attempted address and matches the underlying network errors.
func TestAllAttemptsFail(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	_, resp, err := e.dialer().DialWebSocket(ctx(t), e.url(true))
	if err == nil || resp != nil {
		t.Fatalf("dial succeeded or returned a response: %v", err)
	}
	var de *dialer.DialError
	if !errors.As(err, &de) {
		t.Fatalf("error %T is not a *DialError: %v", err, err)
	}
	if de.Stage != "connect" || len(de.Attempts) != 2 {
		t.Errorf("stage %q with %d attempts, want connect with 2: %v", de.Stage, len(de.Attempts), err)
	}
	for _, addr := range []string{"127.0.0.1:" + itoa(e.port), "[::1]:" + itoa(e.port)} {
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error does not name %s: %v", addr, err)
		}
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error does not say the connection was refused: %v", err)
	}
}

// TestNoAddress: every record type fails or is empty.
func TestNoAddress(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.dns.Set(host, dnstest.TypeAAAA, dnstest.ServFail())
	_, _, err := e.dialer().DialWebSocket(ctx(t), e.url(true))
	if !errors.Is(err, dialer.ErrNoAddress) {
		t.Fatalf("want ErrNoAddress, got %v", err)
	}
	if !strings.Contains(err.Error(), "SERVFAIL") || !strings.Contains(err.Error(), host) {
		t.Errorf("error does not explain the DNS failure: %v", err)
	}
}

// TestCancelHangingDial: both families blackholed; cancelling the context
// ends the dial promptly with the context's error.
func TestCancelHangingDial(t *testing.T) {
	e := newEnv(t, true, blackhole, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	c, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	timer := time.AfterFunc(400*time.Millisecond, func() { cancelled = time.Now(); cancel() })
	defer timer.Stop()
	_, _, err := e.dialer().DialWebSocket(c, e.url(true))
	returned := time.Now()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if lag := returned.Sub(cancelled); lag > 100*time.Millisecond {
		t.Errorf("dial returned %v after cancellation, want < 100ms", lag)
	}
	if !strings.Contains(err.Error(), "[::1]:"+itoa(e.port)) || !strings.Contains(err.Error(), "127.0.0.1:"+itoa(e.port)) {
		t.Errorf("error does not name the hanging attempts: %v", err)
	}
}

// TestDialTimeout: WithTimeout bounds a dial whose context has no deadline.
func TestDialTimeout(t *testing.T) {
	e := newEnv(t, true, blackhole, closed)
	e.dns.A(host, "127.0.0.1")
	start := time.Now()
	_, _, err := e.dialer(dialer.WithTimeout(300*time.Millisecond)).DialWebSocket(context.Background(), e.url(true))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dial took %v with a 300ms timeout", d)
	}
}

// TestRejected: a 403 answer gives ErrRejected and the response, whatever
// the HTTP version carrying the handshake.
func TestRejected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tcp   family
		udp   udpMode
		major int
	}{{"h1", serveH1, noUDP, 1}, {"h2", serve, noUDP, 2}, {"h3", serve, h3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			e.dns.HTTPS(host, "1 . alpn=h3,h2")
			d := e.dialer(dialer.WithHeader(http.Header{"X-Reject": {"1"}}))
			defer d.CloseIdleConnections()
			_, resp, err := d.DialWebSocket(ctx(t), e.url(true))
			if !errors.Is(err, dialer.ErrRejected) {
				t.Fatalf("want ErrRejected, got %v", err)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden || resp.ProtoMajor != tc.major {
				t.Fatalf("want the 403 response over HTTP/%d, got %v", tc.major, resp)
			}
			if !strings.Contains(err.Error(), "403") {
				t.Errorf("error does not name the status: %v", err)
			}
		})
	}
}

// TestOptions: subprotocols, extra headers, compression and the read limit
// reach the handshake and the connection over HTTP/1.1, HTTP/2 and HTTP/3.
func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tcp   family
		udp   udpMode
		major int
	}{{"h1", serveH1, noUDP, 1}, {"h2", serve, noUDP, 2}, {"h3", serve, h3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			e.dns.HTTPS(host, "1 . alpn=h3,h2")
			d := e.dialer(
				dialer.WithSubprotocols("nope", "chat"),
				dialer.WithHeader(http.Header{"X-Test": {"hi"}}),
				dialer.WithCompression(websocket.CompressionContextTakeover),
				dialer.WithReadLimit(1<<20),
			)
			defer d.CloseIdleConnections()
			c, resp, err := d.DialWebSocket(ctx(t), e.url(true))
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if resp.ProtoMajor != tc.major {
				t.Errorf("HTTP/%d, want HTTP/%d", resp.ProtoMajor, tc.major)
			}
			if c.Subprotocol() != "chat" {
				t.Errorf("subprotocol %q, want chat", c.Subprotocol())
			}
			if got := resp.Header.Get("X-Test"); got != "hi" {
				t.Errorf("X-Test echoed as %q, want hi", got)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Errorf("extensions %q, want permessage-deflate", ext)
			}
			// 512 KiB is above coder/websocket's 32 KiB default limit.
			echo(t, c, websocket.MessageBinary, bytes.Repeat([]byte("abcdefgh"), 64<<10))
			// Ping needs a concurrent reader: coder/websocket delivers the
			// pong from Read.
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rerr := make(chan error, 1)
			go func() { _, _, err := c.Read(pctx); rerr <- err }()
			if err := c.Ping(pctx); err != nil {
				t.Errorf("ping: %v", err)
			}
			closeConn(t, c)
			<-rerr
		})
	}
}

// TestBadURL: malformed URLs fail before any network activity.
func TestBadURL(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	for _, u := range []string{"ftp://x.test/", "wss://", "wss://x.test:0/", "wss://x.test:99999/", "wss://x.test/#frag", "::nope", "wss://./", "wss://a..b/", "ws://[::1%25lo]/"} {
		_, _, err := e.dialer().DialWebSocket(ctx(t), u)
		var de *dialer.DialError
		if !errors.As(err, &de) || de.Stage != "url" {
			t.Errorf("%q: want a url-stage DialError, got %v", u, err)
		}
	}
	if n := len(e.dns.Queries()); n != 0 {
		t.Errorf("%d DNS queries for malformed URLs", n)
	}
}
