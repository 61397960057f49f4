package interop

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// readyServer is a server that BenchmarkReadyWebSocket dials.
type readyServer struct {
	name string
	p    peer // zero for Go's server
	// start starts the server in w and returns its TLS port on 127.0.0.1,
	// which serves the echo at /echo.
	start func(tb testing.TB, w *world, r *row) int
	major int // the HTTP version this library's WebSocket must reach
	// h2Only: no http/1.1, so coder/websocket cannot dial it.
	h2Only bool
}

func readyServers() []readyServer {
	return []readyServer{
		{name: "go-net/http", major: 2, start: func(tb testing.TB, w *world, _ *row) int { return startGoServer(tb, w) }},
		{name: "apache", p: apache, major: 2, start: func(tb testing.TB, w *world, r *row) int { return startApache(tb, w, r).port }},
		{name: "haproxy", p: haproxy, major: 2, start: func(tb testing.TB, w *world, r *row) int {
			return startHAProxy(tb, w, r, false).port
		}},
		{name: "haproxy-no8441", p: haproxy, major: 1, start: func(tb testing.TB, w *world, r *row) int {
			return startHAProxy(tb, w, r, true).port
		}},
		{name: "nginx", p: nginx, major: 1, start: func(tb testing.TB, w *world, r *row) int {
			_, p, _ := startNginx(tb, w, r)
			return p
		}},
		{name: "h2o", p: h2o, major: 1, start: func(tb testing.TB, w *world, r *row) int {
			_, p, _ := startH2O(tb, w, r)
			return p
		}},
		{name: "caddy", p: caddy, major: 1, start: func(tb testing.TB, w *world, r *row) int { return startCaddy(tb, w, r).port }},
		{name: "node", p: node, major: 2, h2Only: true, start: func(tb testing.TB, w *world, r *row) int {
			_, _, p := startNode(tb, w, r)
			return p
		}},
	}
}

// BenchmarkReadyWebSocket measures, against each server on loopback, the
// time to a ready wss:// WebSocket by IP literal, three ways in turn in
// every iteration, so that all three see the same machine load:
//
//   - fresh: this library with a new Dialer (no pooled connection, nothing
//     learned): h2 where the server has RFC 8441, else the ladder down to
//     http/1.1 (a closed h2 connection first);
//   - learned: this library with a Dialer that has dialed the origin
//     before: a stream on its live h2 connection, or straight to
//     http/1.1 where it learned that h2 lacks extended CONNECT;
//   - coder: coder/websocket.Dial over http/1.1 on the same URL, the
//     baseline.
//
// It reports each in ms/dial and the ratios fresh/coder and
// learned/coder; ns/op is the sum of the three.
func BenchmarkReadyWebSocket(b *testing.B) {
	for _, s := range readyServers() {
		b.Run(s.name, func(b *testing.B) {
			if s.p.bin != "" {
				lookup(b, &row{p: s.p, what: "benchmark"})
			}
			r := &row{p: s.p, path: s.p.path()}
			w := newWorld(b)
			url := "wss://127.0.0.1:" + itoa(s.start(b, w, r)) + "/echo"
			learned := w.dialer()
			readyDial(b, s, learned, url) // learns, and opens the h2 connection
			tr := &http.Transport{TLSClientConfig: w.ca.ClientConfig()}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var fresh, warm, coder time.Duration
			for b.Loop() {
				start := time.Now()
				d := dialer.New(w.options(nil)...)
				readyDial(b, s, d, url)
				d.CloseIdleConnections()
				fresh += time.Since(start)

				start = time.Now()
				readyDial(b, s, learned, url)
				warm += time.Since(start)

				if s.h2Only {
					continue
				}
				start = time.Now()
				c, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPClient: client})
				if err != nil {
					b.Fatalf("coder/websocket: %v", err)
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
			if !s.h2Only {
				b.ReportMetric(ms(coder), "coder-ms/dial")
				b.ReportMetric(float64(fresh)/float64(coder), "fresh/coder")
				b.ReportMetric(float64(warm)/float64(coder), "learned/coder")
			}
		})
	}
}

// readyDial dials one WebSocket with d, checks the HTTP version that
// carries it, and closes it at once.
func readyDial(b *testing.B, s readyServer, d *dialer.Dialer, url string) {
	b.Helper()
	c, resp, err := d.DialWebSocket(context.Background(), url)
	if err != nil {
		b.Fatalf("dialer: %v", err)
	}
	c.CloseNow()
	if resp.ProtoMajor != s.major {
		b.Fatalf("WebSocket over HTTP/%d, want HTTP/%d", resp.ProtoMajor, s.major)
	}
}
