// Package dialer turns a URL into a ready session over real networks.
//
// DialWebSocket and DialWebTransport resolve A, AAAA and HTTPS records, race
// QUIC and TCP+TLS attempts with staggered timers (Happy Eyeballs version 3,
// draft-ietf-happy-happyeyeballs-v3), let an attempt win only when its
// HTTP/3 or HTTP/2 SETTINGS prove it can carry the session (extended
// CONNECT, RFC 9220 and RFC 8441; WebTransport), close every losing attempt,
// and return a ready *websocket.Conn (github.com/coder/websocket) or
// *Session. The ladder is h3 → h2 → h1 for WebSocket.
//
// NewTransport gives the same racing to net/http as an http.RoundTripper,
// sharing its HTTP/2 and HTTP/3 connections with the Dialer's sessions;
// DialContext gives HE over TCP to an existing http.Transport.
//
// Every dial can report its race (DNS answers, attempts, SETTINGS, timings
// and why the winner won) through WithReport and WithTrace.
package dialer

// Reading map, for those who work on the package: where each part of a
// dial lives, in the order a dial goes through them.
//
//	dialer.go       Dialer, New, DialContext: the entry point, the resolvers
//	options.go      Option and config: what a dial may be told
//	websocket.go    DialWebSocket: the h3 → h2 → h1 ladder over races
//	webtransport.go DialWebTransport: h3, then h2
//	transport.go    Transport: http.RoundTripper over races and the pool
//	resolve.go      Resolve: what a dial sees of DNS
//
// One race (a dial makes one, or one per rung of the ladder):
//
//	race.go    raceSpec (what to dial), raceNet (the seams: lookup, dialTCP,
//	           dialQUIC, settings), Dialer.race and the racer. racer.run is
//	           the loop: Poll the machine, do each action (startQuery,
//	           startAttempt, cancel, succeed), then wait for one event and
//	           hand it to its handler (onAnswer, onTCPUp, onConnected,
//	           onSettings, onFailed; onAbort when the caller's context
//	           ends); windDown and finish end it. raceError builds the
//	           error of a race without a winner.
//	raceio.go  the goroutines of a race (racer.query, racer.dial) and the
//	           raceEvent they send: the only code of a race that runs off
//	           the dialing goroutine; dnsLinger, which keeps the queries a
//	           won race leaves running for a second (draft §6)
//	result.go  typed results: outcome, attemptResult (kept in the Report
//	           beside each Attempt), missing, winReason, heardFrom
//	internal/hev3  the Happy Eyeballs state machine itself: sans-IO, time
//	           is an input; every rule is tested there
//
// One connection (protocol files know nothing about racing):
//
//	h1.go      dialTCP: TCP, then TLS with ALPN; h2 goes on to h2.go
//	h2.go      HTTP/2 client connections and their SETTINGS
//	h3.go      dialQUIC, the race's UDP sockets (udpSockets), HTTP/3
//	wtreq.go   the one place that reads a dependency's error text
//	carrier.go what a race hands back: one connection of any version
//
// After the race:
//
//	pool.go, flights.go   reuse of h2 and h3 connections; one dial per origin at a time
//	caps.go               what the Dialer learned per origin (reads attemptResult)
//	netstate.go           what the Dialer learned per network: silent paths,
//	                      QUIC that works, RTTs (hev3.History); the look at
//	                      the host's network that keys it
//	altsvc.go             Alt-Svc headers
//	trust.go              keys that partition everything reused by trust
//	proxy.go, proxyconnect.go, socks.go  WithProxy: which proxy, the race
//	                      of its addresses, CONNECT and SOCKS5 tunnels
//	wsconnect.go, wth2.go, wth3.go, session.go  the sessions on a carrier
//	report.go, trace.go   the Report, the Trace and httptrace, for people
//	errors.go             DialError and the sentinel errors
//
// Tests: race_test.go and dialer_test.go run races on a scripted network
// (fakeNet) in a synctest bubble, without sockets; integration/ runs
// dials against real servers on loopback.
