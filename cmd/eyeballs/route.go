package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// --resolve and --connect-to, as in curl, built on the dialer's public
// options only:
//
//   - --resolve HOST:PORT:ADDR[,ADDR...] makes a dial to HOST on PORT use
//     these addresses and send no DNS query for HOST. It is a hosts file
//     (dialer.WithHostsFile) written for the command: the system's
//     /etc/hosts without HOST, plus HOST's addresses. A name from a hosts
//     file has no HTTPS record, so QUIC is tried only with -proto h3. The
//     entry applies only when the URL's port (or the port of --connect-to's
//     target) is PORT; several addresses race as DNS answers would.
//   - --connect-to HOST1:PORT1:HOST2:PORT2 sends a request for HOST1:PORT1
//     to HOST2:PORT2 instead, still asking for HOST1 (Host header or
//     :authority) and verifying HOST1's certificate (TLS ServerName). An
//     empty HOST1 or PORT1 matches any; an empty HOST2 or PORT2 keeps the
//     URL's. The first matching entry applies, then --resolve to its target.

// A resolveEntry is one --resolve HOST:PORT:ADDR[,ADDR...].
type resolveEntry struct {
	host  string // lower case, without a final dot
	port  string
	addrs []netip.Addr
}

// A connectEntry is one --connect-to HOST1:PORT1:HOST2:PORT2.
type connectEntry struct {
	host1, port1 string // "": any
	host2, port2 string // "": the URL's
}

// resolveFlag collects --resolve entries.
type resolveFlag []resolveEntry

func (f *resolveFlag) String() string { return "" }

func (f *resolveFlag) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 {
		return fmt.Errorf("%q is not HOST:PORT:ADDR", v)
	}
	host, port, list := parts[0], parts[1], parts[2]
	switch {
	case strings.HasPrefix(host, "+") || strings.HasPrefix(host, "-") || host == "*":
		return fmt.Errorf("%q: curl's +, - and * forms are not supported", v)
	case hostKey(host) == "":
		return fmt.Errorf("%q has no host", v)
	}
	if err := checkPort(port); err != nil {
		return fmt.Errorf("%q: %v", v, err)
	}
	e := resolveEntry{host: hostKey(host), port: port}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q: %q is not an IP address", v, s)
		}
		e.addrs = append(e.addrs, a)
	}
	*f = append(*f, e)
	return nil
}

// connectFlag collects --connect-to entries.
type connectFlag []connectEntry

func (f *connectFlag) String() string { return "" }

func (f *connectFlag) Set(v string) error {
	parts := splitColons(v)
	if len(parts) != 4 {
		return fmt.Errorf("%q is not HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)", v)
	}
	e := connectEntry{hostKey(unbracket(parts[0])), parts[1], unbracket(parts[2]), parts[3]}
	for _, p := range []string{e.port1, e.port2} {
		if p == "" {
			continue
		}
		if err := checkPort(p); err != nil {
			return fmt.Errorf("%q: %v", v, err)
		}
	}
	if e.host2 == "" && e.port2 == "" {
		return fmt.Errorf("%q connects nowhere else", v)
	}
	*f = append(*f, e)
	return nil
}

// checkPort checks a port number of --resolve or --connect-to.
func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// splitColons splits s at the colons outside square brackets.
func splitColons(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func unbracket(s string) string {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s[1 : len(s)-1]
	}
	return s
}

// hostKey is how names compare: lower case, without a final dot.
func hostKey(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// A target is where a request for one origin goes after --connect-to and
// --resolve.
type target struct {
	host, port string // where to connect
	// serverName is the TLS server name when --connect-to changed the
	// host, so that the certificate is checked for the URL's host; "".
	serverName string
	// authority is the URL's host[:port] when --connect-to changed the
	// host or port: the request still asks for it; "" otherwise.
	authority string
	// hostsFile is the hosts file holding the --resolve entries of port,
	// when one covers host; "" otherwise.
	hostsFile string
}

// routes applies --connect-to and --resolve. It writes its hosts files
// in a temporary directory that close removes.
type routes struct {
	resolve   []resolveEntry
	connectTo []connectEntry

	mu    sync.Mutex
	dir   string
	files map[string]string // by port
}

// route returns where a request for u (with its scheme's default port)
// goes.
func (r *routes) route(u *url.URL) (target, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" || u.Scheme == "ws" {
			port = "80"
		}
	}
	t := target{host: host, port: port}
	for _, e := range r.connectTo {
		if (e.host1 != "" && e.host1 != hostKey(host)) || (e.port1 != "" && e.port1 != port) {
			continue
		}
		if e.host2 != "" && hostKey(e.host2) != hostKey(host) {
			t.host, t.serverName = e.host2, host
		}
		if e.port2 != "" {
			t.port = e.port2
		}
		if t.host != host || t.port != port {
			t.authority = u.Host
		}
		break
	}
	for _, e := range r.resolve {
		if e.host == hostKey(t.host) && e.port == t.port {
			f, err := r.hostsFile(t.port)
			if err != nil {
				return t, err
			}
			t.hostsFile = f
			break
		}
	}
	return t, nil
}

// hostAddr returns t's host and port for a URL.
func (t target) hostAddr() string { return net.JoinHostPort(t.host, t.port) }

// systemHosts is the hosts file the dialer reads by default.
const systemHosts = "/etc/hosts"

// hostsFile returns the hosts file for the --resolve entries of port,
// writing it on first use.
func (r *routes) hostsFile(port string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[port]; ok {
		return f, nil
	}
	override := map[string]bool{}
	var b strings.Builder
	b.WriteString("# written by eyeballs for --resolve\n")
	for _, e := range r.resolve {
		if e.port != port {
			continue
		}
		override[e.host] = true
		for _, a := range e.addrs {
			fmt.Fprintf(&b, "%s %s\n", a, e.host)
		}
	}
	// The system's names stay, except those --resolve replaces.
	if f, err := os.Open(systemHosts); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			kept := fields[:1]
			for _, name := range fields[1:] {
				if !override[hostKey(name)] {
					kept = append(kept, name)
				}
			}
			if len(kept) > 1 {
				b.WriteString(strings.Join(kept, " ") + "\n")
			}
		}
		f.Close()
	}
	if r.dir == "" {
		dir, err := os.MkdirTemp("", "eyeballs-resolve-")
		if err != nil {
			return "", fmt.Errorf("--resolve: %w", err)
		}
		r.dir = dir
	}
	name := filepath.Join(r.dir, "hosts-"+port)
	if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("--resolve: %w", err)
	}
	if r.files == nil {
		r.files = map[string]string{}
	}
	r.files[port] = name
	return name, nil
}

// close removes the hosts files.
func (r *routes) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir != "" {
		os.RemoveAll(r.dir)
		r.dir, r.files = "", nil
	}
}
