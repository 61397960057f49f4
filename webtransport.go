package dialer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// The request headers of a WebTransport session's extended CONNECT:
//
//	field                   HTTP/3 (webtransport-go)          HTTP/2 (wth2.go)
//	:method                 CONNECT                           CONNECT          RFC 9220 §3 / RFC 8441 §4
//	:protocol               webtransport-h3                   webtransport     draft-ietf-webtrans-http3-15 §3.2 / -http2-15 §3.1
//	:scheme                 https                             https            the URL must be https
//	:path                   the URL's path and query          the same         RFC 9113 §8.3.1, RFC 9114 §4.3.1
//	:authority              the URL's host, or WithHeader's Host  the same
//	wt-available-protocols  WithSubprotocols, as a structured-field list (RFC 8941 §3.1)
//	other headers           WithHeader's, lowercase; connection-specific fields (RFC 9113 §8.2.2) dropped by both clients
//
// No Origin is sent unless WithHeader gives one (it is for browsers, RFC
// 6454). The session is ready on a 2xx answer; WT-Protocol in the answer
// names the chosen application protocol and must be one offered.

// DialWebTransport dials a WebTransport session with DefaultDialer. See
// (*Dialer).DialWebTransport.
func DialWebTransport(ctx context.Context, rawURL string, opts ...Option) (*Session, *http.Response, error) {
	return DefaultDialer.DialWebTransport(ctx, rawURL, opts...)
}

// DialWebTransport resolves the https URL's host, races QUIC (HTTP/3) and
// TCP+TLS (HTTP/2) attempts to its addresses with Happy Eyeballs, and
// returns a WebTransport session on the first connection whose SETTINGS
// prove WebTransport: extended CONNECT, HTTP/3 datagrams and WebTransport
// over HTTP/3 (draft-ietf-webtrans-http3), or extended CONNECT and
// WebTransport over HTTP/2 (draft-ietf-webtrans-http2, capsules on the
// CONNECT stream) when QUIC is blocked or slower. The Session is the same
// either way; HTTPVersion and DatagramsReliable tell which carries it.
// WithProtocols("h3") or ("h2") restricts the race to one.
//
// A second session to the same origin from the same Dialer opens on the
// live connection. WithSubprotocols offers application protocols
// (WT-Available-Protocols); Session.Protocol tells the server's choice.
//
// A server without WebTransport gives an error matching ErrUnsupported that
// names what its SETTINGS lacked; a non-2xx answer gives ErrRejected and
// the response. The context bounds the dial only.
func (d *Dialer) DialWebTransport(ctx context.Context, rawURL string, opts ...Option) (*Session, *http.Response, error) {
	d.init()
	cfg := d.base.with(opts)
	u, err := parseURL(rawURL, "https")
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	host, port, err := splitHostPort(u.Host, "443")
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	if err := cfg.checkHostHeader(); err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	hop, err := cfg.proxyFor("https", host, port)
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "proxy", Err: err}
	}
	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	target := *u
	if cfg.host != "" {
		target.Host = cfg.host // :authority
	}
	w := &wtDial{d: d, cfg: cfg, rawURL: rawURL, key: originKey(cfg.trust().via(hop), host, port), hop: hop,
		req:     &wtRequest{url: &target, header: cfg.header, protocols: cfg.subprotocols},
		allowed: cfg.versionsOr(hev3.Versions(hev3.H3) | hev3.Versions(hev3.H2))}
	// Concurrent sessions to the origin wait for one race.
	done, served, err := d.turn(ctx, w.key, w.usable, func() bool { return w.tryPooled(ctx) })
	if served {
		return w.sess, w.resp, w.err
	}
	if err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "connect", Err: err}
	}
	defer done()

	spec := raceSpec{
		url:     rawURL,
		kind:    "webtransport",
		port:    port,
		need:    hev3.NeedWebTransport,
		knownH3: true, // WebTransport always tries QUIC
		tls:     cfg.tlsConfig(),
		wt:      w.req,
	}
	spec.setHost(host)
	// What earlier races showed (UDP blocked, an Alt-Svc port) shapes this
	// one, but a dial held to h3 still tries it.
	h := d.caps.apply(w.key, spec.need, raceHints{versions: w.allowed, knownH3: true})
	if h.versions&w.allowed == 0 {
		h.versions = w.allowed
	}
	spec.versions, spec.h3Port = h.versions, h.h3Port
	// Through a proxy, QUIC cannot go: the session runs over HTTP/2.
	if hop != nil && !spec.proxied(hop) {
		return nil, nil, &DialError{URL: rawURL, Proxy: hop.redacted(), Stage: "capability",
			Err: fmt.Errorf("%w: only HTTP/3 allowed, and %s", ErrUnsupported, noteProxied)}
	}
	return w.race(ctx, spec)
}

// A wtDial is one DialWebTransport call: its configuration, its session
// request, its origin's key in the Dialer's pool, and the session a pooled
// connection gave it.
type wtDial struct {
	d       *Dialer
	cfg     config
	rawURL  string
	key     poolKey
	req     *wtRequest
	allowed hev3.Versions // WithProtocols: h3, h2 or both
	hop     *proxyHop     // the proxy, or nil

	sess *Session
	resp *http.Response
	err  error
}

// usable says which pooled connections may carry the session: ones that
// proved WebTransport, in a version WithProtocols allows.
func (w *wtDial) usable(c *carrier) bool { return c.canWebTransport() && w.allowed.Has(c.version) }

// tryPooled requests the session on a live WebTransport connection of the
// Dialer and reports whether that settled the dial.
func (w *wtDial) tryPooled(ctx context.Context) bool {
	pc := w.d.pool.get(w.key, w.usable)
	if pc == nil {
		return false
	}
	start := time.Now()
	r, s, err := pc.car.requestSession(ctx, w.req)
	if err != nil && r == nil {
		pc.release()
		if !pc.car.alive() {
			pc.retire()
		}
		return false // dial afresh
	}
	w.cfg.emit(&Report{URL: w.rawURL, Kind: "webtransport", Start: start, Winner: -1, Ready: time.Since(start),
		Reason: fmt.Sprintf("reused a live %s connection", pc.car.version), Proxy: w.hop.report("webtransport")})
	w.sess, w.resp, w.err = w.d.wtSession(ctx, w.rawURL, pc, r, s, err)
	w.err = w.hop.blame(w.err)
	return true
}

// race races spec and opens the session on the winner: on HTTP/3 the
// session request was the attempt's capability check, on HTTP/2 it is
// sent now.
func (w *wtDial) race(ctx context.Context, spec raceSpec) (*Session, *http.Response, error) {
	d, cfg := w.d, w.cfg
	car, rep, err := d.race(ctx, cfg, spec)
	d.caps.learn(w.key, spec.need, rep)
	if err != nil {
		cfg.emit(rep)
		return nil, nil, err
	}
	pc := d.pool.add(w.key, car)
	var (
		r    *http.Response
		impl sessionImpl
	)
	if h := car.h3; h != nil {
		r, impl, err = h3Session(h.wtResp, h.wtSess, h.wtErr)
	} else {
		r, impl, err = car.requestSession(ctx, w.req)
	}
	rep.Ready = time.Since(rep.Start)
	s, resp, err := d.wtSession(ctx, w.rawURL, pc, r, impl, err)
	err = w.hop.blame(err)
	if err != nil {
		rep.Err = err.Error()
	}
	cfg.emit(rep)
	return s, resp, err
}

// wtSession turns the outcome of a session request on a pooled connection
// (with a session reserved on it) into the dial's result. The reservation
// ends with the session.
func (d *Dialer) wtSession(ctx context.Context, rawURL string, pc *pooled, resp *http.Response, sess sessionImpl, err error) (*Session, *http.Response, error) {
	pc.car.setTLS(resp)
	if err != nil || sess == nil {
		pc.release()
		if resp != nil && resp.StatusCode/100 != 2 {
			resp.Body = readSome(ctx, resp.Body)
			err = fmt.Errorf("%w: %s", ErrRejected, resp.Status)
		} else if err == nil {
			err = errors.New("the server answered 2xx but set up no session")
		}
		return nil, resp, &DialError{URL: rawURL, Stage: "handshake", Err: convertErr(err)}
	}
	resp.Body = http.NoBody
	version := 3
	if pc.car.h2 != nil {
		version = 2
	}
	return newSession(sess, version, pc.release), resp, nil
}
