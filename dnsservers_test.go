package dialer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// TestParseNameservers: encrypted nameservers parse with their defaults;
// bad ones are refused with the entry named.
func TestParseNameservers(t *testing.T) {
	plain, enc, err := parseNameservers([]string{
		"127.0.0.1:53", "tls://dns.test", "tls://[::1]:8853",
		"https://dns.test", "https://127.0.0.1:8443/q?x=1", "https://dns.test/dns-query{?dns}",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 1 || plain[0] != "127.0.0.1:53" {
		t.Errorf("plain %q", plain)
	}
	want := []encServer{
		{scheme: "tls", host: "dns.test", port: "853"},
		{scheme: "tls", host: "::1", port: "8853"},
		{scheme: "https", host: "dns.test", port: "443", url: "https://dns.test:443/dns-query"},
		{scheme: "https", host: "127.0.0.1", port: "8443", url: "https://127.0.0.1:8443/q?x=1"},
		{scheme: "https", host: "dns.test", port: "443", url: "https://dns.test:443/dns-query"},
	}
	if len(enc) != len(want) {
		t.Fatalf("%d encrypted, want %d: %+v", len(enc), len(want), enc)
	}
	for i := range want {
		if enc[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, enc[i], want[i])
		}
	}
	for _, bad := range []string{
		"udp://127.0.0.1", "tls://", "tls://dns.test/path", "tls://dns.test:0",
		"tls://dns.test:99999", "https://user@dns.test/q", "https://dns.test/q#f",
		"tls://bad..name", "tls://[fe80::1%25eth0]",
	} {
		if _, _, err := parseNameservers([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v, want one naming the entry", bad, err)
		}
	}
}

// TestResolverKeyRoots: with an encrypted nameserver, other roots get
// another resolver (its connections verified under other roots); with
// plaintext ones only, roots do not matter.
func TestResolverKeyRoots(t *testing.T) {
	a, b := x509.NewCertPool(), x509.NewCertPool()
	enc := config{nameservers: []string{"tls://dns.test"}, tls: &tls.Config{RootCAs: a}}
	other := enc
	other.tls = &tls.Config{RootCAs: b}
	if resolverKey(enc) == resolverKey(other) {
		t.Error("encrypted nameservers under other roots share a resolver")
	}
	same := enc
	same.tls = &tls.Config{RootCAs: a, ServerName: "x"}
	if resolverKey(enc) != resolverKey(same) {
		t.Error("the same roots get another resolver")
	}
	plain := config{nameservers: []string{"127.0.0.1:53"}, tls: &tls.Config{RootCAs: a}}
	plain2 := plain
	plain2.tls = &tls.Config{RootCAs: b}
	if resolverKey(plain) != resolverKey(plain2) {
		t.Error("plaintext nameservers keyed by roots")
	}
}

// TestBadNameserverError: a bad encrypted nameserver fails the lookup
// with an error naming it, before any query.
func TestBadNameserverError(t *testing.T) {
	d := New(WithNameservers("tls://dns.test/x"), WithHostsFile("-"))
	_, err := d.Resolve(t.Context(), "www.test")
	var de *DialError
	if !errors.As(err, &de) || de.Stage != "dns" || !strings.Contains(err.Error(), `"tls://dns.test/x"`) {
		t.Fatalf("error %v, want a dns-stage DialError naming the nameserver", err)
	}
}
