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
	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	key := originKey(cfg.trust(), host, port)
	if err := cfg.checkHost(); err != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "url", Err: err}
	}
	target := *u
	if cfg.host != "" {
		target.Host = cfg.host // :authority
	}
	req := &wtRequest{url: &target, header: cfg.header, protocols: cfg.subprotocols}
	// usable says which pooled connections may carry the session: ones
	// that proved WebTransport, in a version WithProtocols allows.
	allowed := cfg.versionsOr(hev3.Versions(hev3.H3) | hev3.Versions(hev3.H2))
	usable := func(c *carrier) bool { return c.canWebTransport() && allowed.Has(c.version) }

	// tryPooled tries a new session on a live WebTransport connection.
	var (
		sess *Session
		resp *http.Response
	)
	tryPooled := func() bool {
		pc := d.pool.get(key, usable)
		if pc == nil {
			return false
		}
		start := time.Now()
		r, s, e := pc.car.requestSession(ctx, req)
		if e != nil && r == nil {
			pc.release()
			if !pc.car.alive() {
				pc.retire()
			}
			return false // dial afresh
		}
		cfg.emit(&Report{URL: rawURL, Kind: "webtransport", Start: start, Winner: -1, Ready: time.Since(start),
			Reason: fmt.Sprintf("reused a live %s connection", pc.car.version)})
		sess, resp, err = d.wtSession(rawURL, pc, r, s, e)
		return true
	}
	// Concurrent sessions to the origin wait for one race.
	done, served, terr := d.turn(ctx, key, usable, tryPooled)
	if served {
		return sess, resp, err
	}
	if terr != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "connect", Err: terr}
	}
	defer done()

	spec := raceSpec{
		url:     rawURL,
		kind:    "webtransport",
		port:    port,
		need:    hev3.NeedWebTransport,
		knownH3: true, // WebTransport always tries QUIC
		tls:     cfg.tlsConfig(),
		wt:      req,
	}
	spec.host, spec.literal = hostOrLiteral(host)
	// What earlier races showed (UDP blocked, an Alt-Svc port) shapes this
	// one, but a dial held to h3 still tries it.
	h := d.caps.apply(key, spec.need, raceHints{versions: allowed, knownH3: true})
	if h.versions&allowed == 0 {
		h.versions = allowed
	}
	spec.versions, spec.h3Port = h.versions, h.h3Port
	car, rep, err := d.race(ctx, cfg, spec)
	d.caps.learn(key, spec.need, rep)
	if err != nil {
		cfg.emit(rep)
		return nil, nil, err
	}
	pc := d.pool.add(key, car)
	var (
		r    *http.Response
		impl sessionImpl
	)
	if h := car.h3; h != nil {
		// The session request was the QUIC attempt's capability check.
		r, impl, err = h3Session(h.wtResp, h.wtSess, h.wtErr)
	} else {
		r, impl, err = car.requestSession(ctx, req)
	}
	rep.Ready = time.Since(rep.Start)
	s, resp, err := d.wtSession(rawURL, pc, r, impl, err)
	if err != nil {
		rep.Err = err.Error()
	}
	cfg.emit(rep)
	return s, resp, err
}

// wtSession turns the outcome of a session request on a pooled connection
// (with a session reserved on it) into the dial's result. The reservation
// ends with the session.
func (d *Dialer) wtSession(rawURL string, pc *pooled, resp *http.Response, sess sessionImpl, err error) (*Session, *http.Response, error) {
	if err != nil || sess == nil {
		pc.release()
		if resp != nil && resp.StatusCode/100 != 2 {
			resp.Body = readSome(resp.Body)
			err = fmt.Errorf("%w: %s", ErrRejected, resp.Status)
		} else if err == nil {
			err = errors.New("webtransport: no session")
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
