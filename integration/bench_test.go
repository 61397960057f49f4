package integration

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"
)

// BenchmarkDialWebSocket measures the time to a ready wss:// WebSocket on
// loopback: coder/websocket.Dial (the baseline) against this dialer, by IP
// literal and by name (DNS answers cached by the Dialer after the first).
func BenchmarkDialWebSocket(b *testing.B) {
	e := newEnv(b, true, serve, serve)
	e.dns.A(host, "127.0.0.1")
	literal := "wss://127.0.0.1:" + itoa(e.port) + "/echo"
	b.Run("coder", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.ca.ClientConfig()}}
		for b.Loop() {
			c, _, err := websocket.Dial(context.Background(), literal, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
		}
	})
	d := e.dialer()
	b.Run("dialer/literal", func(b *testing.B) {
		for b.Loop() {
			c, _, err := d.DialWebSocket(context.Background(), literal)
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
		}
	})
	b.Run("dialer/name", func(b *testing.B) {
		for b.Loop() {
			c, _, err := d.DialWebSocket(context.Background(), e.url(true))
			if err != nil {
				b.Fatal(err)
			}
			c.CloseNow()
		}
	})
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
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dial")
	})
}
