package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/eyeballs/dialer"
)

const getSynopsis = `Usage: eyeballs get [flags] URL

Sends one HTTP request through a Happy Eyeballs transport, like a small curl,
and writes the response body to stdout (or to -o FILE). Redirects are
followed only with -L. A status of 400 or more exits 0 unless -f is given.
-timeout bounds the whole request, body included; -connect-timeout the dial.
With -json, stdout carries only the race reports, one JSON object a line,
and the body goes to -o FILE or to stderr.
`

// maxRedirects is how many redirects -L follows.
const maxRedirects = 10

// runGet is "eyeballs get URL": it sends a request with dialer.Transport and
// copies the response body to stdout.
func runGet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", getSynopsis, stderr)
	var c common
	c.register(fs, 0, "bound on the whole request, body included (0: none)")
	connectTimeout := fs.Duration("connect-timeout", dialer.DefaultTimeout, "bound on the dial: DNS, the race and the TLS or QUIC handshake")
	method := fs.String("request", "", "request `METHOD` (default GET, or POST with -d, HEAD with -I)")
	alias(fs, "X", "request")
	data := fs.String("data", "", "request body `DATA`; \"@FILE\" reads a file, \"@-\" stdin")
	alias(fs, "d", "data")
	include := fs.Bool("include", false, "print the status line and the headers before the body (of each response with -L)")
	alias(fs, "i", "include")
	head := fs.Bool("head", false, "send a HEAD request and print the status line and the headers only")
	alias(fs, "I", "head")
	fail := fs.Bool("fail", false, "exit 7, without the body, when the status is 400 or more")
	alias(fs, "f", "fail")
	outFile := fs.String("output", "", "write the body (and -i's headers) to `FILE` instead of stdout")
	alias(fs, "o", "output")
	location := fs.Bool("location", false, fmt.Sprintf("follow redirects (at most %d)", maxRedirects))
	alias(fs, "L", "location")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one http:// or https:// URL")
	}
	u, err := parseURL(args[0], "http", "https")
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	defer c.routes.close()
	if *connectTimeout < 0 {
		return usagef("-connect-timeout %v is negative", *connectTimeout)
	}
	hdr, err := c.header()
	if err != nil {
		return err
	}
	hasData := false
	fs.Visit(func(f *flag.Flag) { hasData = hasData || f.Name == "d" || f.Name == "data" })
	if hasData && *head {
		return usagef("-head (-I) and -data (-d) exclude each other")
	}
	if *outFile == "-" {
		*outFile = ""
	}
	var body io.Reader
	if hasData {
		b, err := readData(*data, stdin)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	switch {
	case *method != "":
	case *head:
		*method = http.MethodHead
	case hasData:
		*method = http.MethodPost
	default:
		*method = http.MethodGet
	}

	rctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(rctx, *method, u.String(), body)
	if err != nil {
		return usagef("%v", err)
	}
	req.Header.Set("User-Agent", userAgent())
	if hasData {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range hdr {
		if k == "Host" {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}

	o := newOutput(c.json, stdout, stderr)
	p := newProgress(stderr, "requesting "+u.Host)
	defer p.stop()
	opts := append(c.options(p, o), dialer.WithTimeout(*connectTimeout))
	gt := &getTransport{c: &c, opts: opts, verbose: p}
	if !c.verbose {
		gt.verbose = nil
	}
	defer gt.close()
	client := &http.Client{Transport: gt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !*location {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}}
	timedOut := func(err error) error {
		if c.timeout > 0 && ctx.Err() == nil && rctx.Err() != nil {
			return &timeoutError{fmt.Sprintf("no complete answer within -timeout %v", c.timeout), err}
		}
		return err
	}
	p.start()
	resp, err := client.Do(req)
	p.stop()
	if err != nil {
		return timedOut(err)
	}
	defer resp.Body.Close()
	if c.trace && !c.verbose {
		fmt.Fprintf(stderr, "HTTP/%d %s\n", resp.ProtoMajor, resp.Status)
	}

	// The body (and -i's heads) go to stdout, or to -o FILE, or to stderr
	// under -json.
	out := o.Data()
	var file *lazyFile
	if *outFile != "" {
		file = &lazyFile{name: *outFile}
		out = file
	}
	if *include || *head {
		for _, r := range gt.responses() {
			printHead(out, r)
		}
	}
	if *fail && resp.StatusCode >= 400 {
		file.Close()
		return &statusError{resp.Status}
	}
	if !*head {
		if _, err := io.Copy(out, resp.Body); err != nil {
			file.Close()
			if file != nil && file.err != nil {
				return file.err
			}
			return timedOut(fmt.Errorf("reading the body: %w", err))
		}
	}
	return file.finish()
}

// A statusError is a response that -fail rejects; it exits 7.
type statusError struct{ status string }

func (e *statusError) Error() string { return "server answered " + e.status }

// A timeoutError is an operation cut by a bound of the command (-timeout,
// -ping-interval); it is a net.Error that timed out, and exits 6.
type timeoutError struct {
	msg string
	err error
}

func (e *timeoutError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *timeoutError) Unwrap() error   { return e.err }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// A lazyFile is -o's file, created on its first write so that a failed
// request leaves no empty file behind.
type lazyFile struct {
	name string
	f    *os.File
	err  error
}

func (l *lazyFile) Write(b []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.f == nil {
		if l.f, l.err = os.Create(l.name); l.err != nil {
			l.err = fmt.Errorf("-output: %w", l.err)
			return 0, l.err
		}
	}
	n, err := l.f.Write(b)
	if err != nil {
		l.err = fmt.Errorf("-output: %w", err)
	}
	return n, l.err
}

// finish closes the file, creating it empty if nothing was written, as
// after a complete empty body. A nil lazyFile is finished.
func (l *lazyFile) finish() error {
	if l == nil {
		return nil
	}
	if l.f == nil && l.err == nil {
		l.Write(nil)
	}
	return l.Close()
}

// Close closes the file if it was created. A nil lazyFile is closed.
func (l *lazyFile) Close() error {
	if l == nil {
		return nil
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil && l.err == nil {
			l.err = fmt.Errorf("-output: %w", err)
		}
		l.f = nil
	}
	return l.err
}

// A getTransport sends each request of get (the first and, with -L, each
// redirect) through a dialer.Transport for its target after --connect-to
// and --resolve, and keeps the responses for -i and -I. With verbose set,
// it prints each request's head once it has a connection, and each
// response's head, as curl -v does.
type getTransport struct {
	c       *common
	opts    []dialer.Option
	verbose io.Writer

	mu   sync.Mutex
	trs  map[trKey]*dialer.Transport
	resp []*http.Response
}

// trKey tells the transports of get apart: by the target's options.
type trKey struct{ serverName, hostsFile string }

func (g *getTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t, err := g.c.routes.route(req.URL)
	if err != nil {
		return nil, err
	}
	tr := g.transport(t)
	out := req
	if t.authority != "" {
		out = req.Clone(req.Context())
		out.URL.Host = t.hostAddr()
		if out.Host == "" {
			out.Host = t.authority
		}
	}
	if g.verbose != nil {
		var once sync.Once
		ctx := httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { once.Do(func() { printRequest(g.verbose, req) }) },
		})
		out = out.WithContext(ctx)
	}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	resp.Request = req
	if g.verbose != nil {
		printHeadPrefixed(g.verbose, resp, "< ")
	}
	g.mu.Lock()
	g.resp = append(g.resp, resp)
	g.mu.Unlock()
	return resp, nil
}

// transport returns the transport for t, making it on first use.
func (g *getTransport) transport(t target) *dialer.Transport {
	k := trKey{t.serverName, t.hostsFile}
	g.mu.Lock()
	defer g.mu.Unlock()
	if tr := g.trs[k]; tr != nil {
		return tr
	}
	if g.trs == nil {
		g.trs = map[trKey]*dialer.Transport{}
	}
	tr := dialer.NewTransport(append(slices.Clip(g.opts), g.c.targetOptions(t)...)...)
	g.trs[k] = tr
	return tr
}

// responses returns the responses received, in order.
func (g *getTransport) responses() []*http.Response {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.resp)
}

// close closes the idle connections of every transport.
func (g *getTransport) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, tr := range g.trs {
		tr.CloseIdleConnections()
	}
}

// readData returns the body given with -d: the text itself, or the
// contents of a file ("@FILE") or of stdin ("@-").
func readData(d string, stdin io.Reader) ([]byte, error) {
	name, ok := strings.CutPrefix(d, "@")
	switch {
	case !ok:
		return []byte(d), nil
	case name == "-":
		return io.ReadAll(stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("-d: %v", err)
	}
	return b, nil
}

// printHead prints the status line and the headers of resp, sorted, and an
// empty line, as curl -i does.
func printHead(w io.Writer, resp *http.Response) {
	printHeadPrefixed(w, resp, "")
}

// printHeadPrefixed prints resp's head with each line prefixed.
func printHeadPrefixed(w io.Writer, resp *http.Response, prefix string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s %s\n", prefix, resp.Proto, resp.Status)
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s%s: %s\n", prefix, k, v)
		}
	}
	b.WriteString(strings.TrimSpace(prefix) + "\n")
	io.WriteString(w, b.String())
}

// printRequest prints req's head as curl -v does: "> GET /path", the Host
// and the headers get sets.
func printRequest(w io.Writer, req *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s\n", req.Method, req.URL.RequestURI())
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	fmt.Fprintf(&b, "> Host: %s\n", host)
	for _, k := range slices.Sorted(maps.Keys(req.Header)) {
		for _, v := range req.Header[k] {
			fmt.Fprintf(&b, "> %s: %s\n", k, v)
		}
	}
	b.WriteString(">\n")
	io.WriteString(w, b.String())
}
