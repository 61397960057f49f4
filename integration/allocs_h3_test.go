package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// allocsServerEnv makes TestH3AllocsServer the server process of
// TestH3ClientAllocs instead of skipping.
const allocsServerEnv = "DIALER_TEST_H3_ALLOCS_SERVER"

// allocsServer is what the server process tells its parent on one line of
// its standard output: where it serves, and the CA it serves under.
type allocsServer struct {
	H3, Raw string // UDP addresses: HTTP/3 WebSocket echo, QUIC stream echo
	CA      []byte // PEM
}

// TestH3ClientAllocs counts what one message there and back costs the
// client in allocations over a WebSocket on HTTP/3 (coder/websocket on
// h3Stream), beside the HTTP/3 request stream it runs on (an extended
// CONNECT whose bytes quic-go's http3.RequestStream writes and reads
// directly, on a connection of its own) and a raw quic-go stream, all
// echoed by a child process (TestH3AllocsServer) so that only the
// client's allocations are counted. The WebSocket may cost what the
// request stream does, and one allocation of slack for quic-go's packet
// handling, which varies from run to run: what coder/websocket and the
// package's stream add must be nothing. A 64 B message goes straight to
// quic-go; a 2000 B one is written behind by h3Stream's flusher, which
// an allocation per burst fails. The raw quic-go stream is logged, to
// show what quic-go's http3 layer itself costs on top: v0.64.1's
// http3.(*frameParser).ParseNext allocates six times per DATA frame
// (RFC 9114 §7.2.1) it reads (a countingByteReader, a quicvarint
// byteReader, a one-byte buffer per ReadByte of the type and of a
// two-byte length, and the dataFrame), and http3's Stream.Write hands the
// frame header and the payload to quic-go in two writes, at times two
// STREAM frames; none of it can change without forking quic-go.
func TestH3ClientAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random)")
	}
	srv := startAllocsServer(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CA) {
		t.Fatal("server process sent no CA certificate")
	}
	qconf := &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true, KeepAlivePeriod: 15 * time.Second}

	// The raw quic-go stream.
	qc, err := quic.DialAddr(ctx(t), srv.Raw, &tls.Config{RootCAs: pool, NextProtos: []string{"echo"}}, qconf)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	qs, err := qc.OpenStreamSync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	// The WebSocket, dialed by the package.
	dns := dnstest.Start(t)
	d := dialer.New(dialer.WithNameservers(dns.Addr()), dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(&tls.Config{RootCAs: pool}), dialer.WithProtocols("h3"))
	defer d.CloseIdleConnections()
	c, resp, err := d.DialWebSocket(ctx(t), "wss://"+srv.H3+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != 3 {
		t.Fatalf("WebSocket over HTTP/%d, want HTTP/3", resp.ProtoMajor)
	}
	c.SetReadLimit(-1)

	for _, size := range []int{64, 2000} {
		hs := h3RequestStream(t, srv.H3, pool, qconf, size)
		msg := make([]byte, size)
		buf := make([]byte, size)
		var failed error
		stream := func(s io.ReadWriter) func() {
			return func() {
				if _, err := s.Write(msg); err != nil {
					failed = err
				} else if _, err := io.ReadFull(s, buf); err != nil {
					failed = err
				}
			}
		}
		raw, h3, ws := stream(qs), stream(hs), func() {
			if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				failed = err
			} else if err := readMessage(context.Background(), c, buf); err != nil {
				failed = err
			}
		}
		// Warm up (buffers grown, pools filled), then count.
		for range 100 {
			raw()
			h3()
			ws()
		}
		rawAllocs := testing.AllocsPerRun(1000, raw)
		h3Allocs := testing.AllocsPerRun(1000, h3)
		wsAllocs := testing.AllocsPerRun(1000, ws)
		if failed != nil {
			t.Fatal(failed)
		}
		t.Logf("%d B message, client allocations: raw quic-go stream %.1f, HTTP/3 request stream %.1f, WebSocket over HTTP/3 %.1f", size, rawAllocs, h3Allocs, wsAllocs)
		if wsAllocs > h3Allocs+1 {
			t.Errorf("%d B message: WebSocket over HTTP/3 costs the client %.1f allocations, above its HTTP/3 request stream's %.1f and 1 of slack", size, wsAllocs, h3Allocs)
		}
	}
	closeConn(t, c)
}

// h3RequestStream opens an extended CONNECT stream (RFC 9220 §3, with
// :protocol "echo") to TestH3AllocsServer on an HTTP/3 connection of its
// own, echoed in messages of size bytes, and closes it with the test.
func h3RequestStream(t testing.TB, addr string, pool *x509.CertPool, qconf *quic.Config, size int) *http3.RequestStream {
	qc, err := quic.DialAddr(ctx(t), addr, &tls.Config{RootCAs: pool, NextProtos: []string{http3.NextProtoH3}}, qconf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	cc := (&http3.Transport{}).NewClientConn(qc)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx(t).Done():
		t.Fatal("no SETTINGS from the server process")
	}
	rs, err := cc.OpenRequestStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	u := &url.URL{Scheme: "https", Host: addr, Path: "/raw"}
	req := (&http.Request{Method: http.MethodConnect, URL: u, Host: addr, Proto: "echo", Header: http.Header{"X-Size": {strconv.Itoa(size)}}}).WithContext(ctx(t))
	if err := rs.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extended CONNECT to the raw echo: %s", resp.Status)
	}
	t.Cleanup(func() { rs.CancelRead(0); rs.Close() })
	return rs
}

// startAllocsServer runs TestH3AllocsServer in a child process and returns
// what it serves. The child ends when the test does: its standard input
// closes.
func startAllocsServer(t *testing.T) allocsServer {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestH3AllocsServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), allocsServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var srv allocsServer
	read := make(chan struct{})    // srv is set, or the child's output ended without it
	drained := make(chan struct{}) // the child's output ended: it exited
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if err := json.Unmarshal(sc.Bytes(), &srv); err == nil && srv.H3 != "" {
				break
			}
		}
		close(read)
		io.Copy(io.Discard, stdout) // the rest, until the child exits
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-drained:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-drained
			t.Error("server process did not end within 20s of its standard input closing")
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	})
	select {
	case <-read:
	case <-time.After(20 * time.Second):
		t.Fatal("server process did not say where it serves within 20s")
	}
	if srv.H3 == "" {
		t.Fatal("server process ended without saying where it serves")
	}
	return srv
}

// TestH3AllocsServer is the server process of TestH3ClientAllocs, and
// skips otherwise: on 127.0.0.1, an HTTP/3 server (quic-go's, through
// testkit.StartH3) with the WebSocket echo (EchoHandler) and rawEcho at
// /raw, and a QUIC stream echo server, until its standard input closes.
func TestH3AllocsServer(t *testing.T) {
	if os.Getenv(allocsServerEnv) != "1" {
		t.Skip("the server process of TestH3ClientAllocs")
	}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	h3Addr := startH3Echo(t, conf)
	rawConf := conf.Clone()
	rawConf.NextProtos = []string{"echo"}
	l, err := quic.ListenAddr("127.0.0.1:0", rawConf, &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Go(func() {
		for {
			qc, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				defer qc.CloseWithError(0, "")
				s, err := qc.AcceptStream(context.Background())
				if err != nil {
					return
				}
				echoConn(s)
				s.Close()
			})
		}
	})
	line, err := json.Marshal(allocsServer{H3: h3Addr, Raw: l.Addr().String(), CA: ca.PEM()})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.Write(append(line, '\n'))
	io.Copy(io.Discard, os.Stdin)
}

// startH3Echo starts quic-go's HTTP/3 server (testkit.StartH3) on
// 127.0.0.1 with the WebSocket echo (EchoHandler) and, at /raw, rawEcho,
// until the test ends, and returns its address.
func startH3Echo(t testing.TB, conf *tls.Config) string {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws := testkit.EchoHandler()
	s, err := testkit.StartH3(pc, conf.Clone(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/raw" {
			rawEcho(w, r)
			return
		}
		ws.ServeHTTP(w, r)
	}))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

// rawEcho answers an extended CONNECT with 200 and echoes the stream in
// messages of X-Size bytes, each read whole and written back as one DATA
// frame, as the WebSocket echo does with its messages.
func rawEcho(w http.ResponseWriter, r *http.Request) {
	size, err := strconv.Atoi(r.Header.Get("X-Size"))
	if r.Method != http.MethodConnect || err != nil || size <= 0 || size > 1<<20 {
		http.Error(w, "want an extended CONNECT with X-Size", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return
		}
		if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
			return
		}
	}
}
