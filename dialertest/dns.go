package dialertest

import (
	"strconv"
	"strings"
	"time"

	"github.com/eyeballs/dialer/internal/dnsserver"
)

// RecordType is a DNS record type a dialer queries.
type RecordType uint16

// The record types a dialer queries: it asks for A, AAAA and HTTPS at once.
const (
	TypeA     RecordType = 1
	TypeAAAA  RecordType = 28
	TypeHTTPS RecordType = 65 // RFC 9460
)

// String returns the type's name, such as "AAAA".
func (t RecordType) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeAAAA:
		return "AAAA"
	case TypeHTTPS:
		return "HTTPS"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// DNS is a DNS server on 127.0.0.1, over UDP and TCP on one port, that
// answers from the records a test sets: a dialer pointed at it (see
// DialerOptions) resolves test names without the machine's resolver. It
// answers a name it has no record of with NXDOMAIN, and a type it has no
// record of with NODATA, both with an SOA record (negative TTL 30 s);
// records carry a TTL of 300 s. Replies over UDP are truncated, with the TC
// bit, to the size the client advertised, so large answers come in full
// over TCP only. Every method may be called at any time, also while dials
// are under way.
type DNS struct {
	s *dnsserver.Server
}

// NewDNS starts a DNS server on 127.0.0.1 on a free port. With a TB it is
// closed when the test ends, and a mistake in a record (an address that is
// not one, an HTTPS value that does not parse) fails the test; with a nil
// TB such mistakes panic and the caller closes it.
func NewDNS(tb TB) *DNS {
	if tb != nil {
		tb.Helper()
	}
	s, err := dnsserver.New("127.0.0.1:0")
	if err != nil {
		fail(tb, err)
	}
	if tb != nil {
		s.SetFatal(tb.Fatalf)
	}
	cleanup(tb, s.Close)
	return &DNS{s: s}
}

// Addr returns the address the server listens on, such as
// "127.0.0.1:53535", for dialer.WithNameservers.
func (d *DNS) Addr() string { return d.s.Addr() }

// A sets the A records of name to ips, such as "127.0.0.1". No addresses
// removes them.
func (d *DNS) A(name string, ips ...string) { d.s.A(name, ips...) }

// AAAA sets the AAAA records of name to ips, such as "::1". No addresses
// removes them.
func (d *DNS) AAAA(name string, ips ...string) { d.s.AAAA(name, ips...) }

// HTTPS sets the HTTPS records (RFC 9460) of name, each given in
// presentation format without owner, TTL and type, such as
// "1 . alpn=h3,h2 port=8443 ipv6hint=::1" (ServiceMode) or
// "0 other.example." (AliasMode). A dialer tries QUIC only for an origin
// whose HTTPS record lists h3 (or that it learned supports it otherwise).
// No values removes them.
func (d *DNS) HTTPS(name string, values ...string) { d.s.HTTPS(name, values...) }

// Point makes name resolve to s: A 127.0.0.1, AAAA ::1, and an HTTPS
// record whose alpn lists h3 and h2 when s serves them (none when it serves
// HTTP/1.1 only). name must be one of s's certificate names (see
// Options.Names), or the dialer refuses the certificate.
func (d *DNS) Point(name string, s *Server) {
	d.A(name, "127.0.0.1")
	d.AAAA(name, "::1")
	var alpn []string
	if s.h3 {
		alpn = append(alpn, "h3")
	}
	if s.h2 {
		alpn = append(alpn, "h2")
	}
	if len(alpn) == 0 {
		d.HTTPS(name)
		return
	}
	d.HTTPS(name, "1 . alpn="+strings.Join(alpn, ","))
}

// Delay makes the server answer queries for name and type t only after
// wait, as a slow or distant resolver does: a dialer that gets A before
// AAAA waits for the resolution delay (50 ms by default), then goes on with
// IPv4. A query still waiting when the server closes is dropped. Clear
// undoes it.
func (d *DNS) Delay(name string, t RecordType, wait time.Duration) {
	d.s.Set(name, uint16(t), dnsserver.Delay(wait, nil))
}

// Drop makes the server never answer queries for name and type t, as a
// middlebox that eats AAAA or HTTPS queries does: the dialer's query times
// out. Clear undoes it.
func (d *DNS) Drop(name string, t RecordType) {
	d.s.Set(name, uint16(t), dnsserver.Drop())
}

// ServFail makes the server answer queries for name and type t with
// SERVFAIL. Clear undoes it.
func (d *DNS) ServFail(name string, t RecordType) {
	d.s.Set(name, uint16(t), dnsserver.ServFail())
}

// Clear undoes Delay, Drop and ServFail for name and type t: queries are
// answered from the records again.
func (d *DNS) Clear(name string, t RecordType) {
	d.s.Set(name, uint16(t), nil)
}

// Count returns how many queries for name and type t the server received,
// over UDP and TCP: to check that a dialer cached an answer, or asked
// again.
func (d *DNS) Count(name string, t RecordType) int {
	return d.s.Count(name, uint16(t))
}

// Close stops the server and waits for its goroutines. It may be called
// more than once.
func (d *DNS) Close() { d.s.Close() }
