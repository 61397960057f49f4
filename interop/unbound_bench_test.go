package interop

import (
	"context"
	"fmt"
	"testing"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// encTransports are the transports to unbound compared side by side.
var encTransports = []string{"udp", "dot", "doh"}

// BenchmarkUnboundResolve measures what a dial waits for DNS (Resolve:
// HTTPS, AAAA and A queried in parallel) through unbound over plain DNS,
// DoT and DoH, with one Dialer per transport whose encrypted connection is
// reused. Every name is new to the Dialer's cache and already in unbound's
// (warmed over plain DNS first), so the time is the transport's and
// unbound's, not Knot's.
func BenchmarkUnboundResolve(b *testing.B) {
	e, _ := newEncWorld(b, "benchmark: resolve latency")
	for _, tr := range encTransports {
		b.Run(tr, func(b *testing.B) {
			names := make([]string, b.N)
			warm := e.dialer(dialer.WithNameservers(e.u.nameservers("udp", "")...))
			for i := range names {
				names[i] = fmt.Sprintf("r%d.bench.example.test", i)
				if _, err := warm.Resolve(context.Background(), names[i]); err != nil {
					b.Fatal(err)
				}
			}
			d := e.dialer(dialer.WithNameservers(e.u.nameservers(tr, e.boot.Addr())...))
			// The encrypted connection is opened outside the timing.
			if _, err := d.Resolve(context.Background(), "www.example.test"); err != nil {
				b.Fatal(err)
			}
			before := e.u.stats(b)
			b.ResetTimer()
			for i := range b.N {
				if _, err := d.Resolve(context.Background(), names[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s := e.u.stats(b).sub(before)
			b.ReportMetric(float64(s.total)/float64(b.N), "queries/op")
			d.CloseIdleConnections()
		})
	}
}

// BenchmarkUnboundDial dials a WebSocket by name (to the world's echo
// backend, HTTP/1.1 on loopback) through unbound over each transport.
// cold: a new Dialer per dial, so every query and the encrypted
// connection are paid for each time; queries/dial are unbound's count.
// repeat: one Dialer dialing the same name again and again; hit-rate is
// the share of a cold dial's queries that its cache saved.
func BenchmarkUnboundDial(b *testing.B) {
	e, _ := newEncWorld(b, "benchmark: dials")
	url := "ws://www.example.test:" + itoa(e.backend) + "/echo"
	dial := func(b *testing.B, d *dialer.Dialer) {
		c, _, err := d.DialWebSocket(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	for _, tr := range encTransports {
		opts := e.options([]dialer.Option{dialer.WithNameservers(e.u.nameservers(tr, e.boot.Addr())...)})
		b.Run(tr+"/cold", func(b *testing.B) {
			before := e.u.stats(b)
			for range b.N {
				d := dialer.New(opts...)
				dial(b, d)
				d.CloseIdleConnections()
			}
			b.StopTimer()
			s := e.u.stats(b).sub(before)
			b.ReportMetric(float64(s.total)/float64(b.N), "queries/dial")
		})
		b.Run(tr+"/repeat", func(b *testing.B) {
			d := dialer.New(opts...)
			defer d.CloseIdleConnections()
			before := e.u.stats(b)
			dial(b, d)
			cold := e.u.stats(b).sub(before).total
			before = e.u.stats(b)
			b.ResetTimer()
			for range b.N {
				dial(b, d)
			}
			b.StopTimer()
			s := e.u.stats(b).sub(before)
			b.ReportMetric(float64(s.total)/float64(b.N), "queries/dial")
			if cold > 0 {
				b.ReportMetric(1-float64(s.total)/float64(b.N*cold), "hit-rate")
			}
		})
	}
}
