package interop

import (
	"bufio"
	"crypto/md5"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

// The proxy tests (proxy_test.go, bench_proxy_test.go) put Squid (HTTP
// CONNECT) or Dante (SOCKS5) between the dialer and two dialertest origins.
// Each proxy resolves the origins' names from a hosts file the test writes;
// the dialer's own DNS server (the world's) knows only the proxy's name, so
// a dial that bypassed the proxy could not even find the origin. Both
// proxies leave for the origins from an address of their own (Squid from
// 127.0.0.2, Dante from 127.0.0.3; a direct dial comes from 127.0.0.1), so
// the origins can tell a proxied connection from a direct one.

var (
	squidPeer = peer{name: "Squid", bin: "squid", args: []string{"-v"}, install: "apt-get install squid",
		version: []*regexp.Regexp{regexp.MustCompile(`Version (\S+)`)}}
	dantePeer = peer{name: "Dante", bin: "danted", args: []string{"-v"}, install: "apt-get install dante-server",
		version: []*regexp.Regexp{regexp.MustCompile(`Dante v([0-9.]*[0-9])`)}}
)

// The names of the proxy tests, under the world's domain.
const (
	// originName is an origin serving HTTP/1.1, HTTP/2 with RFC 8441,
	// HTTP/3, and WebTransport over both.
	originName = "origin." + domain
	// oldName is an origin serving HTTP/1.1 and HTTP/2 without extended
	// CONNECT: a WebSocket reaches it over HTTP/1.1 only.
	oldName = "old." + domain
	// directName is originName's server under a name that NO_PROXY
	// exempts; only the dialer's DNS knows it, the proxies do not.
	directName = "direct." + domain
	// deniedName is refused by both proxies' rules (Squid 403, Dante
	// SOCKS5 reply 0x02).
	deniedName = "denied." + domain
	// proxyName is the proxies' name in the dialer's DNS.
	proxyName = "proxy." + domain
)

// Where each proxy's connections to the origins come from.
var (
	squidSource = netip.MustParseAddr("127.0.0.2")
	danteSource = netip.MustParseAddr("127.0.0.3")
	directIP    = netip.MustParseAddr("127.0.0.1")
)

// The credentials of the proxies that ask for them.
const (
	proxyUser = "alice"
	proxyPass = "s3cret-Pa55"
)

// proxyWorld is a world with the two origins of the proxy tests and a
// record of who connected to them.
type proxyWorld struct {
	*world
	ca *dialertest.CA
	// origin serves originName and directName; old serves oldName.
	origin, old *dialertest.Server
	seen        *seenLog
	// dnsMark is how many queries the DNS server had answered when the
	// current check began (see markDNS).
	dnsMark int
}

// markDNS makes checkNoLookup look only at queries from now on.
func (pw *proxyWorld) markDNS() { pw.dnsMark = len(pw.dns.Queries()) }

// newProxyWorld starts the origins. The dialer's DNS knows proxyName
// (127.0.0.1 and ::1) and directName (127.0.0.1), not the other names.
func newProxyWorld(t testing.TB) *proxyWorld {
	t.Helper()
	w := newWorld(t)
	ca, err := dialertest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	pw := &proxyWorld{world: w, ca: ca, seen: &seenLog{}}
	pw.origin = dialertest.NewServer(t, dialertest.Options{
		WebTransport: true,
		Handler:      pw.seen.handler("origin"),
		Names:        []string{originName, directName, deniedName},
		CA:           ca,
	})
	pw.old = dialertest.NewServer(t, dialertest.Options{
		H1: true, H2: true,
		Handler: pw.seen.handler("old"),
		Names:   []string{oldName},
		CA:      ca,
	}, dialertest.WithoutExtendedConnect(dialertest.HTTP2))
	w.dns.A(proxyName, "127.0.0.1")
	w.dns.AAAA(proxyName, "::1")
	w.dns.A(directName, "127.0.0.1")
	return pw
}

// resolveOrigins adds the origins' names to the dialer's DNS, with an
// HTTPS record advertising h3 for originName: for SOCKS5 with local
// names, where the dialer resolves the origin itself. A dialer that
// offered QUIC there would reach the origin directly.
func (pw *proxyWorld) resolveOrigins() {
	pw.dns.A(originName, "127.0.0.1")
	pw.dns.A(oldName, "127.0.0.1")
	pw.dns.HTTPS(originName, "1 . alpn=h3,h2")
}

// hosts is the proxies' hosts file: the origins on 127.0.0.1, the denied
// name on an address nothing listens on (Dante matches rules by address,
// so it must differ from the origins').
func (pw *proxyWorld) hosts() []byte {
	return []byte(fmt.Sprintf("127.0.0.1 %s\n127.0.0.1 %s\n127.0.0.9 %s\n", originName, oldName, deniedName))
}

// options returns the options of a dialer in pw through proxy (none when
// nil), followed by opts.
func (pw *proxyWorld) options(proxy *url.URL, opts ...dialer.Option) []dialer.Option {
	base := []dialer.Option{
		dialer.WithNameservers(pw.dns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(pw.ca.ClientConfig()),
	}
	if proxy != nil {
		base = append(base, dialer.WithProxy(http.ProxyURL(proxy)))
	}
	return append(base, opts...)
}

// dialer returns a dialer through proxy whose idle connections close when
// the test ends.
func (pw *proxyWorld) dialer(proxy *url.URL, opts ...dialer.Option) *dialer.Dialer {
	d := dialer.New(pw.options(proxy, opts...)...)
	pw.t.Cleanup(d.CloseIdleConnections)
	return d
}

// wsURL returns the echo's wss URL on s under name.
func wsURL(s *dialertest.Server, name string) string {
	return "wss://" + net.JoinHostPort(name, itoa(s.Port())) + "/echo"
}

// httpsURL returns an https URL of path on s under name.
func httpsURL(s *dialertest.Server, name, path string) string {
	return "https://" + net.JoinHostPort(name, itoa(s.Port())) + path
}

// seenLog records the requests the origins' handlers saw: WebSocket
// upgrades and extended CONNECTs at /echo, GETs at /hello. WebTransport
// sessions do not reach the handler; the proxy's log shows those.
type seenLog struct {
	mu   sync.Mutex
	reqs []seenReq
}

type seenReq struct {
	server string
	host   string // the request's host, without the port
	from   netip.Addr
	major  int
	path   string
}

func (s *seenLog) handler(server string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/echo", dialertest.EchoHandler())
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+server)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		s.mu.Lock()
		s.reqs = append(s.reqs, seenReq{server: server, host: hostOnly(r.Host), from: ap.Addr().Unmap(), major: r.ProtoMajor, path: r.URL.Path})
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

// mark returns how many requests have been seen, for since.
func (s *seenLog) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// since returns the requests seen after mark.
func (s *seenLog) since(mark int) []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.reqs[mark:]...)
}

// checkFrom checks that every request seen after mark came from from, and
// that there was at least one.
func (s *seenLog) checkFrom(t testing.TB, mark int, from netip.Addr) {
	t.Helper()
	reqs := s.since(mark)
	if len(reqs) == 0 {
		t.Errorf("the origin saw no request; want one from %v", from)
	}
	for _, r := range reqs {
		if r.from != from {
			t.Errorf("the origin %s saw %s over HTTP/%d from %v, want from %v", r.server, r.path, r.major, r.from, from)
		}
	}
}

// runningProxy is a proxy a test started.
type runningProxy struct {
	*proc
	kind string // "squid", "dante" or "hostile"
	port int
	// log is the file the proxy logs connections to (Squid's access.log,
	// Dante's logoutput).
	log string
	// source is the address its connections to origins come from.
	source netip.Addr
}

// url returns the proxy's URL with scheme, host (a name or an IP) and, when
// user is set, credentials.
func (p *runningProxy) url(scheme, host, user, pass string) *url.URL {
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, itoa(p.port))}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

// logText returns what the proxy logged so far.
func (p *runningProxy) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// squidOptions say how startSquid configures Squid.
type squidOptions struct {
	// auth requires Basic credentials (proxyUser, proxyPass) from
	// basic_ncsa_auth with an htpasswd file in Apache's MD5 format.
	auth bool
	// v4Only listens on 127.0.0.1 only, not on [::1] too.
	v4Only bool
}

// startSquid starts Squid in the foreground (-N) with conf/squid/squid.conf
// on 127.0.0.1 (and [::1]) and a free port. Run as root, Squid becomes the
// user proxy (or nobody) as it insists, so its directory is writable by
// all.
func startSquid(t testing.TB, pw *proxyWorld, r *row, o squidOptions) *runningProxy {
	t.Helper()
	auth, authACL := "", ""
	if o.auth {
		helper := ""
		for _, p := range []string{"/usr/lib/squid/basic_ncsa_auth", "/usr/lib64/squid/basic_ncsa_auth", "/usr/libexec/squid/basic_ncsa_auth"} {
			if _, err := os.Stat(p); err == nil {
				helper = p
				break
			}
		}
		if helper == "" {
			r.skip = "Squid's basic_ncsa_auth helper is not installed"
			t.Skip(r.skip)
		}
		auth = "auth_param basic program " + helper + " @DIR@/htpasswd\n" +
			"auth_param basic realm interop\n" +
			"acl authed proxy_auth REQUIRED"
		authACL = "authed"
	}
	userLine := ""
	if os.Geteuid() == 0 {
		name := "nobody"
		if _, err := user.Lookup("proxy"); err == nil {
			name = "proxy"
		}
		userLine = "cache_effective_user " + name
	}
	var dir string
	p, dir, ports := launch(t, pw.world, "squid", 1, false, func(d string, ports []int) command {
		dir = d
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		listen6 := "http_port [::1]:" + itoa(ports[0])
		if o.v4Only {
			listen6 = ""
		}
		conf := filepath.Join(dir, "squid.conf")
		// AUTH holds @DIR@ itself: render it first.
		pw.render("squid/squid.conf", conf, map[string]string{
			"DIR": dir, "PORT": itoa(ports[0]), "LISTEN6": listen6, "USER": userLine,
			"AUTH": strings.ReplaceAll(auth, "@DIR@", dir), "AUTHACL": authACL,
		})
		pw.write(filepath.Join(dir, "hosts"), pw.hosts())
		if o.auth {
			pw.write(filepath.Join(dir, "htpasswd"), []byte(proxyUser+":"+md5Crypt("$apr1$", proxyPass, "intrpSlt")+"\n"))
		}
		return command{bin: r.path, args: []string{"-N", "-f", conf},
			logs: []string{filepath.Join(dir, "cache.log"), filepath.Join(dir, "access.log")}}
	})
	return &runningProxy{proc: p, kind: "squid", port: ports[0], log: filepath.Join(dir, "access.log"), source: squidSource}
}

// startTLSFront starts HAProxy (conf/squid/haproxy-tls.cfg) as a TLS
// front for px on 127.0.0.1 and [::1], with a certificate for proxyName
// from pw's CA, and returns its port: px becomes an https:// proxy, TLS to
// the proxy then CONNECT inside it (RFC 9110 §9.3.6).
func startTLSFront(t testing.TB, pw *proxyWorld, haproxyPath string, px *runningProxy) int {
	t.Helper()
	_, _, ports := launch(t, pw.world, "haproxy-tls", 1, false, func(dir string, ports []int) command {
		conf := filepath.Join(dir, "haproxy.cfg")
		pw.render("squid/haproxy-tls.cfg", conf, map[string]string{"DIR": dir, "PORT": itoa(ports[0]), "SQUID": itoa(px.port)})
		cert, err := pw.ca.Certificate(proxyName)
		if err != nil {
			t.Fatal(err)
		}
		key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		pemb := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		pemb = append(pemb, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...)
		pw.write(filepath.Join(dir, "proxy.pem"), pemb)
		return command{bin: haproxyPath, args: []string{"-db", "-f", conf}}
	})
	return ports[0]
}

// squidLine returns a pattern for Squid's access.log line (logformat
// interop: client, port, method, URL, status, origin address, user) of a
// CONNECT to host:port answered status.
func squidLine(host string, port, status int) *regexp.Regexp {
	return regexp.MustCompile(`CONNECT ` + regexp.QuoteMeta(net.JoinHostPort(host, itoa(port))) + ` ` + itoa(status) + ` `)
}

// danteOptions say how startDante configures Dante.
type danteOptions struct {
	// auth requires username/password authentication (RFC 1929) as
	// proxyUser, proxyPass.
	auth bool
	// v4Only listens on 127.0.0.1 only, not on [::1] too.
	v4Only bool
}

// startDante starts Dante (danted) with conf/dante/danted.conf on
// 127.0.0.1 and [::1] and a free port. Dante resolves names and checks
// passwords through the C library, from /etc/hosts, /etc/passwd and
// /etc/shadow; it runs in a mount namespace of its own (unshare -m) where
// the test's files are bind-mounted over those and over
// /etc/nsswitch.conf (files only, no DNS), so neither the machine's
// resolver nor its users are involved. Without the rights to make that
// namespace (not root and no unprivileged user namespaces) the test skips.
func startDante(t testing.TB, pw *proxyWorld, r *row, o danteOptions) *runningProxy {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		r.skip = "unshare (util-linux) is not installed: Dante needs a mount namespace for its private /etc/hosts"
		t.Skip(r.skip)
	}
	ns := []string{"-m", "--propagation", "private"}
	if os.Geteuid() != 0 {
		ns = append([]string{"-r"}, ns...)
	}
	if out, err := exec.Command(unshare, append(ns, "mount", "--bind", "/dev/null", "/dev/null")...).CombinedOutput(); err != nil {
		r.skip = fmt.Sprintf("cannot make a mount namespace for Dante's private /etc/hosts (%v: %s)", err, strings.TrimSpace(string(out)))
		t.Skip(r.skip)
	}
	userLines := ""
	if os.Geteuid() == 0 {
		userLines = "user.privileged: root\nuser.unprivileged: nobody"
	}
	method := "none"
	if o.auth {
		method = "username"
	}
	var dir string
	p, dir, ports := launch(t, pw.world, "dante", 1, false, func(d string, ports []int) command {
		dir = d
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		listen6 := "internal: ::1 port = " + itoa(ports[0])
		if o.v4Only {
			listen6 = ""
		}
		conf := filepath.Join(dir, "danted.conf")
		pw.render("dante/danted.conf", conf, map[string]string{
			"DIR": dir, "PORT": itoa(ports[0]), "LISTEN6": listen6, "USER": userLines, "METHOD": method,
		})
		hosts, nss := filepath.Join(dir, "hosts"), filepath.Join(dir, "nsswitch.conf")
		pw.write(hosts, pw.hosts())
		// Files only: a name missing from the hosts file fails in Dante
		// instead of reaching the machine's resolver.
		pw.write(nss, []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files\n"+
			"networks: files\nprotocols: files\nservices: files\n"))
		mounts := []string{"mount --bind " + hosts + " /etc/hosts", "mount --bind " + nss + " /etc/nsswitch.conf"}
		if o.auth {
			passwd, shadow := filepath.Join(dir, "passwd"), filepath.Join(dir, "shadow")
			pw.write(passwd, []byte("root:x:0:0:root:/root:/bin/sh\n"+
				"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"+
				proxyUser+":x:1000:1000::/nonexistent:/usr/sbin/nologin\n"))
			pw.write(shadow, []byte("root:*:1::::::\nnobody:*:1::::::\n"+
				proxyUser+":"+md5Crypt("$1$", proxyPass, "intrpSlt")+":1::::::\n"))
			mounts = append(mounts, "mount --bind "+passwd+" /etc/passwd", "mount --bind "+shadow+" /etc/shadow")
		}
		script := strings.Join(mounts, " && ") + " && exec " + r.path + " -f " + conf
		return command{bin: unshare, args: append(ns, "sh", "-c", script),
			logs: []string{filepath.Join(dir, "danted.log")}}
	})
	return &runningProxy{proc: p, kind: "dante", port: ports[0], log: filepath.Join(dir, "danted.log"), source: danteSource}
}

// danteLine returns a pattern for Dante's log line of a connection it
// passed on to 127.0.0.1:port, from its external address ("pass(N):
// tcp/connect [: client proxy -> 127.0.0.3.P 127.0.0.1.port").
func danteLine(port int) *regexp.Regexp {
	return regexp.MustCompile(`pass\(\d+\): tcp/connect \[: .* -> 127\.0\.0\.3\.\d+ 127\.0\.0\.1\.` + itoa(port) + `\b`)
}

// hostileProxy is an HTTP proxy in Go that answers every CONNECT with 200
// and then closes the connection, the moment the client starts TLS.
type hostileProxy struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []string // the CONNECT targets
}

// startHostileProxy starts a hostileProxy on 127.0.0.1, closed when the
// test ends.
func startHostileProxy(t testing.TB) *hostileProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileProxy{l: l}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				h.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		h.wg.Wait()
	})
	return h
}

func (h *hostileProxy) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	h.mu.Lock()
	h.seen = append(h.seen, req.Method+" "+req.Host)
	h.mu.Unlock()
	// RFC 9110 §9.3.6: any 2xx to a CONNECT means the tunnel is open.
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
}

func (h *hostileProxy) port() int { return h.l.Addr().(*net.TCPAddr).Port }

func (h *hostileProxy) targets() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// md5Crypt returns the MD5-based crypt(3) hash of pw with salt (at most 8
// characters) and magic "$1$" (glibc's, for /etc/shadow) or "$apr1$"
// (Apache's htpasswd, which Squid's basic_ncsa_auth reads): the algorithm
// of FreeBSD's crypt-md5.c, which both formats share.
func md5Crypt(magic, pw, salt string) string {
	if len(salt) > 8 {
		salt = salt[:8]
	}
	alt := md5.Sum([]byte(pw + salt + pw))
	ctx := md5.New()
	io.WriteString(ctx, pw+magic+salt)
	for n := len(pw); n > 0; n -= 16 {
		ctx.Write(alt[:min(n, 16)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write([]byte{pw[0]})
		}
	}
	sum := ctx.Sum(nil)
	for i := range 1000 {
		c := md5.New()
		if i&1 != 0 {
			io.WriteString(c, pw)
		} else {
			c.Write(sum)
		}
		if i%3 != 0 {
			io.WriteString(c, salt)
		}
		if i%7 != 0 {
			io.WriteString(c, pw)
		}
		if i&1 != 0 {
			c.Write(sum)
		} else {
			io.WriteString(c, pw)
		}
		sum = c.Sum(nil)
	}
	const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var out []byte
	enc := func(a, b, c byte, n int) {
		v := uint(a)<<16 | uint(b)<<8 | uint(c)
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	enc(sum[0], sum[6], sum[12], 4)
	enc(sum[1], sum[7], sum[13], 4)
	enc(sum[2], sum[8], sum[14], 4)
	enc(sum[3], sum[9], sum[15], 4)
	enc(sum[4], sum[10], sum[5], 4)
	enc(0, 0, sum[11], 2)
	return magic + salt + "$" + string(out)
}

// hostOnly returns hostport without its port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
