package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer/internal/hev3"
)

// DialWebSocket dials a WebSocket with DefaultDialer. See
// (*Dialer).DialWebSocket.
func DialWebSocket(ctx context.Context, url string, opts ...Option) (*websocket.Conn, *http.Response, error) {
	return DefaultDialer.DialWebSocket(ctx, url, opts...)
}

// DialWebSocket resolves the URL's host, races its endpoints with Happy
// Eyeballs and performs the WebSocket handshake on the winning connection.
// The URL's scheme is ws or http (plain TCP) or wss or https (TLS).
//
// The returned response is the server's answer to the handshake. When the
// server answers with a status other than 101, the error matches
// ErrRejected and the response (with up to 1 KiB of its body) is returned
// too. The context bounds the dial only; the connection outlives it.
func (d *Dialer) DialWebSocket(ctx context.Context, rawURL string, opts ...Option) (*websocket.Conn, *http.Response, error) {
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
		spec.dial = dialTCP(cfg.tlsConfig(), host)
	} else {
		spec.dial = dialTCP(nil, "")
	}

	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	w, rep, err := d.race(ctx, cfg, spec)
	if err != nil {
		cfg.emit(rep)
		return nil, nil, err
	}
	c, resp, err := upgradeH1(ctx, cfg, u, secure, w.conn)
	rep.Ready = time.Since(rep.Start)
	if err != nil {
		derr := &DialError{URL: rawURL, Stage: "handshake", Err: err}
		rep.Err = derr.Error()
		cfg.emit(rep)
		return nil, resp, derr
	}
	cfg.emit(rep)
	return c, resp, nil
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
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      client,
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
	return u, nil
}

func defaultPort(secure bool) string {
	if secure {
		return "443"
	}
	return "80"
}
