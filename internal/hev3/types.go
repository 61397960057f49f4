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
	//
	// MinAttemptDelay is also the least time between the starts of any
	// two attempts, whatever happened in between: draft §6 "a subsequent
	// connection MUST NOT be started within 10 milliseconds of the
	// previous attempt". A failure frees the slot of the failed attempt,
	// but the next one still waits until 10 ms after the previous start,
	// so a chain of fast failures (RST, ICMP unreachable) is spaced out.
	MinAttemptDelay = 10 * time.Millisecond
	MaxAttemptDelay = 2 * time.Second

	// MinRTTAttemptDelay is the floor of an attempt delay derived from a
	// measured RTT (Config.RTT): draft §6 and §9 "Minimum Connection
	// Attempt Delay", recommended 100 ms, "required to avoid congestion
	// collapse in the presence of high packet-loss rates", and the lower
	// bound matters "especially if it is computed using historical data".
	MinRTTAttemptDelay = 100 * time.Millisecond

	// DNSLinger is how long after a win the caller should keep the DNS
	// queries still in flight and let their answers fill its cache
	// (draft §6: the resolver "SHOULD still process DNS replies from the
	// network for a short period of time (recommended to be 1 second)").
	// See Succeed.KeepDNSUntil.
	DNSLinger = time.Second

	// MaxLocalAddrs is how many of Config.LocalAddrs the machine uses.
	MaxLocalAddrs = 64
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

// Families is a set of address families.
type Families uint8

const (
	HaveIPv6 Families = 1 << IPv6
	HaveIPv4 Families = 1 << IPv4
)

// Has reports whether f is in s.
func (s Families) Has(f Family) bool { return s&(1<<f) != 0 }

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
	// Name is the name that answered when a search list (resolv.conf)
	// made it differ from the name asked, or "". The machine does not
	// read it either; it is for the report.
	Name string
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

	// ResolutionDelay is the draft's Resolution Delay (§4.2). Zero or
	// negative means DefaultResolutionDelay unless ResolutionDelaySet.
	ResolutionDelay time.Duration
	// ResolutionDelaySet says ResolutionDelay is meant as given, zero
	// included: with ResolutionDelay 0 the machine moves on with the
	// first answer that gives an address, without waiting for the
	// preferred family or the HTTPS record (WithResolutionDelay(0)). A
	// negative value then means zero.
	ResolutionDelaySet bool

	// AttemptDelay is the Connection Attempt Delay (§6), clamped to
	// [MinAttemptDelay, MaxAttemptDelay]. Zero means: derived from RTT
	// for a family with history, DefaultAttemptDelay otherwise. A caller
	// that wants RTT-derived delays must pass zero unless the user set a
	// delay explicitly.
	AttemptDelay time.Duration

	// RTT is the smoothed round-trip time measured on this network
	// before, per family (RTT[IPv6], RTT[IPv4]); zero means no history
	// for that family. Draft §6: a delay "should correspond to the time
	// when the previous attempt is retrying its handshake (such as
	// sending a second TCP SYN or a second QUIC Initial)", and historical
	// RTT "can ... influence its delay". When AttemptDelay is zero, an
	// attempt on a family with history holds the slot for 2×RTT (about
	// the first retransmission timeout once an RTT is known, RFC 6298,
	// RFC 9002), clamped to [MinRTTAttemptDelay, MaxAttemptDelay]. The
	// draft asks that such history be partitioned per network; that is
	// the caller's.
	RTT [2]time.Duration

	// Connectivity is the set of families the host has connectivity for
	// (draft §4.1: a local address of the family and a non-link-local
	// route for it). Zero means unknown: both. With one family only, the
	// machine does not ask for the other family's addresses (no AAAA on
	// an IPv4-only host, §4.1), takes the one it has as the preferred
	// family whatever Prefer says (§4.2: "If only one of IPv6 or IPv4 has
	// a default route, that address family should be considered the
	// preferred address family"), and tries addresses of the other family
	// (hints, a literal) only after every other endpoint (RFC 6724 rule 1,
	// avoid unusable destinations). OnlyFamily wins over it.
	Connectivity Families

	// LocalAddrs are the host's own unicast addresses, if known
	// (interface addresses, loopback included), for the RFC 6724 rules
	// that need a source address (draft §5.3): rule 1 (a family without
	// a source address is unusable), rule 2 (matching scope), rule 5
	// (matching label) and rule 9 (longest matching prefix, IPv6 only).
	// Nil: those rules are skipped and addresses are ordered by
	// precedence (rule 6) and scope (rule 8) alone. At most MaxLocalAddrs
	// are used.
	LocalAddrs []netip.Addr

	// History, when set, is what the caller learned about the paths of
	// the network the host is on before this race (draft §5.3,
	// historical data): paths found silent go last, measured RTTs time
	// the attempts, and a network where QUIC works gets h3 first. Nil:
	// no history, the draft's defaults.
	History History

	// Shuffle, when set, shuffles the HTTPS ServiceMode records of equal
	// SvcPriority (draft §5.2: "When there are multiple services, and
	// thus multiple groups, with the same priority, the client SHOULD
	// shuffle these groups randomly"). It is called as math/rand's
	// Shuffle, once per run of equal priority, before MaxServices records
	// are kept; pass rand.Shuffle. Nil keeps the answer's order (tests,
	// deterministic replays).
	Shuffle func(n int, swap func(i, j int))
}

// History is what a caller learned on the network the host is on, from
// earlier races, about the path to an endpoint: its family and transport
// (and whatever else the caller keys paths by, such as loopback or not).
// Draft §5.3: "Clients that use historical data MUST ensure that clients
// with different historical data will eventually converge toward the same
// behaviors"; the history must be partitioned per network and flushed when
// the network changes. Both are the caller's: the machine only reads it.
//
// Its answers must not change during a race (a snapshot), so that a race
// stays a deterministic function of its inputs. The machine asks while it
// orders endpoints (Broken, QUICWorks) and when an attempt starts or
// progresses (RTT).
type History interface {
	// Broken reports whether e's path was silent on this network lately
	// while another path answered (a blackholed family, blocked UDP). Its
	// endpoints go after every other endpoint that the host can use,
	// avoided ones included, in their order: tried last, never dropped, so
	// a race whose other paths fail or are slow still tries them and a
	// repaired network is noticed.
	Broken(e Endpoint) bool
	// RTT returns the smoothed round-trip time measured on e's path, or
	// zero when there is none. It takes the place of Config.RTT for e's
	// attempt delay (see Config.RTT for the bounds).
	RTT(e Endpoint) time.Duration
	// QUICWorks reports whether QUIC handshakes on the path to a completed
	// on this network lately. A group whose best address has it is dealt
	// h3 on both families first (the WebTransport order, see interleave)
	// instead of diagonally: the TCP attempt the diagonal puts second
	// hedges against blocked UDP, which this network does not have.
	QUICWorks(a netip.Addr) bool
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
	// KeepDNSUntil is set when DNS queries were still in flight at the
	// win: the caller should let them run until then (DNSLinger after
	// the win) so that their answers fill its DNS cache, and cancel them
	// afterwards (draft §6). The machine ignores those answers; nothing
	// new is asked. Zero: no query was in flight.
	KeepDNSUntil time.Time
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
