package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// proxyHost is the proxy's name; only the test DNS server knows it.
const proxyHost = "proxy.example.test"

// startSquid starts Squid on 127.0.0.1 (and [::1] unless v6 is false) on
// a free port, resolving the test host through a hosts file, with
// private config, pid and logs under t.TempDir(); it stops when the test
// ends. It skips the test when Squid is not installed.
func startSquid(t testing.TB, v6 bool) int {
	t.Helper()
	return squid(t, func(port int, dir string) string {
		listen := fmt.Sprintf("http_port 127.0.0.1:%d\n", port)
		if v6 {
			listen += fmt.Sprintf("http_port [::1]:%d\n", port)
		}
		return listen
	})
}

// startSquidTLS starts Squid as an https:// proxy on 127.0.0.1 with a
// certificate of ca for "localhost" and 127.0.0.1.
func startSquidTLS(t *testing.T, ca *testkit.CA) int {
	t.Helper()
	return squid(t, func(port int, dir string) string {
		certFile, keyFile := writeCert(t, ca, "localhost", "127.0.0.1")
		for _, f := range []string{certFile, keyFile} {
			os.Chmod(f, 0o644)
			os.Chmod(filepath.Dir(f), 0o755)
			os.Chmod(filepath.Dir(filepath.Dir(f)), 0o711)
		}
		return fmt.Sprintf("https_port 127.0.0.1:%d tls-cert=%s tls-key=%s\n", port, certFile, keyFile)
	})
}

// squid starts Squid with the listening lines listen gives for a free
// port; see startSquid.
func squid(t testing.TB, listen func(port int, dir string) string) int {
	t.Helper()
	bin, err := exec.LookPath("squid")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/squid"); err != nil {
			t.Skip("squid not installed (apt-get install squid): skipping the Squid proxy test")
		}
		bin = "/usr/sbin/squid"
	}
	dir := t.TempDir()
	// Squid started as root runs as its own user: it must reach the
	// directory and write there.
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o777)
	port := freePort(t)
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 "+host+"\n::1 "+host+"\n"), 0o644)
	conf := listen(port, dir) + `pid_filename ` + dir + `/squid.pid
cache_log ` + dir + `/cache.log
access_log ` + dir + `/access.log
hosts_file ` + hosts + `
dns_nameservers 127.0.0.1
cache deny all
cache_mem 8 MB
coredump_dir ` + dir + `
shutdown_lifetime 0 seconds
pinger_enable off
http_access allow localhost
http_access deny all
`
	cf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, port, bin, "-N", "-f", cf)
	return port
}

// startDante starts danted (SOCKS5, no authentication) on 127.0.0.1 and
// [::1] on a free port, under t.TempDir(); it skips the test when Dante is
// not installed.
func startDante(t testing.TB) int {
	t.Helper()
	bin, err := exec.LookPath("danted")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/danted"); err != nil {
			t.Skip("danted not installed (apt-get install dante-server): skipping the Dante proxy test")
		}
		bin = "/usr/sbin/danted"
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`logoutput: %s/danted.log
internal: 127.0.0.1 port = %d
internal: ::1 port = %d
external: 127.0.0.1
external: ::1
socksmethod: none
clientmethod: none
client pass { from: 0/0 to: 0/0 }
socks pass { from: 0/0 to: 0/0 }
`, dir, port, port)
	cf := filepath.Join(dir, "danted.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, port, bin, "-f", cf, "-p", filepath.Join(dir, "danted.pid"), "-N", "1")
	return port
}

// startDaemon runs a proxy in the foreground until the test ends and
// waits until it accepts on 127.0.0.1:port.
func startDaemon(t testing.TB, dir string, port int, bin string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", bin, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept on port %d: %s", bin, port, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port free on both loopback families.
func freePort(t testing.TB) int {
	l4, l6, port, err := testkit.ListenPair()
	if err != nil {
		t.Fatal(err)
	}
	l4.Close()
	l6.Close()
	return port
}

// viaProxy is WithProxy with one proxy URL for every dial.
func viaProxy(raw string) dialer.Option {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return dialer.WithProxy(http.ProxyURL(u))
}

// checkProxied checks that a report shows the proxy hop: the proxy, an
// attempt to one of its addresses with the tunnel open, and QUIC not
// offered.
func checkProxied(t *testing.T, rep *dialer.Report, proxyPort int, status int) {
	t.Helper()
	if rep == nil || rep.Proxy == nil || rep.Winner < 0 {
		t.Fatalf("the report does not show a proxy hop\n%s", rep)
	}
	w := rep.Attempts[rep.Winner]
	if int(w.Addr.Port()) != proxyPort || w.Tunnel == 0 || w.ProxyStatus != status {
		t.Errorf("winner %+v: want the proxy's port %d, a tunnel, status %d\n%s", w, proxyPort, status, rep)
	}
	for _, a := range rep.Attempts {
		if a.Proto == "h3" {
			t.Errorf("a proxied race offered QUIC\n%s", rep)
		}
	}
	if !strings.Contains(rep.String(), "QUIC not offered: proxied") {
		t.Errorf("the waterfall does not say why QUIC was not offered\n%s", rep)
	}
}

// TestProxySquidWebSocket: WebSocket dials through Squid (HTTP CONNECT)
// go over HTTP/2 with extended CONNECT inside the tunnel, over HTTP/1.1
// when told to, and for ws:// too; the proxy's name is raced like any
// host. The origin's HTTPS record says h3, which a proxy cannot carry.
func TestProxySquidWebSocket(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	port := startSquid(t, true)
	e.dns.A(proxyHost, "127.0.0.1")
	e.dns.AAAA(proxyHost, "::1")
	d := e.dialer(viaProxy(fmt.Sprintf("http://%s:%d", proxyHost, port)))
	defer d.CloseIdleConnections()

	rep := dialEcho(t, d, e.url(true), 2)
	checkProxied(t, rep, port, 200)
	if w := rep.Attempts[rep.Winner]; w.Family != "IPv6" {
		t.Errorf("want the proxy's IPv6 address first\n%s", rep)
	}
	var h1 *dialer.Report
	c, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithProtocols("h1"), dialer.WithReport(func(r *dialer.Report) { h1 = r }))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 1 {
		t.Errorf("HTTP/%d with WithProtocols(h1)", resp.ProtoMajor)
	}
	echo(t, c, websocket.MessageText, []byte("h1 via squid"))
	closeConn(t, c)
	checkProxied(t, h1, port, 200)
}

// TestProxyBlackholedFamily: the proxy's IPv6 address drops SYNs; the race
// falls back to its IPv4 address one attempt delay later.
func TestProxyBlackholedFamily(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	port := startSquid(t, false)
	f, err := testkit.Blackhole(fmt.Sprintf("[::1]:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	e.dns.A(proxyHost, "127.0.0.1")
	e.dns.AAAA(proxyHost, "::1")
	d := e.dialer(viaProxy(fmt.Sprintf("http://%s:%d", proxyHost, port)))
	defer d.CloseIdleConnections()
	rep := dialEcho(t, d, e.url(true), 2)
	checkProxied(t, rep, port, 200)
	if len(rep.Attempts) != 2 || rep.Attempts[0].Family != "IPv6" || rep.Attempts[rep.Winner].Family != "IPv4" {
		t.Fatalf("want the proxy's IPv6 address tried, then IPv4 winning\n%s", rep)
	}
	if gap := rep.Attempts[1].Start - rep.Attempts[0].Start; gap < 200*time.Millisecond || gap > time.Second {
		t.Errorf("IPv4 started %v after IPv6, want about the 250ms attempt delay\n%s", gap, rep)
	}
}

// TestProxySquidWebTransport: a WebTransport dial through Squid runs over
// HTTP/2 although the origin's QUIC works.
func TestProxySquidWebTransport(t *testing.T) {
	e := newEnv(t, true, wtH2, wtH2)
	e.quic(wt, wt)
	e.dns.A(host, "127.0.0.1")
	port := startSquid(t, true)
	d := e.dialer(viaProxy(fmt.Sprintf("http://127.0.0.1:%d", port)))
	t.Cleanup(d.CloseIdleConnections)
	s, rep := dialWTOver(t, 2, d, e.wtURL())
	roundTrip(t, s, []byte("wt via squid"))
	checkProxied(t, rep, port, 200)
}

// TestProxyDante: WebSocket over HTTP/2 and WebTransport over HTTP/2
// through Dante (SOCKS5), the origin resolved here (socks5://). A
// WebTransport session to the origin rides on the WebSocket's connection
// through the tunnel (both run on the package's own HTTP/2
// client, which announced WebTransport), idle in the pool once the
// WebSocket has closed.
func TestProxyDante(t *testing.T) {
	e := newEnv(t, true, wtH2, wtH2)
	e.dns.A(host, "127.0.0.1")
	port := startDante(t)
	d := e.dialer(viaProxy(fmt.Sprintf("socks5://127.0.0.1:%d", port)))
	t.Cleanup(d.CloseIdleConnections)
	rep := dialEcho(t, d, e.url(true), 2)
	checkProxied(t, rep, port, 0)
	s, rep := dialWTOver(t, 2, d, e.wtURL())
	roundTrip(t, s, []byte("wt on the websocket's tunnel"))
	if rep == nil || rep.Proxy == nil || !strings.Contains(rep.Reason, "reused a live h2 connection") {
		t.Errorf("the session did not reuse the WebSocket's tunnel\n%s", rep)
	}
	s.CloseWithError(0, "")
	d.CloseIdleConnections()
	s, rep = dialWTOver(t, 2, d, e.wtURL())
	roundTrip(t, s, []byte("wt via dante"))
	checkProxied(t, rep, port, 0)
}

// TestProxyTransport: Transport GETs through Squid (CONNECT) and Dante
// (SOCKS5) reach the origin over HTTP/2 inside the tunnel, raced through
// the proxy's addresses, the Report showing the hop; the second request
// reuses the connection. An origin that speaks HTTP/1.1 only is reached
// through net/http's CONNECT after the first race shows it.
func TestProxyTransport(t *testing.T) {
	for _, tc := range []struct {
		name   string
		start  func(testing.TB) int
		proxy  string
		origin family
		major  int
	}{
		{"squid", func(t testing.TB) int { return startSquid(t, true) }, "http", serve, 2},
		{"squid-h1", func(t testing.TB) int { return startSquid(t, true) }, "http", serveH1, 1},
		{"dante", startDante, "socks5h", serve, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.origin, tc.origin)
			e.dns.A(host, "127.0.0.1")
			port := tc.start(t)
			e.dns.A(proxyHost, "127.0.0.1")
			proxy := fmt.Sprintf("%s://%s:%d", tc.proxy, proxyHost, port)
			url := e.httpURL("/proto")
			status := 200
			if tc.proxy == "socks5h" {
				// Dante resolves names with the system's resolver, which
				// must not be asked about the test's names.
				proxy = fmt.Sprintf("%s://127.0.0.1:%d", tc.proxy, port)
				url = "https://127.0.0.1:" + itoa(e.port) + "/proto"
				status = 0
			}
			var (
				mu  sync.Mutex
				rep *dialer.Report // the first
			)
			tr := e.dialer(viaProxy(proxy), dialer.WithReport(func(r *dialer.Report) {
				mu.Lock()
				defer mu.Unlock()
				if rep == nil {
					rep = r
				}
			})).Transport()
			t.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr}
			for range 3 {
				resp, body := get(t, c, url)
				if resp.StatusCode != 200 || resp.ProtoMajor != tc.major || body != itoa(tc.major) {
					t.Errorf("%s HTTP/%d %q: want 200 over HTTP/%d", resp.Status, resp.ProtoMajor, body, tc.major)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if rep == nil || rep.Kind != "http" {
				t.Fatalf("the first request made no race through the proxy\n%s", rep)
			}
			checkProxied(t, rep, port, status)
			want := 1 // reused
			if tc.major == 1 {
				want = 2 // the race's, closed, and net/http's, reused
			}
			if n := e.v4.Accepted() + e.v6.Accepted(); n != want {
				t.Errorf("the origin accepted %d connections, want %d", n, want)
			}
		})
	}
}

// TestProxyPoolPartition: a Dialer's pooled h2 connection is not reused
// by a dial through a proxy, nor the tunnelled one by a direct dial; each
// is reused by dials of its own kind.
func TestProxyPoolPartition(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	port := startSquid(t, false)
	via := viaProxy(fmt.Sprintf("http://127.0.0.1:%d", port))
	d := e.dialer()
	defer d.CloseIdleConnections()
	dial := func(opts ...dialer.Option) *dialer.Report {
		var rep *dialer.Report
		c, _, err := d.DialWebSocket(ctx(t), e.url(true), append(opts, dialer.WithReport(func(r *dialer.Report) { rep = r }))...)
		if err != nil {
			t.Fatal(err)
		}
		echo(t, c, websocket.MessageText, []byte("partition"))
		t.Cleanup(func() { c.CloseNow() })
		return rep
	}
	direct := dial()
	proxied := dial(via)
	if direct.Proxy != nil || proxied.Proxy == nil || e.v4.Accepted()+e.v6.Accepted() != 2 {
		t.Fatalf("want a direct and a proxied connection, 2 accepted (got %d)\n%s\n%s", e.v4.Accepted()+e.v6.Accepted(), direct, proxied)
	}
	for i, rep := range []*dialer.Report{dial(), dial(via)} {
		if !strings.HasPrefix(rep.Reason, "reused a live h2") || (rep.Proxy != nil) != (i == 1) {
			t.Errorf("want the pooled connection of the same kind reused, the proxy in the report of the proxied one\n%s", rep)
		}
	}
	// The origin's refusal through the proxy is the origin's, and the
	// error names the proxy it went through.
	_, _, err := d.DialWebSocket(ctx(t), e.url(true), via, dialer.WithHeader(http.Header{"X-Connect-Status": {"403"}}))
	var de *dialer.DialError
	if !errors.Is(err, dialer.ErrRejected) || errors.Is(err, dialer.ErrProxy) || !errors.As(err, &de) || de.Proxy == "" {
		t.Errorf("error %v: want ErrRejected from the origin, naming the proxy", err)
	}
	if n := e.v4.Accepted() + e.v6.Accepted(); n != 2 {
		t.Errorf("the origin accepted %d connections, want 2", n)
	}
}

// TestProxySquidHTTPS: an https:// proxy gets TLS first, verified against
// the Dialer's roots, then CONNECT inside it, then TLS to the origin inside
// that; a proxy whose certificate the roots do not hold fails at the
// proxy's TLS.
func TestProxySquidHTTPS(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	port := startSquidTLS(t, e.ca)
	d := e.dialer(viaProxy(fmt.Sprintf("https://127.0.0.1:%d", port)))
	defer d.CloseIdleConnections()
	rep := dialEcho(t, d, e.url(true), 2)
	checkProxied(t, rep, port, 200)

	other, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.DialWebSocket(ctx(t), e.url(true), dialer.WithTLSConfig(other.ClientConfig()))
	var pe *dialer.ProxyError
	if !errors.As(err, &pe) || pe.Op != "tls" || !errors.Is(err, dialer.ErrProxy) {
		t.Errorf("error %v: want the proxy's TLS failing", err)
	}
}

// TestProxyPlainWebSocket: a ws:// dial through a proxy asks it for a
// tunnel too (RFC 6455 §4.1), through Squid and Dante, and upgrades over
// HTTP/1.1 inside it.
func TestProxyPlainWebSocket(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	e.dns.A(host, "127.0.0.1")
	for _, p := range []struct {
		name  string
		start func(testing.TB) int
		url   string
		code  int
	}{
		{"squid", func(t testing.TB) int { return startSquid(t, false) }, "http://127.0.0.1:%d", 200},
		{"dante", startDante, "socks5://127.0.0.1:%d", 0},
	} {
		t.Run(p.name, func(t *testing.T) {
			port := p.start(t)
			d := e.dialer(viaProxy(fmt.Sprintf(p.url, port)))
			defer d.CloseIdleConnections()
			rep := dialEcho(t, d, e.url(false), 1)
			checkProxied(t, rep, port, p.code)
		})
	}
}
