package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
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

// common holds the flags every dialing command (ws, wt, get) shares.
type common struct {
	trace        bool
	verbose      bool
	json         bool
	ipv4, ipv6   bool
	protos       protoFlag
	attemptDelay time.Duration
	timeout      time.Duration
	nameservers  listFlag
	cacert       string
	headers      listFlag
	userAgent    string
	subprotocols listFlag
	resolve      resolveFlag
	connectTo    connectFlag
	proxy        string
	noProxy      bool

	roots    *x509.CertPool // from -cacert, by check
	routes   *routes        // --resolve and --connect-to, by check
	proxyURL *url.URL       // from -proxy, by check
}

// register adds the common flags to fs; -timeout has the given default
// and meaning.
func (c *common) register(fs *flag.FlagSet, timeout time.Duration, timeoutUsage string) {
	fs.BoolVar(&c.trace, "trace", false, "print the race as a waterfall on stderr")
	fs.BoolVar(&c.verbose, "verbose", false, "like -trace, and print the request and response headers on stderr (curl -v)")
	alias(fs, "v", "verbose")
	fs.BoolVar(&c.json, "json", false, "print each race report as one line of JSON on stdout (NDJSON); everything else goes to stderr")
	fs.BoolVar(&c.ipv4, "ipv4", false, "use IPv4 addresses only")
	alias(fs, "4", "ipv4")
	fs.BoolVar(&c.ipv6, "ipv6", false, "use IPv6 addresses only")
	alias(fs, "6", "ipv6")
	fs.Var(&c.protos, "proto", "HTTP `VERSIONS` to try: h1, h2, h3, comma-separated or repeated (default all)")
	fs.DurationVar(&c.attemptDelay, "attempt-delay", 0, "Happy Eyeballs connection attempt delay (10ms..2s; default: from the network's measured RTT, else 250ms)")
	fs.DurationVar(&c.timeout, "timeout", timeout, timeoutUsage)
	fs.Var(&c.nameservers, "nameserver", "DNS server `IP:PORT` to query instead of /etc/resolv.conf (repeatable)")
	fs.StringVar(&c.cacert, "cacert", "", "PEM `FILE` of CA certificates to trust instead of the system roots")
	fs.Var(&c.headers, "header", "extra request header `NAME:VALUE` (repeatable)")
	alias(fs, "H", "header")
	fs.StringVar(&c.userAgent, "user-agent", "", "User-Agent header `VALUE`")
	alias(fs, "A", "user-agent")
	fs.Var(&c.resolve, "resolve", "use ADDR for HOST on PORT, without DNS (curl's --resolve; ADDR may be a comma-separated list; repeatable)\n`HOST:PORT:ADDR`")
	fs.StringVar(&c.proxy, "proxy", "", "go through the proxy at `URL` (http://, https://, socks5://, socks5h://; user:password@ for credentials)\ninstead of the one HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY pick (curl's -x)")
	alias(fs, "x", "proxy")
	fs.BoolVar(&c.noProxy, "noproxy", false, "connect directly, ignoring HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY")
	fs.Var(&c.connectTo, "connect-to", "connect to HOST2:PORT2 for requests to HOST1:PORT1, still verifying HOST1's certificate\n(curl's --connect-to; empty parts match any or keep the URL's; repeatable)\n`HOST1:PORT1:HOST2:PORT2`")
}

// registerSubprotocol adds -subprotocol, for the session commands.
func (c *common) registerSubprotocol(fs *flag.FlagSet) {
	fs.Var(&c.subprotocols, "subprotocol", "WebSocket subprotocol or WebTransport `PROTOCOL` to offer (repeatable)")
	alias(fs, "protocol", "subprotocol") // websocat's name
}

// check checks the flags that parse alone cannot, so that the same mistake
// is the same usage error (exit 2) in every command, and loads -cacert.
func (c *common) check() error {
	if c.ipv4 && c.ipv6 {
		return usagef("-ipv4 and -ipv6 exclude each other")
	}
	if c.timeout < 0 {
		return usagef("-timeout %v is negative", c.timeout)
	}
	if err := checkNameservers(c.nameservers); err != nil {
		return err
	}
	if _, err := c.header(); err != nil {
		return err
	}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return usagef("-cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usagef("-cacert %s holds no PEM certificate", c.cacert)
		}
		c.roots = pool
	}
	c.routes = &routes{resolve: c.resolve, connectTo: c.connectTo}
	return c.checkProxy()
}

// checkProxy checks -proxy and -noproxy.
func (c *common) checkProxy() error {
	if c.proxy == "" {
		return nil
	}
	if c.noProxy {
		return usagef("-proxy and -noproxy exclude each other")
	}
	raw := c.proxy
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw // as curl and net/http take a bare host:port
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return usagef("-proxy %q is not a proxy URL", c.proxy)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return usagef("-proxy %q: scheme %q, want http, https, socks5 or socks5h", c.proxy, u.Scheme)
	}
	c.proxyURL = u
	return nil
}

// checkNameservers checks -nameserver values: IP or IP:PORT.
func checkNameservers(ns []string) error {
	for _, s := range ns {
		if _, err := netip.ParseAddrPort(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				return usagef("-nameserver %q is not IP:PORT", s)
			}
		}
	}
	return nil
}

// options turns the flags, except those that depend on the URL (TLS,
// --resolve, --connect-to, headers), into dialer options. Waterfalls go to
// p, JSON reports to o.
func (c *common) options(p *progress, o *output) []dialer.Option {
	opts := []dialer.Option{dialer.WithTimeout(c.timeout)}
	if c.attemptDelay != 0 {
		opts = append(opts, dialer.WithAttemptDelay(c.attemptDelay))
	}
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
	switch {
	case c.proxyURL != nil:
		opts = append(opts, dialer.WithProxy(http.ProxyURL(c.proxyURL)))
	case c.noProxy:
		opts = append(opts, dialer.WithProxy(func(*http.Request) (*url.URL, error) { return nil, nil }))
	}
	o.around = p.hold
	if c.trace || c.verbose || o.json {
		opts = append(opts, dialer.WithReport(func(r *dialer.Report) {
			if c.trace || c.verbose {
				fmt.Fprint(p, r.String())
			}
			o.Report(r)
		}))
	}
	return opts
}

// targetOptions returns the options for dialing t: the TLS configuration
// (-cacert, and the server name --connect-to keeps) and the hosts file of
// --resolve.
func (c *common) targetOptions(t target) []dialer.Option {
	var opts []dialer.Option
	if c.roots != nil || t.serverName != "" {
		opts = append(opts, dialer.WithTLSConfig(&tls.Config{RootCAs: c.roots, ServerName: t.serverName}))
	}
	if t.hostsFile != "" {
		opts = append(opts, dialer.WithHostsFile(t.hostsFile))
	}
	return opts
}

// session returns the URL to dial for a WebSocket or WebTransport session
// to u and the options of the dial: options, targetOptions, the headers
// (with the Host that --connect-to keeps) and -subprotocol.
func (c *common) session(u *url.URL, p *progress, o *output) (string, []dialer.Option, error) {
	t, err := c.routes.route(u)
	if err != nil {
		return "", nil, err
	}
	opts := append(c.options(p, o), c.targetOptions(t)...)
	dial := *u
	h := http.Header{}
	if t.authority != "" {
		dial.Host = t.hostAddr()
		h.Set("Host", t.authority)
	}
	hh, err := c.header()
	if err != nil {
		return "", nil, err
	}
	for k, vs := range hh {
		h[k] = vs // -H Host: wins over --connect-to's
	}
	if len(h) > 0 {
		opts = append(opts, dialer.WithHeader(h))
	}
	if len(c.subprotocols) > 0 {
		opts = append(opts, dialer.WithSubprotocols(c.subprotocols...))
	}
	return dial.String(), opts, nil
}

// header parses the -header flags and -user-agent.
func (c *common) header() (http.Header, error) {
	h := http.Header{}
	for _, kv := range c.headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("-header %q is not \"Name: value\"", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
	return h, nil
}

// parseURL parses the URL argument of a command, which must have one of
// schemes and a host.
func parseURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
		article := "a"
		if strings.HasPrefix(schemes[0], "h") {
			article = "an" // "an http://"
		}
		return nil, usagef("%q is not %s%s URL", raw, article, schemeList(schemes))
	}
	return u, nil
}

// schemeList writes schemes as " ws://, wss:// or https://".
func schemeList(schemes []string) string {
	s := ""
	for i, sc := range schemes {
		switch {
		case i == 0:
			s += " "
		case i == len(schemes)-1:
			s += " or "
		default:
			s += ", "
		}
		s += sc + "://"
	}
	return s
}

// alias makes short another name of fs's flag long; the usage lists both
// on one line.
func alias(fs *flag.FlagSet, short, long string) {
	f := fs.Lookup(long)
	fs.Var(f.Value, short, f.Usage)
	fs.Lookup(short).DefValue = f.DefValue
}

// newFlagSet returns the flag set of "eyeballs name". Its -h prints
// synopsis and the flags on stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", synopsis)
		printFlags(fs.Output(), fs)
	}
	return fs
}

// printFlags prints fs's flags as flag.PrintDefaults does, but with the
// names of one flag (see alias) on one line: "  -H, -header NAME:VALUE".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	names := map[flag.Value][]string{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Value] = append(names[f.Value], f.Name) })
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		ns := names[f.Value]
		slices.SortStableFunc(ns, func(a, b string) int { return len(a) - len(b) })
		if f.Name != ns[len(ns)-1] {
			return // listed under its long name
		}
		arg, usage := flag.UnquoteUsage(f)
		// A usage may end with its argument on a line of its own.
		if i := strings.LastIndex(usage, "\n"); i >= 0 && arg != "" && strings.TrimSpace(usage[i+1:]) == arg {
			usage = usage[:i]
		}
		b.WriteString("  -" + strings.Join(ns, ", -"))
		if arg != "" {
			b.WriteString(" " + arg)
		}
		b.WriteString("\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "false", "0", "0s", "[]":
		default:
			fmt.Fprintf(&b, " (default %v)", f.DefValue)
		}
		b.WriteString("\n")
	})
	io.WriteString(w, b.String())
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
