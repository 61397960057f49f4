package interop

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// rttBenchOneWay is BenchmarkRoundTrips' one-way delay: a 20 ms round trip.
const rttBenchOneWay = 10 * time.Millisecond

// rttTestOneWay is TestRoundTrips' one-way delay: a 40 ms round trip, long
// enough that TLS crypto, the servers' work and scheduling under -race
// stay well below half a round trip.
const rttTestOneWay = 20 * time.Millisecond

// rttTries is how often TestRoundTrips dials each case; it keeps the
// fastest dial, since scheduling and the race detector only ever add time.
const rttTries = 5

// rttServer is a WebSocket server with RFC 8441 on h2 whose round trips
// are counted: Go's net/http (the library's own test server) or an
// independent one.
type rttServer struct {
	name string
	p    peer // zero for Go's server
	// start starts the server in w and returns its TLS port on 127.0.0.1,
	// which serves /echo over h2 (extended CONNECT) and http/1.1.
	start func(tb testing.TB, w *world, r *row) int
	// min and max bound TestRoundTrips' measurement of a fresh dial over
	// h2, in round trips: see rttServers.
	min, max float64
	// h2Only: the server has no http/1.1, so coder/websocket cannot dial it.
	h2Only bool
	// ladder: the server's h2 lacks extended CONNECT, so a fresh dial
	// closes that connection and upgrades on a new http/1.1 one.
	ladder bool
}

// rttServers are the servers, with the round trips a fresh WebSocket over
// h2 needs through testkit.LatencyTCP, which simulates the TCP handshake
// and delays every byte by one one-way trip: TCP (1), TLS 1.3 (1), then
// the CONNECT and its answer (1), plus one more when the server sends its
// SETTINGS only after the client's Finished instead of with its own first
// flight (0.5-RTT data), since the dialer waits for the SETTINGS to see
// extended CONNECT. Go's server does the latter (its TLS has no 0.5-RTT
// data): 4. The independent servers are measured (see TestRoundTrips'
// log and INTEROP.md); their bounds allow both behaviours. nginx has no
// RFC 8441: a fresh dial spends TCP, TLS and the wait for SETTINGS on h2
// (3), then TCP, TLS and the Upgrade on http/1.1 (3): 6, or 5 if nginx
// sent its SETTINGS with its first flight.
func rttServers() []rttServer {
	return []rttServer{
		{name: "go-net/http", min: 4, max: 4.75, start: func(tb testing.TB, w *world, _ *row) int {
			return startGoServer(tb, w)
		}},
		{name: "apache", p: apache, min: 3, max: 4.75, start: func(tb testing.TB, w *world, r *row) int {
			return startApache(tb, w, r).port
		}},
		{name: "haproxy", p: haproxy, min: 3, max: 4.75, start: func(tb testing.TB, w *world, r *row) int {
			return startHAProxy(tb, w, r, false).port
		}},
		{name: "node", p: node, min: 3, max: 4.75, h2Only: true, start: func(tb testing.TB, w *world, r *row) int {
			_, _, port := startNode(tb, w, r)
			return port
		}},
		{name: "nginx", p: nginx, min: 5, max: 6.75, ladder: true, start: func(tb testing.TB, w *world, r *row) int {
			_, port, _ := startNginx(tb, w, r)
			return port
		}},
	}
}

// startGoServer serves testkit's WebSocket echo with net/http on
// 127.0.0.1 over TLS (h2 with extended CONNECT, and http/1.1) and returns
// its port.
func startGoServer(tb testing.TB, w *world) int {
	tb.Helper()
	if !testkit.XConnectEnabled() {
		tb.Fatal("GODEBUG=http2xconnect=1 is not set (TestMain sets it)")
	}
	conf, err := w.ca.ServerConfig("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := testkit.StartHTTP(l, conf, testkit.EchoHandler())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// rttWorld is one server seen through a latency proxy on 127.0.0.1.
type rttWorld struct {
	w      *world
	proxy  *testkit.Proxy
	url    string // wss://127.0.0.1:proxy/echo
	round  time.Duration
	server rttServer
}

// newRTTWorld starts s behind a latency proxy with oneWay delay; it skips
// when s's program is not installed.
func newRTTWorld(tb testing.TB, s rttServer, oneWay time.Duration) *rttWorld {
	tb.Helper()
	r := &row{p: s.p, what: "round trips"}
	if s.p.bin != "" {
		lookup(tb, r)
	}
	w := newWorld(tb)
	port := s.start(tb, w, r)
	proxy, err := testkit.LatencyTCP("127.0.0.1:0", "127.0.0.1:"+itoa(port), oneWay)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { proxy.Close() })
	return &rttWorld{w: w, proxy: proxy, url: "wss://127.0.0.1:" + itoa(proxy.Port()) + "/echo", round: 2 * oneWay, server: s}
}

// rttDial dials one WebSocket through the proxy, closes it at once, and
// returns how long the dial took, the HTTP version that carried it and,
// for this library, the race report.
type rttDial func(tb testing.TB) (time.Duration, int, *dialer.Report)

// rttCase is one way to get a WebSocket through an rttWorld.
type rttCase struct {
	name  string
	major int // the HTTP version that must carry it
	// reuse: the case's Dialer keeps what a first, unmeasured dial
	// opened and learned; otherwise every dial starts afresh.
	reuse bool
	// conns is how many connections each measured dial opens through
	// the proxy.
	conns int
	// start returns the case's dial function.
	start func(rw *rttWorld) rttDial
	// min and max bound TestRoundTrips' measurement, in round trips; zero
	// for the server's own bounds (rttServer).
	min, max float64
}

// rttCases are this library on a fresh connection (h2 where the server
// offers extended CONNECT) and with a Dialer that dialed before (a new
// stream on its live h2 connection, or straight to http/1.1 where it
// learned that h2 lacks extended CONNECT), and coder/websocket.Dial, the
// baseline, over http/1.1 on the same URL unless s has no http/1.1: TCP,
// TLS and the Upgrade, 3 round trips. A WebSocket on a live h2 connection
// needs the CONNECT's round trip only.
func rttCases(s rttServer) []rttCase {
	viaDialer := func(reuse bool) func(rw *rttWorld) rttDial {
		return func(rw *rttWorld) rttDial {
			learned := rw.w.dialer()
			return func(tb testing.TB) (time.Duration, int, *dialer.Report) {
				d := learned
				if !reuse {
					// A new Dialer: no pooled connection, nothing learned.
					d = dialer.New(rw.w.options(nil)...)
					defer d.CloseIdleConnections()
				}
				var rep *dialer.Report
				el, major := timeDial(tb, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
					return d.DialWebSocket(ctx, rw.url, dialer.WithReport(func(r *dialer.Report) { rep = r }))
				})
				return el, major, rep
			}
		}
	}
	fresh := rttCase{name: "dialer fresh", major: 2, conns: 1, start: viaDialer(false)}
	learned := rttCase{name: "dialer learned", major: 2, reuse: true, min: 1, max: 1.5, start: viaDialer(true)}
	if s.ladder {
		fresh.major, fresh.conns = 1, 2
		learned.major, learned.conns, learned.min, learned.max = 1, 1, 3, 3.75
	}
	cases := []rttCase{
		fresh,
		learned,
		{name: "coder", major: 1, conns: 1, min: 3, max: 3.75, start: func(rw *rttWorld) rttDial {
			tr := &http.Transport{TLSClientConfig: rw.w.ca.ClientConfig()}
			client := &http.Client{Transport: tr}
			return func(tb testing.TB) (time.Duration, int, *dialer.Report) {
				defer tr.CloseIdleConnections()
				el, major := timeDial(tb, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
					return websocket.Dial(ctx, rw.url, &websocket.DialOptions{HTTPClient: client})
				})
				return el, major, nil
			}
		}},
	}
	if s.h2Only {
		return cases[:2]
	}
	return cases
}

// timeDial runs dial, closes the WebSocket at once, and returns how long
// the dial took and the HTTP version that carried the WebSocket.
func timeDial(tb testing.TB, dial func(context.Context) (*websocket.Conn, *http.Response, error)) (time.Duration, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	c, resp, err := dial(ctx)
	elapsed := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	c.CloseNow()
	return elapsed, resp.ProtoMajor
}

// BenchmarkRoundTrips measures the time to a ready wss:// WebSocket
// through a latency proxy with a 20 ms round trip, in round trips (RTTs),
// against Go's net/http server, Apache, HAProxy and node: this library on
// a fresh connection (h2 with extended CONNECT) and coder/websocket.Dial
// (http/1.1) on the same URL. Each dial costs a few round trips, so run it
// with a small count: -benchtime 20x.
func BenchmarkRoundTrips(b *testing.B) {
	for _, s := range rttServers() {
		b.Run(s.name, func(b *testing.B) {
			rw := newRTTWorld(b, s, rttBenchOneWay)
			for _, c := range rttCases(s) {
				b.Run(strings.ReplaceAll(c.name, " ", "-"), func(b *testing.B) {
					dial := c.start(rw)
					if c.reuse {
						dial(b) // opens the connection the loop reuses
					}
					for b.Loop() {
						if _, major, _ := dial(b); major != c.major {
							b.Fatalf("WebSocket over HTTP/%d, want HTTP/%d", major, c.major)
						}
					}
					b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(rw.round), "RTTs")
				})
			}
		})
	}
}

// TestRoundTrips dials a WebSocket rttTries times per server and case
// through a latency proxy with a 40 ms round trip and checks the fastest
// dial: coder/websocket over http/1.1 needs 3 round trips, this library
// over h2 what rttServers says, and every dial opened one connection
// through the proxy. It logs one line per measurement,
//
//	RTT | server | case | round trips
//
// which interop/matrix.sh puts into INTEROP.md.
func TestRoundTrips(t *testing.T) {
	for _, s := range rttServers() {
		t.Run(s.name, func(t *testing.T) {
			rw := newRTTWorld(t, s, rttTestOneWay)
			for _, c := range rttCases(s) {
				lo, hi := s.min, s.max
				if c.max != 0 {
					lo, hi = c.min, c.max
				}
				dial := c.start(rw)
				if c.reuse {
					dial(t)
				}
				before := rw.proxy.Count()
				var (
					all  []float64
					best *dialer.Report
				)
				for range rttTries {
					d, major, rep := dial(t)
					if major != c.major {
						t.Fatalf("%s: WebSocket over HTTP/%d, want HTTP/%d", c.name, major, c.major)
					}
					all = append(all, float64(d)/float64(rw.round))
					if slices.Min(all) == all[len(all)-1] {
						best = rep
					}
				}
				rtts := slices.Min(all)
				t.Logf("RTT | %s | %s %s | %.2f", s.name, c.name, proto(c.major), rtts)
				if rtts < lo-0.01 || rtts > hi {
					t.Errorf("%s took %.2f round trips at best (%.2f), want %.2f to %.2f", c.name, rtts, all, lo, hi)
				}
				if opened := rw.proxy.Count() - before; opened != int64(c.conns*rttTries) {
					t.Errorf("%s opened %d connections through the proxy in %d dials, want %d each", c.name, opened, rttTries, c.conns)
				}
				// When the server's SETTINGS came: with its first flight
				// (0.5-RTT data, about 0) or once it had the client's
				// Finished (about 1).
				if c.name == "dialer fresh" && !s.ladder && best != nil {
					if win := winner(t, best); win.Settings != nil {
						t.Logf("RTT | %s | SETTINGS after the client's TLS handshake | %.2f",
							s.name, float64(win.Settings.At-win.Connected)/float64(rw.round))
					}
				}
			}
		})
	}
}
