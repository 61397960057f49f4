package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrUnsupported is matched (errors.Is) by a dial error when endpoints were
// reachable but none supports the requested session: no extended CONNECT or
// WebTransport in the server's SETTINGS, or a scheme the session cannot use.
var ErrUnsupported = errors.New("session not supported by the server")

// ErrRejected is matched (errors.Is) by a dial error when the server answered
// the WebSocket upgrade or extended CONNECT with a status other than 101 or
// 2xx. The server's response is returned with the error.
var ErrRejected = errors.New("server rejected the session")

// ErrNoAddress is matched by a dial error when DNS gave no usable address.
var ErrNoAddress = errors.New("no address resolved")

// A DialError describes a failed dial: the URL, the stage that failed and
// every attempt made, each with its endpoint, protocol and error. It unwraps
// to its cause and to every attempt (AttemptError) and its error, so
// errors.Is and errors.As reach context errors, *net.OpError,
// *tls.CertificateVerificationError and the package's sentinel errors. It
// is a net.Error: Timeout reports a dial that ran out of time.
type DialError struct {
	URL string
	// Proxy is the proxy the dial went through (password redacted), or
	// "" for a direct dial.
	Proxy string
	// Stage is where the dial stopped: "url", "dns", "connect",
	// "capability" or "handshake"; for a Transport, "request" when a
	// request failed on a pooled connection; "proxy" when the proxy, not
	// the origin, failed every attempt (the error matches ErrProxy).
	Stage string
	// Err is the cause of the failure as a whole (for example
	// context.DeadlineExceeded, ErrNoAddress, ErrUnsupported, or the
	// handshake error).
	Err error
	// DNS lists the failed DNS queries.
	DNS []error
	// Attempts lists every attempt that did not win.
	Attempts []AttemptError
}

// An AttemptError is one failed or cancelled attempt of a race.
type AttemptError struct {
	Addr  netip.AddrPort
	Proto string // "h1", "h2", "h2,h1" (TCP+TLS offering both), "h3" (QUIC), "tcp"
	Err   error
}

func (e AttemptError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Proto, e.Addr, e.Err)
}

// Unwrap returns the attempt's error.
func (e AttemptError) Unwrap() error { return e.Err }

func (e *DialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dial %s", e.URL)
	if e.Proxy != "" {
		fmt.Fprintf(&b, " via proxy %s", e.Proxy)
	}
	fmt.Fprintf(&b, ": %s failed", e.Stage)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	for _, d := range e.DNS {
		fmt.Fprintf(&b, "; %v", d)
	}
	if len(e.Attempts) > 0 {
		fmt.Fprintf(&b, "; %d attempt", len(e.Attempts))
		if len(e.Attempts) > 1 {
			b.WriteByte('s')
		}
		b.WriteString(":")
		for i, a := range e.Attempts {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(" ")
			b.WriteString(a.Error())
		}
	}
	return b.String()
}

// Unwrap returns the cause followed by each DNS error and each attempt as
// an AttemptError (which unwraps to the attempt's error), so that
// errors.As reaches both an AttemptError and what is inside it.
func (e *DialError) Unwrap() []error {
	errs := make([]error, 0, 1+len(e.DNS)+len(e.Attempts))
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	errs = append(errs, e.DNS...)
	for _, a := range e.Attempts {
		errs = append(errs, a)
	}
	return errs
}

// Timeout reports whether the dial failed because it ran out of time: the
// context's deadline (or WithTimeout's) passed, or the cause is a timeout.
// It makes a DialError a net.Error, so that net/http callers (url.Error,
// http.Client) see a dial that timed out as a timeout, as with
// net.Dialer. Attempts that timed out while others failed otherwise do not
// make the dial a timeout.
func (e *DialError) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary reports the same as Timeout; it exists for net.Error and, as
// there, is deprecated.
func (e *DialError) Temporary() bool { return e.Timeout() }

var _ net.Error = (*DialError)(nil)

// A timeoutError is a net.Error that timed out, for bounds the package
// enforces itself (WithResponseHeaderTimeout), as net/http's own are.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
