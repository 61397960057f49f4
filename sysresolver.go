package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
)

// A Resolver looks up the addresses of a host name, for WithResolver.
// *net.Resolver is one: network is "ip4" or "ip6", and host a name
// without port (with a trailing dot when the URL's host had one).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// WithResolver makes the dialer take A and AAAA answers from r instead of
// its own DNS client: WithResolver(net.DefaultResolver) resolves as
// net.Dialer does, with the system's configuration; a *net.Resolver with
// its own Dial can reach any server. r gets every name but IP literals
// and the special-use names the dialer answers itself (localhost names
// are loopback, .onion and .invalid are refused; RFC 6761, RFC 7686).
// The hosts file is read only when WithHostsFile names one: r has its
// own.
//
// HTTPS records are not available through r: a dial then learns no ALPN,
// port, hints or ECH from DNS and tries QUIC only where it knows QUIC
// works (Alt-Svc, an earlier success, WithProtocols("h3"), WebTransport);
// the Report's HTTPSUnavailable says so. Like WithNameservers, r
// partitions what the Dialer shares (see WithTLSConfig): by identity
// when r is a pointer (pass the same one to share connections), by value
// when it is comparable, and per WithResolver call otherwise.
func WithResolver(r Resolver) Option {
	var id any = r
	if r != nil && !reflect.TypeOf(r).Comparable() {
		id = new(byte) // not comparable: this call's own identity
	}
	return func(c *config) { c.resolver, c.resolverID = r, id }
}

// WithResolvConf makes the dialer read path instead of /etc/resolv.conf:
// its nameservers (unless WithNameservers gives others), its search list
// and ndots (a name without a trailing dot and with fewer than ndots dots
// is tried with each search domain first, as net.Resolver does), and its
// options timeout, attempts, rotate, single-request, use-vc and trust-ad.
// The file (like /etc/resolv.conf without this option) is read again when
// it changes, checked at most every 5 s as Go's net package does; the
// Dialer's DNS cache for it starts afresh then. When path cannot be read, addresses come from Go's net.Resolver (the
// system's configuration) and HTTPS records are not available, as on
// macOS and Windows by default; with WithNameservers, those servers are
// used without a search list. The TLS server name and the Host header
// stay the URL's host whatever name the search list found, as in
// net/http.
func WithResolvConf(path string) Option {
	return func(c *config) { c.resolvConf = path }
}

// nameSource is where a dial's names are resolved: the Dialer's own DNS
// client (internal/resolver), or a Resolver (WithResolver, or Go's
// net.Resolver where the system's configuration cannot be read).
type nameSource struct {
	lookup func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer
	// closeIdle closes the idle connections to encrypted nameservers
	// (nil: none).
	closeIdle func()
	// records is lookup with the DNS records the answer was read from,
	// for Resolve (none from a Resolver).
	records func(ctx context.Context, name string, t hev3.RecordType) (hev3.Answer, resolver.Records)
	// noHTTPS says why HTTPS records are not available, "" when they are.
	noHTTPS string
	// conf is the resolv.conf the source was built from ("": none), as
	// it was then (stamp), and when that was last checked: a source is
	// rebuilt when the file changes, as Go's net package rereads it
	// (dnsclient_unix.go, tryUpdate).
	conf    string
	stamp   confStamp
	checked time.Time
}

// CloseIdle closes src's idle connections to encrypted nameservers.
func (src *nameSource) CloseIdle() {
	if src.closeIdle != nil {
		src.closeIdle()
	}
}

// confCheckEvery is how often a resolv.conf is checked for changes, at
// most: Go's net package checks every 5 s.
const confCheckEvery = 5 * time.Second

// A confStamp is what tells a file changed: its modification time and
// size, or that it could not be read (ok false).
type confStamp struct {
	mtime time.Time
	size  int64
	ok    bool
}

func stampOf(path string) confStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return confStamp{}
	}
	return confStamp{mtime: fi.ModTime(), size: fi.Size(), ok: true}
}

// stale reports whether src's resolv.conf changed since src was built,
// checking it at most every confCheckEvery. The Dialer's mu is held.
func (src *nameSource) stale(now time.Time) bool {
	if src.conf == "" || now.Sub(src.checked) < confCheckEvery {
		return false
	}
	src.checked = now
	return stampOf(src.conf) != src.stamp
}

// systemResolver reports whether the system's DNS configuration is not a
// resolv.conf the Dialer can use: on macOS and iOS /etc/resolv.conf is
// not what the system resolves with (scoped resolvers, VPNs, mDNS), and
// Windows has none. Go's net package asks the system there too.
func systemResolver() bool {
	switch runtime.GOOS {
	case "darwin", "ios", "windows":
		return true
	}
	return false
}

// newNameSource builds the name source of cfg (see WithResolver,
// WithNameservers, WithResolvConf): the caller's Resolver; else the own
// DNS client with the given nameservers, or with resolv.conf where it
// can be read and is authoritative; else Go's net.Resolver (sys).
func newNameSource(cfg config, sys Resolver) (*nameSource, error) {
	if cfg.resolver != nil {
		return resolverSource(cfg.resolver, cfg.hostsFile, "addresses from WithResolver")
	}
	if len(cfg.nameservers) == 0 && cfg.resolvConf == "" && systemResolver() {
		return resolverSource(sys, cfg.hostsFile, "addresses from the system resolver on "+runtime.GOOS)
	}
	path := cfg.resolvConf
	if path == "" && len(cfg.nameservers) == 0 {
		path = resolver.DefaultResolvConf
	}
	stamp := stampOf(path) // before reading: a change after it shows next time
	src, err := confSource(cfg, sys, path)
	if err != nil {
		return nil, err
	}
	if path != "" {
		src.conf, src.stamp, src.checked = path, stamp, time.Now()
	}
	return src, nil
}

// confSource is the name source of cfg with the resolv.conf at path
// ("": none, WithNameservers alone).
func confSource(cfg config, sys Resolver, path string) (*nameSource, error) {
	rc, err := resolverConfig(cfg)
	if err != nil {
		return nil, err
	}
	if path != "" {
		conf, err := resolver.ReadConf(path)
		switch {
		case err == nil:
			rc.Conf = conf
		case len(cfg.nameservers) == 0:
			return resolverSource(sys, cfg.hostsFile, "addresses from the system resolver: "+err.Error())
		}
		// With nameservers, an unreadable file only means no search
		// list and the default options.
	}
	r, err := resolver.New(rc)
	if err != nil {
		return nil, err
	}
	return &nameSource{lookup: r.Lookup, records: r.LookupRecords, closeIdle: r.CloseIdle}, nil
}

// resolverSource is the name source of r, answering from the hosts file
// at path first ("" reads it only for the system resolver, which the
// Dialer stands in for). why is the Report's note.
func resolverSource(r Resolver, path, why string) (*nameSource, error) {
	var hosts resolver.Hosts
	if path != "" || r == net.DefaultResolver {
		if path == "" {
			path = resolver.DefaultHostsFile
		}
		h, err := resolver.ReadHosts(path)
		if err != nil {
			return nil, err
		}
		hosts = h
	}
	note := "HTTPS records were not available (" + why + ")"
	lookup := func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
		return lookupVia(ctx, r, hosts, note, name, t)
	}
	return &nameSource{
		lookup: lookup,
		records: func(ctx context.Context, name string, t hev3.RecordType) (hev3.Answer, resolver.Records) {
			return lookup(ctx, name, t), resolver.Records{}
		},
		noHTTPS: note,
	}, nil
}

// errNoHTTPS is the error of an HTTPS query through a Resolver.
var errNoHTTPS = errors.New("HTTPS records are not available through this resolver")

// lookupVia answers name for t with r: IP literals, hosts and special-use
// names first (resolver.Static), then A and AAAA through r, bounded as
// the own client's answers are; HTTPS fails at once with errNoHTTPS.
func lookupVia(ctx context.Context, r Resolver, hosts resolver.Hosts, note, name string, t hev3.RecordType) hev3.Answer {
	if ans, ok := resolver.Static(name, hosts, t); ok {
		return ans
	}
	network := "ip4"
	switch t {
	case hev3.AAAA:
		network = "ip6"
	case hev3.HTTPS:
		return hev3.Answer{Err: &resolver.Error{Name: name, Type: t, Err: fmt.Errorf("%w: %s", errNoHTTPS, note)}}
	}
	addrs, err := r.LookupNetIP(ctx, network, name)
	if err != nil {
		var de *net.DNSError
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			err = fmt.Errorf("%w: %w: %w", resolver.ErrTimeout, ctx.Err(), err)
		case ctx.Err() != nil:
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		case errors.As(err, &de) && de.IsTimeout:
			err = fmt.Errorf("%w: %w", resolver.ErrTimeout, err)
		case errors.As(err, &de) && de.IsNotFound:
			err = fmt.Errorf("%w: %w", resolver.ErrNXDomain, err)
		}
		return hev3.Answer{Err: &resolver.Error{Name: name, Type: t, Err: err}}
	}
	return resolver.AddrAnswer(addrs, t)
}

// specialName returns the error of a host that is a special-use name the
// dialer refuses (.onion, .invalid), before any query is sent.
func specialName(host string) error {
	if _, _, err := resolver.Special(host); err != nil {
		return fmt.Errorf("%w for %s: %w", ErrNoAddress, strings.TrimSuffix(host, "."), err)
	}
	return nil
}
