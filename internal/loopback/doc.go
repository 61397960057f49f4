// Package loopback holds the loopback servers, certificates and network
// faults behind the public package dialertest, which builds "eyeballs demo"
// and users' tests from them, and behind internal/testkit, which gives the
// integration tests the same pieces under their historical names.
//
// Nothing here needs a *testing.T or a particular process environment:
// every constructor returns a value and an error, and every value that holds
// a socket or a goroutine has a Close method that releases all of it, so
// tests can run under goleak and a command can use the same pieces.
//
// Servers: StartHTTP (HTTP/1.1 and HTTP/2 with net/http), StartH3 (HTTP/3
// with quic-go), StartWebTransport (HTTP/3 with WebTransport), and the
// package's own HTTP/2 server (internal/h2conn), which offers RFC 8441
// extended CONNECT without GODEBUG=http2xconnect=1: StartWebTransportH2 and
// StartH2NoWebTransport. Servers that lack extended CONNECT, which a dialer
// must fall back from: StartH2NoExtendedConnect and
// StartH3NoExtendedConnect; servers whose SETTINGS go wrong: StartH2Fault
// and StartH3Fault. EchoHandler serves WebSocket over all of them that can
// carry it. Faults: Blackhole, UDPBlackhole, TLSStall, Reset; latency and
// impairment proxies: LatencyTCP, LatencyUDP, ImpairTCP, ImpairUDP.
//
// Everything listens on loopback only (127.0.0.1 and ::1). Helpers that take
// an address expect an IP literal and a port, such as "127.0.0.1:0" or
// "[::1]:8443"; they never resolve a name.
package loopback
