package hev3

import (
	"net/netip"
	"testing"
	"time"
)

// §5.1 #2 and #18: queries are issued back to back, minus skipped ones.
func TestQueriesIssued(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string
	}{
		{"default", func(*Config) {}, []string{
			"query 0 HTTPS example.com", "query 1 AAAA example.com", "query 2 A example.com"}},
		{"no HTTPS", func(c *Config) { c.NoHTTPS = true }, []string{
			"query 0 AAAA example.com", "query 1 A example.com"}},
		{"IPv4 only", func(c *Config) { c.OnlyFamily, c.Only = true, IPv4 }, []string{
			"query 0 HTTPS example.com", "query 1 A example.com"}},
		{"IPv6 only", func(c *Config) { c.OnlyFamily, c.Only = true, IPv6 }, []string{
			"query 0 HTTPS example.com", "query 1 AAAA example.com"}},
		{"prefer IPv4 keeps order", func(c *Config) { c.Prefer = IPv4 }, []string{
			"query 0 HTTPS example.com", "query 1 AAAA example.com", "query 2 A example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config()
			tt.cfg(&cfg)
			r := newRace(t, cfg)
			r.expect(tt.want...).idle().done(false)
			r.at(10 * ms).expect().idle()
		})
	}
}

// §5.1 #18: single stack races the one family with the next id.
func TestSingleStackAttempt(t *testing.T) {
	cfg := config()
	cfg.OnlyFamily, cfg.Only = true, IPv4
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 A example.com")
	r.negative(0, 0).addrs(0, 1, v4).expect("attempt 2 192.0.2.1:443 h2,h1").idle()

	cfg.Only = IPv6
	r = newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 AAAA example.com")
	r.negative(0, 0).addrs(0, 1, v6).expect("attempt 2 [2001:db8::1]:443 h2,h1").idle()
}

// §5.1 #19: target-name queries skip the excluded family, and hints of the
// excluded family are not addresses.
func TestSingleStackTargetName(t *testing.T) {
	cfg := config()
	cfg.OnlyFamily, cfg.Only = true, IPv6
	r := newRace(t, cfg)
	r.expect("query 0 HTTPS example.com", "query 1 AAAA example.com")
	r.https(0, 0, withHints(rec(1, "svc1.example.com.", "h3"), v4b)).
		expect("query 2 AAAA svc1.example.com.").idle()
	r.negative(10*ms, 1).negative(10*ms, 2).expect("fail dns").idle().done(true)
}

// §5.1 #3: with HTTPS answered, the AAAA answer starts an attempt at once.
func TestDontWaitForAllAnswers(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(5*ms, 0, rec(1, "", "h3", "h2")).expect().idle()
	r.addrs(10*ms, 1, v6).expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(260 * ms)
	r.at(260 * ms).expect("attempt 4 [2001:db8::1]:443 h2").wakeAt(510 * ms)
	r.at(510 * ms).expect("attempt 5 [2001:db8::1]:443 h2,h1").idle()
}

// §5.1 #4: move on without waiting once the preferred family and HTTPS
// have answered.
func TestMoveOnWithoutTimeout(t *testing.T) {
	type answer struct {
		id    int
		addrs []string // nil: negative
	}
	tests := []struct {
		name    string
		prefer  Family
		answers []answer
		want    string
		wake    bool // another endpoint waits for the slot
	}{
		{"v6: AAAA", IPv6, []answer{{1, []string{v6}}}, "attempt 3 [2001:db8::1]:443 h2,h1", false},
		{"v6: A then AAAA", IPv6, []answer{{2, []string{v4}}, {1, []string{v6}}}, "attempt 3 [2001:db8::1]:443 h2,h1", true},
		{"v6: A then AAAA negative", IPv6, []answer{{2, []string{v4}}, {1, nil}}, "attempt 3 192.0.2.1:443 h2,h1", false},
		{"v4: A", IPv4, []answer{{2, []string{v4}}}, "attempt 3 192.0.2.1:443 h2,h1", false},
		{"v4: AAAA then A", IPv4, []answer{{1, []string{v6}}, {2, []string{v4}}}, "attempt 3 192.0.2.1:443 h2,h1", true},
		{"v4: AAAA then A negative", IPv4, []answer{{1, []string{v6}}, {2, nil}}, "attempt 3 [2001:db8::1]:443 h2,h1", false},
	}
	for _, https := range []string{"record without ALPN", "negative"} {
		for _, tt := range tests {
			t.Run(https+"/"+tt.name, func(t *testing.T) {
				cfg := config()
				cfg.Prefer = tt.prefer
				r := newRace(t, cfg).queries()
				for i, a := range tt.answers {
					if a.addrs == nil {
						r.negative(time.Duration(i)*5*ms, a.id)
					} else {
						r.addrs(time.Duration(i)*5*ms, a.id, a.addrs...)
					}
					r.expect().wakeAt(50 * ms)
				}
				if https == "negative" {
					r.negative(20*ms, 0)
				} else {
					r.https(20*ms, 0, rec(1, ""))
				}
				r.expect(tt.want)
				if tt.wake {
					r.wakeAt(270 * ms)
				} else {
					r.idle()
				}
			})
		}
	}
}

// §5.1 #5: only A answered: wait the resolution delay, then go with IPv4.
func TestMoveOnTimeout(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(49 * ms).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
}

// §5.1 #6: no timer until the first answer arrives.
func TestResolutionDelayStartsAfterFirstResponse(t *testing.T) {
	r := newRace(t, config()).queries()
	r.at(30 * ms).expect().idle()
	r.addrs(30*ms, 2, v4).expect().wakeAt(80 * ms)
	r.at(80 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
}

// §5.1 #7: the delay is measured from the first answer, not the query.
func TestResolutionDelayStartsOnFirstResponse(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(10*ms, 2, v4).expect().wakeAt(60 * ms)
	r.at(50 * ms).expect().wakeAt(60 * ms)
	r.at(60 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
}

// The first answer of any type starts the delay, even a negative one.
func TestResolutionDelayStartsOnNegativeAnswer(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).expect().idle()
	r.addrs(30*ms, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
}

// §5.2 #73 (custom_delays): a configured resolution delay is honoured.
func TestCustomResolutionDelay(t *testing.T) {
	cfg := config()
	cfg.ResolutionDelay = 10 * ms
	r := newRace(t, cfg).queries()
	r.addrs(0, 2, v4).expect().wakeAt(10 * ms)
	r.at(10 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
}

// §5.1 #9 and #10: HTTPS hints are addresses; with A/AAAA pending the
// machine moves on after the resolution delay.
func TestHintsMoveOnWithTimeout(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, "", "h3", "h2"), v6)).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h3 hint").wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 [2001:db8::1]:443 h2 hint").idle()

	r = newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, "", "h3", "h2"), v4)).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h3 hint").wakeAt(300 * ms)
}

// §5.1 #11: empty A and AAAA at the resolution delay keep the v6 hint.
func TestEmptyAddressAnswersKeepHint(t *testing.T) {
	cfg := config()
	cfg.ResolutionDelay = 25 * ms
	r := newRace(t, cfg).queries()
	r.https(0, 0, withHints(rec(1, "", "http/1.1"), v6)).expect().wakeAt(25 * ms)
	// "http/1.1" alone: TLS over TCP, offering h2 too (RFC 9460 §7.1.2).
	r.nodata(25*ms, 1).nodata(25*ms, 2).expect("attempt 3 [2001:db8::1]:443 h2,h1 hint").idle()
}

// §5.1 #12: empty A and AAAA before HTTPS: the hint is used when HTTPS
// arrives; empty answers alone set no timer.
func TestEmptyAddressAnswersBeforeHTTPS(t *testing.T) {
	r := newRace(t, config()).queries()
	r.nodata(0, 1).expect().idle()
	r.nodata(5*ms, 2).expect().idle()
	r.https(10*ms, 0, withHints(rec(1, "", "http/1.1"), v6)).
		expect("attempt 3 [2001:db8::1]:443 h2,h1 hint").idle()
	r.failed(20*ms, 3).expect("fail connect").done(true)
}

// §5.1 #13: after the only attempt fails, an outstanding query blocks
// failure; no zero-length timer.
func TestResolutionDelayBoundary(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
	r.failed(60*ms, 3).expect().idle().done(false)
	r.negative(100*ms, 1).expect("fail connect").idle().done(true)
}

// §5.1 #14: a ServiceMode target other than the origin is resolved.
func TestTargetNameQueried(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withHints(rec(1, "svc1.example.com.", "h3"), v6b)).
		expect("query 3 AAAA svc1.example.com.", "query 4 A svc1.example.com.").
		wakeAt(50 * ms)
	// The origin's AAAA answer completes the preferred family: the hint
	// is used at once.
	r.addrs(10*ms, 1, v6).expect("attempt 5 [2001:db8::2]:443 h3 hint").wakeAt(50 * ms)
	// Next is the origin's own address: it waits for the target's
	// answers up to the resolution delay (RFC 9460 §3), then for the slot.
	r.at(50 * ms).expect().wakeAt(260 * ms)
}

// Targets are queried once per name and type, whatever their spelling, and
// the origin's own name is not queried again.
func TestTargetNameQueriedOnce(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0,
		rec(1, "svc1.example.com.", "h3"),
		rec(2, "SVC1.example.com", "h2"),
		rec(3, "example.com.", "h2"),
		rec(4, ".", "h2"),
	).expect("query 3 AAAA svc1.example.com.", "query 4 A svc1.example.com.").idle()
}

// §5.1 #15: the HTTPS record upgrades the first attempt to h3.
func TestHTTPSUpgradeWithoutHints(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 1, v6).expect().wakeAt(50 * ms)
	r.https(10*ms, 0, rec(1, "", "h3", "h2")).expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(260 * ms)
}

// §5.1 #16: with h3 disabled, an {h3,h2} record yields h2 only.
func TestHTTPSH3Disabled(t *testing.T) {
	cfg := config()
	cfg.Versions = Versions(H2 | H1)
	r := newRace(t, cfg).queries()
	r.addrs(0, 1, v6).expect().wakeAt(50 * ms)
	r.https(10*ms, 0, rec(1, "", "h3", "h2")).expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(260 * ms)
	r.at(260 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1").idle()
}

// §5.1 #17: several addresses of one family are tried in DNS order.
func TestMultipleAddressesPerRecord(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).negative(0, 2).addrs(0, 1, v6, v6b, v6c).
		expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::2]:443 h2,h1").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::3]:443 h2,h1").idle()
}

// NODATA and negative answers both complete the preferred family.
func TestEmptyAndNegativeCompletePreferredFamily(t *testing.T) {
	for _, name := range []string{"nodata", "negative"} {
		t.Run(name, func(t *testing.T) {
			r := newRace(t, config()).queries()
			r.negative(0, 0).addrs(0, 2, v4).expect().wakeAt(50 * ms)
			if name == "nodata" {
				r.nodata(10*ms, 1)
			} else {
				r.negative(10*ms, 1)
			}
			r.expect("attempt 3 192.0.2.1:443 h2,h1").idle()
		})
	}
}

// NODATA and negative answers are not addresses: all of them fail with
// FailDNS once every query has answered, and set no timer.
func TestNoAddressesFailsDNS(t *testing.T) {
	tests := []struct {
		name  string
		https Answer
		aaaa  Answer
		a     Answer
	}{
		{"all negative", Answer{Err: errTest}, Answer{Err: errTest}, Answer{Err: errTest}},
		{"all empty", Answer{}, Answer{}, Answer{}},
		{"mixed, HTTPS without hints", Answer{Services: []ServiceInfo{rec(1, "", "h3")}}, Answer{}, Answer{Err: errTest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRace(t, config()).queries()
			r.dns(0, 0, tt.https).expect().idle()
			r.dns(10*ms, 1, tt.aaaa).expect().idle()
			r.dns(20*ms, 2, tt.a).expect("fail dns").idle().done(true)
		})
	}
}

// A late AAAA answer (after the IPv4 attempt started) is tried at the next
// slot.
func TestLateAAAA(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
	r.addrs(100*ms, 1, v6).expect().wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1").idle()
}

// A late AAAA answer after the IPv4 attempt failed is tried at once.
func TestLateAAAAAfterFailure(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
	r.failed(60*ms, 3).expect().idle()
	r.addrs(100*ms, 1, v6).expect("attempt 4 [2001:db8::1]:443 h2,h1").idle()
	r.connected(120*ms, 4, H2).expect("succeed 4").done(true)
}

// A late HTTPS answer (after fallback attempts started) puts its endpoints
// ahead of the remaining fallback endpoints without breaking family
// interleaving (draft §7; issue 16: it used to give IPv6 at 50 and 300 ms
// and the first IPv4 at 550 ms). The IPv6 TCP attempt already running
// counts: the next one is h3 on IPv4, new in both family and transport.
func TestLateHTTPS(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(300 * ms)
	r.https(100*ms, 0, rec(1, "", "h3", "h2")).expect().wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 192.0.2.1:443 h3").wakeAt(550 * ms)
	r.at(550 * ms).expect("attempt 5 [2001:db8::1]:443 h3").wakeAt(800 * ms)
	r.at(800 * ms).expect("attempt 6 192.0.2.1:443 h2").wakeAt(1050 * ms)
	r.at(1050 * ms).expect("attempt 7 [2001:db8::1]:443 h2").wakeAt(1300 * ms)
	r.at(1300 * ms).expect("attempt 8 192.0.2.1:443 h2,h1").idle()
}

// A late HTTPS answer with ECH drops the remaining fallback endpoints but
// does not cancel a running fallback attempt. The running IPv6 attempt
// counts for interleaving: IPv4 goes next (draft §7).
func TestLateHTTPSWithECH(t *testing.T) {
	r := newRace(t, config()).queries()
	r.addrs(0, 1, v6).addrs(0, 2, v4).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(300 * ms)
	r.https(100*ms, 0, withECH(rec(1, "", "h3"), "E")).expect().wakeAt(300 * ms)
	r.at(300 * ms).expect("attempt 4 192.0.2.1:443 h3 ech=E").wakeAt(550 * ms)
	r.at(550 * ms).expect("attempt 5 [2001:db8::1]:443 h3 ech=E").idle()
	r.connected(600*ms, 3, H2).expect("cancel 4 lost", "cancel 5 lost", "succeed 3")
}

// Addresses of the wrong family in an answer, and v4-mapped IPv4
// addresses, are handled: the former dropped, the latter unmapped.
func TestAddressNormalization(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).nodata(0, 1)
	r.dns(0, 2, Answer{Addrs: []netip.Addr{
		netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr(v6),
		netip.MustParseAddr(v4),
		{},
	}})
	r.expect("attempt 3 192.0.2.1:443 h2,h1").idle()
	r.failed(10*ms, 3).expect("fail connect")
}
