package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/eyeballs/dialer"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// common holds the flags every dialing command shares.
type common struct {
	trace        bool
	json         bool
	ipv4, ipv6   bool
	attemptDelay time.Duration
	timeout      time.Duration
	nameservers  listFlag
	cacert       string
	headers      listFlag
	subprotocols listFlag
}

func (c *common) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.trace, "trace", false, "print the race as a waterfall on stderr")
	fs.BoolVar(&c.json, "json", false, "print the race report as JSON on stderr")
	fs.BoolVar(&c.ipv4, "ipv4", false, "use IPv4 addresses only")
	fs.BoolVar(&c.ipv6, "ipv6", false, "use IPv6 addresses only")
	fs.DurationVar(&c.attemptDelay, "attempt-delay", 250*time.Millisecond, "Happy Eyeballs connection attempt delay (10ms..2s)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on the whole dial")
	fs.Var(&c.nameservers, "nameserver", "DNS server host:port to query instead of /etc/resolv.conf (repeatable)")
	fs.StringVar(&c.cacert, "cacert", "", "PEM file of CA certificates to trust instead of the system roots")
	fs.Var(&c.headers, "header", `extra request header "Name: value" (repeatable)`)
	fs.Var(&c.subprotocols, "subprotocol", "WebSocket subprotocol to offer (repeatable)")
}

// options turns the flags into dialer options; report receives the race.
func (c *common) options(stderr io.Writer) ([]dialer.Option, error) {
	if c.ipv4 && c.ipv6 {
		return nil, fmt.Errorf("%w: -ipv4 and -ipv6 exclude each other", errUsage)
	}
	opts := []dialer.Option{dialer.WithAttemptDelay(c.attemptDelay), dialer.WithTimeout(c.timeout)}
	if c.ipv4 {
		opts = append(opts, dialer.WithIPv4Only())
	}
	if c.ipv6 {
		opts = append(opts, dialer.WithIPv6Only())
	}
	if len(c.nameservers) > 0 {
		opts = append(opts, dialer.WithNameservers(c.nameservers...))
	}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, fmt.Errorf("%w: -cacert: %v", errUsage, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: -cacert %s holds no PEM certificate", errUsage, c.cacert)
		}
		opts = append(opts, dialer.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	if len(c.headers) > 0 {
		h := http.Header{}
		for _, kv := range c.headers {
			k, v, ok := strings.Cut(kv, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("%w: -header %q is not \"Name: value\"", errUsage, kv)
			}
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		opts = append(opts, dialer.WithHeader(h))
	}
	if len(c.subprotocols) > 0 {
		opts = append(opts, dialer.WithSubprotocols(c.subprotocols...))
	}
	if c.trace || c.json {
		opts = append(opts, dialer.WithReport(func(r *dialer.Report) {
			if c.trace {
				fmt.Fprint(stderr, r.String())
			}
			if c.json {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintf(stderr, "%s\n", b)
			}
		}))
	}
	return opts, nil
}

// parse parses a command's flags; it wraps flag errors as usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
