package loopback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

func startWT(t *testing.T, ca *CA, host string) *WTServer {
	t.Helper()
	conf, err := ca.ServerConfig(host)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartWebTransport(pc, conf)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

// dialWT dials a QUIC connection fit for WebTransport from a fresh UDP
// socket and attaches tr's client to it (a plain one when tr is nil).
func dialWT(t *testing.T, ca *CA, addr net.Addr, tr *webtransport.Transport) (*quic.Conn, *webtransport.ClientConn) {
	t.Helper()
	ua := addr.(*net.UDPAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ua.IP})
	if err != nil {
		t.Fatal(err)
	}
	qt := &quic.Transport{Conn: udp}
	conf := ca.ClientConfig()
	conf.NextProtos = []string{http3.NextProtoH3}
	conf.ServerName = ua.IP.String()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	qc, err := qt.Dial(ctx, addr, conf, quicServerConfig())
	if err != nil {
		qt.Close()
		udp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		qc.CloseWithError(0, "")
		qt.Close()
		udp.Close()
	})
	if tr == nil {
		tr = &webtransport.Transport{}
	}
	cc, err := tr.NewClientConn(qc)
	if err != nil {
		t.Fatal(err)
	}
	return qc, cc
}

// dialSession opens a session on cc at path, with X-Test set.
func dialSession(t *testing.T, ctx context.Context, cc *webtransport.ClientConn, addr net.Addr, path string) *webtransport.Session {
	t.Helper()
	resp, sess, err := cc.Dial(ctx, "https://"+addr.String()+path, http.Header{"X-Test": {"wt"}})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	if got := resp.Header.Get("X-Test"); got != "wt" {
		t.Errorf("X-Test = %q, want it echoed", got)
	}
	t.Cleanup(func() { sess.CloseWithError(0, "") })
	return sess
}

// readAll reads r to its end, failing on a stream error.
func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// checkBidiEcho sends data on a new stream while reading the echo, so that
// more than the flow control windows can pass.
func checkBidiEcho(t *testing.T, ctx context.Context, sess *webtransport.Session, data []byte) {
	t.Helper()
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	str.SetDeadline(time.Now().Add(5 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := str.Write(data)
		werr <- errors.Join(err, str.Close())
	}()
	got := readAll(t, str)
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("bidirectional echo: got %d bytes, want %d", len(got), len(data))
	}
}

func TestWebTransportEcho(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			srv := startWT(t, ca, host)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, cc := dialWT(t, ca, srv.Addr(), &webtransport.Transport{ApplicationProtocols: []string{"nope", "chat-v1", "echo-v1"}})
			sess := dialSession(t, ctx, cc, srv.Addr(), "/echo")
			if p := sess.SessionState().ApplicationProtocol; p != "chat-v1" {
				t.Errorf("application protocol %q, want chat-v1", p)
			}

			checkBidiEcho(t, ctx, sess, []byte("hello"))
			checkBidiEcho(t, ctx, sess, bytes.Repeat([]byte("eyeballs "), 200000)) // 1.8 MB
			checkBidiEcho(t, ctx, sess, []byte("clos"))                            // a command prefix at the end of stream
			checkBidiEcho(t, ctx, sess, nil)

			// The echo does not wait for a newline nor for the end of stream.
			str, err := sess.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			str.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2)
			if _, err := str.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(str, buf); err != nil || string(buf) != "hi" {
				t.Fatalf("interactive echo: %q, %v", buf, err)
			}
			str.Close()
			if b := readAll(t, str); len(b) != 0 {
				t.Errorf("after end of stream: %q", b)
			}

			// Unidirectional.
			us, err := sess.OpenUniStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := us.Write([]byte("one way")); err != nil {
				t.Fatal(err)
			}
			us.Close()
			rs, err := sess.AcceptUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rs.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got := readAll(t, rs); string(got) != "one way" {
				t.Errorf("unidirectional echo %q", got)
			}

			// Datagrams may be lost, even on loopback: send until one returns.
			got := make(chan []byte, 1)
			go func() {
				b, err := sess.ReceiveDatagram(ctx)
				if err == nil {
					got <- b
				}
				close(got)
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
		datagrams:
			for {
				if err := sess.SendDatagram([]byte("dg")); err != nil {
					t.Fatal(err)
				}
				select {
				case b := <-got:
					if string(b) != "dg" {
						t.Errorf("datagram echo %q", b)
					}
					break datagrams
				case <-tick.C:
				}
			}

			if n := srv.Sessions(); n != 1 {
				t.Errorf("%d sessions, want 1", n)
			}
			if n := srv.Accepted(); n != 1 {
				t.Errorf("%d QUIC connections, want 1", n)
			}

			// The server sees the client close the session.
			if err := sess.CloseWithError(42, "bye"); err != nil {
				t.Fatal(err)
			}
			if err := srv.WaitSessions(ctx, 0); err != nil {
				t.Fatal(err)
			}
			c, ok := srv.LastClose()
			if !ok || c.Code != 42 || c.Message != "bye" || !c.Remote || c.Addr == nil {
				t.Errorf("LastClose = %+v, %v; want the client's 42 bye", c, ok)
			}
		})
	}
}

func TestWebTransportPush(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	sess := dialSession(t, ctx, cc, srv.Addr(), "/anything")
	if p := sess.SessionState().ApplicationProtocol; p != "" {
		t.Errorf("application protocol %q, want none", p)
	}

	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	str.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := str.Write([]byte("push\n")); err != nil {
		t.Fatal(err)
	}
	str.Close()
	if b := readAll(t, str); len(b) != 0 {
		t.Errorf("push answered %q, want nothing", b)
	}
	bs, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.SetDeadline(time.Now().Add(5 * time.Second))
	if got := readAll(t, bs); string(got) != WTPushBidi {
		t.Errorf("pushed bidirectional stream %q", got)
	}
	bs.Close()
	us, err := sess.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readAll(t, us); string(got) != WTPushUni {
		t.Errorf("pushed unidirectional stream %q", got)
	}
	checkBidiEcho(t, ctx, sess, []byte("still echoing"))
}

func TestWebTransportCloseByRequest(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "::1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	sess := dialSession(t, ctx, cc, srv.Addr(), "/echo")
	checkBidiEcho(t, ctx, sess, []byte("close x y\n")) // not a command

	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := str.Write([]byte("close 7 going away\n")); err != nil {
		t.Fatal(err)
	}
	_, err = sess.AcceptStream(ctx)
	se, ok := errors.AsType[*webtransport.SessionError](err)
	if !ok || se.ErrorCode != 7 || se.Message != "going away" || !se.Remote {
		t.Fatalf("accept after close request: %v, want the server's session error 7", err)
	}
	select {
	case <-sess.Context().Done():
	case <-ctx.Done():
		t.Fatal("session context still open")
	}
	if err := srv.WaitSessions(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if c, ok := srv.LastClose(); !ok || c.Code != 7 || c.Message != "going away" || c.Remote {
		t.Errorf("LastClose = %+v, %v; want the server's 7", c, ok)
	}
}

func TestWebTransportReject(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	resp, sess, err := cc.Dial(ctx, "https://"+srv.Addr().String()+"/echo", http.Header{"X-Reject": {"1"}})
	if err == nil {
		sess.CloseWithError(0, "")
		t.Fatal("dial succeeded, want a rejection")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("response %v, err %v; want 403", resp, err)
	}
	if n := srv.Sessions(); n != 0 {
		t.Errorf("%d sessions, want 0", n)
	}
}

// TestWebTransportUnsupported checks that webtransport-go refuses
// StartH3NoWebTransport, which still serves WebSocket.
func TestWebTransportUnsupported(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartH3NoWebTransport(pc, conf)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	tr := &webtransport.Transport{TLSClientConfig: ca.ClientConfig()}
	defer tr.Close()
	_, sess, err := tr.Dial(ctx, srv.URL()+"/echo", nil)
	if err == nil {
		sess.CloseWithError(0, "")
		t.Fatal("dial succeeded, want RequirementsNotMetError")
	}
	if _, ok := errors.AsType[*webtransport.RequirementsNotMetError](err); !ok {
		t.Fatalf("dial: %T %v, want RequirementsNotMetError", err, err)
	}
	if err := srv.WaitOpen(ctx, 0); err != nil {
		t.Error(err) // Transport.Dial closed its connection
	}

	_, cc := dialWT(t, ca, srv.Addr(), nil)
	checkEcho(t, connectRT{wtOpenWebSocket(cc)}, "wss://"+srv.Addr().String()+"/ws", "HTTP/3.0")
}

// TestWebTransportWithWebSocket checks that one QUIC connection carries a
// session and WebSocket over HTTP/3 at once.
func TestWebTransportWithWebSocket(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	sess := dialSession(t, ctx, cc, srv.Addr(), "/echo")
	rt := connectRT{wtOpenWebSocket(cc)}
	url := "wss://" + srv.Addr().String() + "/ws"
	checkEcho(t, rt, url, "HTTP/3.0")
	checkReject(t, rt, url)
	checkBidiEcho(t, ctx, sess, []byte("after websocket"))
	if n := srv.Accepted(); n != 1 {
		t.Errorf("%d QUIC connections, want 1", n)
	}
}

// wtOpenWebSocket opens RFC 9220 streams through a webtransport-go client
// connection.
func wtOpenWebSocket(cc *webtransport.ClientConn) openFunc {
	return func(req *http.Request) (*http.Response, io.ReadWriteCloser, error) {
		pr, pw := io.Pipe()
		req.Body, req.ContentLength = pr, -1
		req.Proto = "websocket"
		resp, err := cc.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			pw.Close()
			return resp, nil, err
		}
		return resp, &pipeStream{ReadCloser: resp.Body, w: pw}, nil
	}
}

// TestWebTransportSessionsFlowControl checks that a client that offers
// session flow control can open two sessions on one QUIC connection, and
// that a transfer larger than its windows passes.
func TestWebTransportSessionsFlowControl(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), &webtransport.Transport{Config: &webtransport.Config{
		MaxIncomingStreams: 4, MaxIncomingUniStreams: 4, MaxIncomingData: 64 << 10,
	}})
	a := dialSession(t, ctx, cc, srv.Addr(), "/a")
	b := dialSession(t, ctx, cc, srv.Addr(), "/b")
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	checkBidiEcho(t, ctx, a, big)
	for range 10 { // more streams than the limit, one after the other
		checkBidiEcho(t, ctx, b, []byte("b"))
	}
	if err := srv.WaitSessions(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

// TestWTServerCloseEndsSessions checks that Close ends open sessions and
// their handlers.
func TestWTServerCloseEndsSessions(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	sess := dialSession(t, ctx, cc, srv.Addr(), "/echo")
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := str.Write([]byte("pending")); err != nil { // an echo in progress
		t.Fatal(err)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := srv.OpenSessions(); n != 0 {
		t.Errorf("%d sessions open after Close", n)
	}
	if c, ok := srv.LastClose(); !ok || c.Code != 0 || c.Message != "server closing" || c.Remote {
		t.Errorf("LastClose = %+v, %v; want the server's", c, ok)
	}
	select {
	case <-sess.Context().Done():
	case <-ctx.Done():
		t.Fatal("session still open after Close")
	}
}

// TestWTServerCloseConnections checks that the sessions of a connection
// closed by CloseConnections end, and that the server goes on serving.
func TestWTServerCloseConnections(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	srv := startWT(t, ca, "::1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, cc := dialWT(t, ca, srv.Addr(), nil)
	sess := dialSession(t, ctx, cc, srv.Addr(), "/echo")
	srv.CloseConnections()
	if err := srv.WaitSessions(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c, ok := srv.LastClose()
	if _, isSession := errors.AsType[*webtransport.SessionError](c.Err); !ok || c.Err == nil || isSession {
		t.Errorf("LastClose = %+v, %v; want a connection error", c, ok)
	}
	select {
	case <-sess.Context().Done():
	case <-ctx.Done():
		t.Fatal("session still open after CloseConnections")
	}
	_, cc = dialWT(t, ca, srv.Addr(), nil)
	checkBidiEcho(t, ctx, dialSession(t, ctx, cc, srv.Addr(), "/echo"), []byte("again"))
}
