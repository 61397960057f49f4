package hev3

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// query is one DNS query the machine decided to ask. Its ID is set when it
// is sent (StartQuery returned by Poll).
type query struct {
	q     StartQuery
	done  bool
	addrs []netip.Addr // A or AAAA answer, filtered
}

// nameType identifies a query by normalized name and record type. The
// machine never asks the same nameType twice.
type nameType struct {
	name string
	typ  RecordType
}

// normalizeName lower-cases a DNS name and drops its trailing dot.
func normalizeName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// targetKey returns the normalized name whose A and AAAA answers give the
// addresses of a ServiceMode record: "" and "." mean the origin.
func (m *Machine) targetKey(target string) string {
	if target == "" || target == "." {
		return m.origin
	}
	return normalizeName(target)
}

func familyOfType(t RecordType) Family {
	if t == A {
		return IPv4
	}
	return IPv6
}

func typeOfFamily(f Family) RecordType {
	if f == IPv4 {
		return A
	}
	return AAAA
}

// allowed reports whether family f may be used.
func (m *Machine) allowed(f Family) bool {
	return !m.cfg.OnlyFamily || f == m.cfg.Only
}

// filterAddrs returns the first max distinct valid addresses of family f
// in addrs, IPv4 ones unmapped, in order. It returns nil if f is excluded.
// Its cost is O(len(addrs) * max), whatever the answer holds.
func (m *Machine) filterAddrs(addrs []netip.Addr, f Family, max int) []netip.Addr {
	if !m.allowed(f) {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if len(out) == max {
			break
		}
		if !a.IsValid() || FamilyOf(a) != f {
			continue
		}
		if f == IPv4 {
			a = a.Unmap()
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// normalizeServices returns the MaxServices ServiceMode records of lowest
// priority, sorted by priority, records of equal priority shuffled by
// Config.Shuffle (draft §5.2) or else in answer order, each copied with
// its usable hints (MaxHints per family) and the ALPN IDs the machine
// knows. AliasMode records (priority 0) are the resolver's to follow: one
// that gets here is ignored (RFC 9460 §2.4.1).
func (m *Machine) normalizeServices(in []ServiceInfo) []ServiceInfo {
	recs := make([]ServiceInfo, 0, len(in))
	for _, s := range in {
		if s.Priority != 0 {
			recs = append(recs, s) // a shallow copy: the slices are copied below
		}
	}
	slices.SortStableFunc(recs, func(a, b ServiceInfo) int {
		return cmp.Compare(a.Priority, b.Priority)
	})
	if m.cfg.Shuffle != nil {
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && recs[j].Priority == recs[i].Priority {
				j++
			}
			if run := recs[i:j]; len(run) > 1 {
				m.cfg.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
			}
			i = j
		}
	}
	recs = recs[:min(len(recs), MaxServices)]
	out := make([]ServiceInfo, len(recs))
	for i, s := range recs {
		s.ALPN = knownALPN(s.ALPN)
		s.IPv4Hints = m.filterAddrs(s.IPv4Hints, IPv4, MaxHints)
		s.IPv6Hints = m.filterAddrs(s.IPv6Hints, IPv6, MaxHints)
		if len(s.ECH) == 0 {
			s.ECH = nil
		} else {
			s.ECH = bytes.Clone(s.ECH)
		}
		out[i] = s
	}
	return out
}

// knownALPN returns the ALPN IDs of alpn that name an HTTP version the
// machine knows ("h3", "h2", "http/1.1"), once each, in order: at most
// three, however long the record's list.
func knownALPN(alpn []string) []string {
	var out []string
	for _, id := range alpn {
		if alpnVersions([]string{id}) != 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// addrsOf returns the resolved addresses of name for type t (nil if not
// answered).
func (m *Machine) addrsOf(name string, t RecordType) []netip.Addr {
	if q := m.byName[nameType{name, t}]; q != nil {
		return q.addrs
	}
	return nil
}

// issueQueries decides the queries to ask, the origin's HTTPS, AAAA and
// A, then, once the HTTPS answer is in, AAAA and A for the target name of
// the usable ServiceMode records (at most MaxTargets names), and appends a
// StartQuery for each one waiting while fewer than maxLiveQueries are in
// flight.
func (m *Machine) issueQueries(acts []Action) []Action {
	if m.cfg.Literal.IsValid() {
		return acts
	}
	if !m.queried {
		m.queried = true
		if !m.cfg.NoHTTPS {
			m.ask(m.cfg.Host, m.origin, HTTPS)
		}
		m.askAddrs(m.cfg.Host, m.origin)
	}
	if m.servicesNew {
		m.servicesNew = false
		recs, _ := m.records()
		for _, r := range recs {
			key := m.targetKey(r.Target)
			if key == m.origin || m.targets[key] {
				continue
			}
			if len(m.targets) == MaxTargets {
				break
			}
			m.targets[key] = true
			m.askAddrs(r.Target, key)
		}
	}
	for len(m.queue) > 0 && m.liveQueries < m.maxLiveQueries {
		q := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		q.q.ID = m.nextID
		m.nextID++
		m.queries[q.q.ID] = q
		m.liveQueries++
		acts = append(acts, q.q)
	}
	return acts
}

// askAddrs decides AAAA then A for name, skipping an excluded family and
// a family the host has no connectivity for (draft §4.1: "On a network
// with only IPv4 connectivity, it will send a query for A records"; on
// an IPv6-only network the draft allows AAAA alone, which is what the
// machine does: it synthesizes no NAT64 addresses, §8).
func (m *Machine) askAddrs(name, key string) {
	for _, f := range [...]Family{IPv6, IPv4} {
		if m.allowed(f) && (m.cfg.OnlyFamily || m.cfg.Connectivity == 0 || m.cfg.Connectivity.Has(f)) {
			m.ask(name, key, typeOfFamily(f))
		}
	}
}

// ask queues a query unless one for (key, t) was decided already.
func (m *Machine) ask(name, key string, t RecordType) {
	nt := nameType{key, t}
	if m.byName[nt] != nil {
		return
	}
	q := &query{q: StartQuery{ID: -1, Name: name, Type: t}}
	m.byName[nt] = q
	m.queue = append(m.queue, q)
}

// outstanding reports whether some query has not been answered, sent or
// waiting to be.
func (m *Machine) outstanding() bool {
	return m.liveQueries > 0 || len(m.queue) > 0
}

// hasAddrs reports whether some answer gave an address: a non-empty A or
// AAAA answer, or an HTTPS record with a usable hint.
func (m *Machine) hasAddrs() bool { return m.gotAddrs }

// preferredAnswered reports whether a query for the preferred family (any
// name) has completed, positively, empty or negatively.
func (m *Machine) preferredAnswered() bool { return m.prefAnswered }
