package resolver

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

// defaultALPN is the HTTPS record's default ALPN (RFC 9460 §7.1.2).
const defaultALPN = "http/1.1"

// resolveHTTPS resolves the HTTPS records of qname as RFC 9460 §3 says a
// client does:
//
//  1. ask for qname's HTTPS records (following CNAMEs);
//  2. if the RRSet has an AliasMode record, ignore its ServiceMode records
//     (§2.4.1), set qname to the alias's TargetName and go to 1, within
//     MaxHops and without loops; a TargetName of "." means the service
//     does not exist (§2.5.1): NODATA, so the dial uses the origin's own
//     addresses;
//  3. otherwise the compatible ServiceMode records are the endpoints
//     (services drops the others);
//  4. once at least one AliasMode record was followed, append an endpoint
//     on the final qname with no SvcParams (§3: "SVCB-optional clients
//     SHALL append to the priority list an endpoint consisting of the
//     final value of $QNAME, the authority endpoint's port number, and no
//     SvcParams"), so that an alias to a name with addresses but no HTTPS
//     record of its own (a zone apex aliased to a CDN name) is dialed at
//     the target's addresses, before the origin's.
//
// qname may carry a port prefix ("_8443._https.example.com", §9.1); the
// names aliases lead to never do.
func (r *Resolver) resolveHTTPS(ctx context.Context, qname string) (hev3.Answer, time.Duration, []dns.RR) {
	visited := map[string]bool{qname: true}
	hops := 0
	ttl := MaxTTL
	name := qname
	aliased := false
	var trail []dns.RR
	for {
		res := r.chase(ctx, name, hev3.HTTPS, visited, &hops)
		ttl = min(ttl, res.ttl)
		trail = append(trail, res.trail...)
		if res.err != nil || len(res.rrs) == 0 {
			if !aliased || errors.Is(res.err, ErrLoop) || ctx.Err() != nil {
				return hev3.Answer{Err: res.err}, ttl, trail
			}
			// The alias target has no usable HTTPS record (NODATA,
			// NXDOMAIN, a failed query): its own addresses are the
			// endpoint.
			return hev3.Answer{Services: []hev3.ServiceInfo{aliasEndpoint(name, 1)}}, ttl, trail
		}
		var alias *dns.HTTPS
		for _, rr := range res.rrs {
			if h, ok := rr.(*dns.HTTPS); ok && h.Priority == 0 {
				alias = h
				break
			}
		}
		if alias == nil {
			target := "" // "." is the origin itself
			if aliased {
				target = effectiveTarget(res.owner)
			}
			ss, omitted := services(res.rrs, target)
			if aliased {
				last := uint16(1)
				if n := len(ss); n > 0 {
					last = min(ss[n-1].Priority, math.MaxUint16-1) + 1
				}
				if omitted == 0 && len(ss) < hev3.MaxServices {
					ss = append(ss, aliasEndpoint(name, last))
				} else {
					omitted++
				}
			}
			return hev3.Answer{Services: ss, Omitted: omitted}, ttl, trail
		}
		next := dns.CanonicalName(alias.Target)
		if next == "." {
			return hev3.Answer{}, ttl, trail // the service does not exist (RFC 9460 §2.5.1)
		}
		if err := r.hop(visited, &hops, next); err != nil {
			return hev3.Answer{Err: &Error{Name: name, Type: hev3.HTTPS, Err: err}}, 0, trail
		}
		aliased = true
		name = next
	}
}

// portPrefixed returns the host of a port-prefixed HTTPS query name
// ("_8443._https.example.com", RFC 9460 §9.1), and whether name is one.
func portPrefixed(name string) (string, bool) {
	port, rest, ok := strings.Cut(name, "._https.")
	if !ok || len(port) < 2 || len(port) > 6 || port[0] != '_' || rest == "" {
		return "", false
	}
	for _, c := range port[1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return rest, true
}

// effectiveTarget is the name a ServiceMode TargetName of "." stands for
// in records owned by owner at the end of an AliasMode chain: the owner
// name (RFC 9460 §2.5.2).
//
// Without an alias, resolveHTTPS takes "." as the origin itself: the
// owner is then the name asked or the end of its CNAME chain, whose
// addresses are the origin's (its A and AAAA queries follow the same
// CNAMEs), so asking for them again would only cost queries; and a
// port-prefixed name ("_8443._https.example.com", §9.1) is a service
// name with no addresses of its own, standing for the origin, which is
// where browsers connect for "." at such a name.
func effectiveTarget(owner string) string {
	return strings.TrimSuffix(strings.ToLower(owner), ".")
}

// aliasEndpoint is the endpoint RFC 9460 §3 appends after an AliasMode
// chain: the final name, the origin's port, no SvcParams, so the default
// ALPN alone (§7.1.2).
func aliasEndpoint(name string, priority uint16) hev3.ServiceInfo {
	return hev3.ServiceInfo{Priority: priority, Target: strings.TrimSuffix(strings.ToLower(name), "."), ALPN: []string{defaultALPN}}
}

// services interprets ServiceMode HTTPS records, sorted by priority: the
// first hev3.MaxServices usable ones, and how many it left out (records
// past the bound are not parsed). target replaces a TargetName of "."
// ("" for the origin itself). Records that are not self-consistent or have
// a mandatory key this package does not understand are skipped (RFC 9460
// §2.4.3, §8).
func services(rrs []dns.RR, target string) ([]hev3.ServiceInfo, int) {
	var recs []*dns.HTTPS
	for _, rr := range rrs {
		if h, ok := rr.(*dns.HTTPS); ok && h.Priority != 0 {
			recs = append(recs, h)
		}
	}
	slices.SortStableFunc(recs, func(a, b *dns.HTTPS) int { return cmp.Compare(a.Priority, b.Priority) })
	var out []hev3.ServiceInfo
	for i, h := range recs {
		if len(out) == hev3.MaxServices {
			return out, len(recs) - i
		}
		if si, ok := service(&h.SVCB, target); ok {
			out = append(out, si)
		}
	}
	return out, 0
}

// known are the SvcParamKeys this package interprets.
var known = []dns.SVCBKey{dns.SVCB_ALPN, dns.SVCB_NO_DEFAULT_ALPN, dns.SVCB_PORT,
	dns.SVCB_IPV4HINT, dns.SVCB_ECHCONFIG, dns.SVCB_IPV6HINT}

func service(rr *dns.SVCB, target string) (hev3.ServiceInfo, bool) {
	si := hev3.ServiceInfo{Priority: rr.Priority, Target: target}
	if t := strings.ToLower(rr.Target); t != "." && t != "" {
		si.Target = strings.TrimSuffix(t, ".")
	}
	var (
		mandatory []dns.SVCBKey
		present   = make(map[dns.SVCBKey]bool)
		noDefault bool
	)
	for _, kv := range rr.Value {
		if present[kv.Key()] {
			return si, false // a key twice: malformed (RFC 9460 §2.2)
		}
		present[kv.Key()] = true
		switch v := kv.(type) {
		case *dns.SVCBMandatory:
			// §8: "mandatory" never lists itself; a record whose
			// list does is malformed.
			if slices.Contains(v.Code, dns.SVCB_MANDATORY) {
				return si, false
			}
			mandatory = v.Code
		case *dns.SVCBAlpn:
			si.ALPN = slices.Clone(v.Alpn)
		case *dns.SVCBNoDefaultAlpn:
			noDefault = true
		case *dns.SVCBPort:
			si.Port = v.Port
		case *dns.SVCBIPv4Hint:
			for _, ip := range v.Hint {
				if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap().Is4() {
					si.IPv4Hints = append(si.IPv4Hints, a.Unmap())
				}
			}
		case *dns.SVCBIPv6Hint:
			for _, ip := range v.Hint {
				if a, ok := netip.AddrFromSlice(ip); ok && a.Is6() && !a.Is4In6() {
					si.IPv6Hints = append(si.IPv6Hints, a)
				}
			}
		case *dns.SVCBECHConfig:
			si.ECH = slices.Clone(v.ECH)
		}
	}
	for _, k := range mandatory {
		if !slices.Contains(known, k) || !present[k] {
			return si, false
		}
	}
	if noDefault && len(si.ALPN) == 0 {
		return si, false
	}
	if !noDefault && !slices.Contains(si.ALPN, defaultALPN) {
		si.ALPN = append(si.ALPN, defaultALPN)
	}
	return si, true
}
