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

Queries the A, AAAA and HTTPS records of NAME (a host name, host:port, or a
URL whose host and port are used) with the dialer's own resolver, so the
answers are those a dial sees: CNAMEs and HTTPS AliasMode records followed
(RFC 9460 §3), /etc/hosts consulted, and for a port other than 443 the
HTTPS records of _PORT._https.NAME (RFC 9460 §9.1).

stdout holds the records as dig prints them (owner, TTL, class, type,
data; CNAMEs and aliases under their own names), then, on lines starting
with ";;", what a dial makes of them: each HTTPS record as the dial uses it
("http/1.1" added to its alpn unless it has no-default-alpn), and the
endpoints it would try, first to last. Errors and empty answers go to
stderr. With -json, stdout holds one line of JSON (a dialer.Resolution)
instead. Exits 3 when no type gave a record, 6 when no answer came in time.
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
		name = u.Host
		switch p := u.Port(); {
		case p == "", p == "443" && (u.Scheme == "https" || u.Scheme == "wss"):
			name = u.Hostname()
		case p == "80" && (u.Scheme == "http" || u.Scheme == "ws"):
			// An http origin on port 80 asks for the HTTPS records of
			// its https form on port 443 (RFC 9460 §9.5).
			name = u.Hostname()
		}
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

// printAnswers prints the records of res on stdout as dig does,
//
//	example.test.	300	IN	A	127.0.0.1
//	example.test.	30	IN	HTTPS	0 cdn.example.test.
//
// then what a dial makes of them, as dig comments:
//
//	;; HTTPS 1 cdn.example.test alpn=http/1.1
//	;; endpoint 127.0.0.1:443 h2,h1
//
// and a line per failed or empty answer on stderr.
func printAnswers(stdout, stderr io.Writer, res *dialer.Resolution) {
	queries := []dialer.DNSQuery{res.A, res.AAAA, res.HTTPS}
	for _, q := range queries {
		switch {
		case q.Err != "":
			fmt.Fprintf(stderr, "%-6s error: %s\n", q.Type, q.Err)
		case len(q.Addrs) == 0 && len(q.Services) == 0:
			fmt.Fprintf(stderr, "%-6s no records\n", q.Type)
		}
		for _, r := range q.Records {
			fmt.Fprintln(stdout, r)
		}
		if q.RecordsOmitted > 0 {
			fmt.Fprintf(stdout, ";; %s: %d more records left out\n", q.Name, q.RecordsOmitted)
		}
		if q.Records == nil {
			// From the hosts file or an IP literal: no DNS records.
			for _, a := range q.Addrs {
				fmt.Fprintf(stdout, ";; %s %s (hosts file)\n", q.Type, a)
			}
		}
	}
	for _, s := range res.HTTPS.Services {
		fmt.Fprintf(stdout, ";; HTTPS %s\n", formatService(s))
	}
	for _, q := range queries {
		if q.Omitted > 0 {
			fmt.Fprintf(stdout, ";; %s: %d more left out (past what one dial uses)\n", q.Type, q.Omitted)
		}
	}
	for _, e := range res.Endpoints {
		line := fmt.Sprintf(";; endpoint %s %s", e.Addr, e.Proto)
		if e.Hint {
			line += " hint"
		}
		if e.ECH {
			line += " ech"
		}
		fmt.Fprintln(stdout, line)
	}
}

// formatService writes an HTTPS record as the dial uses it.
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
