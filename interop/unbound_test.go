package interop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

var (
	unbound = peer{name: "unbound", bin: "unbound", args: []string{"-V"}, install: "apt-get install unbound",
		version: []*regexp.Regexp{regexp.MustCompile(`Version (\S+)`)}}
	unboundControl = peer{name: "unbound-control", bin: "unbound-control", install: "apt-get install unbound"}
)

// unboundName is the name in unbound's certificate, which only the test's
// bootstrap DNS server knows (see newEncWorld).
const unboundName = "dns.resolver.test"

// unboundServer is unbound running as a recursive resolver on 127.0.0.1
// (conf/unbound/unbound.conf), forwarding every name to one upstream.
type unboundServer struct {
	plain, dot, doh int // ports: DNS over UDP and TCP, DoT, DoH
	conf            string
}

// startUnbound starts unbound resolving origin from its authoritative
// server upstream ("127.0.0.1:PORT"),
// with a certificate for unboundName and 127.0.0.1 from the world's CA.
func startUnbound(t testing.TB, w *world, r *row, origin, upstream string) *unboundServer {
	t.Helper()
	cert, err := w.ca.Certificate(unboundName, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	_, upstreamPort, err := net.SplitHostPort(upstream)
	if err != nil {
		t.Fatal(err)
	}
	u := &unboundServer{}
	_, dir, ports := launch(t, w, "unbound", 3, true, func(dir string, ports []int) command {
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		w.write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
		w.write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
		u.conf = filepath.Join(dir, "unbound.conf")
		w.render("unbound/unbound.conf", u.conf, map[string]string{
			"DIR": dir, "PLAIN": itoa(ports[0]), "DOT": itoa(ports[1]), "DOH": itoa(ports[2]),
			"UPSTREAM": upstreamPort, "ORIGIN": origin, "CERT": certFile, "KEY": keyFile,
		})
		return command{bin: r.path, args: []string{"-d", "-c", u.conf}}
	})
	_ = dir
	u.plain, u.dot, u.doh = ports[0], ports[1], ports[2]
	return u
}

// nameservers returns the WithNameservers list of one transport to u:
// "udp" (plain), "dot" or "doh", the encrypted ones with boot, the
// plaintext server that knows unboundName.
func (u *unboundServer) nameservers(transport, boot string) []string {
	switch transport {
	case "dot":
		return []string{"tls://" + unboundName + ":" + itoa(u.dot), boot}
	case "doh":
		return []string{"https://" + unboundName + ":" + itoa(u.doh) + "/dns-query", boot}
	}
	return []string{"127.0.0.1:" + itoa(u.plain)}
}

// server is how errors name the server of a transport.
func (u *unboundServer) server(transport string) string {
	switch transport {
	case "dot":
		return "tls://" + unboundName + ":" + itoa(u.dot)
	case "doh":
		return "https://" + unboundName + ":" + itoa(u.doh) + "/dns-query"
	}
	return "127.0.0.1:" + itoa(u.plain)
}

// unboundStats are unbound's query counters (extended-statistics):
// total, over TLS (DoT and DoH) and over HTTPS (DoH).
type unboundStats struct{ total, tls, https int }

// plaintext counts the queries that came in clear text.
func (s unboundStats) plaintext() int { return s.total - s.tls }

func (s unboundStats) sub(o unboundStats) unboundStats {
	return unboundStats{s.total - o.total, s.tls - o.tls, s.https - o.https}
}

// stats reads u's counters with unbound-control.
func (u *unboundServer) stats(t testing.TB) unboundStats {
	t.Helper()
	bin := unboundControl.path()
	out, err := exec.Command(bin, "-c", u.conf, "stats_noreset").CombinedOutput()
	if err != nil {
		t.Fatalf("unbound-control: %v\n%s", err, out)
	}
	var s unboundStats
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "total.num.queries":
			s.total = n
		case "num.query.tls":
			s.tls = n
		case "num.query.https":
			s.https = n
		}
	}
	return s
}

// encWorld is a world with Knot serving knotZone, unbound forwarding to
// it, and boot, a plaintext DNS server that knows only unboundName: the
// encrypted nameservers' names can be found only through it, never
// through unbound itself.
type encWorld struct {
	*world
	u    *unboundServer
	boot *dnstest.Server
}

func newEncWorld(t testing.TB, what string) (*encWorld, *row) {
	r := need(t, unbound, what, knot, unboundControl)
	w := newWorld(t)
	knotAddr := startKnot(t, knotOrigin, encZone)
	e := &encWorld{world: w, u: startUnbound(t, w, r, knotOrigin, knotAddr), boot: dnstest.Start(t)}
	e.boot.A(unboundName, "127.0.0.1")
	r.proto = "DoT, DoH"
	return e, r
}

// encZone is knotZone with a wildcard for the benchmarks' ever-new names.
var encZone = knotZone + `
*.bench.example.test. 300 A    127.0.0.1
*.bench.example.test. 300 AAAA ::1
`

// encNames are the knotZone names resolved over each transport.
var encNames = []string{
	"www", "v4", "v6", "chain", "loop1", "svc", "strict", "example.test", "alias",
	"alias2", "gone", "aloop1", "many", "nx",
}

func encName(n string) string {
	if strings.HasSuffix(n, ".test") {
		return n
	}
	return n + ".example.test"
}

// normalized is a Resolution as JSON without timings and TTLs, with the
// server's name in errors replaced: what must not depend on the transport.
// The TTLs, which unbound's cache counts down between the queries, are
// returned apart, in order.
func normalized(t testing.TB, res *dialer.Resolution, server string) (string, []uint32) {
	t.Helper()
	c := *res
	var ttls []uint32
	for _, q := range []*dialer.DNSQuery{&c.HTTPS, &c.AAAA, &c.A} {
		q.Start, q.End = 0, 0
		q.Err = strings.ReplaceAll(q.Err, server, "SERVER")
		q.Records = slices.Clone(q.Records)
		for i := range q.Records {
			ttls = append(ttls, q.Records[i].TTL)
			q.Records[i].TTL = 0
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), ttls
}

// TestUnboundEncryptedQueries resolves every name of the test zone through
// unbound over plain DNS, DoT and DoH: the answers over DoT and DoH equal
// those over plain DNS, which are checked against the zone; unbound counts
// the encrypted queries and none in clear text; the bootstrap server is
// asked only for the resolver's name.
func TestUnboundEncryptedQueries(t *testing.T) {
	e, _ := newEncWorld(t, "DoT and DoH answers equal plain DNS")
	got := map[string]map[string]string{}
	ttls := map[string]map[string][]uint32{}
	for _, tr := range []string{"udp", "dot", "doh"} {
		d := e.dialer(dialer.WithNameservers(e.u.nameservers(tr, e.boot.Addr())...))
		before := e.u.stats(t)
		got[tr], ttls[tr] = map[string]string{}, map[string][]uint32{}
		for _, n := range encNames {
			res, err := d.Resolve(ctx(t), encName(n))
			if tr == "udp" {
				checkZoneAnswer(t, n, res, err)
			}
			got[tr][n], ttls[tr][n] = normalized(t, res, e.u.server(tr))
		}
		s := e.u.stats(t).sub(before)
		t.Logf("%s: unbound counted %+v", tr, s)
		switch tr {
		case "udp":
			if s.tls != 0 || s.total < len(encNames)*3 {
				t.Errorf("plain DNS: unbound counted %+v", s)
			}
		case "dot", "doh":
			if s.plaintext() != 0 {
				t.Errorf("%s: %d queries reached unbound in clear text", tr, s.plaintext())
			}
			if s.tls < len(encNames)*3 {
				t.Errorf("%s: %d queries over TLS, want at least %d", tr, s.tls, len(encNames)*3)
			}
			if wantHTTPS := tr == "doh"; (s.https > 0) != wantHTTPS || (wantHTTPS && s.https != s.tls) {
				t.Errorf("%s: %d of %d TLS queries over HTTPS", tr, s.https, s.tls)
			}
		}
	}
	for _, tr := range []string{"dot", "doh"} {
		for _, n := range encNames {
			if got[tr][n] != got["udp"][n] {
				t.Errorf("%s over %s:\n%s\nover plain DNS:\n%s", n, tr, got[tr][n], got["udp"][n])
			}
			// Asked later, from unbound's cache: the same TTLs or a
			// few seconds less.
			for i, ttl := range ttls[tr][n] {
				if i < len(ttls["udp"][n]) && (ttl > ttls["udp"][n][i] || ttls["udp"][n][i]-ttl > 10) {
					t.Errorf("%s over %s: TTLs %v, over plain DNS %v", n, tr, ttls[tr][n], ttls["udp"][n])
					break
				}
			}
		}
	}
	checkBoot(t, e.boot)
}

// checkBoot checks that the bootstrap server was asked for the resolver's
// name and for nothing else.
func checkBoot(t testing.TB, boot *dnstest.Server) {
	t.Helper()
	asked := 0
	for _, q := range boot.Queries() {
		if !strings.EqualFold(q.Name, unboundName+".") {
			t.Errorf("the bootstrap server was asked for %s %d in clear text", q.Name, q.Type)
		}
		asked++
	}
	if asked == 0 {
		t.Error("the bootstrap server was never asked for the resolver's name")
	}
}

// checkZoneAnswer checks what plain DNS through unbound gave for n against
// knotZone, so that equal answers over DoT and DoH are right answers.
func checkZoneAnswer(t testing.TB, n string, res *dialer.Resolution, err error) {
	t.Helper()
	addrs := func(q dialer.DNSQuery) string {
		var s []string
		for _, a := range q.Addrs {
			s = append(s, a.String())
		}
		return strings.Join(s, " ")
	}
	bad := func(what string) { t.Errorf("%s: %s; got %+v (error %v)", n, what, res, err) }
	switch n {
	case "www", "chain":
		if addrs(res.A) != "127.0.0.1" || addrs(res.AAAA) != "::1" {
			bad("want 127.0.0.1 and ::1")
		}
	case "loop1":
		if err == nil || res.A.Err == "" {
			bad("want an error for a CNAME loop")
		}
	case "svc":
		if len(res.HTTPS.Services) == 0 || !res.HTTPS.Services[0].ECH || res.HTTPS.Services[0].Port != 8443 {
			bad("want the ServiceMode record with port 8443 and ech first")
		}
		for _, s := range res.HTTPS.Services {
			if s.Priority == 4 {
				bad("the record with an unknown mandatory key must be dropped (RFC 9460 §8)")
			}
			if s.Priority == 3 && strings.Join(s.ALPN, ",") != "h3" {
				bad("no-default-alpn: want ALPN h3 alone (RFC 9460 §7.1.1)")
			}
		}
	case "strict":
		if len(res.HTTPS.Services) != 0 {
			bad("want no usable HTTPS record")
		}
	case "alias", "alias2":
		if len(res.HTTPS.Services) == 0 || res.HTTPS.Services[0].Port != 8443 {
			bad("want svc's ServiceMode records through the alias")
		}
	case "many":
		if len(res.A.Addrs) != 16 || len(res.AAAA.Addrs) != 16 || res.A.Omitted != 84 {
			bad("want 16 of 100 addresses per family, 84 omitted")
		}
	case "nx":
		if err == nil || !strings.Contains(res.A.Err, "NXDOMAIN") {
			bad("want NXDOMAIN")
		}
	}
}

// TestUnboundDial dials a WebSocket by name with only DoT, then only DoH,
// nameservers (and the bootstrap server for the resolver's name): the
// dial works, its queries reach unbound encrypted, and the dialed name is
// never asked in clear text.
func TestUnboundDial(t *testing.T) {
	e, _ := newEncWorld(t, "dial with DoT and DoH nameservers")
	url := "ws://www.example.test:" + itoa(e.backend) + "/echo"
	for _, tr := range []string{"dot", "doh"} {
		before := e.u.stats(t)
		d := e.dialer(dialer.WithNameservers(e.u.nameservers(tr, e.boot.Addr())...))
		c, _, _ := dialWS(t, d, url, 1)
		closeWS(t, c)
		s := e.u.stats(t).sub(before)
		if s.tls == 0 || s.plaintext() != 0 || (tr == "doh") != (s.https > 0) {
			t.Errorf("%s: unbound counted %+v", tr, s)
		}
	}
	checkBoot(t, e.boot)
}

// TestUnboundUntrusted: a resolver whose certificate the client does not
// trust is refused, over DoT and DoH, with the verification error, and no
// query goes out in clear text instead; a per-call WithTLSConfig with
// other roots does not ride on the Dialer's verified resolver connections.
func TestUnboundUntrusted(t *testing.T) {
	e, _ := newEncWorld(t, "untrusted resolver refused")
	other, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"dot", "doh"} {
		ns := dialer.WithNameservers(e.u.nameservers(tr, e.boot.Addr())...)
		d := e.dialer(ns, dialer.WithTLSConfig(other.ClientConfig()))
		_, err := d.Resolve(ctx(t), "www.example.test")
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("%s: error %v, want a certificate verification error", tr, err)
		}
		// The same Dialer's resolver, verified under the world's CA,
		// then a per-call configuration with other roots.
		d = e.dialer(ns)
		if _, err := d.Resolve(ctx(t), "www.example.test"); err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		_, err = d.Resolve(ctx(t), "v4.example.test", dialer.WithTLSConfig(other.ClientConfig()))
		if !errors.As(err, &verr) {
			t.Errorf("%s: per-call other roots: error %v, want a certificate verification error", tr, err)
		}
	}
	if s := e.u.stats(t); s.plaintext() != 0 {
		t.Errorf("%d queries reached unbound in clear text", s.plaintext())
	}
	checkBoot(t, e.boot)
}
