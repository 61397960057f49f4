package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/eyeballs/dialer"
)

// fetch GETs url with c and drains the body.
func fetch(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkTransportGET measures GET latency (sequential) and throughput
// (parallel) on warm connections: this Transport against net/http's
// Transport (h1, h2) and quic-go's http3.Transport (h3) on the same servers.
// Besides wall time it reports the process's CPU time per request (client
// and server), which other load on a shared machine moves much less, and
// allocations, which it does not move at all.
func BenchmarkTransportGET(b *testing.B) {
	h1 := newEnv(b, true, serveH1, closed)
	e := newEnv(b, true, serve, closed)
	e.quic(h3, noUDP)
	h1URL := "https://127.0.0.1:" + itoa(h1.port) + "/proto"
	url := "https://127.0.0.1:" + itoa(e.port) + "/proto"
	stdlib := func(env *env, h2 bool) http.RoundTripper {
		return &http.Transport{TLSClientConfig: env.ca.ClientConfig(), ForceAttemptHTTP2: h2, MaxIdleConnsPerHost: 100}
	}
	for _, tc := range []struct {
		name string
		rt   func() http.RoundTripper
		url  string
	}{
		{"h1/net-http", func() http.RoundTripper { return stdlib(h1, false) }, h1URL},
		{"h1/dialer", func() http.RoundTripper { return h1.dialer().Transport() }, h1URL},
		{"h2/net-http", func() http.RoundTripper { return stdlib(e, true) }, url},
		{"h2/dialer", func() http.RoundTripper { return e.dialer(dialer.WithProtocols("h2", "h1")).Transport() }, url},
		{"h3/quic-go", func() http.RoundTripper { return &http3.Transport{TLSClientConfig: e.ca.ClientConfig()} }, url},
		{"h3/dialer", func() http.RoundTripper { return e.dialer(dialer.WithProtocols("h3")).Transport() }, url},
	} {
		for _, mode := range []string{"sequential", "parallel"} {
			b.Run(tc.name+"/"+mode, func(b *testing.B) {
				rt := tc.rt()
				defer func() {
					rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
					if c, ok := rt.(io.Closer); ok {
						c.Close() // http3.Transport keeps its UDP socket until Close
					}
				}()
				c := &http.Client{Transport: rt}
				fetch(b, c, tc.url) // warm up: connect outside the timing
				b.ResetTimer()
				cpu0 := cpuTime(b)
				defer func() {
					b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
				}()
				if mode == "sequential" {
					for b.Loop() {
						fetch(b, c, tc.url)
					}
					return
				}
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						fetch(b, c, tc.url)
					}
				})
			})
		}
	}
}

// BenchmarkTransportFirstRequestIPv6Blackholed measures the first request
// on a new Transport when [::1] drops SYNs: this Transport (attempt delay
// 250 ms) against net/http's (net.Dialer's 300 ms fallback), both resolving
// through the test DNS server.
func BenchmarkTransportFirstRequestIPv6Blackholed(b *testing.B) {
	e := newEnv(b, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	url := "https://" + host + ":" + itoa(e.port) + "/proto"
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, network, e.dns.Addr())
	}}
	b.Run("net-http", func(b *testing.B) {
		for b.Loop() {
			tr := &http.Transport{TLSClientConfig: e.ca.ClientConfig(), ForceAttemptHTTP2: true, DialContext: (&net.Dialer{Resolver: res}).DialContext}
			fetch(b, &http.Client{Transport: tr}, url)
			tr.CloseIdleConnections()
		}
	})
	b.Run("dialer", func(b *testing.B) {
		for b.Loop() {
			tr := e.dialer().Transport()
			fetch(b, &http.Client{Transport: tr}, url)
			tr.CloseIdleConnections()
		}
	})
}

// BenchmarkTransportGETPaired measures sequential GETs on one warm h2
// connection of this Transport and of net/http's, taking turns request
// by request on the same server, so that load from elsewhere on a shared
// machine falls on both alike. It reports each side's median and mean
// latency and the ratios dialer/net-http (the goal is at most 1).
func BenchmarkTransportGETPaired(b *testing.B) {
	e := newEnv(b, true, serve, closed)
	url := "https://127.0.0.1:" + itoa(e.port) + "/proto"
	std := &http.Transport{TLSClientConfig: e.ca.ClientConfig(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100}
	ours := e.dialer(dialer.WithProtocols("h2", "h1")).Transport()
	defer std.CloseIdleConnections()
	defer ours.CloseIdleConnections()
	clients := [2]*http.Client{{Transport: std}, {Transport: ours}}
	for _, c := range clients {
		fetch(b, c, url) // warm up: connect outside the timing
	}
	var took [2][]time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			side := (i + k) % 2 // alternate which side goes first
			t0 := time.Now()
			fetch(b, clients[side], url)
			took[side] = append(took[side], time.Since(t0))
		}
	}
	var med, mean [2]float64
	for side, d := range took {
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		med[side] = float64(d[len(d)/2]) / float64(time.Microsecond)
		mean[side] = float64(sum) / float64(len(d)) / float64(time.Microsecond)
	}
	b.ReportMetric(med[0], "net-http-med-µs")
	b.ReportMetric(med[1], "dialer-med-µs")
	b.ReportMetric(med[1]/med[0], "med-ratio")
	b.ReportMetric(mean[1]/mean[0], "mean-ratio")
}
