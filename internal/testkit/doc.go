// Package testkit gives the integration and interop tests their loopback
// servers, certificates and network faults under the names they have always
// used. The pieces live in internal/loopback, which also builds the public
// package dialertest (and through it "eyeballs demo"); this package adds
// what only a test binary wants: EnsureXConnect.
//
// Nothing here needs a *testing.T: every constructor returns a value and an
// error, and every value that holds a socket or a goroutine has a Close method
// that releases all of it, so tests can run under goleak.
//
// Servers: StartHTTP (HTTP/1.1 and HTTP/2 with net/http), StartH3 (HTTP/3
// with quic-go), the package's own HTTP/2 server (StartWebTransportH2,
// StartH2NoWebTransport), and servers that lack extended CONNECT, which a
// dialer must fall back from: StartH2NoExtendedConnect and
// StartH3NoExtendedConnect. EchoHandler serves WebSocket over all of them
// that can carry it. net/http accepts WebSocket over HTTP/2 (RFC 8441) only
// in a process started with GODEBUG=http2xconnect=1; EnsureXConnect, called
// first thing in TestMain, restarts the process with it. (The package's own
// HTTP/2 server, which dialertest uses, needs no such setting.)
//
// Everything listens on loopback only (127.0.0.1 and ::1). Helpers that take
// an address expect an IP literal and a port, such as "127.0.0.1:0" or
// "[::1]:8443"; they never resolve a name.
package testkit
