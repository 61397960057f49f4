package dnstest

import (
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStart: a server from Start answers from its records and with its
// handlers, under the names the resolver and integration tests use.
func TestStart(t *testing.T) {
	s := Start(t)
	s.A("a.test", "127.0.0.1")
	s.Set("a.test", TypeAAAA, ServFail())
	c := &dns.Client{}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion("a.test.", TypeA), s.Addr())
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("A: %v, %v", r, err)
	}
	r, _, err = c.Exchange(new(dns.Msg).SetQuestion("a.test.", TypeAAAA), s.Addr())
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("AAAA: %v, %v", r, err)
	}
	if n := s.Count("a.test", TypeAny); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}
