package resolver

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

// RFC 9460 §3: an alias to a name with addresses and no HTTPS record of
// its own (a zone apex aliased to a CDN name) ends in an endpoint on that
// name, with no SvcParams, so the dial uses the target's addresses.
func TestAliasToAddressesOnly(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("apex.test", "0 cdn.test.")
	s.A("apex.test", "192.0.2.9")
	s.A("cdn.test", "192.0.2.1")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "apex.test", hev3.HTTPS)
	want := []hev3.ServiceInfo{{Priority: 1, Target: "cdn.test", ALPN: []string{"http/1.1"}}}
	if ans.Err != nil || !reflect.DeepEqual(ans.Services, want) {
		t.Fatalf("%+v, want services %+v", ans, want)
	}
	// Two aliases and a CNAME: the endpoint is the last alias's target.
	s.HTTPS("a.test", "0 b.test.")
	s.HTTPS("b.test", "0 c.test.")
	s.CNAME("c.test", "d.test")
	s.A("d.test", "192.0.2.4")
	ans = lookup(t, r, "a.test", hev3.HTTPS)
	want = []hev3.ServiceInfo{{Priority: 1, Target: "c.test", ALPN: []string{"http/1.1"}}}
	if ans.Err != nil || !reflect.DeepEqual(ans.Services, want) {
		t.Fatalf("%+v, want services %+v", ans, want)
	}
}

// RFC 9460 §2.5.1: an alias to "." says the service does not exist, at
// the end of a chain too; the dial falls back to the origin's addresses.
func TestAliasChainToDot(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "0 b.test.")
	s.HTTPS("b.test", "0 .")
	r := newResolver(t, Config{}, s.Addr())
	if ans := lookup(t, r, "a.test", hev3.HTTPS); ans.Err != nil || ans.Services != nil {
		t.Errorf("%+v, want NODATA", ans)
	}
}

// RFC 9460 §2.5.2, §9.1: a ServiceMode "." at a port-prefixed name is the
// origin itself; after an alias it is the alias target.
func TestPortPrefixDot(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("_8443._https.a.test", "1 . alpn=h2 port=8444")
	s.HTTPS("_9443._https.a.test", "0 pool.test.")
	s.HTTPS("pool.test", "1 . alpn=h3")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "_8443._https.a.test", hev3.HTTPS)
	want := []hev3.ServiceInfo{{Priority: 1, ALPN: []string{"h2", "http/1.1"}, Port: 8444}}
	if ans.Err != nil || !reflect.DeepEqual(ans.Services, want) {
		t.Errorf("%+v, want services %+v", ans, want)
	}
	ans = lookup(t, r, "_9443._https.a.test", hev3.HTTPS)
	want = []hev3.ServiceInfo{
		{Priority: 1, Target: "pool.test", ALPN: []string{"h3", "http/1.1"}},
		{Priority: 2, Target: "pool.test", ALPN: []string{"http/1.1"}},
	}
	if ans.Err != nil || !reflect.DeepEqual(ans.Services, want) {
		t.Errorf("%+v, want services %+v", ans, want)
	}
}

// RFC 9460 §8 and §7.1.1: "mandatory" listing itself or a key that is
// absent or unknown, or no-default-alpn without alpn, makes the record
// unusable; its siblings stay.
func TestMalformedParams(t *testing.T) {
	for _, rec := range []string{
		`1 . mandatory=mandatory alpn=h2`,
		`1 . mandatory=key65000 alpn=h2`, // listed, not present
		`1 . mandatory=key65000 key65000=x alpn=h2`,
		`1 . no-default-alpn`,
	} {
		s := dnstest.Start(t)
		s.HTTPS("a.test", rec, "2 . alpn=h3")
		r := newResolver(t, Config{}, s.Addr())
		ans := lookup(t, r, "a.test", hev3.HTTPS)
		if ans.Err != nil || len(ans.Services) != 1 || ans.Services[0].Priority != 2 {
			t.Errorf("%s: %+v, want only the record of priority 2", rec, ans)
		}
	}
	// A key twice cannot come over the wire: miekg/dns refuses keys out
	// of strictly increasing order (RFC 9460 §2.2), and FuzzSVCB checks
	// services against records parsed from text.
}

// Each record keeps its own ECH configuration (RFC 9460 §9: ech belongs
// to its endpoint), never one merged across records.
func TestECHPerRecord(t *testing.T) {
	s := dnstest.Start(t)
	s.HTTPS("a.test", "1 . alpn=h3 ech=AAj+DQAEAQIDBA==", "2 b.test. alpn=h2", "3 c.test. alpn=h2 ech=AAj+DQAEBQYHCA==")
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "a.test", hev3.HTTPS)
	if ans.Err != nil || len(ans.Services) != 3 {
		t.Fatalf("%+v", ans)
	}
	want := [][]byte{{0, 8, 0xfe, 0x0d, 0, 4, 1, 2, 3, 4}, nil, {0, 8, 0xfe, 0x0d, 0, 4, 5, 6, 7, 8}}
	for i, s := range ans.Services {
		if !reflect.DeepEqual(s.ECH, want[i]) {
			t.Errorf("record %d: ech %x, want %x", s.Priority, s.ECH, want[i])
		}
	}
}

// The cache keeps an answer for the shortest TTL of its pieces: CNAMEs,
// AliasMode records, the final records.
func TestCachePieceTTLs(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("www.test. 120 IN CNAME mid.test.", "mid.test. 40 IN CNAME edge.test.", "edge.test. 300 IN A 192.0.2.1")
	s.Add("apex.test. 30 IN HTTPS 0 svc.test.", "svc.test. 300 IN HTTPS 1 . alpn=h2")
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newResolver(t, Config{Now: clk.Now}, s.Addr())
	for _, c := range []struct {
		name string
		typ  hev3.RecordType
		ttl  time.Duration
	}{{"www.test", hev3.A, 40 * time.Second}, {"apex.test", hev3.HTTPS, 30 * time.Second}} {
		ans, recs := r.LookupRecords(t.Context(), c.name, c.typ)
		if ans.Err != nil {
			t.Fatal(ans.Err)
		}
		before := s.Count(c.name, dnsTypeOf(c.typ))
		clk.Add(c.ttl - time.Second)
		_, cached := r.LookupRecords(t.Context(), c.name, c.typ)
		if n := s.Count(c.name, dnsTypeOf(c.typ)); n != before {
			t.Errorf("%s: asked again before %v", c.name, c.ttl)
		}
		// The cached records count down from when they came.
		for i, rr := range cached.RRs {
			if got, want := rr.Header().Ttl, recs.RRs[i].Header().Ttl-uint32(c.ttl/time.Second-1); got != want {
				t.Errorf("%s: cached %v has TTL %d, want %d", c.name, rr, got, want)
			}
		}
		clk.Add(time.Second)
		r.LookupRecords(t.Context(), c.name, c.typ)
		if n := s.Count(c.name, dnsTypeOf(c.typ)); n != before+1 {
			t.Errorf("%s: not asked again at %v (%d queries, want %d)", c.name, c.ttl, n, before+1)
		}
	}
}

// LookupRecords returns the records as the server sent them, each under
// its own owner name: CNAMEs, the RRSet with the alias followed, then the
// final records.
func TestLookupRecords(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("www.test. 120 IN CNAME edge.test.", "edge.test. 300 IN A 192.0.2.1")
	s.Add("apex.test. 30 IN HTTPS 0 svc.test.", "apex.test. 30 IN HTTPS 1 . alpn=h3",
		`svc.test. 300 IN HTTPS 1 . alpn="h3,h2" port=8443 ipv4hint=192.0.2.1,192.0.2.2 ech=AAj+DQAEAQIDBA== ipv6hint=2001:db8::1`,
		"svc.test. 300 IN HTTPS 2 . mandatory=key65000 key65000=hello alpn=h2",
		"svc.test. 300 IN HTTPS 3 . alpn=h3 no-default-alpn")
	r := newResolver(t, Config{}, s.Addr())
	for _, c := range []struct {
		name string
		typ  hev3.RecordType
		want []string
	}{
		{"www.test", hev3.A, []string{"www.test. 120 IN CNAME edge.test.", "edge.test. 300 IN A 192.0.2.1"}},
		{"apex.test", hev3.HTTPS, []string{
			// The whole RRSet, as dig shows it; the ServiceMode
			// record beside the alias is not used (RFC 9460 §2.4.1).
			"apex.test. 30 IN HTTPS 0 svc.test.",
			`apex.test. 30 IN HTTPS 1 . alpn="h3"`,
			`svc.test. 300 IN HTTPS 1 . alpn="h3,h2" port=8443 ipv4hint=192.0.2.1,192.0.2.2 ech=AAj+DQAEAQIDBA== ipv6hint=2001:db8::1`,
			`svc.test. 300 IN HTTPS 2 . mandatory=key65000 alpn="h2" key65000="hello"`,
			`svc.test. 300 IN HTTPS 3 . alpn="h3" no-default-alpn`,
		}},
	} {
		_, recs := r.LookupRecords(t.Context(), c.name, c.typ)
		var got []string
		for _, rr := range recs.RRs {
			h := rr.Header()
			got = append(got, strings.Join([]string{h.Name, itoa(h.Ttl), "IN", dns.TypeToString[h.Rrtype], Presentation(rr)}, " "))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

func dnsTypeOf(t hev3.RecordType) uint16 { return dnsType(t) }

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// A hosts file name answers HTTPS at its port-prefixed names too, without
// DNS, as it does at the name itself (NODATA).
func TestPortPrefixHostsFile(t *testing.T) {
	s := dnstest.Start(t)
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 h.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, Config{HostsFile: path}, s.Addr())
	if ans := lookup(t, r, "_8443._https.h.test", hev3.HTTPS); ans.Err != nil || ans.Services != nil || s.Total() != 0 {
		t.Errorf("%+v after %d queries, want NODATA without DNS", ans, s.Total())
	}
	lookup(t, r, "_8443._https.other.test", hev3.HTTPS)
	if s.Total() != 1 {
		t.Errorf("%d queries for a name not in the hosts file, want 1", s.Total())
	}
}

// BenchmarkLookupCached measures a cached lookup as a race makes it
// (Lookup) beside one that also copies the records (LookupRecords), for
// an answer of 16 addresses.
func BenchmarkLookupRecordsCached(b *testing.B) {
	s := dnstest.Start(b)
	var ips []string
	for i := range 16 {
		ips = append(ips, "192.0.2."+strconv.Itoa(i+1))
	}
	s.A("a.test", ips...)
	r, err := New(Config{Servers: []string{s.Addr()}, HostsFile: "-"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	r.Lookup(ctx, "a.test", hev3.A)
	b.Run("Lookup", func(b *testing.B) {
		for b.Loop() {
			r.Lookup(ctx, "a.test", hev3.A)
		}
	})
	b.Run("LookupRecords", func(b *testing.B) {
		for b.Loop() {
			r.LookupRecords(ctx, "a.test", hev3.A)
		}
	})
}

// Presentation escapes as RFC 9460 Appendix A says: a comma within an
// alpn ID as "\,", inside a quoted char-string whose backslashes are
// escaped again; bytes outside printable ASCII as \DDD.
func TestPresentationEscapes(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`1 . alpn="h\\,2,h3"`, `1 . alpn="h\\,2,h3"`},
		{`1 . key65001="a\034b\000"`, `1 . key65001="a\"b\000"`},
		{`1 . dohpath=/q{?dns}`, `1 . dohpath="/q{?dns}"`},
		{`0 alias.test.`, `0 alias.test.`},
	} {
		rr, err := dns.NewRR("a.test. 60 IN HTTPS " + c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := Presentation(rr); got != c.want {
			t.Errorf("%s: %s, want %s", c.in, got, c.want)
		}
		// What it writes parses back to the same record.
		back, err := dns.NewRR("a.test. 60 IN HTTPS " + Presentation(rr))
		if err != nil || !dns.IsDuplicate(rr, back) {
			t.Errorf("%s: %s parses back to %v, %v", c.in, Presentation(rr), back, err)
		}
	}
}
