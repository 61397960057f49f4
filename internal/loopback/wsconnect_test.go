package loopback

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// openFunc opens an extended CONNECT stream for req (already a CONNECT). It
// returns the stream only with a 200 response.
type openFunc func(req *http.Request) (*http.Response, io.ReadWriteCloser, error)

// connectRT is the client half of the synthetic-101 trick: coder/websocket
// sends it an HTTP/1.1 upgrade, it opens an extended CONNECT stream instead
// and answers with the 101 coder/websocket expects, the stream as its body.
type connectRT struct{ open openFunc }

func (rt connectRT) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Header.Get("Sec-WebSocket-Key")
	creq := req.Clone(req.Context())
	creq.Method = http.MethodConnect
	for _, k := range []string{"Connection", "Upgrade", "Sec-WebSocket-Key"} {
		creq.Header.Del(k)
	}
	resp, stream, err := rt.open(creq)
	if err != nil || stream == nil {
		return resp, err
	}
	h := resp.Header.Clone()
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	h.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	return &http.Response{
		Status:     "101 Switching Protocols",
		StatusCode: http.StatusSwitchingProtocols,
		Proto:      resp.Proto,
		ProtoMajor: resp.ProtoMajor,
		ProtoMinor: resp.ProtoMinor,
		Header:     h,
		Body:       stream,
		Request:    req,
	}, nil
}

// dialH2 opens a TLS connection offering only h2 and an x/net HTTP/2 client
// connection on it.
func dialH2(t *testing.T, ca *CA, addr string) *http2.ClientConn {
	t.Helper()
	conf := ca.ClientConfig()
	conf.NextProtos = []string{http2.NextProtoTLS}
	d := tls.Dialer{Config: conf, NetDialer: &net.Dialer{Timeout: 3 * time.Second}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
		c.Close()
		t.Fatalf("negotiated %q, want h2", p)
	}
	cc, err := (&http2.Transport{}).NewClientConn(c)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// h2Open opens RFC 8441 streams on cc.
func h2Open(cc *http2.ClientConn) openFunc {
	return func(req *http.Request) (*http.Response, io.ReadWriteCloser, error) {
		pr, pw := io.Pipe()
		req.Body, req.ContentLength = pr, -1
		req.Header[":protocol"] = []string{"websocket"}
		resp, err := cc.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			pw.Close()
			return resp, nil, err
		}
		return resp, &pipeStream{ReadCloser: resp.Body, w: pw}, nil
	}
}

// pipeStream is an HTTP/2 CONNECT stream: the response body and the writer
// of the request body.
type pipeStream struct {
	io.ReadCloser
	w *io.PipeWriter
}

func (p *pipeStream) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *pipeStream) Close() error {
	p.w.Close()
	return p.ReadCloser.Close()
}

// dialH3 dials a QUIC connection with ALPN h3 from a fresh UDP socket and
// wraps it in an HTTP/3 client connection whose SETTINGS have arrived.
func dialH3(t *testing.T, ca *CA, addr net.Addr) (*quic.Conn, *http3.ClientConn) {
	t.Helper()
	ua := addr.(*net.UDPAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ua.IP})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() {
		tr.Close()
		udp.Close()
	})
	conf := ca.ClientConfig()
	conf.NextProtos = []string{http3.NextProtoH3}
	conf.ServerName = ua.IP.String()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, addr, conf, quicServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qc)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		t.Fatal("no HTTP/3 SETTINGS from the server")
	}
	return qc, cc
}

// h3Open opens RFC 9220 streams on cc.
func h3Open(cc *http3.ClientConn) openFunc {
	return func(req *http.Request) (*http.Response, io.ReadWriteCloser, error) {
		rs, err := cc.OpenRequestStream(req.Context())
		if err != nil {
			return nil, nil, err
		}
		req.Proto = "websocket"
		if err := rs.SendRequestHeader(req); err != nil {
			rs.Close()
			return nil, nil, err
		}
		resp, err := rs.ReadResponse()
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, nil, err
		}
		return resp, h3Stream{rs}, nil
	}
}

// h3Stream is an HTTP/3 CONNECT stream. Its Close ignores the error quic-go
// reports when the server already ended the stream.
type h3Stream struct{ *http3.RequestStream }

func (s h3Stream) Close() error {
	s.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
	_ = s.RequestStream.Close()
	return nil
}

// checkEcho runs EchoHandler's contract over a WebSocket dialled through rt:
// headers both ways, subprotocol, compression, echo of every message type,
// close handshake.
func checkEcho(t *testing.T, rt http.RoundTripper, url, wantProto string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: rt},
		HTTPHeader:      http.Header{"X-Test": {"hello-" + wantProto}},
		Subprotocols:    []string{"nope", "chat", "echo"},
		CompressionMode: websocket.CompressionContextTakeover,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if resp.Proto != wantProto {
		t.Errorf("carried over %q, want %q", resp.Proto, wantProto)
	}
	if got := resp.Header.Get("X-Test"); got != "hello-"+wantProto {
		t.Errorf("X-Test = %q, want it echoed", got)
	}
	if got := c.Subprotocol(); got != "chat" {
		t.Errorf("subprotocol %q, want chat", got)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Errorf("extensions %q, want permessage-deflate", ext)
	}
	big := bytes.Repeat([]byte("eyeballs "), 20000)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{websocket.MessageText, big},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Fatalf("echo: got %v %d bytes, want %v %d bytes", typ, len(data), m.typ, len(m.data))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// checkReject checks that X-Reject: 1 gets a real 403 on the CONNECT stream.
func checkReject(t *testing.T, rt http.RoundTripper, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: rt},
		HTTPHeader: http.Header{"X-Reject": {"1"}},
	})
	if err == nil {
		c.CloseNow()
		t.Fatal("dial succeeded, want a rejection")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("response %v, err %v; want 403", resp, err)
	}
}

// TestEchoH2ExtendedConnect serves EchoHandler with the package's own
// HTTP/2 server, which offers RFC 8441 without GODEBUG=http2xconnect=1 (the
// net/http side is checked by internal/testkit, whose tests run with it).
func TestEchoH2ExtendedConnect(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cnt := NewCounter(l)
	srv, err := StartH2NoWebTransport(cnt, conf)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer srv.Close()
	cc := dialH2(t, ca, l.Addr().String())
	rt := connectRT{h2Open(cc)}
	url := "wss://" + l.Addr().String() + "/echo"
	checkEcho(t, rt, url, "HTTP/2.0")
	checkReject(t, rt, url)
	checkEcho(t, rt, url, "HTTP/2.0") // the connection survives both
	if n := cnt.Accepted(); n != 1 {
		t.Errorf("%d connections accepted, want every stream on one", n)
	}
	cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := cnt.WaitOpen(ctx, 0); err != nil {
		t.Error(err)
	}
}

// TestEchoH2ExtendedConnectMissingVersion checks that the adapter keeps
// RFC 8441's requirement of Sec-WebSocket-Version.
func TestEchoH2ExtendedConnectMissingVersion(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv, addr := startTLSEcho(t, ca)
	defer srv.Close()
	cc := dialH2(t, ca, addr)
	req, err := http.NewRequest(http.MethodConnect, "https://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, stream, err := h2Open(cc)(req)
	if err != nil {
		t.Fatal(err)
	}
	if stream != nil {
		stream.Close()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d without Sec-WebSocket-Version, want 400", resp.StatusCode)
	}
}

// startTLSEcho serves EchoHandler over TLS with HTTP/2 (the package's own
// server, extended CONNECT on) and HTTP/1.1.
func startTLSEcho(t *testing.T, ca *CA) (*WTH2Server, string) {
	t.Helper()
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartH2NoWebTransport(l, conf)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return srv, l.Addr().String()
}

func startH3(t *testing.T, ca *CA, host string) *H3Server {
	t.Helper()
	conf, err := ca.ServerConfig(host)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartH3(pc, conf, EchoHandler())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	return srv
}

func TestEchoH3ExtendedConnect(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			srv := startH3(t, ca, host)
			defer func() {
				if err := srv.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			qc, cc := dialH3(t, ca, srv.Addr())
			s := cc.Settings()
			if !s.EnableExtendedConnect || !s.EnableDatagrams {
				t.Errorf("SETTINGS %+v, want extended CONNECT and datagrams", s)
			}
			rt := connectRT{h3Open(cc)}
			url := "wss://" + srv.Addr().String() + "/echo"
			checkEcho(t, rt, url, "HTTP/3.0")
			checkReject(t, rt, url)
			checkEcho(t, rt, url, "HTTP/3.0")
			if n := srv.Accepted(); n != 1 {
				t.Errorf("%d QUIC connections accepted, want 1", n)
			}
			if n := srv.Open(); n != 1 {
				t.Errorf("%d QUIC connections open, want 1", n)
			}
			qc.CloseWithError(0, "done")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := srv.WaitOpen(ctx, 0); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestH3ServerCloseEndsWebSocket checks that H3Server.Close ends an open
// WebSocket and its handler.
func TestH3ServerCloseEndsWebSocket(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startH3(t, ca, "127.0.0.1")
	defer srv.Close()
	_, cc := dialH3(t, ca, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String(), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: connectRT{h3Open(cc)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := srv.Open(); n != 0 {
		t.Errorf("%d QUIC connections open after Close", n)
	}
	if _, _, err := c.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read after server close: %v, want the connection closed", err)
	}
}
