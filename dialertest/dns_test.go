package dialertest_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/eyeballs/dialer/dialertest"
)

// answer is what a query got: the records' values (addresses, or HTTPS
// records in presentation format from the priority on), and the rcode.
type answer struct {
	values []string
	rcode  int
	err    error
}

// query asks ns for name and t over UDP.
func query(ns *dialertest.DNS, name string, t dialertest.RecordType, timeout time.Duration) answer {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), uint16(t))
	c := &dns.Client{Timeout: timeout}
	r, _, err := c.Exchange(m, ns.Addr())
	if err != nil {
		return answer{err: err}
	}
	a := answer{rcode: r.Rcode}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			a.values = append(a.values, rr.A.String())
		case *dns.AAAA:
			a.values = append(a.values, rr.AAAA.String())
		case *dns.HTTPS:
			hdr := rr.Hdr.String()
			a.values = append(a.values, strings.TrimPrefix(rr.String(), hdr))
		}
	}
	return a
}

// TestDNSRecords: A, AAAA and HTTPS records come back as set, and Point
// sets all three from a server.
func TestDNSRecords(t *testing.T) {
	t.Parallel()
	ns := dialertest.NewDNS(t)
	ns.A("a.test", "127.0.0.2", "127.0.0.3")
	ns.AAAA("a.test", "::1")
	ns.HTTPS("a.test", "1 . alpn=h2 port=8443")
	srv := dialertest.NewServer(t, dialertest.Options{H1: true, H2: true, Names: []string{"b.test"}})
	ns.Point("b.test", srv)
	all := dialertest.NewServer(t, dialertest.Options{Names: []string{"c.test"}})
	ns.Point("c.test", all)

	for _, tc := range []struct {
		name string
		t    dialertest.RecordType
		want []string
	}{
		{"a.test", dialertest.TypeA, []string{"127.0.0.2", "127.0.0.3"}},
		{"a.test", dialertest.TypeAAAA, []string{"::1"}},
		{"a.test", dialertest.TypeHTTPS, []string{`1 . alpn="h2" port="8443"`}},
		{"b.test", dialertest.TypeA, []string{"127.0.0.1"}},
		{"b.test", dialertest.TypeAAAA, []string{"::1"}},
		{"b.test", dialertest.TypeHTTPS, []string{`1 . alpn="h2"`}},
		{"c.test", dialertest.TypeHTTPS, []string{`1 . alpn="h3,h2"`}},
	} {
		a := query(ns, tc.name, tc.t, time.Second)
		if a.err != nil || !slices.Equal(a.values, tc.want) {
			t.Errorf("%s %v: %q, %v; want %q", tc.name, tc.t, a.values, a.err, tc.want)
		}
	}
	if a := query(ns, "none.test", dialertest.TypeA, time.Second); a.rcode != dns.RcodeNameError {
		t.Errorf("unknown name: rcode %d, want NXDOMAIN", a.rcode)
	}
	if n := ns.Count("a.test", dialertest.TypeAAAA); n != 1 {
		t.Errorf("Count(a.test, AAAA) = %d, want 1", n)
	}
}

// TestDNSDelayDropServFail: a delayed answer arrives late, a dropped one
// never, a failed one fails; Clear restores the answers.
func TestDNSDelayDropServFail(t *testing.T) {
	t.Parallel()
	ns := dialertest.NewDNS(t)
	for _, name := range []string{"slow.test", "drop.test", "fail.test"} {
		ns.AAAA(name, "::1")
	}
	ns.Delay("slow.test", dialertest.TypeAAAA, 200*time.Millisecond)
	ns.Drop("drop.test", dialertest.TypeAAAA)
	ns.ServFail("fail.test", dialertest.TypeAAAA)

	start := time.Now()
	if a := query(ns, "slow.test", dialertest.TypeAAAA, 2*time.Second); a.err != nil || len(a.values) != 1 {
		t.Errorf("slow.test: %q, %v", a.values, a.err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("delayed AAAA answered after %v", el)
	}
	if a := query(ns, "drop.test", dialertest.TypeAAAA, 200*time.Millisecond); a.err == nil {
		t.Errorf("dropped query answered: %q", a.values)
	}
	if a := query(ns, "fail.test", dialertest.TypeAAAA, time.Second); a.rcode != dns.RcodeServerFailure {
		t.Errorf("fail.test: rcode %d, %v; want SERVFAIL", a.rcode, a.err)
	}
	for _, name := range []string{"slow.test", "drop.test", "fail.test"} {
		ns.Clear(name, dialertest.TypeAAAA)
		start := time.Now()
		if a := query(ns, name, dialertest.TypeAAAA, time.Second); a.err != nil || len(a.values) != 1 || time.Since(start) > 100*time.Millisecond {
			t.Errorf("%s after Clear: %q, %v after %v", name, a.values, a.err, time.Since(start))
		}
	}
}

// TestDNSMistake: a bad address fails the test that made the server.
func TestDNSMistake(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{}
	ns := dialertest.NewDNS(ft)
	defer ft.cleanup()
	func() {
		defer func() { recover() }()
		ns.A("x.test", "::1") // not an IPv4 address
	}()
	if ft.failed == "" {
		t.Error("a bad A record did not fail the test")
	}
}

// fakeTB is a TB that records a failure and panics, as Fatalf's
// runtime.Goexit would end a test.
type fakeTB struct {
	failed   string
	cleanups []func()
}

func (*fakeTB) Helper()             {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(errors.New("fatal"))
}
func (f *fakeTB) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// TestRecordTypes: the constants are the DNS type numbers.
func TestRecordTypes(t *testing.T) {
	for rt, want := range map[dialertest.RecordType]uint16{dialertest.TypeA: dns.TypeA, dialertest.TypeAAAA: dns.TypeAAAA, dialertest.TypeHTTPS: dns.TypeHTTPS} {
		if uint16(rt) != want || rt.String() != dns.TypeToString[want] {
			t.Errorf("%v = %d, want %d", rt, uint16(rt), want)
		}
	}
}
