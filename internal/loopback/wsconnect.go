package loopback

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// placeholderKey stands in for the Sec-WebSocket-Key that RFC 8441 removed:
// coder/websocket insists on one, and the accept value it derives is dropped
// from the response anyway.
const placeholderKey = "dGhlIHNhbXBsZSBub25jZQ=="

// acceptExtendedConnect accepts a WebSocket carried by an RFC 8441 (HTTP/2)
// or RFC 9220 (HTTP/3) extended CONNECT stream. coder/websocket only knows
// the HTTP/1.1 upgrade, so it is shown one: a GET copy of r with the upgrade
// headers, and a ResponseWriter that turns its 101 into the 200 that opens
// the stream and whose Hijack returns the stream (r.Body for reading, w for
// writing). The Sec-WebSocket-Version the client sent is kept, so a client
// that leaves it out gets coder/websocket's 400.
//
// The stream belongs to the handler: it must not return while the WebSocket
// is in use, and returning ends the stream.
func acceptExtendedConnect(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	up := r.Clone(r.Context())
	up.Method = http.MethodGet
	up.Header.Del(":protocol")
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	up.Header.Set("Sec-WebSocket-Key", placeholderKey)
	if r.ProtoMajor == 3 {
		up.Proto = "HTTP/3.0" // quic-go puts :protocol in Proto
	}
	return websocket.Accept(&connectWriter{ResponseWriter: w, req: r}, up, opts)
}

// connectWriter is the ResponseWriter acceptExtendedConnect gives to
// coder/websocket.
type connectWriter struct {
	http.ResponseWriter
	req *http.Request
}

// WriteHeader sends 200 with the negotiated subprotocol and extensions for
// the 101 of an HTTP/1.1 upgrade, and any other status unchanged.
func (cw *connectWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		h := cw.Header()
		for _, k := range []string{"Connection", "Upgrade", "Sec-WebSocket-Accept"} {
			h.Del(k)
		}
		code = http.StatusOK
	}
	cw.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the original writer.
func (cw *connectWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// Hijack sends the 200 response and returns the CONNECT stream as a
// net.Conn.
func (cw *connectWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rc := http.NewResponseController(cw.ResponseWriter)
	if err := rc.Flush(); err != nil {
		return nil, nil, fmt.Errorf("dialertest: send extended CONNECT response: %w", err)
	}
	c := &streamConn{body: cw.req.Body, w: cw.ResponseWriter, rc: rc, local: localAddr(cw.req), remote: remoteAddr(cw.req)}
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// streamConn is an extended CONNECT stream seen from the handler: the
// request body is what the client sends, the response body what it
// receives.
type streamConn struct {
	body          io.ReadCloser
	w             io.Writer
	rc            *http.ResponseController
	local, remote net.Addr

	wmu    sync.Mutex // held while writing, so that Close can wait for a write
	closed atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

func (c *streamConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.body.Read(p)
}

// Write writes p to the response and flushes it, so that every WebSocket
// frame leaves at once.
func (c *streamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

// Close stops reading the request body and waits for a write in progress,
// so that nothing touches the ResponseWriter once it returns (net/http's
// HTTP/2 server panics on a write after the handler returned). A write
// blocked on flow control is made to fail through a write deadline.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.body.Close()
		if !c.wmu.TryLock() {
			_ = c.rc.SetWriteDeadline(time.Now())
			c.wmu.Lock()
		}
		c.wmu.Unlock()
	})
	return c.closeErr
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }

// localAddr returns the server address r arrived on, as net/http and
// quic-go's http3 record it in the request context.
func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return streamAddr("")
}

// remoteAddr parses r.RemoteAddr, a TCP address for HTTP/2 and a UDP one
// for HTTP/3.
func remoteAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return streamAddr(r.RemoteAddr)
	}
	if r.ProtoMajor == 3 {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// streamAddr is an address that could not be parsed.
type streamAddr string

func (a streamAddr) Network() string { return "stream" }
func (a streamAddr) String() string  { return string(a) }
