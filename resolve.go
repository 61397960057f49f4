package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
	"github.com/miekg/dns"
)

// A Resolution is what a dial sees of a host's DNS: its HTTPS, AAAA and A
// answers, in the types of a race's Report, after CNAME chains and HTTPS
// AliasMode records were followed (RFC 9460 §3), the hosts file
// consulted, the default "http/1.1" added to each HTTPS record's ALPN
// unless it has no-default-alpn (RFC 9460 §7.1.2), and the bounds on what
// one race uses applied (Omitted counts the rest). Each answer's Records
// are the DNS records it was read from, as dig prints them.
type Resolution struct {
	Host string `json:"host"`
	// Port is the port given with the host ("host:8443"), 0 if none; it
	// names the HTTPS query (RFC 9460 §9.1: "_8443._https.host").
	Port  uint16   `json:"port,omitempty"`
	HTTPS DNSQuery `json:"HTTPS"`
	AAAA  DNSQuery `json:"AAAA"`
	A     DNSQuery `json:"A"`
	// Endpoints are the attempts an HTTP dial to the host would make, in
	// order, were each to fail: what the answers above come to, through
	// the same Happy Eyeballs machine as a dial (see PlannedEndpoint).
	Endpoints []PlannedEndpoint `json:"endpoints,omitempty"`
}

// A DNSRecord is one DNS resource record as dig and zone files present it
// (RFC 1035 §5.1; SVCB and HTTPS parameters as RFC 9460 §2.1 writes them):
// its String is
//
//	example.com.	300	IN	HTTPS	1 . alpn="h3,h2" port=8443 ech=AEn+DQBF...
type DNSRecord struct {
	Name string `json:"name"` // owner name, fully qualified
	TTL  uint32 `json:"ttl"`  // seconds left, counting down while cached
	Type string `json:"type"` // "A", "AAAA", "CNAME", "HTTPS", ...
	Data string `json:"data"` // what follows the type
}

// String returns r in dig's presentation format, fields separated by tabs.
func (r DNSRecord) String() string {
	return r.Name + "\t" + strconv.FormatUint(uint64(r.TTL), 10) + "\tIN\t" + r.Type + "\t" + r.Data
}

// Resolve looks up host with DefaultDialer. See (*Dialer).Resolve.
func Resolve(ctx context.Context, host string, opts ...Option) (*Resolution, error) {
	return DefaultDialer.Resolve(ctx, host, opts...)
}

// Resolve queries host's HTTPS, AAAA and A records in parallel, as a dial
// to host would, with the same resolver, nameservers (WithNameservers),
// hosts file (WithHostsFile), resolv.conf search list (WithResolvConf;
// DNSQuery.Found names what it found) and cache: an answer Resolve got is
// one the next dial uses, and the other way round. host may carry a port
// ("example.com:8443", "[2001:db8::1]:443"): a port other than 443 asks
// for the HTTPS records of "_8443._https.example.com", as a dial to that
// port does (RFC 9460 §9.1). Through a Resolver (WithResolver, or the
// system's on macOS and Windows) the HTTPS answer is an error saying
// HTTPS records are not available. An IP literal is answered without
// DNS. Each answer carries its own error; the returned error is
// a *DialError (stage "dns") matching ErrNoAddress when no query gave a
// record, or the context's error when it ended first.
func (d *Dialer) Resolve(ctx context.Context, host string, opts ...Option) (*Resolution, error) {
	d.init()
	cfg := d.base.with(opts)
	res := &Resolution{Host: host, HTTPS: DNSQuery{Name: host, Type: "HTTPS"}, AAAA: DNSQuery{Name: host, Type: "AAAA"}, A: DNSQuery{Name: host, Type: "A"}}
	if h, p, err := net.SplitHostPort(host); err == nil {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil || port == 0 {
			return res, &DialError{URL: host, Stage: "url", Err: fmt.Errorf("invalid port %q", p)}
		}
		host, res.Host, res.Port = h, h, uint16(port)
	}
	if err := checkHost(host); err != nil {
		return res, &DialError{URL: host, Stage: "url", Err: err}
	}
	name, literal := hostOrLiteral(host)
	if literal.IsValid() {
		if literal.Is4() {
			res.A.Addrs = append(res.A.Addrs, literal)
		} else {
			res.AAAA.Addrs = append(res.AAAA.Addrs, literal)
		}
		return res, nil
	}
	if strings.HasSuffix(host, ".") {
		name += "." // rooted: no search list
	}
	r, err := d.resolver(cfg)
	if err != nil {
		return res, &DialError{URL: host, Stage: "dns", Err: err}
	}
	ctx, cancel := cfg.dialContext(ctx)
	defer cancel()
	start := time.Now()
	queries := []struct {
		t   hev3.RecordType
		dst *DNSQuery
	}{{hev3.HTTPS, &res.HTTPS}, {hev3.AAAA, &res.AAAA}, {hev3.A, &res.A}}
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		q.dst.Name = name
		if q.t == hev3.HTTPS {
			q.dst.Name = httpsQueryName(name, res.Port)
		}
		wg.Go(func() {
			var ans hev3.Answer
			var recs resolver.Records
			// The Dialer's bound on queries in flight holds here too.
			if release, err := d.queries.acquire(ctx, maxQueriesPerDialer); err != nil {
				ans.Err = err
			} else {
				ans, recs = r.records(ctx, q.dst.Name, q.t)
				release()
			}
			q.dst.End = time.Since(start)
			fillAnswer(q.dst, ans)
			q.dst.Records, q.dst.RecordsOmitted = dnsRecords(recs)
			if ans.Err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", q.t, q.dst.Name, ans.Err)
			}
		})
	}
	wg.Wait()
	res.Endpoints = plan(ctx, name, res.Port, func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
		release, err := d.queries.acquire(ctx, maxQueriesPerDialer)
		if err != nil {
			return hev3.Answer{Err: err}
		}
		defer release()
		return r.lookup(ctx, name, t)
	})
	if len(res.A.Addrs) > 0 || len(res.AAAA.Addrs) > 0 || len(res.HTTPS.Services) > 0 {
		return res, nil
	}
	derr := &DialError{URL: host, Stage: "dns", Err: fmt.Errorf("%w for %s", ErrNoAddress, name)}
	timedOut := true
	for _, err := range errs {
		if err != nil {
			derr.DNS = append(derr.DNS, err)
		}
		// An HTTPS query a Resolver cannot answer (WithResolver, the
		// system's) says nothing of time.
		timedOut = timedOut && (errors.Is(err, resolver.ErrTimeout) || errors.Is(err, errNoHTTPS))
	}
	if timedOut {
		// No server answered at all: a timeout, as net.Error sees it.
		derr.Err = fmt.Errorf("%w: no DNS answer for %s", context.DeadlineExceeded, name)
	}
	return res, derr
}

// httpsQueryName is the name of host's HTTPS records for port (RFC 9460
// §9.1): host itself for port 443, otherwise host with a port prefix,
// "_8443._https.host". An http:// origin asks as its https:// form does
// (§9.5), so port 80 never reaches here: plain dials ask no HTTPS query.
func httpsQueryName(host string, port uint16) string {
	if port == 443 || port == 0 {
		return host
	}
	return "_" + strconv.Itoa(int(port)) + "._https." + host
}

// httpsPortName returns lookup with its HTTPS queries asked under the
// name for port (httpsQueryName). The answer's ServiceMode TargetName "."
// still stands for the origin host (see resolver.resolveHTTPS).
func httpsPortName(lookup func(context.Context, string, hev3.RecordType) hev3.Answer, port uint16) func(context.Context, string, hev3.RecordType) hev3.Answer {
	if port == 443 || port == 0 {
		return lookup
	}
	return func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
		if t == hev3.HTTPS {
			name = httpsQueryName(name, port)
		}
		return lookup(ctx, name, t)
	}
}

// dnsRecords converts the resolver's records to DNSRecords.
func dnsRecords(recs resolver.Records) ([]DNSRecord, int) {
	var out []DNSRecord
	for _, rr := range recs.RRs {
		h := rr.Header()
		out = append(out, DNSRecord{Name: h.Name, TTL: h.Ttl, Type: dns.Type(h.Rrtype).String(), Data: resolver.Presentation(rr)})
	}
	return out, recs.Omitted
}
