package dialer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// A Dialer dials sessions with Happy Eyeballs. Its options apply to every
// dial and can be extended per call. A Dialer keeps a DNS cache shared by
// its dials; it is safe for concurrent use. The zero Dialer is ready to use
// and behaves like New() without options.
type Dialer struct {
	once    sync.Once // sets base for the zero Dialer
	base    config
	pool    pool
	caps    caps
	flights flights
	// attempts holds a token per connection attempt in flight, bounding
	// the Dialer's concurrent handshakes.
	attempts tokens
	// queries holds a token per DNS query in flight (race.go).
	queries tokens
	// netmem is what the Dialer learned about the network the host is on
	// (netstate.go); lingering holds the DNS queries won races left
	// running to fill the cache (raceio.go).
	netmem    netMemory
	lingering dnsLinger
	// sessions keeps TLS sessions for resumption, by trust and origin
	// (tickets.go), and with them the HTTP/3 SETTINGS for 0-RTT
	// (zerortt.go).
	sessions sessionCaches

	mu        sync.Mutex
	resolvers map[nameKey]*nameSource // by resolver, nameservers, hosts file and resolv.conf
	// sys stands for Go's net.Resolver (net.DefaultResolver if nil)
	// where the system's DNS configuration is used (sysresolver.go):
	// tests point it at their own DNS server.
	sys Resolver

	// net replaces the network of the Dialer's races where its fields are
	// set: tests script DNS answers and connections with it.
	net raceNet
}

// Bounds on connection attempts in flight: per dial, beyond which the next
// endpoint waits for an attempt to end, and per Dialer, beyond which an
// attempt waits for a token before it dials.
const (
	maxAttemptsPerDial   = 8
	maxAttemptsPerDialer = 256
)

// maxResolvers bounds the resolvers (each with its DNS cache) a Dialer
// keeps, one per distinct WithNameservers, WithHostsFile and
// WithResolvConf setting.
const maxResolvers = 16

// DefaultDialer is the Dialer used by the package-level functions.
var DefaultDialer = New()

// New returns a Dialer with the given options.
func New(opts ...Option) *Dialer {
	d := &Dialer{}
	d.once.Do(func() { d.setup(opts) })
	return d
}

// setup gives d its configuration; it runs once, from New or, for the zero
// Dialer, from its first use (init).
func (d *Dialer) setup(opts []Option) {
	d.base = defaultConfig().with(opts)
	d.pool.idle = d.base.idle
}

// init makes the zero Dialer work like New(); every exported method calls
// it first.
func (d *Dialer) init() { d.once.Do(func() { d.setup(nil) }) }

// DialContext connects to address ("host:port") on network "tcp", "tcp4" or
// "tcp6", racing the host's addresses with Happy Eyeballs. Its signature
// fits http.Transport.DialContext and net.Dialer.DialContext.
//
// DialContext goes through a proxy only when the Dialer was given
// WithProxy: then it races the proxy's addresses and returns a tunnel to
// address (HTTP CONNECT or SOCKS5), the proxy function being asked about
// an https URL for port 443 and an http URL otherwise. Without WithProxy
// it ignores the environment's proxy variables, as net.Dialer does: an
// http.Transport does its own CONNECT above DialContext, and a dialer
// that tunnelled too would send the proxy's own connection through
// the proxy.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.init()
	return d.dialContext(ctx, network, address, d.base.proxy != nil)
}

// dialContext is DialContext, through cfg's proxy when viaProxy is set.
func (d *Dialer) dialContext(ctx context.Context, network, address string, viaProxy bool) (net.Conn, error) {
	cfg := d.base
	switch network {
	case "tcp":
	case "tcp4":
		cfg.onlyFamily, cfg.family = true, hev3.IPv4
	case "tcp6":
		cfg.onlyFamily, cfg.family = true, hev3.IPv6
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, port, err := splitHostPort(address, "")
	if err != nil {
		return nil, &DialError{URL: address, Stage: "url", Err: err}
	}
	spec := raceSpec{
		url:      network + "://" + address,
		kind:     "tcp",
		port:     port,
		need:     hev3.NeedTransport,
		versions: hev3.Versions(hev3.H1),
		noHTTPS:  true,
	}
	spec.setHost(host)
	if viaProxy {
		scheme := "http"
		if port == 443 {
			scheme = "https"
		}
		hop, err := cfg.proxyFor(scheme, host, port)
		if err != nil {
			return nil, &DialError{URL: spec.url, Stage: "proxy", Err: err}
		}
		if hop != nil {
			spec.proxied(hop)
		}
	}
	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	w, rep, err := d.race(ctx, cfg, spec)
	cfg.emit(rep)
	if err != nil {
		return nil, err
	}
	return w.conn, nil
}

// CloseIdleConnections closes the HTTP/2 and HTTP/3 connections the Dialer
// keeps for reuse that carry no session or request, and ends the DNS
// queries that finished dials left running for up to a second to fill the
// Dialer's DNS cache. Connections still in
// use are not affected; once their last session ends they idle for the
// idle timeout (WithIdleTimeout, 90 s) unless this is called again.
func (d *Dialer) CloseIdleConnections() {
	d.init()
	d.pool.closeIdle()
	d.lingering.stop()
	d.mu.Lock()
	for _, r := range d.resolvers {
		r.CloseIdle() // encrypted DNS connections (dnsservers.go)
	}
	d.mu.Unlock()
}

// A nameKey keys a Dialer's name sources.
type nameKey struct {
	conf     string // resolverKey
	resolver any    // WithResolver's identity (config.resolverID), or nil
}

// resolver returns the Dialer's name source for cfg's resolver settings
// (sysresolver.go, dnsservers.go), creating it on first use so that New
// never fails: the resolv.conf and hosts file are read then, once per
// setting.
func (d *Dialer) resolver(cfg config) (*nameSource, error) {
	sys := d.sys
	if sys == nil {
		sys = net.DefaultResolver
	}
	// A caller's resolver (WithResolver) is kept by its identity, so that
	// the hosts file in front of it is read once too.
	key := nameKey{resolverKey(cfg), cfg.resolverID}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.resolvers[key]
	if old != nil && !old.stale(time.Now()) {
		return old, nil
	}
	// New, or its resolv.conf changed: a new source (and cache); lookups
	// in flight finish on the old one.
	r, err := newNameSource(cfg, sys)
	if err != nil {
		return nil, err
	}
	if d.resolvers == nil {
		d.resolvers = make(map[nameKey]*nameSource)
	}
	if _, ok := d.resolvers[key]; !ok && len(d.resolvers) >= maxResolvers {
		// Per-call nameservers each get a resolver and a cache; a few
		// are kept, the one dropped (any) is rebuilt when used again.
		for k, dropped := range d.resolvers {
			delete(d.resolvers, k)
			dropped.CloseIdle()
			break
		}
	}
	if old != nil {
		old.CloseIdle()
	}
	d.resolvers[key] = r
	return r, nil
}

// dialContext bounds ctx by the configured dial timeout.
func (c config) dialContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// emit hands a finished race's report to the WithReport hook.
func (c config) emit(rep *Report) {
	if c.report != nil && rep != nil {
		c.report(rep)
	}
}

// splitHostPort splits "host:port", using defPort when the port is missing
// and defPort is not empty. The host must be an IP literal without a zone or
// a DNS name without empty labels (one trailing dot is allowed).
func splitHostPort(hostport, defPort string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if defPort == "" {
			return "", 0, err
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), defPort
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("invalid port %q", port)
	}
	return host, uint16(p), nil
}

// checkHost accepts an IP literal without a zone or a DNS name.
func checkHost(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("missing host")
	case strings.Contains(host, "%"):
		return fmt.Errorf("host %q: IPv6 zones are not supported", host)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("invalid host name %q", host)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid host name %q: empty or long label", host)
		}
	}
	return nil
}

// hostOrLiteral returns host as a DNS name, or as an address when it is an IP
// literal (zones are not supported).
func hostOrLiteral(host string) (string, netip.Addr) {
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return "", a.Unmap()
	}
	return strings.TrimSuffix(host, "."), netip.Addr{}
}
