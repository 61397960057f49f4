package integration

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// BenchmarkDialWebSocket measures the time to a ready wss:// WebSocket on
// loopback, by IP literal: coder/websocket.Dial over HTTP/1.1 (the
// baseline) against this dialer over HTTP/1.1, HTTP/2 and HTTP/3, on a fresh
// connection each time and as a new stream on a pooled connection. Run it
// with added loopback latency to count round trips (see README).
func BenchmarkDialWebSocket(b *testing.B) {
	h1 := newEnv(b, true, serveH1, closed)
	e := newEnv(b, true, serve, closed)
	e.quic(h3, noUDP)
	h1URL := "wss://127.0.0.1:" + itoa(h1.port) + "/echo"
	url := "wss://127.0.0.1:" + itoa(e.port) + "/echo"
	dial := func(b *testing.B, d *dialer.Dialer, url string, fresh bool, opts ...dialer.Option) {
		for b.Loop() {
			c, _, err := d.DialWebSocket(context.Background(), url, opts...)
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
			if fresh {
				d.CloseIdleConnections()
			}
		}
		d.CloseIdleConnections()
	}
	b.Run("coder-h1", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: h1.ca.ClientConfig()}}
		for b.Loop() {
			c, _, err := websocket.Dial(context.Background(), h1URL, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
		}
	})
	b.Run("dialer-h1", func(b *testing.B) { dial(b, h1.dialer(), h1URL, true) })
	b.Run("dialer-h2-fresh", func(b *testing.B) { dial(b, e.dialer(), url, true, dialer.WithProtocols("h2", "h1")) })
	b.Run("dialer-h2-reuse", func(b *testing.B) { dial(b, e.dialer(), url, false, dialer.WithProtocols("h2", "h1")) })
	b.Run("dialer-h3-fresh", func(b *testing.B) { dial(b, e.dialer(), url, true, dialer.WithProtocols("h3")) })
	b.Run("dialer-h3-reuse", func(b *testing.B) { dial(b, e.dialer(), url, false, dialer.WithProtocols("h3")) })
}

// BenchmarkFallbackIPv6Blackholed measures the time to a ready WebSocket
// when [::1] drops SYNs and 127.0.0.1 serves: this dialer (attempt delay
// 250 ms) against coder/websocket over Go's net.Dialer (fallback delay
// 300 ms), both resolving the name through the same test DNS server.
func BenchmarkFallbackIPv6Blackholed(b *testing.B) {
	e := newEnv(b, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	b.Run("coder+net.Dialer", func(b *testing.B) {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, e.dns.Addr())
		}}
		nd := &net.Dialer{Resolver: res}
		client := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, TLSClientConfig: e.ca.ClientConfig()}}
		for b.Loop() {
			c, _, err := websocket.Dial(context.Background(), e.url(true), &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dial")
	})
	b.Run("dialer", func(b *testing.B) {
		d := e.dialer()
		for b.Loop() {
			c, _, err := d.DialWebSocket(context.Background(), e.url(true))
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
			d.CloseIdleConnections() // a fresh race each time
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dial")
	})
}
