package dialer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/h2conn"
	"github.com/eyeballs/dialer/internal/hev3"
)

// DialWebSocket dials a WebSocket with DefaultDialer. See
// (*Dialer).DialWebSocket.
func DialWebSocket(ctx context.Context, rawURL string, opts ...Option) (*websocket.Conn, *http.Response, error) {
	return DefaultDialer.DialWebSocket(ctx, rawURL, opts...)
}

// DialWebSocket resolves the URL's host, races its endpoints with Happy
// Eyeballs and returns a WebSocket on the first connection that can carry
// one: HTTP/3 or HTTP/2 whose SETTINGS enable extended CONNECT (RFC 9220,
// RFC 8441), or HTTP/1.1 (RFC 6455 upgrade). The URL's scheme is ws or http
// (plain TCP, HTTP/1.1 only) or wss or https (TLS).
//
// A second WebSocket to the same origin from the same Dialer opens a stream
// on a live HTTP/2 or HTTP/3 connection instead of dialing again.
//
// The returned response is the server's answer to the handshake; its
// ProtoMajor tells which HTTP version carries the WebSocket. When the
// server answers with a status other than 101 (HTTP/1.1) or 2xx (HTTP/2,
// HTTP/3), the error matches ErrRejected and the response (with up to 1 KiB
// of its body) is returned too. The context bounds the dial only; the
// connection outlives it.
func (d *Dialer) DialWebSocket(ctx context.Context, rawURL string, opts ...Option) (*websocket.Conn, *http.Response, error) {
	d.init()
	cfg := d.base.with(opts)
	u, err := parseURL(rawURL, "ws", "wss", "http", "https")
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	secure := u.Scheme == "wss" || u.Scheme == "https"
	host, port, err := splitHostPort(u.Host, defaultPort(secure))
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	if err := cfg.checkHostHeader(); err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	// A proxy gets a tunnel for ws as for wss: CONNECT (RFC 6455 §4.1:
	// "ask it to open a TCP connection to the host given by /host/").
	hop, err := cfg.proxyFor(httpScheme(u.Scheme), host, port)
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "proxy", Err: err}
	}
	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()

	w := &wsDial{d: d, cfg: cfg, u: u, rawURL: rawURL, key: originKey(cfg.trust().via(hop), host, port)}
	if secure {
		// Concurrent dials to the origin wait for one race, whose h2 or
		// h3 winner can carry them all.
		done, served, err := d.turn(ctx, w.key, w.usable, func() bool { return w.tryPooled(ctx) })
		if served {
			return w.conn, w.resp, w.err
		}
		if err != nil {
			return nil, nil, &DialError{URL: rawURL, Stage: "connect", Err: err}
		}
		defer done()
	}
	spec := raceSpec{
		url:      rawURL,
		kind:     "websocket",
		port:     port,
		need:     hev3.NeedWebSocket,
		versions: hev3.Versions(hev3.H1),
		noHTTPS:  !secure,
	}
	spec.host, spec.literal = hostOrLiteral(host)
	if secure {
		spec.tls = cfg.tlsConfig()
		h := d.caps.apply(w.key, spec.need, raceHints{versions: cfg.versionsOr(hev3.AllVersions), knownH3: cfg.knownH3})
		spec.versions, spec.knownH3, spec.h3Port = h.versions, h.knownH3, h.h3Port
	}
	if hop != nil && !spec.proxied(hop) {
		return nil, nil, &DialError{URL: rawURL, Proxy: hop.redacted(), Stage: "capability",
			Err: fmt.Errorf("%w: only HTTP/3 allowed, and %s", ErrUnsupported, noteProxied)}
	}
	return w.ladder(ctx, spec, secure)
}

// A wsDial is one DialWebSocket call: its configuration, its origin's key
// in the Dialer's pool, and the WebSocket a pooled connection gave it.
type wsDial struct {
	d      *Dialer
	cfg    config
	u      *url.URL
	rawURL string
	key    poolKey

	conn *websocket.Conn
	resp *http.Response
	err  error
}

// usable says which pooled connections may carry the WebSocket: ones that
// proved extended CONNECT, in a version WithProtocols allows.
func (w *wsDial) usable(c *carrier) bool {
	return c.canWebSocket() && w.cfg.versionsOr(hev3.AllVersions).Has(c.version)
}

// tryPooled opens the WebSocket on a live h2 or h3 connection of the
// Dialer and reports whether that settled the dial (with a WebSocket or a
// rejection the application made).
func (w *wsDial) tryPooled(ctx context.Context) bool {
	pc := w.d.pool.get(w.key, w.usable)
	if pc == nil {
		return false
	}
	start := time.Now()
	c, r, err := w.d.wsOnPooled(ctx, w.cfg, w.u, pc)
	if err != nil && (!errors.Is(err, ErrRejected) || blamesProtocol(r, err)) {
		// The pooled connection failed or was full, or its HTTP version
		// cannot carry the WebSocket after all (then the capability
		// cache sends the new dial a rung down): dial afresh.
		return false
	}
	w.cfg.emit(&Report{URL: w.rawURL, Kind: "websocket", Start: start, Winner: -1, Ready: time.Since(start),
		Reason: fmt.Sprintf("reused a live %s connection", pc.car.version)})
	w.conn, w.resp, w.err = c, r, wrapHandshake(w.rawURL, err)
	return true
}

// ladder races spec and opens the WebSocket on the winner. A server that
// blames the protocol for refusing it (see blamesProtocol), or a new
// connection that dies under its first CONNECT, sends the dial one rung
// down: h3, then h2, then h1.
func (w *wsDial) ladder(ctx context.Context, spec raceSpec, secure bool) (*websocket.Conn, *http.Response, error) {
	d, cfg := w.d, w.cfg
	for {
		car, rep, err := d.race(ctx, cfg, spec)
		if secure {
			d.caps.learn(w.key, spec.need, rep)
		}
		if err != nil {
			cfg.emit(rep)
			return nil, nil, err
		}
		var (
			c    *websocket.Conn
			resp *http.Response
		)
		if car.version == hev3.H1 {
			c, resp, err = upgradeH1(ctx, cfg, w.u, secure, car.conn)
		} else {
			c, resp, err = d.wsOnPooled(ctx, cfg, w.u, d.pool.add(w.key, car))
		}
		rep.Ready = time.Since(rep.Start)
		died := err != nil && !errors.Is(err, ErrRejected) && !car.alive()
		if car.version != hev3.H1 && (blamesProtocol(resp, err) || died) && ctx.Err() == nil && spec.versions != hev3.Versions(car.version) {
			// This origin's version cannot carry the WebSocket after all.
			d.caps.forget(w.key, car.version)
			spec.versions &^= hev3.Versions(car.version)
			rep.Reason += fmt.Sprintf("; WebSocket over %s failed (%v), trying the next protocol", car.version, err)
			cfg.emit(rep)
			continue
		}
		err = wrapHandshake(w.rawURL, err)
		if err != nil {
			rep.Err = err.Error()
		}
		cfg.emit(rep)
		return c, resp, err
	}
}

// blamesProtocol reports whether a failed extended CONNECT says that the
// connection's HTTP version cannot carry the WebSocket, although its
// SETTINGS said it could, so that the dial goes one rung down the ladder
// (h3 → h2 → h1) and the origin's capability cache remembers it:
//
//	no answer (stream reset, protocol error)  down a rung
//	400 Bad Request            down a rung: the server could not map the CONNECT (Apache httpd 2.4 with a :scheme it rejects)
//	405 Method Not Allowed     down a rung: the server or a proxy in front of it refuses CONNECT
//	421 Misdirected Request    down a rung: the connection cannot serve this origin (RFC 9110 §15.5.20)
//	501 Not Implemented        down a rung: extended CONNECT or :protocol unsupported after all
//	505 HTTP Version Not Supported  down a rung
//	401, 403, 404, 407, 429, other 4xx and 5xx  ErrRejected with the response: the
//	                           application answered; HTTP/1.1 would get the same
//
// A rejection on HTTP/1.1, the last rung, is always ErrRejected.
func blamesProtocol(resp *http.Response, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrRejected) && resp != nil {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusMisdirectedRequest,
			http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
			return true
		}
		return false
	}
	return serverResetStream(err)
}

// serverResetStream reports whether err is the server resetting the
// CONNECT stream instead of answering it: RST_STREAM (RFC 9113 §6.4) or,
// on HTTP/3, RESET_STREAM or STOP_SENDING with an HTTP/3 error code (RFC
// 9114 §4.1.1). REFUSED_STREAM and H3_REQUEST_REJECTED do not count: they
// say the request was not processed and may be retried (RFC 9113 §8.7,
// RFC 9114 §4.1.1), as a full connection does. Local conditions (a
// connection with no room left, a cancelled context) do not count either:
// they say nothing about what the server supports.
func serverResetStream(err error) bool {
	var (
		xs  http2.StreamError
		own *h2conn.StreamError
		h3e *http3.Error
		qs  *quic.StreamError
	)
	switch {
	case errors.As(err, &xs):
		return xs.Code != http2.ErrCodeRefusedStream && xs.Code != http2.ErrCodeCancel
	case errors.As(err, &own):
		return own.Remote && own.Code != http2.ErrCodeRefusedStream && own.Code != http2.ErrCodeCancel
	case errors.As(err, &h3e):
		return h3e.Remote && h3e.ErrorCode != http3.ErrCodeRequestRejected && h3e.ErrorCode != http3.ErrCodeRequestCanceled
	case errors.As(err, &qs):
		code := http3.ErrCode(qs.ErrorCode)
		return qs.Remote && code != http3.ErrCodeRequestRejected && code != http3.ErrCodeRequestCanceled
	}
	return false
}

// wrapHandshake wraps a handshake error in a DialError.
func wrapHandshake(rawURL string, err error) error {
	if err == nil {
		return nil
	}
	return &DialError{URL: rawURL, Stage: "handshake", Err: err}
}

// wsOnPooled opens a WebSocket on an extended CONNECT stream of a pooled
// h2 or h3 connection, on which a session is already reserved. The
// reservation ends with the WebSocket or here on failure.
func (d *Dialer) wsOnPooled(ctx context.Context, cfg config, u *url.URL, pc *pooled) (*websocket.Conn, *http.Response, error) {
	// The extended CONNECT names the target URI in its HTTP form:
	// :scheme is https for wss and http for ws (RFC 8441 §5, RFC 9220
	// §3); servers such as Apache httpd reject any other scheme.
	target := *u
	target.Scheme = httpScheme(u.Scheme)
	if cfg.host != "" {
		target.Host = cfg.host // :authority
	}
	rt := &connectRT{open: func(ctx context.Context, hdr http.Header) (*http.Response, io.ReadWriteCloser, error) {
		resp, rwc, err := pc.car.connect(ctx, &target, hdr, "websocket")
		if rwc != nil {
			rwc = &pooledStream{ReadWriteCloser: rwc, pc: pc}
		}
		return resp, rwc, err
	}}
	c, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: rt, CheckRedirect: noRedirect},
		HTTPHeader:      cfg.header,
		Subprotocols:    cfg.subprotocols,
		CompressionMode: cfg.compression,
	})
	if rt.stream == nil {
		// No stream was handed over: the reservation ends here.
		pc.release()
	}
	if err != nil {
		if rt.resp != nil && rt.resp.StatusCode/100 != 2 {
			err = fmt.Errorf("%w: %s", ErrRejected, rt.resp.Status)
		}
		// A connection that could not carry this WebSocket (dead, full,
		// draining after GOAWAY, or refusing extended CONNECT) is handed
		// out no more; what runs on it ends on its own.
		if !pc.car.alive() || !errors.Is(err, ErrRejected) || blamesProtocol(rt.resp, err) {
			pc.retire()
		}
		if pc.car.alive() && blamesProtocol(rt.resp, err) {
			d.caps.forget(pc.key, pc.car.version)
		}
		return nil, rt.resp, err
	}
	if cfg.readLimit != 0 {
		c.SetReadLimit(cfg.readLimit)
	}
	return c, rt.resp, nil
}

// upgradeH1 runs the RFC 6455 handshake of coder/websocket on conn, a raced
// TCP or TLS connection that negotiated HTTP/1.1.
func upgradeH1(ctx context.Context, cfg config, u *url.URL, secure bool, conn net.Conn) (*websocket.Conn, *http.Response, error) {
	used := false
	once := func(context.Context, string, string) (net.Conn, error) {
		if used {
			return nil, errors.New("dialer: the raced connection was already used")
		}
		used = true
		return conn, nil
	}
	tr := &http.Transport{DisableCompression: true}
	if secure {
		tr.DialTLSContext = once
	} else {
		tr.DialContext = once
	}
	// The handshake response either hands the connection to the WebSocket
	// or fails; nothing may stay pooled in this one-shot transport.
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: noRedirect}
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      client,
		Host:            cfg.host,
		HTTPHeader:      cfg.header,
		Subprotocols:    cfg.subprotocols,
		CompressionMode: cfg.compression,
	})
	if !used {
		conn.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, resp, fmt.Errorf("%w: %s", ErrRejected, resp.Status)
		}
		return nil, resp, err
	}
	if cfg.readLimit != 0 {
		c.SetReadLimit(cfg.readLimit)
	}
	return c, resp, nil
}

// httpScheme maps a WebSocket URI scheme to its HTTP one (RFC 6455 §3:
// wss is https, ws is http); others are returned as they are.
func httpScheme(scheme string) string {
	switch scheme {
	case "wss":
		return "https"
	case "ws":
		return "http"
	}
	return scheme
}

// parseURL parses an absolute URL and checks its scheme.
func parseURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return nil, fmt.Errorf("unsupported scheme %q (want one of %v)", u.Scheme, schemes)
	}
	if u.Host == "" {
		return nil, errors.New("missing host")
	}
	if u.Fragment != "" {
		return nil, errors.New("fragments are not allowed in a WebSocket URL")
	}
	// The handshake sends u.String(), which must mean the same URL: Parse
	// takes a few raw bytes (in an IPv6 zone, say) that it then escapes
	// into something it refuses.
	if u2, err := url.Parse(u.String()); err != nil || u2.Host != u.Host {
		return nil, fmt.Errorf("malformed host %q", u.Host)
	}
	return u, nil
}

// noRedirect makes an http.Client return a redirect as the response: a
// redirected WebSocket handshake is a rejection the caller must see.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func defaultPort(secure bool) string {
	if secure {
		return "443"
	}
	return "80"
}
