// Package h2conn is a minimal HTTP/2 connection (RFC 9113) for extended
// CONNECT (RFC 8441) and WebTransport over HTTP/2, in both the client and the
// server role.
//
// It exists because golang.org/x/net/http2 can neither send nor read custom
// SETTINGS, which WebTransport over HTTP/2 needs. It is built on the x/net
// Framer and HPACK codec and keeps to what the dialer and its test servers
// use: streams with flow control in both directions, SETTINGS, PING, GOAWAY
// and RST_STREAM. There is no server push, no priority scheduling, no
// compression and no retry logic.
//
// One goroutine reads frames and never blocks on the network write side or
// on the application: data is buffered per stream up to the receive windows
// we advertise, and control frames go out through a writer goroutine. Every
// goroutine ends when the connection closes.
//
// # Waits
//
// Every wait ends on a bound the caller controls, or on the connection's
// end. Waits for the peer (a header block, data, window, a stream slot, a
// PING's answer, SETTINGS) end on the caller's context or read or write
// deadline, or when the stream or the connection ends. Waits for our own
// writers (a stream's write lock, the right to write frames) end the same
// way, and the writer waited for is bounded too: every write to the socket
// has a deadline, its stream's write deadline or Config.WriteTimeout, so a
// peer that stops reading ends the connection with ErrWriteTimeout, failing
// every waiter, rather than holding them. Stream.Close and Reset never
// wait. Conn.Close waits for the connection's goroutines, which closing
// the socket ends.
package h2conn
