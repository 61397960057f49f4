package hev3

import (
	"net/netip"
	"slices"
)

// endpointKey identifies an endpoint: the machine never attempts the same
// address, port, protocol and ECH configuration twice.
type endpointKey struct {
	addr  netip.AddrPort
	proto Proto
	ech   string
}

func keyOf(e Endpoint) endpointKey {
	return endpointKey{e.Addr, e.Proto, string(e.ECH)}
}

// hostAddr is an address and whether it came from an SVCB hint.
type hostAddr struct {
	addr netip.Addr
	hint bool
}

// alpnVersions maps ALPN protocol IDs to HTTP versions, ignoring unknown ones.
func alpnVersions(alpn []string) Versions {
	var v Versions
	for _, id := range alpn {
		switch id {
		case "h3":
			v |= Versions(H3)
		case "h2":
			v |= Versions(H2)
		case "http/1.1":
			v |= Versions(H1)
		}
	}
	return v
}

// recordVersions returns the HTTP versions to offer at the endpoint of an
// HTTPS record whose SVCB ALPN set is alpn. A set of the default
// "http/1.1" alone (a record without alpn, or the endpoint RFC 9460 §3
// appends after an AliasMode chain) gets h2 offered beside it: §7.1.2
// builds the ProtocolNameList of each transport the set implies (TLS over
// TCP here) from "all the client's supported ALPN protocols for that
// transport, without regard to the SVCB ALPN set". Other sets are taken
// as they are: their TCP attempt offers the TCP versions they name.
func recordVersions(alpn []string) Versions {
	v := alpnVersions(alpn)
	if v == Versions(H1) {
		v |= Versions(H2)
	}
	return v
}

// protos returns the attempts to make for the HTTP versions v, restricted to
// the enabled ones, in preference order: QUIC first, then one TCP attempt
// offering every enabled TCP version.
func (m *Machine) protos(v Versions) []Proto {
	v &= m.versions
	var ps []Proto
	if v.Has(H3) {
		ps = append(ps, ProtoH3)
	}
	switch {
	case v.Has(H2) && v.Has(H1):
		ps = append(ps, ProtoH2OrH1)
	case v.Has(H2):
		ps = append(ps, ProtoH2)
	case v.Has(H1):
		ps = append(ps, ProtoH1)
	}
	return ps
}

// records returns the HTTPS records the race uses, by priority, and whether
// some record carries ECH. When one does, records without ECH are dropped
// (and so is the fallback tier). Records that yield no protocol are dropped.
func (m *Machine) records() ([]ServiceInfo, bool) {
	ech := false
	for _, s := range m.services {
		if s.ECH != nil {
			ech = true
		}
	}
	var out []ServiceInfo
	for _, s := range m.services {
		if ech && s.ECH == nil {
			continue
		}
		if len(m.protos(recordVersions(s.ALPN))) == 0 {
			continue
		}
		out = append(out, s)
	}
	return out, ech
}

// cand is an endpoint not attempted yet and the group it belongs to in
// the pending list: the index of its HTTPS record, or of the fallback
// tier after them (draft §5.2), or a negative tier (see pending).
type cand struct {
	ep    Endpoint
	group int
}

// Groups of the tiers that pending puts around the ordinary groups.
const (
	groupKnown    = -1 // reachable in this race: first
	groupAvoided  = -2 // Config.Avoid: after the ordinary groups
	groupBroken   = -4 // History.Broken: after the avoided ones
	groupUnusable = -3 // RFC 6724 rule 1: last
)

// candidates returns every endpoint known now, best first, without
// duplicates: the HTTPS tier, record by record (each its own group,
// draft §5.2), then (without ECH) the fallback tier on the origin's
// addresses and port, a group of its own after the records ("the
// unassociated addresses SHOULD be put in a group that is prioritized at
// the end of the list").
func (m *Machine) candidates() []cand {
	var out []cand
	seen := make(map[endpointKey]bool)
	add := func(eps []Endpoint, group int) {
		for _, e := range eps {
			if k := keyOf(e); !seen[k] {
				seen[k] = true
				out = append(out, cand{e, group})
			}
		}
	}
	recs, ech := m.records()
	for i, r := range recs {
		add(m.recordEndpoints(r), i)
	}
	if !ech {
		add(m.fallbackEndpoints(), len(recs))
	}
	return out
}

// transportKey is an address and a transport: QUIC or TCP.
type transportKey struct {
	addr netip.AddrPort
	quic bool
}

func transportOf(e Endpoint) transportKey { return transportKey{e.Addr, e.Proto.QUIC()} }

// pending returns the candidates not attempted yet, best first, in
// O(MaxEndpoints). Endpoints whose address and transport already came up
// in this race (a connection that then lacked a capability) go first:
// that path is known to work, the others may be blackholed.
//
// Endpoints on an address in Config.Avoid go after the ordinary groups,
// then those on a path History says is broken on this network (draft
// §5.3: historical data reorders, it never removes), and endpoints the
// host cannot reach (RFC 6724 rule 1: a family without connectivity or
// source address) go last.
func (m *Machine) pending() []cand {
	var known, rest, avoided, broken, unusable []cand
	for _, c := range m.candidates() {
		switch {
		case m.tried[keyOf(c.ep)]:
		case m.reachable[transportOf(c.ep)]:
			known = append(known, cand{c.ep, groupKnown})
		case !m.usable(FamilyOf(c.ep.Addr.Addr())):
			unusable = append(unusable, cand{c.ep, groupUnusable})
		case m.broken(c.ep):
			broken = append(broken, cand{c.ep, groupBroken})
		case m.avoid[c.ep.Addr]:
			avoided = append(avoided, cand{c.ep, groupAvoided})
		default:
			rest = append(rest, c)
		}
	}
	return append(append(append(append(known, rest...), avoided...), broken...), unusable...)
}

// broken reports whether History says e's path is broken.
func (m *Machine) broken(e Endpoint) bool {
	return m.cfg.History != nil && m.cfg.History.Broken(e)
}

// recordEndpoints returns the endpoints of one ServiceMode record: the
// target's resolved AAAA and A addresses, then its IPv6 and IPv4 hints, on
// the record's port, for each protocol its ALPN allows.
func (m *Machine) recordEndpoints(r ServiceInfo) []Endpoint {
	key := m.targetKey(r.Target)
	var addrs []hostAddr
	add := func(list []netip.Addr, hint bool) {
		for _, a := range list {
			if !containsAddr(addrs, a) {
				addrs = append(addrs, hostAddr{a, hint})
			}
		}
	}
	add(m.addrsOf(key, AAAA), false)
	add(m.addrsOf(key, A), false)
	add(r.IPv6Hints, true)
	add(r.IPv4Hints, true)
	port := r.Port
	if port == 0 {
		port = m.cfg.Port
	}
	var lanes []lane
	for _, p := range m.protos(recordVersions(r.ALPN)) {
		lanes = append(lanes, lane{p, port})
	}
	return m.interleave(addrs, lanes, r.ECH)
}

// fallbackEndpoints returns the origin's addresses (or the IP literal) on
// the origin's port: QUIC when Config.KnownH3 says the origin speaks h3,
// on Config.H3Port if set (from Alt-Svc), and TCP with the enabled TCP
// versions.
func (m *Machine) fallbackEndpoints() []Endpoint {
	var addrs []hostAddr
	if m.cfg.Literal.IsValid() {
		if m.allowed(FamilyOf(m.cfg.Literal)) {
			addrs = append(addrs, hostAddr{addr: m.cfg.Literal})
		}
	} else {
		for _, t := range [...]RecordType{AAAA, A} {
			for _, a := range m.addrsOf(m.origin, t) {
				addrs = append(addrs, hostAddr{addr: a})
			}
		}
	}
	var lanes []lane
	if m.cfg.KnownH3 && m.versions.Has(H3) {
		port := m.cfg.Port
		if m.cfg.H3Port != 0 {
			port = m.cfg.H3Port
		}
		lanes = append(lanes, lane{ProtoH3, port})
	}
	for _, p := range m.protos(m.versions &^ Versions(H3)) {
		lanes = append(lanes, lane{p, m.cfg.Port})
	}
	return m.interleave(addrs, lanes, nil)
}

func containsAddr(list []hostAddr, a netip.Addr) bool {
	for _, h := range list {
		if h.addr == a {
			return true
		}
	}
	return false
}

// lane is one way of dialing an address: a protocol on a port.
type lane struct {
	proto Proto
	port  uint16
}

// diagonal reports whether a group with a QUIC and a TCP lane, whose best
// address is best, is dealt diagonally: not for WebTransport, and not
// where History says QUIC works. See interleave.
func (m *Machine) diagonal(best netip.Addr) bool {
	if m.cfg.Need == NeedWebTransport {
		return false
	}
	return m.cfg.History == nil || !m.cfg.History.QUICWorks(best)
}

// interleave returns the endpoints of one group: addrs sorted by RFC 6724
// (draft §5.3), then dealt from FIFO queues keyed by (lane, family), one
// from each non-empty queue per round (§5.3: "interleave address
// families", Preferred Address Family Count 1).
//
// The first family is the family of the best address by RFC 6724, which
// is the preferred family unless the rules rank the other above it (say,
// IPv6 only unique-local, 6to4 or Teredo; IPv4 preferred, §10.3).
//
// Order within a round, with lanes in preference order (QUIC first) and
// F the first family, O the other:
//
//   - h3 preferred but not required (plain HTTP, WebSocket): diagonal,
//     h3 on F, TCP on O, h3 on O, TCP on F. The two common faults each
//     cost one attempt delay: with UDP blocked, TCP (on O) starts at the
//     second slot; with F broken (IPv6 blackholed), O (over TCP, which
//     works whatever UDP does) starts at the second slot. Dealing h3 on
//     both families first costs blocked UDP two delays; TCP on F second
//     costs a broken F two.
//   - WebTransport: h3 on F, h3 on O, TCP on F, TCP on O. h3 is strongly
//     preferred there: unreliable datagrams exist only on h3, and a
//     WebTransport over HTTP/2 is a degraded session. With F broken, h3
//     on O starts at the second slot and wins with datagrams; the
//     diagonal would start TCP on O there instead, and that TCP would
//     usually win the race against an h3 on O started a slot later,
//     handing the session to h2 on every IPv6-broken network. The price
//     is blocked UDP: TCP waits for two slots (both h3 attempts), and
//     after two silent h3 attempts UDP, not F, is the likely fault, so
//     TCP goes on F first.
//   - Any dial on a network where History says QUIC works (draft §5.3,
//     historical data): the WebTransport order. Blocked UDP, against
//     which the diagonal hedges, is not this network's fault, and h3 on
//     O at the second slot wins over h3 where F is broken.
//
// Within a family, resolved addresses come before hints (hints stand in
// for the answers, RFC 9460 §7.3, and are kept as a last resort).
// Addresses of a family the host cannot use (RFC 6724 rule 1) are dealt
// after the others, among themselves; pending moves them to the end.
func (m *Machine) interleave(addrs []hostAddr, lanes []lane, ech []byte) []Endpoint {
	if len(addrs) == 0 || len(lanes) == 0 {
		return nil
	}
	addrs, first := m.sortAddrs(addrs)
	var usable, unusable []hostAddr
	for _, a := range addrs {
		if m.usable(FamilyOf(a.addr)) {
			usable = append(usable, a)
		} else {
			unusable = append(unusable, a)
		}
	}
	return append(m.deal(usable, lanes, ech, first), m.deal(unusable, lanes, ech, first)...)
}

// deal deals addrs, sorted, over lanes in the order interleave describes.
//
// Endpoints on paths History says are broken are dealt after the others,
// in the same way among themselves, and the others are dealt as if the
// broken ones did not exist: with h3 broken on both families (blocked
// UDP) TCP goes on F first, as with a single lane; with F broken on both
// transports, O leads with h3, as with a single family; with only h3 on F
// broken (a silent QUIC over IPv6 while TCP over IPv4 answered: the
// family or UDP, nobody can tell) the diagonal goes on without it, TCP on
// O first, which works whatever the fault.
func (m *Machine) deal(addrs []hostAddr, lanes []lane, ech []byte, first Family) []Endpoint {
	if len(addrs) == 0 {
		return nil
	}
	good := make([][2][]Endpoint, len(lanes)) // by lane and family
	bad := make([][2][]Endpoint, len(lanes))
	for l, ln := range lanes {
		for _, a := range addrs {
			e := Endpoint{
				Addr:  netip.AddrPortFrom(a.addr, ln.port),
				Proto: ln.proto,
				ECH:   ech,
				Hint:  a.hint,
			}
			f := FamilyOf(a.addr)
			if m.broken(e) {
				bad[l][f] = append(bad[l][f], e)
			} else {
				good[l][f] = append(good[l][f], e)
			}
		}
	}
	best := addrs[0].addr
	return append(m.dealQueues(good, lanes, first, best), m.dealQueues(bad, lanes, first, best)...)
}

// dealQueues deals the endpoints queued by lane and family, one from each
// non-empty queue per round, in the order of interleave.
func (m *Machine) dealQueues(qs [][2][]Endpoint, lanes []lane, first Family, best netip.Addr) []Endpoint {
	has := func(f Family) bool {
		return slices.ContainsFunc(qs, func(q [2][]Endpoint) bool { return len(q[f]) > 0 })
	}
	if !has(first) {
		first = 1 - first // so that the diagonal does not start on TCP
	}
	used := func(l int) bool { return len(qs[l][IPv6])+len(qs[l][IPv4]) > 0 }
	fams := [2]Family{first, 1 - first}
	type slot struct{ lane, fam int }
	var order []slot
	if len(lanes) == 2 && lanes[0].proto.QUIC() && !lanes[1].proto.QUIC() && used(0) && used(1) && m.diagonal(best) {
		order = []slot{{0, 0}, {1, 1}, {0, 1}, {1, 0}}
	} else {
		for l := range lanes {
			order = append(order, slot{l, 0}, slot{l, 1})
		}
	}
	var queues [][]Endpoint
	for _, s := range order {
		if q := qs[s.lane][fams[s.fam]]; len(q) > 0 {
			queues = append(queues, q)
		}
	}
	var out []Endpoint
	for len(queues) > 0 {
		live := queues[:0]
		for _, q := range queues {
			out = append(out, q[0])
			if len(q) > 1 {
				live = append(live, q[1:])
			}
		}
		queues = live
	}
	return out
}

// sortAddrs sorts addrs in place, stably: resolved addresses before hints,
// then by RFC 6724 destination address selection. It returns them and the
// family of the best address by RFC 6724 alone, hint or not.
func (m *Machine) sortAddrs(addrs []hostAddr) ([]hostAddr, Family) {
	ranks := make(map[netip.Addr]addrRank, len(addrs))
	for _, a := range addrs {
		ranks[a.addr] = m.rank(a.addr)
	}
	// The best address of each family; the first family is the better
	// of the two, the preferred family on a tie.
	var best [2]*addrRank
	for _, a := range addrs {
		r, f := ranks[a.addr], FamilyOf(a.addr)
		if best[f] == nil || compareRank(r, *best[f]) < 0 {
			best[f] = &r
		}
	}
	first, other := m.prefer, 1-m.prefer
	if best[first] == nil || best[other] != nil && compareRank(*best[other], *best[first]) < 0 {
		first = other
	}
	slices.SortStableFunc(addrs, func(a, b hostAddr) int {
		if a.hint != b.hint {
			if a.hint {
				return 1
			}
			return -1
		}
		return compareRank(ranks[a.addr], ranks[b.addr])
	})
	return addrs, first
}
