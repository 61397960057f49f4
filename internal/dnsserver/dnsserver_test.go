package dnsserver

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// exchange sends one query for name and qtype to s over network.
func exchange(t *testing.T, s *Server, network, name string, qtype uint16, edns bool) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, s.Addr())
	return r, err
}

func TestRecords(t *testing.T) {
	s := start(t)
	s.A("a.test", "192.0.2.1", "192.0.2.2")
	s.AAAA("A.Test.", "2001:db8::1")
	s.HTTPS("a.test", "1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1")
	s.Add("b.test. 60 IN A 192.0.2.9")

	for _, tc := range []struct {
		network, name string
		qtype         uint16
		want          int
	}{
		{"udp", "a.test", TypeA, 2},
		{"tcp", "a.test", TypeA, 2},
		{"udp", "a.TEST", TypeAAAA, 1},
		{"udp", "a.test", TypeHTTPS, 1},
		{"udp", "b.test", TypeA, 1},
	} {
		r, err := exchange(t, s, tc.network, tc.name, tc.qtype, true)
		if err != nil {
			t.Fatalf("%s %s over %s: %v", tc.name, dns.TypeToString[tc.qtype], tc.network, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != tc.want {
			t.Errorf("%s %s over %s: rcode %d, %d answers, want %d:\n%v", tc.name, dns.TypeToString[tc.qtype], tc.network, r.Rcode, len(r.Answer), tc.want, r)
		}
	}
	r, _ := exchange(t, s, "udp", "b.test", TypeA, true)
	if ttl := r.Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("TTL %d, want 60", ttl)
	}
	h, ok := func() (*dns.HTTPS, bool) {
		r, _ := exchange(t, s, "udp", "a.test", TypeHTTPS, true)
		h, ok := r.Answer[0].(*dns.HTTPS)
		return h, ok
	}()
	if !ok || h.Priority != 1 || len(h.Value) != 3 {
		t.Errorf("HTTPS record %v", h)
	}

	qs := s.Queries()
	if len(qs) != 7 {
		t.Fatalf("%d queries logged, want 7: %v", len(qs), qs)
	}
	if q := qs[1]; q.Name != "a.test." || q.Type != TypeA || q.Transport != "tcp" || q.Time.IsZero() {
		t.Errorf("query %+v", q)
	}
	if n := s.Count("A.test", TypeA); n != 2 {
		t.Errorf("Count(a.test, A) = %d, want 2", n)
	}
	if n := s.Count("a.test.", TypeAny); n != 5 {
		t.Errorf("Count(a.test, any) = %d, want 5", n)
	}
}

func TestNegative(t *testing.T) {
	s := start(t)
	s.A("a.test", "192.0.2.1")

	r, err := exchange(t, s, "udp", "a.test", TypeAAAA, true)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("NODATA: %v %v", r, err)
	}
	r, err = exchange(t, s, "udp", "none.test", TypeA, true)
	if err != nil || r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
		t.Errorf("NXDOMAIN: %v %v", r, err)
	}
	if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Minttl != NegativeTTL {
		t.Errorf("SOA %v", r.Ns[0])
	}
}

func TestCNAME(t *testing.T) {
	s := start(t)
	s.CNAME("www.test", "cdn.test")
	s.CNAME("cdn.test", "edge.test")
	s.A("edge.test", "192.0.2.7")
	s.CNAME("loop1.test", "loop2.test")
	s.CNAME("loop2.test", "loop1.test")

	r, err := exchange(t, s, "udp", "www.test", TypeA, true)
	if err != nil || len(r.Answer) != 3 {
		t.Fatalf("chain: %v %v", r, err)
	}
	if a, ok := r.Answer[2].(*dns.A); !ok || a.A.String() != "192.0.2.7" {
		t.Errorf("last record %v", r.Answer[2])
	}
	r, err = exchange(t, s, "udp", "www.test", TypeCNAME, true)
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("CNAME query: %v %v", r, err)
	}
	r, err = exchange(t, s, "udp", "loop1.test", TypeA, true)
	if err != nil || len(r.Answer) != 2 || r.Rcode != dns.RcodeSuccess {
		t.Errorf("loop: %v %v", r, err)
	}
}

func TestTruncation(t *testing.T) {
	s := start(t)
	var ips []string
	for i := range 3000 {
		ips = append(ips, fmt.Sprintf("10.%d.%d.1", i/256, i%256))
	}
	s.A("many.test", ips...)
	s.A("small.test", "192.0.2.1")
	s.Set("small.test", TypeA, TruncateUDP(nil))

	for _, tc := range []struct {
		network string
		edns    bool
		max     int // bytes
	}{
		{"udp", true, 1232},
		{"udp", false, 512},
		{"tcp", true, 65535},
	} {
		r, err := exchange(t, s, tc.network, "many.test", TypeA, tc.edns)
		if err != nil {
			t.Fatalf("%s, EDNS0 %v: %v", tc.network, tc.edns, err)
		}
		r.Compress = true
		full := len(r.Answer) == 3000
		if r.Truncated == full || r.Len() > tc.max {
			t.Errorf("%s, EDNS0 %v: TC %v, %d answers, %d bytes", tc.network, tc.edns, r.Truncated, len(r.Answer), r.Len())
		}
		if tc.network == "tcp" && !full {
			t.Errorf("TCP: %d answers, want 3000", len(r.Answer))
		}
	}

	r, err := exchange(t, s, "udp", "small.test", TypeA, true)
	if err != nil || !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("TruncateUDP over UDP: %v %v", r, err)
	}
	r, err = exchange(t, s, "tcp", "small.test", TypeA, true)
	if err != nil || r.Truncated || len(r.Answer) != 1 {
		t.Errorf("TruncateUDP over TCP: %v %v", r, err)
	}
}

func TestBehaviours(t *testing.T) {
	s := start(t)
	s.A("a.test", "192.0.2.1")

	s.Set("a.test", TypeA, ServFail())
	if r, err := exchange(t, s, "udp", "a.test", TypeA, true); err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("ServFail: %v %v", r, err)
	}
	s.Set("a.test", TypeA, NXDomain())
	if r, err := exchange(t, s, "udp", "a.test", TypeA, true); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("NXDomain: %v %v", r, err)
	}
	s.Set("a.test", TypeA, NoData())
	if r, err := exchange(t, s, "udp", "a.test", TypeA, true); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("NoData: %v %v", r, err)
	}
	s.Set("a.test", TypeA, Modify(func(m *dns.Msg) { m.Id++ }))
	if _, err := exchange(t, s, "tcp", "a.test", TypeA, true); err == nil {
		t.Errorf("Modify(wrong ID) over TCP: no error")
	}
	s.Set("a.test", TypeA, Garbage(nil))
	if _, err := exchange(t, s, "tcp", "a.test", TypeA, true); err == nil {
		t.Errorf("Garbage: no error")
	}
	s.Set("a.test", TypeA, nil)
	if r, err := exchange(t, s, "udp", "a.test", TypeA, true); err != nil || len(r.Answer) != 1 {
		t.Errorf("after Set(nil): %v %v", r, err)
	}

	s.Set("a.test", TypeAny, Delay(150*time.Millisecond, nil))
	start := time.Now()
	r, err := exchange(t, s, "udp", "a.test", TypeA, true)
	if d := time.Since(start); err != nil || len(r.Answer) != 1 || d < 150*time.Millisecond {
		t.Errorf("Delay: %v after %v, err %v", r, d, err)
	}

	s.SetDefault(Drop())
	s.Set("a.test", TypeAny, nil)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("a.test.", TypeA), s.Addr()); err == nil {
		t.Errorf("Drop: got an answer")
	}
}

// TestCloseDuringDelay checks that Close does not wait for a long delay.
func TestCloseDuringDelay(t *testing.T) {
	s, err := New("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", TypeA, Delay(time.Hour, nil))
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := new(dns.Msg).SetQuestion("a.test.", TypeA).Pack()
	c.Write(b)
	deadline := time.Now().Add(2 * time.Second)
	for s.Count("a.test", TypeA) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	s.Close()
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestNewBadAddr(t *testing.T) {
	if _, err := New("localhost:0"); err == nil {
		t.Error("New(localhost:0) succeeded")
	}
}

// TestInFlight checks Total and MaxInFlight: queries held by a Delay
// handler are in flight together.
func TestInFlight(t *testing.T) {
	s := start(t)
	s.A("a.test", "192.0.2.1")
	s.Set("a.test", TypeA, Delay(200*time.Millisecond, nil))
	done := make(chan error)
	for range 3 {
		go func() {
			_, err := exchange(t, s, "udp", "a.test", TypeA, true)
			done <- err
		}()
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exchange(t, s, "udp", "b.test", TypeA, true); err != nil {
		t.Fatal(err)
	}
	if n := s.Total(); n != 4 {
		t.Errorf("Total() = %d, want 4", n)
	}
	if n := s.MaxInFlight(); n != 3 {
		t.Errorf("MaxInFlight() = %d, want 3", n)
	}
}

// start starts a server on 127.0.0.1, closed when the test ends; mistakes
// in records fail the test.
func start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.SetFatal(tb.Fatalf)
	tb.Cleanup(s.Close)
	return s
}
