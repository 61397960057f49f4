package hev3

import (
	"testing"
	"time"
)

// chain fails each attempt MinAttemptDelay after the previous failure and
// expects the next one at once, then expects final after the last
// failure. The first failure is at d, at least MinAttemptDelay after the
// first attempt started. (Draft §6: attempts never start within 10 ms of
// each other, however fast the previous one failed.)
func (r *race) chain(d time.Duration, first int, want []string, final ...string) *race {
	r.t.Helper()
	for i := range want {
		id := first + i
		at := d + time.Duration(i)*MinAttemptDelay
		if i+1 < len(want) {
			r.failed(at, id).expect(want[i+1])
		} else {
			r.failed(at, id).expect(final...)
		}
	}
	return r
}

// §5.4 #36: ECH is attached to the record's endpoints.
func TestECHPropagated(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withECH(withHints(rec(1, "", "h3", "h2"), v6), "E")).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h3 ech=E hint").wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 [2001:db8::1]:443 h2 ech=E hint").idle()
	// The resolved origin address is the same endpoint: not retried, and
	// no fallback tier.
	r.addrs(310*ms, 1, v6).nodata(310*ms, 2).expect().idle()
	r.failed(320*ms, 3).failed(320*ms, 4).expect("fail connect")
}

// §5.4 #37: hints stay as addresses after a negative answer for their
// family, interleaved with the other family (diagonally, issue 16).
func TestHintsKeptOnNegativeAnswer(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 2, v4).negative(0, 1).https(0, 0, withHints(rec(1, "", "h3", "h2"), v6))
	r.expect("attempt 3 [2001:db8::1]:443 h3 hint").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 192.0.2.1:443 h3").wakeAt(750 * ms)
	r.at(750 * ms).expect("attempt 6 [2001:db8::1]:443 h2 hint").wakeAt(1000 * ms)
	r.at(1000 * ms).expect("attempt 7 192.0.2.1:443 h2,h1").idle()

	cfg := config()
	cfg.Prefer = IPv4
	r = newRace(t, cfg).queries()
	r.addrs(0, 1, v6).negative(0, 2).https(0, 0, withHints(rec(1, "", "h3", "h2"), v4))
	r.expect("attempt 3 192.0.2.1:443 h3 hint").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::1]:443 h2").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h3").wakeAt(750 * ms)
	r.at(750 * ms).expect("attempt 6 192.0.2.1:443 h2 hint").wakeAt(1000 * ms)
	r.at(1000 * ms).expect("attempt 7 [2001:db8::1]:443 h2,h1").idle()
}

// §5.4 #38: hints come after the resolved addresses.
func TestHintsAfterResolvedAddresses(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, "", "h2"), v6b)).addrs(0, 1, v6).negative(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::2]:443 h2 hint").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2,h1").idle()
}

// §5.4 #39: a hint equal to a resolved address is not attempted twice.
func TestHintEqualToResolvedAddress(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, "", "h2"), v6)).addrs(0, 1, v6).negative(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1").idle()
	r.at(500 * ms).expect().idle()
}

// §5.4 #43: with ECH on one record only, the other record, its target and
// the fallback tier are dropped.
func TestPartialECH(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0,
		withPort(withECH(rec(1, "svc1.example.com", "h3"), "E"), 9443),
		withPort(rec(2, "svc2.example.com", "h2"), 10443),
	).expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com").idle()
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().idle()
	r.negative(10*ms, 3).addrs(20*ms, 4, v4b).expect("attempt 5 192.0.2.2:9443 h3 ech=E").idle()
	r.failed(30*ms, 5).expect("fail connect").done(true)
}

// §5.4 #44: both records with ECH: both used by priority, never the origin
// fallback.
func TestAllRecordsECH(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0,
		withPort(withECH(rec(2, ".", "h2"), "B"), 10443),
		withPort(withECH(rec(1, "svc1.example.com", "h3"), "A"), 9443),
	).expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com").idle()
	r.negative(0, 3).addrs(0, 4, v4b).negative(0, 1).addrs(0, 2, v4)
	r.expect("attempt 5 192.0.2.2:9443 h3 ech=A").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 6 192.0.2.1:10443 h2 ech=B").idle()
	r.failed(260*ms, 5).failed(260*ms, 6).expect("fail connect")
}

// §5.4 #45: each record uses its own ALPN set.
func TestPerRecordALPN(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "svc1.example.com", "h3"), rec(2, "svc2.example.com", "h2")).expect(
		"query 3 AAAA svc1.example.com", "query 4 A svc1.example.com",
		"query 5 AAAA svc2.example.com", "query 6 A svc2.example.com",
	).idle()
	r.addrs(0, 3, v6b).negative(0, 4).addrs(0, 5, v6c).negative(0, 6).addrs(0, 1, v6).negative(0, 2)
	r.expect("attempt 7 [2001:db8::2]:443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 8 [2001:db8::3]:443 h2").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 9 [2001:db8::1]:443 h2,h1").idle()
}

// §5.4 #46: a record without a usable ALPN gives no endpoints; its target
// is not even resolved.
func TestRecordWithoutALPN(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0,
		rec(1, "svc1.example.com", "h3"),
		withHints(rec(2, "svc2.example.com"), v6c),
		withHints(rec(3, "svc3.example.com", "h3-29", "spdy/3"), v6c),
	).expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com").idle()
	r.addrs(0, 3, v6b).negative(0, 4).addrs(0, 1, v6).negative(0, 2)
	r.expect("attempt 5 [2001:db8::2]:443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 6 [2001:db8::1]:443 h2,h1").idle()
	r.failed(260*ms, 5).failed(260*ms, 6).expect("fail connect")
}

// §5.4 #48: the port SvcParam applies to hints.
func TestPortAppliesToHints(t *testing.T) {
	for _, hints := range [][]string{{v6}, {v4, v6}} {
		r := newRace(t, config()).queries()
		r.https(0, 0, withPort(withHints(rec(1, "", "h3", "h2"), hints...), 8443)).expect().wakeAt(50 * ms)
		r.at(50 * ms).expect("attempt 3 [2001:db8::1]:8443 h3 hint")
	}
}

// §5.4 #49: the port SvcParam applies to resolved addresses.
func TestPortAppliesToResolved(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withPort(rec(1, "", "h3", "h2"), 8443)).addrs(0, 1, v6).
		expect("attempt 3 [2001:db8::1]:8443 h3").wakeAt(250 * ms)
	r.addrs(10*ms, 2, v4).expect().wakeAt(250 * ms)
	r.failed(20*ms, 3).expect("attempt 4 192.0.2.1:8443 h2")
}

// §5.4 #50: the record's port applies to its endpoints; fallback stays on
// the origin's port.
func TestPortFallbackOnOriginPort(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withPort(rec(1, "", "h3", "h2"), 8443)).addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:8443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:8443 h2").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 192.0.2.1:8443 h3").wakeAt(750 * ms)
	r.at(750 * ms).expect("attempt 6 [2001:db8::1]:8443 h2").wakeAt(1000 * ms)
	r.at(1000 * ms).expect("attempt 7 [2001:db8::1]:443 h2,h1").wakeAt(1250 * ms)
	r.at(1250 * ms).expect("attempt 8 192.0.2.1:443 h2,h1").idle()
}

// §5.4 #51: two records with different ports are tried record by record.
func TestTwoRecordsDifferentPorts(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0,
		withPort(rec(2, ".", "h3", "h2"), 20008),
		withPort(rec(1, ".", "h3", "h2"), 20007),
	).addrs(0, 1, v6).addrs(0, 2, v4)
	want := []string{
		"attempt 3 [2001:db8::1]:20007 h3",
		"attempt 4 192.0.2.1:20007 h2",
		"attempt 5 192.0.2.1:20007 h3",
		"attempt 6 [2001:db8::1]:20007 h2",
		"attempt 7 [2001:db8::1]:20008 h3",
		"attempt 8 192.0.2.1:20008 h2",
		"attempt 9 192.0.2.1:20008 h3",
		"attempt 10 [2001:db8::1]:20008 h2",
		"attempt 11 [2001:db8::1]:443 h2,h1",
		"attempt 12 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// §5.4 #52: failures chain through every endpoint without waiting for the
// attempt delay (but MinAttemptDelay apart), then the race fails.
func TestFailuresChain(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4)
	want := []string{
		"attempt 3 [2001:db8::1]:443 h3",
		"attempt 4 192.0.2.1:443 h2",
		"attempt 5 192.0.2.1:443 h3",
		"attempt 6 [2001:db8::1]:443 h2",
		"attempt 7 [2001:db8::1]:443 h2,h1",
		"attempt 8 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0]).wakeAt(250 * ms)
	r.chain(10*ms, 3, want, "fail connect").idle().done(true)
}

// §5.4 #53: a second record's target adds its own endpoints after the
// first record's.
func TestSecondTargetAddsEndpoints(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, ".", "h2", "h3"), rec(2, "svc1.example.com", "h2", "h3")).
		expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com")
	r.addrs(0, 3, v6b).addrs(0, 4, v4b).addrs(0, 1, v6).addrs(0, 2, v4)
	want := []string{
		"attempt 5 [2001:db8::1]:443 h3",
		"attempt 6 192.0.2.1:443 h2",
		"attempt 7 192.0.2.1:443 h3",
		"attempt 8 [2001:db8::1]:443 h2",
		"attempt 9 [2001:db8::2]:443 h3",
		"attempt 10 192.0.2.2:443 h2",
		"attempt 11 192.0.2.2:443 h3",
		"attempt 12 [2001:db8::2]:443 h2",
		"attempt 13 [2001:db8::1]:443 h2,h1",
		"attempt 14 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 5, want, "fail connect")
}

// §5.4 #55: a target name's addresses replace the origin's for its record.
func TestTargetNameAddresses(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "svc1.example.com", "h3")).
		expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com")
	r.addrs(0, 3, v6b).addrs(0, 4, v4b).addrs(0, 1, v6).addrs(0, 2, v4)
	want := []string{
		"attempt 5 [2001:db8::2]:443 h3",
		"attempt 6 192.0.2.2:443 h3",
		"attempt 7 [2001:db8::1]:443 h2,h1",
		"attempt 8 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 5, want, "fail connect")
}

// The origin's own addresses wait for a target's answers up to the
// resolution delay (RFC 9460 §3: the records' endpoints come before the
// fallback); a target's answers arriving after the race started are tried
// next.
func TestLateTargetAnswer(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "svc1.example.com", "h3")).
		expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com")
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 5 [2001:db8::1]:443 h2,h1").wakeAt(300 * ms)
	r.addrs(100*ms, 3, v6b).expect().wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 6 [2001:db8::2]:443 h3").wakeAt(550 * ms)
	r.at(550 * ms).expect("attempt 7 192.0.2.1:443 h2,h1").idle()
	// The target's A query still blocks failure.
	r.failed(560*ms, 5).failed(560*ms, 6).failed(560*ms, 7).expect().idle().done(false)
	r.negative(600*ms, 4).expect("fail connect")
}

// A target's answer within the resolution delay comes before the origin's
// own addresses, which came first.
func TestTargetBeforeFallback(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "cdn.example.com", "http/1.1")).
		expect("query 3 AAAA cdn.example.com", "query 4 A cdn.example.com")
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.addrs(20*ms, 3, v6b).expect("attempt 5 [2001:db8::2]:443 h2,h1").wakeAt(50 * ms)
	r.at(50 * ms).expect().wakeAt(270 * ms)
	r.at(270 * ms).expect("attempt 6 192.0.2.1:443 h2,h1").wakeAt(520 * ms)
}

// §5.4 #56: the fallback tier uses the origin port and TCP only.
func TestFallbackUsesDefaultVersions(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withPort(rec(1, ".", "h3"), 8443)).negative(0, 1).addrs(0, 2, v4)
	r.expect("attempt 3 192.0.2.1:8443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
}

// §5.4 #61: a "." target uses the origin's addresses without a query.
func TestRootTarget(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withECH(rec(1, ".", "h3"), "E")).expect().idle()
	r.addrs(0, 1, v6).addrs(0, 2, v4)
	r.expect("attempt 3 [2001:db8::1]:443 h3 ech=E").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h3 ech=E").idle()
}

// §5.4 #62: hints of a "." record follow the origin's addresses.
func TestRootTargetHints(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, ".", "h3"), v6b, v4b)).addrs(0, 1, v6).addrs(0, 2, v4)
	want := []string{
		"attempt 3 [2001:db8::1]:443 h3",
		"attempt 4 192.0.2.1:443 h3",
		"attempt 5 [2001:db8::2]:443 h3 hint",
		"attempt 6 192.0.2.2:443 h3 hint",
		"attempt 7 [2001:db8::1]:443 h2,h1",
		"attempt 8 192.0.2.1:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// §5.5 #79: KnownH3 (standing in for alt-svc h3) interleaves protocols and
// families, diagonally in the first round (issue 16: h3 on the preferred
// family, TCP on the other, h3 on the other, TCP on the preferred).
func TestInterleaveProtocolsAndFamilies(t *testing.T) {
	cfg := config()
	cfg.KnownH3 = true
	r := newRace(t, cfg).queries()
	r.negative(0, 0).addrs(0, 1, v6, v6b, v6c).addrs(0, 2, v4)
	want := []string{
		"attempt 3 [2001:db8::1]:443 h3",
		"attempt 4 192.0.2.1:443 h2,h1",
		"attempt 5 192.0.2.1:443 h3",
		"attempt 6 [2001:db8::1]:443 h2,h1",
		"attempt 7 [2001:db8::2]:443 h3",
		"attempt 8 [2001:db8::2]:443 h2,h1",
		"attempt 9 [2001:db8::3]:443 h3",
		"attempt 10 [2001:db8::3]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// §5.5 #80: the same with IPv4 preferred.
func TestInterleaveIPv4Preferred(t *testing.T) {
	cfg := config()
	cfg.KnownH3 = true
	cfg.Prefer = IPv4
	r := newRace(t, cfg).queries()
	r.negative(0, 0).addrs(0, 2, v4, v4b).addrs(0, 1, v6)
	want := []string{
		"attempt 3 192.0.2.1:443 h3",
		"attempt 4 [2001:db8::1]:443 h2,h1",
		"attempt 5 [2001:db8::1]:443 h3",
		"attempt 6 192.0.2.1:443 h2,h1",
		"attempt 7 192.0.2.2:443 h3",
		"attempt 8 192.0.2.2:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// KnownH3 without H3 enabled, and H3-only records with H3 disabled, never
// give QUIC endpoints.
func TestNoQUICWithoutH3(t *testing.T) {
	cfg := config()
	cfg.KnownH3 = true
	cfg.Versions = Versions(H2 | H1)
	r := newRace(t, cfg).queries()
	r.https(0, 0, withHints(rec(1, "", "h3"), v6b)).addrs(0, 1, v6).nodata(0, 2)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
}

// One TCP version enabled: the fallback offers only that one.
func TestFallbackSingleTCPVersion(t *testing.T) {
	for _, tt := range []struct {
		v    Versions
		want string
	}{
		{Versions(H2), "attempt 3 [2001:db8::1]:443 h2"},
		{Versions(H1), "attempt 3 [2001:db8::1]:443 h1"},
		{Versions(H1 | H3), "attempt 3 [2001:db8::1]:443 h1"},
		{0, "attempt 3 [2001:db8::1]:443 h2,h1"}, // zero means all
	} {
		cfg := config()
		cfg.Versions = tt.v
		resolved(t, cfg, list(v6), nil).expect(tt.want).idle()
	}
}

// H3 only, no HTTPS record and no KnownH3: nothing to attempt.
func TestNoEndpointsFails(t *testing.T) {
	cfg := config()
	cfg.Versions = Versions(H3)
	r := newRace(t, cfg).queries()
	r.negative(0, 0).addrs(0, 1, v6).expect().idle()
	r.addrs(10*ms, 2, v4).expect("fail dns")
}

// The same endpoint from two records is attempted once, with the first
// record's hint flag.
func TestDuplicateEndpointsAcrossRecords(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, ".", "h2"), v6b), rec(2, "svc1.example.com", "h2")).
		expect("query 3 AAAA svc1.example.com", "query 4 A svc1.example.com")
	r.addrs(0, 3, v6b).nodata(0, 4).addrs(0, 1, v6).nodata(0, 2)
	want := []string{
		"attempt 5 [2001:db8::1]:443 h2",
		"attempt 6 [2001:db8::2]:443 h2 hint",
		"attempt 7 [2001:db8::1]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 5, want, "fail connect")
}
