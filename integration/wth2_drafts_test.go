package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// TestWebTransportH2Draft13: an HTTP/2 server whose SETTINGS are
// draft-13's (extended CONNECT and SETTINGS_WT_INITIAL_*, no
// SETTINGS_WT_ENABLED) wins the race for a WebTransport session, which then
// speaks wt2.Draft13 on the wire: streams both ways (odd client stream IDs,
// FIN on 0x190B4D3C), datagrams, a bare WT-Protocol, the close handshake.
// Our own server in that dialect lets this run without node; the interop
// test against @fails-components/webtransport is the proof that the dialect
// is that package's.
func TestWebTransportH2Draft13(t *testing.T) {
	e := newEnv(t, true, wtH2D13, closed)
	e.quic(udpBlackhole, noUDP)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	t.Cleanup(d.CloseIdleConnections) // after the sessions close
	s, rep := dialWTOver(t, 2, d, e.wtURL(), dialer.WithSubprotocols("nope", "chat-v1"))
	if w := rep.Attempts[rep.Winner]; w.Proto != "h2" || w.Settings == nil || !w.Settings.WebTransport {
		t.Errorf("want h2 to win on its WebTransport SETTINGS\n%s", rep)
	}
	if s.Protocol() != "chat-v1" {
		t.Errorf("protocol %q, want chat-v1", s.Protocol())
	}
	exerciseSession(t, s, func() *dialer.Session { s2, _ := dialWTOver(t, 2, d, e.wtURL()); return s2 }, e.wth2v4.LastClose)
}

// TestWebTransportUnsupportedUDPBlackholed: QUIC gets no answer and the
// HTTP/2 server's SETTINGS have no WebTransport. The error says first that
// the server cannot carry the session and what its SETTINGS lacked, and
// only then that UDP looks blocked: with UDP open the dial could have
// worked over HTTP/3, but HTTP/2 never will. So it is with the dial's own
// bound expiring first, which stays the cause as well.
func TestWebTransportUnsupportedUDPBlackholed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    []dialer.Option
		timeout bool
	}{
		{"QUIC times out", nil, false},
		{"dial bound expires", []dialer.Option{dialer.WithTimeout(time.Second)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true, h2NoWT, closed)
			e.quic(udpBlackhole, noUDP)
			e.dns.A(host, "127.0.0.1")
			d := e.dialer(tt.opts...)
			t.Cleanup(d.CloseIdleConnections)
			_, _, err := d.DialWebTransport(ctx(t), e.wtURL())
			var de *dialer.DialError
			if !errors.As(err, &de) || !errors.Is(err, dialer.ErrUnsupported) {
				t.Fatalf("want a DialError matching ErrUnsupported, got %v", err)
			}
			if errors.Is(err, context.DeadlineExceeded) != tt.timeout || de.Timeout() != tt.timeout {
				t.Errorf("deadline in the error %v, Timeout %v; want %v: %v", errors.Is(err, context.DeadlineExceeded), de.Timeout(), tt.timeout, err)
			}
			msg := err.Error()
			t.Log(msg)
			head := "dial " + e.wtURL() + ": capability failed: " + dialer.ErrUnsupported.Error() + ": h2 SETTINGS lack SETTINGS_WT_ENABLED"
			if !strings.HasPrefix(msg, head) {
				t.Errorf("error does not start with %q:\n%s", head, msg)
			}
			lack, udp := strings.Index(msg, "SETTINGS lack"), strings.Index(msg, "UDP looks blocked")
			if udp < 0 || lack > udp {
				t.Errorf("want what the SETTINGS lacked before the UDP hint:\n%s", msg)
			}
		})
	}
}
