package dialer

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// TestTrustPartitions: configurations that verify the server or present
// the client differently, or resolve differently, never share a trust;
// configurations equal in content do, even as distinct values.
func TestTrustPartitions(t *testing.T) {
	resolverA := &net.Resolver{PreferGo: true}
	roots, other := x509.NewCertPool(), x509.NewCertPool()
	certA := tls.Certificate{Certificate: [][]byte{[]byte("client A")}}
	certB := tls.Certificate{Certificate: [][]byte{[]byte("client B")}}
	verify := func(tls.ConnectionState) error { return nil }
	shared := &tls.Config{RootCAs: roots, VerifyConnection: verify}

	base := config{tls: &tls.Config{RootCAs: roots}, nameservers: []string{"127.0.0.1:53"}}
	with := func(f func(*config)) config {
		c := base
		c.tls = base.tls.Clone()
		f(&c)
		return c
	}
	same := []struct {
		name string
		c    config
	}{
		{"a clone of the same configuration", with(func(*config) {})},
		{"another NextProtos (the dialer sets it)", with(func(c *config) { c.tls.NextProtos = []string{"x"} })},
		{"another header", with(func(c *config) { c.header = map[string][]string{"Authorization": {"x"}} })},
		{"other attempt delays and protocols", with(func(c *config) { c.attemptDelay, c.versions = time.Second, 1 })},
	}
	for _, tc := range same {
		if tc.c.trust() != base.trust() {
			t.Errorf("%s: a new trust; connections would not be shared", tc.name)
		}
	}
	if (config{}).trust() != (config{tls: &tls.Config{}}).trust() {
		t.Error("nil and empty TLS configurations (both system roots) differ")
	}
	differ := []struct {
		name string
		c    config
	}{
		{"system roots", with(func(c *config) { c.tls = nil })},
		{"other roots", with(func(c *config) { c.tls.RootCAs = other })},
		{"InsecureSkipVerify", with(func(c *config) { c.tls.InsecureSkipVerify = true })},
		{"ServerName", with(func(c *config) { c.tls.ServerName = "other.test" })},
		{"client certificate A", with(func(c *config) { c.tls.Certificates = []tls.Certificate{certA} })},
		{"client certificate B", with(func(c *config) { c.tls.Certificates = []tls.Certificate{certB} })},
		{"VerifyConnection", with(func(c *config) { c.tls.VerifyConnection = verify })},
		{"GetClientCertificate", with(func(c *config) {
			c.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certA, nil }
		})},
		{"a session cache", with(func(c *config) { c.tls.ClientSessionCache = tls.NewLRUClientSessionCache(1) })},
		{"ECH configuration", with(func(c *config) { c.tls.EncryptedClientHelloConfigList = []byte{1, 2} })},
		{"MaxVersion", with(func(c *config) { c.tls.MaxVersion = tls.VersionTLS12 })},
		{"other nameservers", with(func(c *config) { c.nameservers = []string{"127.0.0.2:53"} })},
		{"two nameservers", with(func(c *config) { c.nameservers = []string{"127.0.0.1:53", "127.0.0.1:54"} })},
		{"a hosts file", with(func(c *config) { c.hostsFile = "-" })},
		{"a resolv.conf", with(func(c *config) { WithResolvConf("/nonexistent/resolv.conf")(c) })},
		{"a resolver", with(func(c *config) { WithResolver(resolverA)(c) })},
		{"another resolver", with(func(c *config) { WithResolver(&net.Resolver{})(c) })},
		{"a resolver that is not comparable", with(func(c *config) { WithResolver(funcResolver(nil))(c) })},
		{"another such resolver", with(func(c *config) { WithResolver(funcResolver(nil))(c) })},
		{"a shared configuration with a callback", with(func(c *config) { c.tls = shared })},
	}
	seen := map[trust]string{base.trust(): "base"}
	for _, tc := range differ {
		tr := tc.c.trust()
		if prev, ok := seen[tr]; ok {
			t.Errorf("%s: same trust as %s", tc.name, prev)
		}
		seen[tr] = tc.name
	}
	// The same resolver shares, by identity.
	if with(func(c *config) { WithResolver(resolverA)(c) }).trust() != with(func(c *config) { WithResolver(resolverA)(c) }).trust() {
		t.Error("the same *net.Resolver gives two trusts")
	}
	// A configuration with callbacks compares by identity: the same
	// pointer shares, a copy does not.
	if (config{tls: shared}).trust() != (config{tls: shared}).trust() {
		t.Error("the same *tls.Config with a callback gives two trusts")
	}
	if (config{tls: shared}).trust() == (config{tls: shared.Clone()}).trust() {
		t.Error("a copy of a configuration with a callback shares its trust")
	}
}

// TestTrustOutlivesNoReuse: once a configuration compared by identity is
// garbage collected, no new configuration (which may reuse its address)
// matches the trust it had.
func TestTrustOutlivesNoReuse(t *testing.T) {
	verify := func(tls.ConnectionState) error { return nil }
	old := (config{tls: &tls.Config{VerifyConnection: verify}}).trust()
	runtime.GC()
	runtime.GC()
	for range 10000 {
		if (config{tls: &tls.Config{VerifyConnection: verify}}).trust() == old {
			t.Fatal("a new configuration matched the trust of a collected one")
		}
	}
}

// TestCapsByTrust: what was learned under one trust does not steer a dial
// under another.
func TestCapsByTrust(t *testing.T) {
	c := &caps{}
	a := originKey((config{tls: &tls.Config{InsecureSkipVerify: true}}).trust(), "x.test", 443)
	b := originKey((config{}).trust(), "x.test", 443)
	c.altSvc(a, 8443, time.Hour)
	c.learn(a, hev3.NeedWebSocket, report(Attempt{Proto: "h2,h1", Version: "h2", Connected: 1, Outcome: "incapable"}))
	h := c.apply(b, hev3.NeedWebSocket, raceHints{versions: hev3.AllVersions})
	if h.knownH3 || h.h3Port != 0 || h.versions != hev3.AllVersions {
		t.Errorf("another trust's Alt-Svc or capabilities applied: %+v", h)
	}
	if h := c.apply(a, hev3.NeedWebSocket, raceHints{versions: hev3.AllVersions}); !h.knownH3 || h.h3Port != 8443 || h.versions.Has(hev3.H2) {
		t.Errorf("the trust's own Alt-Svc or capabilities not applied: %+v", h)
	}
}

// BenchmarkTrust: the cost a dial pays to find its partition, for a
// configuration with roots and a client certificate.
func BenchmarkTrust(b *testing.B) {
	cert := tls.Certificate{Certificate: [][]byte{make([]byte, 1200), make([]byte, 1000)}}
	c := config{tls: &tls.Config{RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		nameservers: []string{"127.0.0.1:53"}}
	b.ReportAllocs()
	for b.Loop() {
		c.trust()
	}
}
