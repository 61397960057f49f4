// Package hev3 is a sans-I/O Happy Eyeballs version 3 state machine
// (draft-ietf-happy-happyeyeballs-v3) extended with a capability phase: an
// attempt whose transport is up may still fail because the server's HTTP/2 or
// HTTP/3 SETTINGS do not prove the capability the dial needs, and the race then
// goes on.
//
// The machine knows nothing about sockets, clocks or goroutines. The caller
// feeds it inputs (DNS answers, attempt results, SETTINGS, the passing of
// time) through methods that take the current time, and calls Poll to learn
// what to do next. Poll returns every action that is due and the time at which
// the caller must call Poll again even if nothing else happens.
package hev3

import (
	"net/netip"
	"time"
)

// Defaults from the draft.
const (
	DefaultResolutionDelay = 50 * time.Millisecond
	DefaultAttemptDelay    = 250 * time.Millisecond
	// MinAttemptDelay and MaxAttemptDelay bound a configured attempt delay
	// (draft §6: never below 10 ms, recommended cap 2 s).
	MinAttemptDelay = 10 * time.Millisecond
	MaxAttemptDelay = 2 * time.Second
)

// Family is an IP address family.
type Family uint8

const (
	IPv6 Family = iota
	IPv4
)

func (f Family) String() string {
	if f == IPv4 {
		return "IPv4"
	}
	return "IPv6"
}

// FamilyOf reports the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// RecordType is a DNS record type the machine asks for.
type RecordType uint8

const (
	HTTPS RecordType = iota
	AAAA
	A
)

func (t RecordType) String() string {
	switch t {
	case HTTPS:
		return "HTTPS"
	case AAAA:
		return "AAAA"
	default:
		return "A"
	}
}

// Version is an HTTP version.
type Version uint8

const (
	H1 Version = 1 << iota
	H2
	H3
)

func (v Version) String() string {
	switch v {
	case H1:
		return "h1"
	case H2:
		return "h2"
	case H3:
		return "h3"
	}
	return "none"
}

// Versions is a set of HTTP versions.
type Versions uint8

// AllVersions enables HTTP/1.1, HTTP/2 and HTTP/3.
const AllVersions = Versions(H1 | H2 | H3)

// Has reports whether v is in s.
func (s Versions) Has(v Version) bool { return s&Versions(v) != 0 }

// Proto is what one attempt dials: QUIC with ALPN h3, or TCP+TLS offering
// one or two ALPN protocols.
type Proto uint8

const (
	ProtoH3     Proto = iota // QUIC, ALPN h3
	ProtoH2OrH1              // TCP+TLS, ALPN h2, http/1.1
	ProtoH2                  // TCP+TLS, ALPN h2
	ProtoH1                  // TCP(+TLS), ALPN http/1.1
)

// QUIC reports whether the attempt runs over QUIC.
func (p Proto) QUIC() bool { return p == ProtoH3 }

// ALPN returns the ALPN protocol IDs the attempt offers, most preferred first.
func (p Proto) ALPN() []string {
	switch p {
	case ProtoH3:
		return []string{"h3"}
	case ProtoH2OrH1:
		return []string{"h2", "http/1.1"}
	case ProtoH2:
		return []string{"h2"}
	default:
		return []string{"http/1.1"}
	}
}

func (p Proto) String() string {
	switch p {
	case ProtoH3:
		return "h3"
	case ProtoH2OrH1:
		return "h2,h1"
	case ProtoH2:
		return "h2"
	default:
		return "h1"
	}
}

// Endpoint is one thing to attempt: an address, a port, a protocol and an
// optional ECH configuration list.
type Endpoint struct {
	Addr  netip.AddrPort
	Proto Proto
	ECH   []byte
	// Hint is true when the address came from an ipv4hint/ipv6hint and not
	// from an A/AAAA answer.
	Hint bool
}

// ServiceInfo is one ServiceMode HTTPS record as the resolver interpreted it
// (AliasMode already followed).
type ServiceInfo struct {
	Priority uint16
	// Target is the TargetName; "" or "." means the origin's own name.
	Target string
	// ALPN is the record's SVCB ALPN set with the default "http/1.1" added
	// unless no-default-alpn was present (RFC 9460 §7.1.2).
	ALPN      []string
	Port      uint16 // 0: the origin's port
	IPv4Hints []netip.Addr
	IPv6Hints []netip.Addr
	ECH       []byte
}

// Answer is the result of one DNS query. Err set means a negative answer
// (SERVFAIL, NXDOMAIN, timeout, malformed); Err nil with no data means NODATA.
// The machine uses at most MaxAddrs addresses of each family from Addrs,
// and at most MaxServices records from Services, with at most MaxHints
// hints of each family per record.
type Answer struct {
	Addrs    []netip.Addr  // for A and AAAA
	Services []ServiceInfo // for HTTPS
	Err      error
	// Omitted counts what the resolver left out of the answer to keep it
	// within the bounds (records, addresses, hints; see bounds.go). The
	// machine does not read it; it is for the caller's report.
	Omitted int
}

// Need is the capability a dial requires of the winning connection.
type Need uint8

const (
	// NeedTransport: the transport handshake (TCP, TLS, QUIC) is enough.
	NeedTransport Need = iota
	// NeedWebSocket: h1 wins at once; h2 and h3 must advertise
	// SETTINGS_ENABLE_CONNECT_PROTOCOL.
	NeedWebSocket
	// NeedHTTP: h1 wins at once; h2 and h3 win when the server's SETTINGS
	// arrive, whatever they say: the HTTP layer is proved alive, so a
	// connection that breaks right after its handshake loses the race.
	NeedHTTP
	// NeedWebTransport: h2 and h3 must advertise extended CONNECT and
	// WebTransport (h3 also H3_DATAGRAM); h1 never qualifies.
	NeedWebTransport
)

// Settings are the capability bits read from the server's first SETTINGS.
type Settings struct {
	ExtendedConnect bool
	Datagrams       bool
	WebTransport    bool
}

// Config configures one race.
type Config struct {
	// Host is the origin's name. When Literal is valid, no DNS is done.
	Host    string
	Literal netip.Addr
	Port    uint16

	// Prefer is the family tried first (IPv6 by default).
	Prefer Family
	// Only restricts the race to one family when OnlyFamily is true.
	OnlyFamily bool
	Only       Family

	// Versions are the HTTP versions the dial may use (0: AllVersions).
	// NeedWebTransport never uses H1.
	Versions Versions
	// KnownH3 adds QUIC endpoints on the origin port even without an
	// HTTPS record (learned from Alt-Svc, a cached success or an option).
	KnownH3 bool
	// H3Port is the port of those QUIC endpoints (an Alt-Svc alternative
	// port); 0 means the origin's port.
	H3Port uint16
	// NoHTTPS skips the HTTPS query (plain ws:// and http:// dials).
	NoHTTPS bool

	Need Need

	// Avoid lists addresses that failed the caller recently (say, a
	// connection that broke before its first response): their endpoints
	// are tried after every other one.
	Avoid []netip.AddrPort

	// MaxLive caps the attempts live at once (0: no cap). When it is
	// reached, the next endpoint waits for an attempt to end.
	MaxLive int

	// MaxLiveQueries caps the DNS queries in flight at once (0:
	// DefaultMaxLiveQueries). A query decided beyond it waits, in order,
	// for an answer to make room; it is not dropped.
	MaxLiveQueries int

	ResolutionDelay time.Duration // 0: DefaultResolutionDelay
	AttemptDelay    time.Duration // 0: DefaultAttemptDelay
}

// Action is something the caller must do. It is one of StartQuery,
// StartAttempt, Cancel, Succeed and Fail.
type Action interface{ action() }

// StartQuery asks the caller to resolve Name for Type and report the answer
// with OnDNS(ID, ...).
type StartQuery struct {
	ID   int
	Name string
	Type RecordType
}

// StartAttempt asks the caller to dial Endpoint and report with
// OnConnected / OnSettings / OnFailed using ID.
type StartAttempt struct {
	ID       int
	Endpoint Endpoint
}

// Cancel asks the caller to abort attempt ID, or to close its connection if
// the transport is already up. Results reported afterwards are ignored.
type Cancel struct {
	ID     int
	Reason CancelReason
}

// CancelReason says why an attempt was cancelled.
type CancelReason uint8

const (
	// LostRace: another attempt won.
	LostRace CancelReason = iota
	// Incapable: the transport is up but its SETTINGS lack the capability.
	Incapable
	// Aborted: the caller aborted the race.
	Aborted
)

func (r CancelReason) String() string {
	switch r {
	case LostRace:
		return "lost race"
	case Incapable:
		return "capability missing"
	default:
		return "aborted"
	}
}

// Succeed says attempt ID won: its connection is the result. It is emitted
// once, after the Cancel actions for every other live attempt.
type Succeed struct {
	ID int
}

// Fail says the race is over without a winner. It is emitted once.
type Fail struct {
	Reason FailReason
}

// FailReason classifies a failed race.
type FailReason uint8

const (
	// FailDNS: no usable address was resolved, or none could be paired
	// with an enabled HTTP version, so nothing was attempted.
	FailDNS FailReason = iota
	// FailConnect: every attempt failed (reported by OnFailed), and none
	// was found incapable.
	FailConnect
	// FailUnsupported: at least one transport came up but none had the
	// needed capability.
	FailUnsupported
	// FailAborted: Abort was called.
	FailAborted
)

func (r FailReason) String() string {
	switch r {
	case FailDNS:
		return "dns"
	case FailConnect:
		return "connect"
	case FailUnsupported:
		return "unsupported"
	default:
		return "aborted"
	}
}

func (StartQuery) action()   {}
func (StartAttempt) action() {}
func (Cancel) action()       {}
func (Succeed) action()      {}
func (Fail) action()         {}
