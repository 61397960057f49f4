package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// httpURL is a plain HTTP endpoint by name.
func (e *env) httpURL(path string) string {
	return "https://" + host + ":" + itoa(e.port) + path
}

// client returns an http.Client on a Transport of e's Dialer, closed when
// the test ends, and the last race report.
func (e *env) client(t *testing.T, opts ...dialer.Option) (*http.Client, *dialer.Transport, func() *dialer.Report) {
	var mu sync.Mutex
	var last *dialer.Report
	opts = append(opts, dialer.WithReport(func(r *dialer.Report) { mu.Lock(); last = r; mu.Unlock() }))
	tr := e.dialer(opts...).Transport()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr, func() *dialer.Report { mu.Lock(); defer mu.Unlock(); return last }
}

// get fetches url and returns the body.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestTransportProtocols: the Transport speaks what the origin offers: h3
// when the HTTPS record advertises it, else h2, else HTTP/1.1; two requests
// in a row share one connection.
func TestTransportProtocols(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tcp   family
		udp   udpMode
		major int
	}{{"h3", serve, h3, 3}, {"h2", serve, noUDP, 2}, {"h1", serveH1, noUDP, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			if tc.udp == h3 {
				e.dns.HTTPS(host, "1 . alpn=h3,h2")
			}
			c, _, _ := e.client(t)
			for i := range 2 {
				resp, body := get(t, c, e.httpURL("/proto"))
				if resp.ProtoMajor != tc.major || body != strconv.Itoa(tc.major) {
					t.Errorf("request %d: HTTP/%d, server saw %s, want %d", i, resp.ProtoMajor, body, tc.major)
				}
			}
			accepted := 0
			if tc.udp == h3 {
				accepted = e.h3v4.Accepted()
			} else {
				accepted = e.v4.Accepted()
			}
			if accepted != 1 {
				t.Errorf("server accepted %d connections for two requests, want 1", accepted)
			}
		})
	}
}

// TestTransportConcurrentH2: 100 concurrent requests to an h2 origin share
// one connection.
func TestTransportConcurrentH2(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	c, _, _ := e.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, e.httpURL("/proto"), nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "2" {
				errs <- errors.New("not HTTP/2: " + string(b))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.v4.Accepted(); n != 1 {
		t.Errorf("100 concurrent requests used %d connections, want 1", n)
	}
}

// TestTransportUDPBlackholed: h3 advertised, UDP blackholed: h2 answers,
// its attempt one attempt delay after QUIC's.
func TestTransportUDPBlackholed(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(udpBlackhole, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	c, _, last := e.client(t)
	resp, _ := get(t, c, e.httpURL("/proto"))
	rep := last()
	if resp.ProtoMajor != 2 || len(rep.Attempts) != 2 || rep.Attempts[0].Proto != "h3" {
		t.Fatalf("HTTP/%d, want h2 after a QUIC attempt\n%s", resp.ProtoMajor, rep)
	}
	if gap := rep.Attempts[1].Start - rep.Attempts[0].Start; gap < 240*time.Millisecond || gap > 450*time.Millisecond {
		t.Errorf("TCP started %v after QUIC, want about 250ms\n%s", gap, rep)
	}
}

// TestTransportIPv6Blackholed: IPv6 drops SYNs; IPv4 answers.
func TestTransportIPv6Blackholed(t *testing.T) {
	e := newEnv(t, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	c, _, last := e.client(t)
	get(t, c, e.httpURL("/proto"))
	rep := last()
	if rep.Winner != 1 || rep.Attempts[1].Family != "IPv4" {
		t.Errorf("want IPv4 to win after IPv6\n%s", rep)
	}
}

// TestTransportH3ConnectionClosed: the server drops the pooled h3
// connection; the next request still succeeds.
func TestTransportH3ConnectionClosed(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(h3, noUDP)
	e.dns.A(host, "127.0.0.1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	c, _, _ := e.client(t)
	if resp, _ := get(t, c, e.httpURL("/proto")); resp.ProtoMajor != 3 {
		t.Fatalf("HTTP/%d, want 3", resp.ProtoMajor)
	}
	e.h3v4.CloseConnections()
	if resp, body := get(t, c, e.httpURL("/proto")); body != strconv.Itoa(resp.ProtoMajor) {
		t.Fatalf("second request: %q over HTTP/%d", body, resp.ProtoMajor)
	}
}

// TestTransportCancelMidBody: cancelling the request's context while the
// body streams ends the read promptly.
func TestTransportCancelMidBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		tcp  family
	}{{"h2", serve}, {"h1", serveH1}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.dns.A(host, "127.0.0.1")
			c, _, _ := e.client(t)
			rctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.httpURL("/slow?n=100"), nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 8)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil {
				t.Fatalf("body read to the end (%d more bytes) despite the cancellation", n)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("read ended %v after the cancel was scheduled", d)
			}
		})
	}
}

// TestTransportTrace: httptrace callbacks fire in order from the race.
func TestTransportTrace(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	c, _, _ := e.client(t)
	var mu sync.Mutex
	var events []string
	add := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	trace := &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { add("dns-start") },
		DNSDone:           func(i httptrace.DNSDoneInfo) { add("dns-done " + strconv.Itoa(len(i.Addrs))) },
		ConnectStart:      func(n, a string) { add("connect-start " + n) },
		ConnectDone:       func(n, a string, err error) { add("connect-done " + n) },
		TLSHandshakeStart: func() { add("tls-start") },
		TLSHandshakeDone: func(s tls.ConnectionState, err error) {
			add("tls-done " + s.NegotiatedProtocol)
		},
		GotConn: func(i httptrace.GotConnInfo) { add("got-conn reused=" + strconv.FormatBool(i.Reused)) },
	}
	for range 2 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx(t), trace), http.MethodGet, e.httpURL("/proto"), nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	want := "dns-start, dns-done 1, connect-start tcp, connect-done tcp, tls-start, tls-done h2, got-conn reused=false, got-conn reused=true"
	if got := strings.Join(events, ", "); got != want {
		t.Errorf("trace\n got %s\nwant %s", got, want)
	}
}

// TestTransportCompat: what users rely on in http.Transport: redirects,
// request bodies, trailers, gzip and Expect: 100-continue, over h1, h2 and
// h3.
func TestTransportCompat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tcp   family
		udp   udpMode
		major int
	}{{"h1", serveH1, noUDP, 1}, {"h2", serve, noUDP, 2}, {"h3", serve, h3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			e.dns.HTTPS(host, "1 . alpn=h3,h2")
			c, _, _ := e.client(t)
			if resp, body := get(t, c, e.httpURL("/redirect")); body != strconv.Itoa(tc.major) || resp.Request.URL.Path != "/proto" {
				t.Errorf("redirect: %q at %s", body, resp.Request.URL)
			}
			payload := bytes.Repeat([]byte("body"), 50000)
			req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, e.httpURL("/echo-body"), bytes.NewReader(payload))
			req.Header.Set("Expect", "100-continue")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, payload) {
				t.Errorf("POST body echoed %d bytes, want %d", len(got), len(payload))
			}
			resp, body := get(t, c, e.httpURL("/trailer"))
			if body != "body" || resp.Trailer.Get("X-Sum") != "42" {
				t.Errorf("trailer: body %q, X-Sum %q", body, resp.Trailer.Get("X-Sum"))
			}
			resp, body = get(t, c, e.httpURL("/gzip"))
			if body != "compressed hello" || !resp.Uncompressed {
				t.Errorf("gzip: %q, Uncompressed=%v", body, resp.Uncompressed)
			}
		})
	}
}

// TestTransportAltSvc: an h2 answer with Alt-Svc h3 makes the next
// connection race QUIC, without any HTTPS record.
func TestTransportAltSvc(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.quic(h3, noUDP)
	e.dns.A(host, "127.0.0.1")
	c, tr, last := e.client(t)
	resp, _ := get(t, c, e.httpURL("/proto?altsvc="+url.QueryEscape(`h3=":`+itoa(e.port)+`"; ma=60`)))
	if resp.ProtoMajor != 2 {
		t.Fatalf("first request HTTP/%d, want 2", resp.ProtoMajor)
	}
	tr.CloseIdleConnections()
	if resp, _ := get(t, c, e.httpURL("/proto")); resp.ProtoMajor != 3 {
		t.Errorf("after Alt-Svc: HTTP/%d, want 3\n%s", resp.ProtoMajor, last())
	}
}

// TestTransportSharesWithWebSocket: a WebSocket dialed with the Transport's
// Dialer rides the h2 connection the Transport opened.
func TestTransportSharesWithWebSocket(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	c, tr, _ := e.client(t)
	get(t, c, e.httpURL("/proto"))
	ws, resp, err := tr.Dialer().DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("WebSocket over HTTP/%d, want the h2 connection", resp.ProtoMajor)
	}
	closeConn(t, ws)
	if n := e.v4.Accepted(); n != 1 {
		t.Errorf("%d connections, want 1 shared", n)
	}
}

// TestTransportPlainHTTP: http:// goes over raced TCP.
func TestTransportPlainHTTP(t *testing.T) {
	e := newEnv(t, false, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	c, _, _ := e.client(t)
	if resp, body := get(t, c, "http://"+host+":"+itoa(e.port)+"/proto"); resp.ProtoMajor != 1 || body != "1" {
		t.Errorf("HTTP/%d %q", resp.ProtoMajor, body)
	}
}

// TestTransportProxy: a request through an HTTP CONNECT proxy reaches the
// origin; the proxy resolves names with the test DNS server.
func TestTransportProxy(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	var connects atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		connects.Add(1)
		up, err := d.DialContext(r.Context(), "tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		w.WriteHeader(http.StatusOK)
		down, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer down.Close()
		// Plain copies: io.Copy between two TCP sockets would splice(2)
		// through a pipe pair that Go caches for the process, which the
		// descriptor check would count as a leak.
		go func() { io.Copy(struct{ io.Writer }{up}, rw); up.Close() }()
		io.Copy(struct{ io.Writer }{down}, up)
	}))
	defer proxy.Close()
	defer d.CloseIdleConnections()
	pu, _ := url.Parse(proxy.URL)
	c, tr, _ := e.client(t, dialer.WithProxy(http.ProxyURL(pu)))
	resp, body := get(t, c, e.httpURL("/proto"))
	if body != strconv.Itoa(resp.ProtoMajor) || connects.Load() != 1 {
		t.Errorf("through the proxy: %q over HTTP/%d, %d CONNECTs", body, resp.ProtoMajor, connects.Load())
	}
	tr.CloseIdleConnections()
}
