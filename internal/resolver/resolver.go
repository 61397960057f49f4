// Package resolver is a stub DNS resolver for A, AAAA and HTTPS records,
// built on github.com/miekg/dns. It produces the hev3.Answer values that the
// Happy Eyeballs state machine consumes.
//
// It sends recursive queries with EDNS0 over UDP, retries truncated replies
// over TCP, tries each server in turn, follows CNAME chains and HTTPS
// AliasMode records, answers /etc/hosts names and IP literals without DNS,
// and caches answers for their TTL. It reads resolv.conf as Go's net
// package does (conf.go): nameservers, the search list and ndots (see
// NameList and Lookup), and the options timeout, attempts, rotate,
// single-request, use-vc and trust-ad. Special-use names are answered or
// refused without DNS (special.go).
//
// Answers are bounded to what a Happy Eyeballs race uses (internal/hev3's
// MaxAddrs, MaxServices, MaxHints; MaxALPN here), with Answer.Omitted
// counting what was left out; CNAME and alias chains to MaxHops; the cache
// in entries and in bytes.
package resolver

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

// Defaults and limits.
const (
	DefaultTimeout         = 2 * time.Second
	DefaultMaxCacheEntries = 4096
	// DefaultMaxCacheBytes bounds the cache's estimated size. An ordinary
	// entry (a few addresses, or one HTTPS record with hints and a
	// 100-byte ECH configuration) is 200 to 700 bytes, so 4096 of them fit
	// in about 2 MiB; the bound holds when entries are as large as the
	// answer bounds allow (16 records whose ECH fills a 64 KiB reply).
	DefaultMaxCacheBytes = 4 << 20
	DefaultResolvConf    = "/etc/resolv.conf"
	DefaultHostsFile     = "/etc/hosts"

	// MaxHops bounds the CNAME and AliasMode indirections of one lookup
	// (RFC 9460 §3 follows aliases "subject to chain-length limits";
	// RFC 1034 §5.2.2 asks resolvers to catch CNAME loops). Unbound's
	// iterator restarts a query at most 8 times (MAX_RESTART_COUNT in
	// iterator.h) and BIND's delv 11 (MAX_RESTARTS); chains seen on real
	// sites are two or three hops (a site's name, its CDN's name, the
	// CDN's edge).
	// Each hop is at most one more query per server and transport.
	MaxHops = 8
	// MaxTTL caps how long an answer is cached.
	MaxTTL = time.Hour
	// DefaultNegativeTTL is how long NXDOMAIN and NODATA answers without an
	// SOA record are cached.
	DefaultNegativeTTL = 5 * time.Second
)

// Config configures a Resolver. The zero value uses the system's
// resolv.conf and hosts file.
type Config struct {
	// Servers are the servers' addresses, "ip:port" or "ip" (port 53),
	// tried in order. Empty: the nameservers of ResolvConf, or
	// 127.0.0.1:53 and [::1]:53 if it lists none or is missing.
	Servers []string
	// ResolvConf is the resolv.conf read when Servers is empty
	// (DefaultResolvConf if ""), or when Conf is nil and UseConf is set.
	// A missing or unreadable file is no error: no search list, the
	// default options, and the servers above.
	ResolvConf string
	// Conf, when set, is used instead of reading ResolvConf: its search
	// list and options always, its servers when Servers is empty.
	Conf *Conf
	// UseConf makes the search list and options of ResolvConf apply
	// even when Servers is set (which replaces only its nameservers).
	// Without it, explicit Servers mean fully qualified names and the
	// default options.
	UseConf bool
	// HostsFile is read once by New (DefaultHostsFile if ""). "-" or a
	// missing file means none.
	HostsFile string
	// Timeout bounds each query attempt (resolv.conf's options timeout,
	// or DefaultTimeout, if 0). The whole lookup is bounded by its
	// context.
	Timeout time.Duration
	// MaxCacheEntries bounds the cache (DefaultMaxCacheEntries if 0);
	// negative disables caching.
	MaxCacheEntries int
	// MaxCacheBytes bounds the cache's estimated size in bytes
	// (DefaultMaxCacheBytes if 0 or negative); least recently used
	// entries are evicted first.
	MaxCacheBytes int
	// Now returns the time used for cache expiry (time.Now if nil).
	Now func() time.Time
	// Upstreams, when set, are the only servers asked, in order (DoT,
	// DoH: see NewDoT, NewDoH); Servers and ResolvConf are not used, so
	// a query never falls back to plaintext. The hosts file still
	// applies.
	Upstreams []Server
}

// Resolver resolves names. It is safe for concurrent use; lookups of one
// Resolver share a cache, and concurrent identical lookups share one query.
type Resolver struct {
	servers []string
	timeout time.Duration
	// From resolv.conf (conf.go): the search list and ndots (NameList),
	// how many times each server is asked, and the options that shape
	// each query (exchange.go).
	search   []string
	ndots    int
	attempts int
	rotate   bool
	useTCP   bool
	trustAD  bool
	single   chan struct{} // options single-request: one query at a time
	next     atomic.Uint32 // options rotate: the next first server
	hosts    map[string][]netip.Addr
	now      func() time.Time
	cache    *cache
	dialer   net.Dialer

	// upstreams replace servers when set (Config.Upstreams).
	upstreams []Server

	mu       sync.Mutex
	inflight map[cacheKey]*call
}

// call is a lookup in flight that identical lookups wait for.
type call struct {
	done     chan struct{}
	ans      hev3.Answer
	recs     Records
	canceled bool // the lookup ended because its context did
}

// New returns a Resolver for cfg.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{
		timeout:  cfg.Timeout,
		now:      cfg.Now,
		inflight: make(map[cacheKey]*call),
	}
	r.upstreams = slices.Clone(cfg.Upstreams)
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	maxBytes := cfg.MaxCacheBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxCacheBytes
	}
	switch n := cfg.MaxCacheEntries; {
	case n == 0:
		r.cache = newCache(DefaultMaxCacheEntries, maxBytes)
	case n > 0:
		r.cache = newCache(n, maxBytes)
	}

	servers := cfg.Servers
	conf := cfg.Conf
	if conf == nil && len(cfg.Upstreams) == 0 && (len(servers) == 0 || cfg.UseConf) {
		path := cfg.ResolvConf
		if path == "" {
			path = DefaultResolvConf
		}
		conf, _ = ReadConf(path) // missing: Go's defaults
	}
	r.ndots, r.attempts = 1, 1
	if conf != nil {
		r.search, r.ndots = conf.Search, conf.Ndots
		r.rotate, r.useTCP, r.trustAD = conf.Rotate, conf.UseTCP, conf.TrustAD
		// glibc and Go ask each server twice unless told otherwise.
		r.attempts = 2
		if conf.Attempts > 0 {
			r.attempts = conf.Attempts
		}
		if conf.Timeout > 0 && cfg.Timeout <= 0 {
			r.timeout = conf.Timeout
		}
		if conf.SingleRequest {
			r.single = make(chan struct{}, 1)
		}
		if len(servers) == 0 {
			servers = conf.Servers
		}
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	for _, s := range servers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				return nil, fmt.Errorf("dns: bad server address %q: %w", s, err)
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		r.servers = append(r.servers, ap.String())
	}

	path := cfg.HostsFile
	if path == "" {
		path = DefaultHostsFile
	}
	hosts, err := readHosts(path)
	if err != nil {
		return nil, err
	}
	r.hosts = hosts
	return r, nil
}

// Hosts returns the hosts file's addresses for name, and whether it has any.
func (r *Resolver) Hosts(name string) ([]netip.Addr, bool) {
	addrs, ok := r.hosts[hostKey(name)]
	return slices.Clone(addrs), ok
}

// Lookup resolves name for type t. Negative answers and failures are in
// Answer.Err; NODATA is an Answer with no data and no error.
//
// IP literals, hosts file names and then special-use names (Special) are
// answered without DNS: A and AAAA with the addresses of their family,
// HTTPS with NODATA; .onion and .invalid fail with ErrSpecialName.
//
// A name without a trailing dot goes through the search list (NameList):
// the first of its names that exists answers, where a name exists when
// its A or AAAA query gives an address, as in Go's net package
// (goLookupIPCNAMEOrder). Lookups of A, AAAA and HTTPS for one name ask
// that same question of the same names, in the same order, through the
// cache and the lookups in flight, so a race's three queries settle on
// the same name; Answer.Name says which when it is not name itself.
// When no name exists, the answer is the name's own, as it is, if it was
// tried, else the first one's.
func (r *Resolver) Lookup(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
	ans, _ := r.lookupName(ctx, name, t, false)
	return ans
}

// LookupRecords is Lookup that also returns the DNS records the answer
// was read from, as the servers sent them (each under its own owner name,
// RFC 9460 §2.3): the CNAMEs and AliasMode records followed, then the
// records of type t at the end of the chain, with TTLs counting down from
// when they were received. It shares Lookup's cache and queries in flight,
// so the records are those of the answer a dial uses. Answers from IP
// literals and the hosts file have no records.
func (r *Resolver) LookupRecords(ctx context.Context, name string, t hev3.RecordType) (hev3.Answer, Records) {
	return r.lookupName(ctx, name, t, true)
}

// lookupName is Lookup, with the records when withRecords is set (copying
// them costs, and a race does not read them).
func (r *Resolver) lookupName(ctx context.Context, name string, t hev3.RecordType, withRecords bool) (hev3.Answer, Records) {
	if t != hev3.A && t != hev3.AAAA && t != hev3.HTTPS {
		return hev3.Answer{Err: &Error{Name: name, Type: t, Err: fmt.Errorf("unsupported record type %d", t)}}, Records{}
	}
	if ans, ok := Static(name, r.hosts, t); ok {
		return ans, Records{}
	}
	host := hostKey(name)
	if h, ok := portPrefixed(host); ok && t == hev3.HTTPS {
		if _, ok := r.hosts[h]; ok {
			return hev3.Answer{}, Records{} // NODATA, as for the name itself
		}
	}
	fqdn := dns.Fqdn(host)
	if _, ok := dns.IsDomainName(fqdn); !ok || host == "" {
		return hev3.Answer{Err: &Error{Name: name, Type: t, Err: ErrInvalidName}}, Records{}
	}
	if strings.HasSuffix(name, ".") || len(r.search) == 0 {
		return r.lookup(ctx, cacheKey{fqdn, t}, withRecords)
	}
	return r.searchList(ctx, NameList(host, r.search, r.ndots), fqdn, t, withRecords)
}

// searchList answers t for the first of names that exists (see Lookup);
// fqdn is the name as it is.
func (r *Resolver) searchList(ctx context.Context, names []string, fqdn string, t hev3.RecordType, withRecords bool) (hev3.Answer, Records) {
	var (
		first     hev3.Answer
		firstRecs Records
	)
	for i, n := range names {
		ans, recs, ok := r.exists(ctx, n, t, withRecords)
		if ok {
			if n != fqdn {
				ans.Name = strings.TrimSuffix(n, ".")
			}
			return ans, recs
		}
		if ctx.Err() != nil {
			return hev3.Answer{Err: &Error{Name: n, Type: t, Err: ctxErr(ctx)}}, Records{}
		}
		if i == 0 || n == fqdn {
			first, firstRecs = ans, recs
		}
	}
	return first, firstRecs
}

// exists answers t for name and says whether name exists: whether its A
// or AAAA query gives an address. It asks t first, then the address types
// not yet asked, one after the other: a race asks them all at once, so
// these join its lookups in flight or find them cached.
//
// A port-prefixed name (_8443._https.host, RFC 9460 §9.1) exists when its
// host does: it never has addresses of its own.
func (r *Resolver) exists(ctx context.Context, name string, t hev3.RecordType, withRecords bool) (hev3.Answer, Records, bool) {
	ans, recs := r.lookup(ctx, cacheKey{name, t}, withRecords)
	if t != hev3.HTTPS && len(ans.Addrs) > 0 {
		return ans, recs, true
	}
	addrName := name
	if h, ok := portPrefixed(name); ok {
		addrName = h
	}
	for _, other := range []hev3.RecordType{hev3.AAAA, hev3.A} {
		if (other == t && addrName == name) || ctx.Err() != nil {
			continue
		}
		if a, _ := r.lookup(ctx, cacheKey{addrName, other}, false); len(a.Addrs) > 0 {
			return ans, recs, true
		}
	}
	return ans, recs, false
}

// local answers from a literal or the hosts file.
func local(addrs []netip.Addr, t hev3.RecordType) hev3.Answer {
	var ans hev3.Answer
	for _, a := range addrs {
		switch {
		case t == hev3.A && a.Unmap().Is4():
			ans.Addrs = append(ans.Addrs, a.Unmap())
		case t == hev3.AAAA && a.Is6() && !a.Is4In6():
			ans.Addrs = append(ans.Addrs, a)
		}
	}
	return ans
}

// lookup answers from the cache, or joins an identical lookup in flight,
// or resolves.
func (r *Resolver) lookup(ctx context.Context, k cacheKey, withRecords bool) (hev3.Answer, Records) {
	for {
		if ans, recs, ok := r.cache.get(k, r.now(), withRecords); ok {
			return ans, recs
		}
		r.mu.Lock()
		if c, ok := r.inflight[k]; ok {
			r.mu.Unlock()
			select {
			case <-c.done:
				if c.canceled && ctx.Err() == nil {
					continue // its caller gave up; try again
				}
				if !withRecords {
					return cloneAnswer(c.ans), Records{}
				}
				return cloneAnswer(c.ans), c.recs.clone(0)
			case <-ctx.Done():
				return hev3.Answer{Err: &Error{Name: k.name, Type: k.typ, Err: ctxErr(ctx)}}, Records{}
			}
		}
		c := &call{done: make(chan struct{})}
		r.inflight[k] = c
		r.mu.Unlock()

		ans, ttl, rrs := r.resolve(ctx, k)
		ans = bound(ans)
		recs := boundRecords(rrs)
		if ttl > 0 {
			now := r.now()
			r.cache.put(k, ans, recs, now, now.Add(ttl))
		}
		r.mu.Lock()
		delete(r.inflight, k)
		r.mu.Unlock()
		c.ans, c.recs, c.canceled = cloneAnswer(ans), recs.clone(0), ctx.Err() != nil
		close(c.done)
		return ans, recs
	}
}

func ctxErr(ctx context.Context) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
	return ctx.Err()
}

// resolve queries DNS for k and returns the answer, how long it may be
// cached (0: not at all; the shortest TTL of the records, CNAMEs and
// aliases it was read from, or the negative TTL, RFC 2308 §5), and those
// records.
func (r *Resolver) resolve(ctx context.Context, k cacheKey) (hev3.Answer, time.Duration, []dns.RR) {
	if k.typ != hev3.HTTPS {
		res := r.chase(ctx, k.name, k.typ, map[string]bool{k.name: true}, new(int))
		var ans hev3.Answer
		for _, rr := range res.rrs {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A); ok {
					ans.Addrs = append(ans.Addrs, a.Unmap())
				}
			case *dns.AAAA:
				// An IPv4-mapped AAAA is not an IPv6 address: drop it,
				// as the hosts file and literals do.
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok && !a.Is4In6() {
					ans.Addrs = append(ans.Addrs, a)
				}
			}
		}
		ans.Err = res.err
		return ans, res.ttl, res.trail
	}
	return r.resolveHTTPS(ctx, k.name)
}

// chased is the end of a CNAME chain.
type chased struct {
	rrs   []dns.RR      // records of the type asked, at the end of the chain
	owner string        // their owner name: the name asked or a CNAME's target
	trail []dns.RR      // the CNAMEs followed, then rrs
	ttl   time.Duration // how long the result may be cached
	err   error
}

// chase queries name for t and follows CNAMEs, in the reply and by asking
// again for a target the reply has no records of.
func (r *Resolver) chase(ctx context.Context, name string, t hev3.RecordType, visited map[string]bool, hops *int) chased {
	qtype := dnsType(t)
	ttl := uint32(math.MaxUint32)
	var trail []dns.RR
	for {
		resp, server, err := r.query(ctx, name, qtype)
		if err != nil {
			return chased{err: err}
		}
		owner := name
		for {
			var rrs []dns.RR
			var cname *dns.CNAME
			for _, rr := range resp.Answer {
				h := rr.Header()
				if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, owner) {
					continue
				}
				if h.Rrtype == qtype {
					rrs = append(rrs, rr)
					ttl = min(ttl, h.Ttl)
				} else if c, ok := rr.(*dns.CNAME); ok && cname == nil {
					cname = c
				}
			}
			if len(rrs) > 0 {
				return chased{rrs: rrs, owner: owner, trail: append(trail, rrs...), ttl: capTTL(ttl)}
			}
			if cname == nil {
				break
			}
			ttl = min(ttl, cname.Hdr.Ttl)
			trail = append(trail, cname)
			next := dns.CanonicalName(cname.Target)
			if err := r.hop(visited, hops, next); err != nil {
				return chased{err: &Error{Name: name, Type: t, Err: err}}
			}
			owner = next
		}
		if resp.Rcode == dns.RcodeNameError || owner == name {
			ttl = min(ttl, negativeTTL(resp))
			var err error
			if resp.Rcode == dns.RcodeNameError {
				err = &Error{Name: name, Type: t, Server: server, Err: ErrNXDomain}
			}
			return chased{owner: owner, trail: trail, ttl: capTTL(ttl), err: err}
		}
		name = owner // the reply stops at a CNAME: ask for its target
	}
}

// hop records one CNAME or alias step to next.
func (r *Resolver) hop(visited map[string]bool, hops *int, next string) error {
	if visited[next] {
		return fmt.Errorf("%w at %s", ErrLoop, next)
	}
	*hops++
	if *hops > MaxHops {
		return fmt.Errorf("%w: more than %d hops", ErrLoop, MaxHops)
	}
	visited[next] = true
	return nil
}

// negativeTTL is the TTL of a negative answer (RFC 2308 §5), in seconds.
func negativeTTL(m *dns.Msg) uint32 {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return uint32(DefaultNegativeTTL / time.Second)
}

func capTTL(ttl uint32) time.Duration {
	return min(time.Duration(ttl)*time.Second, MaxTTL)
}

func dnsType(t hev3.RecordType) uint16 {
	switch t {
	case hev3.A:
		return dns.TypeA
	case hev3.AAAA:
		return dns.TypeAAAA
	default:
		return dns.TypeHTTPS
	}
}

func recordType(qtype uint16) hev3.RecordType {
	switch qtype {
	case dns.TypeA:
		return hev3.A
	case dns.TypeAAAA:
		return hev3.AAAA
	default:
		return hev3.HTTPS
	}
}
