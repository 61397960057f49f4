package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// dialEcho dials, echoes one message and closes cleanly; it returns the
// race report.
func dialEcho(t *testing.T, d *dialer.Dialer, url string, wantMajor int) *dialer.Report {
	t.Helper()
	var rep *dialer.Report
	c, resp, err := d.DialWebSocket(ctx(t), url, dialer.WithReport(func(r *dialer.Report) { rep = r }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != wantMajor {
		t.Errorf("WebSocket over HTTP/%d, want HTTP/%d\n%s", resp.ProtoMajor, wantMajor, rep)
	}
	echo(t, c, websocket.MessageText, []byte("ladder"))
	closeConn(t, c)
	return rep
}

// waitOpen waits until n connections are open on a server.
func waitOpen(t *testing.T, what string, wait func(context.Context, int) error, n int) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wait(c, n); err != nil {
		t.Errorf("%s: still not %d open connections: %v", what, n, err)
	}
}

// TestH3: an HTTPS record advertising h3 makes the WebSocket go over
// HTTP/3 (RFC 9220) on both families.
func TestH3(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.quic(h3, h3)
	e.dns.AAAA(host, "::1")
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	d := e.dialer()
	rep := dialEcho(t, d, e.url(true), 3)
	if w := rep.Attempts[rep.Winner]; w.Proto != "h3" || w.Family != "IPv6" || w.Settings == nil || !w.Settings.ExtendedConnect {
		t.Errorf("want the IPv6 h3 attempt to win on its SETTINGS\n%s", rep)
	}
	d.CloseIdleConnections()
	waitOpen(t, "h3 [::1]", e.h3v6.WaitOpen, 0)
}

// TestUDPBlackholed: the HTTPS record says h3 but UDP is blackholed; the
// TCP attempt starts one attempt delay after the QUIC one and h2 wins.
func TestUDPBlackholed(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(udpBlackhole, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	d := e.dialer()
	defer d.CloseIdleConnections()
	rep := dialEcho(t, d, e.url(true), 2)
	if len(rep.Attempts) < 2 || rep.Attempts[0].Proto != "h3" || rep.Attempts[rep.Winner].Version != "h2" {
		t.Fatalf("want h3 then h2 winning\n%s", rep)
	}
	gap := rep.Attempts[1].Start - rep.Attempts[0].Start
	if gap < 240*time.Millisecond || gap > 450*time.Millisecond {
		t.Errorf("TCP attempt started %v after QUIC, want about 250ms\n%s", gap, rep)
	}
	if rep.Attempts[0].Outcome != "lost" {
		t.Errorf("the QUIC attempt was not cancelled\n%s", rep)
	}
}

// TestH3WithoutExtendedConnect: h3 comes up but its SETTINGS lack extended
// CONNECT: that QUIC connection is closed and h2 carries the WebSocket. The
// next dial skips QUIC.
func TestH3WithoutExtendedConnect(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(h3NoExt, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	d := e.dialer()
	defer d.CloseIdleConnections()
	rep := dialEcho(t, d, e.url(true), 2)
	if a := rep.Attempts[0]; a.Proto != "h3" || a.Outcome != "incapable" || a.Settings == nil || a.Settings.ExtendedConnect {
		t.Errorf("want the h3 attempt incapable on its SETTINGS\n%s", rep)
	}
	if gap := rep.Attempts[1].Start - rep.Attempts[0].Start; gap > 200*time.Millisecond {
		t.Errorf("TCP started %v after QUIC: the incapable h3 should free the slot at once\n%s", gap, rep)
	}
	waitOpen(t, "h3 without extended CONNECT", e.h3v4.WaitOpen, 0)
	if n := e.h3v4.Accepted(); n != 1 {
		t.Errorf("%d QUIC connections, want 1", n)
	}
	// The second dial knows h3 cannot carry it.
	rep = dialEcho(t, d, e.url(true), 2)
	for _, a := range rep.Attempts {
		if a.Proto == "h3" {
			t.Errorf("second dial tried h3 again\n%s", rep)
		}
	}
	if n := e.h3v4.Accepted(); n != 1 {
		t.Errorf("%d QUIC connections after the second dial, want 1", n)
	}
}

// TestH2WithoutExtendedConnect: the server's h2 lacks extended CONNECT: the
// h2 connection is closed and a fresh TCP+TLS connection offering only
// http/1.1 carries the upgrade on the same port. The next dial goes to h1
// directly.
func TestH2WithoutExtendedConnect(t *testing.T) {
	e := newEnv(t, true, h2NoExt, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	defer d.CloseIdleConnections()
	rep := dialEcho(t, d, e.url(true), 1)
	if len(rep.Attempts) != 2 || rep.Attempts[0].Outcome != "incapable" || rep.Attempts[1].Proto != "h1" {
		t.Fatalf("want h2,h1 incapable then h1\n%s", rep)
	}
	waitOpen(t, "fake h2", func(c context.Context, n int) error { return e.h2fake4.WaitOpen(c, "h2", n) }, 0)
	rep = dialEcho(t, d, e.url(true), 1)
	if len(rep.Attempts) != 1 || rep.Attempts[0].Proto != "h1" {
		t.Errorf("second dial did not go straight to h1\n%s", rep)
	}
	if n := e.h2fake4.Accepted("h2"); n != 1 {
		t.Errorf("%d h2 connections, want 1", n)
	}
}

// TestReuse: a second WebSocket to an origin with a live h2 or h3
// connection from the same Dialer opens a stream on it.
func TestReuse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		udp   udpMode
		major int
	}{{"h2", noUDP, 2}, {"h3", h3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, serve, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			e.dns.HTTPS(host, "1 . alpn=h3,h2")
			d := e.dialer()
			var rep *dialer.Report
			c1, _, err := d.DialWebSocket(ctx(t), e.url(true))
			if err != nil {
				t.Fatal(err)
			}
			defer c1.CloseNow()
			c2, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithReport(func(r *dialer.Report) { rep = r }))
			if err != nil {
				t.Fatal(err)
			}
			defer c2.CloseNow()
			if resp.ProtoMajor != tc.major || len(rep.Attempts) != 0 {
				t.Errorf("second WebSocket: HTTP/%d with %d attempts, want a stream on the HTTP/%d connection\n%s", resp.ProtoMajor, len(rep.Attempts), tc.major, rep)
			}
			echo(t, c1, websocket.MessageText, []byte("one"))
			echo(t, c2, websocket.MessageText, []byte("two"))
			closeConn(t, c1)
			closeConn(t, c2)
			accepted := e.v4.Accepted()
			if tc.udp == h3 {
				accepted = e.h3v4.Accepted()
			}
			if accepted != 1 {
				t.Errorf("server accepted %d connections, want 1", accepted)
			}
			d.CloseIdleConnections()
		})
	}
}

// TestReuseDeadConnection: a pooled connection the server closed is not
// used; the next dial races again.
func TestReuseDeadConnection(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(h3, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3")
	d := e.dialer()
	defer d.CloseIdleConnections()
	dialEcho(t, d, e.url(true), 3)
	// Restarting the server kills the idle pooled connection.
	e.h3v4.CloseConnections()
	rep := dialEcho(t, d, e.url(true), 3)
	if len(rep.Attempts) == 0 {
		t.Errorf("the dead connection was reused\n%s", rep)
	}
}

// TestUnsupported: the only server is an h3 without extended CONNECT: the
// dial fails with ErrUnsupported naming the missing setting, and the QUIC
// connection is closed.
func TestUnsupported(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(h3NoExt, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3")
	_, _, err := e.dialer(dialer.WithProtocols("h3")).DialWebSocket(ctx(t), e.url(true))
	if !errors.Is(err, dialer.ErrUnsupported) {
		t.Fatalf("want ErrUnsupported, got %v", err)
	}
	var de *dialer.DialError
	if !errors.As(err, &de) || de.Stage != "capability" {
		t.Errorf("want the capability stage, got %v", err)
	}
	if !strings.Contains(err.Error(), "SETTINGS_ENABLE_CONNECT_PROTOCOL") {
		t.Errorf("error does not say what was missing: %v", err)
	}
	waitOpen(t, "h3 without extended CONNECT", e.h3v4.WaitOpen, 0)
}
