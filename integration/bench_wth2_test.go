package integration

import (
	"context"
	"io"
	"testing"

	"github.com/coder/websocket"
	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer"
)

// BenchmarkWebTransportH2 measures the time to a ready WebTransport session
// on one origin that serves both HTTP/3 and HTTP/2 WebTransport, with a
// fresh connection each time: over HTTP/3 (webtransport-go's own Dial as
// the baseline, and the dialer held to h3) and over HTTP/2 (the dialer held
// to h2, as when UDP is blocked).
func BenchmarkWebTransportH2(b *testing.B) {
	e := newEnv(b, true, wtH2, closed)
	e.quic(wt, noUDP)
	url := "https://127.0.0.1:" + itoa(e.port) + "/wt"
	b.Run("webtransport-go-h3", func(b *testing.B) {
		tr := &webtransport.Transport{TLSClientConfig: e.ca.ClientConfig()}
		defer tr.Close()
		for b.Loop() {
			_, s, err := tr.Dial(context.Background(), url, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.CloseWithError(0, "")
		}
	})
	for _, proto := range []string{"h3", "h2"} {
		b.Run("dialer-"+proto, func(b *testing.B) {
			d := e.dialer(dialer.WithProtocols(proto))
			defer d.CloseIdleConnections()
			for b.Loop() {
				s, _, err := d.DialWebTransport(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				s.CloseWithError(0, "")
				d.CloseIdleConnections()
			}
		})
	}
}

// BenchmarkH2StreamThroughput measures echo throughput over one HTTP/2
// connection: 1 MiB per operation written in 32 KiB pieces and read back,
// on a WebTransport stream (capsules on the session's CONNECT stream) and
// on a WebSocket (RFC 8441) that rides the same connection.
func BenchmarkH2StreamThroughput(b *testing.B) {
	e := newEnv(b, true, wtH2, closed)
	d := e.dialer(dialer.WithProtocols("h2"))
	defer d.CloseIdleConnections()
	base := "127.0.0.1:" + itoa(e.port)
	ctx := context.Background()
	s, _, err := d.DialWebTransport(ctx, "https://"+base+"/wt")
	if err != nil {
		b.Fatal(err)
	}
	defer s.CloseWithError(0, "")
	c, resp, err := d.DialWebSocket(ctx, "wss://"+base+"/ws")
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != 2 || e.h2fake4.Accepted("h2") != 1 {
		b.Fatalf("WebSocket over HTTP/%d on %d connections: want both on one HTTP/2 connection", resp.ProtoMajor, e.h2fake4.Accepted("h2"))
	}
	c.SetReadLimit(-1)
	const size, piece = 1 << 20, 32 << 10
	chunk := make([]byte, piece)

	b.Run("webtransport-stream", func(b *testing.B) {
		str, err := s.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer str.CancelWrite(0)
		buf := make([]byte, size)
		b.SetBytes(size)
		for b.Loop() {
			errc := make(chan error, 1)
			go func() {
				for range size / piece {
					if _, err := str.Write(chunk); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			if _, err := io.ReadFull(str, buf); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("websocket", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			errc := make(chan error, 1)
			go func() {
				for range size / piece {
					if err := c.Write(ctx, websocket.MessageBinary, chunk); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for got := 0; got < size; {
				_, m, err := c.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				got += len(m)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWebTransportRoundTrips measures the time to a ready WebTransport
// session through latency proxies with a 20 ms round trip (see
// BenchmarkRoundTrips) and reports it in round trips: on a fresh
// connection over HTTP/3 and over HTTP/2, and as a new session on a live
// HTTP/2 connection. Run it with a small count: -benchtime 20x.
func BenchmarkWebTransportRoundTrips(b *testing.B) {
	e := newEnv(b, true, wtH2, closed)
	e.quic(wt, noUDP)
	tcp, _ := rttProxyPair(b, e.port, rttBenchOneWay)
	url := "https://127.0.0.1:" + itoa(tcp.Port()) + "/wt"
	for _, c := range []struct {
		name  string
		proto string
		reuse bool
	}{{"h3-fresh", "h3", false}, {"h2-fresh", "h2", false}, {"h2-reuse", "h2", true}} {
		b.Run(c.name, func(b *testing.B) {
			d := e.dialer(dialer.WithProtocols(c.proto))
			defer d.CloseIdleConnections()
			if c.reuse {
				s, _, err := d.DialWebTransport(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				defer s.CloseWithError(0, "")
			}
			for b.Loop() {
				s, _, err := d.DialWebTransport(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.CloseWithError(0, "")
				if !c.reuse {
					d.CloseIdleConnections()
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(2*rttBenchOneWay), "RTTs")
		})
	}
}
