// Command eyeballs dials WebSocket, WebTransport and HTTP URLs with Happy
// Eyeballs and shows the race: which addresses and protocols were tried,
// when, and why the winner won.
//
// Usage:
//
//	eyeballs demo [flags]         race against embedded loopback servers
//	eyeballs ws [flags] URL       interactive WebSocket client
//	eyeballs wt [flags] URL       WebTransport client
//	eyeballs get [flags] URL      HTTP request, body to stdout (like curl)
//	eyeballs resolve [flags] NAME A, AAAA and HTTPS records as the dialer sees them
//	eyeballs version              version of eyeballs and Go
//
// With -json, stdout carries only JSON, one object a line (NDJSON): a
// dialer.Report per race (resolve: a dialer.Resolution); everything else
// goes to stderr.
//
// Exit codes:
//
//	0    ok
//	1    any other failure (the server cannot carry the session, a broken connection, ...)
//	2    usage: a bad flag, argument or URL (the same in every command)
//	3    DNS: no address for the name
//	4    connect: refused, unreachable or reset
//	5    TLS: the certificate was not trusted, or the handshake failed
//	6    timeout: -timeout (or -connect-timeout, -ping-interval) ran out
//	7    HTTP status: the server refused the WebSocket or WebTransport session, or get -f saw 400 or more
//	130  interrupted (Ctrl-C)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer"
)

const usage = `eyeballs: dial with Happy Eyeballs v3 and see the race.

Usage:
  eyeballs demo [flags]          start embedded loopback servers and race to them
  eyeballs ws [flags] URL        interactive WebSocket client (stdin lines out, messages in)
  eyeballs wt [flags] URL        WebTransport client (stdin lines on a stream or as datagrams)
  eyeballs get [flags] URL       HTTP request like curl: body to stdout
  eyeballs resolve [flags] NAME  A, AAAA and HTTPS records as the dialer sees them

  eyeballs version               version of eyeballs and Go

Common flags of ws, wt and get: -trace, -v, -json, -4/-ipv4, -6/-ipv6,
-proto h1,h2,h3, -attempt-delay, -timeout, -nameserver, -cacert,
-H/-header, -A/-user-agent, --resolve HOST:PORT:ADDR,
--connect-to HOST1:PORT1:HOST2:PORT2 (and -subprotocol for ws and wt).
Run "eyeballs <command> -h" for the flags of a command.

With -json, stdout carries only JSON, one object a line (NDJSON): a race
report per race (resolve: its answers); everything else goes to stderr.

Exit codes:
  0    ok
  1    any other failure
  2    usage error (bad flag, argument or URL)
  3    DNS: no address for the name
  4    connect: refused, unreachable or reset
  5    TLS: certificate not trusted, or handshake failed
  6    timeout
  7    HTTP status: session refused by the server, or get -f saw >= 400
  130  interrupted (Ctrl-C)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	// The first Ctrl-C cancels the command; a second one, while it winds
	// down, ends the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes; see the package comment.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitDNS         = 3
	exitConnect     = 4
	exitTLS         = 5
	exitTimeout     = 6
	exitHTTP        = 7
	exitInterrupted = 130
)

// run executes one command and returns the process exit code. ctx ends
// when the user interrupts (Ctrl-C): run then returns 130.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	// Commands write from more than one goroutine (messages received,
	// progress, pongs).
	stdout, stderr = &syncWriter{w: stdout}, &syncWriter{w: stderr}
	var err error
	switch args[0] {
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "ws":
		err = runWS(ctx, args[1:], stdin, stdout, stderr)
	case "wt":
		err = runWT(ctx, args[1:], stdin, stdout, stderr)
	case "get":
		err = runGet(ctx, args[1:], stdin, stdout, stderr)
	case "resolve":
		err = runResolve(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		err = runVersion(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "eyeballs: unknown command %q (run \"eyeballs -h\" for the list)\n", args[0])
		return exitUsage
	}
	code := exitCode(err)
	switch {
	case ctx.Err() != nil && !isUsage(err):
		// Interrupted: the user knows why it ended.
		return exitInterrupted
	case code == exitOK:
		return exitOK
	case code == exitUsage:
		fmt.Fprintf(stderr, "eyeballs %s: %s (see \"eyeballs %s -h\")\n", args[0], oneLine(err), args[0])
	default:
		msg := "eyeballs " + args[0] + ": " + oneLine(err)
		if h := hint(err); h != "" {
			msg += " (" + h + ")"
		}
		fmt.Fprintln(stderr, msg)
	}
	return code
}

// exitCode returns the exit code for a command's error. It looks at what
// the error is (errors.Is and errors.As), never at its text; when causes
// mix, the first that applies wins: usage, HTTP status, TLS, timeout, DNS,
// connect.
func exitCode(err error) int {
	var (
		status *statusError
		derr   *dialer.DialError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case isUsage(err):
		return exitUsage
	case errors.Is(err, dialer.ErrRejected), errors.As(err, &status):
		return exitHTTP
	case isTLS(err):
		return exitTLS
	case isTimeout(err):
		return exitTimeout
	case errors.Is(err, dialer.ErrProxy):
		return exitConnect // the proxy refused or failed: no connection
	case errors.Is(err, dialer.ErrNoAddress), errors.As(err, &derr) && derr.Stage == "dns", isDNSError(err):
		return exitDNS
	case isConnect(err):
		return exitConnect
	}
	return exitFailure
}

// isTLS reports whether err holds a failed TLS handshake or certificate
// check, over TCP or QUIC.
func isTLS(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		record    tls.RecordHeaderError
		ech       *tls.ECHRejectionError
		quicErr   *quic.TransportError
	)
	return errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &alert) || errors.As(err, &record) || errors.As(err, &ech) ||
		(errors.As(err, &quicErr) && quicErr.ErrorCode.IsCryptoError())
}

// isTimeout reports whether err says the command ran out of time. A
// dialer.DialError decides for itself (its Timeout): an attempt that timed
// out in a race that failed otherwise is not the dial timing out.
func isTimeout(err error) bool {
	return walk(err, func(e error) (found, stop bool) {
		if d, ok := e.(*dialer.DialError); ok {
			return d.Timeout(), true
		}
		if e == context.DeadlineExceeded {
			return true, true
		}
		if ne, ok := e.(net.Error); ok && ne.Timeout() {
			return true, true
		}
		return false, false
	})
}

// isDNSError reports whether err holds a DNS failure of the Go resolver
// (through a proxy's name, say).
func isDNSError(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

// isConnect reports whether err holds a connection refused, unreachable or
// reset, or is a dial that failed connecting.
func isConnect(err error) bool {
	var derr *dialer.DialError
	if errors.As(err, &derr) && derr.Stage == "connect" {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN, syscall.EHOSTDOWN, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// walk calls f on err and the errors it wraps, depth first, until f says
// stop on an error or none is left; it reports whether f found what it
// looks for on the error it stopped at. f does not see what an error it
// stopped at wraps.
func walk(err error, f func(error) (found, stop bool)) bool {
	if err == nil {
		return false
	}
	if found, stop := f(err); stop {
		return found
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, f) {
				return true
			}
		}
	}
	return false
}

// A described error has a message of its own, shorter than the error it
// wraps (which decides the exit code), and a hint.
type described struct {
	msg, hint string
	err       error
}

func (e *described) Error() string { return e.msg }
func (e *described) Unwrap() error { return e.err }

// A syncWriter serialises the writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// oneLine returns err's message with line breaks folded.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

// hint suggests what to do about a failed dial or request, or returns "".
func hint(err error) string {
	var (
		desc     *described
		hostname x509.HostnameError
		bound    *timeoutError
	)
	switch {
	case errors.As(err, &desc):
		return desc.hint
	case errors.As(err, &bound):
		return "" // its message names the bound
	case errors.As(err, &hostname):
		return "the server's certificate does not cover this name"
	case errors.Is(err, dialer.ErrProxy) && !isTimeout(err):
		return "the proxy failed, not the server: check -proxy (or HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) and its user:password, or pass -noproxy"
	case isTLS(err):
		return "pass -cacert FILE to trust the server's CA"
	case errors.Is(err, dialer.ErrRejected):
		return "check the URL path and the -header flags"
	case errors.Is(err, dialer.ErrUnsupported):
		return "the server cannot carry this session; try another -proto or URL"
	case errors.Is(err, dialer.ErrNoAddress):
		return "check the name, or query another server with -nameserver IP:PORT"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is a server listening on that port?"
	case isTimeout(err):
		return "nothing answered in time; raise the timeout, or try -4 or -6"
	}
	return ""
}
