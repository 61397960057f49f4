package integration

import (
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// BenchmarkResume compares, in one loop, a dial with a full TLS handshake
// (a configuration with SessionTicketsDisabled, so the Dialer keeps no
// session) against one that resumes (the Dialer's session cache), each on
// a new connection (CloseIdleConnections after each dial):
//
//   - cpu/h1, cpu/h2, cpu/h3: a WebSocket dial on loopback; CPU time of the
//     whole process (client and in-process server) per dial, full and
//     resumed, and their ratio (resumed/full). On loopback the dial is
//     mostly handshake work.
//   - rtt/h1, rtt/h2, rtt/h3: the same through latency proxies with a
//     20 ms round trip; round trips per dial, full and resumed (TLS 1.3
//     resumption without early data saves no round trip, RFC 8446 §2.2).
//
// Run with a small count: -benchtime 20x.
func BenchmarkResume(b *testing.B) {
	type setup struct {
		name    string
		servers resumeServers
		proto   string
	}
	setups := []setup{
		{"h1", resumeServers{tcp: serveWSH1}, "h1"},
		{"h2", resumeServers{tcp: serveWS}, "h2"},
		{"h3", resumeServers{udp: serveH3}, "h3"},
	}
	// pair returns the two dialers of a case: tickets disabled, and the
	// default (resuming) one.
	pair := func(e *env, proto string) (full, resumed *dialer.Dialer) {
		noTickets := e.ca.ClientConfig()
		noTickets.SessionTicketsDisabled = true
		return e.dialer(dialer.WithProtocols(proto), dialer.WithTLSConfig(noTickets)),
			e.dialer(dialer.WithProtocols(proto))
	}
	dialOnce := func(b *testing.B, d *dialer.Dialer, url string) {
		ws, _, err := d.DialWebSocket(b.Context(), url)
		if err != nil {
			b.Fatal(err)
		}
		ws.CloseNow()
		d.CloseIdleConnections()
	}
	for _, s := range setups {
		b.Run("cpu/"+s.name, func(b *testing.B) {
			e, hs := newResumeEnv(b, s.servers)
			full, resumed := pair(e, s.proto)
			dialOnce(b, resumed, e.url(true)) // the first session
			hs.take()
			var cpuFull, cpuResumed time.Duration
			for b.Loop() {
				t0 := cpuTime(b)
				dialOnce(b, full, e.url(true))
				t1 := cpuTime(b)
				dialOnce(b, resumed, e.url(true))
				t2 := cpuTime(b)
				cpuFull += t1 - t0
				cpuResumed += t2 - t1
			}
			checkResumed(b, hs.take())
			n := float64(b.N)
			b.ReportMetric(float64(cpuFull.Microseconds())/n, "full-cpu-µs/op")
			b.ReportMetric(float64(cpuResumed.Microseconds())/n, "resumed-cpu-µs/op")
			b.ReportMetric(float64(cpuResumed)/float64(cpuFull), "resumed/full")
		})
	}
	for _, s := range setups {
		b.Run("rtt/"+s.name, func(b *testing.B) {
			e, hs := newResumeEnv(b, s.servers)
			var url string
			if s.servers.udp != nil {
				_, udp := rttProxyPair(b, e.port, rttBenchOneWay)
				url = "wss://127.0.0.1:" + itoa(udp.Port()) + "/echo"
			} else {
				tcp, err := testkit.LatencyTCP("127.0.0.1:0", "127.0.0.1:"+itoa(e.port), rttBenchOneWay)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { tcp.Close() })
				url = "wss://127.0.0.1:" + itoa(tcp.Port()) + "/echo"
			}
			full, resumed := pair(e, s.proto)
			dialOnce(b, resumed, url)
			hs.take()
			var tFull, tResumed time.Duration
			for b.Loop() {
				t0 := time.Now()
				dialOnce(b, full, url)
				t1 := time.Now()
				dialOnce(b, resumed, url)
				tFull += t1.Sub(t0)
				tResumed += time.Since(t1)
			}
			checkResumed(b, hs.take())
			round := float64(2 * rttBenchOneWay)
			n := float64(b.N)
			b.ReportMetric(float64(tFull)/n/round, "full-RTTs")
			b.ReportMetric(float64(tResumed)/n/round, "resumed-RTTs")
		})
	}
}

// checkResumed fails b unless the server's handshakes alternated full and
// resumed, as BenchmarkResume's loop dials.
func checkResumed(b *testing.B, got []bool) {
	b.Helper()
	if len(got)%2 != 0 {
		b.Fatalf("%d handshakes, want an even number: %v", len(got), got)
	}
	for i, r := range got {
		if r != (i%2 == 1) {
			b.Fatalf("handshake %d resumed %v; want full then resumed in turn: %v", i, r, got)
		}
	}
}
