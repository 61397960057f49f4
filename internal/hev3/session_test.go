package hev3

import "testing"

var (
	ecOnly  = Settings{ExtendedConnect: true}
	noEC    = Settings{}
	wtH2    = Settings{ExtendedConnect: true, WebTransport: true}
	wtH3    = Settings{ExtendedConnect: true, WebTransport: true, Datagrams: true}
	wtNoDgm = wtH2
)

func sessionConfig(need Need, v Versions) Config {
	cfg := config()
	cfg.Need = need
	cfg.Versions = v
	return cfg
}

// §5.8 #113: WebSocket over h1 wins when the transport is up.
func TestWebSocketH1(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H1)), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h1").idle()
	r.connected(10*ms, 3, H1).expect("succeed 3").done(true)
}

// §5.8 #114: WebSocket over h2 waits for SETTINGS with extended CONNECT.
func TestWebSocketH2(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2").idle()
	r.connected(10*ms, 3, H2).expect().idle().done(false)
	r.settings(20*ms, 3, ecOnly).expect("succeed 3").done(true)
}

// §5.8 #115 and review point 1: SETTINGS without extended CONNECT cancel
// the connection (Incapable) and free the slot at once. The missing
// capability is the origin's: with h2 the only version, nothing is left.
func TestWebSocketH2NoExtendedConnect(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.connected(50*ms, 3, H2).expect().wakeAt(250 * ms)
	r.settings(100*ms, 3, noEC).expect("cancel 3 incapable", "fail unsupported").done(true)
}

// The h2 → h1 rung: an h2,h1 attempt that negotiated h2 without extended
// CONNECT is followed at once by http/1.1-only attempts, first on the same
// address; h2,h1 is not tried on the other family.
func TestWebSocketH2FallsBackToH1(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.connected(10*ms, 3, H2).settings(20*ms, 3, noEC).
		expect("cancel 3 incapable", "attempt 4 [2001:db8::1]:443 h1").wakeAt(270 * ms)
	r.at(270 * ms).expect("attempt 5 192.0.2.1:443 h1").idle()
	r.connected(280*ms, 5, H1).expect("cancel 4 lost", "succeed 5")
}

// The h3 → h2 rung: an h3 connection without extended CONNECT ends the
// QUIC attempts of the race; TCP goes on at once.
func TestWebSocketH3IncapableSkipsQUIC(t *testing.T) {
	r := newRace(t, sessionConfig(NeedWebSocket, AllVersions)).queries()
	r.https(0, 0, rec(1, ".", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3")
	r.connected(10*ms, 3, H3).settings(15*ms, 3, noEC).
		expect("cancel 3 incapable", "attempt 4 [2001:db8::1]:443 h2")
	r.at(265 * ms).expect("attempt 5 192.0.2.1:443 h2")
}

// The connected attempt's slot ends at its start plus the attempt delay,
// not later.
func TestConnectedAttemptHoldsSlotUntilDelay(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.connected(200*ms, 3, H2).expect().wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2").idle()
	r.settings(300*ms, 3, ecOnly).expect("cancel 4 lost", "succeed 3")
}

// §5.8 #116: the only connection lacks the capability: FailUnsupported.
func TestWebSocketAllUnsupported(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(10*ms, 3, H2).expect().idle()
	r.settings(20*ms, 3, noEC).expect("cancel 3 incapable", "fail unsupported").idle().done(true)
}

// §5.8 #117 (adapted: the session phase is the caller's): a connection
// that dies before its SETTINGS frees the slot; no Cancel is sent for it.
func TestConnectionFailsBeforeSettings(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(50*ms, 3, H2).expect().wakeAt(250 * ms)
	r.failed(100*ms, 3).expect("attempt 4 192.0.2.1:443 h2").idle()
	r.settings(110*ms, 3, ecOnly).expect().idle()
	r.failed(120*ms, 4).expect("fail connect").done(true)
}

// §5.8 #118: the first attempt proves the capability: the other, still
// connecting, is cancelled.
func TestWebSocketRaceFirstWins(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2").idle()
	r.connected(300*ms, 3, H2).expect().idle()
	r.settings(310*ms, 3, ecOnly).expect("cancel 4 lost", "succeed 3")
}

// §5.8 #119: both connected and waiting; the second wins and the first,
// already connected, is cancelled.
func TestWebSocketRaceSecondWins(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2")
	r.connected(260*ms, 3, H2).connected(270*ms, 4, H2).expect().idle()
	r.settings(280*ms, 4, ecOnly).expect("cancel 3 lost", "succeed 4")
	r.settings(290*ms, 3, ecOnly).expect().idle()
}

// Review point 4: SETTINGS rejected on one connection while another
// succeeds: the rejected one gets Cancel{Incapable} once, never LostRace.
func TestIncapableThenOtherSucceeds(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(100*ms, 3, H2).expect().wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2")
	r.connected(300*ms, 4, H2).expect().idle()
	r.settings(310*ms, 3, noEC).expect("cancel 3 incapable").idle()
	r.settings(320*ms, 4, ecOnly).expect("succeed 4").done(true)
}

// §5.8 #120: WebSocket over h3 (RFC 9220).
func TestWebSocketH3(t *testing.T) {
	r := newRace(t, sessionConfig(NeedWebSocket, Versions(H3))).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).nodata(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h3").idle()
	r.connected(10*ms, 3, H3).expect().idle()
	r.settings(20*ms, 3, ecOnly).expect("succeed 3")
}

// §5.8 #121: WebTransport over h3 needs extended CONNECT, datagrams and
// WebTransport.
func TestWebTransportH3(t *testing.T) {
	r := newRace(t, sessionConfig(NeedWebTransport, AllVersions)).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).nodata(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(250 * ms)
	r.connected(10*ms, 3, H3).expect().wakeAt(250 * ms)
	r.settings(20*ms, 3, wtH3).expect("succeed 3")
}

// §5.8 #122: WebTransport over h3 without one of the settings is
// incapable.
func TestWebTransportH3MissingSetting(t *testing.T) {
	for name, s := range map[string]Settings{
		"no webtransport": {ExtendedConnect: true, Datagrams: true},
		"no datagrams":    wtNoDgm,
		"no connect":      {Datagrams: true, WebTransport: true},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRace(t, sessionConfig(NeedWebTransport, Versions(H3))).queries()
			r.https(0, 0, rec(1, "", "h3")).addrs(0, 1, v6).nodata(0, 2)
			r.expect("attempt 3 [2001:db8::1]:443 h3").idle()
			r.connected(10*ms, 3, H3).settings(20*ms, 3, s).
				expect("cancel 3 incapable", "fail unsupported").done(true)
		})
	}
}

// §5.8 #123 and #124: an h2,h1 attempt follows the negotiated version.
func TestWebSocketNegotiated(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, H2).expect().idle()
	r.settings(20*ms, 3, ecOnly).expect("succeed 3")

	r = resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, H1).expect("succeed 3")
}

// §5.8 #125: a plain transport wins on connect, whatever the version, and
// SETTINGS are not awaited.
func TestTransportWinsOnConnect(t *testing.T) {
	for _, v := range []Version{H1, H2, H3} {
		r := resolved(t, config(), list(v6), list(v4))
		r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
		r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
		r.connected(260*ms, 4, v).expect("cancel 3 lost", "succeed 4")
	}
}

// WebTransport over h2 needs extended CONNECT and WebTransport, not
// datagrams; it never offers h1.
func TestWebTransportH2(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebTransport, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.connected(10*ms, 3, H2).expect().wakeAt(250 * ms)
	r.settings(20*ms, 3, wtH2).expect("succeed 3")
}

// WebTransport over h2 without the WebTransport setting is incapable.
func TestWebTransportH2Missing(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebTransport, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(10*ms, 3, H2).settings(20*ms, 3, ecOnly).
		expect("cancel 3 incapable", "fail unsupported")
}

// WebTransport never attempts h1: not from the fallback, not from an
// HTTPS record (one of "http/1.1" alone is TLS over TCP, where h2 is
// offered, RFC 9460 §7.1.2), and an h1 negotiation is incapable.
func TestWebTransportNeverH1(t *testing.T) {
	t.Run("h1 only", func(t *testing.T) {
		r := resolved(t, sessionConfig(NeedWebTransport, Versions(H1)), list(v6), list(v4))
		r.expect("fail dns").done(true)
	})
	t.Run("records", func(t *testing.T) {
		r := newRace(t, sessionConfig(NeedWebTransport, AllVersions)).queries()
		r.https(0, 0,
			withHints(rec(1, ".", "http/1.1"), v6b),
			withHints(rec(2, ".", "h2", "http/1.1"), v6c),
		).addrs(0, 1, v6).nodata(0, 2)
		want := []string{
			"attempt 3 [2001:db8::1]:443 h2",
			"attempt 4 [2001:db8::2]:443 h2 hint",
			"attempt 5 [2001:db8::3]:443 h2 hint",
		}
		r.expect(want[0])
		r.chain(10*ms, 3, want, "fail connect")
	})
	t.Run("negotiated h1", func(t *testing.T) {
		r := resolved(t, sessionConfig(NeedWebTransport, AllVersions), list(v6), nil)
		r.expect("attempt 3 [2001:db8::1]:443 h2")
		r.connected(10*ms, 3, H1).expect("cancel 3 incapable", "fail unsupported")
	})
}

// An unknown negotiated version cannot carry a session.
func TestWebSocketUnknownVersion(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, Version(0)).expect("cancel 3 incapable", "fail unsupported")
}

// Incapable takes precedence over connection failures in the reason, and
// inputs for the incapable attempt are ignored afterwards.
func TestFailReasonPrecedence(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H1|H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, H2).settings(20*ms, 3, noEC).
		expect("cancel 3 incapable", "attempt 4 [2001:db8::1]:443 h1")
	// Attempt 4 started at 20 ms: the next waits until 30 ms (draft §6).
	r.failed(25*ms, 4).expect().wakeAt(30 * ms)
	r.at(30 * ms).expect("attempt 5 192.0.2.1:443 h1")
	r.settings(30*ms, 3, ecOnly).connected(30*ms, 3, H1).expect().idle()
	r.failed(40*ms, 3).expect().idle()
	r.failed(50*ms, 5).expect("fail unsupported")
}

// SETTINGS before the transport is reported, or for an h1 connection,
// change nothing.
func TestSettingsOutOfOrder(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.settings(10*ms, 3, ecOnly).expect().idle().done(false)
	r.connected(20*ms, 3, H2).connected(25*ms, 3, H2).expect().idle()
	r.settings(30*ms, 3, ecOnly).expect("succeed 3")
}

// The h1 rung goes first to the address whose TCP+TLS just came up, not to
// the preferred family, which may be the one that hangs.
func TestWebSocketH1RungPrefersReachableAddress(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(260*ms, 4, H2).settings(261*ms, 4, noEC).
		expect("cancel 4 incapable", "attempt 5 192.0.2.1:443 h1")
	r.connected(270*ms, 5, H1).expect("cancel 3 lost", "succeed 5")
}

// NeedHTTP: h1 wins on connect; h2 and h3 win on any SETTINGS, so an h2
// connection that dies before them loses to the next attempt.
func TestNeedHTTP(t *testing.T) {
	r := resolved(t, sessionConfig(NeedHTTP, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, H2).expect().wakeAt(250 * ms)
	r.failed(20*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(30*ms, 4, H2).settings(40*ms, 4, noEC).expect("succeed 4")

	r = resolved(t, sessionConfig(NeedHTTP, AllVersions), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(10*ms, 3, H1).expect("succeed 3")
}

// Avoid: an address that failed the caller recently is tried last.
func TestAvoid(t *testing.T) {
	cfg := config()
	cfg.Avoid = parseAddrPorts("[2001:db8::1]:443")
	r := resolved(t, cfg, list(v6), list(v4))
	r.expect("attempt 3 192.0.2.1:443 h2,h1")
	r.failed(10*ms, 3).expect("attempt 4 [2001:db8::1]:443 h2,h1")
}

// Avoid: an avoided address that is the only one known yet waits for the
// resolution delay, so that the other family's answer can come first.
func TestAvoidWaitsForOtherFamily(t *testing.T) {
	cfg := config()
	cfg.Avoid = parseAddrPorts("[2001:db8::1]:443")
	r := newRace(t, cfg).queries()
	r.nodata(0, 0).addrs(0, 1, v6).expect().wakeAt(50 * ms)
	r.addrs(20*ms, 2, v4).expect("attempt 3 192.0.2.1:443 h2,h1")
}
