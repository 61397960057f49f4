package dialer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/hev3"
)

// A Transport is an http.RoundTripper that races connections with Happy
// Eyeballs: a drop-in replacement for http.DefaultTransport that is faster
// to the first byte on dual-stack and QUIC-capable origins.
//
// For https origins it races QUIC (where an HTTPS record, an earlier
// Alt-Svc header or an earlier success says h3) and TCP+TLS offering h2 and
// http/1.1, and keeps HTTP/2 and HTTP/3 connections in its Dialer's pool,
// where WebSocket and WebTransport dials of the same Dialer find them too.
// Origins that speak only HTTP/1.1 and plain http:// go through an
// http.Transport whose connections are raced by the same Dialer. An https
// origin behind a proxy (WithProxy, or the environment's) is raced
// through the proxy's addresses with h2 in the tunnel, pooled apart from
// direct connections; HTTP/1.1 through a proxy goes through net/http's
// CONNECT, over connections to the proxy the Dialer races.
//
// A Transport is safe for concurrent use.
type Transport struct {
	once  sync.Once // builds the zero Transport
	d     *Dialer
	trust trust // of d's options: every request uses them
	h1    *http.Transport

	mu    sync.Mutex
	stash map[poolKey]net.Conn // raced HTTP/1.1 connections for h1 to pick up

	// envHops caches, per https origin, the proxy the environment names
	// (nil: none). ProxyFromEnvironment reads the variables once per
	// process, so its answer for a host and port never changes; asking it
	// builds a request each time. At most maxEnvHops origins are kept.
	hopMu   sync.RWMutex
	envHops map[hostPort]*proxyHop
	// routes caches, under hopMu and by an https URL's host as written,
	// what RoundTrip derives from it when the proxy is the environment's
	// (so fixed): a request on a warm connection then neither parses the
	// host nor builds the pool key. At most maxEnvHops hosts are kept.
	routes map[string]route
}

// route is what a request to an https origin is sent by: the origin, the
// proxy on the way (nil: none) and the pool key of its connections.
type route struct {
	host string
	port uint16
	hop  *proxyHop
	key  poolKey
}

// hostPort is an origin's host and port.
type hostPort struct {
	host string
	port uint16
}

// maxEnvHops bounds Transport.envHops.
const maxEnvHops = 1024

// NewTransport returns a Transport with its own Dialer configured by opts.
// The zero Transport is ready to use and behaves like NewTransport().
func NewTransport(opts ...Option) *Transport {
	return New(opts...).Transport()
}

// Transport returns an http.RoundTripper that dials with d and shares
// connections with d's WebSocket and WebTransport dials made under the
// same trust (the Dialer's TLS and resolver options: see WithTLSConfig).
func (d *Dialer) Transport() *Transport {
	t := &Transport{d: d}
	t.init()
	return t
}

// init builds t on first use; a zero Transport gets a Dialer of its own.
func (t *Transport) init() {
	t.once.Do(func() {
		if t.d == nil {
			t.d = New()
		}
		t.d.init()
		t.setup()
	})
}

// setup builds the HTTP/1.1 side of t.
func (t *Transport) setup() {
	d := t.d
	t.trust = d.base.trust()
	t.stash = map[poolKey]net.Conn{}
	proxy := d.base.proxy
	if proxy == nil {
		proxy = ProxyFromEnvironment
	}
	// Plain http:// and HTTP/1.1-only https origins behind a proxy go
	// through net/http's transport, which tunnels (CONNECT, SOCKS5)
	// above DialContext: the proxy's addresses are raced by the Dialer,
	// without a proxy of its own.
	t.h1 = &http.Transport{
		Proxy: proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.dialContext(ctx, network, addr, false)
		},
		DialTLSContext:        t.dialTLS,
		TLSClientConfig:       d.base.tls,
		IdleConnTimeout:       d.pool.idleTimeout(),
		ResponseHeaderTimeout: d.base.responseHeader,
		MaxConnsPerHost:       d.base.maxConnsPerHost,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		TLSHandshakeTimeout:   10 * time.Second,
	}
}

// Dialer returns the Dialer the Transport dials with, for WebSocket and
// WebTransport dials that share its connections.
func (t *Transport) Dialer() *Dialer {
	t.init()
	return t.d
}

// CloseIdleConnections closes the connections that carry no request or
// session.
func (t *Transport) CloseIdleConnections() {
	t.init()
	t.h1.CloseIdleConnections()
	t.d.CloseIdleConnections()
	t.mu.Lock()
	for k, c := range t.stash {
		c.Close()
		delete(t.stash, k)
	}
	t.mu.Unlock()
}

// httpsProxyFor is the Dialer's proxyFor for an https origin, from
// envHops when the proxy function is the environment's.
func (t *Transport) httpsProxyFor(host string, port uint16) (*proxyHop, error) {
	if t.d.base.proxy != nil {
		return t.d.base.proxyFor("https", host, port)
	}
	k := hostPort{host, port}
	t.hopMu.RLock()
	hop, ok := t.envHops[k]
	t.hopMu.RUnlock()
	if ok {
		return hop, nil
	}
	hop, err := t.d.base.proxyFor("https", host, port)
	if err != nil {
		return nil, err
	}
	t.hopMu.Lock()
	if t.envHops == nil {
		t.envHops = map[hostPort]*proxyHop{}
	}
	if len(t.envHops) < maxEnvHops {
		t.envHops[k] = hop
	}
	t.hopMu.Unlock()
	return hop, nil
}

// httpsRoute returns the route of an https request, from routes when the
// proxy is the environment's.
func (t *Transport) httpsRoute(req *http.Request) (route, error) {
	cache := t.d.base.proxy == nil
	if cache {
		t.hopMu.RLock()
		r, ok := t.routes[req.URL.Host]
		t.hopMu.RUnlock()
		if ok {
			return r, nil
		}
	}
	host, port, err := splitHostPort(req.URL.Host, "443")
	if err != nil {
		return route{}, &DialError{URL: req.URL.String(), Stage: "url", Err: err}
	}
	hop, err := t.httpsProxyFor(host, port)
	if err != nil {
		return route{}, &DialError{URL: req.URL.String(), Stage: "proxy", Err: err}
	}
	r := route{host: host, port: port, hop: hop, key: originKey(t.trust.via(hop), host, port)}
	if cache {
		t.hopMu.Lock()
		if t.routes == nil {
			t.routes = map[string]route{}
		}
		if len(t.routes) < maxEnvHops {
			t.routes[req.URL.Host] = r
		}
		t.hopMu.Unlock()
	}
	return r, nil
}

// RoundTrip sends one HTTP request and returns its response.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	if req.URL == nil || req.URL.Host == "" {
		closeBody(req)
		return nil, errors.New("dialer: request has no URL host")
	}
	if req.URL.Scheme != "https" {
		// Plain http:// goes to a proxy in absolute form, as net/http
		// sends it (RFC 9112 §3.2.2), or directly.
		return t.viaH1(req)
	}
	// An https origin behind a proxy is raced through it like any other
	// (h2 in the tunnel, pooled apart from direct connections); one that
	// speaks HTTP/1.1 only goes through net/http's own CONNECT.
	r, err := t.httpsRoute(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	host, port, hop, key := r.host, r.port, r.hop, r.key
	if !t.d.base.versionsOr(hev3.AllVersions).Has(hev3.H2) && (!t.d.base.knownH3 || hop != nil) {
		return t.viaH1(req)
	}
	// A request goes out at most maxSends times: again only when the
	// connection broke under it before an answer and it is safe to repeat.
	const maxSends = 3
	// emit hands over the report of a race whose winner dialed with 0-RTT
	// once the first request says what the server did with it.
	var emit func()
	defer func() {
		if emit != nil {
			emit()
		}
	}()
	for sends, refused := 0, 0; ; {
		pc := t.d.pool.get(key, (*carrier).servesHTTP)
		if pc == nil {
			if t.d.caps.h1Only(key) {
				return t.viaH1(req)
			}
			var err error
			if pc, err = t.dial(req.Context(), req.URL.String(), key, host, port, hop, &emit); err != nil {
				closeBody(req)
				return nil, err
			}
			if pc == nil {
				if t.stashed(key) || t.d.caps.h1Only(key) {
					return t.viaH1(req)
				}
				continue // another request's race ended: look again
			}
		}
		resp, broken, err := t.send(pc, req)
		if errors.Is(err, errUnprocessed) && refused < maxRefused {
			// The server or the client refused the request before it was
			// processed: it may go again whatever its method.
			refused++
			if again, ok := rewindAny(req); ok && pause(req.Context(), refused) {
				req = again
				continue
			}
		}
		sends++
		if err != nil && broken && sends < maxSends {
			// The connection died under the request before it got an
			// answer; send it again on a new one where that is safe, as
			// net/http does.
			if again, ok := rewind(req); ok {
				req = again
				continue
			}
		}
		return resp, err
	}
}

// viaH1 sends req through the HTTP/1.1 (and proxy) transport.
func (t *Transport) viaH1(req *http.Request) (*http.Response, error) {
	resp, err := t.h1.RoundTrip(req)
	if err == nil {
		t.learnAltSvc(req, resp)
	}
	return resp, err
}

// send runs req on a pooled h2 or h3 connection with a request reserved on
// it; the reservation ends with the response body. broken reports that the
// request failed because the connection did, so that it may be sent again
// on another.
func (t *Transport) send(pc *pooled, req *http.Request) (resp *http.Response, broken bool, err error) {
	fresh := !pc.used()
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.GotConn != nil {
		info := httptrace.GotConnInfo{Reused: !fresh}
		if pc.car.h2 != nil && pc.car.h2.sn != nil {
			info.Conn = pc.car.h2.sn
		}
		trace.GotConn(info)
	}
	// Only a response header timeout needs a context of the request's
	// own, to end it early; without one the request goes as it came (a
	// derived context and its Done channel cost three allocations a
	// request, and the clients select on Done).
	var (
		cancel context.CancelFunc
		timer  *time.Timer
		out    = req
	)
	if d := t.h1.ResponseHeaderTimeout; d > 0 {
		var ctx context.Context
		ctx, cancel = context.WithCancel(req.Context())
		timer = time.AfterFunc(d, cancel)
		out = req.WithContext(ctx)
	}
	resp, err = pc.car.roundTrip(out)
	if timer != nil && !timer.Stop() {
		// The timer fired: the request was, or is being, cancelled.
		if err == nil {
			resp.Body.Close()
		}
		err = &timeoutError{fmt.Sprintf("dialer: timeout awaiting response headers after %v", t.h1.ResponseHeaderTimeout)}
	}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		pc.release()
		if unprocessed(err) {
			// Not sent, or refused unread: the connection is not to
			// blame unless it is closing.
			if !pc.car.alive() {
				pc.retire()
			}
			return nil, false, &DialError{URL: req.URL.String(), Stage: "request",
				Err: fmt.Errorf("%s %s: %w: %w", pc.car.version, pc.car.ep.Addr, errUnprocessed, err)}
		}
		// A connection that fails its first request is taken as broken
		// even if it does not look closed yet: the next race tries its
		// address last, and QUIC not at all for a while.
		if broken = fresh || !pc.car.alive() || connLevel(err); broken {
			pc.retire()
			if fresh {
				t.d.caps.avoid(pc.key, pc.car.ep.Addr)
				if pc.car.version == hev3.H3 {
					t.d.caps.forget(pc.key, hev3.H3)
				}
			}
			err = fmt.Errorf("connection closed or broken before the response: %w", err)
		}
		return nil, broken, &DialError{URL: req.URL.String(), Stage: "request",
			Err: fmt.Errorf("%s %s: %w", pc.car.version, pc.car.ep.Addr, err)}
	}
	pc.car.setTLS(resp)
	if resp.Body == nil || resp.Body == http.NoBody {
		if cancel != nil {
			cancel()
		}
		pc.release()
	} else {
		resp.Body = &releaseBody{ReadCloser: resp.Body, pc: pc, cancel: cancel}
	}
	t.learnAltSvc(req, resp)
	return resp, false, nil
}

// dial races the origin's endpoints once, however many requests wait for
// it. The leader gets the h2 or h3 winner with its request reserved on it
// (the connection is pooled for the others too); an HTTP/1.1 winner goes to
// the stash where the HTTP/1.1 transport picks it up. A caller that waited
// for another's race gets nil and looks again.
//
// Through a proxy (hop), the race is the proxy's addresses, each attempt
// tunnelling to the origin; an HTTP/1.1 winner is closed, as net/http
// makes its own connections through the proxy for HTTP/1.1.
//
// When the winner dialed with 0-RTT, the race's report is left in *emit,
// to be handed over once the first request has told whether the server
// accepted it.
func (t *Transport) dial(ctx context.Context, rawURL string, key poolKey, host string, port uint16, hop *proxyHop, emit *func()) (*pooled, error) {
	done, err := t.d.flights.start(ctx, key)
	if done == nil {
		return nil, err
	}
	defer done()

	cfg := t.d.base
	// The race waits for h2 and h3 SETTINGS: a connection that breaks
	// right after its handshake must lose, not carry the request.
	spec := raceSpec{
		url:  rawURL,
		kind: "http",
		port: port,
		need: hev3.NeedHTTP,
		tls:  cfg.tlsConfig(),
	}
	spec.setHost(host)
	h := t.d.caps.apply(key, spec.need, raceHints{versions: cfg.versionsOr(hev3.AllVersions), knownH3: cfg.knownH3})
	spec.versions, spec.knownH3, spec.h3Port, spec.avoid = h.versions, h.knownH3, h.h3Port, h.avoid
	if hop != nil {
		spec.proxied(hop) // RoundTrip checked that h2 is allowed
	}
	spec.early = t.d.planEarly(cfg, spec, false)
	dctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	car, rep, err := t.d.race(dctx, cfg, spec)
	t.d.caps.learn(key, spec.need, rep)
	if prev := *emit; prev != nil {
		prev() // an earlier race of this request: its report first
		*emit = nil
	}
	if err == nil && car.h3 != nil && car.h3.early != nil {
		*emit = func() { noteEarly(rep, car); cfg.emit(rep) }
	} else {
		cfg.emit(rep)
	}
	if err != nil {
		return nil, err
	}
	if car.multiplexed() {
		return t.d.pool.add(key, car), nil
	}
	t.d.caps.markH1Only(key)
	if hop != nil {
		car.conn.Close()
		return nil, nil
	}
	t.mu.Lock()
	if old := t.stash[key]; old != nil {
		old.Close()
	}
	t.stash[key] = car.conn
	t.mu.Unlock()
	return nil, nil
}

// stashed reports whether a raced HTTP/1.1 connection waits for key.
func (t *Transport) stashed(key poolKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stash[key] != nil
}

// dialTLS is the HTTP/1.1 transport's TLS dialer: the connection the race
// left for it, or a new race offering http/1.1 only.
func (t *Transport) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := splitHostPort(addr, "443")
	if err != nil {
		return nil, err
	}
	key := originKey(t.trust, host, port)
	t.mu.Lock()
	c := t.stash[key]
	delete(t.stash, key)
	t.mu.Unlock()
	if c != nil {
		return c, nil
	}
	cfg := t.d.base
	spec := raceSpec{
		url:      "https://" + addr,
		kind:     "http",
		port:     port,
		need:     hev3.NeedTransport,
		versions: hev3.Versions(hev3.H1),
		tls:      cfg.tlsConfig(),
	}
	spec.setHost(host)
	if network == "tcp4" {
		cfg.onlyFamily, cfg.family = true, hev3.IPv4
	} else if network == "tcp6" {
		cfg.onlyFamily, cfg.family = true, hev3.IPv6
	}
	dctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	car, rep, err := t.d.race(dctx, cfg, spec)
	cfg.emit(rep)
	if err != nil {
		return nil, err
	}
	return car.conn, nil
}

// learnAltSvc records an Alt-Svc h3 alternative on the same host.
func (t *Transport) learnAltSvc(req *http.Request, resp *http.Response) {
	v := resp.Header.Get("Alt-Svc")
	if v == "" || resp.ProtoMajor == 3 || req.URL.Scheme != "https" {
		return
	}
	// What an origin said through a proxy is kept with that proxy.
	r, err := t.httpsRoute(req)
	if err != nil {
		return
	}
	if p, ma, ok := parseAltSvcH3(v, r.port); ok {
		t.d.caps.altSvc(r.key, p, ma)
	}
}

// connLevel reports whether err says the connection, not just the
// request, failed: QUIC connection errors, an HTTP/2 GOAWAY, or the
// connection's byte stream ending. The connection may not look closed yet
// when the error arrives.
func connLevel(err error) bool {
	var (
		app   *quic.ApplicationError
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
		tr    *quic.TransportError
		away  http2.GoAwayError
	)
	return errors.As(err, &app) || errors.As(err, &idle) || errors.As(err, &reset) || errors.As(err, &tr) ||
		errors.As(err, &away) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// errUnprocessed marks a request error that proves the server never
// processed the request (see unprocessed).
var errUnprocessed = errors.New("request refused before it was processed")

// maxRefused bounds how often one request goes again after a refusal
// that proves it was not processed.
const maxRefused = 8

// unprocessed reports whether err proves that the server never processed
// the request, so that it may be sent again whatever its method:
// REFUSED_STREAM on HTTP/2 (RFC 9113 §8.7), H3_REQUEST_REJECTED on HTTP/3
// (RFC 9114 §4.1.1), or x/net refusing to open the stream because the
// connection was full or going away ("client conn not usable", which
// net/http retries too). x/net does not export that last error, so it is
// matched by its text.
func unprocessed(err error) bool {
	var (
		se http2.StreamError
		he *http3.Error
	)
	if errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream {
		return true
	}
	if errors.As(err, &he) && he.ErrorCode == http3.ErrCodeRequestRejected {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "http2: client conn not usable" {
			return true
		}
	}
	return false
}

// pause waits before the nth resend of a refused request (1 ms, doubling
// to 64 ms), so that the connection's finished streams are counted out
// first; it reports false if ctx ends meanwhile.
func pause(ctx context.Context, n int) bool {
	t := time.NewTimer(time.Millisecond << min(n-1, 6))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// releaseBody ends a request's reservation on its connection, and its
// context if it has one of its own, when the body is read to the end or
// closed: once, whichever comes first.
type releaseBody struct {
	io.ReadCloser
	pc     *pooled
	cancel context.CancelFunc // nil when the request kept its own context
	done   atomic.Bool
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

func (b *releaseBody) release() {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	if b.cancel != nil {
		b.cancel()
	}
	b.pc.release()
}

// rewind returns a copy of req to send again, as net/http does for
// requests that are idempotent and whose body can be recreated.
func rewind(req *http.Request) (*http.Request, bool) {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		if req.Header.Get("Idempotency-Key") == "" && req.Header.Get("X-Idempotency-Key") == "" {
			return nil, false
		}
	}
	return rewindAny(req)
}

// rewindAny is rewind for a request the server did not process, which may
// go again whatever its method.
func rewindAny(req *http.Request) (*http.Request, bool) {
	again := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return again, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again.Body = body
	return again, true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
