package h2conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const settingWTMaxSessions http2.SettingID = 0x2b60 // draft-ietf-webtrans-http2

// TestExtendedConnect: an RFC 8441 WebSocket CONNECT through RoundTrip,
// echoed both ways on one stream.
func TestExtendedConnect(t *testing.T) {
	client, server := pair(t, Config{}, Config{Settings: []http2.Setting{{ID: http2.SettingEnableConnectProtocol, Val: 1}}})
	got := make(chan []hpack.HeaderField, 1)
	serve(t, server, func(s *Stream) {
		h, _ := s.Header(context.Background())
		got <- h
		echo(s)
	})
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), http.MethodConnect, "https://example.test/chat?x=1", pr)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d proto %d", resp.StatusCode, resp.ProtoMajor)
	}
	h := <-got
	for name, want := range map[string]string{":method": "CONNECT", ":protocol": "websocket", ":scheme": "https",
		":path": "/chat?x=1", ":authority": "example.test", "sec-websocket-version": "13"} {
		if v := value(h, name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	for i := range 5 {
		msg := fmt.Sprintf("message %d", i)
		if _, err := pw.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) != msg {
			t.Fatalf("echo %q, want %q", buf, msg)
		}
	}
	pw.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Fatalf("after close: %q, %v", b, err)
	}
}

// TestNoExtendedConnect: without SETTINGS_ENABLE_CONNECT_PROTOCOL the
// request fails before any stream opens.
func TestNoExtendedConnect(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	serve(t, server, echo)
	req, _ := http.NewRequestWithContext(testCtx(t, 5*time.Second), http.MethodConnect, "https://example.test/", nil)
	req.Header.Set(":protocol", "websocket")
	_, err := client.RoundTrip(req)
	if !errors.Is(err, ErrNoExtendedConnect) {
		t.Fatalf("err = %v, want ErrNoExtendedConnect", err)
	}
	if st := client.State(); st.StreamsActive != 0 {
		t.Fatalf("streams active: %d", st.StreamsActive)
	}
}

// TestCustomSettings: each side sees the other's extra SETTINGS in its
// first SETTINGS frame, and overrides take effect.
func TestCustomSettings(t *testing.T) {
	client, server := pair(t,
		Config{Settings: []http2.Setting{{ID: settingWTMaxSessions, Val: 7}, {ID: http2.SettingInitialWindowSize, Val: 100000}}},
		Config{Settings: []http2.Setting{{ID: http2.SettingEnableConnectProtocol, Val: 1}, {ID: settingWTMaxSessions, Val: 3}}})
	ctx := testCtx(t, 5*time.Second)
	cs, err := server.PeerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs[settingWTMaxSessions] != 7 || cs[http2.SettingInitialWindowSize] != 100000 || cs[http2.SettingEnablePush] != 0 {
		t.Fatalf("server saw %v", cs)
	}
	if _, ok := cs[http2.SettingEnablePush]; !ok {
		t.Fatalf("client sent no ENABLE_PUSH: %v", cs)
	}
	ss, err := client.PeerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss[settingWTMaxSessions] != 3 || ss[http2.SettingEnableConnectProtocol] != 1 || ss[http2.SettingMaxConcurrentStreams] != DefaultMaxConcurrentStreams {
		t.Fatalf("client saw %v", ss)
	}
	if s2, ok := client.ReceivedSettings(); !ok || len(s2) != len(ss) {
		t.Fatalf("ReceivedSettings = %v, %v", s2, ok)
	}
	if client.ours.streamWindow != 100000 {
		t.Fatalf("override not applied: %d", client.ours.streamWindow)
	}
}

// TestPeerSettingsConnDies: PeerSettings fails when the connection ends
// before any SETTINGS arrive.
func TestPeerSettingsConnDies(t *testing.T) {
	cnc, snc := tcpPair(t)
	client, err := NewClient(cnc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, ok := client.ReceivedSettings(); ok {
		t.Fatal("settings before any were sent")
	}
	snc.Close()
	if _, err := client.PeerSettings(testCtx(t, 5*time.Second)); err == nil {
		t.Fatal("PeerSettings succeeded on a dead connection")
	}
	<-client.Done()
	if client.Err() == nil {
		t.Fatal("no Err after the connection ended")
	}
}

// streamPair opens one stream from client to server and returns both
// ends.
func streamPair(t *testing.T, client, server *Conn) (cs, ss *Stream) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	cs, err := client.OpenStream(ctx, reqFields("POST", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	ss, err = server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.WriteHeader(status(200), false); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Header(ctx); err != nil {
		t.Fatal(err)
	}
	return cs, ss
}

// exchange sends size bytes each way on n streams at once, the server
// echoing, with slow readers on both sides, and checks the bytes and that
// no receiver buffered more than its windows.
func exchange(t *testing.T, ccfg, scfg Config, n, size int) {
	client, server := pair(t, ccfg, scfg)
	var mu sync.Mutex
	var srvStreams []*Stream
	serve(t, server, func(s *Stream) {
		mu.Lock()
		srvStreams = append(srvStreams, s)
		mu.Unlock()
		defer s.Close()
		if err := s.WriteHeader(status(200), false); err != nil {
			return
		}
		if _, err := io.Copy(s, &slowReader{r: s, every: 8}); err != nil {
			return
		}
		s.CloseWrite()
	})
	ctx := testCtx(t, 60*time.Second)
	errs := make(chan error, 2*n)
	var streams []*Stream
	for i := range n {
		s, err := client.OpenStream(ctx, reqFields("POST", "/"+itoa(i)), false)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		data := randBytes(size)
		go func() {
			_, err := s.Write(data)
			if err == nil {
				err = s.CloseWrite()
			}
			errs <- err
		}()
		go func() {
			if _, err := s.Header(ctx); err != nil {
				errs <- err
				return
			}
			errs <- readAllCheck(&slowReader{r: s, every: 8}, data)
		}()
	}
	for range 2 * n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Logf("client: %s", client.debugState())
			t.Logf("server: %s", server.debugState())
			t.Fatal("deadlock: transfer did not finish in time")
		}
	}
	check := func(name string, c *Conn, cfg Config, ss []*Stream) {
		ours, _ := cfg.resolve(c.client)
		c.mu.Lock()
		defer c.mu.Unlock()
		if limit := max(int64(ours.connWindow), initialWindow); c.maxBuffered > limit {
			t.Errorf("%s buffered %d bytes on the connection, window %d", name, c.maxBuffered, limit)
		}
		for _, s := range ss {
			if limit := max(int64(ours.streamWindow), initialWindow); s.maxBuf > limit {
				t.Errorf("%s buffered %d bytes on stream %d, window %d", name, s.maxBuf, s.id, limit)
			}
		}
		if c.buffered != 0 {
			t.Errorf("%s still counts %d buffered bytes", name, c.buffered)
		}
		t.Logf("%s: most buffered %d bytes", name, c.maxBuffered)
	}
	check("client", client, ccfg, streams)
	mu.Lock()
	check("server", server, scfg, srvStreams)
	mu.Unlock()
	if st := client.State(); st.StreamsActive != 0 {
		t.Errorf("client still has %d streams", st.StreamsActive)
	}
}

func TestTransferOneStream(t *testing.T) { exchange(t, Config{}, Config{}, 1, 10<<20) }

// TestTransferManyStreams: 16 streams at once, both ways, sharing the
// connection window.
func TestTransferManyStreams(t *testing.T) {
	size := 10 << 20
	if raceOn {
		size = 2 << 20 // 16 x 10 MiB each way takes ~25 s under the race detector
	}
	exchange(t, Config{}, Config{}, 16, size)
}

// TestTransferSmallWindows: many streams whose windows are smaller than
// what they send, so flow control paces every stream.
func TestTransferSmallWindows(t *testing.T) {
	cfg := Config{ConnWindow: 256 << 10, StreamWindow: 64 << 10}
	exchange(t, cfg, cfg, 16, 1<<20)
}

func TestTransferTinyWindows(t *testing.T) {
	cfg := Config{StreamWindow: 1024, ConnWindow: 4096}
	exchange(t, cfg, cfg, 4, 256<<10)
}

// TestReset: a reset reaches the other side as a remote *StreamError with
// its code, and fails the resetting side's own calls as a local one.
func TestReset(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	for _, byClient := range []bool{true, false} {
		cs, ss := streamPair(t, client, server)
		resetter, other := ss, cs
		if byClient {
			resetter, other = cs, ss
		}
		resetter.Reset(http2.ErrCodeEnhanceYourCalm)
		var se *StreamError
		if _, err := resetter.Write([]byte("x")); !errors.As(err, &se) || se.Remote || se.Code != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("resetter write: %v", err)
		}
		other.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(other)
		if !errors.As(err, &se) || !se.Remote || se.Code != http2.ErrCodeEnhanceYourCalm || se.StreamID != other.ID() {
			t.Fatalf("other side read: %v", err)
		}
		if errors.Is(err, ErrNotProcessed) {
			t.Fatal("ENHANCE_YOUR_CALM reported as not processed")
		}
	}
}

// TestDeadlines: reads and writes give up at their deadlines with
// os.ErrDeadlineExceeded, and a new deadline lets them go on.
func TestDeadlines(t *testing.T) {
	client, server := pair(t, Config{}, Config{StreamWindow: 1024})
	cs, ss := streamPair(t, client, server)

	cs.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := cs.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("read deadline took %v", d)
	}
	// A deadline moved while Read waits applies at once.
	cs.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		cs.SetReadDeadline(time.Now())
	}()
	if _, err := cs.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after moved deadline: %v", err)
	}

	// The server reads nothing, so the client's writes stall on the
	// 1024-byte stream window once our SETTINGS are acknowledged.
	if _, err := client.PeerSettings(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	cs.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := cs.Write(make([]byte, 100<<10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: n=%d %v", n, err)
	}
	// Drain the server side: the write goes on with a new deadline.
	cs.SetWriteDeadline(time.Time{})
	go io.Copy(io.Discard, ss)
	if _, err := cs.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	cs.Close()
}

// TestRoundTripCancel: cancelling the request's context while waiting
// for the response, and while reading the body, resets the stream.
func TestRoundTripCancel(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	resets := make(chan error, 2)
	serve(t, server, func(s *Stream) {
		h, _ := s.Header(context.Background())
		if value(h, ":path") == "/body" {
			s.WriteHeader(status(200), false)
			s.Write([]byte("partial"))
		}
		_, err := io.Copy(io.Discard, s)
		resets <- err
	})
	checkReset := func() {
		select {
		case err := <-resets:
			var se *StreamError
			if !errors.As(err, &se) || !se.Remote || se.Code != http2.ErrCodeCancel {
				t.Fatalf("server saw %v, want CANCEL", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server saw no reset")
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://127.0.0.1/wait", pr)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := client.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip: %v", err)
	}
	checkReset()

	ctx, cancel = context.WithCancel(context.Background())
	pr, pw = io.Pipe()
	defer pw.Close()
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://127.0.0.1/body", pr)
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("body read after cancel: %v", err)
	}
	// The request body, an open pipe, is closed for us.
	closed := make(chan struct{})
	go func() {
		for {
			if _, err := pw.Write([]byte("x")); err != nil {
				close(closed)
				return
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("request body still open")
	}
	resp.Body.Close()
	checkReset()
}

// TestBodyCloseResets: closing a response body early resets the stream
// with CANCEL.
func TestBodyCloseResets(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	reset := make(chan error, 1)
	serve(t, server, func(s *Stream) {
		s.WriteHeader(status(200), false)
		var err error
		for err == nil {
			_, err = s.Write(make([]byte, 32<<10))
		}
		reset <- err
	})
	req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 100))
	resp.Body.Close()
	select {
	case err := <-reset:
		var se *StreamError
		if !errors.As(err, &se) || se.Code != http2.ErrCodeCancel || !se.Remote {
			t.Fatalf("server write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server was not reset")
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

func TestPing(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 5*time.Second)
	for range 3 {
		if err := client.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if err := server.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	server.Close()
	if err := client.Ping(ctx); err == nil {
		t.Fatal("ping on a dead connection succeeded")
	}
}

// TestShutdown: Shutdown sends GOAWAY, waits for the open stream, and
// refuses new ones.
func TestShutdown(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	cs, ss := streamPair(t, client, server)
	done := make(chan error, 1)
	go func() { done <- server.Shutdown(testCtx(t, 10*time.Second)) }()

	deadline := time.Now().Add(5 * time.Second)
	for !client.State().Closing {
		if time.Now().After(deadline) {
			t.Fatal("client never saw GOAWAY")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if client.CanTakeNewRequest() {
		t.Fatal("CanTakeNewRequest after GOAWAY")
	}
	if _, err := client.OpenStream(testCtx(t, time.Second), reqFields("GET", "/"), true); !errors.Is(err, ErrNotProcessed) {
		t.Fatalf("OpenStream after GOAWAY: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a stream open", err)
	case <-time.After(100 * time.Millisecond):
	}
	// The open stream still works both ways.
	if _, err := cs.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	cs.CloseWrite()
	if b, err := io.ReadAll(ss); err != nil || string(b) != "ping" {
		t.Fatalf("server read %q, %v", b, err)
	}
	ss.Write([]byte("pong"))
	ss.CloseWrite()
	if b, err := io.ReadAll(cs); err != nil || string(b) != "pong" {
		t.Fatalf("client read %q, %v", b, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	<-client.Done()
	var ga *GoAwayError
	if err := client.Err(); !errors.As(err, &ga) || !ga.Remote || ga.Code != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("client Err = %v", err)
	}
	if !errors.Is(server.Err(), ErrConnClosed) {
		t.Fatalf("server Err = %v", server.Err())
	}
}

// TestShutdownTimeout: Shutdown gives up when its context ends.
func TestShutdownTimeout(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	cs, _ := streamPair(t, client, server)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := server.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	cs.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cs.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after peer closed: %v", err)
	}
}

// TestConcurrencyLimit: OpenStream waits for room under the server's
// MAX_CONCURRENT_STREAMS, and gives up with its context.
func TestConcurrencyLimit(t *testing.T) {
	client, server := pair(t, Config{}, Config{MaxConcurrentStreams: 2})
	ctx := testCtx(t, 5*time.Second)
	if _, err := client.PeerSettings(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := streamPair(t, client, server)
	b, _ := streamPair(t, client, server)
	if client.CanTakeNewRequest() {
		t.Fatal("CanTakeNewRequest with the limit reached")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := client.OpenStream(short, reqFields("GET", "/"), true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenStream over the limit: %v", err)
	}
	opened := make(chan error, 1)
	go func() {
		_, err := client.OpenStream(ctx, reqFields("GET", "/"), true)
		opened <- err
	}()
	for st := client.State(); st.StreamsPending != 1 || st.MaxConcurrentStreams != 2; st = client.State() {
		if ctx.Err() != nil {
			t.Fatalf("state %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	a.Reset(http2.ErrCodeCancel)
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestContinuation: header blocks larger than a frame go out as HEADERS
// plus CONTINUATION and arrive whole, both ways.
func TestContinuation(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	big := strings.Repeat("v", 12<<10)
	serve(t, server, func(s *Stream) {
		h, _ := s.Header(context.Background())
		s.WriteHeader(status(200, "x-a", value(h, "x-a"), "x-b", value(h, "x-b"), "x-c", value(h, "x-c")), true)
	})
	// Random values defeat HPACK's Huffman coding.
	ra, rb, rc := fmt.Sprintf("%x", randBytes(8<<10)), fmt.Sprintf("%x", randBytes(8<<10)), big
	req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	req.Header.Set("X-A", ra)
	req.Header.Set("X-B", rb)
	req.Header.Set("X-C", rc)
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-A") != ra || resp.Header.Get("X-B") != rb || resp.Header.Get("X-C") != rc {
		t.Fatal("headers lost on the way")
	}
	if resp.ContentLength != 0 {
		t.Fatalf("ContentLength %d for a response without body", resp.ContentLength)
	}
}

// TestHeaderListTooLarge: neither side sends more than the other's
// MAX_HEADER_LIST_SIZE, and a response beyond ours resets the stream.
func TestHeaderListTooLarge(t *testing.T) {
	client, server := pair(t, Config{MaxHeaderListSize: 4096}, Config{MaxHeaderListSize: 4096})
	writeErr := make(chan error, 1)
	serve(t, server, func(s *Stream) {
		h, _ := s.Header(context.Background())
		v := value(h, "x-want")
		writeErr <- s.WriteHeader(status(200, "x-a", v, "x-b", v), true)
		s.Close()
	})
	ctx := testCtx(t, 5*time.Second)
	if _, err := client.PeerSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := server.PeerSettings(ctx); err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf("%x", randBytes(2048))
	if _, err := client.OpenStream(ctx, reqFields("GET", "/", "x-big", big+big), true); !errors.Is(err, ErrHeaderListTooLarge) {
		t.Fatalf("OpenStream: %v", err)
	}
	s, err := client.OpenStream(ctx, reqFields("GET", "/", "x-want", big[:3000]), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-writeErr; !errors.Is(err, ErrHeaderListTooLarge) {
		t.Fatalf("server WriteHeader: %v", err)
	}
	if _, err := s.Header(ctx); err == nil {
		t.Fatal("got a header the server should not have sent")
	}

	// A server that ignores our limit gets its stream reset.
	server.mu.Lock()
	server.peerMaxHdr = 1 << 30
	server.mu.Unlock()
	s, err = client.OpenStream(ctx, reqFields("GET", "/", "x-want", big[:3000]), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	_, err = s.Header(ctx)
	var se *StreamError
	if !errors.As(err, &se) || se.Remote || se.Code != http2.ErrCodeProtocol || !errors.Is(err, ErrPeerHeaderListTooLarge) {
		t.Fatalf("oversized response: %v", err)
	}
	if client.Err() != nil {
		t.Fatalf("connection ended: %v", client.Err())
	}
}

// TestCloseFailsStreams: Close fails open streams with ErrConnClosed and
// may be called again.
func TestCloseFailsStreams(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	cs, ss := streamPair(t, client, server)
	readErr := make(chan error, 1)
	go func() {
		_, err := cs.Read(make([]byte, 1))
		readErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	client.Close()
	client.Close()
	if err := <-readErr; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("read: %v", err)
	}
	if _, err := cs.Write([]byte("x")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("write: %v", err)
	}
	if !client.State().Closed {
		t.Fatal("State not closed")
	}
	ss.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(ss); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("server read: %v", err)
	}
}

// debugState describes the windows and streams, to explain a stall.
func (c *Conn) debugState() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := fmt.Sprintf("closed=%v err=%v sendAvail=%d in=%+v buffered=%d ctrl=%d acked=%v peerInit=%d",
		c.closed, c.err, c.sendAvail, c.in, c.buffered, len(c.ctrl), c.ourAcked, c.peerInitWin)
	for id, s := range c.streams {
		out += fmt.Sprintf("\n  stream %d: sendAvail=%d in=%+v buf=%d sentEnd=%v recvEnd=%v", id, s.sendAvail, s.in, s.buf.Len(), s.sentEnd, s.recvEnd)
	}
	return out
}

// TestConnect: Connect returns the stream itself with the response, for
// the caller to read and write, and keeps the body of a refusal on it.
func TestConnect(t *testing.T) {
	client, server := pair(t, Config{}, Config{Settings: []http2.Setting{{ID: http2.SettingEnableConnectProtocol, Val: 1}}})
	serve(t, server, func(s *Stream) {
		h, _ := s.Header(context.Background())
		if value(h, ":path") == "/no" {
			s.WriteHeader(status(403), false)
			s.Write([]byte("go away"))
			s.Close()
			return
		}
		echo(s)
	})
	connect := func(path string) (*http.Response, *Stream) {
		req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), http.MethodConnect, "https://example.test"+path, nil)
		req.Header.Set(":protocol", "webtransport")
		resp, st, err := client.Connect(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, st
	}
	resp, st := connect("/yes")
	if resp.StatusCode != 200 || resp.Body != http.NoBody {
		t.Fatalf("status %d, body %v", resp.StatusCode, resp.Body)
	}
	if _, err := st.Write([]byte("capsules")); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	if got, err := io.ReadAll(st); err != nil || string(got) != "capsules" {
		t.Fatalf("echo %q, %v", got, err)
	}
	st.Close()

	resp, st = connect("/no")
	if got, err := io.ReadAll(st); resp.StatusCode != 403 || err != nil || string(got) != "go away" {
		t.Fatalf("refusal %d %q, %v", resp.StatusCode, got, err)
	}
	st.Close()

	req, _ := http.NewRequest(http.MethodGet, "https://example.test/", nil)
	if _, _, err := client.Connect(req); err == nil {
		t.Error("Connect took a GET")
	}
}
