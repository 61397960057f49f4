package loopback

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// echoSubprotocols are the WebSocket subprotocols EchoHandler knows.
var echoSubprotocols = []string{"echo", "chat"}

// echoReadLimit is the largest message EchoHandler echoes (coder/websocket's
// default of 32 KiB is too small for bulk tests).
const echoReadLimit = 16 << 20

// EchoHandler returns a WebSocket echo endpoint, the server side of every
// WebSocket test and of the demo. It accepts the HTTP/1.1 upgrade (RFC 6455)
// and extended CONNECT over HTTP/2 (RFC 8441: the package's own HTTP/2
// server, StartWebTransportH2 and StartH2NoWebTransport, or net/http's in a
// process started with GODEBUG=http2xconnect=1) and HTTP/3 (RFC 9220, see
// StartH3), and behaves the same over all three. It
//   - answers 403 when the request has "X-Reject: 1", so tests can check
//     rejection handling;
//   - copies the request's X-Test header into the upgrade response, so tests
//     can check that headers travel both ways;
//   - selects the first subprotocol the client offers that it knows ("echo"
//     or "chat"), or none;
//   - accepts permessage-deflate when the client offers it;
//   - echoes every message with the same type until the client closes, or
//     until the request's context ends (see HTTPServer.Close).
func EchoHandler() http.Handler {
	return http.HandlerFunc(serveEcho)
}

func serveEcho(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Reject") == "1" {
		http.Error(w, "rejected: X-Reject: 1", http.StatusForbidden)
		return
	}
	if v := r.Header.Values("X-Test"); len(v) > 0 {
		w.Header()["X-Test"] = v
	}
	opts := &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover}
	if p := firstKnown(r.Header.Values("Sec-WebSocket-Protocol"), echoSubprotocols); p != "" {
		opts.Subprotocols = []string{p}
	}
	c, err := acceptWebSocket(w, r, opts)
	if err != nil {
		return // acceptWebSocket has written the error response
	}
	defer c.CloseNow()
	c.SetReadLimit(echoReadLimit)
	_ = echo(r.Context(), c)
}

// AcceptWebSocket upgrades r to a WebSocket however it arrived: an
// HTTP/1.1 Upgrade (RFC 6455), or an extended CONNECT over HTTP/2 (RFC 8441)
// or HTTP/3 (RFC 9220), which coder/websocket's Accept alone refuses. On
// failure it has written the error response. The handler must not return
// before it is done with the WebSocket.
func AcceptWebSocket(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	return acceptWebSocket(w, r, opts)
}

// acceptWebSocket upgrades r to a WebSocket. It is the one place that knows
// how the request arrived: an HTTP/1.1 Upgrade, or an RFC 8441 (HTTP/2) or
// RFC 9220 (HTTP/3) extended CONNECT (see acceptExtendedConnect), so
// handlers built on it, such as EchoHandler, need no change. The handler
// must not return before it is done with the WebSocket.
func acceptWebSocket(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	if isExtendedConnect(r) {
		return acceptExtendedConnect(w, r, opts)
	}
	return websocket.Accept(w, r, opts)
}

// isExtendedConnect reports whether r is an extended CONNECT for the
// websocket protocol: net/http puts the HTTP/2 :protocol pseudo-header in
// r.Header, quic-go's http3 puts the HTTP/3 one in r.Proto.
func isExtendedConnect(r *http.Request) bool {
	if r.Method != http.MethodConnect {
		return false
	}
	return strings.EqualFold(r.Header.Get(":protocol"), "websocket") ||
		(r.ProtoMajor == 3 && strings.EqualFold(r.Proto, "websocket"))
}

// firstKnown returns the first of the offered comma-separated tokens that is
// in known, keeping the client's order of preference (coder/websocket on its
// own would keep the server's).
func firstKnown(offered, known []string) string {
	for _, line := range offered {
		for _, tok := range strings.Split(line, ",") {
			tok = strings.TrimSpace(tok)
			for _, k := range known {
				if strings.EqualFold(tok, k) {
					return k
				}
			}
		}
	}
	return ""
}

// echo copies every message back with its type until reading fails, which
// includes the client's close frame (answered by coder/websocket). Each
// message is read whole into one buffer kept for the connection and sent
// back as one frame, as a real echo service would: a streaming copy would
// cost a 32 KiB buffer per message and a second (empty, final) frame.
//
// ctx ends the connection through one context.AfterFunc; each message's
// reads and writes use a context that is never done, for which
// coder/websocket arms no timer of its own (one allocation each way per
// message otherwise, which BenchmarkDatapath would count as the client's).
func echo(ctx context.Context, c *websocket.Conn) error {
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { c.CloseNow(); close(closed) })
	defer func() {
		if !stop() {
			<-closed // the handler returns once the connection is closed
		}
	}()
	var buf bytes.Buffer
	for {
		typ, rd, err := c.Reader(context.Background())
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return err
		}
		if err := c.Write(context.Background(), typ, buf.Bytes()); err != nil {
			return err
		}
		if buf.Cap() > echoKeep {
			buf = bytes.Buffer{} // a bulk message's buffer is not kept
		}
	}
}

// echoKeep is the largest buffer echo keeps between messages.
const echoKeep = 1 << 20
