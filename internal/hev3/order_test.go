package hev3

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// Tests of the order of attempts added for issue 16: the diagonal
// protocol × family order, the WebTransport order, RFC 6724 destination
// address selection (draft §5.3), the shuffle of equal SvcPriority (§5.2)
// and the preferred family from connectivity (§4.1, §4.2).

// h3h2h1 is the record most servers publish ("1 . alpn=h3,h2" with the
// default http/1.1): QUIC and one TCP attempt offering h2 and http/1.1.
func h3h2h1() ServiceInfo { return rec(1, ".", "h3", "h2", "http/1.1") }

// Issue 16: with h3 preferred but not required, the first round is h3 on
// the preferred family, TCP on the other, h3 on the other, TCP on the
// preferred, so that blocked UDP and broken IPv6 each cost one attempt
// delay. The reference crate (and the old order) dealt h3 on both
// families first: TCP waited two delays when UDP was blocked.
func TestDiagonalOrder(t *testing.T) {
	for _, need := range []Need{NeedTransport, NeedHTTP, NeedWebSocket} {
		t.Run(fmt.Sprintf("need %d", need), func(t *testing.T) {
			cfg := config()
			cfg.Need = need
			r := newRace(t, cfg).queries()
			r.https(0, 0, h3h2h1()).addrs(0, 1, v6, v6b).addrs(0, 2, v4, v4b)
			r.expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(250 * ms)
			r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(500 * ms)
			r.at(500 * ms).expect("attempt 5 192.0.2.1:443 h3").wakeAt(750 * ms)
			r.at(750 * ms).expect("attempt 6 [2001:db8::1]:443 h2,h1").wakeAt(1000 * ms)
			// The next round again starts with h3 on the preferred family.
			r.at(1000 * ms).expect("attempt 7 [2001:db8::2]:443 h3").wakeAt(1250 * ms)
			r.at(1250 * ms).expect("attempt 8 192.0.2.2:443 h2,h1")
		})
	}
}

// Issue 16, blocked UDP: QUIC attempts never answer; TCP starts at the
// second slot (250 ms, not 500 ms) and wins.
func TestDiagonalUDPBlocked(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, h3h2h1()).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(300*ms, 4, H2).expect("cancel 3 lost", "succeed 4")
}

// Issue 16, broken IPv6: IPv6 attempts never answer; IPv4 over TCP (which
// works whatever UDP does) starts at the second slot and wins.
func TestDiagonalIPv6Broken(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, h3h2h1()).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.at(500 * ms).expect("attempt 5 192.0.2.1:443 h3")
	r.connected(510*ms, 4, H2).expect("cancel 3 lost", "cancel 5 lost", "succeed 4")
}

// The diagonal also applies to QUIC known from Alt-Svc on the origin's
// addresses (no HTTPS record), with IPv4 preferred too.
func TestDiagonalKnownH3PreferIPv4(t *testing.T) {
	cfg := config()
	cfg.KnownH3, cfg.Prefer = true, IPv4
	r := resolved(t, cfg, list(v6), list(v4))
	want := []string{
		"attempt 3 192.0.2.1:443 h3",
		"attempt 4 [2001:db8::1]:443 h2,h1",
		"attempt 5 [2001:db8::1]:443 h3",
		"attempt 6 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// WebTransport keeps h3 on both families before TCP: datagrams exist only
// on h3. With IPv6 broken, h3 on IPv4 starts at the second slot and wins
// (a diagonal order would start TCP there and hand the session to h2).
// With UDP blocked, TCP waits two slots and goes on the preferred family
// first. (The order is the old one: a guard that the diagonal and pick
// leave WebTransport alone.)
func TestWebTransportOrder(t *testing.T) {
	cfg := sessionConfig(NeedWebTransport, AllVersions)
	r := newRace(t, cfg).queries()
	r.https(0, 0, h3h2h1()).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h3").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2").wakeAt(750 * ms)
	r.at(750 * ms).expect("attempt 6 192.0.2.1:443 h2").idle()

	// IPv6 broken: the IPv4 h3 attempt wins with datagrams.
	r = newRace(t, cfg).queries()
	r.https(0, 0, h3h2h1()).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h3")
	r.connected(300*ms, 4, H3).settings(310*ms, 4, wtH3).expect("cancel 3 lost", "succeed 4")
}

// WebTransport with a late HTTPS answer: the running TCP attempt on IPv6
// counts for the family only; h3 is not overtaken by TCP.
func TestWebTransportLateHTTPS(t *testing.T) {
	r := newRace(t, sessionConfig(NeedWebTransport, AllVersions)).queries()
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(300 * ms)
	r.https(100*ms, 0, h3h2h1()).expect().wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 192.0.2.1:443 h3").wakeAt(550 * ms)
	r.at(550 * ms).expect("attempt 5 [2001:db8::1]:443 h3").wakeAt(800 * ms)
	r.at(800 * ms).expect("attempt 6 192.0.2.1:443 h2").idle()
}

// Draft §7: a late answer is placed as if it had been there from the
// start, so family interleaving holds: a late A answer's address goes
// next, ahead of the remaining IPv6 addresses. (A guard: the old machine
// did this too; pick must keep it.)
func TestLateAnswerKeepsInterleaving(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 1, v6, v6b, v6c).expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.addrs(100*ms, 2, v4).expect().wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1")
}

// A late HTTPS answer arriving after attempts on both families: only the
// transport is new, and the static order holds (a guard: pick changes
// nothing once both families were tried).
func TestLateHTTPSAfterBothFamilies(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.at(300 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
	r.https(400*ms, 0, h3h2h1()).expect().wakeAt(550 * ms)
	r.at(550 * ms).expect("attempt 5 [2001:db8::1]:443 h3").wakeAt(800 * ms)
	r.at(800 * ms).expect("attempt 6 192.0.2.1:443 h3").idle()
}

// RFC 6724 rule 6 (precedence, §2.1 policy table; draft §5.3 MUST): native
// IPv6 before 6to4 (2002::/16) and Teredo (2001::/32), whatever the DNS
// order.
func TestRFC6724Precedence(t *testing.T) {
	const sixToFour, teredo = "2002:c000:201::1", "2001:0:4136:e378::1"
	r := newRace(t, config()).queries()
	r.negative(0, 0).nodata(0, 2).addrs(0, 1, teredo, sixToFour, v6)
	want := []string{
		"attempt 3 [2001:db8::1]:443 h2,h1",
		"attempt 4 [2002:c000:201::1]:443 h2,h1",
		"attempt 5 [2001:0:4136:e378::1]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// RFC 6724 rule 6 across families: IPv4 (precedence 35) ranks above a
// unique local (3), 6to4 (30) or Teredo (5) IPv6 address, so IPv4 goes
// first even with IPv6 preferred; with a native IPv6 address, IPv6 first.
func TestRFC6724FirstFamily(t *testing.T) {
	for _, tt := range []struct {
		aaaa []string
		want []string
	}{
		{list("fd00::1"), list("attempt 3 192.0.2.1:443 h2,h1", "attempt 4 [fd00::1]:443 h2,h1")},
		{list("2002:c000:201::1"), list("attempt 3 192.0.2.1:443 h2,h1", "attempt 4 [2002:c000:201::1]:443 h2,h1")},
		{list("fd00::1", v6), list("attempt 3 [2001:db8::1]:443 h2,h1", "attempt 4 192.0.2.1:443 h2,h1", "attempt 5 [fd00::1]:443 h2,h1")},
	} {
		t.Run(tt.aaaa[0], func(t *testing.T) {
			r := resolved(t, config(), tt.aaaa, list(v4))
			r.expect(tt.want[0])
			r.chain(10*ms, 3, tt.want, "fail connect")
		})
	}
}

// RFC 6724 §10.3: preferring IPv4 raises its precedence to 100, above even
// the IPv6 loopback (a guard: Prefer keeps deciding the first family).
func TestRFC6724PreferIPv4(t *testing.T) {
	cfg := config()
	cfg.Prefer = IPv4
	r := resolved(t, cfg, list("::1"), list(v4))
	r.expect("attempt 3 192.0.2.1:443 h2,h1")
}

// RFC 6724 rule 8 (smaller scope first): loopback and link-local
// addresses before global ones of the same precedence.
func TestRFC6724Scope(t *testing.T) {
	r := resolved(t, config(), list(v6, "fe80::1"), list(v4, "169.254.1.1", "127.0.0.1"))
	// 169.254.1.1 and 127.0.0.1 are both link-local scope: DNS order
	// between them, both before 192.0.2.1.
	want := []string{
		"attempt 3 [fe80::1]:443 h2,h1",
		"attempt 4 169.254.1.1:443 h2,h1",
		"attempt 5 [2001:db8::1]:443 h2,h1",
		"attempt 6 127.0.0.1:443 h2,h1",
		"attempt 7 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// Hints sort after resolved addresses of their family, then by RFC 6724
// among themselves.
func TestRFC6724Hints(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, ".", "h2"), "2002:c000:201::1", v6b)).addrs(0, 1, v6).nodata(0, 2)
	want := []string{
		"attempt 3 [2001:db8::1]:443 h2",
		"attempt 4 [2001:db8::2]:443 h2 hint",
		"attempt 5 [2002:c000:201::1]:443 h2 hint",
		"attempt 6 [2001:db8::1]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// With the host's addresses known (Config.LocalAddrs), the rules that need
// a source address apply.
func TestRFC6724LocalAddrs(t *testing.T) {
	// Rule 2: IPv6 only link-local on the host, so a global IPv6
	// destination has no source of matching scope; IPv4 has one.
	t.Run("rule 2", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("fe80::5", "192.0.2.100", "::1", "127.0.0.1")
		r := resolved(t, cfg, list(v6), list(v4))
		r.expect("attempt 3 192.0.2.1:443 h2,h1")
	})
	// Rule 5: a unique local source labels differently from a global
	// destination; the IPv4 source matches IPv4.
	t.Run("rule 5", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("fd00::5", "192.0.2.100")
		r := resolved(t, cfg, list(v6), list(v4))
		r.expect("attempt 3 192.0.2.1:443 h2,h1")
	})
	// Both families global: IPv6 first, as without local addresses.
	t.Run("dual stack", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("2001:db8:ff::5", "192.0.2.100")
		r := resolved(t, cfg, list(v6), list(v4))
		r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	})
	// Rule 9 (IPv6 only): the destination sharing the longer prefix with
	// its source first.
	t.Run("rule 9", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("2001:db8:2::5")
		r := resolved(t, cfg, list("2001:db8:1::1", "2001:db8:2::1"), nil)
		r.expect("attempt 3 [2001:db8:2::1]:443 h2,h1")
	})
	// Rule 9 is not applied to IPv4: DNS order (round robin) holds.
	t.Run("rule 9 IPv4", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("192.0.2.100")
		r := resolved(t, cfg, nil, list("198.51.100.1", v4))
		r.expect("attempt 3 198.51.100.1:443 h2,h1")
	})
	// Rule 1: no IPv6 source at all: IPv6 endpoints after every IPv4 one,
	// the fallback tier's included.
	t.Run("rule 1", func(t *testing.T) {
		cfg := config()
		cfg.LocalAddrs = parseAddrs("192.0.2.100", "127.0.0.1")
		r := newRace(t, cfg).queries()
		r.https(0, 0, rec(1, ".", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4)
		want := []string{
			"attempt 3 192.0.2.1:443 h3",
			"attempt 4 192.0.2.1:443 h2",
			"attempt 5 192.0.2.1:443 h2,h1",
			"attempt 6 [2001:db8::1]:443 h3",
			"attempt 7 [2001:db8::1]:443 h2",
			"attempt 8 [2001:db8::1]:443 h2,h1",
		}
		r.expect(want[0])
		r.chain(10*ms, 3, want, "fail connect")
	})
}

// Source selection (RFC 6724 §5) and the rule helpers on their own.
func TestRFC6724Helpers(t *testing.T) {
	m := New(Config{Host: "example.com", LocalAddrs: parseAddrs(
		"::1", "fe80::1", "fd00::1", "2001:db8:1::1", "2001:db8:2::1", "127.0.0.1", "192.0.2.9", "0.0.0.0", "ff02::1")}, base)
	for _, tt := range []struct{ dst, src string }{
		{"::1", "::1"},                     // rule 1: the same address
		{"fe80::9", "fe80::1"},             // rule 2: the smallest scope that fits
		{"2001:db8:2::9", "2001:db8:2::1"}, // rule 8: longest matching prefix
		{"fd00::9", "fd00::1"},             // rule 6: matching label
		{"2001:db8:4::9", "2001:db8:1::1"}, // a tie (45 bits each): the first
		{"198.51.100.1", "192.0.2.9"},      // rule 2: global over loopback
		{"127.0.0.5", "127.0.0.1"},
	} {
		src, ok := m.source(netip.MustParseAddr(tt.dst))
		if !ok || src.String() != tt.src {
			t.Errorf("source(%s) = %v, %v; want %s", tt.dst, src, ok, tt.src)
		}
	}
	if len(m.local) != 7 {
		t.Errorf("kept %d local addresses, want 7 (no unspecified, no multicast)", len(m.local))
	}
	for _, tt := range []struct {
		addr  string
		scope uint8
		prec  uint8
	}{
		{"::1", scopeLinkLocal, 50},
		{"127.0.0.1", scopeLinkLocal, 35},
		{"169.254.0.1", scopeLinkLocal, 35},
		{"fe80::1", scopeLinkLocal, 40},
		{"fec0::1", scopeSiteLocal, 1},
		{"ff05::1", scopeSiteLocal, 40},
		{"fd00::1", scopeGlobal, 3},
		{"::ffff:192.0.2.1", scopeGlobal, 35},
		{"::192.0.2.1", scopeGlobal, 1},
		{"3ffe::1", scopeGlobal, 1},
		{"2001::1", scopeGlobal, 5},
	} {
		a := netip.MustParseAddr(tt.addr)
		if s, p := scopeOf(a), classify(a).prec; s != tt.scope || p != tt.prec {
			t.Errorf("%s: scope %#x precedence %d, want %#x %d", tt.addr, s, p, tt.scope, tt.prec)
		}
	}
	if n := commonPrefixLen(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")); n != 64 {
		t.Errorf("commonPrefixLen capped at %d, want 64", n)
	}
	if n := commonPrefixLen(netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db9::")); n != 31 {
		t.Errorf("commonPrefixLen = %d, want 31", n)
	}
}

// Draft §5.2: records of equal SvcPriority are shuffled by Config.Shuffle;
// priorities still order the groups. Without Shuffle the answer's order
// is kept (the other tests).
func TestShuffleEqualPriority(t *testing.T) {
	var runs []int
	cfg := config()
	cfg.Shuffle = func(n int, swap func(i, j int)) { // reverse: deterministic
		runs = append(runs, n)
		for i := range n / 2 {
			swap(i, n-1-i)
		}
	}
	r := newRace(t, cfg).queries()
	r.https(0, 0,
		withPort(rec(2, ".", "h2"), 2001),
		withPort(rec(1, ".", "h2"), 1001),
		withPort(rec(1, ".", "h2"), 1002),
		withPort(rec(1, ".", "h2"), 1003),
		withPort(rec(2, ".", "h2"), 2002),
		withPort(rec(3, ".", "h2"), 3001),
	).addrs(0, 1, v6).nodata(0, 2)
	want := []string{
		"attempt 3 [2001:db8::1]:1003 h2",
		"attempt 4 [2001:db8::1]:1002 h2",
		"attempt 5 [2001:db8::1]:1001 h2",
		"attempt 6 [2001:db8::1]:2002 h2",
		"attempt 7 [2001:db8::1]:2001 h2",
		"attempt 8 [2001:db8::1]:3001 h2",
		"attempt 9 [2001:db8::1]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
	if !slices.Equal(runs, []int{3, 2}) {
		t.Errorf("Shuffle called for runs %v, want [3 2]", runs)
	}
}

// The shuffle decides which target names are resolved, too: they follow
// the shuffled order.
func TestShuffleTargets(t *testing.T) {
	cfg := config()
	cfg.Shuffle = func(n int, swap func(i, j int)) { swap(0, n-1) }
	r := newRace(t, cfg).queries()
	r.https(0, 0, rec(1, "a.example.net", "h2"), rec(1, "b.example.net", "h2")).
		expect("query 3 AAAA b.example.net", "query 4 A b.example.net",
			"query 5 AAAA a.example.net", "query 6 A a.example.net")
}

// Draft §4.1 and §4.2: an IPv4-only host asks no AAAA, prefers IPv4
// whatever Prefer says, and starts as soon as A and HTTPS are in, without
// a resolution delay. The old machine waited 50 ms for an AAAA answer
// that could not help.
func TestConnectivityIPv4Only(t *testing.T) {
	cfg := config()
	cfg.Connectivity = HaveIPv4
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 A example.com").idle()
	r.addrs(5*ms, 1, v4, v4b).expect().wakeAt(55 * ms)
	r.https(10*ms, 0, withHints(rec(1, ".", "h3", "h2"), v6)).
		expect("attempt 2 192.0.2.1:443 h3").wakeAt(260 * ms)
	// The IPv6 hint is tried only after every IPv4 endpoint.
	want := []string{
		"attempt 2 192.0.2.1:443 h3",
		"attempt 3 192.0.2.1:443 h2",
		"attempt 4 192.0.2.2:443 h3",
		"attempt 5 192.0.2.2:443 h2",
		"attempt 6 192.0.2.1:443 h2,h1",
		"attempt 7 192.0.2.2:443 h2,h1",
		"attempt 8 [2001:db8::1]:443 h3 hint",
		"attempt 9 [2001:db8::1]:443 h2 hint",
	}
	r.chain(20*ms, 2, want, "fail connect")
}

// The same host with only an IPv6 hint and A still pending: the hint
// (unusable, RFC 6724 rule 1) waits for the resolution delay, like an
// avoided address, then is tried.
func TestConnectivityUnusableHintWaits(t *testing.T) {
	cfg := config()
	cfg.Connectivity = HaveIPv4
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 A example.com")
	r.https(0, 0, withHints(rec(1, ".", "h2"), v6)).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 2 [2001:db8::1]:443 h2 hint")
}

// An IPv6-only host asks no A (the machine synthesizes no NAT64
// addresses, draft §8) and prefers IPv6 even when told to prefer IPv4.
func TestConnectivityIPv6Only(t *testing.T) {
	cfg := config()
	cfg.Connectivity, cfg.Prefer = HaveIPv6, IPv4
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 AAAA example.com").idle()
	r.negative(0, 0).addrs(0, 1, v6).expect("attempt 2 [2001:db8::1]:443 h2,h1").idle()
	r.failed(10*ms, 2).expect("fail connect")
}

// Both families, or zero (unknown), change nothing; OnlyFamily wins over
// connectivity.
func TestConnectivityBothOrOnly(t *testing.T) {
	for _, c := range []Families{0, HaveIPv6 | HaveIPv4} {
		cfg := config()
		cfg.Connectivity = c
		newRace(t, cfg).queries()
	}
	cfg := config()
	cfg.Connectivity = HaveIPv4
	cfg.OnlyFamily, cfg.Only = true, IPv6
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 AAAA example.com")
	r.negative(0, 0).addrs(0, 1, v6).expect("attempt 2 [2001:db8::1]:443 h2,h1")
}
