package wt2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/eyeballs/dialer/internal/h2conn"
)

// stalledH2 runs a session over an extended CONNECT stream of our HTTP/2
// client, to a raw HTTP/2 server on loopback TCP that accepts the session,
// grants the largest windows (HTTP/2 and WebTransport) and then never
// reads again. Its receive buffer is small, so the socket fills soon.
func stalledH2(t *testing.T, cfg Config) (*Session, *h2conn.Conn) {
	t.Helper()
	cnc, snc := tcpPair(t)
	t.Cleanup(func() { snc.Close() })
	if err := snc.(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	conn, err := h2conn.NewClient(cnc, h2conn.Config{Settings: ClientSettings(&cfg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	// The server: preface and SETTINGS, then the CONNECT and its answer.
	snc.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadFull(snc, make([]byte, len(http2.ClientPreface))); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(snc, snc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	peer := Config{MaxData: 1<<32 - 1, MaxStreamData: 1<<32 - 1}
	settings := append(ServerSettings(&peer),
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	fr.WriteSettings(settings...)
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	fr.WriteSettingsAck()

	type res struct {
		st  *h2conn.Stream
		err error
	}
	ch := make(chan res, 1)
	go func() {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodConnect, "https://127.0.0.1/wt", nil)
		req.Header.Set(":protocol", "webtransport")
		_, st, err := conn.Connect(req)
		ch <- res{st, err}
	}()
	var id uint32
	for id == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			id = mh.StreamID
		}
	}
	var blk bytes.Buffer
	hpack.NewEncoder(&blk).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk.Bytes(), EndHeaders: true})
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	ps, err := conn.PeerSettings(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession(r.st, true, cfg, ps)
	t.Cleanup(func() { s.CloseWithError(0, "") })
	return s, conn
}

// TestStalledTransport: against an HTTP/2 server that stops reading, a
// stream Write returns by its deadline and CloseWithError within
// CloseTimeout; the HTTP/2 connection, whose socket no longer drains, is
// closed on the way, and no goroutine is left.
func TestStalledTransport(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	const closeTimeout = 500 * time.Millisecond
	s, conn := stalledH2(t, Config{CloseTimeout: closeTimeout})
	str, err := s.OpenStreamSync(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	const deadline = time.Second
	start := time.Now()
	str.SetWriteDeadline(start.Add(deadline))
	n, err := str.Write(make([]byte, 64<<20))
	took := time.Since(start)
	t.Logf("Write returned after %v (deadline %v), %d bytes taken: %v", took, deadline, n, err)
	if !errors.Is(err, os.ErrDeadlineExceeded) || took > deadline+time.Second {
		t.Errorf("Write = %d, %v after %v; want os.ErrDeadlineExceeded by %v", n, err, took, deadline)
	}
	if n == 0 || n >= 64<<20 {
		t.Errorf("Write took %d bytes; want some but not all", n)
	}

	// Datagrams queue up behind the stuck writer until SendDatagram blocks.
	dgErr := make(chan error, 1)
	go func() {
		for {
			if err := s.SendDatagram(make([]byte, 1000)); err != nil {
				dgErr <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-dgErr:
		t.Fatalf("SendDatagram: %v", err)
	default:
	}

	start = time.Now()
	within(t, closeTimeout+time.Second, "CloseWithError", func() { s.CloseWithError(0, "") })
	t.Logf("CloseWithError returned after %v (CloseTimeout %v)", time.Since(start), closeTimeout)
	select {
	case <-conn.Done():
	case <-time.After(time.Second):
		t.Fatal("HTTP/2 connection with a stalled socket still open")
	}
	t.Logf("HTTP/2 connection: %v", conn.Err())
	if !errors.Is(conn.Err(), h2conn.ErrWriteTimeout) {
		t.Errorf("HTTP/2 connection error %v, want h2conn.ErrWriteTimeout", conn.Err())
	}
	select {
	case err := <-dgErr:
		if se := asSessionError(t, err); se.Remote {
			t.Errorf("blocked SendDatagram: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("blocked SendDatagram did not return when the session closed")
	}
	if _, err := str.Write([]byte("x")); err == nil {
		t.Error("Write after close succeeded")
	}
	goleak.VerifyNone(t, ignore)
}

// A Write without a deadline writes on its own goroutine when the writer
// is idle (writeDirectLocked). Stuck there on a transport that no longer
// drains, it must not hold up the session's end: CloseWithError returns
// within CloseTimeout, the Write returns the session's error, the writer
// goroutine ends, and a later Write fails at once.
func TestStalledDirectWrite(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	const closeTimeout = 500 * time.Millisecond
	s, conn := stalledH2(t, Config{CloseTimeout: closeTimeout})
	str, err := s.OpenStreamSync(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := str.Write(make([]byte, 64<<20))
		wrote <- err
	}()
	time.Sleep(300 * time.Millisecond) // the socket fills
	select {
	case err := <-wrote:
		t.Fatalf("Write of 64 MiB to a stalled peer returned: %v", err)
	default:
	}
	start := time.Now()
	within(t, closeTimeout+time.Second, "CloseWithError", func() { s.CloseWithError(0, "") })
	t.Logf("CloseWithError returned after %v (CloseTimeout %v)", time.Since(start), closeTimeout)
	select {
	case err := <-wrote:
		if err == nil {
			t.Error("Write to a closed session succeeded")
		}
	case <-time.After(time.Second):
		t.Fatal("Write stuck after the session closed")
	}
	select {
	case <-conn.Done():
	case <-time.After(time.Second):
		t.Fatal("HTTP/2 connection with a stalled socket still open")
	}
	if _, err := str.Write([]byte("x")); err == nil {
		t.Error("Write after close succeeded")
	}
	goleak.VerifyNone(t, ignore)
}
