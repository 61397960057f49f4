package wt2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fuzzConn plays the peer's side of the CONNECT stream from fixed bytes,
// then ends it; what the session writes is counted and dropped.
type fuzzConn struct {
	mu      sync.Mutex
	r       *bytes.Reader
	closed  bool
	written int
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	// Small reads exercise capsules split across reads.
	return c.r.Read(p[:min(len(p), 7)])
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.written += len(p)
	return len(p), nil
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// fuzzPushConn is a fuzzConn that hands its bytes to the session's data
// handler (dataHandlerSetter, as *h2conn.Stream does) in pieces of 1 to 9
// bytes from a goroutine of its own; Read waits for the end of the input.
type fuzzPushConn struct {
	fuzzConn
	end chan struct{}
	wg  sync.WaitGroup
}

func newFuzzPushConn(data []byte) *fuzzPushConn {
	return &fuzzPushConn{fuzzConn: fuzzConn{r: bytes.NewReader(data)}, end: make(chan struct{})}
}

func (c *fuzzPushConn) SetDataHandler(h func([]byte)) {
	c.wg.Go(func() {
		defer close(c.end)
		for i := 0; ; i++ {
			c.mu.Lock()
			b := make([]byte, 1+i%9)
			n, _ := c.r.Read(b)
			closed := c.closed
			if n > 0 && !closed {
				h(b[:n]) // with the lock held, as h2conn calls it
			}
			c.mu.Unlock()
			if n == 0 || closed {
				return
			}
		}
	})
}

func (c *fuzzPushConn) Read(p []byte) (int, error) {
	<-c.end
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return 0, io.EOF
}

func (c *fuzzPushConn) Close() error {
	c.fuzzConn.Close()
	c.wg.Wait()
	return nil
}

// fuzzSeeds are well-formed capsule sequences as a client or server peer
// might send them.
func fuzzSeeds() [][]byte {
	join := func(caps ...[]byte) []byte { return bytes.Join(caps, nil) }
	return [][]byte{
		nil,
		join(capsule(capsuleStream, 0, "hello"), capsule(capsuleStreamFin, 0, " world")),
		join(capsule(capsuleStream, 1, "hello"), capsule(capsuleStreamFin, 1, "")),
		join(capsule(capsuleStreamFin, 2, "uni"), capsule(capsuleStreamFin, 3, "uni")),
		join(capsule(capsuleStream, 8, "x"), capsule(capsuleResetStream, 8, 7, 1)),
		join(capsule(capsuleStream, 0, "x"), capsule(capsuleStopSending, 0, 3), capsule(capsuleMaxStreamData, 4, 1<<21)),
		join(capsule(capsuleMaxData, 1<<30), capsule(capsuleMaxStreamsBidi, 200), capsule(capsuleMaxStreamsUni, 200)),
		join(capsule(capsuleDataBlocked, 10), capsule(capsuleStreamDataBlocked, 0, 10), capsule(capsuleStreamsBlockedBidi, 1), capsule(capsuleStreamsBlockedUni, 1)),
		join(capsule(capsuleDatagram, "dgram"), capsule(capsuleDatagram, ""), capsule(capsulePadding, make([]byte, 20))),
		join(capsule(capsuleDrainSession), capsule(0x4242, "unknown")),
		join(capsule(capsuleStream, 0, "bye"), capsule(capsuleCloseSession, uint32(7), "done")),
		join(capsule(capsuleStream, 4, pattern(1, 3000)), capsule(capsuleStreamFin, 0, pattern(2, 100))),
	}
}

// FuzzCapsules feeds arbitrary bytes to a Session as the peer's side of the
// CONNECT stream, in both roles and both dialects, read or pushed, while an application accepts and echoes
// streams and reads datagrams: no panic, no hang, buffering within the
// advertised windows, and every goroutine gone after CloseWithError.
func FuzzCapsules(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	cfg := Config{MaxData: 64 << 10, MaxStreamData: 16 << 10, MaxIncomingStreams: 8, MaxIncomingUniStreams: 8,
		MaxDatagramSize: 1 << 10, DatagramQueue: 4, CloseTimeout: 50 * time.Millisecond}
	f.Fuzz(func(t *testing.T, data []byte) {
		for i := range 8 {
			client := i%2 == 0
			cfg := cfg
			cfg.Dialect = []Dialect{Draft15, Draft13}[i/2%2]
			peer := ServerSettings(&Config{Dialect: cfg.Dialect})
			if !client {
				peer = ClientSettings(nil)
			}
			// Read by the session's reader, or pushed to its parser.
			var rw io.ReadWriteCloser = &fuzzConn{r: bytes.NewReader(data)}
			if i >= 4 {
				rw = newFuzzPushConn(data)
			}
			s := NewSession(rw, client, cfg, settingsMap(peer))
			var wg sync.WaitGroup
			wg.Go(func() { fuzzApp(s) })
			select {
			case <-s.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("session did not end at the end of its input")
			}
			cause := context.Cause(s.Context())
			var se *SessionError
			if !errors.As(cause, &se) && !errors.Is(cause, io.ErrUnexpectedEOF) {
				t.Fatalf("cause %v (%T)", cause, cause)
			}
			done := make(chan struct{})
			go func() {
				s.CloseWithError(0, "")
				wg.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("CloseWithError or the application did not return")
			}
			session, stream := s.bufferedHighWater()
			if session > uint64(cfg.MaxData) || stream > uint64(cfg.MaxStreamData) {
				t.Fatalf("buffered %d bytes, %d on a stream", session, stream)
			}
		}
	})
}

// fuzzApp is an application: it echoes bidirectional streams, drains
// unidirectional ones, answers on a stream of its own and reads datagrams
// until the session ends.
func fuzzApp(s *Session) {
	ctx := context.Background()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			str, err := s.AcceptStream(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				io.Copy(&str.SendStream, &str.ReceiveStream)
				str.Close()
			})
		}
	})
	wg.Go(func() {
		for {
			str, err := s.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(io.Discard, str) })
		}
	})
	wg.Go(func() {
		for {
			b, err := s.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			s.SendDatagram(b)
		}
	})
	if w, err := s.OpenUniStream(); err == nil {
		w.Write([]byte("hi"))
		w.Close()
	}
	if str, err := s.OpenStream(); err == nil {
		str.Write(make([]byte, 100))
		str.CancelRead(1)
	}
}
