package hev3

import (
	"net/netip"
	"testing"
	"time"
)

// Tests of Config.History (issue 16): what the caller learned on this
// network about its paths reorders a race (draft §5.3, historical data),
// never removes an endpoint, and times it (§6, RTT).

// fakeHistory keys paths by family and transport, as the dialer does
// (it also keys them by loopback or not).
type fakeHistory struct {
	broken    map[pathOf]bool
	rtt       map[pathOf]time.Duration
	quicWorks bool
}

type pathOf struct {
	fam  Family
	quic bool
}

func pathOfEndpoint(e Endpoint) pathOf {
	return pathOf{FamilyOf(e.Addr.Addr()), e.Proto.QUIC()}
}

func (h *fakeHistory) Broken(e Endpoint) bool       { return h.broken[pathOfEndpoint(e)] }
func (h *fakeHistory) RTT(e Endpoint) time.Duration { return h.rtt[pathOfEndpoint(e)] }
func (h *fakeHistory) QUICWorks(netip.Addr) bool    { return h.quicWorks }

func withHistory(cfg Config, h *fakeHistory) Config {
	cfg.History = h
	return cfg
}

func brokenPaths(ps ...pathOf) map[pathOf]bool {
	m := make(map[pathOf]bool)
	for _, p := range ps {
		m[p] = true
	}
	return m
}

var (
	v6TCP  = pathOf{IPv6, false}
	v6QUIC = pathOf{IPv6, true}
	v4TCP  = pathOf{IPv4, false}
	v4QUIC = pathOf{IPv4, true}
)

// IPv6 known broken on this network: IPv4 goes first, at once, and IPv6
// is still tried, one delay later, when IPv4 does not answer: the race
// converges on a repaired network (draft §5.3).
func TestHistoryBrokenFamilyLast(t *testing.T) {
	h := &fakeHistory{broken: brokenPaths(v6TCP, v6QUIC)}
	r := resolved(t, withHistory(config(), h), list(v6, v6b), list(v4))
	r.expect("attempt 3 192.0.2.1:443 h2,h1").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1").wakeAt(500 * ms)
	r.at(500 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1")
	r.connected(510*ms, 4, H2).expect("cancel 3 lost", "cancel 5 lost", "succeed 4")

	// A failure of IPv4 frees the slot: IPv6 goes 10 ms after it started.
	r = resolved(t, withHistory(config(), h), list(v6), list(v4))
	r.expect("attempt 3 192.0.2.1:443 h2,h1")
	r.failed(ms, 3).expect().wakeAt(10 * ms)
	r.at(10 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1")
}

// Without the history, the same race starts on IPv6: the guard that the
// test above tests History, not the default order.
func TestHistoryNoneIPv6First(t *testing.T) {
	r := resolved(t, withHistory(config(), &fakeHistory{}), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
}

// A broken path at the head waits for the resolution delay (from the
// first answer, HTTPS at 0) while DNS may still bring another, as an
// avoided address does: AAAA at 1 ms, A at 20 ms, IPv4 first at 20 ms.
func TestHistoryBrokenWaitsForDNS(t *testing.T) {
	h := &fakeHistory{broken: brokenPaths(v6TCP, v6QUIC)}
	r := newRace(t, withHistory(config(), h)).queries()
	r.negative(0, 0).addrs(ms, 1, v6).expect().wakeAt(50 * ms)
	r.addrs(20*ms, 2, v4).expect("attempt 3 192.0.2.1:443 h2,h1")

	// No A answer: IPv6 goes at the end of the resolution delay.
	r = newRace(t, withHistory(config(), h)).queries()
	r.negative(0, 0).addrs(ms, 1, v6).expect().wakeAt(50 * ms)
	r.at(50 * ms).expect("attempt 3 [2001:db8::1]:443 h2,h1")
}

// UDP blocked on this network (QUIC silent on both families): TCP goes
// first on both families, h3 after them, one attempt delay each.
func TestHistoryBrokenQUICLast(t *testing.T) {
	h := &fakeHistory{broken: brokenPaths(v6QUIC, v4QUIC)}
	r := newRace(t, withHistory(config(), h)).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2").wakeAt(500 * ms)
	// The fallback tier (TCP offering h2 and h1 on the origin's
	// addresses), then h3.
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2,h1")
	r.at(750 * ms).expect("attempt 6 192.0.2.1:443 h2,h1")
	r.at(1000 * ms).expect("attempt 7 [2001:db8::1]:443 h3")
	r.at(1250 * ms).expect("attempt 8 192.0.2.1:443 h3")

	// Only QUIC over IPv6 silent (a silent QUIC on IPv6 and TCP on IPv4
	// answered: the family or UDP, the dialer cannot tell): TCP over IPv4,
	// which works whatever the fault, goes first.
	h = &fakeHistory{broken: brokenPaths(v6QUIC)}
	r = newRace(t, withHistory(config(), h)).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 192.0.2.1:443 h2").wakeAt(250 * ms)
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h3")
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2")
	r.at(750 * ms).expect("attempt 6 [2001:db8::1]:443 h2,h1")
	r.at(1000 * ms).expect("attempt 7 192.0.2.1:443 h2,h1")
	r.at(1250 * ms).expect("attempt 8 [2001:db8::1]:443 h3")
}

// Broken paths go after avoided addresses, and before unusable ones.
func TestHistoryBrokenAfterAvoided(t *testing.T) {
	h := &fakeHistory{broken: brokenPaths(v6TCP)}
	cfg := withHistory(config(), h)
	cfg.Avoid = parseAddrPorts("192.0.2.1:443")
	cfg.LocalAddrs = parseAddrs(v6, v4, "::1", "127.0.0.1") // both families usable
	r := resolved(t, cfg, list(v6), list(v4, v4b))
	r.expect("attempt 3 192.0.2.2:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2,h1")

	cfg.LocalAddrs = parseAddrs(v4) // IPv6 unusable: after the broken path
	h = &fakeHistory{broken: brokenPaths(v4TCP)}
	cfg.History, cfg.Avoid = h, nil
	r = resolved(t, cfg, list(v6), list(v4))
	r.expect("attempt 3 192.0.2.1:443 h2,h1")
	r.at(250 * ms).expect("attempt 4 [2001:db8::1]:443 h2,h1")
}

// Draft §6: the RTT of the attempt's own path times its slot, ahead of
// Config.RTT; a path without history falls back to Config.RTT, then to
// the default.
func TestHistoryRTT(t *testing.T) {
	h := &fakeHistory{rtt: map[pathOf]time.Duration{v6QUIC: 70 * ms, v4TCP: 30 * ms}}
	cfg := withHistory(config(), h)
	cfg.RTT[IPv6] = 400 * ms
	r := newRace(t, cfg).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(140 * ms)
	// TCP over IPv4: 2×30 ms is below the floor.
	r.at(140 * ms).expect("attempt 4 192.0.2.1:443 h2").wakeAt(240 * ms)
	// QUIC over IPv4 has no history, nor has IPv4 in Config.RTT.
	r.at(240 * ms).expect("attempt 5 192.0.2.1:443 h3").wakeAt(490 * ms)
	// TCP over IPv6: no path history, Config.RTT[IPv6].
	r.at(490 * ms).expect("attempt 6 [2001:db8::1]:443 h2").wakeAt(1290 * ms)

	// A configured delay wins over every RTT.
	cfg.AttemptDelay = 300 * ms
	r = newRace(t, cfg).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 [2001:db8::1]:443 h3").wakeAt(300 * ms)
}

// §6.1 with history: progress extends the slot by the path's delay.
func TestHistoryRTTProgress(t *testing.T) {
	h := &fakeHistory{rtt: map[pathOf]time.Duration{v6TCP: 60 * ms}}
	r := resolved(t, withHistory(config(), h), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(120 * ms)
	r.at(60 * ms)
	r.m.OnProgress(r.clock(), 3)
	r.expect().wakeAt(180 * ms)
	r.at(180 * ms).expect("attempt 4 192.0.2.1:443 h2,h1")
}

// A network where QUIC works: h3 on both families first, then TCP (the
// diagonal would put TCP over IPv4 second). pick keeps that order.
func TestHistoryQUICWorksOrder(t *testing.T) {
	r := newRace(t, withHistory(config(), &fakeHistory{quicWorks: true})).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 [2001:db8::1]:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h3")
	r.at(500 * ms).expect("attempt 5 [2001:db8::1]:443 h2")
	r.at(750 * ms).expect("attempt 6 192.0.2.1:443 h2")

	// Without it, the diagonal.
	r = newRace(t, withHistory(config(), &fakeHistory{})).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 [2001:db8::1]:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2")
}

// QUIC works but IPv6 is broken: h3 over IPv4 first, h3 over IPv6 last.
func TestHistoryQUICWorksIPv6Broken(t *testing.T) {
	h := &fakeHistory{quicWorks: true, broken: brokenPaths(v6TCP, v6QUIC)}
	r := newRace(t, withHistory(config(), h)).queries()
	r.https(0, 0, rec(1, "", "h3", "h2")).addrs(0, 1, v6).addrs(0, 2, v4).
		expect("attempt 3 192.0.2.1:443 h3")
	r.at(250 * ms).expect("attempt 4 192.0.2.1:443 h2")
	// The fallback tier (TCP offering h2 and h1 on the origin's
	// addresses) comes before the broken paths.
	r.at(500 * ms).expect("attempt 5 192.0.2.1:443 h2,h1")
	r.at(750 * ms).expect("attempt 6 [2001:db8::1]:443 h3")
	r.at(1000 * ms).expect("attempt 7 [2001:db8::1]:443 h2")
}
