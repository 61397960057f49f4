package hev3

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// query is one DNS query the machine asked for.
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

// filterAddrs returns the valid addresses of family f in addrs, IPv4 ones
// unmapped, in order, without duplicates. It returns nil if f is excluded.
func (m *Machine) filterAddrs(addrs []netip.Addr, f Family) []netip.Addr {
	if !m.allowed(f) {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
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

// normalizeServices copies records, keeping only usable hints and sorting
// them stably by priority.
func (m *Machine) normalizeServices(in []ServiceInfo) []ServiceInfo {
	out := make([]ServiceInfo, len(in))
	for i, s := range in {
		s.ALPN = slices.Clone(s.ALPN)
		s.IPv4Hints = m.filterAddrs(s.IPv4Hints, IPv4)
		s.IPv6Hints = m.filterAddrs(s.IPv6Hints, IPv6)
		if len(s.ECH) == 0 {
			s.ECH = nil
		} else {
			s.ECH = bytes.Clone(s.ECH)
		}
		out[i] = s
	}
	slices.SortStableFunc(out, func(a, b ServiceInfo) int {
		return cmp.Compare(a.Priority, b.Priority)
	})
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

// issueQueries appends a StartQuery for every query not issued yet: the
// origin's HTTPS, AAAA and A, then AAAA and A for the target name of every
// usable ServiceMode record.
func (m *Machine) issueQueries(acts []Action) []Action {
	if m.cfg.Literal.IsValid() {
		return acts
	}
	if !m.queried {
		m.queried = true
		if !m.cfg.NoHTTPS {
			acts = m.ask(acts, m.cfg.Host, m.origin, HTTPS)
		}
		acts = m.askAddrs(acts, m.cfg.Host, m.origin)
	}
	recs, _ := m.records()
	for _, r := range recs {
		if key := m.targetKey(r.Target); key != m.origin {
			acts = m.askAddrs(acts, r.Target, key)
		}
	}
	return acts
}

// askAddrs asks for AAAA then A for name, skipping an excluded family.
func (m *Machine) askAddrs(acts []Action, name, key string) []Action {
	for _, f := range [...]Family{IPv6, IPv4} {
		if m.allowed(f) {
			acts = m.ask(acts, name, key, typeOfFamily(f))
		}
	}
	return acts
}

// ask issues a query unless one for (key, t) exists.
func (m *Machine) ask(acts []Action, name, key string, t RecordType) []Action {
	nt := nameType{key, t}
	if m.byName[nt] != nil {
		return acts
	}
	q := &query{q: StartQuery{ID: m.nextID, Name: name, Type: t}}
	m.nextID++
	m.queries[q.q.ID] = q
	m.byName[nt] = q
	return append(acts, q.q)
}

// outstanding reports whether some query has not been answered.
func (m *Machine) outstanding() bool {
	for _, q := range m.queries {
		if !q.done {
			return true
		}
	}
	return false
}

// hasAddrs reports whether some answer gave an address: a non-empty A or
// AAAA answer, or an HTTPS record with a usable hint.
func (m *Machine) hasAddrs() bool {
	for _, q := range m.queries {
		if len(q.addrs) > 0 {
			return true
		}
	}
	for _, s := range m.services {
		if len(s.IPv4Hints) > 0 || len(s.IPv6Hints) > 0 {
			return true
		}
	}
	return false
}

// preferredAnswered reports whether a query for the preferred family (any
// name) has completed, positively, empty or negatively.
func (m *Machine) preferredAnswered() bool {
	t := typeOfFamily(m.prefer)
	for _, q := range m.queries {
		if q.done && q.q.Type == t {
			return true
		}
	}
	return false
}
