package dialer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer/internal/durfmt"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/wt2"
)

// An outcome is how an attempt of a race ended. Its String is the
// Attempt.Outcome of the Report.
type outcome uint8

const (
	outcomePending   outcome = iota // the attempt is still running
	outcomeWon                      // its connection is the race's result
	outcomeFailed                   // it failed on its own
	outcomeLost                     // cancelled because another attempt won
	outcomeIncapable                // connected, but lacked the capability the dial needs
	outcomeAborted                  // cancelled because the dial ended
)

// String returns the outcome as the Report spells it.
func (o outcome) String() string {
	switch o {
	case outcomeWon:
		return "won"
	case outcomeFailed:
		return "failed"
	case outcomeLost:
		return "lost"
	case outcomeIncapable:
		return "incapable"
	case outcomeAborted:
		return "aborted"
	}
	return ""
}

// An attemptResult is the typed record of one attempt of a race. The
// Report keeps one beside each Attempt, which says the same in strings for
// people; the race, its error and the Dialer's learning read these.
type attemptResult struct {
	addr  netip.AddrPort
	proto hev3.Proto
	// plain: a TCP attempt without TLS.
	plain bool
	// start is when the attempt started, end when it ended, as offsets
	// from the race's start (Attempt.Start, Attempt.End).
	start, end time.Duration
	// tcpUp: a TCP+TLS attempt's TCP connection was up, at tcpAt.
	tcpUp bool
	tcpAt time.Duration
	// connected: the transport handshake (TCP, TLS or QUIC) finished, at
	// connectedAt, and version is the HTTP version it negotiated.
	connected   bool
	connectedAt time.Duration
	// early: a QUIC attempt was up with 0-RTT keys, at connectedAt, before
	// its handshake ended (zerortt.go).
	early   bool
	version hev3.Version
	// ech is what Encrypted Client Hello did on the connection: after an
	// ECH retry (echRetried, echDisabled) the handshake took two.
	ech echResult
	// settings are the capability bits of the server's SETTINGS, if they
	// arrived.
	settings *hev3.Settings
	outcome  outcome
	// err is why the attempt did not win: its failure, the capability it
	// lacked (matching ErrUnsupported) or the end of the dial; nil for the
	// winner and for attempts that lost to it.
	err error
}

// protoName is what an attempt offered, as the Report spells it.
func protoName(spec raceSpec, p hev3.Proto) string {
	if spec.need == hev3.NeedTransport && spec.versions == hev3.Versions(hev3.H1) && !p.QUIC() && spec.kind == "tcp" {
		return "tcp"
	}
	return p.String()
}

// missing says what an incapable attempt that negotiated v lacked, given
// the server's SETTINGS s (nil if none arrived).
func missing(need hev3.Need, v hev3.Version, s *hev3.Settings) string {
	if v == hev3.H1 {
		return "WebTransport needs HTTP/2 or HTTP/3 but the server chose HTTP/1.1"
	}
	if s == nil {
		s = &hev3.Settings{}
	}
	var lack []string
	if !s.ExtendedConnect {
		lack = append(lack, "SETTINGS_ENABLE_CONNECT_PROTOCOL")
	}
	if need == hev3.NeedWebTransport {
		if v == hev3.H3 && !s.Datagrams {
			lack = append(lack, "SETTINGS_H3_DATAGRAM")
		}
		switch {
		case s.WebTransport:
		case v == hev3.H2:
			lack = append(lack, "SETTINGS_WT_ENABLED (WebTransport, "+wt2.Draft+") or draft-13's SETTINGS_WT_INITIAL_*")
		default:
			lack = append(lack, "WebTransport")
		}
	}
	return fmt.Sprintf("%s SETTINGS lack %s", v, strings.Join(lack, ", "))
}

// winReason explains in one line why attempt a, which negotiated v, won.
func winReason(spec raceSpec, a *Attempt, v hev3.Version) string {
	why := fmt.Sprintf("%s %s won after %s", a.Proto, a.Addr, durfmt.Format(a.End))
	switch spec.need {
	case hev3.NeedWebSocket:
		if v == hev3.H1 {
			why += ": first TLS/TCP connection for an HTTP/1.1 upgrade"
		} else {
			why += ": first connection whose SETTINGS enable extended CONNECT"
		}
	case hev3.NeedWebTransport:
		why += ": first connection whose SETTINGS enable WebTransport"
	case hev3.NeedHTTP:
		if v == hev3.H1 {
			why += ": first TLS/TCP connection (HTTP/1.1)"
		} else {
			why += ": first connection whose SETTINGS arrived"
		}
	default:
		why += ": first connection established"
	}
	return why
}

// heardFrom reports whether an attempt's error shows that its packets
// reached the server's host, although the handshake did not finish: the
// host refused the connection (ECONNREFUSED, an ICMP port unreachable
// where the system reports it), the peer closed the QUIC connection (a
// transport or application error it sent, CONNECTION_REFUSED among
// them), answered with a version negotiation or a stateless reset,
// presented a certificate that failed verification, or rejected ECH
// (an *ECHError).
//
// quic-go's UDP sockets are unconnected: Linux reports no ICMP error on
// them, so a QUIC attempt to a closed port times out there like one to a
// blackholed path.
func heardFrom(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	if te, ok := errors.AsType[*quic.TransportError](err); ok && te.Remote {
		return true
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok && ae.Remote {
		return true
	}
	if _, ok := errors.AsType[*quic.VersionNegotiationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*quic.StatelessResetError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*ECHError](err); ok {
		return true // the server answered the handshake that offered ECH
	}
	_, ok := errors.AsType[*tls.CertificateVerificationError](err)
	return ok
}
