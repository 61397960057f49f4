package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
)

// A Resolution is what a dial sees of a host's DNS: its HTTPS, AAAA and A
// answers, in the types of a race's Report, after CNAME chains and HTTPS
// AliasMode records were followed, the hosts file consulted, the default
// "http/1.1" added to each HTTPS record's ALPN (RFC 9460 §7.1.2), and the
// bounds on what one race uses applied (Omitted counts the rest).
type Resolution struct {
	Host  string   `json:"host"`
	HTTPS DNSQuery `json:"HTTPS"`
	AAAA  DNSQuery `json:"AAAA"`
	A     DNSQuery `json:"A"`
}

// Resolve looks up host with DefaultDialer. See (*Dialer).Resolve.
func Resolve(ctx context.Context, host string, opts ...Option) (*Resolution, error) {
	return DefaultDialer.Resolve(ctx, host, opts...)
}

// Resolve queries host's HTTPS, AAAA and A records in parallel, as a dial
// to host would, with the same resolver, nameservers (WithNameservers),
// hosts file (WithHostsFile), resolv.conf search list (WithResolvConf;
// DNSQuery.Found names what it found) and cache: an answer Resolve got is
// one the next dial uses, and the other way round. Through a Resolver
// (WithResolver, or the system's on macOS and Windows) the HTTPS answer
// is an error saying HTTPS records are not available. An IP literal is answered
// without DNS. Each answer carries its own error; the returned error is
// a *DialError (stage "dns") matching ErrNoAddress when no query gave a
// record, or the context's error when it ended first.
func (d *Dialer) Resolve(ctx context.Context, host string, opts ...Option) (*Resolution, error) {
	d.init()
	cfg := d.base.with(opts)
	res := &Resolution{Host: host, HTTPS: DNSQuery{Name: host, Type: "HTTPS"}, AAAA: DNSQuery{Name: host, Type: "AAAA"}, A: DNSQuery{Name: host, Type: "A"}}
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
		wg.Go(func() {
			var ans hev3.Answer
			// The Dialer's bound on queries in flight holds here too.
			if release, err := d.queries.acquire(ctx, maxQueriesPerDialer); err != nil {
				ans.Err = err
			} else {
				ans = r.lookup(ctx, name, q.t)
				release()
			}
			q.dst.End = time.Since(start)
			fillAnswer(q.dst, ans)
			if ans.Err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", q.t, name, ans.Err)
			}
		})
	}
	wg.Wait()
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
