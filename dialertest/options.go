package dialertest

import "github.com/eyeballs/dialer"

// DialerOptions returns the options that point a Dialer at the test world:
// ns as its only nameserver, no hosts file (so that every name goes to ns),
// and, when ca is not nil, a TLS configuration that trusts ca alone. With
// them a dialer sends nothing beyond loopback and never asks the machine's
// resolver. Add them to dialer.New, or to a single dial. ns must not be
// nil.
func DialerOptions(ns *DNS, ca *CA) []dialer.Option {
	opts := []dialer.Option{
		dialer.WithNameservers(ns.Addr()),
		dialer.WithHostsFile("-"),
	}
	if ca != nil {
		opts = append(opts, dialer.WithTLSConfig(ca.ClientConfig()))
	}
	return opts
}
