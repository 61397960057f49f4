package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/eyeballs/dialer"
)

const resolveSynopsis = `Usage: eyeballs resolve [flags] NAME

Queries the A, AAAA and HTTPS records of NAME (a host name, or a URL whose
host is used) with the dialer's own resolver, so the answers are those a
dial sees: CNAMEs and HTTPS aliases followed, /etc/hosts consulted, and
"http/1.1" added to an HTTPS record's alpn unless it has no-default-alpn.
Records go to stdout, one a line; errors and empty answers to stderr.
With -json, stdout holds one line of JSON (a dialer.Resolution) instead.
Exits 3 when no type gave a record, 6 when no answer came in time.
`

// runResolve is "eyeballs resolve NAME".
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("resolve", resolveSynopsis, stderr)
	var nameservers listFlag
	fs.Var(&nameservers, "nameserver", "DNS server `IP:PORT` to query instead of /etc/resolv.conf (repeatable)")
	asJSON := fs.Bool("json", false, "print the answers as one line of JSON on stdout")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the lookups")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one name")
	}
	name := args[0]
	if u, err := url.Parse(name); err == nil && u.Host != "" {
		name = u.Hostname()
	}
	if err := checkNameservers(nameservers); err != nil {
		return err
	}
	if *timeout < 0 {
		return usagef("-timeout %v is negative", *timeout)
	}
	var opts []dialer.Option
	if len(nameservers) > 0 {
		opts = append(opts, dialer.WithNameservers(nameservers...))
	}
	p := newProgress(stderr, "resolving "+name)
	p.start()
	res, err := dialer.New(append(opts, dialer.WithTimeout(*timeout))...).Resolve(ctx, name)
	p.stop()
	if res != nil {
		if *asJSON {
			if err := newOutput(true, stdout, stderr).JSON(res); err != nil {
				return err
			}
		} else {
			printAnswers(stdout, stderr, res)
		}
	}
	var derr *dialer.DialError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &derr) && derr.Timeout():
		return &described{fmt.Sprintf("no DNS answer for %s in %v", name, *timeout), "check -nameserver, or raise -timeout", err}
	case errors.Is(err, dialer.ErrNoAddress):
		return &described{"no A, AAAA or HTTPS record for " + name, "check the name, or query another server with -nameserver IP:PORT", err}
	}
	return err
}

// printAnswers prints one line per record of res on stdout, such as
//
//	A      127.0.0.1
//	HTTPS  1 . alpn=h3,h2,http/1.1 port=8443 ipv4hint=127.0.0.1 ech=yes
//
// and a line per failed or empty answer on stderr.
func printAnswers(stdout, stderr io.Writer, res *dialer.Resolution) {
	for _, q := range []dialer.DNSQuery{res.A, res.AAAA, res.HTTPS} {
		switch {
		case q.Err != "":
			fmt.Fprintf(stderr, "%-6s error: %s\n", q.Type, q.Err)
		case len(q.Addrs) == 0 && len(q.Services) == 0:
			fmt.Fprintf(stderr, "%-6s no records\n", q.Type)
		}
		for _, a := range q.Addrs {
			fmt.Fprintf(stdout, "%-6s %s\n", q.Type, a)
		}
		for _, s := range q.Services {
			fmt.Fprintf(stdout, "%-6s %s\n", q.Type, formatService(s))
		}
		if q.Omitted > 0 {
			fmt.Fprintf(stderr, "%-6s %d more left out (past what one dial uses)\n", q.Type, q.Omitted)
		}
	}
}

// formatService writes an HTTPS record in presentation format.
func formatService(s dialer.ServiceEntry) string {
	target := s.Target
	if target == "" {
		target = "."
	}
	parts := []string{fmt.Sprint(s.Priority), target}
	if len(s.ALPN) > 0 {
		parts = append(parts, "alpn="+strings.Join(s.ALPN, ","))
	}
	if s.Port != 0 {
		parts = append(parts, fmt.Sprintf("port=%d", s.Port))
	}
	var v4, v6 []string
	for _, a := range s.Hints {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	if len(v4) > 0 {
		parts = append(parts, "ipv4hint="+strings.Join(v4, ","))
	}
	if len(v6) > 0 {
		parts = append(parts, "ipv6hint="+strings.Join(v6, ","))
	}
	if s.ECH {
		parts = append(parts, "ech=yes")
	}
	return strings.Join(parts, " ")
}
