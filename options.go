package dialer

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http/httpguts"

	"github.com/eyeballs/dialer/internal/hev3"
)

// An Option configures a Dialer (in New) or a single dial (in DialWebSocket,
// DialWebTransport, Resolve). Per-call options apply on top of the
// Dialer's. Options that do not apply where they are given are ignored:
//
//	option                               applies to
//	WithTLSConfig, WithNameservers,      every dial, Resolve (name options), the Transport
//	  WithHostsFile
//	WithHeader, WithSubprotocols         DialWebSocket, DialWebTransport
//	WithCompression, WithReadLimit       DialWebSocket
//	WithAttemptDelay, WithResolutionDelay,
//	  WithTimeout, WithProtocols,        every dial (WithTimeout also bounds Resolve)
//	  WithPreferIPv4, WithIPv4Only,
//	  WithIPv6Only, WithReport, WithTrace,
//	  WithLogger
//	WithIdleTimeout                      New only (the Dialer's pool)
//	WithResponseHeaderTimeout,           the Transport, from New or NewTransport only
//	  WithMaxConnsPerHost
//	WithProxy                            every dial and the Transport; DialContext
//	                                     only when given to New
//
// A Transport uses its Dialer's options; there are no per-request options.
type Option func(*config)

// config is the resolved set of options for one dial.
type config struct {
	tls          *tls.Config
	nameservers  []string
	hostsFile    string
	header       http.Header
	host         string // Host / :authority of the request; "": the URL's
	subprotocols []string
	// attemptDelay is WithAttemptDelay's, 0 when not set: the race
	// then times attempts by the RTT it measured, or 250 ms.
	attemptDelay    time.Duration
	resolutionDelay time.Duration
	// resolutionDelaySet: WithResolutionDelay was used (0 means 0).
	resolutionDelaySet bool
	timeout            time.Duration
	compression        websocket.CompressionMode
	readLimit          int64
	preferIPv4         bool
	onlyFamily         bool
	family             hev3.Family
	report             func(*Report)
	trace              *Trace
	logger             *slog.Logger
	// versions limits the HTTP versions (0: all); knownH3 tries QUIC even
	// without an HTTPS record advertising h3.
	versions hev3.Versions
	knownH3  bool
	idle     time.Duration
	// Transport only.
	responseHeader  time.Duration
	maxConnsPerHost int
	proxy           func(*http.Request) (*url.URL, error)
}

// Defaults.
const (
	// DefaultTimeout bounds a whole dial (DNS, race and handshake) when the
	// context has no earlier deadline, like net/http's 30 s dial timeout.
	DefaultTimeout = 30 * time.Second
)

func defaultConfig() config {
	return config{
		resolutionDelay: hev3.DefaultResolutionDelay,
		timeout:         DefaultTimeout,
	}
}

func (c config) with(opts []Option) config {
	// Copy slices and maps the options may share with the caller.
	c.header = c.header.Clone()
	c.nameservers = append([]string(nil), c.nameservers...)
	c.subprotocols = append([]string(nil), c.subprotocols...)
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithTLSConfig sets the TLS configuration: root CAs, client certificates,
// ServerName. NextProtos is set by the dialer for each attempt.
//
// Connections are shared only between dials made under the same trust: a
// per-call configuration that differs from the Dialer's in anything but
// NextProtos gets a partition of its own (its own pooled connections,
// capability cache and Alt-Svc memory), never a connection verified under
// another configuration. Configurations compare by content (client
// certificates by their DER chain), except that RootCAs compares by
// pointer, and a configuration holding a callback (VerifyConnection,
// GetClientCertificate, ...), a session cache or a key log writer compares
// by pointer as a whole: pass the same *tls.Config or *x509.CertPool to
// share connections. A Dialer keeps at most 100 idle connections in all.
func WithTLSConfig(conf *tls.Config) Option {
	return func(c *config) { c.tls = conf }
}

// WithNameservers makes the dialer query these DNS servers ("127.0.0.1:53",
// "[::1]:5353") instead of those in /etc/resolv.conf. Like WithHostsFile,
// it partitions what the Dialer shares (see WithTLSConfig): a per-call
// setting never rides on a connection to an address other servers gave.
func WithNameservers(addrs ...string) Option {
	return func(c *config) { c.nameservers = append([]string(nil), addrs...) }
}

// WithHostsFile makes the dialer read host names from path instead of
// /etc/hosts; "-" disables the hosts file.
func WithHostsFile(path string) Option {
	return func(c *config) { c.hostsFile = path }
}

// WithHeader adds headers to the WebSocket upgrade or extended CONNECT
// request. Headers the protocol owns (Upgrade, Sec-WebSocket-Key, ...) and
// connection-specific ones (Connection, Keep-Alive, Transfer-Encoding, ...)
// are set or dropped by the dialer. A Host header sets the request's Host
// (HTTP/1.1) or :authority (HTTP/2, HTTP/3) instead of the URL's host, as
// coder/websocket's DialOptions.Host does; the dialer still connects to,
// and verifies the certificate of, the URL's host.
func WithHeader(h http.Header) Option {
	return func(c *config) {
		if c.header == nil {
			c.header = make(http.Header)
		}
		for k, vs := range h {
			if http.CanonicalHeaderKey(k) == "Host" {
				if len(vs) > 0 {
					c.host = vs[len(vs)-1]
				}
				continue
			}
			c.header[k] = append(c.header[k], vs...)
		}
	}
}

// WithSubprotocols offers WebSocket subprotocols (Sec-WebSocket-Protocol) or
// WebTransport application protocols (WT-Available-Protocols), most
// preferred first.
func WithSubprotocols(protos ...string) Option {
	return func(c *config) { c.subprotocols = append([]string(nil), protos...) }
}

// WithAttemptDelay sets the Happy Eyeballs connection attempt delay: how
// long an attempt runs alone before the next one starts. Values are
// clamped to 10 ms .. 2 s as the draft requires.
//
// Without it, the delay follows the round-trip times the Dialer measured
// on the network the host is on: twice the smoothed RTT of the attempt's
// path (its family and transport), at least 100 ms and at most 2 s, and
// one more delay from the moment TCP connects while TLS goes on; 250 ms on
// a path without history (draft-ietf-happy-happyeyeballs-v3 §6, §6.1).
func WithAttemptDelay(d time.Duration) Option {
	return func(c *config) { c.attemptDelay = clamp(d, hev3.MinAttemptDelay, hev3.MaxAttemptDelay) }
}

// WithResolutionDelay sets how long the dialer waits for the preferred
// family's (AAAA) and HTTPS answers after the first DNS answer arrives.
// The default is 50 ms; zero means no wait: the race starts with the
// first answer that gives an address. Values are clamped to 0 .. 2 s.
func WithResolutionDelay(d time.Duration) Option {
	return func(c *config) {
		c.resolutionDelay, c.resolutionDelaySet = clamp(d, 0, 2*time.Second), true
	}
}

// WithTimeout bounds a whole dial when the context has no earlier deadline.
// Zero means no bound beyond the context. The default is 30 s.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = max(d, 0) }
}

// WithCompression sets the WebSocket permessage-deflate mode. The default is
// websocket.CompressionDisabled.
func WithCompression(mode websocket.CompressionMode) Option {
	return func(c *config) { c.compression = mode }
}

// WithReadLimit sets the largest WebSocket message the returned connection
// accepts (coder/websocket's default is 32 KiB); -1 disables the limit.
func WithReadLimit(n int64) Option {
	return func(c *config) { c.readLimit = n }
}

// WithProtocols limits the HTTP versions a dial may use to those listed:
// "h1", "h2", "h3". Listing "h3" also makes the dialer try QUIC when no
// HTTPS record advertises it. Unknown names are ignored.
func WithProtocols(protos ...string) Option {
	return func(c *config) {
		c.versions, c.knownH3 = 0, false
		for _, p := range protos {
			switch p {
			case "h1", "http/1.1":
				c.versions |= hev3.Versions(hev3.H1)
			case "h2":
				c.versions |= hev3.Versions(hev3.H2)
			case "h3":
				c.versions |= hev3.Versions(hev3.H3)
				c.knownH3 = true
			}
		}
	}
}

// WithIdleTimeout sets how long a Dialer keeps an HTTP/2 or HTTP/3
// connection with no session on it for reuse (default 90 s). It applies to
// New only.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) { c.idle = d }
}

// WithResponseHeaderTimeout bounds, for a Transport, the wait for a
// response's headers after the request was sent. Zero means no bound.
func WithResponseHeaderTimeout(d time.Duration) Option {
	return func(c *config) { c.responseHeader = d }
}

// WithMaxConnsPerHost limits, for a Transport, the HTTP/1.1 connections per
// host, as http.Transport.MaxConnsPerHost does. HTTP/2 and HTTP/3 carry
// concurrent requests on one connection.
func WithMaxConnsPerHost(n int) Option {
	return func(c *config) { c.maxConnsPerHost = n }
}

// WithProxy sets how dials pick a proxy, as http.Transport.Proxy does:
// f gets a request for the origin (an https URL for wss and https, http
// for ws and http) and returns the proxy's URL, or nil for a direct dial.
// The default is ProxyFromEnvironment. http:// and https:// proxies are
// asked for a tunnel with CONNECT (Proxy-Authorization Basic from the
// URL's user info), socks5:// and socks5h:// proxies with SOCKS5 (user
// name and password from the user info). It applies to DialWebSocket,
// DialWebTransport and the Transport, from New or per call; DialContext
// goes through a proxy only when WithProxy was given to New.
//
// A dial through a proxy races the proxy's addresses with Happy
// Eyeballs; inside the tunnel it runs TLS to the origin and the same
// ladder as a direct dial (h2 with extended CONNECT, else HTTP/1.1), but
// never QUIC, which cannot cross a TCP proxy: WebTransport runs over
// HTTP/2. The Report's Proxy and each Attempt's Tunnel show the hop;
// errors from the proxy match ErrProxy. Connections through a proxy are
// shared only by dials through the same proxy URL (credentials
// included). Transport requests through a proxy go through net/http's
// transport (h2 or HTTP/1.1 in the tunnel), whose connections to the
// proxy the Dialer races.
func WithProxy(f func(*http.Request) (*url.URL, error)) Option {
	return func(c *config) { c.proxy = f }
}

// WithPreferIPv4 makes IPv4 the first family tried instead of IPv6.
func WithPreferIPv4() Option {
	return func(c *config) { c.preferIPv4 = true }
}

// WithIPv4Only restricts the dial to IPv4 addresses.
func WithIPv4Only() Option {
	return func(c *config) { c.onlyFamily, c.family = true, hev3.IPv4 }
}

// WithIPv6Only restricts the dial to IPv6 addresses.
func WithIPv6Only() Option {
	return func(c *config) { c.onlyFamily, c.family = true, hev3.IPv6 }
}

// WithReport calls fn with the race report of every dial, successful or
// not, just before the dial returns. fn must not block.
func WithReport(fn func(*Report)) Option {
	return func(c *config) { c.report = fn }
}

// WithLogger logs each step of a race (DNS answers, attempts, winner) at
// debug level.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// checkHostHeader checks the Host given through WithHeader.
func (c config) checkHostHeader() error {
	if c.host != "" && !httpguts.ValidHostHeader(c.host) {
		return fmt.Errorf("invalid Host header %q", c.host)
	}
	return nil
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return min(max(d, lo), hi)
}

// tlsConfig returns the TLS configuration for attempts: the user's, or an
// empty one that verifies against the system roots.
func (c config) tlsConfig() *tls.Config {
	if c.tls != nil {
		return c.tls
	}
	return &tls.Config{}
}

// versionsOr returns the versions WithProtocols allowed, or all when it was
// not used.
func (c config) versionsOr(all hev3.Versions) hev3.Versions {
	if c.versions == 0 {
		return all
	}
	return c.versions & all
}
