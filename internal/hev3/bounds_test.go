package hev3

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of the bounds in bounds.go: what one race takes from DNS answers,
// how many queries it sends and has in flight, how many attempts it
// makes, and that a Poll without a new input does not rebuild the
// endpoint list.

// drain fails every attempt as soon as it starts, polling from base and
// following the wake times (attempts are MinAttemptDelay apart), and
// returns the attempts in order as "addr proto", and the final action.
func drain(t *testing.T, m *Machine) ([]string, string) {
	t.Helper()
	var got []string
	now := base
	for range 10000 {
		acts, wake := m.Poll(now)
		for _, a := range acts {
			switch a := a.(type) {
			case StartAttempt:
				got = append(got, fmt.Sprintf("%s %s", a.Endpoint.Addr, a.Endpoint.Proto))
				m.OnFailed(now, a.ID, errTest)
			case Fail, Succeed:
				return got, describe(a)
			}
		}
		if m.Done() {
			break
		}
		if !wake.IsZero() {
			now = wake
		}
	}
	t.Fatalf("the race did not end after %d attempts", len(got))
	return nil, ""
}

// seqAddrs returns n distinct addresses of family f (documentation and
// benchmarking ranges).
func seqAddrs(f Family, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		if f == IPv4 {
			out[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		} else {
			out[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
	}
	return out
}

// Only the MaxServices records of lowest SvcPriority are used (RFC 9460
// §2.4.1: lower values are preferred), whatever their order in the answer.
func TestBoundServices(t *testing.T) {
	const n = MaxServices + 5
	var recs []ServiceInfo
	for i := range n {
		prio := uint16(n - i) // worst first
		recs = append(recs, withPort(rec(prio, "", "h2"), 8000+prio))
	}
	m := New(config(), base)
	m.Poll(base)
	m.OnDNS(base, 0, Answer{Services: recs})
	m.OnDNS(base, 1, Answer{Addrs: parseAddrs(v6)})
	m.OnDNS(base, 2, Answer{})
	got, end := drain(t, m)
	var want []string
	for p := 1; p <= MaxServices; p++ {
		want = append(want, fmt.Sprintf("[%s]:%d h2", v6, 8000+p))
	}
	want = append(want, fmt.Sprintf("[%s]:443 h2,h1", v6)) // the fallback tier
	if !slices.Equal(got, want) || end != "fail connect" {
		t.Errorf("attempts\n\t%s\nthen %s, want\n\t%s\nthen fail connect", strings.Join(got, "\n\t"), end, strings.Join(want, "\n\t"))
	}
}

// AliasMode records (SvcPriority 0) are the resolver's to follow; one that
// reaches the machine is ignored (RFC 9460 §2.4.1).
func TestBoundAliasRecordIgnored(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(0, "alias.example.net", "h3"), v6b), rec(1, "", "h2")).addrs(0, 1, v6).nodata(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
}

// The addresses of at most MaxTargets distinct TargetNames are asked
// for, in SvcPriority order; a record beyond is used through its hints.
// Records sharing a target, and the origin itself, cost no query.
func TestBoundTargets(t *testing.T) {
	var recs []ServiceInfo
	for i := range MaxTargets + 3 {
		recs = append(recs, rec(uint16(i+1), fmt.Sprintf("t%d.example.net", i), "h2"))
	}
	recs = append(recs, rec(20, "T0.example.net.", "h2"), rec(21, ".", "h2"), withHints(rec(22, "late.example.net", "h2"), v4c))
	r := newRace(t, config()).queries()
	r.nodata(0, 1).nodata(0, 2).https(0, 0, recs...)
	var want []string
	for i := range MaxTargets {
		want = append(want, fmt.Sprintf("query %d AAAA t%d.example.net", 3+2*i, i), fmt.Sprintf("query %d A t%d.example.net", 4+2*i, i))
	}
	// The hint of the record beyond the bound is an address at once.
	attempt := 3 + 2*MaxTargets
	want = append(want, fmt.Sprintf("attempt %d %s:443 h2 hint", attempt, v4c))
	r.expect(want...).idle()
	r.failed(10*ms, attempt).expect().idle()
	// Every query answered: none follows, and the race ends.
	for id := 3; id < attempt; id++ {
		r.nodata(20*ms, id)
	}
	r.expect("fail connect")
}

// At most Config.MaxLiveQueries queries are in flight (DefaultMaxLiveQueries
// when zero); the others wait, in order, and are sent as answers come.
func TestBoundLiveQueries(t *testing.T) {
	if DefaultMaxLiveQueries != 8 || MaxTargets != 4 {
		t.Skip("the expected actions below are written for 8 queries in flight and 4 targets")
	}
	recs := []ServiceInfo{rec(1, "t0.example.net", "h2"), rec(2, "t1.example.net", "h2"), rec(3, "t2.example.net", "h2"), rec(4, "t3.example.net", "h2")}
	r := newRace(t, config()).queries()
	// Two origin queries are in flight: six of the eight target queries go.
	r.https(0, 0, recs...).expect(
		"query 3 AAAA t0.example.net", "query 4 A t0.example.net",
		"query 5 AAAA t1.example.net", "query 6 A t1.example.net",
		"query 7 AAAA t2.example.net", "query 8 A t2.example.net",
	).idle()
	r.nodata(10*ms, 5).expect("query 9 AAAA t3.example.net").idle()
	r.nodata(20*ms, 1).expect("query 10 A t3.example.net").idle()
	// An answer to a query that was never sent is ignored.
	r.addrs(30*ms, 11, v6).expect().idle()
	r.addrs(30*ms, 10, v4).expect("attempt 11 192.0.2.1:443 h2").idle()

	// One query at a time: the origin's too.
	cfg := config()
	cfg.MaxLiveQueries = 1
	r = newRace(t, cfg).expect("query 0 HTTPS example.com").idle()
	r.negative(0, 0).expect("query 1 AAAA example.com").idle()
	r.addrs(1*ms, 1, v6).expect("query 2 A example.com", "attempt 3 [2001:db8::1]:443 h2,h1").idle()
}

// Each record's hints are taken up to MaxHints per family, without
// duplicates and without the other family's addresses.
func TestBoundHints(t *testing.T) {
	v6s, v4s := seqAddrs(IPv6, MaxHints+10), seqAddrs(IPv4, MaxHints+10)
	s := rec(1, "", "h2")
	s.IPv6Hints = append([]netip.Addr{v6s[0], v6s[0], netip.MustParseAddr(v4)}, v6s...)
	s.IPv4Hints = append([]netip.Addr{v4s[0], {}}, v4s...)
	m := New(config(), base)
	m.Poll(base)
	m.OnDNS(base, 0, Answer{Services: []ServiceInfo{s}})
	m.OnDNS(base, 1, Answer{})
	m.OnDNS(base, 2, Answer{})
	got, end := drain(t, m)
	var want []string
	for i := range MaxHints {
		want = append(want, fmt.Sprintf("[%s]:443 h2", v6s[i]), fmt.Sprintf("%s:443 h2", v4s[i]))
	}
	if !slices.Equal(got, want) || end != "fail connect" {
		t.Errorf("attempts\n\t%s\nthen %s, want\n\t%s\nthen fail connect", strings.Join(got, "\n\t"), end, strings.Join(want, "\n\t"))
	}
}

// An A or AAAA answer gives at most MaxAddrs addresses of its family,
// without duplicates.
func TestBoundAddrs(t *testing.T) {
	v6s, v4s := seqAddrs(IPv6, MaxAddrs+30), seqAddrs(IPv4, MaxAddrs+30)
	m := New(config(), base)
	m.Poll(base)
	m.OnDNS(base, 0, Answer{Err: errTest})
	m.OnDNS(base, 1, Answer{Addrs: append([]netip.Addr{v6s[1], v6s[1]}, v6s...)})
	m.OnDNS(base, 2, Answer{Addrs: append(slices.Clone(v6s[:3]), v4s...)})
	got, end := drain(t, m)
	var want []string
	six := append([]netip.Addr{v6s[1], v6s[0]}, v6s[2:MaxAddrs]...)
	for i := range MaxAddrs {
		want = append(want, fmt.Sprintf("[%s]:443 h2,h1", six[i]), fmt.Sprintf("%s:443 h2,h1", v4s[i]))
	}
	if !slices.Equal(got, want) || end != "fail connect" {
		t.Errorf("attempts\n\t%s\nthen %s, want\n\t%s\nthen fail connect", strings.Join(got, "\n\t"), end, strings.Join(want, "\n\t"))
	}
}

// A race makes at most MaxAttempts attempts, then fails once the live
// ones have ended, even with endpoints left.
func TestBoundAttempts(t *testing.T) {
	var recs []ServiceInfo
	for i := range MaxServices {
		s := withPort(rec(uint16(i+1), "", "h3", "h2"), uint16(9000+i))
		s.IPv6Hints, s.IPv4Hints = seqAddrs(IPv6, MaxHints), seqAddrs(IPv4, MaxHints)
		recs = append(recs, s)
	}
	m := New(config(), base)
	m.Poll(base)
	m.OnDNS(base, 0, Answer{Services: recs})
	m.OnDNS(base, 1, Answer{})
	m.OnDNS(base, 2, Answer{})
	if n := len(m.pending()); n <= MaxAttempts {
		t.Fatalf("%d endpoints: the test needs more than %d", n, MaxAttempts)
	}
	got, end := drain(t, m)
	if len(got) != MaxAttempts || end != "fail connect" {
		t.Errorf("%d attempts then %s, want %d then fail connect", len(got), end, MaxAttempts)
	}

	// The last attempt live: no Fail until it ends.
	m = New(config(), base)
	m.Poll(base)
	m.OnDNS(base, 0, Answer{Services: recs})
	m.OnDNS(base, 1, Answer{})
	m.OnDNS(base, 2, Answer{})
	last := -1
	now := base
	for n := 0; n < MaxAttempts; now = now.Add(MinAttemptDelay) {
		acts, _ := m.Poll(now)
		for _, a := range acts {
			if s, ok := a.(StartAttempt); ok {
				n++
				last = s.ID
				if n < MaxAttempts {
					m.OnFailed(now, s.ID, errTest)
				}
			}
		}
	}
	if acts, wake := m.Poll(now.Add(10 * ms)); len(acts) != 0 || !wake.IsZero() {
		t.Fatalf("with the last attempt live: %v, wake %v", describeAll(acts), wake)
	}
	m.OnFailed(now.Add(20*ms), last, errTest)
	if acts, _ := m.Poll(now.Add(20 * ms)); !slices.Equal(describeAll(acts), []string{"fail connect"}) {
		t.Errorf("after the last attempt failed: %v", describeAll(acts))
	}
}

// The endpoint list is rebuilt when an input changes it, never by a Poll
// alone; with 4,000 hints it holds only the bounded ones.
func TestPollIncremental(t *testing.T) {
	v6s, v4s := manyHints(4000)
	m := hintRace(v6s, v4s)
	m.Poll(base)
	n := m.rebuilds
	for i := range 100 {
		m.Poll(base.Add(time.Duration(i) * ms))
	}
	if m.rebuilds != n {
		t.Errorf("100 Polls without input rebuilt the endpoint list %d times", m.rebuilds-n)
	}
	if len(m.pend) > 2*MaxHints {
		t.Errorf("%d endpoints pending, want at most %d", len(m.pend), 2*MaxHints)
	}
}
