package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/loopback"
)

// TestMD5Crypt checks the htpasswd and shadow hashes the proxies' password
// files hold against openssl passwd -apr1 / -1.
func TestMD5Crypt(t *testing.T) {
	for _, tc := range []struct{ magic, pw, salt, want string }{
		{"$1$", proxyPass, "intrpSlt", "$1$intrpSlt$XcM0jgINYBwBqe2QOvHT./"},
		{"$apr1$", proxyPass, "intrpSlt", "$apr1$intrpSlt$vJAykSh.WsW46rEqB.8pu."},
		{"$1$", "a-much-longer-password-than-16-bytes", "ab", "$1$ab$laNP4gqnwMR.AjgUjrcDf/"},
	} {
		if got := md5Crypt(tc.magic, tc.pw, tc.salt); got != tc.want {
			t.Errorf("md5Crypt(%q, %q, %q) = %q, want %q", tc.magic, tc.pw, tc.salt, got, tc.want)
		}
	}
}

// through is one proxy configuration under test: the running proxy, the
// URL the dialer is given, and whether the dialer resolves the origin's
// name itself (socks5://) or leaves it to the proxy (http://, socks5h://).
type through struct {
	px    *runningProxy
	u     *url.URL
	local bool
	r     *row
	// front, when set, is the port the dialer reaches the proxy on (a TLS
	// front), instead of the proxy's own.
	front int
}

// port is the port the dialer reaches the proxy on.
func (th through) port() int {
	if th.front != 0 {
		return th.front
	}
	return th.px.port
}

// TestSquidProxy runs every kind of session through Squid (HTTP CONNECT,
// RFC 9110 §9.3.6), without and with Basic authentication: WebSocket over
// h2 (RFC 8441) and, by the ladder, over h1 on an origin whose h2 lacks
// extended CONNECT; WebTransport over h2; a Transport GET.
func TestSquidProxy(t *testing.T) {
	for _, auth := range []bool{false, true} {
		name := map[bool]string{false: "open", true: "basic auth"}[auth]
		t.Run(name, func(t *testing.T) {
			r := need(t, squidPeer, "CONNECT proxy ("+name+"): WebSocket h2 and h1, WebTransport h2, Transport GET, DialContext")
			pw := newProxyWorld(t)
			px := startSquid(t, pw, r, squidOptions{auth: auth})
			user, pass := "", ""
			if auth {
				user, pass = proxyUser, proxyPass
			}
			sessionsThrough(t, pw, through{px: px, u: px.url("http", proxyName, user, pass), r: r})
		})
	}
}

// TestSquidProxyOverTLS runs every kind of session through an https://
// proxy: TLS to the proxy (HAProxy in TCP mode, verified against the
// proxy's name with the dialer's roots), Squid's CONNECT inside it, and
// the origin's TLS inside the tunnel: TLS in TLS.
func TestSquidProxyOverTLS(t *testing.T) {
	r := need(t, squidPeer, "https:// CONNECT proxy (HAProxy TLS front): WebSocket h2 and h1, WebTransport h2, Transport GET, DialContext", haproxy)
	pw := newProxyWorld(t)
	px := startSquid(t, pw, r, squidOptions{auth: true})
	front := startTLSFront(t, pw, haproxy.path(), px)
	u := &url.URL{Scheme: "https", Host: hostPort(proxyName, front), User: url.UserPassword(proxyUser, proxyPass)}
	sessionsThrough(t, pw, through{px: px, u: u, r: r, front: front})
	// The proxy's certificate names proxyName only: by its IP the proxy
	// cannot be verified, and the dial must fail at the proxy's TLS.
	t.Run("UnverifiedProxy", func(t *testing.T) {
		bad := &url.URL{Scheme: "https", Host: hostPort("127.0.0.1", front), User: u.User}
		start := time.Now()
		_, _, err := pw.dialer(bad).DialWebSocket(ctx(t), wsURL(pw.origin, originName))
		checkProxyRefused(t, err, time.Since(start), 0, hostPort(originName, pw.origin.Port()))
		var pe *dialer.ProxyError
		if errors.As(err, &pe) && pe.Op != "tls" {
			t.Errorf("ProxyError.Op %q, want tls (%v)", pe.Op, err)
		}
		var ce *tls.CertificateVerificationError
		if !errors.As(err, &ce) {
			t.Errorf("error %q is not a certificate verification error", err)
		}
	})
}

// TestDanteProxy runs every kind of session through Dante (SOCKS5, RFC
// 1928): socks5h:// (the proxy resolves the origin), with username and
// password (RFC 1929), and socks5:// (the dialer resolves it and must not
// race QUIC to the address it found).
func TestDanteProxy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scheme string
		auth   bool
	}{
		{"socks5h", "socks5h", false},
		{"socks5h auth", "socks5h", true},
		{"socks5", "socks5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := need(t, dantePeer, "SOCKS5 proxy ("+tc.name+"): WebSocket h2 and h1, WebTransport h2, Transport GET, DialContext")
			pw := newProxyWorld(t)
			px := startDante(t, pw, r, danteOptions{auth: tc.auth})
			user, pass := "", ""
			if tc.auth {
				user, pass = proxyUser, proxyPass
			}
			local := tc.scheme == "socks5"
			if local {
				pw.resolveOrigins()
			}
			sessionsThrough(t, pw, through{px: px, u: px.url(tc.scheme, proxyName, user, pass), local: local, r: r})
		})
	}
}

// sessionsThrough dials each kind of session through th and checks that it
// went through the proxy: the proxy logged it, the origin saw the proxy's
// address, the dialer never looked the origin up (unless it resolves
// locally), and the race report shows TCP to the proxy only.
func sessionsThrough(t *testing.T, pw *proxyWorld, th through) {
	var protos []string
	t.Run("WebSocketH2", func(t *testing.T) {
		pw.markDNS()
		mark, logged := pw.seen.mark(), th.logged(pw.origin.Port())
		d := pw.dialer(th.u)
		c, _, rep := dialWS(t, d, wsURL(pw.origin, originName), 2)
		checkProxied(t, rep, th, hostPort(originName, pw.origin.Port()))
		if win := winner(t, rep); win.Settings == nil || !win.Settings.ExtendedConnect {
			t.Errorf("winner's SETTINGS %+v, want extended CONNECT; race:\n%s", win.Settings, rep)
		}
		closeWS(t, c)
		d.CloseIdleConnections() // Squid logs a tunnel when it ends
		th.checkVia(t, pw, pw.origin.Port(), logged, mark, originName)
		protos = append(protos, "WS h2")
	})
	t.Run("WebSocketH1", func(t *testing.T) {
		pw.markDNS()
		mark, logged := pw.seen.mark(), th.logged(pw.old.Port())
		c, _, rep := dialWS(t, pw.dialer(th.u), wsURL(pw.old, oldName), 1)
		checkProxied(t, rep, th, hostPort(oldName, pw.old.Port()))
		checkLadder(t, rep, "h2")
		closeWS(t, c)
		th.checkVia(t, pw, pw.old.Port(), logged, mark, oldName)
		protos = append(protos, "WS h1")
	})
	t.Run("WebTransportH2", func(t *testing.T) {
		pw.markDNS()
		logged := th.logged(pw.origin.Port())
		var rep *dialer.Report
		var mu sync.Mutex
		d := pw.dialer(th.u)
		s, resp, err := d.DialWebTransport(ctx(t), httpsURL(pw.origin, originName, "/wt"),
			dialer.WithReport(func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() }))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Fatalf("DialWebTransport: %v; race:\n%v", err, rep)
		}
		if s.HTTPVersion() != 2 || resp.ProtoMajor != 2 {
			t.Errorf("WebTransport over HTTP/%d (response HTTP/%d), want HTTP/2: QUIC cannot cross a TCP proxy; race:\n%s",
				s.HTTPVersion(), resp.ProtoMajor, rep)
		}
		checkProxied(t, rep, th, hostPort(originName, pw.origin.Port()))
		echoWT(t, s)
		s.CloseWithError(0, "")
		d.CloseIdleConnections()
		th.checkVia(t, pw, pw.origin.Port(), logged, -1, originName)
		protos = append(protos, "WT h2")
	})
	t.Run("TransportGET", func(t *testing.T) {
		pw.markDNS()
		mark, logged := pw.seen.mark(), th.logged(pw.origin.Port())
		var rep *dialer.Report
		var mu sync.Mutex
		tr := dialer.NewTransport(pw.options(th.u, dialer.WithReport(func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() }))...)
		client := &http.Client{Transport: tr}
		resp, body := fetch(t, client, httpsURL(pw.origin, originName, "/hello"))
		tr.CloseIdleConnections()
		// Inside the tunnel, TLS to the origin offers h2 and http/1.1; the
		// origin has h2.
		if resp.StatusCode != http.StatusOK || string(body) != "hello from origin" || resp.ProtoMajor != 2 {
			t.Errorf("GET /hello: %s %q over HTTP/%d, want 200 %q over HTTP/2", resp.Status, body, resp.ProtoMajor, "hello from origin")
		}
		mu.Lock()
		checkProxied(t, rep, th, hostPort(originName, pw.origin.Port()))
		mu.Unlock()
		th.checkVia(t, pw, pw.origin.Port(), logged, mark, originName)
		protos = append(protos, fmt.Sprintf("GET h%d", resp.ProtoMajor))
	})
	t.Run("DialContext", func(t *testing.T) {
		pw.markDNS()
		mark, logged := pw.seen.mark(), th.logged(pw.origin.Port())
		var rep *dialer.Report
		var mu sync.Mutex
		d := pw.dialer(th.u, dialer.WithReport(func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() }))
		target := hostPort(originName, pw.origin.Port())
		raw, err := d.DialContext(ctx(t), "tcp", target)
		if err != nil {
			t.Fatalf("DialContext: %v", err)
		}
		defer raw.Close()
		mu.Lock()
		if rep == nil || rep.Proxy == nil || rep.Proxy.Target != target {
			t.Errorf("DialContext's Report shows no proxy hop to %s:\n%v", target, rep)
		} else if w := winner(t, rep); int(w.Addr.Port()) != th.port() {
			t.Errorf("DialContext won on %v, want the proxy's port %d:\n%s", w.Addr, th.port(), rep)
		}
		mu.Unlock()
		// The tunnel carries whatever the caller speaks: here TLS and an
		// HTTP/1.1 GET, as http.Transport would over DialContext.
		conf := pw.ca.ClientConfig()
		conf.ServerName, conf.NextProtos = originName, []string{"http/1.1"}
		tc := tls.Client(raw, conf)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		req, _ := http.NewRequest(http.MethodGet, httpsURL(pw.origin, originName, "/hello"), nil)
		req.Close = true
		if err := req.Write(tc); err != nil {
			t.Fatalf("GET over DialContext's tunnel: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), req)
		if err != nil {
			t.Fatalf("GET over DialContext's tunnel: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tc.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "hello from origin" {
			t.Errorf("GET /hello: %s %q, want 200 %q", resp.Status, body, "hello from origin")
		}
		th.checkVia(t, pw, pw.origin.Port(), logged, mark, originName)
		protos = append(protos, "DialContext")
	})
	th.r.proto = strings.Join(protos, ", ")
}

// logged returns how many lines the proxy has logged for connections to
// 127.0.0.1:port (Squid: CONNECTs answered 200).
func (th through) logged(port int) int {
	return len(th.logRE(port).FindAllString(th.px.logText(), -1))
}

// logRE matches the proxy's log line of one connection to the origin on
// port.
func (th through) logRE(port int) *regexp.Regexp {
	if th.px.kind == "dante" {
		return danteLine(port)
	}
	return regexp.MustCompile(`CONNECT \S+:` + itoa(port) + ` 200 `)
}

// checkVia checks that a session to host on port went through th's proxy:
// the proxy logged more connections to it than the before it had (proxies
// log a tunnel when it ends: call this after closing), the origin saw
// only the proxy's address since mark (unless mark is -1: WebTransport
// does not reach the handler), and, unless the dialer resolves names
// itself, it never asked its DNS about host.
func (th through) checkVia(t *testing.T, pw *proxyWorld, port, before, mark int, host string) {
	t.Helper()
	re := th.logRE(port)
	deadline := time.Now().Add(5 * time.Second)
	for len(re.FindAllString(th.px.logText(), -1)) <= before {
		if time.Now().After(deadline) {
			t.Errorf("%s logged no new connection to port %d (%d before, pattern %q):\n%s", th.px.kind, port, before, re, th.px.logText())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if th.px.kind == "squid" {
		// Squid names the host the client asked for, not an address.
		if !strings.Contains(th.px.logText(), "CONNECT "+host+":"+itoa(port)+" ") {
			t.Errorf("squid logged no CONNECT %s:%d:\n%s", host, port, th.px.logText())
		}
	}
	if mark >= 0 {
		pw.seen.checkFrom(t, mark, th.px.source)
	}
	if !th.local {
		checkNoLookup(t, pw, host)
	}
}

// checkNoLookup checks that the dialer never asked its DNS server about
// name: through a CONNECT or socks5h proxy the proxy resolves it.
func checkNoLookup(t *testing.T, pw *proxyWorld, name string) {
	t.Helper()
	for _, q := range pw.dns.Queries()[pw.dnsMark:] {
		if strings.EqualFold(strings.TrimSuffix(q.Name, "."), name) {
			t.Errorf("the dialer asked its DNS for %s (type %d); the proxy resolves it", name, q.Type)
		}
	}
}

// checkProxied checks that a race reached the proxy and nothing else: the
// Report names the proxy hop (its URL without the password, the origin as
// target, and that QUIC was not offered); every attempt went to the
// proxy's port over TCP, none offered h3 (QUIC cannot cross a TCP proxy);
// the winner's tunnel opened (with 200 from an HTTP proxy).
func checkProxied(t *testing.T, rep *dialer.Report, th through, target string) {
	t.Helper()
	if rep == nil {
		t.Fatal("no race report")
	}
	if len(rep.Attempts) == 0 {
		t.Errorf("race with no attempts:\n%s", rep)
	}
	if p := rep.Proxy; p == nil {
		t.Errorf("the Report shows no proxy hop; race:\n%s", rep)
	} else {
		if want := th.u.Redacted(); p.URL != want {
			t.Errorf("Report.Proxy.URL %q, want %q", p.URL, want)
		}
		if pass, ok := th.u.User.Password(); ok && strings.Contains(p.URL+rep.String(), pass) {
			t.Errorf("the Report shows the proxy password:\n%s", rep)
		}
		if p.Target != target {
			t.Errorf("Report.Proxy.Target %q, want %q", p.Target, target)
		}
		if !strings.Contains(p.Note, "QUIC") {
			t.Errorf("Report.Proxy.Note %q does not say why QUIC was not offered", p.Note)
		}
		// The waterfall (the trace, eyeballs -trace) shows the hop too.
		if hop := "proxy " + p.URL + " → " + target; !strings.Contains(rep.String(), hop) {
			t.Errorf("the race's text lacks %q:\n%s", hop, rep)
		}
	}
	for _, a := range rep.Attempts {
		if strings.Contains(a.Proto, "h3") || a.Version == "h3" {
			t.Errorf("attempt %v offered %q (negotiated %q) through a TCP proxy; race:\n%s", a.Addr, a.Proto, a.Version, rep)
		}
		if int(a.Addr.Port()) != th.port() || !a.Addr.Addr().IsLoopback() {
			t.Errorf("attempt to %v, want only the proxy's addresses (port %d); race:\n%s", a.Addr, th.port(), rep)
		}
	}
	w := winner(t, rep)
	if w.Tunnel == 0 {
		t.Errorf("the winner shows no tunnel; race:\n%s", rep)
	}
	if th.px.kind == "squid" && w.ProxyStatus != http.StatusOK {
		t.Errorf("the winner's CONNECT answer %d, want 200; race:\n%s", w.ProxyStatus, rep)
	}
}

// echoWT checks that a stream on s echoes.
func echoWT(t *testing.T, s *dialer.Session) {
	t.Helper()
	str, err := s.OpenStreamSync(ctx(t))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	str.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := str.Write([]byte("through the tunnel")); err != nil {
		t.Fatalf("write: %v", err)
	}
	str.Close()
	got, err := io.ReadAll(str)
	if err != nil || string(got) != "through the tunnel" {
		t.Errorf("stream echo %q, %v; want %q", got, err, "through the tunnel")
	}
}

// checkProxyRefused checks the error of a dial that the proxy refused: it
// failed at once (no timeout), matches dialer.ErrProxy, and its
// *dialer.ProxyError has the proxy's status (0: no HTTP status, as from a
// SOCKS5 proxy) and the target.
func checkProxyRefused(t *testing.T, err error, took time.Duration, status int, target string) {
	t.Helper()
	if err == nil {
		t.Fatal("dial succeeded, want the proxy's refusal")
	}
	if errors.Is(err, context.DeadlineExceeded) || took > 10*time.Second {
		t.Errorf("dial took %v and failed with %v; want the refusal at once", took, err)
	}
	if !errors.Is(err, dialer.ErrProxy) {
		t.Errorf("error %q does not match dialer.ErrProxy", err)
	}
	var pe *dialer.ProxyError
	if !errors.As(err, &pe) {
		t.Fatalf("error %q has no *dialer.ProxyError", err)
	}
	if pe.StatusCode != status {
		t.Errorf("ProxyError.StatusCode %d, want %d (%v)", pe.StatusCode, status, err)
	}
	if pe.Target != target {
		t.Errorf("ProxyError.Target %q, want %q (%v)", pe.Target, target, err)
	}
	if status != 0 && !strings.Contains(err.Error(), itoa(status)) {
		t.Errorf("error %q does not say the proxy's status %d", err, status)
	}
	if strings.Contains(err.Error(), proxyPass) {
		t.Errorf("error %q shows the proxy password", err)
	}
}

// checkTunnelBroken checks the error of a dial whose tunnel the proxy
// closed right after answering 200: the dial failed at once, not as the
// origin's rejection, and the error names both the proxy and the origin
// the tunnel was for (the client cannot tell which of the two closed it).
func checkTunnelBroken(t *testing.T, err error, took time.Duration, proxy *url.URL, target string) {
	t.Helper()
	if err == nil {
		t.Fatal("dial succeeded through a tunnel that closed")
	}
	if errors.Is(err, context.DeadlineExceeded) || took > 10*time.Second {
		t.Errorf("dial took %v and failed with %v; want a failure at once", took, err)
	}
	if errors.Is(err, dialer.ErrRejected) {
		t.Errorf("error %q matches ErrRejected: the origin never answered", err)
	}
	for _, w := range []string{proxy.Redacted(), target} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

// TestSquidProxyRefuses dials through Squid when it refuses: 407 without
// credentials and with a wrong password (RFC 9110 §15.5.8), 403 for a
// denied destination (RFC 9110 §15.5.4). Each dial of each kind fails at
// once with an error that names the proxy and its status.
func TestSquidProxyRefuses(t *testing.T) {
	r := need(t, squidPeer, "CONNECT proxy refuses: 407 (no or wrong credentials), 403")
	pw := newProxyWorld(t)
	px := startSquid(t, pw, r, squidOptions{auth: true})
	for _, tc := range []struct {
		name   string
		u      *url.URL
		host   string
		status int
	}{
		{"no credentials", px.url("http", proxyName, "", ""), originName, 407},
		{"wrong password", px.url("http", proxyName, proxyUser, "wrong"), originName, 407},
		{"denied", px.url("http", proxyName, proxyUser, proxyPass), deniedName, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pw.dialer(tc.u)
			target := hostPort(tc.host, pw.origin.Port())
			t.Run("WebSocket", func(t *testing.T) {
				start := time.Now()
				_, _, err := d.DialWebSocket(ctx(t), wsURL(pw.origin, tc.host))
				checkProxyRefused(t, err, time.Since(start), tc.status, target)
			})
			t.Run("WebTransport", func(t *testing.T) {
				start := time.Now()
				_, _, err := d.DialWebTransport(ctx(t), httpsURL(pw.origin, tc.host, "/wt"))
				checkProxyRefused(t, err, time.Since(start), tc.status, target)
			})
			t.Run("Transport", func(t *testing.T) {
				start := time.Now()
				client := &http.Client{Transport: dialer.NewTransport(pw.options(tc.u)...)}
				resp, err := client.Get(httpsURL(pw.origin, tc.host, "/hello"))
				if err == nil {
					resp.Body.Close()
				}
				checkProxyRefused(t, err, time.Since(start), tc.status, target)
			})
			logLines(t, px.log, squidLine(tc.host, pw.origin.Port(), tc.status), 3)
		})
	}
	r.proto = "h1 to the proxy"
}

// TestDanteProxyRefuses dials through Dante when it refuses: a destination
// its rules block (SOCKS5 reply 0x02, RFC 1928 §6), a wrong password (RFC
// 1929 §2, a status other than 0) and a name it cannot resolve. The dial fails at once with an
// error that names the proxy.
func TestDanteProxyRefuses(t *testing.T) {
	r := need(t, dantePeer, "SOCKS5 proxy refuses: ruleset, wrong password")
	pw := newProxyWorld(t)
	px := startDante(t, pw, r, danteOptions{auth: true})
	for _, tc := range []struct {
		name string
		u    *url.URL
		host string
		log  string
	}{
		{"ruleset", px.url("socks5h", proxyName, proxyUser, proxyPass), deniedName, "block("},
		{"wrong password", px.url("socks5h", proxyName, proxyUser, "wrong"), originName, "password authentication failed"},
		// directName is not in Dante's hosts file, and Dante has no DNS:
		// SOCKS5 reply 0x04, host unreachable.
		{"unknown name", px.url("socks5h", proxyName, proxyUser, proxyPass), directName, "could not resolve hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pw.dialer(tc.u)
			target := hostPort(tc.host, pw.origin.Port())
			t.Run("WebSocket", func(t *testing.T) {
				start := time.Now()
				_, _, err := d.DialWebSocket(ctx(t), wsURL(pw.origin, tc.host))
				checkProxyRefused(t, err, time.Since(start), 0, target)
			})
			t.Run("WebTransport", func(t *testing.T) {
				start := time.Now()
				_, _, err := d.DialWebTransport(ctx(t), httpsURL(pw.origin, tc.host, "/wt"))
				checkProxyRefused(t, err, time.Since(start), 0, target)
			})
			t.Run("Transport", func(t *testing.T) {
				start := time.Now()
				client := &http.Client{Transport: dialer.NewTransport(pw.options(tc.u)...)}
				resp, err := client.Get(httpsURL(pw.origin, tc.host, "/hello"))
				if err == nil {
					resp.Body.Close()
				}
				checkProxyRefused(t, err, time.Since(start), 0, target)
			})
			logLinesFunc(t, px.logText, regexp.MustCompile(regexp.QuoteMeta(tc.log)), 3)
		})
	}
	r.proto = "socks5"
}

// TestProxyBlackholedFamily names the proxy with an A and an AAAA record
// while its IPv6 address is blackholed (SYNs dropped): the race to the
// proxy must give up on [::1] after the attempt delay and win on
// 127.0.0.1, as Happy Eyeballs does for an origin.
func TestProxyBlackholedFamily(t *testing.T) {
	for _, kind := range []string{"squid", "dante"} {
		t.Run(kind, func(t *testing.T) {
			var (
				px     *runningProxy
				scheme string
				pw     *proxyWorld
			)
			if kind == "squid" {
				r := need(t, squidPeer, "CONNECT proxy, IPv6 blackholed: the race falls back to IPv4")
				pw = newProxyWorld(t)
				px, scheme = startSquid(t, pw, r, squidOptions{v4Only: true}), "http"
				r.proto = "h2 over IPv4"
			} else {
				r := need(t, dantePeer, "SOCKS5 proxy, IPv6 blackholed: the race falls back to IPv4")
				pw = newProxyWorld(t)
				px, scheme = startDante(t, pw, r, danteOptions{v4Only: true}), "socks5h"
				r.proto = "h2 over IPv4"
			}
			bh, err := loopback.Blackhole("[::1]:" + itoa(px.port))
			if err != nil {
				t.Skipf("cannot blackhole [::1]:%d: %v", px.port, err)
			}
			t.Cleanup(func() { bh.Close() })
			th := through{px: px, u: px.url(scheme, proxyName, "", "")}
			pw.markDNS()
			mark, logged := pw.seen.mark(), th.logged(pw.origin.Port())
			d := pw.dialer(th.u)
			c, _, rep := dialWS(t, d, wsURL(pw.origin, originName), 2)
			checkProxied(t, rep, th, hostPort(originName, pw.origin.Port()))
			tried6 := false
			for _, a := range rep.Attempts {
				if a.Addr.Addr() == netip.IPv6Loopback() {
					tried6 = true
				}
			}
			if !tried6 {
				t.Errorf("the race never tried the proxy's IPv6 address; race:\n%s", rep)
			}
			if w := winner(t, rep); w.Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("winner %v, want the proxy's IPv4 address; race:\n%s", w.Addr, rep)
			}
			closeWS(t, c)
			d.CloseIdleConnections()
			th.checkVia(t, pw, pw.origin.Port(), logged, mark, originName)
		})
	}
}

// TestProxyClosesAfterCONNECT dials through a proxy that answers the
// CONNECT with 200 and closes the tunnel at once: each kind of dial fails
// promptly, naming the proxy, and leaks nothing.
func TestProxyClosesAfterCONNECT(t *testing.T) {
	pw := newProxyWorld(t)
	h := startHostileProxy(t)
	u := &url.URL{Scheme: "http", Host: "127.0.0.1:" + itoa(h.port())}
	d := pw.dialer(u)
	target := hostPort(originName, pw.origin.Port())
	start := time.Now()
	_, _, err := d.DialWebSocket(ctx(t), wsURL(pw.origin, originName))
	checkTunnelBroken(t, err, time.Since(start), u, target)
	start = time.Now()
	_, _, err = d.DialWebTransport(ctx(t), httpsURL(pw.origin, originName, "/wt"))
	checkTunnelBroken(t, err, time.Since(start), u, target)
	start = time.Now()
	client := &http.Client{Transport: dialer.NewTransport(pw.options(u)...)}
	resp, err := client.Get(httpsURL(pw.origin, originName, "/hello"))
	if err == nil {
		resp.Body.Close()
		t.Errorf("GET through a proxy that closes the tunnel: %s, want an error", resp.Status)
	} else if took := time.Since(start); took > 10*time.Second {
		t.Errorf("GET took %v to fail (%v), want at once", took, err)
	}
	want := "CONNECT " + originName + ":" + itoa(pw.origin.Port())
	got := h.targets()
	if len(got) < 3 {
		t.Errorf("the proxy saw %q, want at least 3 × %q", got, want)
	}
	for _, g := range got {
		if g != want {
			t.Errorf("the proxy saw %q, want %q", g, want)
		}
	}
	if n := pw.seen.mark(); n != 0 {
		t.Errorf("the origin saw %d requests, want none: nothing may bypass the proxy", n)
	}
}

// TestProxyNoProxyConfig gives the dialer golang.org/x/net/http/httpproxy's
// rules (HTTPS_PROXY through Squid, NO_PROXY for directName) with
// WithProxy: originName goes through Squid, directName does not.
func TestProxyNoProxyConfig(t *testing.T) {
	r := need(t, squidPeer, "NO_PROXY (httpproxy.Config through WithProxy)")
	pw := newProxyWorld(t)
	px := startSquid(t, pw, r, squidOptions{})
	cfg := httpproxy.Config{HTTPSProxy: px.url("http", proxyName, "", "").String(), NoProxy: directName}
	f := cfg.ProxyFunc()
	d := pw.dialer(nil, dialer.WithProxy(func(req *http.Request) (*url.URL, error) { return f(req.URL) }))
	th := through{px: px}
	mark, logged := pw.seen.mark(), th.logged(pw.origin.Port())
	c, _, _ := dialWS(t, d, wsURL(pw.origin, originName), 2)
	closeWS(t, c)
	d.CloseIdleConnections() // Squid logs a tunnel when it ends
	th.checkVia(t, pw, pw.origin.Port(), logged, mark, originName)
	mark = pw.seen.mark()
	c, _, rep := dialWS(t, d, wsURL(pw.origin, directName), 2)
	closeWS(t, c)
	pw.seen.checkFrom(t, mark, directIP)
	if w := winner(t, rep); w.Addr.Port() != uint16(pw.origin.Port()) {
		t.Errorf("NO_PROXY dial won on %v, want the origin directly; race:\n%s", w.Addr, rep)
	}
	if strings.Contains(px.logText(), directName) {
		t.Errorf("squid saw %s, which NO_PROXY exempts:\n%s", directName, px.logText())
	}
	r.proto = "h2"
}

// proxyEnvChild is the environment variable that makes
// TestProxyEnvironmentChild run: it holds the child's instructions.
const proxyEnvChild = "INTEROP_PROXY_ENV_CHILD"

// TestProxyEnvironment runs TestProxyEnvironmentChild in a new process of
// the test binary whose environment names a proxy and sets NO_PROXY
// (directName): net/http and the dialer read those once per process, so
// only a fresh process shows the default. With no WithProxy, DialWebSocket,
// DialWebTransport and the Transport must go through the proxy, except to
// directName. Squid comes from HTTPS_PROXY, Dante (socks5h) from ALL_PROXY
// (as curl reads it: for every scheme without a variable of its own).
func TestProxyEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name, variable, scheme string
	}{
		{"squid", "HTTPS_PROXY", "http"},
		{"dante", "ALL_PROXY", "socks5h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				r  *row
				pw *proxyWorld
				px *runningProxy
			)
			if tc.name == "squid" {
				r = need(t, squidPeer, tc.variable+" and NO_PROXY from the environment (default)")
				pw = newProxyWorld(t)
				px = startSquid(t, pw, r, squidOptions{})
			} else {
				r = need(t, dantePeer, tc.variable+" and NO_PROXY from the environment (default)")
				pw = newProxyWorld(t)
				px = startDante(t, pw, r, danteOptions{})
			}
			caFile := filepath.Join(pw.dir, "proxy-ca.pem")
			pw.write(caFile, pw.ca.PEM())
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			instr := strings.Join([]string{pw.dns.Addr(), caFile,
				wsURL(pw.origin, originName), httpsURL(pw.origin, originName, "/wt"),
				httpsURL(pw.origin, originName, "/hello"), wsURL(pw.origin, directName)}, " ")
			cmd := exec.Command(exe, "-test.run=^TestProxyEnvironmentChild$", "-test.count=1", "-test.v")
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, proxyEnvChild+"="+instr,
				tc.variable+"="+px.url(tc.scheme, proxyName, "", "").String(), "NO_PROXY="+directName)
			th := through{px: px}
			logged := th.logged(pw.origin.Port())
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyEnvironmentChild") {
				t.Fatalf("child: %v\n%s", err, out)
			}
			// WebSocket and WebTransport to originName share one tunnel
			// (the WebSocket's HTTP/2 connection, on the package's own
			// client, carries the session); the Transport's GET opens
			// another: two tunnels.
			logLinesFunc(t, px.logText, th.logRE(pw.origin.Port()), logged+2)
			if strings.Contains(px.logText(), directName) {
				t.Errorf("%s saw %s, which NO_PROXY exempts:\n%s", tc.name, directName, px.logText())
			}
			var viaProxy, direct int
			for _, req := range pw.seen.since(0) {
				switch {
				case req.host == originName && req.from == px.source:
					viaProxy++
				case req.host == directName && req.from == directIP:
					direct++
				default:
					t.Errorf("the origin saw %s for %s from %v: wrong way round", req.path, req.host, req.from)
				}
			}
			if viaProxy != 2 || direct != 1 {
				t.Errorf("the origin saw %d requests for %s through the proxy (want 2) and %d for %s directly (want 1)", viaProxy, originName, direct, directName)
			}
			checkNoLookup(t, pw, originName)
			r.proto = "h2"
		})
	}
}

// TestProxyEnvironmentChild is TestProxyEnvironment's other half; it runs
// only in the process that test starts.
func TestProxyEnvironmentChild(t *testing.T) {
	instr := os.Getenv(proxyEnvChild)
	if instr == "" {
		t.Skip("runs only in the process TestProxyEnvironment starts")
	}
	f := strings.Fields(instr)
	if len(f) != 6 {
		t.Fatalf("%s=%q", proxyEnvChild, instr)
	}
	nsAddr, caFile, wsOrigin, wtOrigin, getOrigin, wsDirect := f[0], f[1], f[2], f[3], f[4], f[5]
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := pemConfig(t, pem)
	opts := []dialer.Option{dialer.WithNameservers(nsAddr), dialer.WithHostsFile("-"), dialer.WithTLSConfig(conf)}
	d := dialer.New(opts...)
	defer d.CloseIdleConnections()
	c, _, rep := dialWS(t, d, wsOrigin, 2)
	if win := winner(t, rep); win.Addr.Port() == portOf(t, wsOrigin) {
		t.Errorf("WebSocket won on %v, the origin's port: HTTPS_PROXY ignored; race:\n%s", win.Addr, rep)
	}
	closeWS(t, c)
	s, _, err := d.DialWebTransport(ctx(t), wtOrigin)
	if err != nil {
		t.Fatalf("DialWebTransport: %v", err)
	}
	if s.HTTPVersion() != 2 {
		t.Errorf("WebTransport over HTTP/%d through the proxy, want 2", s.HTTPVersion())
	}
	echoWT(t, s)
	s.CloseWithError(0, "")
	tr := dialer.NewTransport(opts...)
	resp, body := fetch(t, &http.Client{Transport: tr}, getOrigin)
	tr.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK || string(body) != "hello from origin" {
		t.Errorf("GET: %s %q", resp.Status, body)
	}
	c, _, _ = dialWS(t, d, wsDirect, 2)
	closeWS(t, c)
}

// hostPort joins host and port.
func hostPort(host string, port int) string { return net.JoinHostPort(host, itoa(port)) }

// portOf returns the port of URL s.
func portOf(t *testing.T, s string) uint16 {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	var p uint16
	fmt.Sscan(u.Port(), &p)
	return p
}

// pemConfig returns a TLS configuration that trusts the CA certificates in
// pem alone.
func pemConfig(t *testing.T, pem []byte) *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in the PEM file")
	}
	return &tls.Config{RootCAs: pool}
}
