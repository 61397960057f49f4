package hev3

import (
	"cmp"
	"math/bits"
	"net/netip"
)

// Destination address selection, RFC 6724 §6, as draft §5.3 requires
// ("the client MUST sort the addresses using Destination Address
// Selection"), for a client that may not know its source addresses.
//
// Rules applied, in order:
//
//	1 avoid unusable destinations: a family the host has no connectivity
//	  for (Config.Connectivity) or, with Config.LocalAddrs, no source
//	  address of;
//	2 prefer matching scope        (needs Config.LocalAddrs);
//	5 prefer matching label        (needs Config.LocalAddrs);
//	6 prefer higher precedence     (the §2.1 policy table; IPv4 raised
//	  to precedence 100 when IPv4 is preferred, as §10.3 shows);
//	8 prefer smaller scope         (loopback and link-local first);
//	9 longest matching prefix      (needs Config.LocalAddrs; IPv6 only);
//	10 otherwise keep the order    (the DNS answer's; sorts are stable).
//
// Rules 3 (deprecated), 4 (home address) and 7 (native transport) need
// interface state the machine does not have; 6to4, Teredo and the other
// transition prefixes are still ranked below native IPv6 by the
// precedence of rule 6. Rule 9 is not applied to IPv4, where it would
// undo the DNS server's round robin (Go's net package does the same,
// golang.org/issue/13283). The draft's extra rules between 8 and 9 (lower
// RTT, used before) need per-address history the caller does not keep
// yet.

// policy is one row of the RFC 6724 §2.1 default policy table.
type policy struct {
	prefix netip.Prefix
	prec   uint8
	label  uint8
}

// policyTable is the §2.1 default policy table, longest prefix first.
// IPv4 addresses are looked up as IPv4-mapped IPv6 addresses.
var policyTable = []policy{
	{netip.MustParsePrefix("::1/128"), 50, 0},
	{netip.MustParsePrefix("::ffff:0:0/96"), 35, 4},
	{netip.MustParsePrefix("::/96"), 1, 3},
	{netip.MustParsePrefix("2001::/32"), 5, 5},
	{netip.MustParsePrefix("2002::/16"), 30, 2},
	{netip.MustParsePrefix("3ffe::/16"), 1, 12},
	{netip.MustParsePrefix("fec0::/10"), 1, 11},
	{netip.MustParsePrefix("fc00::/7"), 3, 13},
	{netip.MustParsePrefix("::/0"), 40, 1},
}

// preferIPv4Precedence is the precedence RFC 6724 §10.3 gives
// ::ffff:0:0/96 to prefer IPv4 over IPv6.
const preferIPv4Precedence = 100

func classify(a netip.Addr) policy {
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
	}
	for _, p := range policyTable {
		if p.prefix.Contains(a) {
			return p
		}
	}
	return policy{}
}

// Scope values of RFC 6724 §3.1 (RFC 4291 §2.7 for multicast).
const (
	scopeLinkLocal = 0x2
	scopeSiteLocal = 0x5
	scopeGlobal    = 0xe
)

// scopeOf returns the scope of a (RFC 6724 §3.1): loopback and
// link-local, IPv4 127.0.0.0/8 and 169.254.0.0/16 included, are
// link-local; fec0::/10 is site-local; IPv6 multicast has its own scope
// field; everything else, unique local addresses included, is global.
func scopeOf(a netip.Addr) uint8 {
	a = a.Unmap()
	if a.IsLoopback() || a.IsLinkLocalUnicast() {
		return scopeLinkLocal
	}
	if a.Is6() {
		b := a.As16()
		if a.IsMulticast() {
			return b[1] & 0xf
		}
		if b[0] == 0xfe && b[1]&0xc0 == 0xc0 {
			return scopeSiteLocal
		}
	}
	return scopeGlobal
}

// commonPrefixLen is CommonPrefixLen(S, D) of RFC 6724 §2.2 for IPv6,
// up to the 64 bits of a typical prefix.
func commonPrefixLen(s, d netip.Addr) int {
	a, b := s.As16(), d.As16()
	n := 0
	for i := range 8 {
		x := a[i] ^ b[i]
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// addrRank is what the rules need to know of one destination.
type addrRank struct {
	unusable   bool  // rule 1
	scopeMatch bool  // rule 2
	labelMatch bool  // rule 5
	prec       uint8 // rule 6
	scope      uint8 // rule 8
	cpl        int   // rule 9; 0 when not applied
	v6         bool
}

// usable reports whether the host can send to family f: RFC 6724 rule 1
// as far as the machine knows (connectivity, local addresses).
func (m *Machine) usable(f Family) bool {
	if m.cfg.OnlyFamily && f == m.cfg.Only {
		return true
	}
	if m.cfg.Connectivity != 0 && !m.cfg.Connectivity.Has(f) {
		return false
	}
	return len(m.local) == 0 || m.haveLocal[f]
}

// rank returns the rank of destination d.
func (m *Machine) rank(d netip.Addr) addrRank {
	d = d.Unmap()
	p := classify(d)
	r := addrRank{
		unusable:   !m.usable(FamilyOf(d)),
		scopeMatch: true,
		labelMatch: true,
		prec:       p.prec,
		scope:      scopeOf(d),
		v6:         d.Is6(),
	}
	if d.Is4() && m.prefer == IPv4 {
		r.prec = preferIPv4Precedence
	}
	if src, ok := m.source(d); ok {
		r.scopeMatch = scopeOf(src) == r.scope
		r.labelMatch = classify(src).label == p.label
		if r.v6 {
			r.cpl = commonPrefixLen(src, d)
		}
	}
	return r
}

// source returns Source(d), the local address RFC 6724 §5 would pick to
// reach d, from Config.LocalAddrs: the same address (rule 1), an
// appropriate scope (rule 2), a matching label (rule 6), the longest
// matching prefix (rule 8). The rules that need interface and route
// state (3, 4, 5, 5.5, 7) are skipped.
func (m *Machine) source(d netip.Addr) (netip.Addr, bool) {
	var best netip.Addr
	ds, dl := scopeOf(d), classify(d).label
	better := func(a, b netip.Addr) bool { // a better than b
		if a == d || b == d {
			return a == d
		}
		as, bs := scopeOf(a), scopeOf(b)
		if as != bs {
			if as < bs {
				return as >= ds
			}
			return bs < ds
		}
		al, bl := classify(a).label == dl, classify(b).label == dl
		if al != bl {
			return al
		}
		if d.Is6() {
			return commonPrefixLen(a, d) > commonPrefixLen(b, d)
		}
		return false
	}
	for _, s := range m.local {
		if FamilyOf(s) != FamilyOf(d) {
			continue
		}
		if !best.IsValid() || better(s, best) {
			best = s
		}
	}
	return best, best.IsValid()
}

// compareRank orders two destinations by the rules (negative: a first).
func compareRank(a, b addrRank) int {
	flag := func(x, y bool) int { // x preferred when true
		switch {
		case x && !y:
			return -1
		case y && !x:
			return 1
		}
		return 0
	}
	if c := flag(!a.unusable, !b.unusable); c != 0 { // rule 1
		return c
	}
	if c := flag(a.scopeMatch, b.scopeMatch); c != 0 { // rule 2
		return c
	}
	if c := flag(a.labelMatch, b.labelMatch); c != 0 { // rule 5
		return c
	}
	if c := cmp.Compare(b.prec, a.prec); c != 0 { // rule 6
		return c
	}
	if c := cmp.Compare(a.scope, b.scope); c != 0 { // rule 8
		return c
	}
	if a.v6 && b.v6 { // rule 9
		return cmp.Compare(b.cpl, a.cpl)
	}
	return 0 // rule 10
}
