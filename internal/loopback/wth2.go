package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dunglas/httpsfv"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/eyeballs/dialer/internal/h2conn"
	"github.com/eyeballs/dialer/internal/wt2"
)

// WTH2Server serves HTTP/2 on TLS with the package's own HTTP/2 server
// (internal/h2conn), and HTTP/1.1 with net/http on the same listener: see
// StartH2Server. It counts TCP connections per negotiated protocol like an
// H2FakeServer and WebTransport sessions like a WTServer.
type WTH2Server struct {
	*H2FakeServer
	*wtBook
	settings []http2.Setting
	wt       bool         // serves WebTransport sessions
	handler  http.Handler // every other request
}

// H2Config says what StartH2Server serves.
type H2Config struct {
	// Handler serves every request that is not a WebTransport session,
	// over HTTP/2 and HTTP/1.1 alike; nil means EchoHandler. HTTP/2
	// requests reach it as net/http's HTTP/2 server would pass them (an
	// extended CONNECT keeps :protocol in Header), with a ResponseWriter
	// that sends each Write at once and supports Flush.
	Handler http.Handler
	// HTTP1 and HTTP2 choose what ALPN offers: "http/1.1" (net/http) and
	// "h2" (the package's own server). One of them is needed.
	HTTP1, HTTP2 bool
	// ExtendedConnect sends SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441)
	// in the server's SETTINGS, which WebSocket over HTTP/2 needs.
	ExtendedConnect bool
	// WebTransport serves WebTransport over HTTP/2
	// (draft-ietf-webtrans-http2) as StartWebTransport does over HTTP/3,
	// and sends its SETTINGS; it implies ExtendedConnect.
	WebTransport bool
}

// StartH2Server serves c on l with TLS. Unlike net/http's HTTP/2 server,
// the package's own offers RFC 8441 extended CONNECT in any process, with
// no GODEBUG setting. tlsConf needs a certificate; its NextProtos is set
// from c.
func StartH2Server(l net.Listener, tlsConf *tls.Config, c H2Config) (*WTH2Server, error) {
	s := &WTH2Server{wtBook: newWTBook(), wt: c.WebTransport, handler: c.Handler}
	if s.handler == nil {
		s.handler = EchoHandler()
	}
	switch {
	case c.WebTransport:
		s.settings = wt2.ServerSettings(&wt2.Config{})
	case c.ExtendedConnect:
		s.settings = []http2.Setting{{ID: http2.SettingEnableConnectProtocol, Val: 1}}
	}
	var h1 http.Handler
	if c.HTTP1 {
		h1 = s.handler
	}
	var serveH2 func(*H2FakeServer, *tls.Conn, *tallyConn) error
	if c.HTTP2 {
		serveH2 = func(fs *H2FakeServer, conn *tls.Conn, _ *tallyConn) error {
			return s.serveConn(fs.ctx, conn)
		}
	}
	fs, err := startH2(l, tlsConf, h1, "StartH2Server", serveH2)
	if err != nil {
		return nil, err
	}
	s.H2FakeServer = fs
	return s, nil
}

// StartWebTransportH2 serves WebTransport over HTTP/2 on l, the UDP-blocked
// counterpart of StartWebTransport: the same sessions (X-Reject, X-Test,
// WT-Available-Protocols, echo, "push", "close <code> <message>",
// datagrams), as capsules on extended CONNECT streams. Its SETTINGS enable
// extended CONNECT (RFC 8441) and WebTransport; every other request on the
// connection, WebSocket over HTTP/2 included, goes to EchoHandler, and so
// do HTTP/1.1 connections. tlsConf needs a certificate; its NextProtos is
// set to "h2" and "http/1.1".
func StartWebTransportH2(l net.Listener, tlsConf *tls.Config) (*WTH2Server, error) {
	return StartH2Server(l, tlsConf, H2Config{HTTP1: true, HTTP2: true, WebTransport: true})
}

// StartH2NoWebTransport is StartWebTransportH2 without WebTransport: its
// SETTINGS enable extended CONNECT only, so WebSocket over HTTP/2 works and
// a WebTransport client must find the WebTransport SETTINGS missing.
func StartH2NoWebTransport(l net.Listener, tlsConf *tls.Config) (*WTH2Server, error) {
	return StartH2Server(l, tlsConf, H2Config{HTTP1: true, HTTP2: true, ExtendedConnect: true})
}

// Close closes the sessions (code 0, "server closing"), then the
// connections.
func (s *WTH2Server) Close() error {
	s.closeSessions()
	return s.H2FakeServer.Close()
}

// serveConn serves one HTTP/2 connection until it ends or ctx is done.
func (s *WTH2Server) serveConn(ctx context.Context, c net.Conn) error {
	hc, err := h2conn.NewServer(ctx, c, h2conn.Config{Settings: s.settings})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for {
		st, err := hc.AcceptStream(ctx)
		if err != nil {
			break
		}
		wg.Go(func() { s.serveStream(ctx, hc, st) })
	}
	err = hc.Close()
	wg.Wait()
	return err
}

// serveStream answers one request: a WebTransport session, or anything
// the handler serves.
func (s *WTH2Server) serveStream(ctx context.Context, hc *h2conn.Conn, st *h2conn.Stream) {
	fields, err := st.Header(ctx)
	if err != nil {
		st.Reset(http2.ErrCodeCancel)
		return
	}
	r, err := requestOf(ctx, hc, st, fields)
	if err != nil {
		st.Reset(http2.ErrCodeProtocol)
		return
	}
	if s.wt && r.Method == http.MethodConnect && r.Header.Get(":protocol") == "webtransport" {
		s.serveSession(ctx, hc, st, r)
		return
	}
	w := &streamWriter{st: st, header: http.Header{}}
	s.handler.ServeHTTP(w, r)
	w.finish()
}

// serveSession accepts a WebTransport session as StartWebTransport does
// and serves it until it ends.
func (s *WTH2Server) serveSession(ctx context.Context, hc *h2conn.Conn, st *h2conn.Stream, r *http.Request) {
	if r.Header.Get("X-Reject") == "1" {
		w := &streamWriter{st: st, header: http.Header{}}
		http.Error(w, "rejected: X-Reject: 1", http.StatusForbidden)
		w.finish()
		return
	}
	peer, err := hc.PeerSettings(ctx)
	if err != nil {
		st.Reset(http2.ErrCodeCancel)
		return
	}
	resp := []hpack.HeaderField{{Name: ":status", Value: "200"}}
	for _, v := range r.Header.Values("X-Test") {
		resp = append(resp, hpack.HeaderField{Name: "x-test", Value: v})
	}
	if p := selectProtocol(r.Header.Values("Wt-Available-Protocols")); p != "" {
		if v, err := httpsfv.Marshal(httpsfv.NewItem(p)); err == nil {
			resp = append(resp, hpack.HeaderField{Name: "wt-protocol", Value: v})
		}
	}
	if err := st.WriteHeader(resp, false); err != nil {
		st.Reset(http2.ErrCodeCancel)
		return
	}
	sess := wt2.NewSession(st, false, wt2.Config{}, peer)
	s.serve(h2Session{s: sess, remote: hc.RemoteAddr()})
}

// selectProtocol returns the first of the client's WT-Available-Protocols
// that is in WTProtocols, or "".
func selectProtocol(offered []string) string {
	list, err := httpsfv.UnmarshalList(offered)
	if err != nil {
		return ""
	}
	for _, m := range list {
		if it, ok := m.(httpsfv.Item); ok {
			if p, ok := it.Value.(string); ok && slices.Contains(WTProtocols, p) {
				return p
			}
		}
	}
	return ""
}

// requestOf turns a request header block into the http.Request a handler
// sees, as net/http's HTTP/2 server builds it: :protocol stays in Header,
// the stream is the body.
func requestOf(ctx context.Context, hc *h2conn.Conn, st *h2conn.Stream, fields []hpack.HeaderField) (*http.Request, error) {
	r := &http.Request{Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{}, Body: st, RemoteAddr: hc.RemoteAddr().String()}
	var path, scheme string
	for _, f := range fields {
		switch f.Name {
		case ":method":
			r.Method = f.Value
		case ":path":
			path = f.Value
		case ":scheme":
			scheme = f.Value
		case ":authority":
			r.Host = f.Value
		case ":protocol":
			r.Header.Set(":protocol", f.Value)
		default:
			if strings.HasPrefix(f.Name, ":") {
				return nil, errors.New("dialertest: unknown pseudo-header " + f.Name)
			}
			r.Header.Add(http.CanonicalHeaderKey(f.Name), f.Value)
		}
	}
	if r.Method == "" || path == "" {
		return nil, errors.New("dialertest: request without :method or :path")
	}
	u, err := r.URL.Parse(scheme + "://" + r.Host + path)
	if err != nil {
		return nil, err
	}
	r.URL, r.RequestURI = u, path
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, hc.LocalAddr())
	return r.WithContext(ctx), nil
}

// streamWriter is the http.ResponseWriter of a request served on an
// h2conn stream.
type streamWriter struct {
	st     *h2conn.Stream
	header http.Header
	wrote  bool
	err    error
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	f := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}}
	for k, vs := range w.header {
		for _, v := range vs {
			f = append(f, hpack.HeaderField{Name: strings.ToLower(k), Value: v})
		}
	}
	w.err = w.st.WriteHeader(f, false)
}

func (w *streamWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.err != nil {
		return 0, w.err
	}
	return w.st.Write(b)
}

// Flush sends the header if it was not sent yet; data is not buffered.
func (w *streamWriter) Flush() { w.WriteHeader(http.StatusOK) }

// finish ends the response once the handler returned.
func (w *streamWriter) finish() {
	w.WriteHeader(http.StatusOK)
	_ = w.st.Close()
}

// h2Session is a wt2 session seen by the echo service.
type h2Session struct {
	s      *wt2.Session
	remote net.Addr
}

func (h h2Session) AcceptStream(ctx context.Context) (wtStream, error) {
	st, err := h.s.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (h h2Session) AcceptUniStream(ctx context.Context) (wtReceive, error) {
	st, err := h.s.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (h h2Session) OpenStreamSync(ctx context.Context) (wtStream, error) {
	st, err := h.s.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (h h2Session) OpenUniStreamSync(ctx context.Context) (wtSend, error) {
	st, err := h.s.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (h h2Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return h.s.ReceiveDatagram(ctx)
}
func (h h2Session) SendDatagram(b []byte) error { return h.s.SendDatagram(b) }
func (h h2Session) CloseWithError(code uint32, msg string) error {
	return h.s.CloseWithError(code, msg)
}
func (h h2Session) Context() context.Context { return h.s.Context() }
func (h h2Session) RemoteAddr() net.Addr     { return h.remote }

func (h h2Session) closed(err error) (uint32, string, bool, bool) {
	se, ok := errors.AsType[*wt2.SessionError](err)
	if !ok {
		return 0, "", false, false
	}
	return se.Code, se.Message, se.Remote, true
}
