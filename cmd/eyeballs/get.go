package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/eyeballs/dialer"
)

const getSynopsis = `Usage: eyeballs get [flags] URL

Sends one HTTP request through a Happy Eyeballs transport (like a small curl)
and writes the response body to stdout. Redirects are followed. A status
that is not 2xx still exits 0 unless -f is given.
`

// runGet is "eyeballs get URL": it sends a request with dialer.Transport and
// copies the response body to stdout.
func runGet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", getSynopsis, stderr)
	var c common
	c.register(fs)
	method := fs.String("X", "", "request `METHOD` (default GET, or POST with -d)")
	data := fs.String("d", "", "request body `DATA`; \"@FILE\" reads a file, \"@-\" stdin")
	include := fs.Bool("i", false, "print the status line and the response headers on stderr")
	fail := fs.Bool("f", false, "exit 1, without the body, when the status is not 2xx")
	noProxy := fs.Bool("noproxy", false, "connect directly, ignoring HTTPS_PROXY, HTTP_PROXY and NO_PROXY")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one http:// or https:// URL")
	}
	u, err := url.Parse(args[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("%q is not an http:// or https:// URL", args[0])
	}
	hdr, err := c.header()
	if err != nil {
		return err
	}
	var body io.Reader
	hasData := false
	fs.Visit(func(f *flag.Flag) { hasData = hasData || f.Name == "d" })
	if hasData {
		b, err := readData(*data, stdin)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	if *method == "" {
		*method = http.MethodGet
		if hasData {
			*method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(ctx, *method, u.String(), body)
	if err != nil {
		return usagef("%v", err)
	}
	req.Header.Set("User-Agent", "eyeballs")
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

	p := newProgress(stderr, "requesting "+u.Host)
	defer p.stop()
	opts, err := c.options(p)
	if err != nil {
		return err
	}
	if *noProxy {
		opts = append(opts, dialer.WithProxy(func(*http.Request) (*url.URL, error) { return nil, nil }))
	}
	tr := dialer.NewTransport(opts...)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	p.start()
	resp, err := client.Do(req)
	p.stop()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if c.trace {
		fmt.Fprintf(stderr, "HTTP/%d %s\n", resp.ProtoMajor, resp.Status)
	}
	if *include {
		printHead(stderr, resp)
	}
	if *fail && resp.StatusCode/100 != 2 {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	return nil
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
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}
