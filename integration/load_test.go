package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// TestLoad: 1,000 concurrent WebSocket dials from one Dialer to a loopback
// server, over HTTP/1.1, HTTP/2 and HTTP/3, finish with no error, echo, and
// leave nothing behind (goleak in TestMain, descriptors in checkFDs). The
// dial times' p50 and p99 are logged.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	const n = 1000
	for _, tc := range []struct {
		name   string
		tcp    family
		udp    udpMode
		protos []string
		major  int
	}{
		{"h1", serveH1, noUDP, []string{"h1", "h2", "h3"}, 1},
		// Under this load a QUIC handshake can take longer than the
		// attempt delay, and TCP then rightly wins some races: the
		// carrier is pinned so that each run measures one protocol.
		{"h2", serve, noUDP, []string{"h1", "h2"}, 2},
		{"h3", serve, h3, []string{"h3"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, closed)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			e.dns.HTTPS(host, "1 . alpn=h3,h2")
			d := e.dialer(dialer.WithProtocols(tc.protos...))
			t.Cleanup(d.CloseIdleConnections)
			c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var (
				mu    sync.Mutex
				times []time.Duration
				errs  []error
				conns []*websocket.Conn
				wg    sync.WaitGroup
			)
			start := time.Now()
			for range n {
				wg.Go(func() {
					t0 := time.Now()
					ws, resp, err := d.DialWebSocket(c, e.url(true))
					el := time.Since(t0)
					if err == nil && resp.ProtoMajor != tc.major {
						ws.CloseNow()
						err = fmt.Errorf("WebSocket over HTTP/%d", resp.ProtoMajor)
					}
					if err == nil {
						err = ws.Write(c, websocket.MessageText, []byte("load"))
					}
					if err == nil {
						_, _, err = ws.Read(c)
					}
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
						return
					}
					times = append(times, el)
					conns = append(conns, ws)
				})
			}
			wg.Wait()
			total := time.Since(start)
			for _, ws := range conns {
				ws.Close(websocket.StatusNormalClosure, "")
			}
			if len(errs) > 0 {
				t.Fatalf("%d of %d dials failed; first: %v", len(errs), n, errs[0])
			}
			slices.Sort(times)
			t.Logf("LOAD | %s | %d dials in %v | p50 %v | p99 %v | max %v", tc.name, n, total.Round(time.Millisecond),
				times[n/2].Round(100*time.Microsecond), times[n*99/100].Round(100*time.Microsecond), times[n-1].Round(100*time.Microsecond))
		})
	}
}
