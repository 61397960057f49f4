package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/eyeballs/dialer"
)

// A usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// isUsage reports whether err is a usage error.
func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// protoFlag collects HTTP versions from a repeatable, comma-separated flag.
type protoFlag []string

func (p *protoFlag) String() string { return strings.Join(*p, ",") }

func (p *protoFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		switch s = strings.TrimSpace(s); s {
		case "h1", "h2", "h3":
		case "http/1.1":
			s = "h1"
		default:
			return fmt.Errorf("unknown protocol %q: want h1, h2 or h3", s)
		}
		*p = append(*p, s)
	}
	return nil
}

// common holds the flags every dialing command shares.
type common struct {
	trace        bool
	json         bool
	ipv4, ipv6   bool
	protos       protoFlag
	attemptDelay time.Duration
	timeout      time.Duration
	nameservers  listFlag
	cacert       string
	headers      listFlag
	subprotocols listFlag
}

// register adds the common flags to fs.
func (c *common) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.trace, "trace", false, "print the race as a waterfall on stderr")
	fs.BoolVar(&c.json, "json", false, "print the race report as JSON on stderr")
	fs.BoolVar(&c.ipv4, "ipv4", false, "use IPv4 addresses only")
	fs.BoolVar(&c.ipv6, "ipv6", false, "use IPv6 addresses only")
	fs.Var(&c.protos, "proto", "HTTP `VERSIONS` to try: h1, h2, h3, comma-separated or repeated (default all)")
	fs.DurationVar(&c.attemptDelay, "attempt-delay", 250*time.Millisecond, "Happy Eyeballs connection attempt delay (10ms..2s)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on the whole dial")
	fs.Var(&c.nameservers, "nameserver", "DNS server `HOST:PORT` to query instead of /etc/resolv.conf (repeatable)")
	fs.StringVar(&c.cacert, "cacert", "", "PEM `FILE` of CA certificates to trust instead of the system roots")
	fs.Var(&c.headers, "header", "extra request header `NAME:VALUE` (repeatable)")
}

// registerSubprotocol adds -subprotocol, for the session commands.
func (c *common) registerSubprotocol(fs *flag.FlagSet) {
	fs.Var(&c.subprotocols, "subprotocol", "WebSocket subprotocol or WebTransport `PROTOCOL` to offer (repeatable)")
}

// options turns the flags, except -header and -subprotocol, into dialer
// options; the race reports are written to out.
func (c *common) options(out io.Writer) ([]dialer.Option, error) {
	if c.ipv4 && c.ipv6 {
		return nil, usagef("-ipv4 and -ipv6 exclude each other")
	}
	opts := []dialer.Option{dialer.WithAttemptDelay(c.attemptDelay), dialer.WithTimeout(c.timeout)}
	if c.ipv4 {
		opts = append(opts, dialer.WithIPv4Only())
	}
	if c.ipv6 {
		opts = append(opts, dialer.WithIPv6Only())
	}
	if len(c.protos) > 0 {
		opts = append(opts, dialer.WithProtocols(c.protos...))
	}
	if len(c.nameservers) > 0 {
		opts = append(opts, dialer.WithNameservers(c.nameservers...))
	}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, usagef("-cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("-cacert %s holds no PEM certificate", c.cacert)
		}
		opts = append(opts, dialer.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	if c.trace || c.json {
		opts = append(opts, dialer.WithReport(func(r *dialer.Report) {
			if c.trace {
				fmt.Fprint(out, r.String())
			}
			if c.json {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintf(out, "%s\n", b)
			}
		}))
	}
	return opts, nil
}

// sessionOptions is options plus -header and -subprotocol, for WebSocket
// and WebTransport dials.
func (c *common) sessionOptions(out io.Writer) ([]dialer.Option, error) {
	opts, err := c.options(out)
	if err != nil {
		return nil, err
	}
	h, err := c.header()
	if err != nil {
		return nil, err
	}
	if len(h) > 0 {
		opts = append(opts, dialer.WithHeader(h))
	}
	if len(c.subprotocols) > 0 {
		opts = append(opts, dialer.WithSubprotocols(c.subprotocols...))
	}
	return opts, nil
}

// header parses the -header flags.
func (c *common) header() (http.Header, error) {
	h := http.Header{}
	for _, kv := range c.headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("-header %q is not \"Name: value\"", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h, nil
}

// newFlagSet returns the flag set of "eyeballs name". Its -h prints
// synopsis and the flags on stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags and returns its other arguments. Flags
// may follow the arguments ("eyeballs get URL -i") until a "--". A flag
// error is returned as a usageError and printed by run on one line; -h
// prints the command's usage and returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard) // run prints the error, on one line
	defer fs.SetOutput(out)
	var rest []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.Usage()
			return nil, err
		}
		if err != nil {
			return nil, usagef("%v", err)
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), nil
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}
