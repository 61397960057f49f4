package hev3

import (
	"net/netip"
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
		if len(m.protos(alpnVersions(s.ALPN))) == 0 {
			continue
		}
		out = append(out, s)
	}
	return out, ech
}

// candidates returns every endpoint known now, best first, without
// duplicates: the HTTPS tier, record by record, then (without ECH) the
// fallback tier on the origin's addresses and port.
func (m *Machine) candidates() []Endpoint {
	var out []Endpoint
	seen := make(map[endpointKey]bool)
	add := func(eps []Endpoint) {
		for _, e := range eps {
			if k := keyOf(e); !seen[k] {
				seen[k] = true
				out = append(out, e)
			}
		}
	}
	recs, ech := m.records()
	for _, r := range recs {
		add(m.recordEndpoints(r))
	}
	if !ech {
		add(m.fallbackEndpoints())
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
// O(MaxEndpoints). Endpoints
// whose address and transport already came up in this race (a connection
// that then lacked a capability) go first: that path is known to work,
// the others may be blackholed.
//
// Endpoints on an address in Config.Avoid go last.
func (m *Machine) pending() []Endpoint {
	var known, rest, avoided []Endpoint
	for _, e := range m.candidates() {
		switch {
		case m.tried[keyOf(e)]:
		case m.reachable[transportOf(e)]:
			known = append(known, e)
		case m.avoid[e.Addr]:
			avoided = append(avoided, e)
		default:
			rest = append(rest, e)
		}
	}
	return append(append(known, rest...), avoided...)
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
	return interleave(addrs, m.protos(alpnVersions(r.ALPN)), port, r.ECH, m.prefer)
}

// fallbackEndpoints returns the origin's addresses (or the IP literal) on
// the origin's port: QUIC when Config.KnownH3 says the origin speaks h3,
// and TCP with the enabled TCP versions. QUIC on another port
// (Config.H3Port, from Alt-Svc) comes first as a group, as alt-svc
// endpoints do in the reference crate.
func (m *Machine) fallbackEndpoints() []Endpoint {
	v := m.versions &^ Versions(H3)
	quic := m.cfg.KnownH3 && m.versions.Has(H3)
	altPort := quic && m.cfg.H3Port != 0 && m.cfg.H3Port != m.cfg.Port
	if quic && !altPort {
		v |= Versions(H3)
	}
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
	eps := interleave(addrs, m.protos(v), m.cfg.Port, nil, m.prefer)
	if altPort {
		eps = append(interleave(addrs, []Proto{ProtoH3}, m.cfg.H3Port, nil, m.prefer), eps...)
	}
	return eps
}

func containsAddr(list []hostAddr, a netip.Addr) bool {
	for _, h := range list {
		if h.addr == a {
			return true
		}
	}
	return false
}

// interleave deals endpoints from FIFO queues keyed by (protocol, family),
// ordered by protocol (protos is already in preference order) and then
// preferred family first, one from each non-empty queue per round.
func interleave(addrs []hostAddr, protos []Proto, port uint16, ech []byte, prefer Family) []Endpoint {
	other := IPv4
	if prefer == IPv4 {
		other = IPv6
	}
	var queues [][]Endpoint
	for _, p := range protos {
		for _, f := range [...]Family{prefer, other} {
			var q []Endpoint
			for _, a := range addrs {
				if FamilyOf(a.addr) == f {
					q = append(q, Endpoint{
						Addr:  netip.AddrPortFrom(a.addr, port),
						Proto: p,
						ECH:   ech,
						Hint:  a.hint,
					})
				}
			}
			if len(q) > 0 {
				queues = append(queues, q)
			}
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
