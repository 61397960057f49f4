package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/h2conn"
	"github.com/eyeballs/dialer/internal/testkit"
)

// The data path (issue 20, parts 1 and 2): what one WebSocket costs per
// byte and per small message over each carrier, beside the carrier's own
// byte stream, all in one run on loopback. scripts/bench-datapath turns
// the output into the README's table of ratios.
//
//	echo      1 MiB in 32 KiB binary messages (or writes), echoed: MB/s
//	pingpong  one 64-byte message there and back: ns/op, allocs/op
//
// Carriers, each with its echo server:
//
//	raw-tls     a TLS connection (the floor under h1 and h2)
//	raw-quic    a quic-go stream, no HTTP/3 (the floor under h3)
//	raw-h3      an RFC 9220 stream written and read through quic-go's
//	            http3.RequestStream directly, echoed a message (32 KiB or
//	            64 B) at a time by rawEcho on quic-go's HTTP/3 server:
//	            dialer-h3's carrier, without WebSocket and without the
//	            package
//	raw-h2conn  an RFC 8441 stream on the package's own HTTP/2 client
//	            and server (internal/h2conn)
//	raw-h2      an RFC 8441 stream on the package's own HTTP/2 client
//	            and net/http's HTTP/2 server: the carrier of dialer-h2,
//	            without WebSocket
//	raw-xnet    the same on x/net's HTTP/2 client (with an io.Pipe body
//	            written in 32 KiB pieces): the carrier of a WebSocket
//	            that rides on a Transport's connection
//	coder-h1    coder/websocket's own dial over HTTP/1.1
//	dialer-hN   DialWebSocket over HTTP/N (WithProtocols), net/http's
//	            HTTP/1.1 and HTTP/2 server and quic-go's HTTP/3 server
//	dialer-h2own  DialWebSocket over HTTP/2 to the package's own HTTP/2
//	            server: raw-h2conn's carrier
const (
	echoSize  = 1 << 20
	echoPiece = 32 << 10
	pingSize  = 64
)

// byteStream is a carrier's raw stream, closed when the benchmark ends.
type byteStream interface {
	io.ReadWriter
	Close() error
}

func BenchmarkDatapath(b *testing.B) {
	h1 := newEnv(b, true, serveH1, closed)
	own := newEnv(b, true, wtH2, closed)
	e := newEnv(b, true, serve, closed)
	e.quic(h3, noUDP)
	base := "127.0.0.1:" + itoa(e.port)
	h1URL := "wss://127.0.0.1:" + itoa(h1.port) + "/echo"
	wsURL := "wss://" + base + "/echo"

	h3Addr := startH3Echo(b, e.serverTLS())
	qconf := &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true}
	// Each raw stream is opened for a mode's message size (raw-h3's
	// server echoes a message at a time).
	raws := []struct {
		name string
		open func(b *testing.B, size int) byteStream
	}{
		{"raw-tls", func(b *testing.B, _ int) byteStream { return rawTLS(b, e) }},
		{"raw-quic", func(b *testing.B, _ int) byteStream { return rawQUIC(b, e) }},
		{"raw-h3", func(b *testing.B, size int) byteStream { return h3RequestStream(b, h3Addr, e.ca.Pool(), qconf, size) }},
		{"raw-h2conn", func(b *testing.B, _ int) byteStream { return rawH2conn(b, e, echoConn) }},
		{"raw-h2", func(b *testing.B, _ int) byteStream { return h2connClient(b, e, netHTTPEcho(b, e)) }},
		{"raw-xnet", func(b *testing.B, _ int) byteStream { return rawXnet(b, e) }},
	}
	wss := []struct {
		name string
		open func(b *testing.B) *websocket.Conn
	}{
		{"coder-h1", func(b *testing.B) *websocket.Conn {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: h1.ca.ClientConfig()}}
			c, _, err := websocket.Dial(context.Background(), h1URL, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(client.CloseIdleConnections)
			return c
		}},
		{"dialer-h1", func(b *testing.B) *websocket.Conn { return dialerWS(b, h1, h1URL, 1, "h1") }},
		{"dialer-h2", func(b *testing.B) *websocket.Conn { return dialerWS(b, e, wsURL, 2, "h2") }},
		{"dialer-h3", func(b *testing.B) *websocket.Conn { return dialerWS(b, e, wsURL, 3, "h3") }},
		{"dialer-h2own", func(b *testing.B) *websocket.Conn {
			return dialerWS(b, own, "wss://127.0.0.1:"+itoa(own.port)+"/echo", 2, "h2")
		}},
	}
	for _, mode := range []string{"echo", "pingpong"} {
		b.Run(mode, func(b *testing.B) {
			size := map[string]int{"echo": echoPiece, "pingpong": pingSize}[mode]
			for _, r := range raws {
				b.Run(r.name, func(b *testing.B) {
					s := r.open(b, size)
					defer s.Close()
					if mode == "echo" {
						echoRaw(b, s)
					} else {
						pingRaw(b, s)
					}
				})
			}
			for _, w := range wss {
				b.Run(w.name, func(b *testing.B) {
					c := w.open(b)
					defer c.CloseNow()
					if mode == "echo" {
						echoWS(b, c)
					} else {
						pingWS(b, c)
					}
					if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
						b.Fatalf("close handshake: %v", err)
					}
				})
			}
		})
	}
}

// dialerWS dials a WebSocket over HTTP/major only.
func dialerWS(b *testing.B, e *env, u string, major int, proto string) *websocket.Conn {
	d := e.dialer(dialer.WithProtocols(proto))
	b.Cleanup(d.CloseIdleConnections)
	c, resp, err := d.DialWebSocket(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	if resp.ProtoMajor != major {
		c.CloseNow()
		b.Fatalf("WebSocket over HTTP/%d, want HTTP/%d", resp.ProtoMajor, major)
	}
	c.SetReadLimit(-1)
	return c
}

// echoRaw writes 1 MiB in 32 KiB writes while reading it back.
func echoRaw(b *testing.B, s io.ReadWriter) {
	chunk := make([]byte, echoPiece)
	buf := make([]byte, echoSize)
	b.SetBytes(echoSize)
	b.ReportAllocs()
	for b.Loop() {
		errc := make(chan error, 1)
		go func() {
			for range echoSize / echoPiece {
				if _, err := s.Write(chunk); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// pingRaw writes 64 bytes and reads them back.
func pingRaw(b *testing.B, s io.ReadWriter) {
	msg := make([]byte, pingSize)
	buf := make([]byte, pingSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// echoWS writes 1 MiB in 32 KiB messages while reading them back.
func echoWS(b *testing.B, c *websocket.Conn) {
	ctx := context.Background()
	chunk := make([]byte, echoPiece)
	buf := make([]byte, echoPiece)
	b.SetBytes(echoSize)
	b.ReportAllocs()
	for b.Loop() {
		errc := make(chan error, 1)
		go func() {
			for range echoSize / echoPiece {
				if err := c.Write(ctx, websocket.MessageBinary, chunk); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for range echoSize / echoPiece {
			if err := readMessage(ctx, c, buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// pingWS sends a 64-byte message and reads its echo.
func pingWS(b *testing.B, c *websocket.Conn) {
	ctx := context.Background()
	msg := make([]byte, pingSize)
	buf := make([]byte, pingSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			b.Fatal(err)
		}
		if err := readMessage(ctx, c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// readMessage reads one message of len(buf) bytes into buf, through
// Reader so that the measurement counts the library's allocations, not a
// fresh buffer per message.
func readMessage(ctx context.Context, c *websocket.Conn, buf []byte) error {
	_, r, err := c.Reader(ctx)
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	if n, err := r.Read(buf[:1]); n != 0 || err != io.EOF {
		return errors.New("message longer than sent")
	}
	return nil
}

// echoConn copies everything read from rw back to it.
func echoConn(rw io.ReadWriter) { io.Copy(rw, rw) }

// echoPieces copies everything read from rw back to it through a 4 KiB
// bufio.Reader, as the WebTransport echo server (internal/loopback's
// echoWTStream) does, so that both write in the same pieces.
func echoPieces(rw io.ReadWriter) { io.Copy(rw, bufio.NewReaderSize(rw, 4096)) }

// rawTLS opens a TLS connection to a TLS echo server.
func rawTLS(b *testing.B, e *env) byteStream {
	conf := e.serverTLS()
	conf.NextProtos = []string{"echo"}
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		echoConn(c)
	})
	cc := e.ca.ClientConfig()
	cc.NextProtos = []string{"echo"}
	c, err := tls.Dial("tcp", l.Addr().String(), cc)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// quicStream is a quic-go stream with its connection.
type quicStream struct {
	*quic.Stream
	c *quic.Conn
}

func (s quicStream) Close() error { return s.c.CloseWithError(0, "") }

// rawQUIC opens a quic-go stream to a QUIC stream echo server, with the
// dialer's QUIC configuration.
func rawQUIC(b *testing.B, e *env) byteStream {
	conf := e.serverTLS()
	conf.NextProtos = []string{"echo"}
	l, err := quic.ListenAddr("127.0.0.1:0", conf, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := l.Accept(context.Background())
		if err != nil {
			return
		}
		defer c.CloseWithError(0, "")
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		echoConn(s)
		s.Close()
		<-c.Context().Done()
	})
	cc := e.ca.ClientConfig()
	cc.NextProtos = []string{"echo"}
	c, err := quic.DialAddr(context.Background(), l.Addr().String(), cc, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return quicStream{s, c}
}

// h2Stream is an h2conn stream with its connection.
type h2Stream struct {
	*h2conn.Stream
	c *h2conn.Conn
}

func (s h2Stream) Close() error { s.Stream.Close(); return s.c.Close() }

// rawH2conn opens an RFC 8441 stream with the package's own HTTP/2
// client to an h2conn server that echoes it with echo (echoConn, or
// echoPieces). Closing the stream ends the connection.
func rawH2conn(b *testing.B, e *env, echo func(io.ReadWriter)) byteStream {
	conf := e.serverTLS()
	conf.NextProtos = []string{"h2"}
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		hc, err := h2conn.NewServer(context.Background(), c, h2conn.Config{
			Settings: []http2.Setting{{ID: http2.SettingEnableConnectProtocol, Val: 1}},
		})
		if err != nil {
			return
		}
		defer hc.Close()
		st, err := hc.AcceptStream(context.Background())
		if err != nil {
			return
		}
		if _, err := st.Header(context.Background()); err != nil {
			return
		}
		if err := st.WriteHeader([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false); err != nil {
			return
		}
		echo(st)
		st.Close()
		<-hc.Done()
	})
	return h2connClient(b, e, l.Addr().String())
}

// h2connClient opens an RFC 8441 stream with the package's own HTTP/2
// client (the client of dialer-h2) to the HTTP/2 server at addr.
func h2connClient(b *testing.B, e *env, addr string) byteStream {
	cc := e.ca.ClientConfig()
	cc.NextProtos = []string{"h2"}
	tc, err := tls.Dial("tcp", addr, cc)
	if err != nil {
		b.Fatal(err)
	}
	hc, err := h2conn.NewClient(tc, h2conn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	u := &url.URL{Scheme: "https", Host: addr, Path: "/echo"}
	req := (&http.Request{Method: http.MethodConnect, URL: u, Host: u.Host, Header: http.Header{":protocol": {"echo"}}}).WithContext(context.Background())
	resp, st, err := hc.Connect(req)
	if err != nil {
		hc.Close()
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		hc.Close()
		b.Fatalf("raw stream answered %s", resp.Status)
	}
	return h2Stream{st, hc}
}

// xnetStream is an extended CONNECT stream through x/net's client: the
// request body one way, the response body the other.
type xnetStream struct {
	io.Reader
	w    *io.PipeWriter
	body io.Closer
	cc   *http2.ClientConn
}

func (s xnetStream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s xnetStream) Close() error {
	s.w.Close()
	s.body.Close()
	return s.cc.Close()
}

// netHTTPEcho starts net/http's HTTP/2 server, the server of dialer-h2,
// with a handler that echoes RFC 8441 streams, and returns its address.
func netHTTPEcho(b *testing.B, e *env) string {
	srv := &http.Server{TLSConfig: e.serverTLS(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "extended CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		buf := make([]byte, echoPiece)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil || rc.Flush() != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs, err := testkit.StartServer(l, srv)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}

// rawXnet opens an RFC 8441 stream with x/net's HTTP/2 client (the
// client of a WebSocket on a Transport's connection) to net/http's
// HTTP/2 server, whose handler echoes it.
func rawXnet(b *testing.B, e *env) byteStream {
	addr := netHTTPEcho(b, e)
	cc := e.ca.ClientConfig()
	cc.NextProtos = []string{"h2"}
	tc, err := tls.Dial("tcp", addr, cc)
	if err != nil {
		b.Fatal(err)
	}
	c, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		tc.Close()
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodConnect, "https://"+addr+"/raw", pr)
	if err != nil {
		b.Fatal(err)
	}
	req.Header[":protocol"] = []string{"echo"}
	req.ContentLength = -1
	resp, err := c.RoundTrip(req)
	if err != nil {
		c.Close()
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		b.Fatalf("raw stream answered %s", resp.Status)
	}
	return xnetStream{Reader: resp.Body, w: pw, body: resp.Body, cc: c}
}
