package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
)

// writeFile writes content to a new file in a test's directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSearchList: a short name is found through the search list of a
// resolv.conf the test writes, a name with ndots dots is tried as it is
// first, and a name with a trailing dot is never searched. Every query
// of a race asks the name the search list found.
func TestSearchList(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	// host is ws.example.test: "ws" is found under the second domain.
	conf := writeFile(t, "resolv.conf", "nameserver 192.0.2.53\nsearch nowhere.test example.test\noptions ndots:2\n")
	var rep *dialer.Report
	d := e.dialer(dialer.WithResolvConf(conf), dialer.WithReport(func(r *dialer.Report) { rep = r }))

	c, _, err := d.DialWebSocket(ctx(t), "ws://ws:"+itoa(e.port)+"/echo")
	if err != nil {
		t.Fatalf("short name: %v\n%s", err, rep)
	}
	c.CloseNow()
	if len(rep.DNS) == 0 {
		t.Fatalf("no DNS queries in the report\n%s", rep)
	}
	// A query still in flight when the race was won (End 0: under load,
	// the A query after the AAAA answer and the connection) has found
	// nothing yet; every answered one must have found host.
	answered := 0
	for _, q := range rep.DNS {
		if q.Name != "ws" {
			t.Errorf("query %s asked %q, want ws\n%s", q.Type, q.Name, rep)
		}
		if q.End == 0 {
			continue
		}
		answered++
		if q.Found != host {
			t.Errorf("query %s %s found %q, want ws found as %s\n%s", q.Type, q.Name, q.Found, host, rep)
		}
	}
	if answered == 0 {
		t.Errorf("no query answered before the race ended\n%s", rep)
	}
	if n := e.dns.Count("ws.nowhere.test.", dnstest.TypeA); n != 1 {
		t.Errorf("first search domain asked %d times for A, want once", n)
	}
	if n := e.dns.Count("ws.", dnstest.TypeAny); n != 0 {
		t.Errorf("ws. asked %d times: with fewer than ndots dots it comes last", n)
	}

	// Two dots: tried as it is first, and found (its answers are
	// cached from the dial above); no search domain.
	c, _, err = d.DialWebSocket(ctx(t), e.url(false))
	if err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
	if n := e.dns.Count(host+".nowhere.test.", dnstest.TypeAny); n != 0 {
		t.Errorf("%s searched (%d queries) though it has ndots dots", host, n)
	}
	for _, q := range rep.DNS {
		if q.Found != "" || q.Name != host {
			t.Errorf("query %s %s found %q, want the name itself", q.Type, q.Name, q.Found)
		}
	}

	// A trailing dot: only that name, which does not exist.
	before := e.dns.Total()
	_, _, err = d.DialWebSocket(ctx(t), "ws://ws.:"+itoa(e.port)+"/echo")
	if !errors.Is(err, dialer.ErrNoAddress) {
		t.Errorf("ws.: %v, want ErrNoAddress", err)
	}
	for _, q := range e.dns.Queries()[before:] {
		if q.Name != "ws." {
			t.Errorf("query for %s: a rooted name was searched", q.Name)
		}
	}
}

// TestSearchListTLSName: the TLS server name stays the URL's host, as in
// net/http, whatever name the search list found: the test certificate
// covers ws.example.test, so a dial to "ws" fails verification.
func TestSearchListTLSName(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	conf := writeFile(t, "resolv.conf", "search example.test\n")
	d := e.dialer(dialer.WithResolvConf(conf))
	_, _, err := d.DialWebSocket(ctx(t), "wss://ws:"+itoa(e.port)+"/echo")
	var cerr *tls.CertificateVerificationError
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "not ws") {
		t.Errorf("%v, want a certificate error for the name ws", err)
	}
	// The full name verifies.
	c, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
}

// TestLocalhost: localhost and names under it reach loopback with an
// empty hosts file and without a single DNS query (RFC 6761 §6.3).
func TestLocalhost(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	hosts := writeFile(t, "hosts", "")
	var rep *dialer.Report
	d := e.dialer(dialer.WithHostsFile(hosts), dialer.WithReport(func(r *dialer.Report) { rep = r }))
	for _, name := range []string{"localhost", "foo.localhost", "LocalHost."} {
		c, _, err := d.DialWebSocket(ctx(t), "ws://"+name+":"+itoa(e.port)+"/echo")
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, rep)
		}
		c.CloseNow()
		if w := rep.Attempts[rep.Winner].Addr.Addr(); !w.IsLoopback() {
			t.Errorf("%s: won on %v", name, w)
		}
		conn, err := d.DialContext(ctx(t), "tcp4", net.JoinHostPort(name, itoa(e.port)))
		if err != nil {
			t.Fatalf("DialContext %s: %v", name, err)
		}
		if got := conn.RemoteAddr().String(); got != "127.0.0.1:"+itoa(e.port) {
			t.Errorf("DialContext tcp4 %s: connected to %s", name, got)
		}
		conn.Close()
	}
	if n := e.dns.Total(); n != 0 {
		t.Errorf("%d DNS queries for localhost names: %v", n, e.dns.Queries())
	}
}

// TestSpecialUseRefused: .onion (RFC 7686) and .invalid (RFC 6761) names
// fail at once with a clear error, sending no query and making no
// attempt, even when the DNS server has records for them.
func TestSpecialUseRefused(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	e.dns.A("abc.onion", "127.0.0.1")
	e.dns.A("site.invalid", "127.0.0.1")
	var rep *dialer.Report
	d := e.dialer(dialer.WithReport(func(r *dialer.Report) { rep = r }))
	for _, tt := range []struct{ name, want string }{
		{"abc.onion", "RFC 7686"},
		{"ABC.Onion.", "RFC 7686"},
		{"site.invalid", "RFC 6761"},
	} {
		_, _, err := d.DialWebSocket(ctx(t), "ws://"+tt.name+":"+itoa(e.port)+"/echo")
		if !errors.Is(err, dialer.ErrNoAddress) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrNoAddress citing %s", tt.name, err, tt.want)
		}
		if rep == nil || len(rep.Attempts) != 0 || len(rep.DNS) != 0 {
			t.Errorf("%s: report %v, want no query and no attempt", tt.name, rep)
		}
		if _, err := d.DialContext(ctx(t), "tcp", net.JoinHostPort(tt.name, itoa(e.port))); !errors.Is(err, dialer.ErrNoAddress) {
			t.Errorf("DialContext %s: %v", tt.name, err)
		}
		if _, err := d.Resolve(ctx(t), tt.name); !errors.Is(err, dialer.ErrNoAddress) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve %s: %v", tt.name, err)
		}
	}
	if n := e.dns.Total(); n != 0 {
		t.Errorf("%d DNS queries for special-use names: %v", n, e.dns.Queries())
	}
}

// TestWithResolver: a caller's net.Resolver (Go's own, sending its
// queries to the test server) gives the addresses; the race asks it no
// HTTPS question and does not wait for one, and the Report says HTTPS
// records were not available.
func TestWithResolver(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	e.dns.HTTPS(host, `1 . alpn="h2"`)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.dns.Addr())
	}}
	var rep *dialer.Report
	// The longest resolution delay: a race that waited for an HTTPS
	// answer would start its first attempt 2 s late.
	d := e.dialer(dialer.WithResolver(r), dialer.WithResolutionDelay(2*time.Second), dialer.WithReport(func(r *dialer.Report) { rep = r }))
	// Rooted: the machine's search list (which Go's resolver reads) never
	// applies, so every query is for this name.
	c, resp, err := d.DialWebSocket(ctx(t), "wss://"+host+".:"+itoa(e.port)+"/echo")
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	c.CloseNow()
	if start := rep.Attempts[0].Start; start > time.Second {
		t.Errorf("first attempt at %v: the race waited for HTTPS records\n%s", start, rep)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTP/%d, want 2", resp.ProtoMajor)
	}
	if !strings.Contains(rep.HTTPSUnavailable, "HTTPS records were not available") || !strings.Contains(rep.String(), "HTTPS records were not available") {
		t.Errorf("report does not say HTTPS records were not available:\n%s", rep)
	}
	for _, q := range rep.DNS {
		if q.Type == "HTTPS" {
			t.Errorf("HTTPS query in the report: %+v", q)
		}
	}
	if n := e.dns.Count(host+".", dnstest.TypeHTTPS); n != 0 {
		t.Errorf("%d HTTPS queries", n)
	}
	if e.dns.Count(host+".", dnstest.TypeA)+e.dns.Count(host+".", dnstest.TypeAAAA) == 0 {
		t.Errorf("the resolver's server saw no A or AAAA query: %v", e.dns.Queries())
	}

	res, err := d.Resolve(ctx(t), host+".")
	if err != nil || len(res.A.Addrs) != 1 || len(res.AAAA.Addrs) != 1 || !strings.Contains(res.HTTPS.Err, "not available") {
		t.Errorf("Resolve: %+v, %v", res, err)
	}
}

// TestResolvConfUnreadableFallsBack: with a resolv.conf that cannot be
// read, the Dialer resolves with Go's net.Resolver, as on macOS and
// Windows, and says so; the hosts file still answers first. (The name
// is in the hosts file, so nothing reaches the machine's resolver.)
func TestResolvConfUnreadableFallsBack(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	missing := filepath.Join(t.TempDir(), "resolv.conf")
	hosts := writeFile(t, "hosts", "127.0.0.1 fallback.test\n::1 fallback.test\n")
	var rep *dialer.Report
	d := dialer.New(dialer.WithResolvConf(missing), dialer.WithHostsFile(hosts), dialer.WithReport(func(r *dialer.Report) { rep = r }))
	c, _, err := d.DialWebSocket(ctx(t), "ws://fallback.test:"+itoa(e.port)+"/echo")
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	c.CloseNow()
	// ws:// asks no HTTPS records anyway; wss:// would have.
	if rep.HTTPSUnavailable != "" {
		t.Errorf("ws:// report says %q", rep.HTTPSUnavailable)
	}
	// An https race wants them: the report says why there were none.
	_, _, err = d.DialWebSocket(ctx(t), "wss://fallback.test:"+itoa(e.port)+"/echo")
	if err == nil {
		t.Fatal("wss to a plain server succeeded")
	}
	if !strings.Contains(rep.HTTPSUnavailable, "system resolver") || !strings.Contains(rep.HTTPSUnavailable, missing) {
		t.Errorf("report: %q, want the system resolver and the unreadable path", rep.HTTPSUnavailable)
	}
}
