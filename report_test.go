package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
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
			{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h1", Family: "IPv4", Start: 252 * time.Millisecond, Connected: 255 * time.Millisecond, End: 255 * time.Millisecond, Version: "h1", Outcome: "won"},
		},
		Winner: 1,
		Reason: "h1 127.0.0.1:443 won",
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
	if len(lines) != 1+3+2+1 {
		t.Fatalf("want 7 lines, got %d:\n%s", len(lines), s)
	}
	if !strings.HasPrefix(lines[5], "* h1    127.0.0.1:443") || strings.HasPrefix(lines[4], "*") {
		t.Errorf("winner not marked:\n%s", s)
	}
	for _, want := range []string{"SERVFAIL", "alpn=h2 port=8443", "::1", "lost", "=> h1 127.0.0.1:443 won"} {
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
