package loopback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoServer serves EchoHandler on a fresh loopback listener, with TLS when
// ca is not nil, and returns the server, its ws:// or wss:// URL and a
// client that trusts ca.
func echoServer(t *testing.T, ca *CA, host string) (*HTTPServer, string, *http.Client) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var conf *tls.Config
	tr := &http.Transport{}
	if ca != nil {
		if conf, err = ca.ServerConfig(host); err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	}
	srv, err := StartHTTP(l, conf, EchoHandler())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return srv, "ws" + strings.TrimPrefix(srv.URL(), "http") + "/echo", &http.Client{Transport: tr}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ca   *CA
		host string
	}{
		{"ws-v4", nil, "127.0.0.1"},
		{"wss-v6", ca, "::1"},
		{"wss-v4", ca, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url, client := echoServer(t, tc.ca, tc.host)
			if tc.ca != nil && !strings.HasPrefix(url, "wss://") || tc.ca == nil && !strings.HasPrefix(url, "ws://") {
				t.Fatalf("URL %q has the wrong scheme", url)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
				HTTPClient:      client,
				HTTPHeader:      http.Header{"X-Test": {"hello-" + tc.name}},
				Subprotocols:    []string{"nope", "chat", "echo"},
				CompressionMode: websocket.CompressionContextTakeover,
			})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			if got := resp.Header.Get("X-Test"); got != "hello-"+tc.name {
				t.Errorf("X-Test = %q, want it echoed", got)
			}
			if got := c.Subprotocol(); got != "chat" {
				t.Errorf("subprotocol %q, want the first known offered one, chat", got)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Errorf("extensions %q, want permessage-deflate", ext)
			}
			big := bytes.Repeat([]byte("eyeballs "), 20000) // 180 kB, over coder's 32 KiB default limit
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
		})
	}
}

func TestEchoSubprotocolAndCompressionOptional(t *testing.T) {
	t.Parallel()
	_, url, client := echoServer(t, nil, "::1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"echo", "chat"}, "echo"},
		{[]string{"CHAT"}, "CHAT"},
		{[]string{"nope"}, ""},
		{nil, ""},
	} {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, Subprotocols: tc.offer})
		if err != nil {
			t.Fatalf("offer %q: dial: %v", tc.offer, err)
		}
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("offer %q: subprotocol %q, want %q", tc.offer, got, tc.want)
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Errorf("offer %q: extensions %q without an offer", tc.offer, ext)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

func TestEchoReject(t *testing.T) {
	t.Parallel()
	_, url, client := echoServer(t, nil, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: client,
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

// TestEchoServesHTTP2 checks that StartHTTP speaks HTTP/2 to a client that
// offers h2, and that a plain GET to the echo endpoint asks for an upgrade.
func TestEchoServesHTTP2(t *testing.T) {
	t.Parallel()
	srv, _, client := echoServer(t, mustCA(t), "127.0.0.1")
	tr := client.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2 = true
	resp, err := client.Get(srv.URL() + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("status %d, want 426", resp.StatusCode)
	}
}

// TestServerCloseEndsWebSocket checks that HTTPServer.Close ends an open
// WebSocket (a hijacked connection net/http no longer tracks) and waits for
// its handler.
func TestServerCloseEndsWebSocket(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cnt := NewCounter(l)
	srv, err := StartHTTP(cnt, nil, EchoHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL(), "http"), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := cnt.WaitOpen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := cnt.Open(); n != 0 {
		t.Errorf("%d connections open after Close, want 0", n)
	}
	if _, _, err := c.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read after server close: %v, want the connection closed", err)
	}
}

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestStartServerHTTP1Only checks that http.Server.Protocols, not the TLS
// config's NextProtos, decides whether a TLS server offers h2.
func TestStartServerHTTP1Only(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv, err := StartServer(l, &http.Server{Handler: EchoHandler(), TLSConfig: conf, Protocols: &protos})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("protocol %s, want HTTP/1.1", resp.Proto)
	}
}
