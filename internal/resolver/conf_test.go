package resolver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

func TestParseConf(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		want       Conf
	}{
		{"empty", "", Conf{Ndots: 1}},
		{"full", `# comment
; other comment
nameserver 192.0.2.53
nameserver 2001:db8::53 # trailing comment
nameserver ::ffff:192.0.2.54
nameserver 192.0.2.55
domain ignored.example
search ns.svc.cluster.local svc.cluster.local. Cluster.Local
options ndots:5 timeout:3 attempts:4 rotate single-request-reopen use-vc trust-ad edns0 no-such-option
sortlist 130.155.160.0/255.255.240.0
`, Conf{
			Servers:       []string{"192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:53"},
			Search:        []string{"ns.svc.cluster.local.", "svc.cluster.local.", "cluster.local."},
			Ndots:         5,
			Timeout:       3 * time.Second,
			Attempts:      4,
			Rotate:        true,
			SingleRequest: true,
			UseTCP:        true,
			TrustAD:       true,
		}},
		// Names and zones are no nameservers (DNS would be needed to
		// find DNS).
		{"bad servers", "nameserver ns.example\nnameserver fe80::1%eth0\nnameserver\nnameserver 192.0.2.1", Conf{Servers: []string{"192.0.2.1:53"}, Ndots: 1}},
		// The last of domain and search wins, as in Go and glibc.
		{"domain last", "search a.example b.example\ndomain c.example d.example", Conf{Search: []string{"c.example."}, Ndots: 1}},
		{"search root", "search . a.example a.example. bad..name " + strings.Repeat("x", 64) + ".example", Conf{Search: []string{"a.example."}, Ndots: 1}},
		{"search bounded", "search a b c d e f g h", Conf{Search: []string{"a.", "b.", "c.", "d.", "e.", "f."}, Ndots: 1}},
		{"clamped high", "options ndots:99 timeout:3600 attempts:100", Conf{Ndots: MaxNdots, Timeout: MaxConfTimeout, Attempts: MaxAttempts}},
		{"clamped low", "options ndots:-1 timeout:0 attempts:0", Conf{Ndots: 0, Timeout: time.Second, Attempts: 1}},
		{"garbage numbers", "options ndots:x timeout:y attempts:", Conf{Ndots: 0, Timeout: time.Second, Attempts: 1}},
		{"single-request", "options single-request", Conf{Ndots: 1, SingleRequest: true}},
		{"usevc", "options usevc", Conf{Ndots: 1, UseTCP: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConf(strings.NewReader(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Search) == 0 {
				got.Search = nil
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestReadConfMissing(t *testing.T) {
	_, err := ReadConf(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadConf(t.TempDir()); err == nil {
		t.Error("a directory read as resolv.conf")
	}
}

func TestDefaultSearch(t *testing.T) {
	for hn, want := range map[string][]string{
		"box.corp.example": {"corp.example."},
		"box":              nil,
		"box.":             nil,
		"":                 nil,
	} {
		got := defaultSearch(func() (string, error) { return hn, nil })
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("hostname %q: search %q, want %q", hn, got, want)
		}
	}
	if got := defaultSearch(func() (string, error) { return "", errors.New("no") }); got != nil {
		t.Errorf("hostname error: %q", got)
	}
	// A search line, even an empty one, replaces the default.
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search .\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := ReadConf(path); err != nil || c.Search == nil || len(c.Search) != 0 {
		t.Errorf("search .: %+v, %v, want an empty search list", c, err)
	}
}

// TestNameList: the names tried, as Go's nameList (dnsclient_unix.go).
func TestNameList(t *testing.T) {
	search := []string{"ns.svc.cluster.local.", "svc.cluster.local."}
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 60)
	for _, tt := range []struct {
		name  string
		ndots int
		want  []string
	}{
		{"svc", 5, []string{"svc.ns.svc.cluster.local.", "svc.svc.cluster.local.", "svc."}},
		{"svc", 0, []string{"svc.", "svc.ns.svc.cluster.local.", "svc.svc.cluster.local."}},
		{"a.b.c", 2, []string{"a.b.c.", "a.b.c.ns.svc.cluster.local.", "a.b.c.svc.cluster.local."}},
		{"a.b", 3, []string{"a.b.ns.svc.cluster.local.", "a.b.svc.cluster.local.", "a.b."}},
		{"rooted.", 5, []string{"rooted."}},
		{long, 1, []string{long + "."}}, // with a search domain it is too long
	} {
		if got := NameList(tt.name, search, tt.ndots); !slices.Equal(got, tt.want) {
			t.Errorf("NameList(%q, ndots %d) = %q, want %q", tt.name, tt.ndots, got, tt.want)
		}
	}
	// A search domain never makes a special-use name.
	if got := NameList("x", []string{"onion.", "localhost.", "ok."}, 1); !slices.Equal(got, []string{"x.ok.", "x."}) {
		t.Errorf("special search domains: %q", got)
	}
}

// searchServer serves a cluster-like zone: svc exists only under the
// first search domain, "other" only under the second (AAAA only), and
// "web.example" both as it is and under the first search domain.
func searchServer(t *testing.T) *dnstest.Server {
	s := dnstest.Start(t)
	s.A("svc.ns.svc.cluster.local", "10.0.0.1")
	s.AAAA("svc.ns.svc.cluster.local", "fd00::1")
	s.HTTPS("svc.ns.svc.cluster.local", `1 . alpn="h3"`)
	s.A("svc", "192.0.2.66") // a TLD-like name that must not win
	s.HTTPS("svc", `1 . alpn="h2"`)
	s.AAAA("other.svc.cluster.local", "fd00::2")
	// "only-https" has an HTTPS record under the first domain but no
	// address there: it does not exist for a lookup.
	s.HTTPS("only-https.ns.svc.cluster.local", `1 . alpn="h3"`)
	s.A("only-https.svc.cluster.local", "10.0.0.3")
	s.HTTPS("only-https.svc.cluster.local", `1 . alpn="h2"`)
	s.A("web.example", "192.0.2.80")
	s.A("web.example.ns.svc.cluster.local", "10.0.0.80")
	return s
}

func clusterConf(ndots int) *Conf {
	return &Conf{Search: []string{"ns.svc.cluster.local.", "svc.cluster.local."}, Ndots: ndots}
}

func TestSearchShortName(t *testing.T) {
	s := searchServer(t)
	r := newResolver(t, Config{Conf: clusterConf(5)}, s.Addr())
	for _, typ := range []hev3.RecordType{hev3.A, hev3.AAAA, hev3.HTTPS} {
		ans := lookup(t, r, "svc", typ)
		if ans.Err != nil || ans.Name != "svc.ns.svc.cluster.local" {
			t.Fatalf("%s: %+v, want an answer from svc.ns.svc.cluster.local", typ, ans)
		}
		switch typ {
		case hev3.A:
			wantAddrs(t, ans, "10.0.0.1")
		case hev3.AAAA:
			wantAddrs(t, ans, "fd00::1")
		case hev3.HTTPS:
			if len(ans.Services) != 1 || !slices.Contains(ans.Services[0].ALPN, "h3") {
				t.Errorf("HTTPS %+v, want the h3 record of svc.ns.svc.cluster.local", ans.Services)
			}
		}
	}
	if n := s.Count("svc.", dnstest.TypeAny); n != 0 {
		t.Errorf("svc. asked %d times: the search list found the name first", n)
	}

	// Found only under the second domain, and only by AAAA: the A
	// lookup settles on the same name (NODATA there).
	ans := lookup(t, r, "other", hev3.A)
	if ans.Err != nil || len(ans.Addrs) != 0 || ans.Name != "other.svc.cluster.local" {
		t.Errorf("A other: %+v, want NODATA from other.svc.cluster.local", ans)
	}
	wantAddrs(t, lookup(t, r, "other", hev3.AAAA), "fd00::2")

	// An HTTPS record does not make a name exist: all three types settle
	// on the second domain.
	for _, typ := range []hev3.RecordType{hev3.HTTPS, hev3.A} {
		if ans := lookup(t, r, "only-https", typ); ans.Name != "only-https.svc.cluster.local" {
			t.Errorf("%s only-https: %+v, want the answer of only-https.svc.cluster.local", typ, ans)
		}
	}
	if ans := lookup(t, r, "only-https", hev3.HTTPS); len(ans.Services) != 1 || !slices.Contains(ans.Services[0].ALPN, "h2") {
		t.Errorf("HTTPS only-https: %+v, want the h2 record", ans.Services)
	}
}

// TestSearchConcurrent: a race's three queries, at once, settle on one
// name and share its queries.
func TestSearchConcurrent(t *testing.T) {
	s := searchServer(t)
	s.Set("svc.ns.svc.cluster.local", dnstest.TypeA, dnstest.Delay(50*time.Millisecond, nil))
	r := newResolver(t, Config{Conf: clusterConf(5)}, s.Addr())
	var wg sync.WaitGroup
	names := make([]string, 3)
	for i, typ := range []hev3.RecordType{hev3.A, hev3.AAAA, hev3.HTTPS} {
		wg.Go(func() { names[i] = lookup(t, r, "svc", typ).Name })
	}
	wg.Wait()
	for _, n := range names {
		if n != "svc.ns.svc.cluster.local" {
			t.Errorf("names %q, want all svc.ns.svc.cluster.local", names)
			break
		}
	}
	for _, q := range []uint16{dnstest.TypeA, dnstest.TypeAAAA, dnstest.TypeHTTPS} {
		if n := s.Count("svc.ns.svc.cluster.local.", q); n != 1 {
			t.Errorf("%s asked %d times, want once", dns.TypeToString[q], n)
		}
	}
}

func TestSearchNdots(t *testing.T) {
	s := searchServer(t)
	// ndots 1: web.example is tried as it is first, and found.
	r := newResolver(t, Config{Conf: clusterConf(1)}, s.Addr())
	if ans := lookup(t, r, "web.example", hev3.A); ans.Name != "" {
		t.Errorf("ndots 1: %+v, want web.example itself", ans)
	} else {
		wantAddrs(t, ans, "192.0.2.80")
	}
	if n := s.Count("web.example.ns.svc.cluster.local.", dnstest.TypeAny); n != 0 {
		t.Errorf("search domain asked %d times for a name with enough dots", n)
	}
	// ndots 2: the search list comes first.
	r = newResolver(t, Config{Conf: clusterConf(2)}, s.Addr())
	if ans := lookup(t, r, "web.example", hev3.A); ans.Name != "web.example.ns.svc.cluster.local" {
		t.Errorf("ndots 2: %+v, want web.example.ns.svc.cluster.local", ans)
	}
}

func TestSearchRooted(t *testing.T) {
	s := searchServer(t)
	r := newResolver(t, Config{Conf: clusterConf(5)}, s.Addr())
	ans := lookup(t, r, "other.", hev3.AAAA)
	if !errors.Is(ans.Err, ErrNXDomain) || ans.Name != "" {
		t.Errorf("other.: %+v, want NXDOMAIN for other. itself", ans)
	}
	if q := s.Queries(); len(q) != 1 || q[0].Name != "other." {
		t.Errorf("queries %v, want other. alone", q)
	}
}

func TestSearchNotFound(t *testing.T) {
	s := searchServer(t)
	s.Set("missing.svc.cluster.local", dnstest.TypeAny, dnstest.ServFail())
	// The error is the name's own, as it is, whether tried first or
	// last, as in Go (not the SERVFAIL of a search domain).
	for _, ndots := range []int{5, 0} {
		r := newResolver(t, Config{Conf: clusterConf(ndots)}, s.Addr())
		ans := lookup(t, r, "missing", hev3.A)
		var e *Error
		if !errors.As(ans.Err, &e) || e.Name != "missing." || !errors.Is(ans.Err, ErrNXDomain) {
			t.Errorf("ndots %d: %v, want NXDOMAIN for missing.", ndots, ans.Err)
		}
	}
	// SERVFAIL on one name moves on to the next, as in Go.
	s.A("flaky.svc.cluster.local", "10.0.0.9")
	s.Set("flaky.ns.svc.cluster.local", dnstest.TypeAny, dnstest.ServFail())
	r := newResolver(t, Config{Conf: clusterConf(5)}, s.Addr())
	wantAddrs(t, lookup(t, r, "flaky", hev3.A), "10.0.0.9")
}

func TestSpecialNames(t *testing.T) {
	s := dnstest.Start(t)
	s.A("localhost", "192.0.2.1")
	s.A("x.onion", "192.0.2.2")
	r := newResolver(t, Config{Conf: clusterConf(1)}, s.Addr())
	for _, name := range []string{"localhost", "LocalHost.", "foo.localhost", "a.b.localhost."} {
		wantAddrs(t, lookup(t, r, name, hev3.A), "127.0.0.1")
		wantAddrs(t, lookup(t, r, name, hev3.AAAA), "::1")
		if ans := lookup(t, r, name, hev3.HTTPS); ans.Err != nil || len(ans.Services) != 0 {
			t.Errorf("HTTPS %s: %+v, want NODATA", name, ans)
		}
	}
	for _, name := range []string{"x.onion", "X.ONION.", "onion", "foo.invalid", "invalid."} {
		ans := lookup(t, r, name, hev3.A)
		if !errors.Is(ans.Err, ErrSpecialName) {
			t.Errorf("%s: %v, want ErrSpecialName", name, ans.Err)
		}
	}
	if q := s.Queries(); len(q) != 0 {
		t.Errorf("queries sent for special-use names: %v", q)
	}
	// Names that only look alike go to DNS.
	s.A("notlocalhost", "192.0.2.3")
	s.A("onion.example", "192.0.2.4")
	wantAddrs(t, lookup(t, r, "notlocalhost.", hev3.A), "192.0.2.3")
	wantAddrs(t, lookup(t, r, "onion.example", hev3.A), "192.0.2.4")

	// The hosts file comes first, as in Go.
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.2 localhost\n192.0.2.5 site.onion\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = newResolver(t, Config{HostsFile: path}, s.Addr())
	wantAddrs(t, lookup(t, r, "localhost", hev3.A), "127.0.0.2")
	wantAddrs(t, lookup(t, r, "localhost", hev3.AAAA))
	wantAddrs(t, lookup(t, r, "site.onion", hev3.A), "192.0.2.5")
}

func TestConfAttempts(t *testing.T) {
	s := dnstest.Start(t)
	s.Set("lost.test", dnstest.TypeAny, dnstest.Drop())
	for _, tt := range []struct {
		conf *Conf
		want int
	}{
		{&Conf{Ndots: 1}, 2}, // glibc's and Go's default
		{&Conf{Ndots: 1, Attempts: 3}, 3},
		{nil, 1}, // explicit servers, no resolv.conf: once
	} {
		before := s.Count("lost.test.", dnstest.TypeA)
		r := newResolver(t, Config{Conf: tt.conf, Timeout: 50 * time.Millisecond, MaxCacheEntries: -1}, s.Addr())
		if ans := lookup(t, r, "lost.test", hev3.A); !errors.Is(ans.Err, ErrTimeout) {
			t.Fatalf("%v, want a timeout", ans.Err)
		}
		if n := s.Count("lost.test.", dnstest.TypeA) - before; n != tt.want {
			t.Errorf("attempts %+v: asked %d times, want %d", tt.conf, n, tt.want)
		}
	}
}

func TestConfTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 127.0.0.1\noptions timeout:7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{ResolvConf: path, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if r.timeout != 7*time.Second {
		t.Errorf("timeout %v, want 7s from resolv.conf", r.timeout)
	}
	r, err = New(Config{ResolvConf: path, HostsFile: "-", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.timeout != time.Second {
		t.Errorf("timeout %v, want Config.Timeout's 1s", r.timeout)
	}
	// Servers given: resolv.conf is not read unless UseConf.
	r, err = New(Config{ResolvConf: path, Servers: []string{"127.0.0.2"}, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if r.timeout != DefaultTimeout {
		t.Errorf("timeout %v with explicit servers, want the default", r.timeout)
	}
	r, err = New(Config{ResolvConf: path, Servers: []string{"127.0.0.2"}, UseConf: true, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if r.timeout != 7*time.Second || !slices.Equal(r.servers, []string{"127.0.0.2:53"}) {
		t.Errorf("UseConf: timeout %v, servers %q", r.timeout, r.servers)
	}
}

func TestConfRotate(t *testing.T) {
	a, b := dnstest.Start(t), dnstest.Start(t)
	for _, s := range []*dnstest.Server{a, b} {
		for _, n := range []string{"one.test", "two.test", "three.test", "four.test"} {
			s.A(n, "192.0.2.1")
		}
	}
	for _, rotate := range []bool{false, true} {
		r := newResolver(t, Config{Conf: &Conf{Ndots: 1, Rotate: rotate}}, a.Addr(), b.Addr())
		na, nb := a.Total(), b.Total()
		for _, n := range []string{"one.test", "two.test", "three.test", "four.test"} {
			wantAddrs(t, lookup(t, r, n, hev3.A), "192.0.2.1")
		}
		na, nb = a.Total()-na, b.Total()-nb
		if want := map[bool][2]int{false: {4, 0}, true: {2, 2}}[rotate]; [2]int{na, nb} != want {
			t.Errorf("rotate %v: first server asked %d times, second %d, want %v", rotate, na, nb, want)
		}
	}
}

func TestConfUseTCPTrustAD(t *testing.T) {
	s := dnstest.Start(t)
	var mu sync.Mutex
	var ad []bool
	s.Set("vc.test", dnstest.TypeA, func(w dns.ResponseWriter, r *dnstest.Request) {
		mu.Lock()
		ad = append(ad, r.Msg.AuthenticatedData)
		mu.Unlock()
		m := r.Reply()
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "vc.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 7}})
		w.WriteMsg(m)
	})
	for _, conf := range []*Conf{{Ndots: 1}, {Ndots: 1, UseTCP: true, TrustAD: true}} {
		r := newResolver(t, Config{Conf: conf}, s.Addr())
		wantAddrs(t, lookup(t, r, "vc.test", hev3.A), "192.0.2.7")
	}
	q := s.Queries()
	if len(q) != 2 || q[0].Transport != "udp" || q[1].Transport != "tcp" {
		t.Errorf("queries %+v, want one over UDP, then one over TCP (use-vc)", q)
	}
	if !slices.Equal(ad, []bool{false, true}) {
		t.Errorf("AD bits %v, want false then true (trust-ad)", ad)
	}
}

func TestConfSingleRequest(t *testing.T) {
	s := dnstest.Start(t)
	for _, n := range []string{"a.test", "b.test", "c.test"} {
		s.A(n, "192.0.2.1")
		s.Set(n, dnstest.TypeA, dnstest.Delay(300*time.Millisecond, nil))
	}
	for _, single := range []bool{false, true} {
		r := newResolver(t, Config{Conf: &Conf{Ndots: 1, SingleRequest: single}, MaxCacheEntries: -1}, s.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		start := s.Total()
		for _, n := range []string{"a.test", "b.test", "c.test"} {
			wg.Go(func() { r.Lookup(ctx, n, hev3.A) })
		}
		wg.Wait()
		cancel()
		if s.Total()-start != 3 {
			t.Fatalf("%d queries", s.Total()-start)
		}
		// Queries overlap unless single-request: the last one starts
		// only when the one before it was answered.
		q := s.Queries()[start:]
		times := []time.Time{q[0].Time, q[1].Time, q[2].Time}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		spread := times[2].Sub(times[0])
		// One at a time, the third starts 600 ms after the first;
		// at once, they start together (the bound is generous).
		if single && spread < 550*time.Millisecond {
			t.Errorf("single-request: three queries within %v, want one at a time (300 ms each)", spread)
		}
		if !single && spread > 250*time.Millisecond {
			t.Errorf("parallel: three queries spread over %v, want them at once", spread)
		}
	}
}

// BenchmarkLookupCached compares, on answers already cached, a lookup
// through the search list with a direct one (the baseline), and the
// special-use names answered without DNS.
func BenchmarkLookupCached(b *testing.B) {
	s := dnstest.Start(b)
	s.A("svc.ns.svc.cluster.local", "10.0.0.1")
	s.AAAA("svc.ns.svc.cluster.local", "fd00::1")
	s.AAAA("other.svc.cluster.local", "fd00::2")
	direct, err := New(Config{Servers: []string{s.Addr()}, HostsFile: "-"})
	if err != nil {
		b.Fatal(err)
	}
	search, err := New(Config{Servers: []string{s.Addr()}, HostsFile: "-", Conf: clusterConf(5)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		r    *Resolver
		host string
		t    hev3.RecordType
	}{
		{"direct", direct, "svc.ns.svc.cluster.local", hev3.A},
		{"search-first", search, "svc", hev3.A},
		{"search-first-https", search, "svc", hev3.HTTPS},
		{"search-second", search, "other", hev3.A},
		{"localhost", search, "localhost", hev3.A},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.r.Lookup(ctx, bc.host, bc.t) // fill the cache
			for b.Loop() {
				if ans := bc.r.Lookup(ctx, bc.host, bc.t); ans.Err != nil {
					b.Fatal(ans.Err)
				}
			}
		})
	}
}
