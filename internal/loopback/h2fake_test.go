package loopback

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Peer is a raw HTTP/2 client: a TLS connection with ALPN h2 and a framer
// on it, after the client preface and an empty SETTINGS.
type h2Peer struct {
	c  *tls.Conn
	fr *http2.Framer
}

func newH2Peer(t *testing.T, ca *CA, addr string) *h2Peer {
	t.Helper()
	conf := ca.ClientConfig()
	conf.NextProtos = []string{http2.NextProtoTLS}
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
		t.Fatalf("negotiated %q, want h2", p)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2Peer{c: c, fr: fr}
}

// serverSettings reads the server's first frame, which must be SETTINGS.
func (p *h2Peer) serverSettings(t *testing.T) map[http2.SettingID]uint32 {
	t.Helper()
	f, err := p.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("server's first frame is %v, want SETTINGS", f)
	}
	m := map[http2.SettingID]uint32{}
	sf.ForeachSetting(func(s http2.Setting) error {
		m[s.ID] = s.Val
		return nil
	})
	return m
}

// settled reads the server's SETTINGS and its ACK of ours: the server has
// then read everything sent so far, so closing the connection sends FIN,
// not RST.
func (p *h2Peer) settled(t *testing.T) {
	t.Helper()
	p.serverSettings(t)
	p.next(t, "SETTINGS ACK", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		return ok && sf.IsAck()
	})
}

// next reads frames until one satisfies ok.
func (p *h2Peer) next(t *testing.T, what string, ok func(http2.Frame) bool) http2.Frame {
	t.Helper()
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(f) {
			return f
		}
	}
}

func startH2Fake(t *testing.T, ca *CA) *H2FakeServer {
	t.Helper()
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartH2NoExtendedConnect(l, conf, EchoHandler())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

func TestH2NoExtendedConnectFrames(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startH2Fake(t, ca)
	p := newH2Peer(t, ca, srv.Addr().String())

	s := p.serverSettings(t)
	if _, ok := s[http2.SettingEnableConnectProtocol]; ok {
		t.Errorf("SETTINGS %v hold ENABLE_CONNECT_PROTOCOL", s)
	}
	if s[http2.SettingMaxConcurrentStreams] != fakeMaxConcurrentStreams {
		t.Errorf("SETTINGS %v, want MAX_CONCURRENT_STREAMS=%d", s, fakeMaxConcurrentStreams)
	}
	p.next(t, "SETTINGS ACK", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		return ok && sf.IsAck()
	})

	data := [8]byte{'e', 'y', 'e', 'b', 'a', 'l', 'l', 's'}
	if err := p.fr.WritePing(false, data); err != nil {
		t.Fatal(err)
	}
	p.next(t, "PING ACK", func(f http2.Frame) bool {
		pf, ok := f.(*http2.PingFrame)
		return ok && pf.IsAck() && pf.Data == data
	})

	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"}, {":path", "/echo"}, {":authority", srv.Addr().String()}, {"sec-websocket-version", "13"}} {
		enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	f := p.next(t, "response HEADERS", func(f http2.Frame) bool {
		_, ok := f.(*http2.MetaHeadersFrame)
		return ok
	}).(*http2.MetaHeadersFrame)
	if f.StreamID != 1 || f.PseudoValue("status") != "501" || !f.StreamEnded() {
		t.Errorf("response on stream %d: status %q, end stream %v; want 501 ending stream 1", f.StreamID, f.PseudoValue("status"), f.StreamEnded())
	}
	if n := srv.Accepted("h2"); n != 1 {
		t.Errorf("%d h2 connections accepted, want 1", n)
	}
}

// TestH2NoExtendedConnectClients checks the fake against real clients: an
// HTTP/2 client sees no extended CONNECT, an HTTP/1.1 WebSocket upgrade on
// the same port works, and both connections count as closed once the
// clients close them.
func TestH2NoExtendedConnectClients(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startH2Fake(t, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	cc := dialH2(t, ca, srv.Addr().String())
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, srv.URL()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-WebSocket-Version", "13")
	if resp, _, err := h2Open(cc)(req); err == nil {
		resp.Body.Close()
		t.Errorf("extended CONNECT got %d, want a client error", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "extended connect not supported") {
		t.Errorf("extended CONNECT: %v, want the client to see no extended CONNECT", err)
	}
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.RoundTrip(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || resp.ProtoMajor != 2 {
		t.Errorf("GET: %s %d, want HTTP/2 501", resp.Proto, resp.StatusCode)
	}

	tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	defer tr.CloseIdleConnections()
	c, resp, err := websocket.Dial(ctx, "wss://"+srv.Addr().String()+"/echo", &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   http.Header{"X-Test": {"h1"}},
		Subprotocols: []string{"echo"},
	})
	if err != nil {
		t.Fatalf("HTTP/1.1 WebSocket: %v", err)
	}
	defer c.CloseNow()
	if resp.Header.Get("X-Test") != "h1" || c.Subprotocol() != "echo" {
		t.Errorf("X-Test %q, subprotocol %q", resp.Header.Get("X-Test"), c.Subprotocol())
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("same port")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := c.Read(ctx); err != nil || string(data) != "same port" {
		t.Fatalf("echo %q, %v", data, err)
	}

	for proto, want := range map[string]int{"": 2, "h2": 1, "http/1.1": 1} {
		if n := srv.Accepted(proto); n != want {
			t.Errorf("Accepted(%q) = %d, want %d", proto, n, want)
		}
		if n := srv.Open(proto); n != want {
			t.Errorf("Open(%q) = %d, want %d", proto, n, want)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOpen(ctx, "http/1.1", 0); err != nil {
		t.Error(err)
	}
	cc.Close()
	if err := srv.WaitOpen(ctx, "", 0); err != nil {
		t.Error(err)
	}
}

// TestH2FakeCloseEndsConnections checks that Close ends connections that
// are still open on both sides: mid-handshake, fake HTTP/2 and WebSocket.
func TestH2FakeCloseEndsConnections(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startH2Fake(t, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	raw, err := net.Dial("tcp", srv.Addr().String()) // never starts TLS
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	p := newH2Peer(t, ca, srv.Addr().String())
	p.settled(t)
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	defer tr.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := srv.WaitOpen(ctx, "", 3); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Open(""); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Error("WebSocket read after Close succeeded")
	}
	p.c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.Copy(io.Discard, p.c); err != nil {
		t.Errorf("HTTP/2 connection after Close: %v, want EOF", err)
	}
}

func TestH2FakeCloseConnections(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startH2Fake(t, ca)
	p := newH2Peer(t, ca, srv.Addr().String())
	p.settled(t)
	srv.CloseConnections()
	if n := srv.Open(""); n != 0 {
		t.Errorf("%d connections open after CloseConnections", n)
	}
	if _, err := io.Copy(io.Discard, p.c); err != nil {
		t.Errorf("HTTP/2 connection after CloseConnections: %v, want EOF", err)
	}
	newH2Peer(t, ca, srv.Addr().String()).serverSettings(t)
	if n := srv.Accepted("h2"); n != 2 {
		t.Errorf("%d h2 connections accepted, want 2", n)
	}
}
