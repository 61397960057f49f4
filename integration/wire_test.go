package integration

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/eyeballs/dialer"
)

// captureH2 is a raw HTTP/2 server on one TLS connection: it enables
// extended CONNECT (RFC 8441 §3), records the header fields of the first
// request as they came off the wire, in order, and answers it with 200. It
// records the size of every DATA frame too, and grants window as the
// data arrives.
type captureH2 struct {
	l      net.Listener
	done   chan struct{}
	mu     sync.Mutex
	fields []hpack.HeaderField
	data   []int // DATA frame payload sizes, in order
	total  int   // their sum
}

func startCaptureH2(t *testing.T, conf *tls.Config) *captureH2 {
	conf = conf.Clone()
	conf.NextProtos = []string{"h2"}
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	s := &captureH2{l: l, done: make(chan struct{})}
	go s.serve()
	t.Cleanup(func() { l.Close(); <-s.done })
	return s
}

func (s *captureH2) serve() {
	defer close(s.done)
	c, err := s.l.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	go func() { <-s.done; c.Close() }()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings(http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1}) != nil {
		return
	}
	var block bytes.Buffer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			s.mu.Lock()
			if s.fields == nil {
				s.fields = f.Fields
			}
			s.mu.Unlock()
			block.Reset()
			hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
		case *http2.DataFrame:
			n := len(f.Data())
			s.mu.Lock()
			s.data = append(s.data, n)
			s.total += n
			s.mu.Unlock()
			if n > 0 {
				err = fr.WriteWindowUpdate(0, uint32(n))
				if err == nil {
					err = fr.WriteWindowUpdate(f.StreamID, uint32(n))
				}
			}
		case *http2.GoAwayFrame:
			return
		}
		if err != nil {
			return
		}
	}
}

// TestCloseNowDrains: what a WebSocket over HTTP/2 wrote behind still
// reaches the server after CloseNow, even when the application closes the
// Dialer's idle connections at once: the stream keeps its connection
// until it has sent everything (or closeDrain passes).
func TestCloseNowDrains(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	s := startCaptureH2(t, e.serverTLS())
	d := e.dialer()
	defer d.CloseIdleConnections()
	ws, _, err := d.DialWebSocket(ctx(t), "wss://"+s.l.Addr().String()+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	const size = 512 << 10
	if err := ws.Write(ctx(t), websocket.MessageBinary, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	ws.CloseNow()
	d.CloseIdleConnections()
	want := size + 14 // a client frame header of a 64-bit length (RFC 6455 §5.2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		total := s.total
		s.mu.Unlock()
		if total >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server received %d of the %d bytes written before CloseNow", total, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWireBatchedData: a WebSocket over HTTP/2 sends a large message in
// DATA frames as large as the server allows (RFC 9113 §4.2: 16 KiB here)
// rather than one per 4 KiB piece that coder/websocket writes, and a small
// message at once, in one frame (writebehind.go).
func TestWireBatchedData(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	s := startCaptureH2(t, e.serverTLS())
	d := e.dialer()
	defer d.CloseIdleConnections()
	ws, resp, err := d.DialWebSocket(ctx(t), "wss://"+s.l.Addr().String()+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("over HTTP/%d, want 2", resp.ProtoMajor)
	}
	// received waits until the server has n bytes, and returns the sizes
	// of the DATA frames that brought them.
	received := func(n int) []int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			total, data := s.total, slices.Clone(s.data)
			s.mu.Unlock()
			if total >= n {
				return data
			}
			if time.Now().After(deadline) {
				t.Fatalf("server has %d bytes in %d DATA frames, want %d", total, len(data), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	const big = 256 << 10 // 64 pieces of 4 KiB from coder/websocket
	if err := ws.Write(ctx(t), websocket.MessageBinary, make([]byte, big)); err != nil {
		t.Fatal(err)
	}
	frames := received(big + 14) // a client frame header of a 64-bit length: 14 bytes (RFC 6455 §5.2)
	// How much each batch holds depends on scheduling (the race detector
	// slows the writer): one frame per piece or less, some frame larger
	// than a piece, none larger than the server allows.
	if pieces := big / (4 << 10); len(frames) >= pieces || slices.Max(frames) <= 4<<10 {
		t.Errorf("%d KiB message in %d DATA frames, the largest %d bytes: writes are not batched (sizes %v)", big>>10, len(frames), slices.Max(frames), frames)
	}
	for _, n := range frames {
		if n > 16384 {
			t.Errorf("DATA frame of %d bytes above the server's SETTINGS_MAX_FRAME_SIZE 16384", n)
		}
	}
	before := len(frames)
	if err := ws.Write(ctx(t), websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if frames := received(big + 14 + 8); len(frames) != before+1 || frames[before] != 8 {
		t.Errorf("a 2-byte message went out in DATA frames %v, want one of 8 bytes", frames[before:])
	}
}

// TestWireExtendedConnectH2 checks, field by field as HPACK carried them,
// the extended CONNECT a WebSocket dial sends over HTTP/2 against the
// table in wsconnect.go (RFC 8441 §4–5, RFC 9113 §8.2–8.3).
func TestWireExtendedConnectH2(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.dns.A(host, "127.0.0.1")
	s := startCaptureH2(t, e.serverTLS())
	_, port, _ := net.SplitHostPort(s.l.Addr().String())
	url := "wss://" + host + ":" + port + "/echo?room=1&x=%2F"
	d := e.dialer(
		dialer.WithSubprotocols("chat", "echo"),
		dialer.WithHeader(http.Header{
			"X-Test":            {"a"},
			"Connection":        {"keep-alive"},
			"Keep-Alive":        {"5"},
			"Proxy-Connection":  {"keep-alive"},
			"Transfer-Encoding": {"chunked"},
			"Te":                {"gzip"},
			"Upgrade":           {"h2c"},
		}))
	defer d.CloseIdleConnections()
	ws, resp, err := d.DialWebSocket(ctx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("over HTTP/%d, want 2", resp.ProtoMajor)
	}
	s.mu.Lock()
	fields := s.fields
	s.mu.Unlock()
	var pseudo []string
	regular := map[string][]string{}
	for _, f := range fields {
		if f.Name != strings.ToLower(f.Name) {
			t.Errorf("field name %q is not lowercase (RFC 9113 §8.2)", f.Name)
		}
		if strings.HasPrefix(f.Name, ":") {
			if len(regular) > 0 {
				t.Errorf("pseudo-header %s after regular fields (RFC 9113 §8.3)", f.Name)
			}
			pseudo = append(pseudo, f.Name+"="+f.Value)
			continue
		}
		regular[f.Name] = append(regular[f.Name], f.Value)
	}
	slices.Sort(pseudo)
	want := []string{":authority=" + host + ":" + port, ":method=CONNECT", ":path=/echo?room=1&x=%2F", ":protocol=websocket", ":scheme=https"}
	if !slices.Equal(pseudo, want) {
		t.Errorf("pseudo-headers %q, want %q", pseudo, want)
	}
	for name, value := range map[string]string{"sec-websocket-version": "13", "sec-websocket-protocol": "chat,echo", "x-test": "a"} {
		if got := regular[name]; len(got) != 1 || got[0] != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
	for _, name := range []string{"connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding", "te", "host", "sec-websocket-key"} {
		if v, ok := regular[name]; ok {
			t.Errorf("%s: %q sent; RFC 8441 §5 / RFC 9113 §8.2.2 forbid it", name, v)
		}
	}
	if t.Failed() {
		t.Logf("fields on the wire: %v", fields)
	}
}

// TestWireExtendedConnectH3 checks what an HTTP/3 server (quic-go's)
// sees of a WebSocket's extended CONNECT (RFC 9220 §3, the same fields as
// RFC 8441 §5): the target with its query, the WebSocket fields and the
// caller's headers; connection-specific fields given to WithHeader do not
// break the dial (we drop them, and so does quic-go's client; its server
// refuses a request carrying them, RFC 9114 §4.2).
func TestWireExtendedConnectH3(t *testing.T) {
	e := newEnv(t, true, closed, closed)
	e.dns.A(host, "127.0.0.1")
	e.quic(h3, noUDP)
	d := e.dialer(dialer.WithProtocols("h3"), dialer.WithSubprotocols("chat"),
		dialer.WithHeader(http.Header{"X-Test": {"a"}, "Connection": {"keep-alive"}, "Te": {"gzip"}, "Transfer-Encoding": {"chunked"}}))
	defer d.CloseIdleConnections()
	ws, resp, err := d.DialWebSocket(ctx(t), e.url(true)+"?room=1")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 3 || resp.Header.Get("X-Host") != host+":"+itoa(e.port) || resp.Header.Get("X-Test") != "a" || ws.Subprotocol() != "chat" {
		t.Errorf("over HTTP/%d, :authority %q, X-Test %q, subprotocol %q", resp.ProtoMajor,
			resp.Header.Get("X-Host"), resp.Header.Get("X-Test"), ws.Subprotocol())
	}
	echo(t, ws, websocket.MessageText, []byte("hello"))
}
