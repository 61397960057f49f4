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
//
// Exit codes: 0 ok, 1 the dial, request or session failed, 2 usage error.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/eyeballs/dialer"
)

const usage = `eyeballs: dial with Happy Eyeballs v3 and see the race.

Usage:
  eyeballs demo [flags]          start embedded loopback servers and race to them
  eyeballs ws [flags] URL        interactive WebSocket client (stdin lines out, messages in)
  eyeballs wt [flags] URL        WebTransport client (stdin lines on a stream or as datagrams)
  eyeballs get [flags] URL       HTTP request like curl: body to stdout
  eyeballs resolve [flags] NAME  A, AAAA and HTTPS records as the dialer sees them

Common flags of ws, wt and get: -trace, -json, -ipv4, -ipv6, -proto h1,h2,h3,
-attempt-delay, -timeout, -nameserver, -cacert, -header (and -subprotocol).
Run "eyeballs <command> -h" for the flags of a command.
Exit codes: 0 ok, 1 dial, request or session failed, 2 usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
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
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "eyeballs: unknown command %q (run \"eyeballs -h\" for the list)\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case isUsage(err):
		fmt.Fprintf(stderr, "eyeballs %s: %s (see \"eyeballs %s -h\")\n", args[0], oneLine(err), args[0])
		return 2
	default:
		msg := "eyeballs " + args[0] + ": " + oneLine(err)
		if h := hint(err); h != "" {
			msg += " (" + h + ")"
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
}

// oneLine returns err's message with line breaks folded.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

// hint suggests what to do about a failed dial or request, or returns "".
func hint(err error) string {
	var (
		unknownCA *x509.UnknownAuthorityError
		verify    *tls.CertificateVerificationError
		hostname  x509.HostnameError
	)
	switch {
	case errors.As(err, &hostname):
		return "the server's certificate does not cover this name"
	case errors.As(err, &unknownCA), errors.As(err, &verify):
		return "pass -cacert FILE to trust the server's CA"
	case errors.Is(err, dialer.ErrRejected):
		return "check the URL path and the -header flags"
	case errors.Is(err, dialer.ErrUnsupported):
		return "the server cannot carry this session; try another -proto or URL"
	case errors.Is(err, dialer.ErrNoAddress):
		return "check the name, or query another server with -nameserver HOST:PORT"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is a server listening on that port?"
	case errors.Is(err, context.DeadlineExceeded):
		return "nothing answered in time; raise -timeout or try -ipv4 or -ipv6"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return ""
}
