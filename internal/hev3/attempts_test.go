package hev3

import (
	"testing"
	"time"
)

// resolved issues the default queries and answers them at t=0: HTTPS
// negatively, AAAA with aaaa and A with a (empty: NODATA). Poll is not
// called after the answers.
func resolved(t *testing.T, cfg Config, aaaa, a []string) *race {
	t.Helper()
	r := newRace(t, cfg).queries()
	return r.negative(0, 0).addrs(0, 1, aaaa...).addrs(0, 2, a...)
}

func list(s ...string) []string { return s }

// §5.2 #20 (ipv6_blackhole): IPv6 never answers; IPv4 is attempted at the
// next slot and wins. The diagonal order (issue 16) makes that IPv4
// attempt TCP, which works whatever UDP does.
func TestIPv6Blackhole(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 2, v4).addrs(0, 1, v6).
		expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 192.0.2.1:443 h3").wakeAt(750 * ms)
	r.connected(600*ms, 4, H2).expect("cancel 3 lost", "cancel 5 lost", "succeed 4").idle().done(true)
}

// §5.2 #21: a new address waits for the attempt slot.
func TestConnectionAttemptDelay(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, rec(1, "")).addrs(0, 1, v6).expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
	r.addrs(100*ms, 2, v4).expect().wakeAt(250 * ms)
	r.at(249 * ms).expect().wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
}

// §5.2 #23 and #26: a failure frees the slot at once, and the delay after
// the next attempt is the plain attempt delay.
func TestFailedAttemptTriesNextImmediately(t *testing.T) {
	r := resolved(t, config(), list(v6, v6b), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.failed(100*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(350 * ms)
	r.at(350 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1").idle()
}

// §5.2 #24: the same endpoint is never attempted twice.
func TestNeverTrySameAttemptTwice(t *testing.T) {
	r := resolved(t, config(), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
	r.at(250 * ms).expect().idle()
	// A repeated address in a later answer is not a new endpoint.
	r = newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 1, v6, v6).expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
	r.failed(10*ms, 3).expect().idle()
	r.addrs(20*ms, 2, v4).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
}

// §5.2 #25: success cancels every other live attempt in attempt order.
func TestSuccessCancelsOthers(t *testing.T) {
	r := resolved(t, config(), list(v6, v6b), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1").idle()
	r.connected(600*ms, 3, H2).expect("cancel 4 lost", "cancel 5 lost", "succeed 3").idle().done(true)
}

// §5.2 #27 and #28: a single attempt's success ends the race; later Polls
// return nothing.
func TestSuccessEndsRace(t *testing.T) {
	r := resolved(t, config(), list(v6), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").idle().done(false)
	r.connected(10*ms, 3, H1).done(false).expect("succeed 3").idle().done(true)
	r.at(time.Hour).expect().idle().done(true)
}

// §5.2 #29: a partly elapsed attempt delay yields the remaining time.
func TestAttemptDelayPartiallyElapsed(t *testing.T) {
	cfg := config()
	cfg.AttemptDelay = 100 * ms
	r := resolved(t, cfg, list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(100 * ms)
	r.at(40 * ms).expect().wakeAt(100 * ms)
	r.at(100 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
}

// §5.2 #30 and review point 4: results for cancelled attempts are ignored.
func TestCancelledAttemptResultIgnored(t *testing.T) {
	r := resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(300*ms, 3, H2).expect("cancel 4 lost", "succeed 3")
	r.failed(310*ms, 4).expect().idle().done(true)
	r.connected(320*ms, 4, H2).expect().idle()
}

// §5.3 #31: every DNS answer negative: FailDNS after the last one.
func TestAllDNSFailed(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).expect().idle()
	r.negative(10*ms, 1).expect().idle().done(false)
	r.negative(20*ms, 2).expect("fail dns").idle().done(true)
}

// §5.3 #32: one family resolved, its attempt fails: FailConnect.
func TestPartialDNSThenConnectFailure(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).negative(0, 2).addrs(0, 1, v6).expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
	r.failed(10*ms, 3).expect("fail connect").idle().done(true)
}

// §5.3 #33: every attempt fails: FailConnect after the last one.
func TestAllConnectionsFailed(t *testing.T) {
	r := resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.failed(10*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
	r.failed(20*ms, 4).expect("fail connect").idle().done(true)
}

// §5.3 #34 and §5.5 #63: an IP literal is attempted at once, without DNS;
// its failure ends the race.
func TestIPLiteral(t *testing.T) {
	for _, tt := range []struct{ lit, want string }{
		{"127.0.0.1", "attempt 0 127.0.0.1:443 h2,h1"},
		{"2001:0DB8::1", "attempt 0 [2001:db8::1]:443 h2,h1"},
		{"::ffff:127.0.0.1", "attempt 0 127.0.0.1:443 h2,h1"},
	} {
		t.Run(tt.lit, func(t *testing.T) {
			r := newRace(t, Config{Literal: parseAddrs(tt.lit)[0], Port: 443})
			r.expect(tt.want).idle()
			r.failed(10*ms, 0).expect("fail connect").done(true)
		})
	}
}

// An IP literal with KnownH3 tries QUIC first, then TCP at the next slot.
func TestIPLiteralKnownH3(t *testing.T) {
	r := newRace(t, Config{Literal: parseAddrs(v4)[0], Port: 8443, KnownH3: true})
	r.expect("attempt 0 192.0.2.1:8443 h3").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 1 192.0.2.1:8443 h2,h1").idle()
	r.connected(300*ms, 1, H2).expect("cancel 0 lost", "succeed 1")
}

// §5.3 #35: first attempt fails, second succeeds: never Fail.
func TestFirstFailsSecondSucceeds(t *testing.T) {
	r := resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.failed(10*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(20*ms, 4, H2).expect("succeed 4").idle().done(true)
}

// The attempt delay is clamped to [MinAttemptDelay, MaxAttemptDelay]; zero
// means the default.
func TestAttemptDelayClamped(t *testing.T) {
	for _, tt := range []struct {
		set, want time.Duration
	}{
		{0, DefaultAttemptDelay},
		{time.Nanosecond, MinAttemptDelay},
		{-time.Second, MinAttemptDelay},
		{MinAttemptDelay, MinAttemptDelay},
		{100 * ms, 100 * ms},
		{MaxAttemptDelay, MaxAttemptDelay},
		{5 * time.Second, MaxAttemptDelay},
	} {
		t.Run(tt.set.String(), func(t *testing.T) {
			cfg := config()
			cfg.AttemptDelay = tt.set
			r := resolved(t, cfg, list(v6), list(v4))
			r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(tt.want)
			r.at(tt.want - time.Nanosecond).expect().wakeAt(tt.want)
			r.at(tt.want).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
		})
	}
}

// Abort cancels every live attempt in order, then fails; queries in flight
// do not matter.
func TestAbortMidRace(t *testing.T) {
	cfg := config()
	cfg.Need = NeedWebSocket
	r := resolved(t, cfg, list(v6, v6b), list(v4, v4b))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.at(500 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1")
	r.connected(520*ms, 4, H2).expect().wakeAt(750 * ms) // waits for SETTINGS
	r.failed(530*ms, 5).expect("attempt 6 192.0.2.2:443 h2,h1").idle()
	r.abort(600*ms).done(false).
		expect("cancel 3 aborted", "cancel 4 aborted", "cancel 6 aborted", "fail aborted").
		idle().done(true)
	// Everything afterwards is ignored.
	r.settings(610*ms, 4, Settings{ExtendedConnect: true}).expect().idle()
	r.abort(620 * ms).expect().idle()
}

// Abort with DNS still pending and nothing attempted only fails.
func TestAbortBeforeAttempts(t *testing.T) {
	r := newRace(t, config()).queries()
	r.abort(10 * ms).expect("fail aborted").idle().done(true)
	r.addrs(20*ms, 1, v6).expect().idle()

	// Abort before the first Poll: no queries are ever issued.
	r = newRace(t, config())
	r.abort(0).expect("fail aborted").idle().done(true)
}

// Abort after the race is decided but before Poll returned the decision
// does not change it.
func TestAbortAfterDecision(t *testing.T) {
	r := resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.connected(260*ms, 4, H2).abort(270*ms).expect("cancel 3 lost", "succeed 4").done(true)
}

// Inputs after Succeed, after Fail and for unknown, query or attempt ids of
// the wrong kind are ignored without panicking.
func TestLateAndBogusInputs(t *testing.T) {
	bogus := func(r *race, d time.Duration) {
		now := base.Add(d)
		for _, id := range []int{-1, 0, 1, 2, 3, 4, 99} {
			r.m.OnDNS(now, id, Answer{Addrs: parseAddrs(v6c), Services: []ServiceInfo{rec(1, "", "h3")}})
			r.m.OnConnected(now, id, H2)
			r.m.OnSettings(now, id, Settings{true, true, true})
			r.m.OnFailed(now, id, errTest)
		}
		r.m.Abort(now)
	}

	t.Run("after succeed", func(t *testing.T) {
		r := resolved(t, config(), list(v6), list(v4))
		r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
		r.connected(10*ms, 3, H2).expect("succeed 3")
		bogus(r, 20*ms)
		r.at(20 * ms).expect().idle().done(true)
	})
	t.Run("after fail", func(t *testing.T) {
		r := newRace(t, config()).queries()
		r.negative(0, 0).negative(0, 1).negative(0, 2).expect("fail dns")
		bogus(r, 20*ms)
		r.at(20 * ms).expect().idle().done(true)
	})
	t.Run("wrong kinds mid race", func(t *testing.T) {
		r := newRace(t, config()).queries()
		r.negative(0, 0).addrs(0, 1, v6).expect("attempt 3 [2001:db8::1]:443 h2,h1").idle()
		// Query ids given to attempt inputs, attempt id given to OnDNS,
		// a second answer to an answered query, unknown ids.
		now := base.Add(10 * ms)
		r.m.OnConnected(now, 0, H2)
		r.m.OnSettings(now, 1, Settings{ExtendedConnect: true})
		r.m.OnFailed(now, 2, errTest)
		r.m.OnDNS(now, 3, Answer{Addrs: parseAddrs(v6c)})
		r.m.OnDNS(now, 1, Answer{Addrs: parseAddrs(v6b)})
		r.m.OnDNS(now, 42, Answer{Addrs: parseAddrs(v6b)})
		r.m.OnConnected(now, 42, H2)
		r.m.OnSettings(now, 3, Settings{ExtendedConnect: true}) // NeedTransport: no SETTINGS wait
		r.at(10 * ms).expect().idle().done(false)
		// The race still works.
		r.addrs(20*ms, 2, v4).expect().wakeAt(250 * ms)
		r.failed(30*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1").idle()
		r.failed(40*ms, 3).expect().idle() // second failure report
		r.connected(50*ms, 4, H2).expect("succeed 4")
	})
	t.Run("two winners before Poll", func(t *testing.T) {
		r := resolved(t, config(), list(v6), list(v4))
		r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
		r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
		r.connected(260*ms, 4, H2).connected(260*ms, 3, H2).failed(260*ms, 3)
		r.expect("cancel 3 lost", "succeed 4").done(true)
	})
}

// The accessors return what was issued, and nothing for unknown ids.
func TestAccessors(t *testing.T) {
	r := newRace(t, config()).queries()
	r.https(0, 0, withECH(withHints(rec(1, "", "h3"), v6), "E")).nodata(0, 1).
		expect("attempt 3 [2001:db8::1]:443 h3 ech=E hint")
	q, ok := r.m.Query(1)
	if !ok || q != (StartQuery{ID: 1, Name: "example.com", Type: AAAA}) {
		t.Errorf("Query(1) = %+v, %v", q, ok)
	}
	if _, ok := r.m.Query(3); ok {
		t.Errorf("Query(3) found an attempt")
	}
	e, ok := r.m.Endpoint(3)
	if !ok || e.Addr.String() != "[2001:db8::1]:443" || e.Proto != ProtoH3 || string(e.ECH) != "E" || !e.Hint {
		t.Errorf("Endpoint(3) = %+v, %v", e, ok)
	}
	if _, ok := r.m.Endpoint(0); ok {
		t.Errorf("Endpoint(0) found a query")
	}
	if _, ok := r.m.Endpoint(7); ok {
		t.Errorf("Endpoint(7) found something")
	}
}

// The machine does not keep the caller's slices.
func TestAnswerNotAliased(t *testing.T) {
	r := newRace(t, config()).queries()
	s := withECH(withHints(rec(1, "", "h3"), v6), "E")
	recs := []ServiceInfo{s}
	r.https(0, 0, recs...).nodata(0, 1)
	s.ECH[0] = 'X'
	s.ALPN[0] = "h2"
	s.IPv6Hints[0] = parseAddrs(v6b)[0]
	r.expect("attempt 3 [2001:db8::1]:443 h3 ech=E hint")
}

// §5.5 #67: an h3 alternative on another port (Alt-Svc) is tried first,
// then TCP on the origin's port, dealt diagonally with the families
// (issue 16; the reference crate tries h3 on both families first).
func TestKnownH3OtherPort(t *testing.T) {
	cfg := config()
	cfg.KnownH3, cfg.H3Port = true, 8443
	r := resolved(t, cfg, list(v6), list(v4))
	want := []string{
		"attempt 3 [2001:db8::1]:8443 h3",
		"attempt 4 192.0.2.1:443 h2,h1",
		"attempt 5 192.0.2.1:8443 h3",
		"attempt 6 [2001:db8::1]:443 h2,h1",
	}
	r.expect(want[0])
	r.chain(10*ms, 3, want, "fail connect")
}

// MaxLive: with two attempts hanging, the third endpoint waits for one of
// them to end, however much time passes, and no timer is asked for.
func TestMaxLive(t *testing.T) {
	cfg := config()
	cfg.MaxLive = 2
	r := resolved(t, cfg, list(v6, v6b, v6c), nil)
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::2]:443 h2,h1").idle()
	r.at(5000 * ms).expect().idle()
	r.failed(5001*ms, 3).expect("attempt 5 [2001:db8::3]:443 h2,h1")
}
