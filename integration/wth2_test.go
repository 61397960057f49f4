package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// TestWebTransportH2: with QUIC out of the race, the session comes up over
// HTTP/2 and behaves exactly as over HTTP/3, except that datagrams are
// reliable.
func TestWebTransportH2(t *testing.T) {
	e := newEnv(t, true, wtH2, wtH2)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	d := e.dialer(dialer.WithProtocols("h2"))
	t.Cleanup(d.CloseIdleConnections) // after the sessions close
	s, rep := dialWTOver(t, 2, d, e.wtURL(), dialer.WithSubprotocols("nope", "chat-v1"), dialer.WithHeader(http.Header{"X-Test": {"wt"}}))
	if w := rep.Attempts[rep.Winner]; w.Family != "IPv6" || w.Proto != "h2" {
		t.Errorf("want IPv6 h2 to win\n%s", rep)
	}
	if s.Protocol() != "chat-v1" {
		t.Errorf("protocol %q, want chat-v1", s.Protocol())
	}
	exerciseSession(t, s, func() *dialer.Session { s2, _ := dialWTOver(t, 2, d, e.wtURL()); return s2 }, e.wth2v6.LastClose)
	t.Run("datagrams reliable", func(t *testing.T) {
		// Over HTTP/2 none is lost: 100 sent, 100 echoed, in order.
		s, _ := dialWTOver(t, 2, d, e.wtURL())
		for i := range 100 {
			if err := s.SendDatagram([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 100 {
			b, err := s.ReceiveDatagram(ctx(t))
			if err != nil || len(b) != 1 || b[0] != byte(i) {
				t.Fatalf("datagram %d: %v, %v", i, b, err)
			}
		}
	})
}

// TestWebTransportH2UDPBlackholed: every QUIC datagram is dropped; the
// session comes up over HTTP/2 about one attempt delay after the QUIC
// attempt started, and the next dial goes straight to TCP.
func TestWebTransportH2UDPBlackholed(t *testing.T) {
	e := newEnv(t, true, wtH2, closed)
	e.quic(udpBlackhole, noUDP)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	t.Cleanup(d.CloseIdleConnections)
	start := time.Now()
	s, rep := dialWTOver(t, 2, d, e.wtURL())
	took := time.Since(start)
	roundTrip(t, s, []byte("over h2"))
	if len(rep.Attempts) != 2 || rep.Attempts[0].Proto != "h3" || rep.Attempts[1].Proto != "h2" || rep.Winner != 1 {
		t.Fatalf("want h3 then h2 winning\n%s", rep)
	}
	if gap := rep.Attempts[1].Start - rep.Attempts[0].Start; gap < 240*time.Millisecond || gap > 450*time.Millisecond {
		t.Errorf("h2 started %v after h3, want about 250ms\n%s", gap, rep)
	}
	if took > 2*time.Second {
		t.Errorf("session took %v", took)
	}
	s.CloseWithError(0, "")
	d.CloseIdleConnections()

	// The QUIC attempt that never heard back while TCP got through marks
	// UDP as blocked for the origin: the next dial starts with TCP.
	_, rep2 := dialWTOver(t, 2, d, e.wtURL())
	if len(rep2.Attempts) != 1 || rep2.Attempts[0].Proto != "h2" {
		t.Errorf("second dial should try h2 alone\n%s", rep2)
	}
}

// TestWebTransportH2Unsupported: HTTP/2 servers whose SETTINGS lack
// WebTransport (ours with extended CONNECT only, and net/http's) give
// ErrUnsupported naming what is missing.
func TestWebTransportH2Unsupported(t *testing.T) {
	for name, f := range map[string]family{"h2 without WebTransport": h2NoWT, "net/http h2": serve} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, true, f, closed)
			e.dns.A(host, "127.0.0.1")
			d := e.dialer(dialer.WithProtocols("h2"))
			t.Cleanup(d.CloseIdleConnections)
			_, _, err := d.DialWebTransport(ctx(t), e.wtURL())
			if !errors.Is(err, dialer.ErrUnsupported) {
				t.Fatalf("want ErrUnsupported, got %v", err)
			}
			if !strings.Contains(err.Error(), "h2 SETTINGS lack") || !strings.Contains(err.Error(), "WT") {
				t.Errorf("error does not name the missing setting: %v", err)
			}
		})
	}
}

// TestWebTransportH2Rejected: a 403 over HTTP/2 gives ErrRejected and the
// response.
func TestWebTransportH2Rejected(t *testing.T) {
	e := newEnv(t, true, wtH2, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer(dialer.WithProtocols("h2"), dialer.WithHeader(http.Header{"X-Reject": {"1"}}))
	t.Cleanup(d.CloseIdleConnections)
	_, resp, err := d.DialWebTransport(ctx(t), e.wtURL())
	if !errors.Is(err, dialer.ErrRejected) || resp == nil || resp.StatusCode != http.StatusForbidden || resp.ProtoMajor != 2 {
		t.Fatalf("want ErrRejected with the HTTP/2 403, got %v, %v", err, resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "X-Reject") {
		t.Errorf("body %q", b)
	}
}

// TestWebTransportH2Reuse: a second session and a WebSocket to the origin
// ride the live HTTP/2 connection.
func TestWebTransportH2Reuse(t *testing.T) {
	e := newEnv(t, true, wtH2, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer(dialer.WithProtocols("h2"))
	s1, _ := dialWTOver(t, 2, d, e.wtURL())
	s2, rep := dialWTOver(t, 2, d, e.wtURL())
	if len(rep.Attempts) != 0 {
		t.Errorf("second session raced again\n%s", rep)
	}
	roundTrip(t, s1, []byte("first"))
	roundTrip(t, s2, []byte("second"))
	c, resp, err := d.DialWebSocket(ctx(t), "wss://"+host+":"+itoa(e.port)+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("WebSocket over HTTP/%d, want the HTTP/2 connection", resp.ProtoMajor)
	}
	closeConn(t, c)
	if n := e.h2fake4.Accepted("h2"); n != 1 {
		t.Errorf("%d h2 connections, want 1", n)
	}
	if n := e.wth2v4.Sessions(); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	s1.CloseWithError(0, "")
	s2.CloseWithError(0, "")
	d.CloseIdleConnections()
	waitOpen(t, "h2", func(c context.Context, n int) error { return e.h2fake4.WaitOpen(c, "h2", n) }, 0)
}

// TestWebTransportH2FlowControl: 10 MiB echoed on one stream and on 16
// streams at once. A writer whose peer does not read is held back by flow
// control instead of being buffered without bound, and a slow reader then
// gets every byte, in order, without deadlock.
func TestWebTransportH2FlowControl(t *testing.T) {
	e := newEnv(t, true, wtH2, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer(dialer.WithProtocols("h2"))
	t.Cleanup(d.CloseIdleConnections)
	s, _ := dialWTOver(t, 2, d, e.wtURL())
	const total = 10 << 20
	for _, n := range []int{1, 16} {
		t.Run(itoa(n)+" streams", func(t *testing.T) {
			size := total / n
			var written sync.WaitGroup
			var mu sync.Mutex
			sent := 0
			type flow struct {
				str  *dialer.Stream
				data []byte
			}
			flows := make([]flow, n)
			for i := range flows {
				str, err := s.OpenStreamSync(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				str.SetDeadline(time.Now().Add(60 * time.Second))
				data := make([]byte, size)
				rand.Read(data)
				flows[i] = flow{str, data}
				written.Go(func() {
					for b := data; len(b) > 0; {
						k, err := str.Write(b[:min(len(b), 32<<10)])
						mu.Lock()
						sent += k
						mu.Unlock()
						if err != nil {
							t.Errorf("write: %v", err)
							return
						}
						b = b[k:]
					}
					str.Close()
				})
			}
			// Nobody reads the echo yet: the server's writes, then its
			// reads, then ours stall once the windows are full.
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			stalled := sent
			mu.Unlock()
			// One stream's windows (1 MiB each way, with HTTP/2's) hold far
			// less than 10 MiB; sixteen streams' may hold it all, and the
			// wt2 and h2conn tests check their buffers against the windows.
			if n == 1 && stalled >= total {
				t.Fatalf("all %d bytes written while the echo was not read: nothing held the writer back", stalled)
			}
			t.Logf("%d bytes in flight before the writers stalled", stalled)
			// A slow reader: 16 KiB at a time, with pauses.
			var read sync.WaitGroup
			for _, f := range flows {
				read.Go(func() {
					var got bytes.Buffer
					buf := make([]byte, 16<<10)
					for i := 0; ; i++ {
						k, err := f.str.Read(buf)
						got.Write(buf[:k])
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Errorf("read after %d bytes: %v", got.Len(), err)
							return
						}
						if i%64 == 0 {
							time.Sleep(time.Millisecond)
						}
					}
					if !bytes.Equal(got.Bytes(), f.data) {
						t.Errorf("echo of %d bytes: got %d, not the same", len(f.data), got.Len())
					}
				})
			}
			written.Wait()
			read.Wait()
		})
	}
}
