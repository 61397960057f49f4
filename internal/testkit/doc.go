// Package testkit holds loopback servers, certificates and network faults for
// the dialer's integration tests and for the "eyeballs demo" command.
//
// Nothing here needs a *testing.T: every constructor returns a value and an
// error, and every value that holds a socket or a goroutine has a Close method
// that releases all of it, so tests can run under goleak and the demo binary
// can use the same pieces.
//
// Servers: StartHTTP (HTTP/1.1 and HTTP/2 with net/http), StartH3 (HTTP/3
// with quic-go), and two servers that lack extended CONNECT, which a dialer
// must fall back from: StartH2NoExtendedConnect and
// StartH3NoExtendedConnect. EchoHandler serves WebSocket over all of them
// that can carry it. net/http accepts WebSocket over HTTP/2 (RFC 8441) only
// in a process started with GODEBUG=http2xconnect=1; EnsureXConnect, called
// first thing in TestMain or main, restarts the process with it.
//
// Everything listens on loopback only (127.0.0.1 and ::1). Helpers that take
// an address expect an IP literal and a port, such as "127.0.0.1:0" or
// "[::1]:8443"; they never resolve a name.
package testkit
