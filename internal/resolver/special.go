package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/eyeballs/dialer/internal/hev3"
)

// ErrSpecialName is matched (errors.Is) by the error of a lookup of a
// special-use name that must not be resolved through DNS: .onion (RFC 7686
// §2) and .invalid (RFC 6761 §6.4). No query is sent for them.
var ErrSpecialName = errors.New("special-use name not resolved through DNS")

// Loopback addresses of localhost names (RFC 6761 §6.3).
var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// Special answers the special-use names that never go to DNS, whatever the
// configuration (name is compared without case and trailing dot):
//
//   - "localhost" and every name under it are 127.0.0.1 and ::1, with no
//     hosts file and no query (RFC 6761 §6.3: resolution APIs "SHOULD
//     recognize localhost names as special and SHOULD always return the IP
//     loopback address", and should not send them to DNS; browsers do the
//     same for *.localhost).
//   - names under .onion fail with ErrSpecialName (RFC 7686 §2: resolvers
//     "MUST either respond to requests for .onion names by resolving them
//     according to [tor-rendezvous] or by responding with NXDOMAIN"); Go's
//     net package refuses them too (dnsclient_unix.go, avoidDNS).
//   - "invalid" and names under it fail with ErrSpecialName (RFC 6761
//     §6.4: APIs "SHOULD always return immediate negative responses").
//
// ok is false for any other name. A hosts file entry for the name is
// consulted before Special, as Go's net package reads /etc/hosts first.
func Special(name string) (addrs []netip.Addr, ok bool, err error) {
	n := hostKey(name)
	switch {
	case n == "localhost" || strings.HasSuffix(n, ".localhost"):
		return []netip.Addr{loopback6, loopback4}, true, nil
	case n == "onion" || strings.HasSuffix(n, ".onion"):
		return nil, true, fmt.Errorf("%w: %s is a Tor onion service name (RFC 7686), reachable only through a Tor client", ErrSpecialName, n)
	case n == "invalid" || strings.HasSuffix(n, ".invalid"):
		return nil, true, fmt.Errorf("%w: %s is under .invalid, which never exists (RFC 6761 §6.4)", ErrSpecialName, n)
	}
	return nil, false, nil
}

// Static answers name for t without DNS when it can, as Lookup does before
// it queries: an IP literal, a name of hosts (nil: none), or a special-use
// name. ok is false when name needs a resolver.
func Static(name string, hosts Hosts, t hev3.RecordType) (ans hev3.Answer, ok bool) {
	host := hostKey(name)
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return local([]netip.Addr{a}, t), true
	}
	if addrs, ok := hosts[host]; ok {
		return bound(local(addrs, t)), true
	}
	if addrs, ok, err := Special(host); ok {
		if err != nil {
			return hev3.Answer{Err: &Error{Name: name, Type: t, Err: err}}, true
		}
		return local(addrs, t), true
	}
	return hev3.Answer{}, false
}

// AddrAnswer is the answer for t (A or AAAA) made of the addresses of
// t's family in addrs, within the bounds of a race (bound): for addresses
// that come from elsewhere than DNS, such as Go's net.Resolver.
func AddrAnswer(addrs []netip.Addr, t hev3.RecordType) hev3.Answer {
	return bound(local(addrs, t))
}
