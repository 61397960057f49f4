package dialer

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/durfmt"
	"github.com/eyeballs/dialer/internal/hev3"
)

// What a Dialer learns about the network the host is on, from its races
// (draft-ietf-happy-happyeyeballs-v3 §5.3, historical data, and §6): which
// paths were silent while others answered (a blackholed IPv6, blocked UDP),
// where QUIC works, and the round-trip time of each path. A path is a
// family and a transport (TCP or QUIC), to the host itself (loopback) or
// through its routes: what loopback shows says nothing about the network,
// and the draft forbids using history "across different network
// interfaces".
//
// The state is keyed by the network's identity (netID) and flushed when it
// changes ("The data SHOULD be flushed whenever a device changes the
// network"); a race started on one network teaches nothing to another.
// Facts expire: a silent path after netBrokenFor, a working one and an RTT
// after netWorksFor. A silent path is tried last, never dropped, so that a
// race whose other paths fail or are slow still tries it, and one that
// answers clears the fact at once: clients with different histories
// converge (§5.3). The network facts are not partitioned by trust: they
// are about the paths, not about a server or what it was verified as (the
// per-origin facts are in caps, by trust).
//
// Everything here is bounded by construction: one network, eight paths.

// Lifetimes of learned network state, and the least silence that counts.
const (
	// netBrokenFor is how long a path that was silent while another
	// answered goes last. When it expires the next race tries the
	// default order again (a re-probe); one still silent is learned
	// again.
	netBrokenFor = 10 * time.Minute
	// netWorksFor is how long a path that answered counts as working
	// (QUIC works: h3 first) and how long its RTT is used without a new
	// sample.
	netWorksFor = time.Hour
	// netLookEvery is how long one look at the host's network (its
	// interfaces and routes) is used before the next: the check before
	// each race costs one look per second at most (about 150 µs on a
	// host with a few interfaces; BenchmarkLook) and 70 ns otherwise.
	netLookEvery = time.Second
	// minSilence is the least time an attempt must have gone unanswered
	// to count as silent: the floor of an RTT-derived attempt delay
	// (draft §6, §9). A handshake that merely lost to a faster one a few
	// milliseconds later is not evidence of a broken path.
	minSilence = hev3.MinRTTAttemptDelay
)

// A pathClass says how a destination is reached: through the host's
// routes, or on the host itself.
type pathClass uint8

const (
	routed   pathClass = iota // through the host's interfaces and routes
	loopback                  // the host itself (127.0.0.0/8, ::1)
)

// A path is what the Dialer learns about: a class, a family and a
// transport.
type path struct {
	class pathClass
	fam   hev3.Family
	quic  bool
}

// numPaths is the number of paths: 2 classes × 2 families × 2 transports.
const numPaths = 8

func (p path) index() int { return int(p.class)<<2 | int(p.fam)<<1 | b2i(p.quic) }

func pathAt(i int) path {
	return path{class: pathClass(i >> 2), fam: hev3.Family(i >> 1 & 1), quic: i&1 == 1}
}

// pathTo returns the path to a over QUIC or TCP.
func pathTo(a netip.Addr, quic bool) path {
	a = a.Unmap()
	c := routed
	if a.IsLoopback() {
		c = loopback
	}
	return path{class: c, fam: hev3.FamilyOf(a), quic: quic}
}

// String names a path for the Report: "TCP over IPv6", "QUIC over IPv4
// to loopback".
func (p path) String() string {
	s := "TCP over " + p.fam.String()
	if p.quic {
		s = "QUIC over " + p.fam.String()
	}
	if p.class == loopback {
		s += " to loopback"
	}
	return s
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pathState is what was learned about one path. Zero times mean unknown.
type pathState struct {
	brokenUntil time.Time // silent while another path answered: last until then
	brokenAt    time.Time // when that was learned
	okUntil     time.Time // answered: works until then
	srtt        time.Duration
	rttUntil    time.Time // srtt is used until then
}

// A netID identifies the network the host is on: for each family, the
// source address the kernel picks to reach a global destination (invalid
// when it has no route), and a fingerprint of the interfaces that carry
// those addresses (their names, indexes, flags and addresses). A new
// address, a new interface, another default route or another network
// namespace changes it.
type netID struct {
	src [2]netip.Addr
	ifs uint64
}

// hostNet is one look at the host's network before a race.
type hostNet struct {
	id netID
	// local are the unicast addresses of the interfaces that are up,
	// loopback included, at most hev3.MaxLocalAddrs (hev3.Config.LocalAddrs).
	local []netip.Addr
	// conn is the set of families with a local address that is not
	// link-local (loopback counts: a host without ::1 has no IPv6 at
	// all), or 0 when both or neither (hev3.Config.Connectivity).
	conn hev3.Families
}

// netMemory is what a Dialer learned on the network the host is on. Its
// zero value is ready: it knows nothing.
type netMemory struct {
	mu    sync.Mutex
	known bool // id is set
	id    netID
	paths [numPaths]pathState
}

// view returns what was learned on network id, for a race that starts at
// now. A network other than the one of the last race flushes what was
// learned there.
func (n *netMemory) view(id netID, now time.Time) *netView {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.known || n.id != id {
		n.known, n.id, n.paths = true, id, [numPaths]pathState{}
	}
	return &netView{now: now, paths: n.paths}
}

// learn records what a race run on network id showed, at now. A race
// whose network is no longer the current one teaches nothing.
//
// A path answered when an attempt on it heard from the server: TCP up, a
// QUIC handshake done, or an error only the server's host could have sent
// (heardFrom). It works: any silence learned before is cleared, and the
// time from the attempt's start to TCP up (TCP) or to the handshake's end
// (QUIC) is an RTT sample, smoothed as RFC 6298 does (1/8 of each new
// sample).
//
// A path was silent when an attempt on it heard nothing for minSilence or
// longer and ended (failed, or lost to another) while an attempt of the
// same class that started no earlier answered: it had as much time as the
// other and got no answer; unless another attempt on the same path
// answered in the same race (one address was silent, not the path). A
// silent TCP attempt blames its family: both
// transports over it go last. A silent QUIC attempt blames QUIC over its
// family only: whether the family or UDP is at fault cannot be told, and
// TCP over the other family, which works in both cases, then goes first.
func (n *netMemory) learn(id netID, now time.Time, rep *Report) {
	if rep == nil || len(rep.results) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.known || n.id != id {
		return
	}
	for _, a := range rep.results {
		if !a.heard() {
			continue
		}
		st := &n.paths[pathTo(a.addr.Addr(), a.proto.QUIC()).index()]
		st.brokenUntil, st.brokenAt = time.Time{}, time.Time{}
		st.okUntil = now.Add(netWorksFor)
		if rtt := a.rttSample(); rtt > 0 {
			if st.srtt > 0 && now.Before(st.rttUntil) {
				st.srtt += (rtt - st.srtt) / 8
			} else {
				st.srtt = rtt
			}
			st.rttUntil = now.Add(netWorksFor)
		}
	}
	for _, a := range rep.results {
		if !silentAmong(a, rep.results) {
			continue
		}
		p := pathTo(a.addr.Addr(), a.proto.QUIC())
		blame := []path{p}
		if !p.quic {
			blame = append(blame, path{p.class, p.fam, true})
		}
		for _, b := range blame {
			st := &n.paths[b.index()]
			st.brokenUntil, st.brokenAt = now.Add(netBrokenFor), now
		}
	}
}

// silentAmong reports whether attempt a went silent while an attempt of
// its class among all, started no earlier, answered, and no attempt on
// what a's silence would blame answered: then one address was silent, not
// the path (a server whose AAAA record points nowhere on a network where
// IPv6 works). See learn.
func silentAmong(a attemptResult, all []attemptResult) bool {
	if a.heard() || a.end-a.start < minSilence || (a.outcome != outcomeFailed && a.outcome != outcomeLost) {
		return false
	}
	p := pathTo(a.addr.Addr(), a.proto.QUIC())
	other := false
	for _, b := range all {
		if !b.heard() {
			continue
		}
		q := pathTo(b.addr.Addr(), b.proto.QUIC())
		if q.class == p.class && q.fam == p.fam && (q.quic == p.quic || !p.quic) {
			return false // the path (TCP: the family) answered
		}
		if q.class == p.class && b.start >= a.start {
			other = true
		}
	}
	return other
}

// heard reports whether the attempt heard from the server's host. An
// early QUIC attempt is up before any packet came back: it heard nothing.
func (a attemptResult) heard() bool {
	return a.tcpUp || (a.connected && !a.early) || heardFrom(a.err)
}

// rttSample returns the attempt's RTT sample, or 0: TCP's handshake (the
// time to TCP up, or to the connection of a plain TCP attempt), QUIC's
// whole handshake (one round trip, and the crypto) unless an ECH retry
// made it two.
func (a attemptResult) rttSample() time.Duration {
	switch {
	case a.proto.QUIC() && a.connected && (a.ech == echRetried || a.ech == echDisabled):
		return 0
	case a.proto.QUIC() && a.connected && !a.early:
		return a.connectedAt - a.start
	case a.proto.QUIC():
		return 0
	case a.tcpUp:
		return a.tcpAt - a.start
	case a.connected && a.version == hev3.H1 && a.plain:
		return a.connectedAt - a.start
	}
	return 0
}

// A netView is a snapshot of what was learned, for one race: the race's
// state machine reads it as its hev3.History. It records what of it the
// machine used, for the Report. It is used by the dialing goroutine only.
type netView struct {
	now   time.Time
	paths [numPaths]pathState

	usedBroken [numPaths]bool
	// usedRTT holds, for each path whose attempt was timed by an RTT,
	// the path that RTT was measured on, plus one (0: none).
	usedRTT  [numPaths]int
	usedQUIC [2]bool // by class
}

var _ hev3.History = (*netView)(nil)

func (v *netView) broken(p path) bool { return v.now.Before(v.paths[p.index()].brokenUntil) }

// Broken reports whether e's path went silent lately (see netMemory.learn).
func (v *netView) Broken(e hev3.Endpoint) bool {
	p := pathTo(e.Addr.Addr(), e.Proto.QUIC())
	if !v.broken(p) {
		return false
	}
	v.usedBroken[p.index()] = true
	return true
}

// RTT returns the smoothed RTT of e's path, or of the other transport
// over the same family (the same route) when its own has none.
func (v *netView) RTT(e hev3.Endpoint) time.Duration {
	p := pathTo(e.Addr.Addr(), e.Proto.QUIC())
	for _, q := range []path{p, {p.class, p.fam, !p.quic}} {
		if st := v.paths[q.index()]; st.srtt > 0 && v.now.Before(st.rttUntil) {
			v.usedRTT[p.index()] = q.index() + 1
			return st.srtt
		}
	}
	return 0
}

// QUICWorks reports whether a QUIC handshake of a's class completed
// lately and QUIC over a's family has not gone silent since.
func (v *netView) QUICWorks(a netip.Addr) bool {
	p := pathTo(a, true)
	if v.broken(p) {
		return false
	}
	for _, f := range []hev3.Family{hev3.IPv6, hev3.IPv4} {
		if v.now.Before(v.paths[path{p.class, f, true}.index()].okUntil) {
			v.usedQUIC[p.class] = true
			return true
		}
	}
	return false
}

// shaped says, for the Report, what learned state the race used.
func (v *netView) shaped() []string {
	var out []string
	for i := range numPaths {
		if v.usedBroken[i] {
			st := v.paths[i]
			out = append(out, fmt.Sprintf("%s was silent on this network %s ago: tried last", pathAt(i), durfmt.Format(v.now.Sub(st.brokenAt))))
		}
	}
	for c, used := range v.usedQUIC {
		if used {
			where := "on this network"
			if pathClass(c) == loopback {
				where = "to loopback"
			}
			out = append(out, "QUIC works "+where+": h3 first on both families")
		}
	}
	for i := range numPaths {
		if from := v.usedRTT[i] - 1; from >= 0 {
			of := ""
			if from != i {
				of = " of " + pathAt(from).String()
			}
			out = append(out, fmt.Sprintf("%s: attempt delay 2×RTT (at least %s), RTT%s %s measured on this network",
				pathAt(i), durfmt.Format(hev3.MinRTTAttemptDelay), of, durfmt.Format(v.paths[from].srtt)))
		}
	}
	return out
}

// The representative global destinations whose routes identify the
// network (RFC 3849 and RFC 5737 documentation addresses): routeSource
// connects a UDP socket to them, which selects a route and a source
// address and sends nothing.
var netProbes = [2]netip.AddrPort{
	hev3.IPv6: netip.MustParseAddrPort("[2001:db8:ffff::1]:443"),
	hev3.IPv4: netip.MustParseAddrPort("198.51.100.1:443"),
}

// lookCache holds the last look at the host's network.
var lookCache struct {
	mu sync.Mutex
	at time.Time
	hn hostNet
}

// lookHost returns the host's network as seen now, looking again at most
// once per netLookEvery.
func lookHost() hostNet {
	now := time.Now()
	lookCache.mu.Lock()
	defer lookCache.mu.Unlock()
	if age := now.Sub(lookCache.at); lookCache.at.IsZero() || age < 0 || age >= netLookEvery {
		lookCache.hn, lookCache.at = look(), now
	}
	return lookCache.hn
}

// look looks at the host's network: the source address of a route to
// each of netProbes, and the interfaces.
func look() hostNet {
	var hn hostNet
	for f, dst := range netProbes {
		hn.id.src[f] = routeSource(dst)
	}
	ifs, _ := net.Interfaces()
	var have [2]bool
	type iface struct {
		net.Interface
		addrs []net.Addr
	}
	var up []iface
	holds := false
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		up = append(up, iface{ifc, addrs})
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			a, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			a = a.Unmap()
			if len(hn.local) < hev3.MaxLocalAddrs {
				hn.local = append(hn.local, a)
			}
			if !a.IsLinkLocalUnicast() {
				have[hev3.FamilyOf(a)] = true
			}
			if a == hn.id.src[hev3.IPv6] || a == hn.id.src[hev3.IPv4] {
				holds = true
			}
		}
	}
	if have[hev3.IPv6] != have[hev3.IPv4] {
		hn.conn = hev3.HaveIPv4
		if have[hev3.IPv6] {
			hn.conn = hev3.HaveIPv6
		}
	}
	// The fingerprint covers the interfaces that carry a route's source
	// address: other interfaces coming and going (a container's veth)
	// are not a change of network. Without any route, it covers all.
	h := fnv.New64a()
	for _, ifc := range up {
		carries := false
		var b strings.Builder
		fmt.Fprintf(&b, "%d %s %v %s", ifc.Index, ifc.Name, ifc.Flags, ifc.HardwareAddr)
		for _, ad := range ifc.addrs {
			fmt.Fprintf(&b, " %s", ad)
			if ipn, ok := ad.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(ipn.IP); ok && a.Unmap().IsValid() &&
					(a.Unmap() == hn.id.src[hev3.IPv6] || a.Unmap() == hn.id.src[hev3.IPv4]) {
					carries = true
				}
			}
		}
		if carries || !holds {
			b.WriteByte('\n')
			h.Write([]byte(b.String()))
		}
	}
	hn.id.ifs = h.Sum64()
	return hn
}

// routeSource returns the source address of the host's route to dst, or
// the zero Addr when it has none. A UDP socket's connect selects the route
// and the source address without sending anything; nothing is written to
// the socket, which is closed at once.
func routeSource(dst netip.AddrPort) netip.Addr {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}
	}
	return ua.AddrPort().Addr().Unmap()
}
