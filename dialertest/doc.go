// Package dialertest runs, on loopback, the servers and broken networks a
// Happy Eyeballs dialer meets, so that code built on
// github.com/eyeballs/dialer can be tested for what it does when IPv6 is
// blackholed, UDP is blocked, a server lacks WebSocket over HTTP/2 or
// HTTP/3, or a connection closes under it. It is what net/http/httptest is
// to net/http; the library's own tests and "eyeballs demo" are built on it.
//
// The pieces:
//
//   - NewServer starts one origin on 127.0.0.1 and [::1] with the same
//     port for TCP and UDP: HTTP/1.1, HTTP/2 with WebSocket (RFC 8441) and
//     HTTP/3 with WebSocket (RFC 9220), and WebTransport over HTTP/3 and
//     HTTP/2, as Options choose. Its Faults break it per address family or
//     per protocol: BlackholeTCP, BlackholeUDP, RefuseTCP, StallTLS,
//     WithoutExtendedConnect, CloseAfterSettings and Latency.
//   - NewDNS starts a DNS server on loopback that answers A, AAAA and HTTPS
//     queries from records the test sets, and can delay, drop or fail them.
//   - NewCA makes a certificate authority; servers' certificates come from
//     one, and clients trust it instead of skipping verification.
//   - DialerOptions returns the dialer options that point a Dialer at the
//     DNS server and the CA, and away from the machine's resolver and
//     hosts file.
//   - EchoHandler is the WebSocket echo every server runs by default, and
//     AcceptWebSocket lets a handler of one's own accept WebSocket over any
//     HTTP version.
//
// Servers answer WebTransport sessions with an echo service: each
// bidirectional stream the client opens is echoed back and closed after the
// client's end of stream; a stream whose first line is "push\n" makes the
// server open a bidirectional stream carrying "hello from server" and a
// unidirectional one carrying "uni from server"; "close <code> <message>\n"
// makes the server close the session with that code and message; each
// unidirectional stream is copied to one the server opens, and each datagram
// is sent back. The server selects the first of the client's
// WT-Available-Protocols that is "echo-v1" or "chat-v1".
//
// Everything listens on loopback only and sends nothing elsewhere; nothing
// needs root. Constructors that take a TB (a *testing.T, *testing.B or
// *testing.F) close what they started when the test ends and fail it when
// they cannot start; with a nil TB they panic instead, and the caller
// closes. Every Close waits until each goroutine and socket it owned is
// gone, so tests can check for leaks (for example with go.uber.org/goleak).
package dialertest
