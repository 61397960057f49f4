package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// Shape of BenchmarkManyWebSockets (issue 20 part 5).
const (
	manyConns    = 1000
	manyRate     = 10 // messages per second per WebSocket
	manyWindow   = 5 * time.Second
	manyMsgSize  = 64
	manyMaxStrms = 2 * manyConns // the servers' stream limit per connection
)

// BenchmarkManyWebSockets opens 1,000 WebSockets and has each send a
// 64-byte message 10 times a second for 5 s, waiting for every echo: over
// one HTTP/2 connection and over one HTTP/3 connection with this dialer,
// against 1,000 coder/websocket connections over HTTP/1.1 (the baseline).
// (Over HTTP/3 the pool caps a connection at 100 streams, so the 1,000
// take 10 QUIC connections; the benchmark checks that count.)
// It reports the process CPU time (rusage, user+system) per message and
// the heap per WebSocket once all are open; both include the in-process
// echo servers, which the three runs share in kind (net/http for h1 and
// h2, quic-go's http3 for h3). The servers allow 2,000 streams per
// connection (net/http's HTTP/2 default is 250 and quic-go's 100), so all
// 1,000 fit on one connection; the benchmark fails if they do not.
// Run it with -benchtime 1x.
func BenchmarkManyWebSockets(b *testing.B) {
	for _, proto := range []string{"h1", "h2", "h3"} {
		b.Run(proto, func(b *testing.B) { benchMany(b, proto) })
	}
}

func benchMany(b *testing.B, proto string) {
	e := newEnv(b, true, closed, closed)
	l, err := net.Listen("tcp", "127.0.0.1:"+itoa(e.port))
	if err != nil {
		b.Fatal(err)
	}
	counter := testkit.NewCounter(l)
	srv := &http.Server{Handler: handler(), TLSConfig: e.serverTLS(), HTTP2: &http.HTTP2Config{MaxConcurrentStreams: manyMaxStrms}}
	if proto == "h1" {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
	}
	hs, err := testkit.StartServer(counter, srv)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hs.Close() })
	pc := e.udp4
	e.udp4 = nil
	h3s, err := testkit.StartH3Server(pc, &http3.Server{
		TLSConfig:       e.serverTLS(),
		QUICConfig:      &quic.Config{EnableDatagrams: true, MaxIncomingStreams: manyMaxStrms},
		EnableDatagrams: true,
		Handler:         handler(),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h3s.Close() })
	url := "wss://127.0.0.1:" + itoa(e.port) + "/echo"
	ctx := context.Background()

	var dial func(context.Context) (*websocket.Conn, error)
	var closeIdle func()
	switch proto {
	case "h1":
		tr := &http.Transport{TLSClientConfig: e.ca.ClientConfig(), MaxIdleConnsPerHost: manyConns}
		closeIdle = tr.CloseIdleConnections
		opts := &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
		dial = func(ctx context.Context) (*websocket.Conn, error) {
			c, _, err := websocket.Dial(ctx, url, opts)
			return c, err
		}
	default:
		d := e.dialer(dialer.WithProtocols(proto))
		closeIdle = d.CloseIdleConnections
		dial = func(ctx context.Context) (*websocket.Conn, error) {
			c, resp, err := d.DialWebSocket(ctx, url)
			if err == nil && fmt.Sprintf("h%d", resp.ProtoMajor) != proto {
				c.CloseNow()
				err = fmt.Errorf("WebSocket over HTTP/%d, want %s", resp.ProtoMajor, proto)
			}
			return c, err
		}
	}
	defer closeIdle()

	heap0, g0 := heapInUse()
	conns := make([]*websocket.Conn, manyConns)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range conns {
			if c != nil {
				wg.Go(func() { c.Close(websocket.StatusNormalClosure, "") })
			}
		}
		wg.Wait()
	}()
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range conns {
		if conns[i], err = dial(dctx); err != nil {
			b.Fatalf("WebSocket %d: %v", i, err)
		}
	}
	switch proto {
	case "h1":
		if n := counter.Accepted(); n != manyConns {
			b.Fatalf("%d TCP connections for %d WebSockets over HTTP/1.1", n, manyConns)
		}
	case "h2":
		if n := counter.Accepted(); n != 1 {
			b.Fatalf("%d TCP connections for %d WebSockets over HTTP/2, want 1", n, manyConns)
		}
	case "h3":
		// The pool puts at most 100 streams on one QUIC connection
		// (carrier.go's maxH3Streams: quic-go does not expose the
		// peer's stream limit), so 1,000 WebSockets take 10.
		if n := h3s.Accepted(); n != manyConns/100 || counter.Accepted() != 0 {
			b.Fatalf("%d QUIC and %d TCP connections for %d WebSockets over HTTP/3, want %d QUIC", n, counter.Accepted(), manyConns, manyConns/100)
		}
	}
	heap1, g1 := heapInUse()

	var msgs atomic.Int64
	for b.Loop() {
		cpu0, m0 := cpuTime(b), msgs.Load()
		wctx, stop := context.WithTimeout(ctx, manyWindow)
		errs := make(chan error, manyConns)
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { errs <- pace(wctx, c, &msgs) })
		}
		wg.Wait()
		stop()
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Microsecond)/float64(msgs.Load()-m0), "cpu-µs/msg")
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	want := int64(manyConns*manyRate*manyWindow/time.Second) * int64(b.N)
	if got := msgs.Load(); got < want*8/10 {
		b.Errorf("%d echoes in %v, want about %d: the machine could not keep up", got, manyWindow, want)
	}
	b.ReportMetric(float64(heap1-heap0)/manyConns/1024, "heap-KiB/ws")
	b.ReportMetric(float64(g1-g0)/manyConns, "goroutines/ws")
	b.ReportMetric(float64(msgs.Load())/float64(b.N), "msgs")
}

// pace sends a message on c every 1/manyRate s, from a random phase, and
// reads its echo, until ctx is done.
func pace(ctx context.Context, c *websocket.Conn, n *atomic.Int64) error {
	msg := make([]byte, manyMsgSize)
	period := time.Second / manyRate
	select {
	case <-time.After(rand.N(period)):
	case <-ctx.Done():
		return nil
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		// The echo may be cut by the end of the window; the messages
		// are counted only when complete.
		if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
			return err
		}
		if _, _, err := c.Read(context.Background()); err != nil {
			return err
		}
		n.Add(1)
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// heapInUse returns the live heap after a collection, and the number of
// goroutines.
func heapInUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}
