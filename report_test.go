package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

func sampleReport() *Report {
	return &Report{
		URL:      "wss://x.test/",
		Kind:     "websocket",
		Start:    time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Duration: 260 * time.Millisecond,
		Ready:    262 * time.Millisecond,
		DNS: []DNSQuery{
			{Name: "x.test", Type: "HTTPS", Start: 0, End: time.Millisecond, Services: []ServiceEntry{{Priority: 1, ALPN: []string{"h2"}, Port: 8443, Hints: []netip.Addr{netip.MustParseAddr("::1")}, ECH: true}}},
			{Name: "x.test", Type: "AAAA", End: 2 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("::1")}},
			{Name: "x.test", Type: "A", Err: "SERVFAIL"},
		},
		Attempts: []Attempt{
			{Addr: netip.MustParseAddrPort("[::1]:443"), Proto: "h1", Family: "IPv6", Start: 2 * time.Millisecond, End: 255 * time.Millisecond, Outcome: "lost"},
			{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h1", Family: "IPv4", Start: 252 * time.Millisecond, Connected: 255 * time.Millisecond, End: 255 * time.Millisecond, Resumed: true, Version: "h1", Outcome: "won"},
			{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h3", Family: "IPv4", Start: 3 * time.Millisecond, Connected: 3 * time.Millisecond, End: 255 * time.Millisecond, Resumed: true, Version: "h3", EarlyData: "accepted", Outcome: "lost"},
		},
		Winner:  1,
		Reason:  "h1 127.0.0.1:443 won",
		Learned: []string{"TCP over IPv6 was silent on this network 2.0s ago: tried last"},
	}
}

// TestReportJSONRoundTrip: a report survives JSON encoding unchanged.
func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r, back) {
		t.Errorf("round trip changed the report:\n%+v\n%+v", *r, back)
	}
}

// TestReportString: the waterfall has one line per query and attempt, marks
// the winner and states the reason.
func TestReportString(t *testing.T) {
	s := sampleReport().String()
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 1+3+3+1+1 {
		t.Fatalf("want 9 lines, got %d:\n%s", len(lines), s)
	}
	if !strings.HasPrefix(lines[5], "* h1    127.0.0.1:443") || strings.HasPrefix(lines[4], "*") {
		t.Errorf("winner not marked:\n%s", s)
	}
	for _, want := range []string{"SERVFAIL", "alpn=h2 port=8443", "::1", "lost", "won h1 resumed", "lost h3 resumed 0-RTT accepted", "learned: TCP over IPv6 was silent", "=> h1 127.0.0.1:443 won"} {
		if !strings.Contains(s, want) {
			t.Errorf("waterfall lacks %q:\n%s", want, s)
		}
	}
	// Bars start where the attempt starts on the common axis.
	if i, j := strings.Index(lines[4], "|"), strings.Index(lines[5], "|"); i != j {
		t.Errorf("bars not aligned:\n%s", s)
	}
}

// TestDialErrorUnwrap: errors.Is and errors.As reach the cause and every
// attempt's error, and the message names each attempt.
func TestDialErrorUnwrap(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	e := &DialError{
		URL:   "wss://x.test/",
		Stage: "connect",
		Err:   context.DeadlineExceeded,
		DNS:   []error{errors.New("A x.test: SERVFAIL")},
		Attempts: []AttemptError{
			{Addr: netip.MustParseAddrPort("[::1]:443"), Proto: "h1", Err: opErr},
			{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h1", Err: ErrUnsupported},
		},
	}
	if !errors.Is(e, context.DeadlineExceeded) || !errors.Is(e, ErrUnsupported) {
		t.Error("errors.Is misses the cause or an attempt error")
	}
	var got *net.OpError
	if !errors.As(e, &got) || got != opErr {
		t.Error("errors.As misses the attempt's *net.OpError")
	}
	msg := e.Error()
	for _, want := range []string{"wss://x.test/", "connect failed", "[::1]:443", "127.0.0.1:443", "SERVFAIL", "2 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}

// TestReportBounded: a DNS answer is recorded within the report's bounds,
// with a count of what was left out, which JSON and the waterfall carry.
func TestReportBounded(t *testing.T) {
	addrs := func(n int) []netip.Addr {
		out := make([]netip.Addr, n)
		for i := range out {
			out[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		}
		return out
	}
	ans := hev3.Answer{Addrs: addrs(100), Omitted: 7}
	var q DNSQuery
	fillAnswer(&q, ans)
	if len(q.Addrs) != reportAddrs || q.Omitted != 7+100-reportAddrs {
		t.Errorf("%d addresses, %d omitted; want %d and %d", len(q.Addrs), q.Omitted, reportAddrs, 7+100-reportAddrs)
	}

	alpn := make([]string, 20)
	for i := range alpn {
		alpn[i] = fmt.Sprintf("x%d", i)
	}
	svc := make([]hev3.ServiceInfo, 40)
	for i := range svc {
		svc[i] = hev3.ServiceInfo{Priority: uint16(i + 1), ALPN: alpn, IPv4Hints: addrs(40), IPv6Hints: addrs(40)}
	}
	q = DNSQuery{Name: "x.test", Type: "HTTPS", End: time.Millisecond}
	fillAnswer(&q, hev3.Answer{Services: svc})
	want := (40 - reportServices) + reportServices*(80-reportHints) + reportServices*(20-reportALPN)
	if len(q.Services) != reportServices || q.Omitted != want {
		t.Fatalf("%d services, %d omitted; want %d and %d", len(q.Services), q.Omitted, reportServices, want)
	}
	for _, s := range q.Services {
		if len(s.Hints) != reportHints || len(s.ALPN) != reportALPN {
			t.Fatalf("service %+v: want %d hints and %d ALPN IDs", s, reportHints, reportALPN)
		}
	}

	r := sampleReport()
	r.DNS = append(r.DNS, q)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r, back) {
		t.Errorf("round trip changed the report")
	}
	if !strings.Contains(string(b), fmt.Sprintf(`"omitted":%d`, want)) {
		t.Errorf("JSON lacks the omitted count: %s", b)
	}
	if s := r.String(); !strings.Contains(s, fmt.Sprintf("(+%d left out)", want)) {
		t.Errorf("waterfall lacks the omitted count:\n%s", s)
	}
	// A report without the field (an older one) still decodes.
	old, _ := json.Marshal(sampleReport())
	if strings.Contains(string(old), "omitted") {
		t.Errorf("omitted is written when zero: %s", old)
	}
}
