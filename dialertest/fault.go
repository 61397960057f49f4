package dialertest

import (
	"strconv"
	"strings"
	"time"
)

// Family is an IP address family of the loopback: IPv4 is 127.0.0.1, IPv6
// is ::1.
type Family int

// The two families a Server listens on.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// index returns f's slot in a Server's per-family arrays.
func (f Family) index() (int, bool) {
	switch f {
	case IPv4:
		return 0, true
	case IPv6:
		return 1, true
	}
	return 0, false
}

// host returns f's loopback address.
func (f Family) host() string {
	if f == IPv6 {
		return "::1"
	}
	return "127.0.0.1"
}

// families lists IPv4 and IPv6 in slot order.
var families = [2]Family{IPv4, IPv6}

// Protocol is an HTTP version, named by its ALPN identifier.
type Protocol string

// The HTTP versions a Server serves: HTTP/1.1 and HTTP/2 over TLS on TCP,
// HTTP/3 over QUIC on UDP.
const (
	HTTP1 Protocol = "http/1.1"
	HTTP2 Protocol = "h2"
	HTTP3 Protocol = "h3"
)

// A Fault breaks a Server in one way, from the start: pass it to
// NewServer. Faults that concern the same family's TCP (BlackholeTCP,
// RefuseTCP, StallTLS) or the same protocol's SETTINGS
// (WithoutExtendedConnect, CloseAfterSettings) replace each other: the
// last one given wins.
type Fault struct {
	name  string
	apply func(*plan) error
}

// String names the fault, such as "BlackholeTCP(IPv6)".
func (f Fault) String() string { return f.name }

// tcpMode is what listens on one family's TCP port.
type tcpMode int

const (
	tcpServe     tcpMode = iota // TLS with the Server's protocols
	tcpBlackhole                // SYNs dropped
	tcpRefuse                   // connects refused
	tcpStall                    // accepted, TLS never answered
)

// udpMode is what listens on one family's UDP port.
type udpMode int

const (
	udpServe     udpMode = iota // QUIC with HTTP/3
	udpBlackhole                // datagrams read and dropped
)

// settingsMode is how a Server's HTTP/2 or HTTP/3 SETTINGS go.
type settingsMode int

const (
	settingsNormal     settingsMode = iota // extended CONNECT and, if on, WebTransport
	settingsNoExtended                     // no extended CONNECT
	settingsClose                          // closes after sending them
)

// plan is what NewServer starts once the faults are applied.
type plan struct {
	tcp     [2]tcpMode
	udp     [2]udpMode
	h2, h3  settingsMode
	latency time.Duration
}

// BlackholeTCP makes TCP connects to the server hang on the given families
// (both when none is given), as on a path that silently drops packets: the
// dialer's connect never completes nor fails, and Happy Eyeballs must move
// on to the next address after its attempt delay. It is built from a
// listener whose accept queue is full, so it needs no privileges, but it
// needs Linux: elsewhere NewServer fails with errors.ErrUnsupported.
func BlackholeTCP(fs ...Family) Fault {
	return familyFault("BlackholeTCP", fs, func(p *plan, i int) { p.tcp[i] = tcpBlackhole })
}

// BlackholeUDP makes the server drop every datagram on the given families
// (both when none is given) unanswered, as a network that blocks UDP or
// QUIC does: QUIC handshakes hang, and the dialer must fall back to TCP.
func BlackholeUDP(fs ...Family) Fault {
	return familyFault("BlackholeUDP", fs, func(p *plan, i int) { p.udp[i] = udpBlackhole })
}

// RefuseTCP makes TCP connects to the server fail at once, with a reset, on
// the given families (both when none is given), as on a host where nothing
// listens on the port. The port stays reserved for the server.
func RefuseTCP(fs ...Family) Fault {
	return familyFault("RefuseTCP", fs, func(p *plan, i int) { p.tcp[i] = tcpRefuse })
}

// StallTLS makes the server accept TCP connections on the given families
// (both when none is given) and never answer the TLS handshake, as an
// overloaded server or a broken middlebox does: the connect succeeds, and
// the attempt hangs until the dialer gives up on it.
func StallTLS(fs ...Family) Fault {
	return familyFault("StallTLS", fs, func(p *plan, i int) { p.tcp[i] = tcpStall })
}

// WithoutExtendedConnect makes the server's SETTINGS on the given protocols
// (HTTP2, HTTP3; both when none is given) leave out
// SETTINGS_ENABLE_CONNECT_PROTOCOL, as most deployed servers do: WebSocket
// cannot ride that HTTP version (RFC 8441, RFC 9220), and neither can
// WebTransport, so the dialer must close the connection and step down to
// the next protocol. Over HTTP/2 every other request is served as usual;
// over HTTP/3 every request is answered with 501 Not Implemented.
func WithoutExtendedConnect(ps ...Protocol) Fault {
	return protocolFault("WithoutExtendedConnect", ps, settingsNoExtended)
}

// CloseAfterSettings makes the server on the given protocols (HTTP2,
// HTTP3; both when none is given) send SETTINGS that offer everything
// (extended CONNECT, and WebTransport's) and then close the connection
// without answering any request, as a server that crashes or restarts does.
// HTTP/1.1 on the same port is served as usual.
func CloseAfterSettings(ps ...Protocol) Fault {
	return protocolFault("CloseAfterSettings", ps, settingsClose)
}

// Latency delays every packet (UDP) and every chunk of bytes (TCP) to and
// from the server by oneWay in each direction, on both families, through a
// proxy on the server's port, so that every round trip takes 2*oneWay: to
// count the round trips a dial needs, or to give attempts a realistic head
// start over each other. The TCP handshake costs its round trip too: the
// proxy holds what the client sends until a SYN/SYN-ACK exchange would have
// let it go. Families that another fault breaks are not delayed.
func Latency(oneWay time.Duration) Fault {
	return Fault{name: "Latency(" + oneWay.String() + ")", apply: func(p *plan) error {
		if oneWay < 0 {
			return errorf("negative latency %v", oneWay)
		}
		p.latency = oneWay
		return nil
	}}
}

// familyFault is a fault that sets one mode per family.
func familyFault(name string, fs []Family, set func(*plan, int)) Fault {
	if len(fs) == 0 {
		fs = families[:]
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.String()
	}
	return Fault{name: name + "(" + strings.Join(names, ", ") + ")", apply: func(p *plan) error {
		for _, f := range fs {
			i, ok := f.index()
			if !ok {
				return errorf("%s: unknown %v", name, f)
			}
			set(p, i)
		}
		return nil
	}}
}

// protocolFault is a fault that sets the SETTINGS mode of HTTP/2, HTTP/3
// or both.
func protocolFault(name string, ps []Protocol, m settingsMode) Fault {
	if len(ps) == 0 {
		ps = []Protocol{HTTP2, HTTP3}
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = string(p)
	}
	return Fault{name: name + "(" + strings.Join(names, ", ") + ")", apply: func(p *plan) error {
		for _, proto := range ps {
			switch proto {
			case HTTP2:
				p.h2 = m
			case HTTP3:
				p.h3 = m
			default:
				return errorf("%s: no SETTINGS in %q", name, proto)
			}
		}
		return nil
	}}
}
