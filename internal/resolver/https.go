package resolver

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

// defaultALPN is the HTTPS record's default ALPN (RFC 9460 §7.1.2).
const defaultALPN = "http/1.1"

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
		present[kv.Key()] = true
		switch v := kv.(type) {
		case *dns.SVCBMandatory:
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
