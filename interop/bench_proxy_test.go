package interop

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// BenchmarkProxiedWebSocket measures the time to a ready wss:// WebSocket
// through Squid (HTTP CONNECT) and through Dante (SOCKS5, socks5h) to the
// proxy world's origin (h2 with RFC 8441, and http/1.1), three ways in
// turn in every iteration so that all three see the same machine load:
//
//   - fresh: this library with a new Dialer: a tunnel, TLS with ALPN h2
//     inside it, SETTINGS, an extended CONNECT;
//   - learned: this library with a Dialer that has dialed before: a new
//     stream on its live h2 connection through the tunnel;
//   - coder: coder/websocket.Dial with an http.Client whose Transport has
//     the same proxy (a tunnel, TLS, an HTTP/1.1 upgrade), the baseline.
//
// Both are given the proxy by IP (127.0.0.1): net/http would resolve a
// proxy name with the machine's resolver, which the tests never use. It
// reports each in ms/dial and the ratios fresh/coder and learned/coder;
// ns/op is the sum of the three.
func BenchmarkProxiedWebSocket(b *testing.B) {
	for _, kind := range []string{"squid", "dante"} {
		b.Run(kind, func(b *testing.B) {
			pw := newProxyWorld(b)
			var px *runningProxy
			var u *url.URL
			if kind == "squid" {
				r := &row{p: squidPeer, what: "benchmark"}
				lookup(b, r)
				px = startSquid(b, pw, r, squidOptions{})
				u = px.url("http", "127.0.0.1", "", "")
			} else {
				r := &row{p: dantePeer, what: "benchmark"}
				lookup(b, r)
				px = startDante(b, pw, r, danteOptions{})
				u = px.url("socks5h", "127.0.0.1", "", "")
			}
			target := wsURL(pw.origin, originName)
			learned := pw.dialer(u)
			proxiedDial(b, learned, target) // opens the h2 connection through the tunnel
			tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: pw.ca.ClientConfig()}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var fresh, warm, coder time.Duration
			for b.Loop() {
				start := time.Now()
				d := dialer.New(pw.options(u)...)
				proxiedDial(b, d, target)
				d.CloseIdleConnections()
				fresh += time.Since(start)

				start = time.Now()
				proxiedDial(b, learned, target)
				warm += time.Since(start)

				start = time.Now()
				c, resp, err := websocket.Dial(context.Background(), target, &websocket.DialOptions{HTTPClient: client})
				if err != nil {
					b.Fatalf("coder/websocket through %s: %v", kind, err)
				}
				c.CloseNow()
				coder += time.Since(start)
				if resp.ProtoMajor != 1 {
					b.Fatalf("coder/websocket over HTTP/%d", resp.ProtoMajor)
				}
			}
			n := float64(b.N)
			ms := func(d time.Duration) float64 { return float64(d) / n / float64(time.Millisecond) }
			b.ReportMetric(ms(fresh), "fresh-ms/dial")
			b.ReportMetric(ms(warm), "learned-ms/dial")
			b.ReportMetric(ms(coder), "coder-ms/dial")
			b.ReportMetric(float64(fresh)/float64(coder), "fresh/coder")
			b.ReportMetric(float64(warm)/float64(coder), "learned/coder")
		})
	}
}

// proxiedDial dials one WebSocket with d, checks that HTTP/2 carries it,
// and closes it at once.
func proxiedDial(b *testing.B, d *dialer.Dialer, url string) {
	b.Helper()
	c, resp, err := d.DialWebSocket(context.Background(), url)
	if err != nil {
		b.Fatalf("dialer: %v", err)
	}
	c.CloseNow()
	if resp.ProtoMajor != 2 {
		b.Fatalf("WebSocket over HTTP/%d, want HTTP/2", resp.ProtoMajor)
	}
}
