package interop

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestApacheSchemeControl is the control for TestApacheWebSocketH2: over
// one HTTP/2 connection written by hand, it sends the extended CONNECT
// that RFC 8441 §5 asks for, with :scheme https, and the same with
// :scheme wss, which some clients send. mod_http2 turns the second into
// an absolute request line that httpd refuses with 400, so the library
// passing against Apache shows that it sends :scheme https.
func TestApacheSchemeControl(t *testing.T) {
	r := need(t, apache, "control: extended CONNECT by hand, :scheme https / wss")
	w := newWorld(t)
	a := startApache(t, w, r)
	c := dialH2(t, w, a.host, a.port)
	got := map[string]string{}
	for i, scheme := range []string{"https", "wss"} {
		got[scheme] = c.connect(t, uint32(2*i+1), scheme, a.host+":"+itoa(a.port), "/echo")
	}
	r.proto = "h2: https " + got["https"] + ", wss " + got["wss"]
	if got["https"] != "200" || got["wss"] != "400" {
		t.Errorf("Apache answered %s to :scheme https and %s to :scheme wss, want 200 and 400", got["https"], got["wss"])
	}
}

// h2Client is a bare HTTP/2 client connection for requests the library
// never sends.
type h2Client struct {
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer
}

// dialH2 opens a TLS connection with ALPN h2 to 127.0.0.1:port for host,
// exchanges SETTINGS, and checks that the server's enable extended
// CONNECT.
func dialH2(t testing.TB, w *world, host string, port int) *h2Client {
	t.Helper()
	conf := w.ca.ClientConfig()
	conf.ServerName, conf.NextProtos = host, []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+itoa(port), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &h2Client{conn: conn, fr: http2.NewFramer(conn, conn)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the server's SETTINGS: %v", err)
		}
		s, ok := f.(*http2.SettingsFrame)
		if !ok || s.IsAck() {
			continue
		}
		if v, ok := s.Value(http2.SettingEnableConnectProtocol); !ok || v != 1 {
			t.Fatalf("server SETTINGS without extended CONNECT: %v", s)
		}
		if err := c.fr.WriteSettingsAck(); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// connect sends an extended CONNECT for a WebSocket on stream id and
// returns the :status of the answer; the stream is then reset.
func (c *h2Client) connect(t testing.TB, id uint32, scheme, authority, path string) string {
	t.Helper()
	c.buf.Reset()
	for _, f := range [][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", scheme},
		{":authority", authority}, {":path", path}, {"sec-websocket-version", "13"},
	} {
		if err := c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the answer on stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				_ = c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
				return f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				t.Fatalf("stream %d reset: %v", id, f.ErrCode)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY: %v", f.ErrCode)
		}
	}
}

// TestHAProxySchemeControl sends HAProxy the extended CONNECTs of
// TestApacheSchemeControl: :scheme https must be accepted; what it does
// with :scheme wss goes into the matrix.
func TestHAProxySchemeControl(t *testing.T) {
	r := need(t, haproxy, "control: extended CONNECT by hand, :scheme https / wss")
	w := newWorld(t)
	h := startHAProxy(t, w, r, false)
	r.proto = schemeControl(t, w, h.host, h.port)
}

// TestNodeSchemeControl is TestHAProxySchemeControl against node's http2.
func TestNodeSchemeControl(t *testing.T) {
	r := need(t, node, "control: extended CONNECT by hand, :scheme https / wss")
	w := newWorld(t)
	_, host, port := startNode(t, w, r)
	r.proto = schemeControl(t, w, host, port)
}

// schemeControl sends an extended CONNECT with :scheme https and one with
// :scheme wss to /echo, checks that the first is answered 200, and
// returns both answers for the matrix.
func schemeControl(t testing.TB, w *world, host string, port int) string {
	t.Helper()
	c := dialH2(t, w, host, port)
	https := c.connect(t, 1, "https", host+":"+itoa(port), "/echo")
	wss := c.connect(t, 3, "wss", host+":"+itoa(port), "/echo")
	if https != "200" {
		t.Errorf(":scheme https answered %s, want 200", https)
	}
	return "h2: https " + https + ", wss " + wss
}
