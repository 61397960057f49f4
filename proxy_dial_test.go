package dialer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// proxyDialer is a Dialer for dials through the proxy at raw, whose host
// is an IP literal: no DNS is asked (the nameserver is a closed loopback
// port, in case).
func proxyDialer(t *testing.T, raw string) (*Dialer, *[]*Report) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	reps := new([]*Report)
	d := New(WithProxy(http.ProxyURL(u)), WithNameservers("127.0.0.1:1"), WithHostsFile("-"),
		WithTimeout(5*time.Second), WithReport(func(r *Report) { *reps = append(*reps, r) }))
	t.Cleanup(d.CloseIdleConnections)
	return d, reps
}

// TestDialProxyRefuses: a proxy that refuses the tunnel fails the dial at
// stage "proxy" with its status, the proxy named (password redacted),
// and the Report shows the hop.
func TestDialProxyRefuses(t *testing.T) {
	for _, status := range []int{407, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			p := startPeer(t, func(c net.Conn, read func(int) []byte) {
				readHead(read)
				fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", status, http.StatusText(status))
			})
			d, reps := proxyDialer(t, "http://alice:s3cret@"+p.ln.Addr().String())
			_, _, err := d.DialWebSocket(context.Background(), "wss://origin.test/chat")
			var de *DialError
			var pe *ProxyError
			if !errors.As(err, &de) || !errors.Is(err, ErrProxy) || !errors.As(err, &pe) {
				t.Fatalf("error %v: want a DialError matching ErrProxy", err)
			}
			if de.Stage != "proxy" || pe.StatusCode != status || de.Proxy != "http://alice:xxxxx@"+p.ln.Addr().String() {
				t.Errorf("stage %q, status %d, proxy %q", de.Stage, pe.StatusCode, de.Proxy)
			}
			if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), fmt.Sprint(status)) {
				t.Errorf("error %q shows the password or lacks the status", err)
			}
			if !strings.Contains(p.sent(), "CONNECT origin.test:443 HTTP/1.1\r\n") {
				t.Errorf("the proxy got %q", p.sent())
			}
			if len(*reps) != 1 || (*reps)[0].Proxy == nil || (*reps)[0].Proxy.Target != "origin.test:443" {
				t.Fatalf("reports %v: want one with the proxy hop", *reps)
			}
			if s := (*reps)[0].String(); !strings.Contains(s, "proxy http://alice:xxxxx@") || strings.Contains(s, "s3cret") {
				t.Errorf("waterfall:\n%s", s)
			}
		})
	}
}

// TestDialProxyClosesAfterConnect: a proxy that answers 200 and closes
// fails the dial inside the tunnel: the origin's side, not ErrProxy.
func TestDialProxyClosesAfterConnect(t *testing.T) {
	p := startPeer(t, func(c net.Conn, read func(int) []byte) {
		readHead(read)
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	})
	d, reps := proxyDialer(t, "http://"+p.ln.Addr().String())
	_, _, err := d.DialWebSocket(context.Background(), "wss://origin.test/")
	var de *DialError
	if !errors.As(err, &de) || de.Stage != "connect" || errors.Is(err, ErrProxy) {
		t.Fatalf("error %v: want stage connect, not ErrProxy", err)
	}
	if !strings.Contains(err.Error(), "origin origin.test:443 through proxy http://127.0.0.1") {
		t.Errorf("error %q does not say the origin failed through the proxy", err)
	}
	if r := (*reps)[0]; r.Proxy == nil || len(r.Attempts) != 1 || r.Attempts[0].Outcome != "failed" {
		t.Errorf("report:\n%s", r)
	}
}

// TestDialProxyUnreachable: a proxy whose port refuses fails the dial at
// stage "proxy", Op "connect".
func TestDialProxyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d, _ := proxyDialer(t, "socks5h://"+addr)
	_, _, err = d.DialWebTransport(context.Background(), "https://origin.test/wt")
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.Op != "connect" || !strings.Contains(err.Error(), "via proxy socks5h://"+addr+": proxy failed") {
		t.Fatalf("error %v: want the proxy's connect failing", err)
	}
}

// TestDialProxyH3Only: a dial held to HTTP/3 cannot go through a proxy.
func TestDialProxyH3Only(t *testing.T) {
	d, _ := proxyDialer(t, "http://127.0.0.1:9")
	_, _, err := d.DialWebTransport(context.Background(), "https://origin.test/wt", WithProtocols("h3"))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "QUIC not offered: proxied") {
		t.Fatalf("error %v: want ErrUnsupported saying QUIC is not offered through a proxy", err)
	}
}

// TestDialContextProxy: DialContext tunnels only with WithProxy, and its
// connection is the tunnel.
func TestDialContextProxy(t *testing.T) {
	p := startPeer(t, func(c net.Conn, read func(int) []byte) {
		readHead(read)
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
		c.Write(read(4)) // echo
	})
	d, reps := proxyDialer(t, "socks5h://127.0.0.1:1") // not this one: the function picks
	d.base.proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Scheme != "https" || r.URL.Host != "origin.test:443" {
			return nil, fmt.Errorf("asked about %s", r.URL)
		}
		return url.Parse("http://" + p.ln.Addr().String())
	}
	c, err := d.DialContext(context.Background(), "tcp", "origin.test:443")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "ping")
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Errorf("tunnel echo %q, %v", b, err)
	}
	if r := (*reps)[0]; r.Kind != "tcp" || r.Proxy == nil || r.Proxy.Note != "" || r.Attempts[r.Winner].ProxyStatus != 200 {
		t.Errorf("report:\n%s", r)
	}
}
