package dialertest

import (
	"net/http"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer/internal/loopback"
)

// EchoHandler returns a WebSocket echo endpoint, what a Server serves by
// default on every path. It accepts WebSocket over HTTP/1.1 (RFC 6455),
// HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) alike, and
//   - answers 403 Forbidden when the request has "X-Reject: 1", to test
//     what a client does when a server refuses it;
//   - copies the request's X-Test header into its response, to check that
//     headers travel both ways;
//   - selects the first subprotocol the client offers that it knows, "echo"
//     or "chat", or none;
//   - accepts permessage-deflate when the client offers it;
//   - echoes every message, text or binary, of up to 16 MiB, until the
//     client closes or the server closes.
//
// Other requests, which are not WebSocket, get 426 Upgrade Required (over
// HTTP/1.1) or an error status.
func EchoHandler() http.Handler { return loopback.EchoHandler() }

// AcceptWebSocket accepts the WebSocket r asks for, whichever way it came:
// an HTTP/1.1 Upgrade, or an extended CONNECT over HTTP/2 (RFC 8441) or
// HTTP/3 (RFC 9220), which websocket.Accept alone refuses. Use it in a
// Handler of one's own (see Options.Handler) in place of websocket.Accept.
// On failure it has already written an error response. The handler must
// not return while it uses the connection: over HTTP/2 and HTTP/3,
// returning ends the stream that carries it.
func AcceptWebSocket(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	return loopback.AcceptWebSocket(w, r, opts)
}
