package dialer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
)

// funcResolver is a Resolver of a type that is not comparable.
type funcResolver func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f funcResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// loopbackResolver is Go's resolver, with every query sent to s.
func loopbackResolver(s *dnstest.Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
}

// TestResolvConfUnreadable: when the resolv.conf cannot be read, names go
// to Go's net.Resolver (the Dialer's sys, here pointed at a test server),
// for A and AAAA only, and Resolve says HTTPS records were not available.
// With WithNameservers, the own client is kept.
func TestResolvConfUnreadable(t *testing.T) {
	s := dnstest.Start(t)
	s.A("fb.test", "192.0.2.10")
	s.AAAA("fb.test", "2001:db8::10")
	s.HTTPS("fb.test", `1 . alpn="h3"`)
	missing := filepath.Join(t.TempDir(), "resolv.conf")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	d := New(WithResolvConf(missing), WithHostsFile("-"))
	d.sys = loopbackResolver(s)
	res, err := d.Resolve(ctx, "fb.test.")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.A.Addrs) != 1 || res.A.Addrs[0] != netip.MustParseAddr("192.0.2.10") ||
		len(res.AAAA.Addrs) != 1 || res.AAAA.Addrs[0] != netip.MustParseAddr("2001:db8::10") {
		t.Errorf("A %v, AAAA %v", res.A.Addrs, res.AAAA.Addrs)
	}
	if !strings.Contains(res.HTTPS.Err, "not available") || !strings.Contains(res.HTTPS.Err, missing) || len(res.HTTPS.Services) != 0 {
		t.Errorf("HTTPS %+v, want an error saying HTTPS records were not available, and why", res.HTTPS)
	}
	if s.Count("fb.test.", dnstest.TypeHTTPS) != 0 || s.Count("fb.test.", dnstest.TypeA) == 0 {
		t.Errorf("queries %v, want A and AAAA through net.Resolver, no HTTPS", s.Queries())
	}

	// The source and its note are what a race uses too.
	src, err := d.resolver(d.base)
	if err != nil || !strings.Contains(src.noHTTPS, "HTTPS records were not available") {
		t.Errorf("name source %+v, %v: want the system resolver with a note", src, err)
	}

	// Explicit nameservers: the own client, HTTPS included.
	d = New(WithResolvConf(missing), WithNameservers(s.Addr()), WithHostsFile("-"))
	res, err = d.Resolve(ctx, "fb.test")
	if err != nil || len(res.HTTPS.Services) != 1 || res.HTTPS.Err != "" {
		t.Errorf("with nameservers: %+v, %v", res.HTTPS, err)
	}
}

// TestWithResolverErrors: a Resolver's failures keep their meaning: not
// found is NXDOMAIN, a context that ended is a timeout.
func TestWithResolverErrors(t *testing.T) {
	r := funcResolver(func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if host == "slow.test" {
			<-ctx.Done()
			return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: true}
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	})
	d := New(WithResolver(r))
	res, err := d.Resolve(context.Background(), "gone.test")
	var de *DialError
	if !errors.As(err, &de) || !errors.Is(err, ErrNoAddress) || len(de.DNS) != 3 || !errors.Is(de.DNS[2], resolver.ErrNXDomain) {
		t.Errorf("%v (%+v), want ErrNoAddress with NXDOMAIN for A", err, res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = d.Resolve(ctx, "slow.test")
	if !errors.As(err, &de) || !errors.Is(de.DNS[2], resolver.ErrTimeout) {
		t.Errorf("%v, want a timeout", err)
	}
}

// TestResolvConfReload: a resolv.conf that changes is read again, at
// most every confCheckEvery (here forced), as Go's net package does.
func TestResolvConfReload(t *testing.T) {
	s := dnstest.Start(t)
	s.A("svc.one.test", "192.0.2.1")
	s.A("svc.two.test", "192.0.2.2")
	path := filepath.Join(t.TempDir(), "resolv.conf")
	write := func(conf string, mtime time.Time) {
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	write("search one.test\n", now.Add(-time.Hour))
	d := New(WithNameservers(s.Addr()), WithResolvConf(path), WithHostsFile("-"))
	found := func() string {
		t.Helper()
		res, err := d.Resolve(context.Background(), "svc")
		if err != nil {
			return err.Error()
		}
		return res.A.Found
	}
	force := func() {
		d.mu.Lock()
		for _, src := range d.resolvers {
			src.checked = time.Time{}
		}
		d.mu.Unlock()
	}
	if got := found(); got != "svc.one.test" {
		t.Fatalf("found %q, want svc.one.test", got)
	}
	write("search two.test\n", now)
	if got := found(); got != "svc.one.test" {
		t.Errorf("found %q within %v of the last check, want svc.one.test still", got, confCheckEvery)
	}
	force()
	if got := found(); got != "svc.two.test" {
		t.Errorf("found %q after the change, want svc.two.test", got)
	}
	// Unchanged: the same source, its cache kept.
	n := s.Total()
	force()
	found()
	if s.Total() != n {
		t.Errorf("an unchanged resolv.conf was read again (%d queries)", s.Total()-n)
	}
}

// TestAbsoluteTargets: the race's origin goes through the search list as
// the URL gave it; every other name (an HTTPS record's target, from DNS)
// is made fully qualified so that no search domain applies to it.
func TestAbsoluteTargets(t *testing.T) {
	var asked []string
	lookup := func(_ context.Context, name string, _ hev3.RecordType) hev3.Answer {
		asked = append(asked, name)
		return hev3.Answer{}
	}
	for _, origin := range []string{"svc", "svc."} {
		asked = nil
		f := absoluteTargets(lookup, origin)
		for _, name := range []string{origin, "pool.example.net", "edge.example.net.", "Svc"} {
			f(context.Background(), name, hev3.A)
		}
		want := []string{origin, "pool.example.net.", "edge.example.net.", "Svc."}
		if !slices.Equal(asked, want) {
			t.Errorf("origin %q: asked %q, want %q", origin, asked, want)
		}
	}
}
