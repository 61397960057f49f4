package resolver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newResolver returns a resolver for servers with no hosts file.
func newResolver(t *testing.T, cfg Config, servers ...string) *Resolver {
	t.Helper()
	cfg.Servers = servers
	if cfg.HostsFile == "" {
		cfg.HostsFile = "-"
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lookup(t *testing.T, r *Resolver, name string, typ hev3.RecordType) hev3.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Lookup(ctx, name, typ)
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func wantAddrs(t *testing.T, ans hev3.Answer, want ...string) {
	t.Helper()
	if ans.Err != nil {
		t.Fatalf("error %v, want %v", ans.Err, want)
	}
	if !slices.Equal(ans.Addrs, addrs(want...)) {
		t.Fatalf("addresses %v, want %v", ans.Addrs, want)
	}
}

func TestLookupA(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1", "192.0.2.2")
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1", "192.0.2.2")
}

func TestLookupAAAA(t *testing.T) {
	s := dnstest.Start(t)
	s.AAAA("a.test", "2001:db8::1")
	s.A("a.test", "192.0.2.1")
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "A.Test.", hev3.AAAA), "2001:db8::1")
}

// TestQueryFormat checks RD, EDNS0 with 1232 bytes and the question.
func TestQueryFormat(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	var mu sync.Mutex
	var got *dns.Msg
	s.Set("a.test", dnstest.TypeA, func(w dns.ResponseWriter, req *dnstest.Request) {
		mu.Lock()
		got = req.Msg.Copy()
		mu.Unlock()
		w.WriteMsg(req.Reply())
	})
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("no query seen")
	}
	if !got.RecursionDesired {
		t.Error("RD not set")
	}
	if opt := got.IsEdns0(); opt == nil || opt.UDPSize() != 1232 {
		t.Errorf("EDNS0 %v, want UDP size 1232", opt)
	}
	if q := got.Question; len(q) != 1 || q[0].Name != "a.test." || q[0].Qtype != dns.TypeA || q[0].Qclass != dns.ClassINET {
		t.Errorf("question %v", q)
	}
}

func TestHTTPSParams(t *testing.T) {
	ech := []byte("\x00\x08fake-ech")
	s := dnstest.Start(t)
	s.HTTPS("a.test",
		"1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1 ech="+base64.StdEncoding.EncodeToString(ech),
		"2 svc.example. alpn=h2,http/1.1 key65000=x")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	want := []hev3.ServiceInfo{{
		Priority:  1,
		Target:    "",
		ALPN:      []string{"h3", "h2", "http/1.1"},
		Port:      8443,
		IPv4Hints: addrs("192.0.2.1", "192.0.2.2"),
		IPv6Hints: addrs("2001:db8::1"),
		ECH:       ech,
	}, {
		Priority: 2,
		Target:   "svc.example",
		ALPN:     []string{"h2", "http/1.1"},
	}}
	if !reflect.DeepEqual(ans.Services, want) {
		t.Errorf("services\n%+v\nwant\n%+v", ans.Services, want)
	}
	if ans.Addrs != nil {
		t.Errorf("addresses %v in an HTTPS answer", ans.Addrs)
	}
}

func TestHTTPSNoDefaultALPN(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "1 . alpn=h3 no-default-alpn", "2 . alpn=h3")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil || len(ans.Services) != 2 {
		t.Fatalf("%+v", ans)
	}
	if got := ans.Services[0].ALPN; !slices.Equal(got, []string{"h3"}) {
		t.Errorf("with no-default-alpn: ALPN %q, want [h3]", got)
	}
	if got := ans.Services[1].ALPN; !slices.Equal(got, []string{"h3", "http/1.1"}) {
		t.Errorf("without no-default-alpn: ALPN %q, want [h3 http/1.1]", got)
	}
}

func TestHTTPSNoALPN(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "1 . port=444")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil || len(ans.Services) != 1 || !slices.Equal(ans.Services[0].ALPN, []string{"http/1.1"}) || ans.Services[0].Port != 444 {
		t.Fatalf("%+v", ans)
	}
}

func TestHTTPSPriority(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "3 c.test. alpn=h2", "1 a.test. alpn=h3", "2 b.test. alpn=h2", "1 a2.test. alpn=h3")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	var got []string
	for _, si := range ans.Services {
		got = append(got, fmt.Sprintf("%d %s", si.Priority, si.Target))
	}
	if want := []string{"1 a.test", "1 a2.test", "2 b.test", "3 c.test"}; !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

// TestHTTPSMandatory checks that records are skipped when they have a
// mandatory key this package does not know, a mandatory key they do not
// have, or no-default-alpn without alpn (RFC 9460 §2.4.3, §8).
func TestHTTPSMandatory(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test",
		"1 ok1.test. mandatory=alpn,port alpn=h2 port=443",
		"2 bad1.test. mandatory=key65000 alpn=h2 key65000=x",
		"3 ok2.test. alpn=h2 key65000=x",
		"4 bad2.test. mandatory=dohpath alpn=h2 dohpath=/q{?dns}",
	)
	s.Add(
		// Not self-consistent, so write them raw: miekg/dns refuses them
		// in presentation format only in some versions.
		mustHTTPS(t, "a.test.", 5, "bad3.test.", &dns.SVCBNoDefaultAlpn{}),
		mustHTTPS(t, "a.test.", 6, "bad4.test.", &dns.SVCBMandatory{Code: []dns.SVCBKey{dns.SVCB_PORT}}, &dns.SVCBAlpn{Alpn: []string{"h2"}}),
	)
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	var got []string
	for _, si := range ans.Services {
		got = append(got, si.Target)
	}
	if want := []string{"ok1.test", "ok2.test"}; !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q", got, want)
	}
}

// mustHTTPS returns an HTTPS record in presentation format, built from kvs.
func mustHTTPS(t *testing.T, owner string, prio uint16, target string, kvs ...dns.SVCBKeyValue) string {
	t.Helper()
	rr := &dns.HTTPS{SVCB: dns.SVCB{
		Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300},
		Priority: prio, Target: target, Value: kvs,
	}}
	return rr.String()
}

func TestHTTPSAlias(t *testing.T) {
	s := dnstest.Start(t)
	// The ServiceMode record next to the alias must be ignored.
	s.HTTPS("a.test", "0 pool.test.", "1 . alpn=h2")
	s.HTTPS("pool.test", "0 svc.test.")
	s.HTTPS("svc.test", "2 . alpn=h3 port=8443", "1 other.test. alpn=h2")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	want := []hev3.ServiceInfo{
		{Priority: 1, Target: "other.test", ALPN: []string{"h2", "http/1.1"}},
		{Priority: 2, Target: "svc.test", ALPN: []string{"h3", "http/1.1"}, Port: 8443},
		// RFC 9460 §3: after an alias, the final name with no SvcParams.
		{Priority: 3, Target: "svc.test", ALPN: []string{"http/1.1"}},
	}
	if !reflect.DeepEqual(ans.Services, want) {
		t.Errorf("services\n%+v\nwant\n%+v", ans.Services, want)
	}
}

func TestHTTPSAliasDot(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "0 .")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil || ans.Services != nil {
		t.Errorf("%+v, want NODATA", ans)
	}
}

func TestHTTPSAliasLoop(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "0 b.test.")
	s.HTTPS("b.test", "0 a.test.")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if !errors.Is(ans.Err, ErrLoop) || ans.Services != nil {
		t.Errorf("%+v, want ErrLoop", ans)
	}
	if a, b := s.Count("a.test", dnstest.TypeHTTPS), s.Count("b.test", dnstest.TypeHTTPS); a != 1 || b != 1 {
		t.Errorf("a.test asked %d times, b.test %d times, want once each", a, b)
	}
}

func TestHTTPSAliasTooLong(t *testing.T) {
	s := dnstest.Start(t)
	for i := range MaxHops + 1 {
		s.HTTPS(fmt.Sprintf("h%d.test", i), fmt.Sprintf("0 h%d.test.", i+1))
	}
	s.HTTPS(fmt.Sprintf("h%d.test", MaxHops+1), "1 . alpn=h2")
	r := newResolver(t, Config{}, s.Addr())
	if ans := lookup(t, r, "h0.test", hev3.HTTPS); !errors.Is(ans.Err, ErrLoop) {
		t.Errorf("%d aliases: %+v, want ErrLoop", MaxHops+1, ans)
	}
	// The record, then the final name (RFC 9460 §3).
	if ans := lookup(t, r, "h1.test", hev3.HTTPS); ans.Err != nil || len(ans.Services) != 2 {
		t.Errorf("%d aliases: %+v", MaxHops, ans)
	}
}

func TestCNAMEChain(t *testing.T) {
	s := dnstest.Start(t)
	s.CNAME("www.test", "cdn.test")
	s.CNAME("cdn.test", "edge.test")
	s.A("edge.test", "192.0.2.7")
	s.HTTPS("edge.test", "1 . alpn=h2")
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "www.test", hev3.A), "192.0.2.7")
	if n := s.Count("edge.test", dnstest.TypeAny); n != 0 {
		t.Errorf("%d queries for the CNAME target, want 0 (all in one answer)", n)
	}
	// "." at the end of a CNAME chain stays the origin.
	ans := lookup(t, r, "www.test", hev3.HTTPS)
	if ans.Err != nil || len(ans.Services) != 1 || ans.Services[0].Target != "" {
		t.Errorf("HTTPS via CNAME: %+v", ans)
	}
	// NODATA at the end of the chain.
	if ans := lookup(t, r, "www.test", hev3.AAAA); ans.Err != nil || ans.Addrs != nil {
		t.Errorf("AAAA via CNAME: %+v, want NODATA", ans)
	}
}

// TestCNAMERequery checks that a reply holding only a CNAME makes the
// resolver ask for the target.
func TestCNAMERequery(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("www.test. 300 IN CNAME cdn.test.")
	s.A("cdn.test", "192.0.2.8")
	s.Set("www.test", dnstest.TypeA, dnstest.Modify(func(m *dns.Msg) { m.Answer = m.Answer[:1] }))
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "www.test", hev3.A), "192.0.2.8")
	if n := s.Count("cdn.test", dnstest.TypeA); n != 1 {
		t.Errorf("%d queries for the target, want 1", n)
	}
}

func TestCNAMELoop(t *testing.T) {
	s := dnstest.Start(t)
	s.CNAME("a.test", "b.test")
	s.CNAME("b.test", "a.test")
	// c.test loops through re-queries: each reply holds one CNAME only.
	s.CNAME("c.test", "d.test")
	s.CNAME("d.test", "c.test")
	only1 := dnstest.Modify(func(m *dns.Msg) { m.Answer = m.Answer[:1] })
	s.Set("c.test", dnstest.TypeA, only1)
	s.Set("d.test", dnstest.TypeA, only1)
	r := newResolver(t, Config{}, s.Addr())
	for _, name := range []string{"a.test", "c.test"} {
		ans := lookup(t, r, name, hev3.A)
		if !errors.Is(ans.Err, ErrLoop) || ans.Addrs != nil {
			t.Errorf("%s: %+v, want ErrLoop", name, ans)
		}
		// Found as a loop, not as a chain too long.
		if ans.Err != nil && !strings.Contains(ans.Err.Error(), "loop at") {
			t.Errorf("%s: error %q, want a loop", name, ans.Err)
		}
	}
	if c, d := s.Count("c.test", dnstest.TypeA), s.Count("d.test", dnstest.TypeA); c != 1 || d != 1 {
		t.Errorf("loop through re-queries asked c.test %d times and d.test %d times, want once each", c, d)
	}
}

func TestCNAMETooLong(t *testing.T) {
	s := dnstest.Start(t)
	for i := range MaxHops + 1 {
		s.CNAME(fmt.Sprintf("c%d.test", i), fmt.Sprintf("c%d.test", i+1))
	}
	s.A(fmt.Sprintf("c%d.test", MaxHops+1), "192.0.2.1")
	r := newResolver(t, Config{}, s.Addr())
	if ans := lookup(t, r, "c0.test", hev3.A); !errors.Is(ans.Err, ErrLoop) {
		t.Errorf("%d CNAMEs: %+v, want ErrLoop", MaxHops+1, ans)
	}
	wantAddrs(t, lookup(t, r, "c1.test", hev3.A), "192.0.2.1")
}

func TestTruncatedRetriesTCP(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", dnstest.TypeA, dnstest.TruncateUDP(nil))
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	var got []string
	for _, q := range s.Queries() {
		got = append(got, q.Transport)
	}
	if !slices.Equal(got, []string{"udp", "tcp"}) {
		t.Errorf("transports %q, want [udp tcp]", got)
	}
}

func TestManyRecords(t *testing.T) {
	s := dnstest.Start(t)
	var want []string
	for i := range 3000 {
		want = append(want, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	s.A("many.test", want...)
	r := newResolver(t, Config{}, s.Addr())
	// The first hev3.MaxAddrs, and a count of the others.
	ans := lookup(t, r, "many.test", hev3.A)
	wantAddrs(t, ans, want[:hev3.MaxAddrs]...)
	if ans.Omitted != 3000-hev3.MaxAddrs {
		t.Errorf("Omitted = %d, want %d", ans.Omitted, 3000-hev3.MaxAddrs)
	}
	if n := s.Count("many.test", dnstest.TypeA); n != 2 {
		t.Errorf("%d queries, want 2 (UDP truncated, then TCP)", n)
	}
}

// TestPerType checks that each type's failure is its own.
func TestPerType(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.HTTPS("a.test", "1 . alpn=h2")
	s.Set("a.test", dnstest.TypeAAAA, dnstest.ServFail())
	s.A("b.test", "192.0.2.2")
	s.Set("b.test", dnstest.TypeHTTPS, dnstest.Rcode(dns.RcodeRefused))
	s.Set("b.test", dnstest.TypeAAAA, dnstest.Rcode(dns.RcodeNotImplemented))
	r := newResolver(t, Config{}, s.Addr())

	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	if ans := lookup(t, r, "a.test", hev3.HTTPS); ans.Err != nil || len(ans.Services) != 1 {
		t.Errorf("HTTPS: %+v", ans)
	}
	ans := lookup(t, r, "a.test", hev3.AAAA)
	if !errors.Is(ans.Err, ErrServFail) {
		t.Errorf("AAAA: %+v, want SERVFAIL", ans)
	}
	if want := "dns: AAAA a.test. from " + s.Addr() + ": SERVFAIL"; ans.Err == nil || ans.Err.Error() != want {
		t.Errorf("error %q, want %q", ans.Err, want)
	}
	var e *Error
	if !errors.As(ans.Err, &e) || e.Name != "a.test." || e.Type != hev3.AAAA || e.Server != s.Addr() {
		t.Errorf("Error %+v", e)
	}

	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.2")
	if ans := lookup(t, r, "b.test", hev3.HTTPS); !errors.Is(ans.Err, ErrRefused) {
		t.Errorf("HTTPS: %+v, want REFUSED", ans)
	}
	if ans := lookup(t, r, "b.test", hev3.AAAA); !errors.Is(ans.Err, ErrRcode) || !strings.Contains(ans.Err.Error(), "NOTIMP") {
		t.Errorf("AAAA: %+v, want ErrRcode NOTIMP", ans)
	}
}

func TestNXDomain(t *testing.T) {
	s := dnstest.Start(t)
	r := newResolver(t, Config{}, s.Addr())
	for _, typ := range []hev3.RecordType{hev3.A, hev3.AAAA, hev3.HTTPS} {
		ans := lookup(t, r, "none.test", typ)
		if !errors.Is(ans.Err, ErrNXDomain) || ans.Addrs != nil || ans.Services != nil {
			t.Errorf("%v: %+v, want NXDOMAIN", typ, ans)
		}
		if want := fmt.Sprintf("dns: %v none.test. from %s: NXDOMAIN", typ, s.Addr()); ans.Err != nil && ans.Err.Error() != want {
			t.Errorf("error %q, want %q", ans.Err, want)
		}
	}
}

func TestNoData(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.AAAA("b.test", "2001:db8::1")
	s.Set("b.test", dnstest.TypeAAAA, dnstest.NoData())
	r := newResolver(t, Config{}, s.Addr())
	for _, tc := range []struct {
		name string
		typ  hev3.RecordType
	}{{"a.test", hev3.AAAA}, {"a.test", hev3.HTTPS}, {"b.test", hev3.AAAA}} {
		if ans := lookup(t, r, tc.name, tc.typ); ans.Err != nil || ans.Addrs != nil || ans.Services != nil {
			t.Errorf("%s %v: %+v, want NODATA", tc.name, tc.typ, ans)
		}
	}
}

func TestContextDeadline(t *testing.T) {
	s := dnstest.Start(t)
	s.SetDefault(dnstest.Drop())
	r := newResolver(t, Config{Timeout: time.Minute}, s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	ans := r.Lookup(ctx, "a.test", hev3.A)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if !errors.Is(ans.Err, context.DeadlineExceeded) || !errors.Is(ans.Err, ErrTimeout) {
		t.Errorf("error %v, want DeadlineExceeded and ErrTimeout", ans.Err)
	}
}

func TestContextCancel(t *testing.T) {
	s := dnstest.Start(t)
	s.SetDefault(dnstest.Drop())
	r := newResolver(t, Config{Timeout: time.Minute}, s.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	ans := r.Lookup(ctx, "a.test", hev3.HTTPS)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if !errors.Is(ans.Err, context.Canceled) {
		t.Errorf("error %v, want Canceled", ans.Err)
	}
	// A cancelled lookup is not cached.
	if n := r.cache.len(); n != 0 {
		t.Errorf("%d cache entries after a cancelled lookup", n)
	}
}

func TestAttemptTimeout(t *testing.T) {
	s := dnstest.Start(t)
	s.SetDefault(dnstest.Drop())
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond}, s.Addr())
	start := time.Now()
	ans := lookup(t, r, "a.test", hev3.A)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if !errors.Is(ans.Err, ErrTimeout) || errors.Is(ans.Err, context.DeadlineExceeded) {
		t.Errorf("error %v, want ErrTimeout only", ans.Err)
	}
}

// TestMalformed checks bad replies: ignored over UDP until the attempt
// times out, an error at once over TCP.
func TestMalformed(t *testing.T) {
	wrongID := dnstest.Modify(func(m *dns.Msg) { m.Id++ })
	wrongQ := dnstest.Modify(func(m *dns.Msg) { m.Question[0].Name = "other.test." })
	notResp := dnstest.Modify(func(m *dns.Msg) { m.Response = false })
	tcOverTCP := dnstest.Modify(func(m *dns.Msg) { m.Truncated = true })
	for _, tc := range []struct {
		name    string
		h       dnstest.Handler
		timeout bool // the UDP attempt times out
		detail  string
	}{
		{"garbage/udp", dnstest.Garbage(nil), true, "malformed reply"},
		{"garbage/tcp", dnstest.TruncateUDP(dnstest.Garbage(nil)), false, "malformed reply over tcp"},
		{"header only/tcp", dnstest.TruncateUDP(dnstest.Garbage([]byte("\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"))), false, "malformed"},
		{"empty/tcp", dnstest.TruncateUDP(dnstest.Garbage([]byte{})), false, "malformed"},
		{"wrong ID/udp", wrongID, true, "ID"},
		{"wrong ID/tcp", dnstest.TruncateUDP(wrongID), false, "ID"},
		{"wrong question/udp", wrongQ, true, "question other.test."},
		{"wrong question/tcp", dnstest.TruncateUDP(wrongQ), false, "question other.test."},
		{"not a response/tcp", dnstest.TruncateUDP(notResp), false, "not a response"},
		{"truncated over tcp", dnstest.TruncateUDP(tcOverTCP), false, "TC bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dnstest.Start(t)
			s.A("a.test", "192.0.2.1")
			s.Set("a.test", dnstest.TypeA, tc.h)
			timeout := 5 * time.Second // an error must come long before
			if tc.timeout {
				timeout = 200 * time.Millisecond
			}
			r := newResolver(t, Config{Timeout: timeout}, s.Addr())
			start := time.Now()
			ans := lookup(t, r, "a.test", hev3.A)
			d := time.Since(start)
			if !errors.Is(ans.Err, ErrMalformed) || ans.Addrs != nil {
				t.Fatalf("%+v, want ErrMalformed", ans)
			}
			if errors.Is(ans.Err, ErrTimeout) != tc.timeout {
				t.Errorf("error %q: ErrTimeout %v, want %v", ans.Err, !tc.timeout, tc.timeout)
			}
			if !tc.timeout && d > 2*time.Second {
				t.Errorf("took %v, want an error at once", d)
			}
			if !strings.Contains(ans.Err.Error(), tc.detail) || !strings.HasPrefix(ans.Err.Error(), "dns: A a.test. from "+s.Addr()+": ") {
				t.Errorf("error %q, want it to name the query and contain %q", ans.Err, tc.detail)
			}
		})
	}
}

func TestHostsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	hosts := "# comment\n127.0.0.1 localhost\n192.0.2.1 Host.Test alias.test # trailing\n2001:db8::1 host.test\n::ffff:192.0.2.9 mapped.test\nbogus line.test\n"
	if err := os.WriteFile(path, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	s := dnstest.Start(t)
	s.A("host.test", "198.51.100.1")
	s.A("dns.test", "198.51.100.2")
	r := newResolver(t, Config{HostsFile: path}, s.Addr())

	wantAddrs(t, lookup(t, r, "host.test", hev3.A), "192.0.2.1")
	wantAddrs(t, lookup(t, r, "HOST.test.", hev3.AAAA), "2001:db8::1")
	wantAddrs(t, lookup(t, r, "alias.test", hev3.A), "192.0.2.1")
	wantAddrs(t, lookup(t, r, "alias.test", hev3.AAAA))
	wantAddrs(t, lookup(t, r, "mapped.test", hev3.A), "192.0.2.9")
	if ans := lookup(t, r, "host.test", hev3.HTTPS); ans.Err != nil || ans.Services != nil {
		t.Errorf("HTTPS: %+v, want NODATA", ans)
	}
	if q := s.Queries(); len(q) != 0 {
		t.Errorf("DNS queries for hosts names: %v", q)
	}
	wantAddrs(t, lookup(t, r, "dns.test", hev3.A), "198.51.100.2")

	if got, ok := r.Hosts("Host.Test."); !ok || !slices.Equal(got, addrs("192.0.2.1", "2001:db8::1")) {
		t.Errorf("Hosts = %v, %v", got, ok)
	}
	if _, ok := r.Hosts("line.test"); ok {
		t.Error("Hosts(line.test) found a name from a bad line")
	}

	for _, path := range []string{"-", filepath.Join(t.TempDir(), "missing")} {
		r := newResolver(t, Config{HostsFile: path}, s.Addr())
		if _, ok := r.Hosts("localhost"); ok {
			t.Errorf("hosts file %q: localhost found", path)
		}
	}
	if _, err := New(Config{Servers: []string{s.Addr()}, HostsFile: t.TempDir()}); err == nil {
		t.Error("New with a directory as hosts file: no error")
	}
}

func TestIPLiteral(t *testing.T) {
	s := dnstest.Start(t)
	r := newResolver(t, Config{}, s.Addr())
	wantAddrs(t, lookup(t, r, "192.0.2.1", hev3.A), "192.0.2.1")
	wantAddrs(t, lookup(t, r, "192.0.2.1", hev3.AAAA))
	wantAddrs(t, lookup(t, r, "2001:DB8::1", hev3.AAAA), "2001:db8::1")
	wantAddrs(t, lookup(t, r, "[2001:db8::1]", hev3.AAAA), "2001:db8::1")
	wantAddrs(t, lookup(t, r, "2001:db8::1", hev3.A))
	if ans := lookup(t, r, "192.0.2.1", hev3.HTTPS); ans.Err != nil || ans.Services != nil {
		t.Errorf("HTTPS: %+v, want NODATA", ans)
	}
	if q := s.Queries(); len(q) != 0 {
		t.Errorf("DNS queries for literals: %v", q)
	}
}

func TestInvalidName(t *testing.T) {
	s := dnstest.Start(t)
	r := newResolver(t, Config{}, s.Addr())
	for _, name := range []string{"", ".", "a..b", strings.Repeat("x", 64) + ".test"} {
		if ans := lookup(t, r, name, hev3.A); !errors.Is(ans.Err, ErrInvalidName) {
			t.Errorf("%q: %+v, want ErrInvalidName", name, ans)
		}
	}
	if q := s.Queries(); len(q) != 0 {
		t.Errorf("DNS queries for invalid names: %v", q)
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCache(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("a.test. 60 IN A 192.0.2.1", "a.test. 30 IN A 192.0.2.2")
	s.HTTPS("a.test", "1 . alpn=h2")
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newResolver(t, Config{Now: clk.Now}, s.Addr())

	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1", "192.0.2.2")
	wantAddrs(t, lookup(t, r, "A.TEST.", hev3.A), "192.0.2.1", "192.0.2.2")
	if n := s.Count("a.test", dnstest.TypeA); n != 1 {
		t.Fatalf("%d queries, want 1 (cache hit)", n)
	}
	// The answer is a copy: changing it does not change the cache.
	ans := lookup(t, r, "a.test", hev3.A)
	ans.Addrs[0] = netip.MustParseAddr("203.0.113.1")
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1", "192.0.2.2")

	clk.Add(29 * time.Second)
	lookup(t, r, "a.test", hev3.A)
	if n := s.Count("a.test", dnstest.TypeA); n != 1 {
		t.Errorf("%d queries before the minimum TTL, want 1", n)
	}
	clk.Add(time.Second)
	lookup(t, r, "a.test", hev3.A)
	if n := s.Count("a.test", dnstest.TypeA); n != 2 {
		t.Errorf("%d queries at the minimum TTL, want 2", n)
	}

	// Types are cached apart.
	lookup(t, r, "a.test", hev3.HTTPS)
	lookup(t, r, "a.test", hev3.HTTPS)
	if n := s.Count("a.test", dnstest.TypeHTTPS); n != 1 {
		t.Errorf("%d HTTPS queries, want 1", n)
	}
}

func TestCacheNegative(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", dnstest.TypeHTTPS, dnstest.ServFail())
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newResolver(t, Config{Now: clk.Now}, s.Addr())

	// NXDOMAIN and NODATA are cached for the SOA minimum.
	for range 2 {
		lookup(t, r, "none.test", hev3.A)
		lookup(t, r, "a.test", hev3.AAAA)
	}
	clk.Add(dnstest.NegativeTTL*time.Second - time.Second)
	lookup(t, r, "none.test", hev3.A)
	lookup(t, r, "a.test", hev3.AAAA)
	if n, m := s.Count("none.test", dnstest.TypeA), s.Count("a.test", dnstest.TypeAAAA); n != 1 || m != 1 {
		t.Errorf("NXDOMAIN queried %d times, NODATA %d times, want 1", n, m)
	}
	clk.Add(time.Second)
	if ans := lookup(t, r, "none.test", hev3.A); !errors.Is(ans.Err, ErrNXDomain) {
		t.Errorf("%+v, want NXDOMAIN", ans)
	}
	if n := s.Count("none.test", dnstest.TypeA); n != 2 {
		t.Errorf("NXDOMAIN queried %d times after expiry, want 2", n)
	}

	// SERVFAIL is not cached.
	lookup(t, r, "a.test", hev3.HTTPS)
	lookup(t, r, "a.test", hev3.HTTPS)
	if n := s.Count("a.test", dnstest.TypeHTTPS); n != 2 {
		t.Errorf("SERVFAIL queried %d times, want 2", n)
	}
}

func TestCacheTTLCap(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("a.test. 86400 IN A 192.0.2.1", "z.test. 0 IN A 192.0.2.2")
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newResolver(t, Config{Now: clk.Now}, s.Addr())
	lookup(t, r, "a.test", hev3.A)
	clk.Add(MaxTTL)
	lookup(t, r, "a.test", hev3.A)
	if n := s.Count("a.test", dnstest.TypeA); n != 2 {
		t.Errorf("%d queries after MaxTTL, want 2", n)
	}
	lookup(t, r, "z.test", hev3.A)
	lookup(t, r, "z.test", hev3.A)
	if n := s.Count("z.test", dnstest.TypeA); n != 2 {
		t.Errorf("TTL 0 queried %d times, want 2", n)
	}
}

func TestCacheBounded(t *testing.T) {
	s := dnstest.Start(t)
	for _, n := range []string{"a", "b", "c"} {
		s.A(n+".test", "192.0.2.1")
	}
	r := newResolver(t, Config{MaxCacheEntries: 2}, s.Addr())
	lookup(t, r, "a.test", hev3.A)
	lookup(t, r, "b.test", hev3.A)
	lookup(t, r, "a.test", hev3.A) // a is now the most recently used
	lookup(t, r, "c.test", hev3.A) // evicts b
	if n := r.cache.len(); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
	lookup(t, r, "a.test", hev3.A)
	lookup(t, r, "b.test", hev3.A)
	if a, b := s.Count("a.test", dnstest.TypeA), s.Count("b.test", dnstest.TypeA); a != 1 || b != 2 {
		t.Errorf("a queried %d times, b %d times; want 1 and 2", a, b)
	}

	r = newResolver(t, Config{MaxCacheEntries: -1}, s.Addr())
	lookup(t, r, "c.test", hev3.A)
	lookup(t, r, "c.test", hev3.A)
	if n := s.Count("c.test", dnstest.TypeA); n != 3 {
		t.Errorf("without cache: c queried %d times, want 3", n)
	}
}

func TestCoalesce(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", dnstest.TypeA, dnstest.Delay(200*time.Millisecond, nil))
	r := newResolver(t, Config{MaxCacheEntries: -1}, s.Addr())
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 5 {
		wg.Go(func() {
			ans := r.Lookup(context.Background(), "a.test", hev3.A)
			if ans.Err != nil || len(ans.Addrs) != 1 {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d lookups failed", bad.Load())
	}
	if n := s.Count("a.test", dnstest.TypeA); n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
}

// TestCoalesceCancel checks that a waiter does not inherit the cancellation
// of the lookup it joined.
func TestCoalesceCancel(t *testing.T) {
	s := dnstest.Start(t)
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", dnstest.TypeA, dnstest.Delay(300*time.Millisecond, nil))
	r := newResolver(t, Config{}, s.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan hev3.Answer)
	go func() { first <- r.Lookup(ctx, "a.test", hev3.A) }()
	for s.Count("a.test", dnstest.TypeA) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan hev3.Answer)
	go func() { second <- r.Lookup(context.Background(), "a.test", hev3.A) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if ans := <-first; !errors.Is(ans.Err, context.Canceled) {
		t.Errorf("first: %+v, want Canceled", ans)
	}
	wantAddrs(t, <-second, "192.0.2.1")
}

func TestSecondServer(t *testing.T) {
	// A closed UDP port: the first attempt fails at once (ICMP).
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()

	silent := dnstest.Start(t)
	silent.SetDefault(dnstest.Drop())
	failing := dnstest.Start(t)
	failing.SetDefault(dnstest.ServFail())
	good := dnstest.Start(t)
	good.A("a.test", "192.0.2.1")

	for _, tc := range []struct {
		name  string
		first *dnstest.Server
	}{{"closed port", nil}, {"silent", silent}, {"SERVFAIL", failing}} {
		t.Run(tc.name, func(t *testing.T) {
			first := closed
			if tc.first != nil {
				first = tc.first.Addr()
			}
			r := newResolver(t, Config{Timeout: 200 * time.Millisecond}, first, good.Addr())
			wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
			if tc.first != nil && tc.first.Count("a.test", dnstest.TypeA) == 0 {
				t.Error("first server not asked")
			}
		})
	}
}

func TestAllServersFail(t *testing.T) {
	a := dnstest.Start(t)
	a.SetDefault(dnstest.ServFail())
	b := dnstest.Start(t)
	b.SetDefault(dnstest.Drop())
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond}, a.Addr(), b.Addr())
	ans := lookup(t, r, "a.test", hev3.A)
	if !errors.Is(ans.Err, ErrServFail) || !errors.Is(ans.Err, ErrTimeout) {
		t.Errorf("error %v, want SERVFAIL and timeout", ans.Err)
	}
	for _, s := range []*dnstest.Server{a, b} {
		if !strings.Contains(ans.Err.Error(), s.Addr()) {
			t.Errorf("error %q does not name %s", ans.Err, s.Addr())
		}
	}
}

// TestNXDomainFinal checks that NXDOMAIN is not retried on the next server.
func TestNXDomainFinal(t *testing.T) {
	a := dnstest.Start(t)
	b := dnstest.Start(t)
	b.A("a.test", "192.0.2.1")
	r := newResolver(t, Config{}, a.Addr(), b.Addr())
	if ans := lookup(t, r, "a.test", hev3.A); !errors.Is(ans.Err, ErrNXDomain) {
		t.Errorf("%+v, want NXDOMAIN", ans)
	}
	if n := b.Count("a.test", dnstest.TypeAny); n != 0 {
		t.Errorf("second server asked %d times", n)
	}
}

func TestConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{ResolvConf: path, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !slices.Equal(r.servers, want) {
		t.Errorf("servers %q, want %q", r.servers, want)
	}
	if r.timeout != DefaultTimeout || r.cache.max != DefaultMaxCacheEntries {
		t.Errorf("timeout %v, cache %d", r.timeout, r.cache.max)
	}

	r, err = New(Config{ResolvConf: filepath.Join(t.TempDir(), "missing"), HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:53", "[::1]:53"}; !slices.Equal(r.servers, want) {
		t.Errorf("servers without resolv.conf %q, want %q", r.servers, want)
	}

	r, err = New(Config{Servers: []string{"127.0.0.1", "::1", "127.0.0.2:5353"}, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:53", "[::1]:53", "127.0.0.2:5353"}; !slices.Equal(r.servers, want) {
		t.Errorf("servers %q, want %q", r.servers, want)
	}
	if _, err := New(Config{Servers: []string{"dns.example:53"}, HostsFile: "-"}); err == nil {
		t.Error("New with a host name as server: no error")
	}
}
