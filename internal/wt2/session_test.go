package wt2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoStreams accepts s's bidirectional streams and echoes each until the
// session ends.
func echoStreams(s *Session) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			str, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				io.Copy(&str.SendStream, &str.ReceiveStream)
				str.Close()
			})
		}
	})
	return &wg
}

// roundTrip writes msg on str, closes it and returns all it reads back.
func roundTrip(t testing.TB, str *Stream, msg []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := str.Write(msg)
		if err == nil {
			err = str.Close()
		}
		errc <- err
	}()
	got, err := io.ReadAll(&str.ReceiveStream)
	if err != nil {
		t.Fatalf("stream %d: read: %v", str.StreamID(), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("stream %d: write: %v", str.StreamID(), err)
	}
	return got
}

func TestBidiStreamsBothWays(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	wgS := echoStreams(server)
	wgC := echoStreams(client)
	defer wgS.Wait()
	defer wgC.Wait()
	defer client.CloseWithError(0, "")

	for i, s := range []*Session{client, server} {
		str, err := s.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantBit := uint64(i) // client streams even, server streams odd
		if str.StreamID()&3 != wantBit {
			t.Errorf("stream ID %d: low bits %d, want %d", str.StreamID(), str.StreamID()&3, wantBit)
		}
		msg := []byte(fmt.Sprintf("hello from %d", i))
		if got := roundTrip(t, str, msg); !bytes.Equal(got, msg) {
			t.Errorf("echo = %q, want %q", got, msg)
		}
	}
}

func TestUniStreamsBothWays(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	for i, pair := range [][2]*Session{{client, server}, {server, client}} {
		from, to := pair[0], pair[1]
		w, err := from.OpenUniStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w.StreamID()&3 != uniBit|uint64(i) {
			t.Errorf("uni stream ID %d has the wrong type bits", w.StreamID())
		}
		msg := pattern(i, 100_000)
		go func() {
			w.Write(msg)
			w.Close()
		}()
		r, err := to.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.StreamID() != w.StreamID() {
			t.Errorf("accepted stream %d, opened %d", r.StreamID(), w.StreamID())
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(msg))
		}
	}
}

// An opened stream is sent only on Write or Close; Close alone still
// reaches the peer, as a stream with nothing but FIN.
func TestEmptyStreamWithFin(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	str, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := server.AcceptStream(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("peer accepted a stream nothing was sent on: %v", err)
	}
	if err := str.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := got.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
	}
	if _, err := str.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestManyConcurrentStreams(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	wg := echoStreams(server)
	defer wg.Wait()
	defer server.CloseWithError(0, "")

	const n = 150 // beyond the default limit of 100 at once
	var cwg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		cwg.Go(func() {
			str, err := client.OpenStreamSync(ctx)
			if err != nil {
				errc <- err
				return
			}
			msg := pattern(i, 1000+i*100)
			go func() {
				str.Write(msg)
				str.Close()
			}()
			got, err := io.ReadAll(&str.ReceiveStream)
			if err != nil {
				errc <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errc <- fmt.Errorf("stream %d: echo differs", str.StreamID())
			}
		})
	}
	cwg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// Finished streams are forgotten and their credit returned.
	deadline := time.Now().Add(testTimeout)
	for {
		client.mu.Lock()
		nc := len(client.streams)
		client.mu.Unlock()
		server.mu.Lock()
		ns, limit := len(server.streams), server.inBidi.limit
		server.mu.Unlock()
		if nc == 0 && ns == 0 && limit == n+DefaultMaxIncomingStreams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams left: client %d, server %d; server's limit %d", nc, ns, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDatagramEchoBothWays(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	for _, pair := range [][2]*Session{{client, server}, {server, client}} {
		datagramEcho(t, ctx, pair[0], pair[1])
	}
	if err := client.SendDatagram(make([]byte, DefaultMaxDatagramSize+1)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Errorf("oversized datagram: %v", err)
	}
}

// datagramEcho sends datagrams from one session and has the other echo them.
func datagramEcho(t *testing.T, ctx context.Context, from, to *Session) {
	echoCtx, stopEcho := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopEcho()
	wg.Go(func() {
		for {
			b, err := to.ReceiveDatagram(echoCtx)
			if err != nil {
				return
			}
			to.SendDatagram(append([]byte("echo:"), b...))
		}
	})
	for i := range 50 {
		msg := pattern(i, i*100)
		if err := from.SendDatagram(msg); err != nil {
			t.Fatal(err)
		}
		got, err := from.ReceiveDatagram(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte("echo:"), msg...); !bytes.Equal(got, want) {
			t.Fatalf("datagram %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
}

// Received datagrams beyond the queue are dropped, newest first.
func TestDatagramQueueBounded(t *testing.T) {
	client, server := newPair(t, Config{}, Config{DatagramQueue: 4})
	ctx := testCtx(t)
	for i := range 10 {
		if err := client.SendDatagram([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A stream written after the datagrams tells when they have all arrived.
	for {
		client.mu.Lock()
		n := len(client.dgOut)
		client.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	str, _ := client.OpenStream()
	str.Close()
	if _, err := server.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		b, err := server.ReceiveDatagram(ctx)
		if err != nil || !bytes.Equal(b, []byte{byte(i)}) {
			t.Fatalf("datagram %d = %v, %v", i, b, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if b, err := server.ReceiveDatagram(short); err == nil {
		t.Fatalf("got datagram %v beyond the queue", b)
	}
}

func TestCloseWithCodeAndMessage(t *testing.T) {
	for _, closer := range []string{"client", "server"} {
		t.Run(closer, func(t *testing.T) {
			client, server := newPair(t, Config{}, Config{})
			ctx := testCtx(t)
			local, remote := client, server
			if closer == "server" {
				local, remote = server, client
			}
			// Operations pending on both sides.
			str, _ := remote.OpenStream()
			str.Write([]byte("x"))
			peerStr, err := local.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pending := make(chan error, 4)
			go func() { _, err := remote.AcceptStream(ctx); pending <- err }()
			go func() { _, err := remote.ReceiveDatagram(ctx); pending <- err }()
			go func() { _, err := io.ReadAll(&str.ReceiveStream); pending <- err }()
			go func() { _, err := local.AcceptUniStream(ctx); pending <- err }()
			time.Sleep(20 * time.Millisecond)

			long := strings.Repeat("é", 600) // 1200 bytes
			within(t, 2*time.Second, "CloseWithError", func() { local.CloseWithError(42, long) })

			want := truncateUTF8(long, 1024)
			if len(want) != 1024 {
				t.Fatalf("truncated to %d bytes", len(want))
			}
			le := asSessionError(t, context.Cause(local.Context()))
			if le.Code != 42 || le.Message != want || le.Remote {
				t.Errorf("local cause = %+v", le)
			}
			re := asSessionError(t, waitEnd(t, remote))
			if re.Code != 42 || re.Message != want || !re.Remote {
				t.Errorf("remote cause = %+v", re)
			}
			for range 4 {
				select {
				case err := <-pending:
					asSessionError(t, err)
				case <-time.After(2 * time.Second):
					t.Fatal("a pending operation was not unblocked")
				}
			}
			if _, err := peerStr.Read(make([]byte, 1)); err != le {
				t.Errorf("Read after close: %v", err)
			}
			if _, err := local.OpenStream(); err != le {
				t.Errorf("OpenStream after close: %v", err)
			}
			if err := remote.SendDatagram([]byte("x")); err != re {
				t.Errorf("SendDatagram after peer's close: %v", err)
			}
		})
	}
}

// The CONNECT stream ending without WT_CLOSE_SESSION is a close with code
// 0 by the peer.
func TestEndOfStreamWithoutCapsule(t *testing.T) {
	s, raw := newRaw(t, false, Config{}, ClientSettings(nil))
	raw.conn.(interface{ CloseWrite() error }).CloseWrite()
	se := asSessionError(t, waitEnd(t, s))
	if se.Code != 0 || se.Message != "" || !se.Remote {
		t.Errorf("cause = %+v", se)
	}
	// The session answers with the end of its own side and nothing else.
	if ct, _, err := raw.next(); err != io.EOF {
		t.Errorf("after the peer's end: capsule 0x%x, %v; want EOF", uint64(ct), err)
	}
}

func TestDrain(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	select {
	case <-server.Draining():
		t.Fatal("draining before Drain")
	default:
	}
	if err := client.Drain(); err != nil {
		t.Fatal(err)
	}
	client.Drain()
	select {
	case <-server.Draining():
	case <-time.After(testTimeout):
		t.Fatal("server did not see WT_DRAIN_SESSION")
	}
	select {
	case <-client.Draining():
		t.Error("the drainer reports draining")
	default:
	}
	// Both sides may still open streams.
	wg := echoStreams(client)
	defer wg.Wait()
	defer client.CloseWithError(0, "")
	str, err := server.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, str, []byte("after drain")); string(got) != "after drain" {
		t.Errorf("echo = %q", got)
	}
}

func TestResetStream(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	for _, pair := range [][2]*Session{{client, server}, {server, client}} {
		from, to := pair[0], pair[1]
		str, err := from.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := str.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		peer, err := to.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		str.CancelWrite(7)
		if _, err := str.Write([]byte("more")); asStreamError(t, err).Remote {
			t.Errorf("local Write after CancelWrite: %v", err)
		}
		_, err = io.ReadAll(&peer.ReceiveStream)
		if se := asStreamError(t, err); se.Code != 7 || !se.Remote || se.StreamID != str.StreamID() {
			t.Errorf("peer's Read: %+v", se)
		}
		// The other direction still works.
		go func() { peer.Write([]byte("reply")); peer.Close() }()
		if got, err := io.ReadAll(&str.ReceiveStream); err != nil || string(got) != "reply" {
			t.Errorf("reply = %q, %v", got, err)
		}
	}
}

func TestStopSending(t *testing.T) {
	client, server := newPair(t, Config{}, Config{})
	ctx := testCtx(t)
	for _, pair := range [][2]*Session{{client, server}, {server, client}} {
		from, to := pair[0], pair[1]
		w, err := from.OpenUniStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("hello"))
		r, err := to.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.CancelRead(9)
		if _, err := r.Read(make([]byte, 10)); asStreamError(t, err).Remote {
			t.Errorf("Read after CancelRead: %v", err)
		}
		// Writes fail once WT_STOP_SENDING arrives.
		var werr error
		within(t, testTimeout, "Write after STOP_SENDING", func() {
			for werr == nil {
				_, werr = w.Write(make([]byte, 1000))
			}
		})
		if se := asStreamError(t, werr); se.Code != 9 || !se.Remote {
			t.Errorf("Write: %+v", se)
		}
		// Our WT_RESET_STREAM in reply finishes the stream on both sides.
		waitForgotten(t, to, r.StreamID())
		waitForgotten(t, from, w.StreamID())
	}
}

func waitForgotten(t *testing.T, s *Session, id uint64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		s.mu.Lock()
		_, ok := s.streams[id]
		s.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %d is not finished", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestContextCancelReturnsPromptly(t *testing.T) {
	client, server := newPair(t, Config{}, Config{MaxIncomingStreams: 1})
	if _, err := client.OpenStream(); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func(context.Context) error{
		"AcceptStream":      func(ctx context.Context) error { _, err := server.AcceptStream(ctx); return err },
		"AcceptUniStream":   func(ctx context.Context) error { _, err := client.AcceptUniStream(ctx); return err },
		"OpenStreamSync":    func(ctx context.Context) error { _, err := client.OpenStreamSync(ctx); return err },
		"ReceiveDatagram":   func(ctx context.Context) error { _, err := client.ReceiveDatagram(ctx); return err },
		"OpenUniStreamSync": func(ctx context.Context) error { _, err := server.OpenUniStreamSync(ctx); return err },
	}
	server.mu.Lock()
	server.peerMaxUni = 0 // no uni credit for the server
	server.mu.Unlock()
	for name, op := range ops {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		err := op(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s returned after %v", name, d)
		}
	}
}

func TestDeadlines(t *testing.T) {
	// The server grants 1000 bytes per stream and reads nothing.
	client, server := newPair(t, Config{}, Config{MaxStreamData: 1000})
	ctx := testCtx(t)
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	str.SetDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := str.Write(make([]byte, 5000))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n > 1000 {
		t.Errorf("Write = %d, %v; want at most 1000, deadline exceeded", n, err)
	}
	if _, err := str.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read: %v", err)
	}
	// Moving the deadline of a blocked Read takes effect.
	str.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := str.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	str.SetReadDeadline(time.Now())
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read did not see its new deadline")
	}
	// The peer gets the bytes Write took, and no more.
	if n == 0 {
		return
	}
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if m, err := peer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("peer read %d more bytes, %v", m, err)
	}
}

// Closing unblocks every pending operation at once, with the local
// *SessionError.
func TestCloseUnblocks(t *testing.T) {
	client, server := newPair(t, Config{}, Config{MaxIncomingStreams: 1, MaxStreamData: 100})
	ctx := testCtx(t)
	str, _ := client.OpenStream()
	client.OpenStream()
	str.Write([]byte("x"))
	ops := []func() error{
		func() error { _, err := client.AcceptStream(ctx); return err },
		func() error { _, err := client.AcceptUniStream(ctx); return err },
		func() error { _, err := client.OpenStreamSync(ctx); return err },
		func() error { _, err := client.ReceiveDatagram(ctx); return err },
		func() error { _, err := str.Read(make([]byte, 1)); return err },
		func() error { _, err := str.Write(make([]byte, 1000)); return err },
	}
	type result struct {
		op  int
		err error
	}
	errc := make(chan result, len(ops))
	for i, op := range ops {
		go func() { errc <- result{i, op()} }()
	}
	time.Sleep(50 * time.Millisecond)
	go client.CloseWithError(5, "done")
	for range ops {
		select {
		case r := <-errc:
			var se *SessionError
			if !errors.As(r.err, &se) || se.Code != 5 || se.Remote {
				t.Errorf("pending op %d: %v", r.op, r.err)
			}
		case <-time.After(time.Second):
			t.Fatal("a pending operation was not unblocked")
		}
	}
	waitEnd(t, server)
}

// lateReader is our end of a TCP connection whose peer closes it right
// after WT_CLOSE_SESSION: once the capsule is off the wire our writes fail
// at once (as after a TCP reset), while our reader gets it a little later.
type lateReader struct {
	net.Conn
	marker []byte
	mu     sync.Mutex
	tail   []byte
	reset  bool
}

func (c *lateReader) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.tail = append(c.tail, p[:n]...)
	seen := !c.reset && bytes.Contains(c.tail, c.marker)
	c.tail = c.tail[max(0, len(c.tail)-len(c.marker)):]
	c.reset = c.reset || seen
	c.mu.Unlock()
	if seen {
		time.Sleep(50 * time.Millisecond)
	}
	return n, err
}

func (c *lateReader) Write(p []byte) (int, error) {
	c.mu.Lock()
	reset := c.reset
	c.mu.Unlock()
	if reset {
		return 0, syscall.ECONNRESET
	}
	return c.Conn.Write(p)
}

// The peer closes the session while we are writing and then the stream,
// so that our write fails before our reader has seen WT_CLOSE_SESSION: the
// session still ends with the peer's code, not with our write error.
func TestPeerClosesWhileWeWrite(t *testing.T) {
	cc, sc := tcpPair(t)
	ccfg, scfg := Config{}, Config{CloseTimeout: 100 * time.Millisecond}
	msg := "closed while you were writing"
	client := NewSession(&lateReader{Conn: cc, marker: []byte(msg)}, true, ccfg, settingsMap(ServerSettings(&scfg)))
	server := NewSession(sc, false, scfg, settingsMap(ClientSettings(&ccfg)))
	t.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
	})
	ctx := testCtx(t)
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go str.Write(make([]byte, 32<<20)) // beyond the windows: until the session ends
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, peer, 1<<20); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, peer)
	server.CloseWithError(7, msg)
	if se := asSessionError(t, waitEnd(t, client)); se.Code != 7 || se.Message != msg || !se.Remote {
		t.Fatalf("client's cause %+v", se)
	}
}
