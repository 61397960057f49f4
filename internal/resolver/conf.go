package resolver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Bounds on what a resolv.conf can make the resolver do, those of glibc
// (resolv.h) where Go's net package sets none.
const (
	// MaxNameservers is how many nameserver lines are used (MAXNS, the
	// limit Go's dnsconfig_unix.go applies too); later ones are ignored.
	MaxNameservers = 3
	// MaxSearch is how many search domains are used (glibc's MAXDNSRCH):
	// a lookup tries at most MaxSearch+1 names.
	MaxSearch = 6
	// MaxNdots caps options ndots (RES_MAXNDOTS, as Go does).
	MaxNdots = 15
	// MaxAttempts caps options attempts (RES_MAXRETRY).
	MaxAttempts = 5
	// MaxConfTimeout caps options timeout (RES_MAXRETRANS).
	MaxConfTimeout = 30 * time.Second
	// maxConfBytes bounds how much of a resolv.conf is read.
	maxConfBytes = 64 << 10
)

// A Conf is what a resolv.conf file (resolv.conf(5)) says, parsed as Go's
// net package does (dnsconfig_unix.go): unknown lines and options are
// ignored, and later lines override earlier ones.
type Conf struct {
	// Servers are the nameserver lines that are IP addresses, as
	// "ip:53", at most MaxNameservers.
	Servers []string
	// Search is the search list (search, or domain when it comes last),
	// fully qualified, at most MaxSearch domains; nil when the file has
	// neither line (ReadConf then uses the domain of the host's name).
	Search []string
	// Ndots is options ndots (default 1): a name with at least this
	// many dots is tried as it is before the search list.
	Ndots int
	// Timeout is options timeout (0: not set), the wait for one reply.
	Timeout time.Duration
	// Attempts is options attempts (0: not set): how many times each
	// server is asked.
	Attempts int
	// Rotate is options rotate: start with a different server each
	// query.
	Rotate bool
	// SingleRequest is options single-request or single-request-reopen:
	// queries are sent one at a time, never in parallel.
	SingleRequest bool
	// UseTCP is options use-vc (usevc, tcp): queries go over TCP.
	UseTCP bool
	// TrustAD is options trust-ad: queries carry the AD bit (RFC 6840
	// §5.7) so that the server may set it in its reply.
	TrustAD bool
}

// ReadConf reads and parses the resolv.conf at path. The error wraps the
// file system's (fs.ErrNotExist for a missing file).
func ReadConf(path string) (*Conf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: reading %s: %w", path, err)
	}
	defer f.Close()
	c, err := ParseConf(io.LimitReader(f, maxConfBytes))
	if err != nil {
		return nil, fmt.Errorf("dns: reading %s: %w", path, err)
	}
	if c.Search == nil {
		c.Search = defaultSearch(os.Hostname)
	}
	return c, nil
}

// defaultSearch is the search list of a resolv.conf without search or
// domain line: the domain of the host's name, if it has one, as glibc
// and Go's net package (dnsDefaultSearch) do.
func defaultSearch(hostname func() (string, error)) []string {
	hn, err := hostname()
	if err != nil {
		return nil
	}
	if i := strings.IndexByte(hn, '.'); i >= 0 && i < len(hn)-1 {
		return searchList([]string{hn[i+1:]})
	}
	return nil
}

// ParseConf parses a resolv.conf.
func ParseConf(r io.Reader) (*Conf, error) {
	c := &Conf{Ndots: 1}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			// Only addresses: a name would need DNS to find DNS.
			if len(f) > 1 && len(c.Servers) < MaxNameservers {
				if a, err := netip.ParseAddr(f[1]); err == nil && a.Zone() == "" {
					c.Servers = append(c.Servers, net.JoinHostPort(a.Unmap().String(), "53"))
				}
			}
		case "domain":
			if len(f) > 1 {
				c.Search = searchList(f[1:2])
			}
		case "search":
			c.Search = searchList(f[1:])
		case "options":
			for _, o := range f[1:] {
				c.option(o)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// searchList returns the valid domains of a search or domain line, fully
// qualified and lower case, without the root and without duplicates, at
// most MaxSearch.
func searchList(domains []string) []string {
	out := []string{}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(d, ".")) + "."
		if d == "." || !validName(d) || slices.Contains(out, d) {
			continue
		}
		if len(out) == MaxSearch {
			break
		}
		out = append(out, d)
	}
	return out
}

// validName reports whether fqdn is a domain name DNS can carry.
func validName(fqdn string) bool {
	_, ok := dns.IsDomainName(fqdn)
	return ok && len(fqdn) <= 254
}

// option applies one word of an options line.
func (c *Conf) option(o string) {
	name, val, _ := strings.Cut(o, ":")
	n, err := strconv.Atoi(val)
	if err != nil {
		n = 0
	}
	switch name {
	case "ndots":
		c.Ndots = min(max(n, 0), MaxNdots)
	case "timeout":
		c.Timeout = min(time.Duration(max(n, 1))*time.Second, MaxConfTimeout)
	case "attempts":
		c.Attempts = min(max(n, 1), MaxAttempts)
	case "rotate":
		c.Rotate = true
	case "single-request", "single-request-reopen":
		// Each query has its own socket already, which is what
		// single-request-reopen asks; both make queries sequential.
		c.SingleRequest = true
	case "use-vc", "usevc", "tcp":
		c.UseTCP = true
	case "trust-ad":
		c.TrustAD = true
	case "edns0":
		// Queries always carry EDNS0 (RFC 6891), as Go's do.
	}
}

// NameList returns the names a lookup of name tries, in order, as Go's
// net package does (dnsclient_unix.go, nameList), all fully qualified: a
// name with a trailing dot is tried alone; a name with at least ndots
// dots is tried as it is first, then with each search domain appended;
// otherwise the search domains come first and the name as it is last.
// Names longer than 254 bytes (with the root) and special-use names
// (Special) made by appending a search domain are left out.
func NameList(name string, search []string, ndots int) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	fqdn := name + "."
	asIs := strings.Count(name, ".") >= ndots
	names := make([]string, 0, len(search)+1)
	if asIs {
		names = append(names, fqdn)
	}
	for _, s := range search {
		// A search domain must not turn a name into a special-use
		// one (Go's nameList leaves out .onion names likewise).
		if n := fqdn + s; len(n) <= 254 && !isSpecial(n) {
			names = append(names, n)
		}
	}
	if !asIs {
		names = append(names, fqdn)
	}
	return names
}

func isSpecial(name string) bool {
	_, ok, _ := Special(name)
	return ok
}

// order returns the servers a query asks, in turn: each server attempts
// times (options attempts), starting with the next one each query under
// options rotate, as Go's net package does (dnsclient_unix.go, tryOneName).
func (r *Resolver) order() []string {
	start := 0
	if r.rotate && len(r.servers) > 1 {
		start = int((r.next.Add(1) - 1) % uint32(len(r.servers)))
	}
	out := make([]string, 0, r.attempts*len(r.servers))
	for range r.attempts {
		for i := range r.servers {
			out = append(out, r.servers[(start+i)%len(r.servers)])
		}
	}
	return out
}

// network is the transport of a query's first exchange: "tcp" under
// options use-vc, "udp" otherwise (a truncated reply is asked again over
// TCP, RFC 7766 §5).
func (r *Resolver) network() string {
	if r.useTCP {
		return "tcp"
	}
	return "udp"
}

// one waits, under options single-request, until no other query of the
// resolver is in flight, and returns the function that lets the next one
// go: glibc's option asks for "sequential" requests. Otherwise it returns
// at once.
func (r *Resolver) one(ctx context.Context) (release func(), err error) {
	if r.single == nil {
		return func() {}, nil
	}
	select {
	case r.single <- struct{}{}:
		return func() { <-r.single }, nil
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
}
