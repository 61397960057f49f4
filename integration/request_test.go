package integration

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// TestHostHeader: a Host given through WithHeader is the Host (HTTP/1.1)
// or :authority (HTTP/2, HTTP/3) the server sees, while the dial still goes
// to, and verifies, the URL's host.
func TestHostHeader(t *testing.T) {
	const alias = "alias.example.test:8443"
	for _, tc := range []struct {
		name   string
		server family
		udp    udpMode
		major  int
	}{
		{"h1", serveH1, noUDP, 1},
		{"h2", serve, noUDP, 2},
		{"h3", serve, h3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.server, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			var opts []dialer.Option
			if tc.udp == h3 {
				opts = append(opts, dialer.WithProtocols("h3"))
			}
			d := e.dialer(opts...)
			defer d.CloseIdleConnections()
			ws, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithHeader(http.Header{"Host": {alias}}))
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			if got := resp.Header.Get("X-Host"); got != alias || resp.ProtoMajor != tc.major {
				t.Errorf("server saw Host %q over HTTP/%d, want %q over HTTP/%d", got, resp.ProtoMajor, alias, tc.major)
			}
			// Without it, the URL's host:port.
			ws2, resp, err := d.DialWebSocket(ctx(t), e.url(true))
			if err != nil {
				t.Fatal(err)
			}
			defer ws2.CloseNow()
			if want := host + ":" + itoa(e.port); resp.Header.Get("X-Host") != want {
				t.Errorf("server saw Host %q, want %q", resp.Header.Get("X-Host"), want)
			}
		})
	}
	e := newEnv(t, true, serve, closed)
	_, _, err := e.dialer().DialWebSocket(ctx(t), e.url(true), dialer.WithHeader(http.Header{"Host": {"bad host\r\n"}}))
	var de *dialer.DialError
	if !errors.As(err, &de) || de.Stage != "url" {
		t.Errorf("invalid Host: %v; want a url-stage DialError", err)
	}
}

// TestConnectStatusLadder: when a server whose SETTINGS enabled extended
// CONNECT answers the CONNECT with a status that blames the protocol path,
// the WebSocket steps down to HTTP/1.1 and the next dial goes there
// directly; an application's answer stays ErrRejected with the response.
func TestConnectStatusLadder(t *testing.T) {
	for _, status := range []int{400, 405, 421, 501, 505} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t, true, serve, closed)
			e.dns.A(host, "127.0.0.1")
			d := e.dialer(dialer.WithHeader(http.Header{"X-Connect-Status": {strconv.Itoa(status)}}))
			defer d.CloseIdleConnections()
			for i := range 2 {
				ws, resp, err := d.DialWebSocket(ctx(t), e.url(true))
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				ws.CloseNow()
				if resp.ProtoMajor != 1 {
					t.Errorf("dial %d over HTTP/%d, want 1", i, resp.ProtoMajor)
				}
			}
			// The first dial: one h2 connection refused, one h1; the
			// second: h1 straight away.
			if n := e.v4.Accepted(); n != 3 {
				t.Errorf("%d TCP connections, want 3 (h2 refused, h1, h1)", n)
			}
		})
	}
	// On a pooled h2 connection too: the dial after a 400 on the shared
	// connection steps down.
	t.Run("pooled", func(t *testing.T) {
		e := newEnv(t, true, serve, closed)
		e.dns.A(host, "127.0.0.1")
		d := e.dialer()
		defer d.CloseIdleConnections()
		ws, resp, err := d.DialWebSocket(ctx(t), e.url(true))
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("first dial: %v", err)
		}
		defer ws.CloseNow()
		ws2, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithHeader(http.Header{"X-Connect-Status": {"400"}}))
		if err != nil {
			t.Fatal(err)
		}
		ws2.CloseNow()
		if resp.ProtoMajor != 1 {
			t.Errorf("after a 400 on the pooled h2 connection: HTTP/%d, want 1", resp.ProtoMajor)
		}
	})
	for _, status := range []int{401, 403, 404, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t, true, serve, closed)
			e.dns.A(host, "127.0.0.1")
			d := e.dialer(dialer.WithHeader(http.Header{"X-Connect-Status": {strconv.Itoa(status)}}))
			defer d.CloseIdleConnections()
			_, resp, err := d.DialWebSocket(ctx(t), e.url(true))
			if !errors.Is(err, dialer.ErrRejected) || resp == nil || resp.StatusCode != status || resp.ProtoMajor != 2 {
				var got any = resp
				if resp != nil {
					got = resp.Status
				}
				t.Errorf("%v (response %v); want ErrRejected with the HTTP/2 %d response", err, got, status)
			}
		})
	}
}

// TestResolve: Resolve returns what a dial sees, from the same cache: a dial
// after it sends no query of its own; a name without records is
// ErrNoAddress with each query's error; silence is a timeout.
func TestResolve(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	e.dns.HTTPS(host, "1 . alpn=h2 port="+itoa(e.port))
	d := e.dialer()
	defer d.CloseIdleConnections()
	// With the URL's port, as the dial asks: its HTTPS query is
	// _PORT._https.host (RFC 9460 §9.1).
	res, err := d.Resolve(ctx(t), net.JoinHostPort(host, itoa(e.port)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.A.Addrs) != 1 || len(res.AAAA.Addrs) != 1 || len(res.HTTPS.Services) != 1 ||
		!slices.Equal(res.HTTPS.Services[0].ALPN, []string{"h2", "http/1.1"}) || res.HTTPS.Services[0].Port != uint16(e.port) {
		t.Fatalf("resolution %+v", res)
	}
	before := e.dns.Total()
	ws, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseNow()
	if n := e.dns.Total() - before; n != 0 {
		t.Errorf("the dial after Resolve sent %d queries, want 0 (one cache)", n)
	}
	// An IP literal needs no DNS.
	if res, err := d.Resolve(ctx(t), "::1"); err != nil || len(res.AAAA.Addrs) != 1 || e.dns.Total() != before {
		t.Errorf("literal: %+v, %v", res, err)
	}
	_, err = d.Resolve(ctx(t), "nowhere.example.test")
	var de *dialer.DialError
	if !errors.Is(err, dialer.ErrNoAddress) || !errors.As(err, &de) || len(de.DNS) != 3 || de.Timeout() {
		t.Errorf("missing name: %v", err)
	}
	// A server that never answers: a timeout.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_, err = dialer.New(dialer.WithNameservers(silent.LocalAddr().String()), dialer.WithHostsFile("-"),
		dialer.WithTimeout(300*time.Millisecond)).Resolve(context.Background(), host)
	if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("silent server: %v; want a net.Error timeout", err)
	}
}

// TestPooledRespectsProtocols: a per-call WithProtocols holds even when the
// Dialer has a live connection of another version to the origin.
func TestPooledRespectsProtocols(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(h3, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	d := e.dialer()
	defer d.CloseIdleConnections()
	for _, tc := range []struct {
		protos []string
		major  int
	}{{nil, 3}, {[]string{"h2"}, 2}, {[]string{"h1"}, 1}, {[]string{"h3"}, 3}, {[]string{"h2"}, 2}} {
		var opts []dialer.Option
		if tc.protos != nil {
			opts = append(opts, dialer.WithProtocols(tc.protos...))
		}
		ws, resp, err := d.DialWebSocket(ctx(t), e.url(true), opts...)
		if err != nil {
			t.Fatalf("%v: %v", tc.protos, err)
		}
		defer ws.CloseNow()
		if resp.ProtoMajor != tc.major {
			t.Errorf("WithProtocols(%v): over HTTP/%d, want %d", tc.protos, resp.ProtoMajor, tc.major)
		}
	}
	if n := e.v4.Accepted(); n != 2 {
		t.Errorf("%d TCP connections, want 2 (h2 once, then reused; h1)", n)
	}
}
