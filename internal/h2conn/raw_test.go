package h2conn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawPeer speaks HTTP/2 frame by frame, to test what a well-behaved
// peer would never send.
type rawPeer struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	ebuf bytes.Buffer
}

func newRawPeer(t *testing.T, nc net.Conn) *rawPeer {
	p := &rawPeer{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.fr.AllowIllegalWrites = true
	p.enc = hpack.NewEncoder(&p.ebuf)
	return p
}

// read returns the next frame, failing the test after 5 s.
func (p *rawPeer) read() http2.Frame {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := p.fr.ReadFrame()
	if err != nil {
		p.t.Fatalf("raw peer read: %v", err)
	}
	return f
}

// next returns the next frame of type T, skipping others.
func next[T http2.Frame](p *rawPeer) T {
	p.t.Helper()
	for {
		if f, ok := p.read().(T); ok {
			return f
		}
	}
}

func (p *rawPeer) block(fields ...string) []byte {
	p.ebuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(p.ebuf.Bytes())
}

func (p *rawPeer) headers(id uint32, end bool, fields ...string) {
	p.t.Helper()
	err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(fields...), EndStream: end, EndHeaders: true})
	if err != nil {
		p.t.Fatal(err)
	}
}

// rawServer connects our client to a raw server that has exchanged
// SETTINGS (and acknowledged the client's).
func rawServer(t *testing.T, cfg Config, settings ...http2.Setting) (*Conn, *rawPeer) {
	cnc, snc := tcpPair(t)
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
	p.fr.WriteSettings(settings...)
	p.fr.WriteSettingsAck()
	if _, err := client.PeerSettings(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	return client, p
}

// rawClient connects a raw client to our server.
func rawClient(t *testing.T, cfg Config) (*Conn, *rawPeer) {
	cnc, snc := tcpPair(t)
	p := newRawPeer(t, cnc)
	io.WriteString(cnc, http2.ClientPreface)
	p.fr.WriteSettings()
	server, err := NewServer(testCtx(t, 5*time.Second), snc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if sf, ok := p.read().(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatal("server did not start with SETTINGS")
	}
	p.fr.WriteSettingsAck()
	return server, p
}

// expectGoAway reads up to the GOAWAY and checks its code and that the
// connection then ends with it.
func expectGoAway(t *testing.T, c *Conn, p *rawPeer, code http2.ErrCode) {
	t.Helper()
	ga := next[*http2.GoAwayFrame](p)
	if ga.ErrCode != code {
		t.Fatalf("GOAWAY %v (%s), want %v", ga.ErrCode, ga.DebugData(), code)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not end")
	}
	var ge *GoAwayError
	if err := c.Err(); !errors.As(err, &ge) || ge.Remote || ge.Code != code {
		t.Fatalf("Err = %v", err)
	}
}

// TestRawStreamWindowViolation: DATA beyond a stream's window resets the
// stream with FLOW_CONTROL_ERROR and leaves the connection up.
func TestRawStreamWindowViolation(t *testing.T) {
	client, p := rawServer(t, Config{StreamWindow: 1024})
	ctx := testCtx(t, 5*time.Second)
	s, err := client.OpenStream(ctx, reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.headers(s.ID(), false, ":status", "200")
	p.fr.WriteData(s.ID(), false, make([]byte, 2000))
	rst := next[*http2.RSTStreamFrame](p)
	if rst.StreamID != s.ID() || rst.ErrCode != http2.ErrCodeFlowControl {
		t.Fatalf("RST_STREAM %d %v", rst.StreamID, rst.ErrCode)
	}
	var se *StreamError
	if _, err := s.Read(make([]byte, 10)); !errors.As(err, &se) || se.Remote || se.Code != http2.ErrCodeFlowControl {
		t.Fatalf("read: %v", err)
	}
	if client.Err() != nil {
		t.Fatal(client.Err())
	}
}

// TestRawConnWindowViolation: DATA beyond the connection window is a
// connection error.
func TestRawConnWindowViolation(t *testing.T) {
	client, p := rawServer(t, Config{ConnWindow: 65535})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.headers(s.ID(), false, ":status", "200")
	go func() {
		for range 5 {
			if p.fr.WriteData(s.ID(), false, make([]byte, 16384)) != nil {
				return
			}
		}
	}()
	expectGoAway(t, client, p, http2.ErrCodeFlowControl)
}

// TestRawGoAwayLastStream: streams above the GOAWAY's last stream ID fail
// as not processed; the one below finishes, then the connection closes.
func TestRawGoAwayLastStream(t *testing.T) {
	client, p := rawServer(t, Config{})
	ctx := testCtx(t, 5*time.Second)
	var ss []*Stream
	for range 3 {
		s, err := client.OpenStream(ctx, reqFields("GET", "/"), true)
		if err != nil {
			t.Fatal(err)
		}
		next[*http2.MetaHeadersFrame](p)
		ss = append(ss, s)
	}
	p.fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
	for _, s := range ss[1:] {
		if _, err := s.Header(ctx); !errors.Is(err, ErrNotProcessed) {
			t.Fatalf("stream %d: %v", s.ID(), err)
		}
	}
	if st := client.State(); !st.Closing || st.StreamsActive != 1 {
		t.Fatalf("state %+v", st)
	}
	p.headers(1, false, ":status", "204")
	p.fr.WriteData(1, true, nil)
	if h, err := ss[0].Header(ctx); err != nil || value(h, ":status") != "204" {
		t.Fatalf("stream 1: %v %v", h, err)
	}
	select {
	case <-client.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not close when idle")
	}
	var ga *GoAwayError
	if err := client.Err(); !errors.As(err, &ga) || !ga.Remote || ga.Debug != "bye" || ga.LastStreamID != 1 {
		t.Fatalf("Err = %v", err)
	}
	if _, err := io.ReadAll(ss[0]); err != nil {
		t.Fatalf("finished stream after close: %v", err)
	}
}

func TestRawInterleavedContinuation(t *testing.T) {
	client, p := rawServer(t, Config{})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.ID(), BlockFragment: p.block(":status", "200")})
	p.fr.WritePing(false, [8]byte{})
	expectGoAway(t, client, p, http2.ErrCodeProtocol)
	if _, err := s.Read(nil); err == nil {
		t.Fatal("stream survived a connection error")
	}
}

func TestRawPushPromise(t *testing.T) {
	client, p := rawServer(t, Config{})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: s.ID(), PromiseID: 2, BlockFragment: p.block(":method", "GET"), EndHeaders: true})
	expectGoAway(t, client, p, http2.ErrCodeProtocol)
}

func TestRawFirstFrameNotSettings(t *testing.T) {
	cnc, snc := tcpPair(t)
	client, err := NewClient(cnc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p := newRawPeer(t, snc)
	io.ReadFull(snc, make([]byte, len(http2.ClientPreface)))
	p.fr.WritePing(false, [8]byte{1})
	expectGoAway(t, client, p, http2.ErrCodeProtocol)
}

// TestRawTolerated: PRIORITY, unknown frames, padding, 1xx responses,
// CONTINUATION, PING and trailers all pass without harm.
func TestRawTolerated(t *testing.T) {
	client, p := rawServer(t, Config{})
	ctx := testCtx(t, 5*time.Second)
	s, err := client.OpenStream(ctx, reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	next[*http2.MetaHeadersFrame](p)
	p.fr.WritePriority(id, http2.PriorityParam{StreamDep: 0, Weight: 9})
	p.fr.WriteRawFrame(0xfa, 0xff, id, []byte("unknown"))
	p.headers(id, false, ":status", "103", "link", "</a>")
	long := fmt.Sprintf("%x", randBytes(12000))
	blk := p.block(":status", "200", "x-long", long)
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk[:10]})
	p.fr.WriteContinuation(id, false, blk[10:20])
	p.fr.WriteContinuation(id, false, blk[20:16000])
	p.fr.WriteContinuation(id, true, blk[16000:])
	p.fr.WritePing(false, [8]byte{7})
	if ack := next[*http2.PingFrame](p); !ack.IsAck() || ack.Data != [8]byte{7} {
		t.Fatalf("PING answer %+v", ack)
	}
	p.fr.WriteDataPadded(id, false, []byte("hello "), make([]byte, 200))
	p.fr.WriteData(id, false, []byte("world"))
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block("x-trailer", "t"), EndStream: true, EndHeaders: true})
	h, err := s.Header(ctx)
	if err != nil || value(h, ":status") != "200" || value(h, "x-long") != long {
		t.Fatalf("header %v", err)
	}
	if b, err := io.ReadAll(s); err != nil || string(b) != "hello world" {
		t.Fatalf("body %q %v", b, err)
	}
	if err := client.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRawPeerWindowSettings: a change of the peer's INITIAL_WINDOW_SIZE
// applies to open streams, and WINDOW_UPDATE releases the rest.
func TestRawPeerWindowSettings(t *testing.T) {
	client, p := rawServer(t, Config{}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("POST", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(pattern(100))
		done <- err
	}()
	var got []byte
	readData := func(want int) {
		for len(got) < want {
			got = append(got, next[*http2.DataFrame](p).Data()...)
		}
		if len(got) != want {
			t.Fatalf("got %d bytes, want %d", len(got), want)
		}
	}
	readData(10)
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 60})
	readData(60)
	p.fr.WriteWindowUpdate(s.ID(), 40)
	readData(100)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pattern(100)) {
		t.Fatal("data corrupted")
	}
	s.Close()
}

// TestRawServerRefusesOverLimit: a client that ignores our
// MAX_CONCURRENT_STREAMS gets REFUSED_STREAM.
func TestRawServerRefusesOverLimit(t *testing.T) {
	server, p := rawClient(t, Config{MaxConcurrentStreams: 1})
	req := []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a"}
	p.headers(1, true, req...)
	p.headers(3, true, req...)
	rst := next[*http2.RSTStreamFrame](p)
	if rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("RST_STREAM %d %v", rst.StreamID, rst.ErrCode)
	}
	s, err := server.AcceptStream(testCtx(t, 5*time.Second))
	if err != nil || s.ID() != 1 {
		t.Fatalf("accept: %v", err)
	}
	// Still full; then DATA on a stream only a server could open, which
	// is idle, is a connection error.
	p.headers(5, true, req...)
	if rst := next[*http2.RSTStreamFrame](p); rst.StreamID != 5 {
		t.Fatalf("RST_STREAM %d", rst.StreamID)
	}
	p.fr.WriteData(2, false, []byte("x"))
	expectGoAway(t, server, p, http2.ErrCodeProtocol)
}

// TestRawOversizedRequest: a request header list beyond our limit gets
// 431; a malformed request gets PROTOCOL_ERROR; a single field beyond the
// limit breaks HPACK decoding, a connection error.
func TestRawOversizedRequest(t *testing.T) {
	server, p := rawClient(t, Config{MaxHeaderListSize: 4096})
	big := strings.Repeat("b", 1000)
	p.headers(1, true, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a",
		"x-1", big, "x-2", big, "x-3", big, "x-4", big, "x-5", big)
	mh := next[*http2.MetaHeadersFrame](p)
	if mh.StreamID != 1 || mh.PseudoValue("status") != "431" || !mh.StreamEnded() {
		t.Fatalf("answer on %d: %v", mh.StreamID, mh.Fields)
	}
	p.headers(3, true, ":method", "GET", ":path", "/")
	if rst := next[*http2.RSTStreamFrame](p); rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("RST_STREAM %d %v", rst.StreamID, rst.ErrCode)
	}
	p.headers(5, true, ":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", "a")
	if rst := next[*http2.RSTStreamFrame](p); rst.StreamID != 5 || rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("extended CONNECT without the setting: RST_STREAM %d %v", rst.StreamID, rst.ErrCode)
	}
	if server.Err() != nil {
		t.Fatal(server.Err())
	}
	if st := server.State(); st.StreamsActive != 0 {
		t.Fatalf("streams %d", st.StreamsActive)
	}
	p.headers(7, true, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a", "x-big", strings.Repeat("b", 5000))
	expectGoAway(t, server, p, http2.ErrCodeCompression)
}

// TestRawResetNoError: RST_STREAM(NO_ERROR) after a complete response
// stops our upload but leaves the response readable.
func TestRawResetNoError(t *testing.T) {
	client, p := rawServer(t, Config{})
	ctx := testCtx(t, 5*time.Second)
	s, err := client.OpenStream(ctx, reqFields("POST", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.headers(s.ID(), false, ":status", "200")
	p.fr.WriteData(s.ID(), true, []byte("complete"))
	p.fr.WriteRSTStream(s.ID(), http2.ErrCodeNo)
	p.fr.WritePing(false, [8]byte{9})
	next[*http2.PingFrame](p) // the client has handled the reset
	var se *StreamError
	if _, err := s.Write([]byte("more")); !errors.As(err, &se) || se.Code != http2.ErrCodeNo || !se.Remote {
		t.Fatalf("write: %v", err)
	}
	if b, err := io.ReadAll(s); err != nil || string(b) != "complete" {
		t.Fatalf("read %q %v", b, err)
	}
	if st := client.State(); st.StreamsActive != 0 {
		t.Fatalf("streams %d", st.StreamsActive)
	}
}

// TestRawResetBeforeAcceptBounded: streams a client opens and resets
// before AcceptStream takes them leave the concurrency count, but they must
// not pile up in the accept queue without bound (rapid reset).
func TestRawResetBeforeAcceptBounded(t *testing.T) {
	server, p := rawClient(t, Config{MaxConcurrentStreams: 4})
	req := []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a"}
	for i := range 100 {
		id := uint32(2*i + 1)
		p.headers(id, false, req...)
		p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	p.fr.WritePing(false, [8]byte{3})
	refused := 0
	for {
		f := p.read()
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.ErrCode == http2.ErrCodeRefusedStream {
			refused++
		}
		if pf, ok := f.(*http2.PingFrame); ok && pf.IsAck() {
			break
		}
	}
	server.mu.Lock()
	queued := len(server.acceptQ)
	server.mu.Unlock()
	if queued > 4 || refused != 100-queued {
		t.Fatalf("%d streams queued for accept, %d refused; want at most 4 queued, the rest refused", queued, refused)
	}
	// Once the application takes them, new streams are accepted again.
	ctx := testCtx(t, 5*time.Second)
	for range queued {
		if _, err := server.AcceptStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.headers(201, true, req...)
	if s, err := server.AcceptStream(ctx); err != nil || s.ID() != 201 {
		t.Fatalf("accept after draining: %v", err)
	}
}

// TestRawHeaderTableShrinkAndGrow: a HEADER_TABLE_SIZE that drops to 0
// and rises again before our next header block must still be signalled
// at the start of that block (RFC 7541 section 4.2), or a decoder that
// evicted its table on the first change mis-decodes our headers.
func TestRawHeaderTableShrinkAndGrow(t *testing.T) {
	client, p := rawServer(t, Config{})
	ctx := testCtx(t, 5*time.Second)
	if _, err := client.OpenStream(ctx, reqFields("GET", "/", "x-index-me", "please"), true); err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096})
	for acks := 0; acks < 2; {
		if sf := next[*http2.SettingsFrame](p); sf.IsAck() {
			acks++
		}
	}
	if _, err := client.OpenStream(ctx, reqFields("GET", "/", "x-index-me", "please"), true); err != nil {
		t.Fatal(err)
	}
	p.fr.ReadMetaHeaders = nil // look at the encoded block
	hf := next[*http2.HeadersFrame](p)
	if blk := hf.HeaderBlockFragment(); len(blk) == 0 || blk[0] != 0x20 {
		t.Fatalf("header block starts % x, want a table size update to 0 (20)", blk[:min(len(blk), 4)])
	}
}

// gateConn lets the first Write that starts after arm reach the peer,
// then holds the writer until open is closed.
type gateConn struct {
	net.Conn
	armed atomic.Bool
	open  chan struct{}
}

func (g *gateConn) Write(p []byte) (int, error) {
	hold := g.armed.CompareAndSwap(true, false)
	n, err := g.Conn.Write(p)
	if hold {
		<-g.open
	}
	return n, err
}

// TestRawSlotFreeWhenEndStreamSent: once a client has seen the END_STREAM
// that completes a stream, it may open another at once under
// MAX_CONCURRENT_STREAMS; the server must not still count the old stream,
// even when the goroutine that wrote the END_STREAM has not run on yet.
func TestRawSlotFreeWhenEndStreamSent(t *testing.T) {
	cnc, snc := tcpPair(t)
	gate := &gateConn{Conn: snc, open: make(chan struct{})}
	p := newRawPeer(t, cnc)
	io.WriteString(cnc, http2.ClientPreface)
	p.fr.WriteSettings()
	server, err := NewServer(testCtx(t, 5*time.Second), gate, Config{MaxConcurrentStreams: 1})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(func() { release(); server.Close() })
	for {
		if sf := next[*http2.SettingsFrame](p); sf.IsAck() {
			break
		}
	}
	p.fr.WriteSettingsAck()
	req := []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a"}
	p.headers(1, true, req...)
	ctx := testCtx(t, 5*time.Second)
	s, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gate.armed.Store(true)
	go s.WriteHeader(status(200), true) // parked right after its flush
	if mh := next[*http2.MetaHeadersFrame](p); mh.StreamID != 1 || !mh.StreamEnded() {
		t.Fatalf("got HEADERS on %d, END_STREAM %v", mh.StreamID, mh.StreamEnded())
	}
	p.headers(3, true, req...)
	for {
		server.mu.Lock()
		seen := server.maxPeerID == 3
		queued := len(server.acceptQ)
		server.mu.Unlock()
		if seen {
			if queued != 1 {
				t.Fatal("stream 3 refused: stream 1 still held the only slot after its END_STREAM went out")
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("server never saw stream 3")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if s, err := server.AcceptStream(ctx); err != nil || s.ID() != 3 {
		t.Fatalf("accept: %v", err)
	}
}
