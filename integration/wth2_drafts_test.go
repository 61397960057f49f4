package integration

import (
	"testing"

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
