package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// wtURL is the WebTransport endpoint by name.
func (e *env) wtURL() string { return "https://" + host + ":" + itoa(e.port) + "/wt" }

// dialWT dials a session over HTTP/3 and closes it when the test ends.
func dialWT(t *testing.T, d *dialer.Dialer, url string, opts ...dialer.Option) (*dialer.Session, *dialer.Report) {
	t.Helper()
	return dialWTOver(t, 3, d, url, opts...)
}

// dialWTOver dials a session that must come up over HTTP/version and
// closes it when the test ends.
func dialWTOver(t *testing.T, version int, d *dialer.Dialer, url string, opts ...dialer.Option) (*dialer.Session, *dialer.Report) {
	t.Helper()
	var rep *dialer.Report
	opts = append(opts, dialer.WithReport(func(r *dialer.Report) { rep = r }))
	s, resp, err := d.DialWebTransport(ctx(t), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.CloseWithError(0, "") })
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != version || s.HTTPVersion() != version || s.DatagramsReliable() != (version == 2) {
		t.Errorf("response %s HTTP/%d, session HTTP/%d, reliable datagrams %v: want 200 over HTTP/%d", resp.Status, resp.ProtoMajor, s.HTTPVersion(), s.DatagramsReliable(), version)
	}
	return s, rep
}

// roundTrip writes msg on a new bidirectional stream, closes it and reads
// the echo.
func roundTrip(t *testing.T, s *dialer.Session, msg []byte) {
	t.Helper()
	str, err := s.OpenStreamSync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	str.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		str.Write(msg)
		str.Close()
	}()
	got, err := io.ReadAll(str)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: got %d bytes", len(msg), len(got))
	}
}

// uniEcho sends a unidirectional stream and reads the server's copy on the
// unidirectional stream it opens in answer.
func uniEcho(t *testing.T, s *dialer.Session) {
	t.Helper()
	out, err := s.OpenUniStreamSync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out.Write([]byte("one way"))
	out.Close()
	in, err := s.AcceptUniStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(in); err != nil || string(got) != "one way" {
		t.Fatalf("uni echo %q, %v", got, err)
	}
}

// TestWebTransport: streams both ways, datagrams, server-initiated streams
// and the close handshake over a session dialed by name.
func TestWebTransport(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(wt, wt)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	d := e.dialer()
	t.Cleanup(d.CloseIdleConnections) // after the sessions close
	s, rep := dialWT(t, d, e.wtURL(), dialer.WithSubprotocols("nope", "chat-v1"), dialer.WithHeader(http.Header{"X-Test": {"wt"}}))
	if w := rep.Attempts[rep.Winner]; w.Family != "IPv6" || w.Proto != "h3" {
		t.Errorf("want IPv6 h3 to win\n%s", rep)
	}
	if s.Protocol() != "chat-v1" {
		t.Errorf("protocol %q, want chat-v1", s.Protocol())
	}

	exerciseSession(t, s, func() *dialer.Session { s2, _ := dialWT(t, d, e.wtURL()); return s2 }, e.wt6.LastClose)
}

// exerciseSession checks a session to a testkit WebTransport server: bidi
// and uni streams both ways, datagram echo, server-initiated streams, and
// close with a code and message seen by both sides (another dials a second
// session to close; last says how the server saw its last session end).
func exerciseSession(t *testing.T, s *dialer.Session, another func() *dialer.Session, last func() (testkit.WTClose, bool)) {
	t.Run("bidi", func(t *testing.T) {
		roundTrip(t, s, []byte("hello"))
		roundTrip(t, s, bytes.Repeat([]byte("0123456789abcdef"), 64<<10)) // 1 MiB
	})
	t.Run("uni", func(t *testing.T) { uniEcho(t, s) })
	t.Run("datagram", func(t *testing.T) {
		// Datagrams may be lost: resend until one comes back.
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if err := s.SendDatagram([]byte("dgram")); err != nil {
				t.Fatal(err)
			}
			rc, rcancel := context.WithTimeout(c, 200*time.Millisecond)
			b, err := s.ReceiveDatagram(rc)
			rcancel()
			if err == nil {
				if string(b) != "dgram" {
					t.Fatalf("datagram %q", b)
				}
				return
			}
			if c.Err() != nil {
				t.Fatal("no datagram came back")
			}
		}
	})
	t.Run("server-initiated", func(t *testing.T) {
		str, err := s.OpenStreamSync(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		str.Write([]byte("push\n"))
		str.Close()
		in, err := s.AcceptStream(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		in.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, _ := io.ReadAll(in); string(got) != testkit.WTPushBidi {
			t.Errorf("server bidi stream said %q", got)
		}
		uni, err := s.AcceptUniStream(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		uni.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, _ := io.ReadAll(uni); string(got) != testkit.WTPushUni {
			t.Errorf("server uni stream said %q", got)
		}
	})
	t.Run("client close", func(t *testing.T) {
		s2 := another()
		if err := s2.CloseWithError(42, "bye now"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, ok := last()
			if ok && c.Code == 42 && c.Message == "bye now" && c.Remote {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server saw %+v, want code 42 \"bye now\" from the client", c)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("server close", func(t *testing.T) {
		str, err := s.OpenStreamSync(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		str.Write([]byte("close 7 server says bye\n"))
		str.Close()
		select {
		case <-s.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("session context not done after the server closed it")
		}
		_, err = s.AcceptStream(ctx(t))
		var se *dialer.SessionError
		if !errors.As(err, &se) || se.Code != 7 || se.Message != "server says bye" || !se.Remote {
			t.Fatalf("want SessionError 7 \"server says bye\" from the peer, got %v", err)
		}
	})
}

// TestWebTransportIPv6Blackholed: UDP to [::1] is dropped; the session comes
// up over IPv4 one attempt delay later.
func TestWebTransportIPv6Blackholed(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(wt, udpBlackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	d := e.dialer()
	t.Cleanup(d.CloseIdleConnections) // after the sessions close
	s, rep := dialWT(t, d, e.wtURL())
	roundTrip(t, s, []byte("over v4"))
	if len(rep.Attempts) != 2 || rep.Attempts[1].Family != "IPv4" || rep.Winner != 1 {
		t.Fatalf("want IPv6 then IPv4 winning\n%s", rep)
	}
	if gap := rep.Attempts[1].Start - rep.Attempts[0].Start; gap < 240*time.Millisecond || gap > 450*time.Millisecond {
		t.Errorf("IPv4 started %v after IPv6, want about 250ms\n%s", gap, rep)
	}
}

// TestWebTransportUDPBlocked: every QUIC path is blackholed: the dial ends
// within its bound and says UDP looks blocked.
func TestWebTransportUDPBlocked(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.quic(udpBlackhole, udpBlackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	start := time.Now()
	_, _, err := e.dialer(dialer.WithTimeout(time.Second)).DialWebTransport(context.Background(), e.wtURL())
	if err == nil || !strings.Contains(err.Error(), "UDP looks blocked") {
		t.Fatalf("want an error saying UDP looks blocked, got %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want the deadline as the cause: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with a 1s bound", d)
	}
}

// TestWebTransportUnsupported: an HTTP/3 server without WebTransport in its
// SETTINGS gives ErrUnsupported naming what is missing; its connection is
// closed.
func TestWebTransportUnsupported(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(h3NoWT, noUDP)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	t.Cleanup(d.CloseIdleConnections) // after the sessions close
	_, _, err := d.DialWebTransport(ctx(t), e.wtURL())
	if !errors.Is(err, dialer.ErrUnsupported) {
		t.Fatalf("want ErrUnsupported, got %v", err)
	}
	if !strings.Contains(err.Error(), "lack WebTransport") {
		t.Errorf("error does not name the missing setting: %v", err)
	}
	waitOpen(t, "h3 without WebTransport", e.h3v4.WaitOpen, 0)
}

// TestWebTransportRejected: a 403 gives ErrRejected and the response.
func TestWebTransportRejected(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(wt, noUDP)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer(dialer.WithHeader(http.Header{"X-Reject": {"1"}}))
	t.Cleanup(d.CloseIdleConnections)
	_, resp, err := d.DialWebTransport(ctx(t), e.wtURL())
	if !errors.Is(err, dialer.ErrRejected) || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("want ErrRejected with the 403, got %v, %v", err, resp)
	}
}

// TestWebTransportReuse: a second session to the origin uses the live QUIC
// connection, and a WebSocket to the same origin rides it too.
func TestWebTransportReuse(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.quic(wt, noUDP)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	s1, _ := dialWT(t, d, e.wtURL())
	s2, rep := dialWT(t, d, e.wtURL())
	if len(rep.Attempts) != 0 {
		t.Errorf("second session raced again\n%s", rep)
	}
	roundTrip(t, s1, []byte("first"))
	roundTrip(t, s2, []byte("second"))
	c, resp, err := d.DialWebSocket(ctx(t), "wss://"+host+":"+itoa(e.port)+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 3 {
		t.Errorf("WebSocket over HTTP/%d, want the HTTP/3 connection", resp.ProtoMajor)
	}
	closeConn(t, c)
	if n := e.h3v4.Accepted(); n != 1 {
		t.Errorf("%d QUIC connections, want 1", n)
	}
	if n := e.wt4.Sessions(); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	s1.CloseWithError(0, "")
	s2.CloseWithError(0, "")
	// Once every session has ended the idle connection can be closed.
	d.CloseIdleConnections()
	waitOpen(t, "h3", e.h3v4.WaitOpen, 0)
}
