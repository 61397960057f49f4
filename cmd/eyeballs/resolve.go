package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
)

const resolveSynopsis = `Usage: eyeballs resolve [flags] NAME

Queries the A, AAAA and HTTPS records of NAME (a host name, or a URL whose
host is used) with the dialer's own resolver, so the answers are those a
dial sees: CNAMEs and HTTPS aliases followed, /etc/hosts consulted, and
"http/1.1" added to an HTTPS record's alpn unless it has no-default-alpn.
Records go to stdout, one a line; errors and empty answers to stderr.
Exits 1 when no type gave a record.
`

// resolveResult is the -json output of resolve.
type resolveResult struct {
	Name  string       `json:"name"`
	A     answerResult `json:"A"`
	AAAA  answerResult `json:"AAAA"`
	HTTPS answerResult `json:"HTTPS"`
}

// answerResult is the answer to one query: records, or an error. Neither
// means the name has no records of the type (NODATA).
type answerResult struct {
	Addrs    []netip.Addr          `json:"addrs,omitempty"`
	Services []dialer.ServiceEntry `json:"services,omitempty"`
	Err      string                `json:"error,omitempty"`
}

// runResolve is "eyeballs resolve NAME".
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("resolve", resolveSynopsis, stderr)
	var nameservers listFlag
	fs.Var(&nameservers, "nameserver", "DNS server `HOST:PORT` to query instead of /etc/resolv.conf (repeatable)")
	asJSON := fs.Bool("json", false, "print the answers as one JSON object")
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
	for _, ns := range nameservers {
		if _, err := netip.ParseAddrPort(ns); err != nil {
			if _, err := netip.ParseAddr(ns); err != nil {
				return usagef("-nameserver %q is not IP:PORT", ns)
			}
		}
	}
	r, err := resolver.New(resolver.Config{Servers: nameservers})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	p := newProgress(stderr, "resolving "+name)
	defer p.stop()
	types := []hev3.RecordType{hev3.A, hev3.AAAA, hev3.HTTPS}
	answers := make([]hev3.Answer, len(types))
	var wg sync.WaitGroup
	p.start()
	for i, t := range types {
		wg.Go(func() { answers[i] = r.Lookup(ctx, name, t) })
	}
	wg.Wait()
	p.stop()

	res := resolveResult{Name: name}
	found := false
	for i, t := range types {
		a := answerOf(answers[i])
		found = found || len(a.Addrs) > 0 || len(a.Services) > 0
		switch t {
		case hev3.A:
			res.A = a
		case hev3.AAAA:
			res.AAAA = a
		case hev3.HTTPS:
			res.HTTPS = a
		}
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printAnswers(stdout, stderr, types, answers)
	}
	if !found {
		timedOut := true
		for _, a := range answers {
			timedOut = timedOut && errors.Is(a.Err, resolver.ErrTimeout)
		}
		if timedOut {
			return fmt.Errorf("no DNS answer for %s in %v (check -nameserver, or raise -timeout)", name, *timeout)
		}
		return fmt.Errorf("no A, AAAA or HTTPS record for %s (check the name, or query another server with -nameserver HOST:PORT)", name)
	}
	return nil
}

// answerOf converts a resolver answer to its JSON form.
func answerOf(ans hev3.Answer) answerResult {
	a := answerResult{Addrs: ans.Addrs}
	for _, s := range ans.Services {
		e := dialer.ServiceEntry{Priority: s.Priority, Target: s.Target, ALPN: s.ALPN, Port: s.Port, ECH: len(s.ECH) > 0}
		e.Hints = append(append(e.Hints, s.IPv6Hints...), s.IPv4Hints...)
		a.Services = append(a.Services, e)
	}
	if ans.Err != nil {
		a.Err = ans.Err.Error()
	}
	return a
}

// printAnswers prints one line per record of answers (to queries of
// types) on stdout, such as
//
//	A      127.0.0.1
//	HTTPS  1 . alpn=h3,h2,http/1.1 port=8443 ipv4hint=127.0.0.1 ech=yes
//
// and a line per failed or empty answer on stderr.
func printAnswers(stdout, stderr io.Writer, types []hev3.RecordType, answers []hev3.Answer) {
	for i, t := range types {
		ans := answers[i]
		switch {
		case ans.Err != nil:
			fmt.Fprintf(stderr, "%-6s error: %v\n", t, ans.Err)
		case len(ans.Addrs) == 0 && len(ans.Services) == 0:
			fmt.Fprintf(stderr, "%-6s no records\n", t)
		}
		for _, a := range ans.Addrs {
			fmt.Fprintf(stdout, "%-6s %s\n", t, a)
		}
		for _, s := range ans.Services {
			fmt.Fprintf(stdout, "%-6s %s\n", t, formatService(s))
		}
	}
}

// formatService writes an HTTPS record in presentation format.
func formatService(s hev3.ServiceInfo) string {
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
	for _, h := range []struct {
		key   string
		addrs []netip.Addr
	}{{"ipv4hint", s.IPv4Hints}, {"ipv6hint", s.IPv6Hints}} {
		if len(h.addrs) > 0 {
			strs := make([]string, len(h.addrs))
			for i, a := range h.addrs {
				strs[i] = a.String()
			}
			parts = append(parts, h.key+"="+strings.Join(strs, ","))
		}
	}
	if len(s.ECH) > 0 {
		parts = append(parts, "ech=yes")
	}
	return strings.Join(parts, " ")
}
