package dialer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// DialWebTransport dials a WebTransport session with DefaultDialer. See
// (*Dialer).DialWebTransport.
func DialWebTransport(ctx context.Context, url string, opts ...Option) (*Session, *http.Response, error) {
	return DefaultDialer.DialWebTransport(ctx, url, opts...)
}

// DialWebTransport resolves the https URL's host, races QUIC attempts to its
// addresses with Happy Eyeballs, and returns a WebTransport session on the
// first HTTP/3 connection whose SETTINGS enable extended CONNECT, HTTP/3
// datagrams and WebTransport and whose server accepts the session.
//
// A second session to the same origin from the same Dialer opens on the
// live QUIC connection. WithSubprotocols offers application protocols
// (WT-Available-Protocols); Session.Protocol tells the server's choice.
//
// A server without WebTransport gives an error matching ErrUnsupported that
// names what its SETTINGS lacked; a non-2xx answer gives ErrRejected and
// the response. The context bounds the dial only.
func (d *Dialer) DialWebTransport(ctx context.Context, rawURL string, opts ...Option) (*Session, *http.Response, error) {
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
	key := originKey(host, port)
	req := &wtRequest{url: u, header: cfg.header, protocols: cfg.subprotocols}

	// pooled tries a new session on a live WebTransport connection.
	var (
		sess *Session
		resp *http.Response
	)
	pooled := func() bool {
		pc := d.pool.get(key, isWebTransport)
		if pc == nil {
			return false
		}
		start := time.Now()
		h := pc.car.h3
		r, s, e := h.wcc.Dial(ctx, u.String(), req.header)
		if e != nil && r == nil {
			pc.release()
			if !h.alive() {
				pc.drop()
			}
			return false // dial afresh
		}
		cfg.emit(&Report{URL: rawURL, Kind: "webtransport", Start: start, Winner: -1, Ready: time.Since(start),
			Reason: "reused a live h3 connection"})
		sess, resp, err = d.wtSession(rawURL, pc, r, s, e)
		return true
	}
	// Concurrent sessions to the origin wait for one race.
	done, served, terr := d.turn(ctx, key, isWebTransport, pooled)
	if served {
		return sess, resp, err
	}
	if terr != nil {
		return nil, nil, &DialError{URL: rawURL, Stage: "connect", Err: terr}
	}
	defer done()

	spec := raceSpec{
		url:      rawURL,
		kind:     "webtransport",
		port:     port,
		need:     hev3.NeedWebTransport,
		versions: cfg.versionsOr(hev3.Versions(hev3.H3)),
		knownH3:  true, // WebTransport always tries QUIC
		tls:      cfg.tlsConfig(),
		wt:       req,
	}
	spec.host, spec.literal = hostOrLiteral(host)
	car, rep, err := d.race(ctx, cfg, spec)
	d.caps.learn(key, spec.need, rep)
	if err != nil {
		cfg.emit(rep)
		return nil, nil, err
	}
	rep.Ready = time.Since(rep.Start)
	h := car.h3
	s, resp, err := d.wtSession(rawURL, d.pool.add(key, car), h.wtResp, h.wtSess, h.wtErr)
	if err != nil {
		rep.Err = err.Error()
	}
	cfg.emit(rep)
	return s, resp, err
}

func isWebTransport(c *carrier) bool { return c.h3 != nil && c.h3.wcc != nil }

// wtSession turns the outcome of a session request on a pooled connection
// (with a session reserved on it) into the dial's result. The reservation
// ends with the session.
func (d *Dialer) wtSession(rawURL string, pc *pooled, resp *http.Response, sess *webtransport.Session, err error) (*Session, *http.Response, error) {
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
	return newSession(wtH3{sess}, 3, pc.release), resp, nil
}
