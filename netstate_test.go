package dialer

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/testkit"
)

// Tests of what a Dialer learns about the network the host is on
// (netstate.go, issue 16): scripted races (fakeNet) in a synctest bubble,
// where every time is exact, and rules of learn with time as an input.

// tcpSpec is a race for plain TCP to host:443, as DialContext makes.
func tcpSpec(host string) raceSpec {
	return raceSpec{url: "tcp://" + host + ":443", kind: "tcp", host: host, port: 443, need: hev3.NeedTransport, versions: hev3.Versions(hev3.H1), noHTTPS: true}
}

// raceOn runs one race of spec on d, closes its winner and returns its
// Report.
func raceOn(t *testing.T, d *Dialer, cfg config, spec raceSpec) *Report {
	t.Helper()
	car, rep, err := d.race(t.Context(), cfg, spec)
	if err != nil {
		t.Fatalf("%s: %v\n%v", spec.url, err, rep)
	}
	car.Close()
	d.lingering.stop()
	return rep
}

// won returns the winner's address and when its attempt started.
func won(rep *Report) (netip.AddrPort, time.Duration) {
	a := rep.Attempts[rep.Winner]
	return a.Addr, a.Start
}

// learned reports whether one of the Report's Learned lines contains s.
func learned(rep *Report, s string) bool {
	for _, l := range rep.Learned {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// IPv6 silent (blackholed), IPv4 answers: the first race falls back after
// one attempt delay; the next, to the same origin or a new one, goes to
// IPv4 at once; on another network the Dialer knows nothing again.
func TestNetLearnsBrokenIPv6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {hang: true},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		d := &Dialer{net: f.raceNet()}
		rep := raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if addr, start := won(rep); addr != v4 || start != 252*time.Millisecond || len(rep.Learned) != 0 {
			t.Fatalf("first race: %v won, started at %v, learned %q", addr, start, rep.Learned)
		}
		for _, host := range []string{"x.test", "y.test"} {
			rep = raceOn(t, d, defaultConfig(), tcpSpec(host))
			// AAAA at 2 ms, A at 3 ms: IPv6 waits for A, IPv4 goes first.
			if addr, start := won(rep); addr != v4 || start != 3*time.Millisecond || len(rep.Attempts) != 1 {
				t.Errorf("%s: %v won, started at %v, %d attempts; want IPv4 first at 3ms", host, addr, start, len(rep.Attempts))
			}
			if !learned(rep, "TCP over IPv6 to loopback was silent on this network") {
				t.Errorf("%s: the Report does not say what shaped the race: %q", host, rep.Learned)
			}
		}
		// Another network: flushed.
		f.network.Add(1)
		rep = raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if addr, start := won(rep); addr != v4 || start != 252*time.Millisecond || len(rep.Learned) != 0 {
			t.Errorf("on a new network: %v won, started at %v, learned %q; want what a first race does", addr, start, rep.Learned)
		}
		// It learns there as anywhere.
		rep = raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if _, start := won(rep); start != 3*time.Millisecond {
			t.Errorf("second race on the new network started IPv4 at %v", start)
		}
	})
}

// UDP blocked on a dual-stack origin whose HTTPS record says h3,h2: the
// first race gets h2 one attempt delay after its QUIC attempt (TCP over
// IPv4, second in the diagonal order); the next goes to TCP at once.
func TestNetLearnsBlockedUDP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ext := hev3.Settings{ExtendedConnect: true}
		answers := dualStack()
		answers[hev3.HTTPS] = fakeAnswer{after: time.Millisecond, services: []hev3.ServiceInfo{{Priority: 1, ALPN: []string{"h3", "h2"}}}}
		f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{
			{v6, true}:  {hang: true},
			{v4, true}:  {hang: true},
			{v6, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext},
		}}
		d := &Dialer{net: f.raceNet()}
		rep := raceOn(t, d, defaultConfig(), wsSpec())
		if addr, start := won(rep); addr != v4 || start != 252*time.Millisecond || rep.Attempts[rep.Winner].End != 272*time.Millisecond {
			t.Fatalf("first race: %v won, started at %v, at %v", addr, start, rep.Attempts[rep.Winner].End)
		}
		rep = raceOn(t, d, defaultConfig(), wsSpec())
		if a := rep.results[rep.Winner]; a.proto.QUIC() || rep.Winner != 0 || rep.Duration != 22*time.Millisecond {
			t.Errorf("second race: attempt %d (%v) won after %v; want the first, TCP, after 22ms\n%v", rep.Winner, a.proto, rep.Duration, rep)
		}
		if !learned(rep, "QUIC over IPv6 to loopback was silent") {
			t.Errorf("the Report does not say what shaped the race: %q", rep.Learned)
		}
	})
}

// Draft §6: with an RTT measured on the path, the attempt delay is 2×RTT
// (at least 100 ms); WithAttemptDelay still wins.
func TestNetLearnsRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {tcpUp: 70 * time.Millisecond, after: 140 * time.Millisecond, version: hev3.H1},
		}}
		d := &Dialer{net: f.raceNet()}
		raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		// Now IPv6 hangs: IPv4 starts 2×70 ms after it.
		f.paths = map[fakeKey]fakePath{
			{v6, false}: {hang: true},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}
		rep := raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if addr, start := won(rep); addr != v4 || start != 142*time.Millisecond {
			t.Errorf("%v won, started at %v; want IPv4 at 2ms + 2×70ms", addr, start)
		}
		if !learned(rep, "TCP over IPv6 to loopback: attempt delay 2×RTT (at least 100.0ms), RTT 70.0ms measured") {
			t.Errorf("the Report does not say what shaped the race: %q", rep.Learned)
		}
		cfg := defaultConfig()
		WithAttemptDelay(300 * time.Millisecond)(&cfg)
		d = &Dialer{net: f.raceNet()}
		f.paths[fakeKey{v6, false}] = fakePath{tcpUp: 70 * time.Millisecond, after: 140 * time.Millisecond, version: hev3.H1}
		raceOn(t, d, cfg, tcpSpec("x.test"))
		f.paths[fakeKey{v6, false}] = fakePath{hang: true}
		if _, start := won(raceOn(t, d, cfg, tcpSpec("x.test"))); start != 302*time.Millisecond {
			t.Errorf("with WithAttemptDelay(300ms), IPv4 started at %v", start)
		}
	})
}

// Draft §6.1: TCP up while TLS goes on extends the slot by one delay.
func TestRaceProgressExtendsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {tcpUp: 200 * time.Millisecond, hang: true},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		spec := wsSpec()
		rep := raceOn(t, &Dialer{net: f.raceNet()}, defaultConfig(), spec)
		// Slot: 2 ms + 250 ms, extended at 202 ms to 452 ms.
		if addr, start := won(rep); addr != v4 || start != 452*time.Millisecond {
			t.Errorf("%v won, started at %v; want IPv4 at 452ms", addr, start)
		}
	})
}

// A network where QUIC worked gets h3 on both families first: with QUIC
// over IPv6 gone silent since (but not yet learned), h3 over IPv4 is the
// second attempt, where the diagonal would have started TCP.
func TestNetLearnsQUICWorks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ext := hev3.Settings{ExtendedConnect: true}
		answers := dualStack()
		answers[hev3.HTTPS] = fakeAnswer{after: time.Millisecond, services: []hev3.ServiceInfo{{Priority: 1, ALPN: []string{"h3", "h2"}}}}
		ok := fakePath{after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext}
		f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{{v6, true}: ok, {v4, true}: ok, {v6, false}: ok, {v4, false}: ok}}
		d := &Dialer{net: f.raceNet()}
		if rep := raceOn(t, d, defaultConfig(), wsSpec()); !rep.results[rep.Winner].proto.QUIC() {
			t.Fatalf("first race won by %v", rep.results[rep.Winner].proto)
		}
		f.paths[fakeKey{v6, true}] = fakePath{hang: true}
		rep := raceOn(t, d, defaultConfig(), wsSpec())
		if a := rep.results[rep.Winner]; !a.proto.QUIC() || a.addr != v4 {
			t.Errorf("%v %v won; want h3 over IPv4\n%v", a.proto, a.addr, rep)
		}
		if !learned(rep, "QUIC works to loopback: h3 first") {
			t.Errorf("the Report does not say what shaped the race: %q", rep.Learned)
		}
	})
}

// A silent path is tried last, not never: when the others fail, it is
// tried, and once it answers it is no longer last (a repaired network is
// noticed). And what was learned expires.
func TestNetRepairedAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {hang: true},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		d := &Dialer{net: f.raceNet()}
		raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		// IPv6 repaired, IPv4 now refused: IPv4 first, IPv6 10 ms later.
		f.paths = map[fakeKey]fakePath{{v6, false}: {after: 10 * time.Millisecond, version: hev3.H1}}
		rep := raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if addr, start := won(rep); addr != v6 || start != 13*time.Millisecond {
			t.Errorf("%v won, started at %v; want IPv6 after the refused IPv4, at 13ms", addr, start)
		}
		f.paths[fakeKey{v4, false}] = fakePath{after: 10 * time.Millisecond, version: hev3.H1}
		rep = raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if addr, start := won(rep); addr != v6 || start != 2*time.Millisecond || learned(rep, "silent") {
			t.Errorf("after the repair: %v won, started at %v, learned %q; want IPv6 first", addr, start, rep.Learned)
		}

		// Silent again: learned; forgotten netBrokenFor later.
		f.paths[fakeKey{v6, false}] = fakePath{hang: true}
		raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		time.Sleep(netBrokenFor - time.Second)
		if _, start := won(raceOn(t, d, defaultConfig(), tcpSpec("x.test"))); start != 3*time.Millisecond {
			t.Errorf("before expiry, IPv4 started at %v", start)
		}
		time.Sleep(time.Second)
		// IPv6 first again; its RTT (10 ms, measured when it was
		// repaired) still gives its attempt the least delay, 100 ms.
		rep = raceOn(t, d, defaultConfig(), tcpSpec("x.test"))
		if _, start := won(rep); start != 102*time.Millisecond || learned(rep, "silent") {
			t.Errorf("after expiry, IPv4 started at %v, learned %q; want after IPv6's attempt delay", start, rep.Learned)
		}
	})
}

// The rules of learn, with time as an input.
func TestNetLearnRules(t *testing.T) {
	now := time.Unix(1000, 0)
	id := netID{ifs: 1}
	r6 := netip.MustParseAddrPort("[2001:db8::1]:443")
	r4 := netip.MustParseAddrPort("192.0.2.1:443")
	ms := time.Millisecond
	silent := func(addr netip.AddrPort, quic bool, start, end time.Duration) attemptResult {
		p := hev3.ProtoH2OrH1
		if quic {
			p = hev3.ProtoH3
		}
		return attemptResult{addr: addr, proto: p, start: start, end: end, outcome: outcomeLost}
	}
	up := func(addr netip.AddrPort, start, tcpAt time.Duration) attemptResult {
		return attemptResult{addr: addr, proto: hev3.ProtoH2OrH1, start: start, end: tcpAt + ms, tcpUp: true, tcpAt: tcpAt, connected: true, connectedAt: tcpAt + ms, outcome: outcomeWon}
	}
	type check struct {
		p      path
		broken bool
	}
	routed6, routed6q := path{routed, hev3.IPv6, false}, path{routed, hev3.IPv6, true}
	routed4q := path{routed, hev3.IPv4, true}
	for _, tc := range []struct {
		name    string
		results []attemptResult
		checks  []check
	}{
		{"silent TCP blames the family", []attemptResult{silent(r6, false, 0, 260*ms), up(r4, 250*ms, 255*ms)},
			[]check{{routed6, true}, {routed6q, true}, {routed4q, false}}},
		{"silent QUIC blames QUIC over the family", []attemptResult{silent(r6, true, 0, 260*ms), up(r4, 250*ms, 255*ms)},
			[]check{{routed6q, true}, {routed6, false}, {routed4q, false}}},
		{"shorter than minSilence", []attemptResult{silent(r6, false, 0, 99*ms), up(r4, 10*ms, 98*ms)},
			[]check{{routed6, false}}},
		{"the other started first", []attemptResult{up(r4, 0, 150*ms), silent(r6, false, 10*ms, 200*ms)},
			[]check{{routed6, false}}},
		{"only loopback answered", []attemptResult{silent(r6, false, 0, 260*ms), up(v4, 250*ms, 255*ms)},
			[]check{{routed6, false}}},
		{"nothing answered", []attemptResult{silent(r6, false, 0, 260*ms), silent(r4, false, 250*ms, 500*ms)},
			[]check{{routed6, false}, {path{routed, hev3.IPv4, false}, false}}},
		{"another address of the family answered", []attemptResult{silent(r6, false, 0, 260*ms), up(netip.MustParseAddrPort("[2001:db8::2]:443"), 250*ms, 255*ms)},
			[]check{{routed6, false}, {routed6q, false}}},
		{"QUIC answered over the family: TCP silent", []attemptResult{silent(r6, false, 0, 260*ms), {addr: r6, proto: hev3.ProtoH3, start: 250 * ms, connected: true, connectedAt: 255 * ms, outcome: outcomeWon}},
			[]check{{routed6, false}}},
		{"TCP answered over the family: QUIC silent", []attemptResult{silent(r6, true, 0, 260*ms), up(r6, 250*ms, 255*ms)},
			[]check{{routed6q, true}, {routed6, false}}},
		{"refused is an answer", []attemptResult{{addr: r6, proto: hev3.ProtoH2OrH1, start: 0, end: 260 * ms, outcome: outcomeFailed, err: refused()}, up(r4, 250*ms, 255*ms)},
			[]check{{routed6, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n netMemory
			n.view(id, now)
			n.learn(id, now, raced(tc.results...))
			v := n.view(id, now.Add(time.Second))
			for _, c := range tc.checks {
				if got := v.broken(c.p); got != c.broken {
					t.Errorf("%v broken %v, want %v", c.p, got, c.broken)
				}
			}
		})
	}

	// What a race on another network showed is not learned; a new
	// network flushes.
	var n netMemory
	n.view(id, now)
	n.learn(netID{ifs: 2}, now, raced(silent(r6, false, 0, 260*ms), up(r4, 250*ms, 255*ms)))
	if n.view(id, now).broken(routed6) {
		t.Error("learned from a race on another network")
	}
	n.learn(id, now, raced(silent(r6, false, 0, 260*ms), up(r4, 250*ms, 255*ms)))
	if !n.view(id, now).broken(routed6) {
		t.Fatal("not learned")
	}
	if n.view(netID{ifs: 3}, now).broken(routed6) || n.view(id, now).broken(routed6) {
		t.Error("not flushed by another network")
	}

	// RTT: the first sample, then 1/8 of each new one (RFC 6298).
	n.learn(id, now, raced(up(r4, 0, 100*ms)))
	n.learn(id, now, raced(up(r4, 0, 200*ms)))
	v := n.view(id, now)
	e4 := hev3.Endpoint{Addr: r4, Proto: hev3.ProtoH2}
	if rtt := v.RTT(e4); rtt != 112500*time.Microsecond {
		t.Errorf("smoothed RTT %v, want 112.5ms", rtt)
	}
	// QUIC over the same family uses it when it has none of its own.
	if rtt := v.RTT(hev3.Endpoint{Addr: r4, Proto: hev3.ProtoH3}); rtt != 112500*time.Microsecond {
		t.Errorf("QUIC RTT %v, want TCP's", rtt)
	}
	if rtt := n.view(id, now.Add(netWorksFor)).RTT(e4); rtt != 0 {
		t.Errorf("RTT %v after netWorksFor, want none", rtt)
	}
}

// Draft §6: DNS answers still in flight when a race is won keep coming for
// hev3.DNSLinger, so that they fill the cache; the dial does not wait for
// them, and CloseIdleConnections ends them at once.
func TestRaceDNSLinger(t *testing.T) {
	for _, tc := range []struct {
		name   string
		https  time.Duration // when HTTPS answers
		closed bool          // CloseIdleConnections right after the race
		want   time.Duration // when the lookup ended
		err    error         // and how
	}{
		{"answered", 500 * time.Millisecond, false, 500 * time.Millisecond, nil},
		{"cancelled after a second", 5 * time.Second, false, 62*time.Millisecond + hev3.DNSLinger, context.Canceled},
		{"CloseIdleConnections", 5 * time.Second, true, 62 * time.Millisecond, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				answers := dualStack()
				answers[hev3.HTTPS] = fakeAnswer{after: tc.https}
				f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{{v6, false}: {after: 10 * time.Millisecond, version: hev3.H1}}}
				d := &Dialer{net: f.raceNet()}
				start := time.Now()
				car, rep, err := d.race(t.Context(), defaultConfig(), wsSpec())
				if err != nil {
					t.Fatal(err)
				}
				car.Close()
				// Resolution delay: 1 ms (first answer) + 50 ms, then
				// [::1] connects in 10 ms.
				if rep.Duration != 62*time.Millisecond || time.Since(start) != 62*time.Millisecond {
					t.Errorf("race took %v, returned after %v", rep.Duration, time.Since(start))
				}
				if f.running.Load() != 1 {
					t.Fatalf("%d lookups running after the race, want the HTTPS one", f.running.Load())
				}
				if tc.closed {
					d.CloseIdleConnections()
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if f.running.Load() != 0 {
					t.Fatal("the lookup still runs")
				}
				last := f.looked[len(f.looked)-1]
				if last.t != hev3.HTTPS || last.at.Sub(start) != tc.want || !errors.Is(last.err, tc.err) {
					t.Errorf("HTTPS lookup ended at %v with %v, want %v with %v", last.at.Sub(start), last.err, tc.want, tc.err)
				}
			})
		})
	}
}

// WithResolutionDelay(0) means zero: the race starts with the first answer
// that gives an address.
func TestResolutionDelayZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		answers := map[hev3.RecordType]fakeAnswer{
			hev3.AAAA: {after: 30 * time.Millisecond, addrs: []netip.Addr{v6.Addr()}},
			hev3.A:    {after: time.Millisecond, addrs: []netip.Addr{v4.Addr()}},
		}
		f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{
			{v6, false}: {after: 10 * time.Millisecond, version: hev3.H1},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		zero := defaultConfig()
		WithResolutionDelay(0)(&zero)
		for _, tc := range []struct {
			cfg   config
			addr  netip.AddrPort
			start time.Duration
		}{
			{defaultConfig(), v6, 30 * time.Millisecond}, // waits for AAAA, within 50 ms
			{zero, v4, time.Millisecond},
		} {
			rep := raceOn(t, &Dialer{net: f.raceNet()}, tc.cfg, tcpSpec("x.test"))
			if addr, start := won(rep); addr != tc.addr || start != tc.start {
				t.Errorf("resolution delay %v: %v won, started at %v; want %v at %v", tc.cfg.resolutionDelay, addr, start, tc.addr, tc.start)
			}
		}
	})
}

// TestNetChangeForgets: on real sockets (loopback, [::1] drops SYNs, the
// host's real look at its network), a move to another network, simulated
// by changing what the identity seam returns as a new local address would,
// forgets what was learned: the first dial there pays the attempt delay
// again, the second learns again.
func TestNetChangeForgets(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets: skipped with -short")
	}
	l4, l6, port, err := testkit.ListenPair()
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	l6.Close()
	hole, err := testkit.Blackhole(netip.AddrPortFrom(v6.Addr(), uint16(port)).String())
	if err != nil {
		t.Skipf("no blackhole here: %v", err)
	}
	defer hole.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l4.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { l4.Close(); <-accepted }()
	ns := dnstest.Start(t)
	ns.A("x.test", "127.0.0.1")
	ns.AAAA("x.test", "::1")

	var rep *Report
	d := New(WithNameservers(ns.Addr()), WithHostsFile("-"), WithReport(func(r *Report) { rep = r }))
	defer d.CloseIdleConnections()
	var moved atomic.Uint64
	d.net.host = func() hostNet {
		hn := lookHost()
		hn.id.ifs ^= moved.Load() // another interface fingerprint: another network
		return hn
	}
	addr := "x.test:" + strconv.Itoa(port)
	dial := func() time.Duration {
		t.Helper()
		start := time.Now()
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return time.Since(start)
	}
	const delay = hev3.DefaultAttemptDelay
	if e := dial(); e < delay-50*time.Millisecond {
		t.Fatalf("first dial took %v, less than the attempt delay: is [::1] blackholed?", e)
	}
	if e := dial(); e > delay/2 || len(rep.Learned) == 0 {
		t.Errorf("second dial took %v, learned %q; want IPv4 at once", e, rep.Learned)
	}
	moved.Store(1)
	if e := dial(); e < delay-50*time.Millisecond || len(rep.Learned) != 0 {
		t.Errorf("on another network, the first dial took %v, learned %q; want the attempt delay, nothing learned", e, rep.Learned)
	}
	if e := dial(); e > delay/2 {
		t.Errorf("on another network, the second dial took %v; want IPv4 at once", e)
	}
}

// TestLookHost: the look at the host's network is stable while nothing
// changes, holds the loopback addresses, and is cached.
func TestLookHost(t *testing.T) {
	a, b := look(), look()
	if a.id != b.id {
		t.Errorf("two looks, two identities: %+v, %+v", a.id, b.id)
	}
	if !slices.Contains(a.local, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("local addresses %v lack 127.0.0.1", a.local)
	}
	if len(a.local) > hev3.MaxLocalAddrs {
		t.Errorf("%d local addresses, more than %d", len(a.local), hev3.MaxLocalAddrs)
	}
	for f, src := range a.id.src {
		if src.IsValid() && hev3.FamilyOf(src) != hev3.Family(f) {
			t.Errorf("source %v for family %v", src, hev3.Family(f))
		}
	}
	if c := lookHost(); c.id != lookHost().id {
		t.Error("the cached look changed")
	}
}

// BenchmarkLook: one look at the host's network (at most one per second
// per process), and the cached one every race takes.
func BenchmarkLook(b *testing.B) {
	b.Run("look", func(b *testing.B) {
		for b.Loop() {
			look()
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			lookHost()
		}
	})
}
