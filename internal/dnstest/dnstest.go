// Package dnstest runs a small DNS server on loopback for the resolver and
// integration tests. It is internal/dnsserver (also behind the public
// dialertest.DNS) under the names these tests use, with Start, which ties a
// server to a test.
//
// The server answers from records set with A, AAAA, HTTPS, CNAME and Add
// (following CNAMEs it knows, like a recursive resolver would), and lets a
// test replace the behaviour for any name and type with a Handler: delay,
// SERVFAIL, NXDOMAIN, NODATA, truncation over UDP, garbage, silence, or
// anything written by hand. UDP and TCP share one port.
//
// Replies over UDP are truncated to the size the client advertised (EDNS0, or
// 512 bytes without it) with the TC bit set, so large answers come in full
// only over TCP.
package dnstest

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/eyeballs/dialer/internal/dnsserver"
)

// Record types, so that callers need not import a DNS package.
const (
	TypeA     = dnsserver.TypeA
	TypeAAAA  = dnsserver.TypeAAAA
	TypeCNAME = dnsserver.TypeCNAME
	TypeHTTPS = dnsserver.TypeHTTPS
	// TypeAny in Set matches every record type.
	TypeAny = dnsserver.TypeAny
)

// TTL is the TTL of records added by A, AAAA, HTTPS and CNAME.
const TTL = dnsserver.TTL

// NegativeTTL is the SOA minimum sent with NXDOMAIN and NODATA replies.
const NegativeTTL = dnsserver.NegativeTTL

type (
	// Server is a DNS server on loopback (see dnsserver.Server).
	Server = dnsserver.Server
	// Query is one query the server received.
	Query = dnsserver.Query
	// Request is a query as a Handler sees it.
	Request = dnsserver.Request
	// Handler decides how the server answers one query.
	Handler = dnsserver.Handler
)

// Start starts a server on 127.0.0.1 on a free port and closes it when the
// test ends. Errors in records passed to the server's methods fail the test.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := dnsserver.New("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	s.SetFatal(tb.Fatalf)
	tb.Cleanup(s.Close)
	return s
}

// New starts a server listening on addr for both UDP and TCP. With port 0 a
// port free for both is chosen. Mistakes in records panic.
func New(addr string) (*Server, error) { return dnsserver.New(addr) }

// Default answers with the default reply (see Request.Reply).
func Default() Handler { return dnsserver.Default() }

// Drop never answers.
func Drop() Handler { return dnsserver.Drop() }

// Delay waits d, then answers with h (nil: the default reply). It gives up
// without answering if the server closes first.
func Delay(d time.Duration, h Handler) Handler { return dnsserver.Delay(d, h) }

// Rcode answers with an empty reply carrying rcode, such as
// dns.RcodeServerFailure.
func Rcode(rcode int) Handler { return dnsserver.Rcode(rcode) }

// ServFail answers SERVFAIL.
func ServFail() Handler { return dnsserver.ServFail() }

// NXDomain answers NXDOMAIN (with an SOA record).
func NXDomain() Handler { return dnsserver.NXDomain() }

// NoData answers NOERROR with no records and an SOA record.
func NoData() Handler { return dnsserver.NoData() }

// TruncateUDP answers over UDP with an empty reply with the TC bit set, and
// over TCP with h (nil: the default reply).
func TruncateUDP(h Handler) Handler { return dnsserver.TruncateUDP(h) }

// Garbage answers with the bytes b as they are (over TCP with the length
// prefix). Nil b sends a fixed short junk message.
func Garbage(b []byte) Handler { return dnsserver.Garbage(b) }

// Modify answers with the default reply after f has changed it: to send a
// wrong ID, a different question, a TC bit over TCP and the like.
func Modify(f func(*dns.Msg)) Handler { return dnsserver.Modify(f) }
