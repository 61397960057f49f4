package interop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	knot = peer{name: "Knot DNS", bin: "knotd", args: []string{"-V"}, install: "apt-get install knot",
		version: []*regexp.Regexp{regexp.MustCompile(`version (\S+)`)}}
	kdig = peer{name: "kdig", bin: "kdig", args: []string{"-V"}, install: "apt-get install knot-dnsutils",
		version: []*regexp.Regexp{regexp.MustCompile(`version (\S+)`)}}
)

// knotOrigin is the origin of knotZone.
const knotOrigin = "example.test."

// knotZone is the zone the resolver tests ask Knot about. Each name is one
// case of RFC 9460 and RFC 1034 that a stub resolver must get right; the
// TTLs differ per piece so that a cache that keeps an answer longer than
// its shortest piece shows. The addresses a dial may use are on loopback.
//
// ech= values are opaque to the resolver (it keeps them with their record,
// RFC 9460 §7.3); key65000 is an unknown key (§14.3.2, private use);
// "many" has 100 A and 100 AAAA records (see knotMany).
var knotZone = knotRecords + knotMany("many.example.test.", 100)

// knotRecords is knotZone without the long answers.
const knotRecords = `$ORIGIN example.test.
$TTL 300
@            3600 SOA   ns hostmaster 1 3600 600 86400 60
@            3600 NS    ns
ns                A     127.0.0.1

; addresses
www               A     127.0.0.1
www               AAAA  ::1
v4                A     127.0.0.1
v6                AAAA  ::1

; a CNAME chain of three pieces, each with its own TTL
chain         120 CNAME chain2
chain2         60 CNAME www
; a CNAME loop (RFC 1034 §3.6.2: resolvers must detect it)
loop1             CNAME loop2
loop2             CNAME loop1

; ServiceMode (RFC 9460 §2.4.3) with every SvcParam the dialer reads
svc               HTTPS 1 . alpn="h3,h2" port=8443 ipv4hint=127.0.0.1 ipv6hint=::1 ech=AAj+DQAEAQIDBA==
svc               HTTPS 2 pool alpn=h2
svc               HTTPS 3 . alpn=h3 no-default-alpn
svc               HTTPS 4 . mandatory=key65000 key65000=hello alpn=h2
svc               A     127.0.0.1
svc               AAAA  ::1
pool              A     127.0.0.2
; the same service on a non-default port (RFC 9460 §9.1)
_8443._https.svc  HTTPS 1 . alpn=h2 port=8444
; only an unknown mandatory key: no usable record (§8)
strict            HTTPS 1 . mandatory=key65000 key65000=x
strict            A     127.0.0.1

; AliasMode (§2.4.2): the apex aliased to a CDN name, which has no HTTPS
; record of its own, only addresses
@              30 HTTPS 0 cdn
@                 A     127.0.0.9
cdn           240 A     127.0.0.1
cdn               AAAA  ::1
; AliasMode to a target with its own ServiceMode record
alias             HTTPS 0 svc
; a chain of aliases: alias2 -> alias -> svc
alias2            HTTPS 0 alias
; AliasMode to "." (§2.5.1): the service does not exist
gone              HTTPS 0 .
gone              A     127.0.0.1
; an AliasMode loop
aloop1            HTTPS 0 aloop2
aloop2            HTTPS 0 aloop1
`

// knotMany returns the zone lines of a name with n A and n AAAA records,
// more than fit in one 1232-byte UDP answer (RFC 9715 §3.2 asks no more):
// the server truncates it and the resolver must ask again over TCP
// (RFC 7766 §5).
func knotMany(name string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s A 127.0.%d.%d\n", name, 1+i/250, 1+i%250)
		fmt.Fprintf(&b, "%s AAAA ::1:%x\n", name, i+1)
	}
	return b.String()
}

// startKnot starts knotd serving zone (in zone file syntax) for origin on
// 127.0.0.1 over UDP and TCP, from a directory of its own, and returns its
// address, "127.0.0.1:PORT". knotd runs in the foreground and is stopped
// when the test ends. The test skips when knotd is not installed.
func startKnot(t testing.TB, origin, zone string) string {
	t.Helper()
	bin := knot.path()
	if bin == "" {
		t.Skipf("knotd is not installed (%s; .ci/run does)", knot.install)
	}
	origin = strings.ToLower(origin)
	if !strings.HasSuffix(origin, ".") {
		origin += "."
	}
	tmpl, err := os.ReadFile(filepath.Join("conf", "knot", "knot.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range startTries {
		dir, err := os.MkdirTemp(t.TempDir(), "knot-")
		if err != nil {
			t.Fatal(err)
		}
		port := freePort(t, true)
		conf := strings.NewReplacer("@DIR@", dir, "@PORT@", itoa(port), "@ORIGIN@", origin).Replace(string(tmpl))
		if left := placeholder.FindAllString(conf, -1); len(left) > 0 {
			t.Fatalf("conf/knot/knot.conf: no value for %v", left)
		}
		for name, body := range map[string]string{"knot.conf": conf, "zone.txt": zone} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := startProc(t, "knotd", dir, nil, bin, "-c", filepath.Join(dir, "knot.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err = p.waitListening(port, port); err == nil {
			err = waitZone(p, port, origin)
		}
		if err == nil {
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
		lastErr = err
		p.stop(t)
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("knotd did not start: %v", lastErr)
	return ""
}

// waitZone waits until knotd answers authoritatively for origin's SOA: it
// listens before it has loaded its zone.
func waitZone(p *proc, port int, origin string) error {
	deadline := time.Now().Add(startTimeout)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(origin, dns.TypeSOA)
	for {
		r, _, err := c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) > 0 {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("knotd %w (%v):\n%s", errExited, p.waitErr, p.out.String())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("knotd did not load %s within %v (last: %v, %v):\n%s", origin, startTimeout, r, err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
