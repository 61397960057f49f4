package h2conn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

// stalledServer connects our client, over TCP or TLS, to a raw server
// that exchanges SETTINGS, grants the largest windows and then never
// reads again: once the kernel's buffers are full, the socket takes
// nothing more. The server's receive buffer is made small so that they
// fill after a few hundred KB rather than tens of MB.
func stalledServer(t *testing.T, useTLS bool, cfg Config) (*Conn, *rawPeer) {
	t.Helper()
	cnc, snc := tcpPair(t)
	if err := snc.(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	if useTLS {
		cert, pool := testCert(t)
		ts := tls.Server(snc, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		tc := tls.Client(cnc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		errc := make(chan error, 1)
		go func() { errc <- ts.Handshake() }()
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close(); ts.Close() })
		cnc, snc = tc, ts
	}
	client, err := NewClient(cnc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	p := newRawPeer(t, snc)
	snc.SetReadDeadline(time.Now().Add(5 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(snc, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("preface %q, %v", preface, err)
	}
	if sf, ok := p.read().(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatal("client did not start with SETTINGS")
	}
	p.fr.WriteSettings(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	p.fr.WriteWindowUpdate(0, maxWindow-initialWindow)
	p.fr.WriteSettingsAck()
	if _, err := client.PeerSettings(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	return client, p
}

// waitStuck waits until s's Write is stuck in the socket: writing to it,
// with s's send window unchanged for 200 ms.
func waitStuck(t *testing.T, s *Stream) {
	t.Helper()
	c := s.c
	state := func() (bool, int64) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.inSock && c.wowner == s, s.sendAvail
	}
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		in, avail := state()
		time.Sleep(200 * time.Millisecond)
		if in2, avail2 := state(); in && in2 && avail == avail2 {
			return
		}
	}
	t.Fatal("the Write never got stuck in the socket")
}

// returnsWithin runs f and reports how long it took, failing the test if
// it has not returned after d (f then keeps running until the cleanups end
// the connection).
func returnsWithin(t *testing.T, d time.Duration, what string, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return time.Since(start)
	case <-time.After(d):
		t.Errorf("%s did not return within %v", what, d)
		return d
	}
}

// TestStalledSocketWriteDeadline: a Write stuck in a socket the peer no
// longer drains returns by its write deadline; Close of another stream
// does not wait for it; the connection then ends, saying why, and leaves
// no goroutine behind.
func TestStalledSocketWriteDeadline(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "tcp"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { testStalledWriteDeadline(t, useTLS) })
	}
}

func testStalledWriteDeadline(t *testing.T, useTLS bool) {
	ignore := goleak.IgnoreCurrent()
	client, _ := stalledServer(t, useTLS, Config{})
	ctx := testCtx(t, 10*time.Second)
	a, err := client.OpenStream(ctx, reqFields("POST", "/a"), false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.OpenStream(ctx, reqFields("POST", "/b"), false)
	if err != nil {
		t.Fatal(err)
	}

	const deadline = 1500 * time.Millisecond
	start := time.Now()
	a.SetWriteDeadline(start.Add(deadline))
	type result struct {
		n   int
		err error
		at  time.Duration
	}
	res := make(chan result, 1)
	go func() {
		n, err := a.Write(make([]byte, 64<<20))
		res <- result{n, err, time.Since(start)}
	}()

	// Once the socket is full, closing another stream must not wait for
	// the stuck write.
	waitStuck(t, a)
	t.Logf("stream %d's Write stuck in the socket after %v", a.ID(), time.Since(start))
	took := returnsWithin(t, time.Second, "Close of another stream", func() { b.Close() })
	t.Logf("Close of stream %d took %v while stream %d's write was stuck", b.ID(), took, a.ID())

	var r result
	select {
	case r = <-res:
	case <-time.After(deadline + 5*time.Second):
		t.Fatalf("Write with a %v deadline has not returned after %v", deadline, deadline+5*time.Second)
	}
	t.Logf("Write returned after %v (deadline %v) with %d bytes taken: %v", r.at, deadline, r.n, r.err)
	if r.at > deadline+time.Second {
		t.Errorf("Write returned %v after its deadline", r.at-deadline)
	}
	if r.n == 0 || r.n >= 64<<20 {
		t.Errorf("Write took %d bytes, want some but not all: the socket should have filled", r.n)
	}
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Errorf("Write error %v does not match os.ErrDeadlineExceeded", r.err)
	}
	if !errors.Is(r.err, ErrWriteTimeout) {
		t.Errorf("Write error %v does not match ErrWriteTimeout", r.err)
	}

	// A frame may have been cut short: the connection is over.
	select {
	case <-client.Done():
	case <-time.After(time.Second):
		t.Fatal("connection still open after a socket write timed out")
	}
	cerr := client.Err()
	t.Logf("connection error: %v", cerr)
	if !errors.Is(cerr, ErrWriteTimeout) || !strings.Contains(cerr.Error(), "deadline") {
		t.Errorf("connection error %v does not say a write deadline passed with the socket full", cerr)
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Error("Write on a dead connection succeeded")
	}
	goleak.VerifyNone(t, ignore)
}

// TestWriteDeadlineMovedWhileStuck: a deadline moved earlier while the
// Write is stuck in the socket applies at once.
func TestWriteDeadlineMovedWhileStuck(t *testing.T) {
	client, _ := stalledServer(t, false, Config{})
	a, err := client.OpenStream(testCtx(t, 10*time.Second), reqFields("POST", "/a"), false)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 64<<20))
		res <- err
	}()
	waitStuck(t, a)
	start := time.Now()
	a.SetWriteDeadline(start)
	select {
	case err := <-res:
		t.Logf("Write returned %v after its deadline moved: %v", time.Since(start), err)
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrWriteTimeout) {
			t.Errorf("Write: %v, want os.ErrDeadlineExceeded and ErrWriteTimeout", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Write did not see its new deadline")
	}
	select {
	case <-client.Done():
	case <-time.After(time.Second):
		t.Fatal("connection still open after a socket write timed out")
	}
}

// TestStalledSocketWriteTimeout: without a caller's deadline, a socket
// that takes nothing for Config.WriteTimeout ends the connection, and
// every waiter with it.
func TestStalledSocketWriteTimeout(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Longer than waitStuck takes to see a's Write stuck (two looks 200 ms
	// apart), so that b's Write waits behind it before the timeout.
	const timeout = time.Second
	client, _ := stalledServer(t, false, Config{WriteTimeout: timeout})
	ctx := testCtx(t, 10*time.Second)
	a, err := client.OpenStream(ctx, reqFields("POST", "/a"), false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.OpenStream(ctx, reqFields("POST", "/b"), false)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	aErr := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 64<<20))
		aErr <- err
	}()
	bErr := make(chan error, 1)
	waitStuck(t, a) // the socket's buffers are full of a's data
	go func() {
		// The socket takes nothing more: it has to wait.
		_, err := b.Write(make([]byte, 1<<20))
		bErr <- err
	}()
	select {
	case <-client.Done():
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("connection did not end on a stalled socket")
	}
	t.Logf("connection ended after %v (WriteTimeout %v): %v", time.Since(start), timeout, client.Err())
	for name, ch := range map[string]chan error{"stuck": aErr, "waiting": bErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrWriteTimeout) {
				t.Errorf("%s Write: %v, want ErrWriteTimeout", name, err)
			}
		case <-time.After(time.Second):
			t.Errorf("%s Write did not return when the connection ended", name)
		}
	}
	if err := client.Err(); !errors.Is(err, ErrWriteTimeout) || !strings.Contains(err.Error(), timeout.String()) {
		t.Errorf("connection error %v does not name the stall", err)
	}
	goleak.VerifyNone(t, ignore)
}
