package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/eyeballs/dialer/internal/hev3"
)

// ErrProxy is matched (errors.Is) by a dial error when the proxy, not the
// origin, failed: it could not be reached, refused the tunnel (a 407 or
// 403 answer to CONNECT, a SOCKS5 reply other than success) or broke the
// protocol. errors.As finds the *ProxyError with the details.
var ErrProxy = errors.New("proxy failed")

// A ProxyError is a failure of the proxy hop of a dial: the proxy named by
// Proxy (its URL without the password) failed at Op ("connect", "tls",
// "CONNECT" or "SOCKS5"). StatusCode is the proxy's HTTP answer to
// CONNECT, when there was one (407: the proxy wants credentials or refused
// those in the URL's user info; 403: its policy refused the target).
// It matches ErrProxy.
type ProxyError struct {
	Proxy      string // the proxy URL, password redacted
	Target     string // host:port the tunnel was for
	Op         string
	StatusCode int   // the CONNECT answer's status, or 0
	Err        error // the cause, if any
}

func (e *ProxyError) Error() string {
	s := fmt.Sprintf("proxy %s: %s %s", e.Proxy, e.Op, e.Target)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *ProxyError) Unwrap() error { return e.Err }

// Is makes a ProxyError match ErrProxy.
func (e *ProxyError) Is(target error) bool { return target == ErrProxy }

// ProxyFromEnvironment is the default of WithProxy: the proxy that
// net/http's ProxyFromEnvironment picks for req (HTTPS_PROXY for https and
// wss, HTTP_PROXY for http and ws, NO_PROXY, lower-case forms too, no proxy
// for localhost and loopback addresses), with ALL_PROXY, as curl reads it,
// where the scheme's own variable is unset. Values may be http://,
// https://, socks5:// or socks5h:// URLs; one without a scheme is http://.
// As in net/http, the environment is read once per process, on first use.
func ProxyFromEnvironment(req *http.Request) (*url.URL, error) {
	return envProxy()(req.URL)
}

// envProxy reads the proxy variables once.
var envProxy = sync.OnceValue(func() func(*url.URL) (*url.URL, error) { return envProxyFunc(os.Getenv) })

// envProxyFunc reads the proxy variables with getenv.
func envProxyFunc(getenv func(string) string) func(*url.URL) (*url.URL, error) {
	all := getenvAny(getenv, "ALL_PROXY", "all_proxy")
	c := &httpproxy.Config{
		HTTPProxy:  getenvAny(getenv, "HTTP_PROXY", "http_proxy"),
		HTTPSProxy: getenvAny(getenv, "HTTPS_PROXY", "https_proxy"),
		NoProxy:    getenvAny(getenv, "NO_PROXY", "no_proxy"),
		CGI:        getenv("REQUEST_METHOD") != "",
	}
	if c.HTTPProxy == "" {
		c.HTTPProxy = all
	}
	if c.HTTPSProxy == "" {
		c.HTTPSProxy = all
	}
	return c.ProxyFunc()
}

// getenvAny returns the first of the variables that is set.
func getenvAny(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// A proxyHop is the proxy a dial goes through and the origin it tunnels
// to.
type proxyHop struct {
	u      *url.URL // as WithProxy gave it, credentials included
	scheme string   // "http", "https", "socks5" or "socks5h"
	host   string   // the proxy's host name, or "" when literal is set
	lit    netip.Addr
	port   uint16
	// target is the origin, host and port, as the tunnel asks for it.
	targetHost string
	targetPort uint16
}

// targetLiteral is the target's address when its host is an IP literal.
func (p *proxyHop) targetLiteral() netip.Addr {
	_, a := hostOrLiteral(p.targetHost)
	return a
}

// redacted is the proxy URL without its password, for errors and reports.
func (p *proxyHop) redacted() string { return p.u.Redacted() }

// target is the tunnel's target, "host:port".
func (p *proxyHop) target() string {
	return net.JoinHostPort(p.targetHost, strconv.Itoa(int(p.targetPort)))
}

// errf returns a ProxyError of the hop at op.
func (p *proxyHop) errf(op string, status int, err error) *ProxyError {
	return &ProxyError{Proxy: p.redacted(), Target: p.target(), Op: op, StatusCode: status, Err: err}
}

// proxyFor asks cfg's proxy function (the environment's when unset) which
// proxy a dial to host:port under scheme ("http" or "https", as net/http
// would pick by) goes through; nil means a direct dial. The answer is
// checked: a scheme the dialer cannot speak is an error, not a direct
// dial, as in net/http.
func (c config) proxyFor(scheme, host string, port uint16) (*proxyHop, error) {
	f := c.proxy
	if f == nil {
		f = ProxyFromEnvironment
	}
	authority := net.JoinHostPort(host, strconv.Itoa(int(port)))
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: scheme, Host: authority}, Header: http.Header{}, Host: authority}
	u, err := f(req)
	if err != nil || u == nil {
		return nil, err
	}
	return newProxyHop(u, host, port)
}

// newProxyHop checks a proxy URL and makes the hop to host:port through
// it. Default ports are those of curl and net/http: 80 for http, 443 for
// https, 1080 for SOCKS5.
func newProxyHop(u *url.URL, host string, port uint16) (*proxyHop, error) {
	p := &proxyHop{u: u, scheme: u.Scheme, targetHost: host, targetPort: port}
	var def string
	switch u.Scheme {
	case "http":
		def = "80"
	case "https":
		def = "443"
	case "socks5", "socks5h":
		def = "1080"
	default:
		return nil, fmt.Errorf("proxy %s: unsupported scheme %q (want http, https, socks5 or socks5h)", u.Redacted(), u.Scheme)
	}
	h, pt, err := splitHostPort(u.Host, def)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", u.Redacted(), err)
	}
	p.host, p.lit = hostOrLiteral(h)
	p.port = pt
	if u.User != nil && (p.scheme == "socks5" || p.scheme == "socks5h") {
		pw, _ := u.User.Password()
		if len(u.User.Username()) > 255 || len(pw) > 255 {
			return nil, fmt.Errorf("proxy %s: SOCKS5 user name and password are at most 255 bytes each (RFC 1929)", u.Redacted())
		}
	}
	return p, nil
}

// proxied makes spec a race through hop: the race resolves and races the
// proxy's addresses, and each attempt tunnels to the origin. QUIC cannot
// cross a TCP proxy (CONNECT and SOCKS5 CONNECT carry a byte stream): the
// race offers TCP only, and the Report says so. It reports false when
// nothing is left to race (the dial allowed h3 only).
func (s *raceSpec) proxied(hop *proxyHop) bool {
	s.proxy = hop
	s.originHost, s.originLit = s.host, s.literal
	s.host, s.literal, s.port, s.rooted = hop.host, hop.lit, hop.port, false
	s.versions &^= hev3.Versions(hev3.H3)
	// avoid stays: under the proxy's trust (trust.via) the addresses a
	// Transport learned to avoid are the proxy's.
	s.knownH3, s.h3Port, s.noHTTPS = false, 0, true
	return s.versions != 0
}

// noteProxied is what the Report says of QUIC on a proxied race.
const noteProxied = "QUIC not offered: proxied, and QUIC cannot cross a TCP proxy"

// dialProxied returns the attempt function of a race through hop: TCP to
// the proxy's address (TLS to the proxy too for an https:// proxy,
// verified against its name with the Dialer's roots), the tunnel (HTTP
// CONNECT, RFC 9110 §9.3.6, or SOCKS5 CONNECT, RFC 1928 §4), then, when
// conf is set, TLS to the origin inside the tunnel offering the
// endpoint's ALPN (h2 and http/1.1) as a direct attempt does.
func dialProxied(hop *proxyHop, proxyConf, conf *tls.Config, serverName string, own bool, sess *sessions, socksAddrs func(context.Context) ([]netip.Addr, error)) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error) {
		// An ECH retry (ech.go) opens a second tunnel: the attempt
		// reports its TCP progress once, and its last tunnel.
		var (
			once sync.Once
			tun  *tunnelInfo
		)
		open := func(ctx context.Context) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
			if err != nil {
				return nil, hop.errf("connect", 0, err)
			}
			once.Do(tcpUp)
			start := time.Now()
			t, err := tunnel(ctx, c, hop, proxyConf, socksAddrs)
			if err != nil {
				c.Close()
				return nil, err
			}
			t.at = time.Now()
			t.took = t.at.Sub(start)
			tun = t
			return t.conn, nil
		}
		var car *carrier
		if conf == nil {
			c, err := open(ctx)
			if err != nil {
				return nil, err
			}
			car = &carrier{version: hev3.H1, ep: ep, conn: c}
		} else {
			var err error
			if car, err = tlsCarrier(ctx, conf, serverName, ep, own, sess, open); err != nil {
				var pe *ProxyError
				if errors.As(err, &pe) {
					return nil, err
				}
				return nil, fmt.Errorf("origin %s through proxy %s: %w", hop.target(), hop.redacted(), err)
			}
		}
		car.tunnel = tun
		return car, nil
	}
}

// A tunnelInfo is how an attempt's tunnel through the proxy was set up.
type tunnelInfo struct {
	conn   net.Conn  // the tunnel: bytes to and from the origin
	status int       // the CONNECT answer's status (HTTP proxies)
	at     time.Time // when the tunnel was up
	took   time.Duration
}

// tunnel runs the proxy's handshake on c, bounded by ctx, and returns the
// tunnel; conf verifies an https:// proxy. On an error c is left to the
// caller to close.
func tunnel(ctx context.Context, c net.Conn, hop *proxyHop, conf *tls.Config, socksAddrs func(context.Context) ([]netip.Addr, error)) (*tunnelInfo, error) {
	// The handshakes below are blocking reads and writes: the context's
	// end or deadline interrupts them through the connection's deadline.
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		stop()
		c.SetDeadline(time.Time{})
	}()
	conn := c
	switch hop.scheme {
	case "https":
		pc := proxyTLS(conf, hop)
		tc := tls.Client(c, pc)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, hop.errf("tls", 0, ctxErr(ctx, err))
		}
		conn = tc
		fallthrough
	case "http":
		status, err := httpConnect(&conn, hop)
		if err != nil {
			return nil, ctxErrProxy(ctx, err)
		}
		return &tunnelInfo{conn: conn, status: status}, nil
	default: // socks5, socks5h
		var addrs []netip.Addr
		if hop.scheme == "socks5" && socksAddrs != nil {
			a, err := socksAddrs(ctx)
			if err != nil {
				return nil, fmt.Errorf("origin %s: resolving it for proxy %s (socks5 resolves locally): %w", hop.targetHost, hop.redacted(), err)
			}
			addrs = a
		}
		if err := socksConnect(conn, hop, addrs); err != nil {
			return nil, ctxErrProxy(ctx, err)
		}
		return &tunnelInfo{conn: conn}, nil
	}
}

// ctxErr puts the context's cause in front of an I/O error that its end
// caused (the deadline set by tunnel, which may fire a moment before the
// context's own timer).
func ctxErr(ctx context.Context, err error) error {
	if !expired(ctx) {
		return err
	}
	cause := context.Cause(ctx)
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("%w (%v)", cause, err)
}

// ctxErrProxy does what ctxErr does inside a ProxyError.
func ctxErrProxy(ctx context.Context, err error) error {
	var pe *ProxyError
	if errors.As(err, &pe) && pe.StatusCode == 0 {
		pe.Err = ctxErr(ctx, pe.Err)
	}
	return err
}

// proxyTLS is the TLS configuration of the hop to an https:// proxy: the
// Dialer's (roots, client certificates), verifying the proxy's name,
// offering http/1.1 only (the CONNECT is an HTTP/1.1 request).
func proxyTLS(conf *tls.Config, hop *proxyHop) *tls.Config {
	pc := conf.Clone()
	if pc == nil {
		pc = &tls.Config{}
	}
	pc.ServerName = hop.host
	if hop.lit.IsValid() {
		pc.ServerName = hop.lit.String()
	}
	pc.NextProtos = []string{"http/1.1"}
	pc.EncryptedClientHelloConfigList = nil
	return pc
}

// proxyName is the race's proxy URL without its password, or "".
func (s raceSpec) proxyName() string { return s.proxy.name() }

// proxyReport is the Report's record of the race's proxy hop, or nil.
func (s raceSpec) proxyReport() *ProxyHop { return s.proxy.report(s.kind) }

// name is the hop's proxy URL without its password; "" for no hop.
func (p *proxyHop) name() string {
	if p == nil {
		return ""
	}
	return p.redacted()
}

// report is the Report's record of the hop for a dial of kind, or nil
// for no hop.
func (p *proxyHop) report(kind string) *ProxyHop {
	if p == nil {
		return nil
	}
	r := &ProxyHop{URL: p.redacted(), Target: p.target()}
	if kind != "tcp" {
		r.Note = noteProxied
	}
	return r
}

// blame names the hop in a dial's error, if it is a *DialError.
func (p *proxyHop) blame(err error) error {
	var de *DialError
	if p != nil && errors.As(err, &de) && de.Proxy == "" {
		de.Proxy = p.redacted()
	}
	return err
}

// socksAddrs returns, for a socks5:// proxy, how an attempt resolves the
// origin itself (curl's socks5:// is "resolve locally", socks5h://
// "let the proxy resolve"): with the race's resolver, AAAA then A (A then
// AAAA with WithPreferIPv4), within the dial's family restriction. The
// tunnel asks for the first address. nil for other proxies.
func (s raceSpec) socksAddrs(cfg config, lookup func(context.Context, string, hev3.RecordType) hev3.Answer) func(context.Context) ([]netip.Addr, error) {
	if s.proxy == nil || s.proxy.scheme != "socks5" || s.originLit.IsValid() {
		return nil
	}
	name := s.originHost
	return func(ctx context.Context) ([]netip.Addr, error) {
		if lookup == nil { // no resolver could be set up
			return nil, fmt.Errorf("%w for %s: no resolver", ErrNoAddress, name)
		}
		types := []hev3.RecordType{hev3.AAAA, hev3.A}
		if cfg.preferIPv4 || (cfg.onlyFamily && cfg.family == hev3.IPv4) {
			types = []hev3.RecordType{hev3.A, hev3.AAAA}
		}
		var errs []error
		for _, t := range types {
			if cfg.onlyFamily && (t == hev3.A) != (cfg.family == hev3.IPv4) {
				continue
			}
			ans := lookup(valueless{ctx}, name, t)
			if ans.Err != nil {
				errs = append(errs, ans.Err)
				continue
			}
			if len(ans.Addrs) > 0 {
				return ans.Addrs[:1], nil
			}
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("%w for %s", ErrNoAddress, name)
		}
		return nil, fmt.Errorf("%w for %s: %w", ErrNoAddress, name, errors.Join(errs...))
	}
}

// proxyBlame says, for a proxied race whose attempts all failed, who
// failed: the proxy (stage "proxy", its first ProxyError, one with a
// status first) when every attempt's error is the proxy's, else the
// origin or the path to it through the tunnel (stage "connect", no cause
// beyond the attempts').
func proxyBlame(rep *Report) (string, error) {
	var first, status *ProxyError
	for _, res := range rep.results {
		if res.err == nil {
			continue
		}
		var pe *ProxyError
		if !errors.As(res.err, &pe) {
			return "connect", nil
		}
		if first == nil {
			first = pe
		}
		if status == nil && pe.StatusCode != 0 {
			status = pe
		}
	}
	switch {
	case status != nil:
		return "proxy", status
	case first != nil:
		return "proxy", first
	}
	return "connect", nil
}

// A ProxyHop is the Report's record of the proxy a race went through:
// its URL (password redacted) and the target of its tunnels. Each
// attempt is a connection to one of the proxy's addresses; its Tunnel
// and ProxyStatus say when and how the tunnel opened.
type ProxyHop struct {
	URL    string `json:"url"`
	Target string `json:"target"`
	// Note says what the proxy changed in the race: QUIC not offered.
	Note string `json:"note,omitempty"`
}
