package resolver

import (
	"net/netip"
	"slices"

	"github.com/eyeballs/dialer/internal/hev3"
)

// MaxALPN is how many ALPN protocol IDs of one ServiceMode record are kept:
// those naming the HTTP versions the dialer knows ("h3", "h2", "http/1.1")
// wherever they are in the list, and the first others up to MaxALPN in all.
// Deployed records list two or three IDs ("h3,h2").
const MaxALPN = 8

// bound trims ans to what a race can use: at most hev3.MaxAddrs distinct
// addresses of each family, the hev3.MaxServices records of lowest priority
// (services already did that), and in each record at most hev3.MaxHints
// distinct hints of each family and MaxALPN ALPN IDs. What it leaves out
// is added to ans.Omitted. Answers are trimmed before they are cached, so
// the cache, the lookups sharing a query and the dial's report hold only
// what a race uses.
func bound(ans hev3.Answer) hev3.Answer {
	var cut int
	ans.Addrs, cut = boundAddrs(ans.Addrs, hev3.MaxAddrs)
	ans.Omitted += cut
	if len(ans.Services) > hev3.MaxServices {
		ans.Omitted += len(ans.Services) - hev3.MaxServices
		ans.Services = ans.Services[:hev3.MaxServices]
	}
	for i := range ans.Services {
		s := &ans.Services[i]
		s.IPv4Hints, cut = boundAddrs(s.IPv4Hints, hev3.MaxHints)
		ans.Omitted += cut
		s.IPv6Hints, cut = boundAddrs(s.IPv6Hints, hev3.MaxHints)
		ans.Omitted += cut
		s.ALPN, cut = boundALPN(s.ALPN)
		ans.Omitted += cut
	}
	return ans
}

// boundAddrs returns the first max distinct addresses of each family in
// addrs, in order, and how many it left out. It costs O(len(addrs) * max).
func boundAddrs(addrs []netip.Addr, max int) ([]netip.Addr, int) {
	if len(addrs) <= max && !hasDup(addrs) {
		return addrs, 0
	}
	var out []netip.Addr
	n4, n6 := 0, 0
	for _, a := range addrs {
		n := &n6
		if a.Unmap().Is4() {
			n = &n4
		}
		if *n == max || slices.Contains(out, a) {
			continue
		}
		*n++
		out = append(out, a)
	}
	return out, len(addrs) - len(out)
}

func hasDup(addrs []netip.Addr) bool {
	for i, a := range addrs {
		if slices.Contains(addrs[:i], a) {
			return true
		}
	}
	return false
}

// boundALPN returns the IDs of alpn to keep (see MaxALPN), once each, in
// order, and how many it left out.
func boundALPN(alpn []string) ([]string, int) {
	if len(alpn) <= MaxALPN && !hasDupString(alpn) {
		return alpn, 0
	}
	const known = 3 // "h3", "h2", "http/1.1": always room for them
	var out []string
	others := 0
	for _, id := range alpn {
		if slices.Contains(out, id) {
			continue
		}
		switch id {
		case "h3", "h2", defaultALPN:
		default:
			if others == MaxALPN-known {
				continue
			}
			others++
		}
		out = append(out, id)
	}
	return out, len(alpn) - len(out)
}

func hasDupString(ids []string) bool {
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return true
		}
	}
	return false
}
