package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

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
// when [::1] drops SYNs and 127.0.0.1 serves, both resolving the name
// through the same test DNS server: coder/websocket over Go's net.Dialer
// (fallback delay 300 ms, nothing learned), this dialer's first dial (a
// new Dialer each time: attempt delay 250 ms), and a repeat dial from a
// Dialer that has dialed before on this network (issue 16: IPv6 went
// silent, IPv4 goes first), to the same origin and to a new one. ms/dial
// counts the dial alone; every dial races (pooled connections are closed).
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
		tr := &http.Transport{DialContext: nd.DialContext, TLSClientConfig: e.ca.ClientConfig()}
		client := &http.Client{Transport: tr}
		benchDials(b, func() (func(), error) {
			c, _, err := websocket.Dial(context.Background(), e.url(true), &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				return nil, err
			}
			return func() { c.CloseNow(); tr.CloseIdleConnections() }, nil
		})
	})
	learnBenches(b, e, nil)
}

// BenchmarkLearnUDPBlocked measures the time to a ready WebSocket from a
// dual-stack origin whose HTTPS record says h3,h2 while UDP is blackholed
// on both families: this dialer's first dial (QUIC over IPv6, then TCP
// over IPv4 one attempt delay later, the diagonal order), and repeat dials
// from a Dialer that learned QUIC is silent here (issue 16), to the same
// origin and to a new one; against a plain h2 dial (an origin without
// HTTPS record: TCP only) and coder/websocket over HTTP/1.1.
func BenchmarkLearnUDPBlocked(b *testing.B) {
	e := newEnv(b, true, serve, serve)
	e.quic(udpBlackhole, udpBlackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	e.dns.HTTPS(host, "1 . alpn=h3,h2")
	const plain = "plain.example.test"
	e.dns.A(plain, "127.0.0.1")
	e.dns.AAAA(plain, "::1")
	b.Run("coder-h1", func(b *testing.B) {
		tr := &http.Transport{TLSClientConfig: e.ca.ClientConfig()}
		client := &http.Client{Transport: tr}
		url := "wss://127.0.0.1:" + itoa(e.port) + "/echo"
		benchDials(b, func() (func(), error) {
			c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				return nil, err
			}
			return func() { c.CloseNow(); tr.CloseIdleConnections() }, nil
		})
	})
	b.Run("dialer-plain-h2", func(b *testing.B) {
		d := e.dialer()
		url := "wss://" + plain + ":" + itoa(e.port) + "/echo"
		benchDials(b, func() (func(), error) { return wsDial(d, url) })
	})
	learnBenches(b, e, func(name string) { e.dns.HTTPS(name, "1 . alpn=h3,h2") })
}

// learnBenches runs the first and repeat dials of a fault (see
// BenchmarkFallbackIPv6Blackholed) on e's servers. setup adds a new
// origin's records beyond A and AAAA.
func learnBenches(b *testing.B, e *env, setup func(name string)) {
	url := func(name string) string { return "wss://" + name + ":" + itoa(e.port) + "/echo" }
	b.Run("dialer-first", func(b *testing.B) {
		benchDials(b, func() (func(), error) { return wsDial(e.dialer(), url(host)) })
	})
	b.Run("dialer-repeat-same-origin", func(b *testing.B) {
		d := e.dialer()
		if done, err := wsDial(d, url(host)); err == nil {
			done() // learns
		}
		benchDials(b, func() (func(), error) { return wsDial(d, url(host)) })
	})
	b.Run("dialer-repeat-new-origin", func(b *testing.B) {
		d := e.dialer()
		if done, err := wsDial(d, url(host)); err == nil {
			done()
		}
		n := 0
		benchDials(b, func() (func(), error) {
			n++
			name := fmt.Sprintf("n%d-%s", n, host) // under *.example.test
			e.dns.A(name, "127.0.0.1")
			e.dns.AAAA(name, "::1")
			if setup != nil {
				setup(name)
			}
			return wsDial(d, url(name))
		})
	})
}

// wsDial dials a WebSocket with d and returns what closes it and d's
// pooled connections.
func wsDial(d *dialer.Dialer, url string) (func(), error) {
	c, _, err := d.DialWebSocket(context.Background(), url)
	if err != nil {
		return nil, err
	}
	return func() { c.CloseNow(); d.CloseIdleConnections() }, nil
}

// benchDials runs dial b.N times, closing what each opened, and reports
// the mean time of the dials alone in ms/dial.
func benchDials(b *testing.B, dial func() (done func(), err error)) {
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		done, err := dial()
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		done()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/dial")
}
