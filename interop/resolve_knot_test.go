package interop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// knotDialer returns a Dialer that asks only the Knot server at addr
// (an authoritative server answers a stub's RD queries for its zone), with
// no hosts file, trusting ca when set.
func knotDialer(t testing.TB, addr string, ca *testkit.CA, opts ...dialer.Option) *dialer.Dialer {
	opts = append([]dialer.Option{dialer.WithNameservers(addr), dialer.WithHostsFile("-")}, opts...)
	if ca != nil {
		opts = append(opts, dialer.WithTLSConfig(ca.ClientConfig()))
	}
	d := dialer.New(opts...)
	t.Cleanup(d.CloseIdleConnections)
	return d
}

// kdigAnswer asks the server at addr for name and type with kdig and
// returns its answer section, one normalized record a line (see
// normRecord), and its status ("NOERROR", "NXDOMAIN").
func kdigAnswer(t testing.TB, addr, name, typ string) (records []string, status string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command(kdig.path(), "@"+host, "-p", port, "+noall", "+answer", "+header", name, typ).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %s %s: %v\n%s", name, typ, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if _, s, ok := strings.Cut(line, "status: "); ok {
			status, _, _ = strings.Cut(s, ";")
		}
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		records = append(records, normRecord(line))
	}
	return records, strings.TrimSpace(status)
}

// normRecord writes a record of presentation format with single spaces
// and without double quotes: kdig writes alpn=h3,h2 where dig (and the
// dialer) write alpn="h3,h2" (RFC 9460 Appendix A.1 allows both).
func normRecord(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, `"`, "")), " ")
}

// ours returns the records of q, normalized as kdig's.
func ours(q dialer.DNSQuery) []string {
	var out []string
	for _, r := range q.Records {
		out = append(out, normRecord(r.String()))
	}
	return out
}

// kdigChain returns kdig's answers for each name of a chain of HTTPS
// AliasMode records, concatenated: what the dialer asks, one query per
// name, and reports.
func kdigChain(t testing.TB, addr, typ string, names ...string) []string {
	var out []string
	for _, n := range names {
		recs, _ := kdigAnswer(t, addr, n, typ)
		out = append(out, recs...)
	}
	return out
}

func resolveKnot(t testing.TB, d *dialer.Dialer, host string) *dialer.Resolution {
	t.Helper()
	res, err := d.Resolve(ctx(t), host)
	if err != nil && !errors.Is(err, dialer.ErrNoAddress) {
		t.Fatalf("Resolve %s: %v", host, err)
	}
	return res
}

func endpoints(res *dialer.Resolution) []string {
	var out []string
	for _, e := range res.Endpoints {
		s := e.Addr.String() + " " + e.Proto
		if e.ECH {
			s += " ech"
		}
		out = append(out, s)
	}
	return out
}

// TestKnotResolve resolves every name of knotZone through the public
// Resolve against Knot, and compares the records with what kdig gets from
// the same server, and what the dial makes of them with RFC 9460.
func TestKnotResolve(t *testing.T) {
	r := need(t, knot, "resolver answers = kdig's (RFC 9460)", kdig)
	r.proto = "DNS"
	checkFDs(t)
	addr := startKnot(t, knotOrigin, knotZone)
	d := knotDialer(t, addr, nil)

	same := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n  ours %q\n  kdig %q", what, got, want)
		}
	}

	t.Run("addresses", func(t *testing.T) {
		res := resolveKnot(t, d, "www.example.test")
		a, _ := kdigAnswer(t, addr, "www.example.test", "A")
		aaaa, _ := kdigAnswer(t, addr, "www.example.test", "AAAA")
		same(t, "A", ours(res.A), a)
		same(t, "AAAA", ours(res.AAAA), aaaa)
		if res.HTTPS.Err != "" || len(res.HTTPS.Records) != 0 {
			t.Errorf("HTTPS of a name without one: %+v", res.HTTPS)
		}
		same(t, "endpoints", endpoints(res), []string{"[::1]:443 h2,h1", "127.0.0.1:443 h2,h1"})
	})

	t.Run("CNAME chain", func(t *testing.T) {
		res := resolveKnot(t, d, "chain.example.test")
		a, _ := kdigAnswer(t, addr, "chain.example.test", "A")
		if len(a) != 3 {
			t.Fatalf("kdig: %q, want two CNAMEs and an A", a)
		}
		same(t, "A", ours(res.A), a)
		if got := res.A.Addrs; len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("A addresses %v", got)
		}
	})

	t.Run("ServiceMode", func(t *testing.T) {
		res := resolveKnot(t, d, "svc.example.test")
		want, _ := kdigAnswer(t, addr, "svc.example.test", "HTTPS")
		if len(want) != 4 {
			t.Fatalf("kdig: %q", want)
		}
		same(t, "HTTPS records", ours(res.HTTPS), want)
		// Record 4's mandatory key65000 is not understood: dropped
		// (RFC 9460 §8). Record 3 has no-default-alpn: no http/1.1
		// (§7.1.1). ech stays with record 1 (§9 of the ECH draft).
		var got []string
		for _, s := range res.HTTPS.Services {
			got = append(got, fmt.Sprintf("%d %s %v %d ech=%v", s.Priority, s.Target, s.ALPN, s.Port, s.ECH))
		}
		same(t, "services", got, []string{
			"1  [h3 h2 http/1.1] 8443 ech=true",
			"2 pool.example.test [h2 http/1.1] 0 ech=false",
			"3  [h3] 0 ech=false",
		})
		// With ECH in one record, the dial uses only the records with
		// ECH, and no fallback to the addresses (RFC 9460 §9.3 of the
		// ECH client behaviour: no downgrade).
		for _, e := range res.Endpoints {
			if !e.ECH || e.Addr.Port() != 8443 {
				t.Errorf("endpoint %+v: want only record 1's, with ECH, on 8443", e)
			}
		}
		if len(res.Endpoints) == 0 {
			t.Error("no endpoints")
		}
	})

	t.Run("port prefix", func(t *testing.T) {
		res := resolveKnot(t, d, "svc.example.test:8443")
		if res.HTTPS.Name != "_8443._https.svc.example.test" {
			t.Errorf("HTTPS query name %q", res.HTTPS.Name)
		}
		want, _ := kdigAnswer(t, addr, "_8443._https.svc.example.test", "HTTPS")
		same(t, "HTTPS records", ours(res.HTTPS), want)
		// "." at the prefixed name is the origin: svc's own addresses,
		// on the record's port.
		if s := res.HTTPS.Services; len(s) != 1 || s[0].Target != "" || s[0].Port != 8444 {
			t.Errorf("services %+v", s)
		}
		same(t, "endpoints", endpoints(res), []string{"[::1]:8444 h2,h1", "127.0.0.1:8444 h2,h1", "[::1]:8443 h2,h1", "127.0.0.1:8443 h2,h1"})
	})

	t.Run("unknown mandatory key only", func(t *testing.T) {
		res := resolveKnot(t, d, "strict.example.test")
		want, _ := kdigAnswer(t, addr, "strict.example.test", "HTTPS")
		same(t, "HTTPS records", ours(res.HTTPS), want)
		if len(res.HTTPS.Services) != 0 {
			t.Errorf("services %+v, want none", res.HTTPS.Services)
		}
		same(t, "endpoints", endpoints(res), []string{"127.0.0.1:443 h2,h1"})
	})

	t.Run("apex alias to addresses", func(t *testing.T) {
		res := resolveKnot(t, d, "example.test")
		same(t, "HTTPS records", ours(res.HTTPS), kdigChain(t, addr, "HTTPS", "example.test", "cdn.example.test"))
		if s := res.HTTPS.Services; len(s) != 1 || s[0].Target != "cdn.example.test" || !slices.Equal(s[0].ALPN, []string{"http/1.1"}) {
			t.Errorf("services %+v, want the alias target with no SvcParams (RFC 9460 §3)", s)
		}
		// The target's addresses first, the apex's own last.
		same(t, "endpoints", endpoints(res), []string{"[::1]:443 h2,h1", "127.0.0.1:443 h2,h1", "127.0.0.9:443 h2,h1"})
	})

	t.Run("alias to ServiceMode", func(t *testing.T) {
		for _, c := range []struct {
			host  string
			chain []string
		}{
			{"alias.example.test", []string{"alias.example.test", "svc.example.test"}},
			{"alias2.example.test", []string{"alias2.example.test", "alias.example.test", "svc.example.test"}},
		} {
			res := resolveKnot(t, d, c.host)
			same(t, c.host+" HTTPS records", ours(res.HTTPS), kdigChain(t, addr, "HTTPS", c.chain...))
			var got []string
			for _, s := range res.HTTPS.Services {
				got = append(got, fmt.Sprintf("%d %s %v", s.Priority, s.Target, s.ALPN))
			}
			same(t, c.host+" services", got, []string{
				"1 svc.example.test [h3 h2 http/1.1]",
				"2 pool.example.test [h2 http/1.1]",
				"3 svc.example.test [h3]",
				"4 svc.example.test [http/1.1]", // RFC 9460 §3: the final name
			})
		}
	})

	t.Run("alias to dot", func(t *testing.T) {
		res := resolveKnot(t, d, "gone.example.test")
		want, _ := kdigAnswer(t, addr, "gone.example.test", "HTTPS")
		same(t, "HTTPS records", ours(res.HTTPS), want)
		if res.HTTPS.Err != "" || len(res.HTTPS.Services) != 0 {
			t.Errorf("HTTPS %+v, want no service and no error (RFC 9460 §2.5.1)", res.HTTPS)
		}
		same(t, "endpoints", endpoints(res), []string{"127.0.0.1:443 h2,h1"})
	})

	t.Run("alias loop", func(t *testing.T) {
		res := resolveKnot(t, d, "aloop1.example.test")
		if !strings.Contains(res.HTTPS.Err, "loop") {
			t.Errorf("HTTPS %+v, want a loop error", res.HTTPS)
		}
	})

	t.Run("CNAME loop", func(t *testing.T) {
		want, _ := kdigAnswer(t, addr, "loop1.example.test", "A")
		if len(want) < 2 {
			t.Fatalf("kdig: %q, want the loop", want)
		}
		res := resolveKnot(t, d, "loop1.example.test")
		for _, q := range []dialer.DNSQuery{res.A, res.AAAA, res.HTTPS} {
			if !strings.Contains(q.Err, "loop") {
				t.Errorf("%s: %+v, want a loop error", q.Type, q)
			}
		}
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		_, status := kdigAnswer(t, addr, "nx.example.test", "A")
		if status != "NXDOMAIN" {
			t.Fatalf("kdig status %q", status)
		}
		res, err := d.Resolve(ctx(t), "nx.example.test")
		if !errors.Is(err, dialer.ErrNoAddress) {
			t.Errorf("Resolve: %v, want ErrNoAddress", err)
		}
		for _, q := range []dialer.DNSQuery{res.A, res.AAAA, res.HTTPS} {
			if !strings.Contains(q.Err, "NXDOMAIN") {
				t.Errorf("%s: %+v, want NXDOMAIN", q.Type, q)
			}
		}
	})

	t.Run("truncated then TCP", func(t *testing.T) {
		res := resolveKnot(t, d, "many.example.test")
		for _, c := range []struct {
			q   dialer.DNSQuery
			typ string
		}{{res.A, "A"}, {res.AAAA, "AAAA"}} {
			want, _ := kdigAnswer(t, addr, "many.example.test", c.typ)
			if len(want) != 100 {
				t.Fatalf("kdig %s: %d records", c.typ, len(want))
			}
			got := ours(c.q)
			if len(got)+c.q.RecordsOmitted != 100 || len(got) == 0 {
				t.Errorf("%s: %d records and %d left out, want 100 in all", c.typ, len(got), c.q.RecordsOmitted)
			}
			for _, g := range got {
				if !slices.Contains(want, g) {
					t.Errorf("%s: %q is not in kdig's answer", c.typ, g)
				}
			}
			if len(c.q.Addrs)+c.q.Omitted != 100 {
				t.Errorf("%s: %d addresses and %d left out, want 100", c.typ, len(c.q.Addrs), c.q.Omitted)
			}
		}
	})
}

// TestKnotDial dials through Knot's answers with the Transport: a zone
// apex whose HTTPS AliasMode record names a CDN name with addresses and
// no HTTPS record of its own must reach the CDN's addresses (RFC 9460 §3),
// not the apex's; a port-prefixed ServiceMode record (§9.1) must move the
// dial to its port. A Go TLS server listens on 127.0.0.1 only.
func TestKnotDial(t *testing.T) {
	r := need(t, knot, "dial through AliasMode and _PORT._https")
	r.proto = "h2"
	w := newWorld(t)
	conf, err := w.ca.ServerConfig("example.test", "*.example.test")
	if err != nil {
		t.Fatal(err)
	}
	conf.NextProtos = []string{"h2", "http/1.1"}
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		srv, err := testkit.StartHTTP(l, conf.Clone(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "served at "+r.Host)
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
	}
	// The apex on ports[0] is aliased to cdn (127.0.0.1, ::1); its own
	// address, 127.0.0.9, has no server. svc2 on ports[0] is served on
	// ports[1].
	zone := knotZone + fmt.Sprintf("_%d._https 30 HTTPS 0 cdn\n", ports[0]) +
		fmt.Sprintf("svc2 A 127.0.0.9\n_%d._https.svc2 HTTPS 1 . alpn=h2 port=%d ipv4hint=127.0.0.1\n", ports[0], ports[1])
	addr := startKnot(t, knotOrigin, zone)
	var (
		mu  sync.Mutex
		rep *dialer.Report
	)
	tr := knotDialer(t, addr, w.ca, dialer.WithReport(func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() })).Transport()
	client := &http.Client{Transport: tr}
	for _, c := range []struct {
		url  string
		want netip.AddrPort
	}{
		{fmt.Sprintf("https://example.test:%d/", ports[0]), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0]))},
		{fmt.Sprintf("https://svc2.example.test:%d/", ports[0]), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[1]))},
	} {
		mu.Lock()
		rep = nil
		mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx(t), "GET", c.url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", c.url, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "served at ") {
			t.Errorf("GET %s: %s %q", c.url, resp.Status, body)
		}
		mu.Lock()
		if rep == nil || rep.Winner < 0 || rep.Attempts[rep.Winner].Addr != c.want {
			t.Errorf("GET %s: won on %+v, want %v", c.url, rep, c.want)
		}
		mu.Unlock()
	}
}
