// Command eyeballs dials WebSocket and WebTransport URLs with Happy Eyeballs and shows the
// race: which addresses and protocols were tried, when, and why the winner
// won.
//
// Usage:
//
//	eyeballs demo            race against an embedded loopback server
//	eyeballs ws [flags] URL  interactive WebSocket client
//	eyeballs wt [flags] URL  WebTransport client
//
// Exit codes: 0 ok, 1 the dial or session failed, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/eyeballs/dialer/internal/testkit"
)

const usage = `eyeballs: dial WebSockets with Happy Eyeballs v3 and see the race.

Usage:
  eyeballs demo [flags]      start an embedded loopback server and race to it
  eyeballs ws [flags] URL    interactive WebSocket client (stdin lines out, messages in)
  eyeballs wt [flags] URL    WebTransport client (stdin lines on a stream or as datagrams)

Run "eyeballs <command> -h" for the flags of a command.
Exit codes: 0 ok, 1 dial or session failed, 2 usage error.
`

// errUsage marks errors that should exit with status 2.
var errUsage = errors.New("usage")

func main() {
	// The demo's embedded HTTP/2 server offers RFC 8441 extended CONNECT
	// only when GODEBUG=http2xconnect=1 is in the environment at start-up.
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		if code, ok := testkit.EnsureXConnect(); ok {
			os.Exit(code)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
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
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "eyeballs: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "eyeballs %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "eyeballs %s: %v\n", args[0], err)
		return 1
	}
}
