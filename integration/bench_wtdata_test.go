package integration

import (
	"context"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer"
)

// BenchmarkWebTransportStreamThroughput measures echo throughput on one
// bidirectional WebTransport stream, against the same servers: over HTTP/3,
// this dialer's Session against webtransport-go's own session (the
// baseline, issue 20 part 3: at least 0.9x); over HTTP/2, this dialer's
// Session (capsules on the CONNECT stream, internal/wt2) against a raw
// HTTP/2 stream of internal/h2conn echoed by an h2conn server (the
// baseline: WebTransport's framing and flow control on top of the same
// HTTP/2 code). Both echo servers copy through a 4 KiB bufio.Reader, so
// they write in the same pieces.
func BenchmarkWebTransportStreamThroughput(b *testing.B) { benchWTStreams(b, echoRaw) }

// benchWTStreams runs load on one bidirectional WebTransport stream: the
// dialer's over HTTP/3 and HTTP/2, webtransport-go's, and a raw h2conn
// stream, all to the same servers.
func benchWTStreams(b *testing.B, load func(*testing.B, io.ReadWriter)) {
	e := newEnv(b, true, wtH2, closed)
	e.quic(wt, noUDP)
	url := "https://127.0.0.1:" + itoa(e.port) + "/wt"
	ctx := context.Background()

	b.Run("h3/webtransport-go", func(b *testing.B) {
		tr := &webtransport.Transport{TLSClientConfig: e.ca.ClientConfig()}
		defer tr.Close()
		_, s, err := tr.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.CloseWithError(0, "")
		str, err := s.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer str.CancelWrite(0)
		withCPU(b, func() { load(b, str) })
	})
	for _, proto := range []string{"h3", "h2"} {
		b.Run(proto+"/dialer", func(b *testing.B) {
			d := e.dialer(dialer.WithProtocols(proto))
			defer d.CloseIdleConnections()
			s, _, err := d.DialWebTransport(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer s.CloseWithError(0, "")
			if s.HTTPVersion() != int(proto[1]-'0') {
				b.Fatalf("session over HTTP/%d, want %s", s.HTTPVersion(), proto)
			}
			str, err := s.OpenStreamSync(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer str.CancelWrite(0)
			withCPU(b, func() { load(b, str) })
		})
	}
	b.Run("h2/h2conn-raw", func(b *testing.B) {
		st := rawH2conn(b, e, echoPieces)
		defer st.Close()
		withCPU(b, func() { load(b, st) })
	})
}

// withCPU runs f, a benchmark loop, and reports the CPU time the process
// spent per operation (cpu-ns/op: user and system, of client and server
// together): the cost of the data path, which a loaded machine does not
// move as it moves ns/op, where waiting for a core counts too.
func withCPU(b *testing.B, f func()) {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	f()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkWebTransportStreamPing measures a 64-byte round trip on one
// bidirectional WebTransport stream with the same servers and baselines as
// BenchmarkWebTransportStreamThroughput: the cost per small message, and
// its allocations (client and server, which share the process).
func BenchmarkWebTransportStreamPing(b *testing.B) { benchWTStreams(b, pingRaw) }

// datagramSession is what the datagram benchmark needs of a session.
type datagramSession interface {
	SendDatagram([]byte) error
	ReceiveDatagram(context.Context) ([]byte, error)
}

// BenchmarkWebTransportDatagrams measures datagrams over HTTP/3 under
// load: each operation sends 1,000 datagrams of 1,000 bytes as fast as
// SendDatagram takes them while the echo server returns them, and counts
// those that come back within 200 ms of the last send. It reports the send
// rate (dgrams/s) and the round-trip loss (loss-%), for this dialer's
// Session and for webtransport-go's own session on the same server.
// Datagrams over HTTP/3 may be lost (RFC 9297 §2, QUIC datagrams are not
// retransmitted); the loss here is queue overflow at the receivers.
func BenchmarkWebTransportDatagrams(b *testing.B) {
	e := newEnv(b, true, closed, closed)
	e.quic(wt, noUDP)
	url := "https://127.0.0.1:" + itoa(e.port) + "/wt"
	ctx := context.Background()
	b.Run("webtransport-go", func(b *testing.B) {
		tr := &webtransport.Transport{TLSClientConfig: e.ca.ClientConfig()}
		defer tr.Close()
		_, s, err := tr.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.CloseWithError(0, "")
		benchDatagrams(b, s)
	})
	b.Run("dialer", func(b *testing.B) {
		d := e.dialer(dialer.WithProtocols("h3"))
		defer d.CloseIdleConnections()
		s, _, err := d.DialWebTransport(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer s.CloseWithError(0, "")
		benchDatagrams(b, s)
	})
}

func benchDatagrams(b *testing.B, s datagramSession) {
	const n, size = 1000, 1000
	rctx, cancel := context.WithCancel(context.Background())
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := s.ReceiveDatagram(rctx); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	msg := make([]byte, size)
	var sent int64
	var sending time.Duration
	for b.Loop() {
		start := time.Now()
		for range n {
			if err := s.SendDatagram(msg); err != nil {
				b.Fatal(err)
			}
		}
		sending += time.Since(start)
		sent += n
		b.StopTimer()
		time.Sleep(200 * time.Millisecond) // the stragglers
		b.StartTimer()
	}
	cancel()
	<-done
	b.ReportMetric(float64(sent)/sending.Seconds(), "dgrams/s")
	b.ReportMetric(100*float64(sent-got.Load())/float64(sent), "loss-%")
}

// BenchmarkWebTransportFreshDialH3 measures the time to a ready
// WebTransport session over HTTP/3 on a fresh QUIC connection each time:
// webtransport-go's Dialer (the baseline, issue 20 part 4: at most 1.0x)
// against this dialer held to h3. See also BenchmarkDialWebTransport.
func BenchmarkWebTransportFreshDialH3(b *testing.B) {
	e := newEnv(b, true, closed, closed)
	e.quic(wt, noUDP)
	url := "https://127.0.0.1:" + itoa(e.port) + "/wt"
	ctx := context.Background()
	b.Run("webtransport-go", func(b *testing.B) {
		tr := &webtransport.Transport{TLSClientConfig: e.ca.ClientConfig()}
		defer tr.Close()
		for b.Loop() {
			_, s, err := tr.Dial(ctx, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.CloseWithError(0, "")
		}
	})
	b.Run("dialer", func(b *testing.B) {
		d := e.dialer(dialer.WithProtocols("h3"))
		defer d.CloseIdleConnections()
		for b.Loop() {
			s, _, err := d.DialWebTransport(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			s.CloseWithError(0, "")
			d.CloseIdleConnections()
		}
	})
}
