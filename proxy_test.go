package dialer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// peer is a hostile proxy on a real loopback socket: it accepts one
// connection, hands it to serve, and records what the client sent.
type peer struct {
	ln   net.Listener
	got  bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

// startPeer listens on 127.0.0.1 and runs serve on the first connection;
// serve reads what it wants with read and writes its answer.
func startPeer(t *testing.T, serve func(c net.Conn, read func(n int) []byte)) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		read := func(n int) []byte {
			b := make([]byte, n)
			n, _ = io.ReadFull(c, b)
			p.mu.Lock()
			p.got.Write(b[:n])
			p.mu.Unlock()
			return b[:n]
		}
		serve(c, read)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-p.done
	})
	return p
}

// sent returns what the client sent, as far as serve read it.
func (p *peer) sent() string {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got.String()
}

// readHead reads an HTTP request head, byte by byte, up to its blank line.
func readHead(read func(int) []byte) string {
	var b strings.Builder
	for !strings.HasSuffix(b.String(), "\r\n\r\n") {
		c := read(1)
		if len(c) == 0 {
			break
		}
		b.Write(c)
	}
	return b.String()
}

// hop returns a hop through the proxy URL raw, to origin.example:443.
func hop(t *testing.T, raw string) *proxyHop {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newProxyHop(u, "origin.example", 443)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tunnelTo dials the peer and runs the hop's handshake, bounded by 5 s.
func tunnelTo(t *testing.T, p *peer, h *proxyHop, addrs []netip.Addr) (*tunnelInfo, error) {
	t.Helper()
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resolve func(context.Context) ([]netip.Addr, error)
	if addrs != nil {
		resolve = func(context.Context) ([]netip.Addr, error) { return addrs, nil }
	}
	tun, err := tunnel(ctx, c, h, nil, resolve)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { tun.conn.Close() })
	return tun, nil
}

// wantProxyError checks that err is the hop's ProxyError at op, with
// status, saying want.
func wantProxyError(t *testing.T, err error, op string, status int, want string) {
	t.Helper()
	var pe *ProxyError
	switch {
	case err == nil:
		t.Fatalf("tunnel opened, want a %s error saying %q", op, want)
	case !errors.Is(err, ErrProxy) || !errors.As(err, &pe):
		t.Fatalf("error %v (%T) does not match ErrProxy and *ProxyError", err, err)
	case pe.Op != op || pe.StatusCode != status || pe.Target != "origin.example:443":
		t.Errorf("ProxyError %+v, want Op %q, StatusCode %d, Target origin.example:443", pe, op, status)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the password", err)
	}
}

// TestHTTPConnectWire: the CONNECT request is the RFC's, with Basic
// credentials from the URL, and bytes the proxy sends after its 200 reach
// the tunnel's reader.
func TestHTTPConnectWire(t *testing.T) {
	p := startPeer(t, func(c net.Conn, read func(int) []byte) {
		readHead(read)
		// The answer and the origin's first bytes in one write.
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\nhello")
		read(4)
	})
	tun, err := tunnelTo(t, p, hop(t, "http://alice:s3cret@proxy.example:3128"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tun.status != 200 {
		t.Errorf("status %d, want 200", tun.status)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(tun.conn, got); err != nil || string(got) != "hello" {
		t.Errorf("tunnel read %q, %v; want the bytes after the answer, \"hello\"", got, err)
	}
	io.WriteString(tun.conn, "ping")
	cred := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	want := "CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\nProxy-Authorization: Basic " + cred + "\r\n\r\nping"
	if s := p.sent(); s != want {
		t.Errorf("the proxy got\n%q\nwant\n%q", s, want)
	}
}

// TestHTTPConnectInterim: interim answers before the 200 (RFC 9110 §15.2)
// are read past, and the tunnel opens.
func TestHTTPConnectInterim(t *testing.T) {
	p := startPeer(t, func(c net.Conn, read func(int) []byte) {
		readHead(read)
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\nhi")
		read(4)
	})
	tun, err := tunnelTo(t, p, hop(t, "http://proxy.example:3128"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if tun.status != 200 {
		t.Errorf("status %d, want 200", tun.status)
	}
	if _, err := io.ReadFull(tun.conn, got); err != nil || string(got) != "hi" {
		t.Errorf("tunnel read %q, %v; want \"hi\"", got, err)
	}
	io.WriteString(tun.conn, "ping")
}

// TestHTTPConnectIPv6Target: an IPv6 literal target is bracketed in the
// authority form, and no credentials are sent without user info.
func TestHTTPConnectIPv6Target(t *testing.T) {
	p := startPeer(t, func(c net.Conn, read func(int) []byte) {
		readHead(read)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n")
	})
	u, _ := url.Parse("http://proxy.example")
	h, err := newProxyHop(u, "::1", 8443)
	if err != nil {
		t.Fatal(err)
	}
	if h.port != 80 {
		t.Errorf("http proxy without a port: port %d, want 80", h.port)
	}
	if _, err := tunnelTo(t, p, h, nil); err != nil {
		t.Fatal(err)
	}
	if s, want := p.sent(), "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"; s != want {
		t.Errorf("the proxy got %q, want %q", s, want)
	}
}

// TestHTTPConnectHostile: every answer but a 2xx is a ProxyError naming
// what went wrong, and the client reads no more than the bound.
func TestHTTPConnectHostile(t *testing.T) {
	huge := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 100) + "\r\n"
	cases := []struct {
		name   string
		proxy  string
		answer string
		status int
		want   string
	}{
		{"407 without credentials", "http://proxy.example:3128", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n", 407, "wants credentials (none in the proxy URL); it offers Basic"},
		{"407 with credentials", "http://alice:s3cret@proxy.example:3128", "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", 407, "refused the credentials"},
		{"403", "http://proxy.example:3128", "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", 403, "policy refuses this target"},
		{"502", "http://proxy.example:3128", "HTTP/1.1 502 Bad Gateway\r\n\r\n", 502, "refused the tunnel"},
		{"garbage status", "http://proxy.example:3128", "HTTP/1.1 abc Nonsense\r\n\r\n", 0, "malformed answer"},
		{"not HTTP", "http://proxy.example:3128", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, "malformed answer"},
		{"close mid-reply", "http://proxy.example:3128", "HTTP/1.1 200 Conn", 0, "closed the connection before it answered"},
		{"close before reply", "http://proxy.example:3128", "", 0, "closed the connection before it answered"},
		{"oversized header", "http://proxy.example:3128", huge, 0, "answer header larger than 16384 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeer(t, func(c net.Conn, read func(int) []byte) {
				readHead(read)
				io.WriteString(c, tc.answer)
			})
			_, err := tunnelTo(t, p, hop(t, tc.proxy), nil)
			wantProxyError(t, err, "CONNECT", tc.status, tc.want)
		})
	}
}

// TestTunnelHonoursContext: a proxy that never answers holds the dial no
// longer than its context.
func TestTunnelHonoursContext(t *testing.T) {
	for _, scheme := range []string{"http", "socks5h"} {
		t.Run(scheme, func(t *testing.T) {
			p := startPeer(t, func(c net.Conn, read func(int) []byte) {
				read(1)
				io.Copy(io.Discard, c) // until the client gives up
			})
			c, err := net.Dial("tcp", p.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = tunnel(ctx, c, hop(t, scheme+"://proxy.example"), nil, nil)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("tunnel returned after %v, want about the context's 200ms", el)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrProxy) {
				t.Errorf("error %v, want a ProxyError with the context's deadline", err)
			}
		})
	}
}

// socksServe answers a SOCKS5 client: method selection, then (auth) the
// RFC 1929 exchange, then the CONNECT request, each with the given bytes.
func socksServe(method, auth, reply []byte) func(net.Conn, func(int) []byte) {
	return func(c net.Conn, read func(int) []byte) {
		h := read(2)
		if len(h) < 2 {
			return
		}
		read(int(h[1]))
		c.Write(method)
		if len(method) < 2 || method[1] == 0xff {
			return
		}
		if method[1] == socksUserPass {
			v := read(2)
			if len(v) < 2 {
				return
			}
			read(int(v[1]))
			pl := read(1)
			if len(pl) < 1 {
				return
			}
			read(int(pl[0]))
			c.Write(auth)
			if len(auth) < 2 || auth[1] != 0 {
				return
			}
		}
		r := read(4)
		if len(r) < 4 {
			return
		}
		switch r[3] {
		case socksATypIPv4:
			read(4 + 2)
		case socksATypIPv6:
			read(16 + 2)
		case socksATypName:
			l := read(1)
			if len(l) == 1 {
				read(int(l[0]) + 2)
			}
		}
		c.Write(reply)
		if len(reply) >= len(okReply) {
			read(4)
		}
	}
}

// okReply is a successful SOCKS5 CONNECT reply with an IPv4 BND.ADDR.
var okReply = []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90}

// TestSOCKS5Wire: socks5h sends the name, socks5 the first address
// resolved here, each with RFC 1928's bytes, and user info goes through
// RFC 1929's subnegotiation.
func TestSOCKS5Wire(t *testing.T) {
	cases := []struct {
		name  string
		proxy string
		addrs []netip.Addr
		want  []byte
	}{
		{"socks5h name", "socks5h://proxy.example", nil,
			append(append([]byte{5, 1, 0, 5, 1, 0, 3, 14}, "origin.example"...), 1, 0xbb, 'p', 'i', 'n', 'g')},
		{"socks5 IPv4", "socks5://proxy.example", []netip.Addr{netip.MustParseAddr("192.0.2.7")},
			[]byte{5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 7, 1, 0xbb, 'p', 'i', 'n', 'g'}},
		{"socks5 IPv6", "socks5://proxy.example", []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.7")},
			append(append([]byte{5, 1, 0, 5, 1, 0, 4}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 1, 0xbb, 'p', 'i', 'n', 'g')},
		{"user and password", "socks5h://al:s3cret@proxy.example", nil,
			append(append(append([]byte{5, 2, 0, 2, 1, 2, 'a', 'l', 6}, "s3cret"...), 5, 1, 0, 3, 14), append([]byte("origin.example"), 1, 0xbb, 'p', 'i', 'n', 'g')...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := []byte{5, 0}
			if strings.Contains(tc.proxy, "@") {
				method = []byte{5, 2}
			}
			p := startPeer(t, socksServe(method, []byte{1, 0}, okReply))
			tun, err := tunnelTo(t, p, hop(t, tc.proxy), tc.addrs)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(tun.conn, "ping")
			if got := p.sent(); got != string(tc.want) {
				t.Errorf("the proxy got\n%v\nwant\n%v", []byte(got), tc.want)
			}
		})
	}
}

// TestSOCKS5Hostile: replies that break RFC 1928 or refuse are
// ProxyErrors that say what the proxy did.
func TestSOCKS5Hostile(t *testing.T) {
	cases := []struct {
		name                 string
		proxy                string
		method, auth, answer []byte
		want                 string
	}{
		{"method reply bad version", "socks5h://p", []byte{4, 0}, nil, nil, "version 4, not 5: not a SOCKS5 proxy"},
		{"no acceptable method", "socks5h://p", []byte{5, 0xff}, nil, nil, "wants credentials (none in the proxy URL)"},
		{"method not offered", "socks5h://p", []byte{5, 2}, nil, nil, "chose method 0x2, which was not offered"},
		{"bad credentials", "socks5h://al:s3cret@p", []byte{5, 2}, []byte{1, 1}, nil, "refused the user name and password (status 1)"},
		{"auth reply bad version", "socks5h://al:s3cret@p", []byte{5, 2}, []byte{9, 0}, nil, "authentication reply: version 9"},
		{"reply bad version", "socks5h://p", []byte{5, 0}, nil, []byte{4, 0, 0, 1, 0, 0, 0, 0, 0, 0}, "CONNECT reply: version 4, not 5"},
		{"refused", "socks5h://p", []byte{5, 0}, nil, []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}, "connection refused (reply 5)"},
		{"ruleset", "socks5h://p", []byte{5, 0}, nil, []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}, "not allowed by ruleset (reply 2)"},
		{"unknown reply code", "socks5h://p", []byte{5, 0}, nil, []byte{5, 0x42, 0, 1, 0, 0, 0, 0, 0, 0}, "unknown reply code (reply 66)"},
		{"bad address type", "socks5h://p", []byte{5, 0}, nil, []byte{5, 0, 0, 9, 0, 0, 0, 0, 0, 0}, "unknown address type 9"},
		{"close mid-reply", "socks5h://p", []byte{5, 0}, nil, []byte{5, 0, 0, 1, 127}, "closed the connection"},
		{"close after greeting", "socks5h://p", []byte{5}, nil, nil, "method selection: the proxy closed the connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeer(t, socksServe(tc.method, tc.auth, tc.answer))
			u, _ := url.Parse(tc.proxy)
			h, err := newProxyHop(u, "origin.example", 443)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tunnelTo(t, p, h, nil)
			wantProxyError(t, err, "SOCKS5", 0, tc.want)
		})
	}
}

// TestProxyURLChecked: schemes the dialer cannot speak and overlong SOCKS5
// credentials are errors, not direct dials.
func TestProxyURLChecked(t *testing.T) {
	for _, raw := range []string{"ftp://p:21", "socks4://p", "http://p:99999", "socks5://" + strings.Repeat("u", 256) + ":pw@p"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newProxyHop(u, "o", 443); err == nil {
			t.Errorf("%s: accepted", trim(raw, 40))
		}
	}
	for raw, port := range map[string]uint16{"https://p": 443, "socks5://p": 1080, "socks5h://p:9": 9} {
		if h := hop(t, raw); h.port != port {
			t.Errorf("%s: port %d, want %d", raw, h.port, port)
		}
	}
}

// TestProxyTrust: the proxy URL, credentials included, partitions what is
// reused; a direct dial keeps the plain trust.
func TestProxyTrust(t *testing.T) {
	base := defaultConfig().trust()
	a := base.via(hop(t, "http://proxy.example:3128"))
	b := base.via(hop(t, "http://alice:pw@proxy.example:3128"))
	c := base.via(hop(t, "socks5h://proxy.example:3128"))
	if base.via(nil) != base {
		t.Error("a direct dial changed the trust")
	}
	if a == base || a == b || a == c || b == c {
		t.Error("dials through different proxies or credentials share a trust")
	}
	if a != base.via(hop(t, "http://proxy.example:3128")) {
		t.Error("the same proxy gives two trusts")
	}
}

// TestEnvProxy: ALL_PROXY stands in for an unset HTTPS_PROXY or
// HTTP_PROXY, NO_PROXY and loopback still dial directly.
func TestEnvProxy(t *testing.T) {
	env := map[string]string{"HTTPS_PROXY": "http://sp:1", "ALL_PROXY": "socks5h://all:2", "NO_PROXY": "skip.example"}
	f := envProxyFunc(func(k string) string { return env[k] })
	for in, want := range map[string]string{
		"https://o.example":    "http://sp:1",
		"http://o.example":     "socks5h://all:2",
		"https://skip.example": "",
		"http://127.0.0.1:80":  "",
	} {
		u, _ := url.Parse(in)
		got, err := f(u)
		if err != nil {
			t.Fatal(err)
		}
		if s := ""; got != nil {
			s = got.String()
			if s != want {
				t.Errorf("%s: proxy %q, want %q", in, s, want)
			}
		} else if want != "" {
			t.Errorf("%s: no proxy, want %q", in, want)
		}
	}
}
