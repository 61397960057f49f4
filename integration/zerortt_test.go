package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// earlyWorld is an origin on 127.0.0.1 seen through latency proxies: HTTP/1.1
// and HTTP/2 on TCP, and on UDP a quic-go HTTP/3 server that accepts 0-RTT
// (quic.Config.Allow0RTT) with fixed ticket keys, so that a server started
// later on the same port can take the tickets the first one issued. Its
// handler records, for each request, whether it arrived before the
// handshake ended (r.TLS.HandshakeComplete false: early data).
type earlyWorld struct {
	e        *env
	tcp, udp *testkit.Proxy
	tlsConf  *tls.Config // the UDP servers' (ticket keys fixed)
	h3       *testkit.H3Server
	reject   atomic.Bool // the HTTP/3 server rejects 0-RTT (still resuming)
	// conns and tickets count the HTTP/3 server's connections and the
	// tickets it issued.
	conns, tickets atomic.Int32
	base           string // "127.0.0.1:port" of the proxies
	round          time.Duration

	mu   sync.Mutex
	seen []seenRequest
}

// seenRequest is a request the HTTP/3 server's handler saw.
type seenRequest struct {
	method, path string
	early        bool
}

func newEarlyWorld(t testing.TB, oneWay time.Duration) *earlyWorld {
	t.Helper()
	w := &earlyWorld{e: newEnv(t, true, serve, closed), round: 2 * oneWay}
	w.tlsConf = w.e.serverTLS()
	var key [32]byte
	copy(key[:], "zerortt test ticket key, fixed..")
	w.tlsConf.SetSessionTicketKeys([][32]byte{key})
	w.startH3(t)
	w.tcp, w.udp = rttProxyPair(t, w.e.port, oneWay)
	w.base = "127.0.0.1:" + itoa(w.udp.Port())
	return w
}

// startH3 starts the 0-RTT HTTP/3 server on the world's UDP port.
func (w *earlyWorld) startH3(t testing.TB) {
	t.Helper()
	conn := w.e.udp4
	w.e.udp4 = nil
	conf := w.tlsConf.Clone()
	conf.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		w.tickets.Add(1)
		return w.tlsConf.EncryptTicket(cs, ss)
	}
	conf.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := w.tlsConf.DecryptTicket(identity, cs)
		if ss != nil && w.reject.Load() {
			ss.EarlyData = false // resume, but without 0-RTT
		}
		return ss, err
	}
	inner := handler()
	s, err := testkit.StartH3Server(conn, &http3.Server{
		TLSConfig:       conf,
		QUICConfig:      &quic.Config{Allow0RTT: true, EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
		EnableDatagrams: true,
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			w.conns.Add(1)
			return ctx
		},
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.mu.Lock()
			w.seen = append(w.seen, seenRequest{r.Method, r.URL.Path, !r.TLS.HandshakeComplete})
			w.mu.Unlock()
			if r.URL.Path == "/hints" {
				// 103 Early Hints, then the answer (RFC 9110 §15.2).
				rw.Header().Set("Link", "</style.css>; rel=preload")
				rw.WriteHeader(http.StatusEarlyHints)
				rw.WriteHeader(http.StatusOK)
				io.WriteString(rw, "hinted")
				return
			}
			inner.ServeHTTP(rw, r)
		}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.h3 = s
	t.Cleanup(func() { s.Close() })
}

// settle waits for the tickets the server sends once its handshake is
// done. They are single use (tickets.go), and on a connection that used
// 0-RTT the next one arrives a round trip after the first answer: a
// connection closed before that leaves the Dialer without a ticket. It
// waits until the server issued one on each connection, then for the
// ticket's trip to the client.
func (w *earlyWorld) settle() {
	deadline := time.Now().Add(5 * time.Second)
	for w.tickets.Load() < w.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(w.round + 50*time.Millisecond)
}

// requests returns and clears what the HTTP/3 handler saw.
func (w *earlyWorld) requests() []seenRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.seen
	w.seen = nil
	return s
}

// transport returns a Transport held to HTTP/3 and a function returning
// its last race report.
func (w *earlyWorld) transport(t testing.TB) (*http.Client, *dialer.Transport, func() *dialer.Report) {
	var mu sync.Mutex
	var last *dialer.Report
	tr := w.e.dialer(dialer.WithProtocols("h3"),
		dialer.WithReport(func(r *dialer.Report) { mu.Lock(); last = r; mu.Unlock() })).Transport()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr, func() *dialer.Report { mu.Lock(); defer mu.Unlock(); return last }
}

// do sends one request and returns the response with its body read.
func do(t testing.TB, c *http.Client, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// earlyData returns the EarlyData of the report's winner.
func earlyData(t testing.TB, rep *dialer.Report) string {
	t.Helper()
	if rep == nil || rep.Winner < 0 {
		t.Fatalf("no winner in report %v", rep)
	}
	return rep.Attempts[rep.Winner].EarlyData
}

// TestZeroRTTGet: with a ticket and remembered SETTINGS, a GET through the
// Transport reaches the server as early data, and the report says 0-RTT was
// accepted; a POST on such a connection waits for the handshake; an
// OPTIONS goes early too.
func TestZeroRTTGet(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	c, tr, last := w.transport(t)
	url := "https://" + w.base + "/proto"

	resp, body := do(t, c, http.MethodGet, url, nil)
	if resp.ProtoMajor != 3 || body != "3" {
		t.Fatalf("first GET: HTTP/%d %q, want HTTP/3", resp.ProtoMajor, body)
	}
	if got := w.requests(); len(got) != 1 || got[0].early {
		t.Fatalf("first GET: server saw %+v, want one request after the handshake (no ticket yet)", got)
	}
	if ed := earlyData(t, last()); ed != "" {
		t.Errorf("first GET: EarlyData %q, want none", ed)
	}

	tr.CloseIdleConnections()
	resp, body = do(t, c, http.MethodGet, url, nil)
	if resp.ProtoMajor != 3 || body != "3" {
		t.Fatalf("GET with a ticket: HTTP/%d %q, want HTTP/3", resp.ProtoMajor, body)
	}
	if got := w.requests(); len(got) != 1 || !got[0].early {
		t.Fatalf("GET with a ticket: server saw %+v, want one request in 0-RTT", got)
	}
	if ed := earlyData(t, last()); ed != "accepted" {
		t.Errorf("GET with a ticket: EarlyData %q, want accepted", ed)
	}

	// A POST never goes early, even on a connection that did.
	w.settle()
	tr.CloseIdleConnections()
	resp, body = do(t, c, http.MethodPost, "https://"+w.base+"/echo-body", strings.NewReader("not idempotent"))
	if resp.ProtoMajor != 3 || body != "not idempotent" {
		t.Fatalf("POST: HTTP/%d %q", resp.ProtoMajor, body)
	}
	if got := w.requests(); len(got) != 1 || got[0].early || got[0].method != http.MethodPost {
		t.Fatalf("POST: server saw %+v, want one POST after the handshake", got)
	}
	if ed := earlyData(t, last()); ed != "accepted" && ed != "sent" {
		t.Errorf("POST: EarlyData %q: the connection itself dialed early", ed)
	}

	// An interim 103 before the answer to an early GET: the request is
	// answered once, early, and the caller sees the final answer.
	w.settle()
	tr.CloseIdleConnections()
	if resp, body = do(t, c, http.MethodGet, "https://"+w.base+"/hints", nil); resp.StatusCode != http.StatusOK || body != "hinted" {
		t.Fatalf("GET with 103 Early Hints: %d %q", resp.StatusCode, body)
	}
	if got := w.requests(); len(got) != 1 || !got[0].early {
		t.Fatalf("GET with 103 Early Hints: server saw %+v, want one request in 0-RTT", got)
	}

	// OPTIONS, safe like GET, goes early.
	w.settle()
	tr.CloseIdleConnections()
	if resp, body = do(t, c, http.MethodOptions, url, nil); body != "3" {
		t.Fatalf("OPTIONS: HTTP/%d %q", resp.ProtoMajor, body)
	}
	if got := w.requests(); len(got) != 1 || !got[0].early || got[0].method != http.MethodOptions {
		t.Fatalf("OPTIONS with a ticket: server saw %+v, want one OPTIONS in 0-RTT", got)
	}
}

// TestZeroRTTRejected: a server that rejects 0-RTT still gives the right
// answer, and its handler sees the request once, after the handshake.
//
// It runs through the latency proxy: straight on loopback the server's
// answer to the first flight races with the request stream opening in
// 0-RTT, and quic-go v0.64.1 reads the server's transport parameters there
// without a lock (Conn.newFlowController against
// Conn.handleTransportParameters), which the race detector reports.
func TestZeroRTTRejected(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	c, tr, last := w.transport(t)
	url := "https://" + w.base + "/proto"
	do(t, c, http.MethodGet, url, nil)
	w.requests()
	w.settle()
	tr.CloseIdleConnections()

	w.reject.Store(true)
	for i := range 3 {
		resp, body := do(t, c, http.MethodGet, url, nil)
		if resp.ProtoMajor != 3 || body != "3" {
			t.Fatalf("GET %d with 0-RTT rejected: HTTP/%d %q, want HTTP/3", i, resp.ProtoMajor, body)
		}
		if got := w.requests(); len(got) != 1 || got[0].early {
			t.Fatalf("GET %d with 0-RTT rejected: server saw %+v, want one request after the handshake", i, got)
		}
		if ed := earlyData(t, last()); ed != "rejected" {
			t.Errorf("GET %d: EarlyData %q, want rejected", i, ed)
		}
		w.settle()
		tr.CloseIdleConnections()
	}
}

// wsEcho checks a WebSocket by one echo.
func wsEcho(t testing.TB, ws *websocket.Conn) {
	t.Helper()
	if err := ws.Write(ctx(t), websocket.MessageText, []byte("early")); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.Read(ctx(t))
	if err != nil || string(b) != "early" {
		t.Fatalf("echo: %q, %v", b, err)
	}
}

// TestZeroRTTWebSocket: with WithEarlyData, a ticket and remembered
// SETTINGS, a WebSocket's extended CONNECT over HTTP/3 reaches the server
// in 0-RTT; without the option it waits for the handshake; with 0-RTT
// rejected it is sent again after the handshake.
func TestZeroRTTWebSocket(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	var mu sync.Mutex
	var last *dialer.Report
	d := w.e.dialer(dialer.WithProtocols("h3"), dialer.WithReport(func(r *dialer.Report) { mu.Lock(); last = r; mu.Unlock() }))
	t.Cleanup(d.CloseIdleConnections)
	url := "wss://" + w.base + "/echo"
	dial := func(name string, early bool, opts ...dialer.Option) {
		t.Helper()
		ws, resp, err := d.DialWebSocket(ctx(t), url, opts...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.ProtoMajor != 3 {
			t.Fatalf("%s: WebSocket over HTTP/%d, want 3", name, resp.ProtoMajor)
		}
		wsEcho(t, ws)
		ws.Close(websocket.StatusNormalClosure, "")
		w.settle()
		got := w.requests()
		if len(got) != 1 || got[0].method != http.MethodConnect || got[0].early != early {
			t.Fatalf("%s: server saw %+v, want one CONNECT, early %v", name, got, early)
		}
		d.CloseIdleConnections()
	}
	report := func() *dialer.Report { mu.Lock(); defer mu.Unlock(); return last }

	dial("fresh", false, dialer.WithEarlyData())
	dial("ticket without WithEarlyData", false)
	if ed := earlyData(t, report()); ed != "" {
		t.Errorf("without WithEarlyData: EarlyData %q, want none", ed)
	}
	dial("ticket with WithEarlyData", true, dialer.WithEarlyData())
	if ed := earlyData(t, report()); ed != "accepted" {
		t.Errorf("with WithEarlyData: EarlyData %q, want accepted", ed)
	}
	w.reject.Store(true)
	dial("0-RTT rejected", false, dialer.WithEarlyData())
	if ed := earlyData(t, report()); ed != "rejected" {
		t.Errorf("0-RTT rejected: EarlyData %q, want rejected", ed)
	}
}

// TestZeroRTTSettingsChanged: the HTTP/3 server is replaced by one that
// takes the same tickets and accepts 0-RTT, answers every request with 200,
// but whose SETTINGS no longer enable extended CONNECT: the WebSocket sent
// early on the remembered promise must not be reported as one over HTTP/3
// (RFC 9114 §7.2.4.2: H3_SETTINGS_ERROR); the dial goes on with HTTP/2.
func TestZeroRTTSettingsChanged(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	d := w.e.dialer(dialer.WithProtocols("h3", "h2"), dialer.WithEarlyData())
	t.Cleanup(d.CloseIdleConnections)
	url := "wss://" + w.base + "/echo"
	ws, resp, err := d.DialWebSocket(ctx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 3 {
		t.Fatalf("first WebSocket over HTTP/%d, want 3", resp.ProtoMajor)
	}
	ws.CloseNow()
	w.settle()
	d.CloseIdleConnections()

	// Same port, same ticket keys, 0-RTT accepted, SETTINGS reduced.
	pc := w.h3.PacketConn
	addr := pc.LocalAddr().String()
	w.h3.Close()
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	liar := startLyingH3(t, conn, w.tlsConf, true)

	var reasons []string
	ws, resp, err = d.DialWebSocket(ctx(t), url, dialer.WithReport(func(r *dialer.Report) { reasons = append(reasons, r.Reason) }))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("WebSocket over HTTP/%d after the server took extended CONNECT back, want 2", resp.ProtoMajor)
	}
	wsEcho(t, ws)
	if n := liar.early.Load(); n != 1 {
		t.Errorf("the lying server accepted %d early CONNECTs, want 1 (the dial must have tried 0-RTT)", n)
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "SETTINGS") {
		t.Errorf("reports' reasons %q: want the h3 race's to say the SETTINGS changed, then the h2 race's", reasons)
	}
	if code, masked := liar.closedWith(); code != uint64(http3.ErrCodeSettingsError) && !masked {
		t.Errorf("client closed the lying connection with %#x, want H3_SETTINGS_ERROR", code)
	}
}

// TestZeroRTTRejectedSettingsChanged: the HTTP/3 server is replaced by one
// that takes the same tickets but rejects 0-RTT, and whose SETTINGS no
// longer enable extended CONNECT: the WebSocket CONNECT sent early was
// void, and it must not be sent again on the old promise; the new SETTINGS
// alone count (RFC 9114 §7.2.4.2), and the dial goes on with HTTP/2.
func TestZeroRTTRejectedSettingsChanged(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	d := w.e.dialer(dialer.WithProtocols("h3", "h2"), dialer.WithEarlyData())
	t.Cleanup(d.CloseIdleConnections)
	url := "wss://" + w.base + "/echo"
	ws, resp, err := d.DialWebSocket(ctx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 3 {
		t.Fatalf("first WebSocket over HTTP/%d, want 3", resp.ProtoMajor)
	}
	ws.CloseNow()
	w.settle()
	d.CloseIdleConnections()

	addr := w.h3.PacketConn.LocalAddr().String()
	w.h3.Close()
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := startLyingH3(t, conn, w.tlsConf, false)

	var reports []*dialer.Report
	ws, resp, err = d.DialWebSocket(ctx(t), url, dialer.WithReport(func(r *dialer.Report) { reports = append(reports, r) }))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("WebSocket over HTTP/%d after the server dropped extended CONNECT, want 2", resp.ProtoMajor)
	}
	wsEcho(t, ws)
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("the server without extended CONNECT got %d requests, want none (the early one was void, and the new SETTINGS forbid another)", n)
	}
	if len(reports) != 2 || earlyData(t, reports[0]) != "rejected" || !strings.Contains(reports[0].Reason, "extended CONNECT") {
		var got []string
		for _, r := range reports {
			got = append(got, r.Reason)
		}
		t.Errorf("reports %q: want the h3 race's (0-RTT rejected) to say extended CONNECT is gone, then the h2 race's", got)
	}
}

// lyingH3 is an HTTP/3 server that answers every request stream with 200,
// but whose SETTINGS enable nothing; it accepts 0-RTT or not.
type lyingH3 struct {
	ln       *quic.EarlyListener
	wg       sync.WaitGroup
	early    atomic.Int32 // requests received before the handshake ended
	requests atomic.Int32 // requests received

	mu    sync.Mutex
	conns []*quic.Conn
	// code is the application error code the client closed with; masked
	// says it closed with one the server could not see: before the
	// handshake is confirmed, an application close goes in Handshake
	// packets as APPLICATION_ERROR without its code (RFC 9000 §10.2.3).
	code   uint64
	masked bool
}

func startLyingH3(t testing.TB, pc net.PacketConn, base *tls.Config, allow0RTT bool) *lyingH3 {
	conf := base.Clone()
	conf.NextProtos = []string{http3.NextProtoH3}
	ln, err := quic.ListenEarly(pc, conf, &quic.Config{Allow0RTT: allow0RTT, EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &lyingH3{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.CloseWithError(0, "")
		}
		s.mu.Unlock()
		s.wg.Wait()
		pc.Close()
	})
	return s
}

func (s *lyingH3) serve(c *quic.Conn) {
	defer func() {
		<-c.Context().Done()
		cause := context.Cause(c.Context())
		s.mu.Lock()
		defer s.mu.Unlock()
		if ae, ok := errors.AsType[*quic.ApplicationError](cause); ok && ae.Remote {
			s.code = uint64(ae.ErrorCode)
		}
		if te, ok := errors.AsType[*quic.TransportError](cause); ok && te.Remote && te.ErrorCode == quic.ApplicationErrorErrorCode {
			s.masked = true
		}
	}()
	ctrl, err := c.OpenUniStream()
	if err != nil {
		return
	}
	// Control stream (RFC 9114 §6.2.1) with an empty SETTINGS frame
	// (§7.2.4): no SETTINGS_ENABLE_CONNECT_PROTOCOL, no datagrams.
	b := quicvarint.Append(nil, 0x00)
	b = quicvarint.Append(b, 0x04)
	b = quicvarint.Append(b, 0)
	if _, err := ctrl.Write(b); err != nil {
		return
	}
	go func() {
		for {
			str, err := c.AcceptUniStream(context.Background())
			if err != nil {
				return
			}
			go io.Copy(io.Discard, str)
		}
	}()
	for {
		str, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		s.requests.Add(1)
		select {
		case <-c.HandshakeComplete():
		default:
			s.early.Add(1)
		}
		var block bytes.Buffer
		enc := qpack.NewEncoder(&block)
		_ = enc.WriteField(qpack.HeaderField{Name: ":status", Value: "200"})
		h := quicvarint.Append(nil, 0x01) // HEADERS (RFC 9114 §7.2.2)
		h = quicvarint.Append(h, uint64(block.Len()))
		str.Write(append(h, block.Bytes()...))
	}
}

// closedWith returns the error code the client closed a connection with,
// or masked when the client closed with an application error code that
// RFC 9000 §10.2.3 hid from the server.
func (s *lyingH3) closedWith() (code uint64, masked bool) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		code, masked = s.code, s.masked
		s.mu.Unlock()
		if code != 0 || masked {
			return code, masked
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

// zeroRTTCase is one way to a first response or a ready WebSocket over
// HTTP/3 through the latency proxy.
type zeroRTTCase struct {
	name string
	// ticket: a first, unmeasured dial leaves the Dialer a ticket and
	// the SETTINGS; each measured dial then opens a new connection.
	ticket   bool
	min, max float64 // TestZeroRTTRoundTrips' bounds, in round trips
	dial     func(ctx context.Context, d *dialer.Dialer, c *http.Client, base string) error
}

func zeroRTTCases() []zeroRTTCase {
	get := func(ctx context.Context, _ *dialer.Dialer, c *http.Client, base string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+base+"/proto", nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && (resp.ProtoMajor != 3 || string(b) != "3") {
			err = errors.New("not a GET over HTTP/3: " + resp.Proto + " " + string(b))
		}
		return err
	}
	ws := func(opts ...dialer.Option) func(ctx context.Context, d *dialer.Dialer, _ *http.Client, base string) error {
		return func(ctx context.Context, d *dialer.Dialer, _ *http.Client, base string) error {
			c, resp, err := d.DialWebSocket(ctx, "wss://"+base+"/echo", opts...)
			if err != nil {
				return err
			}
			c.CloseNow()
			if resp.ProtoMajor != 3 {
				return errors.New("not a WebSocket over HTTP/3")
			}
			return nil
		}
	}
	// Through the proxies: QUIC's handshake is one round trip, the request
	// or CONNECT one more (2); with 0-RTT the request rides with the
	// handshake (1). The margins are rttCases'.
	return []zeroRTTCase{
		{name: "get-fresh", min: 2, max: 2.95, dial: get},
		{name: "get-ticket", ticket: true, min: 1, max: 1.9, dial: get},
		{name: "ws-fresh", min: 2, max: 2.95, dial: ws(dialer.WithEarlyData())},
		{name: "ws-ticket", ticket: true, min: 2, max: 2.95, dial: ws()},
		{name: "ws-ticket-early", ticket: true, min: 1, max: 1.9, dial: ws(dialer.WithEarlyData())},
	}
}

// zeroRTTOnce runs one measured dial of c, on a fresh Dialer unless c has
// a ticket, and returns its time.
func zeroRTTOnce(tb testing.TB, w *earlyWorld, c zeroRTTCase, d *dialer.Dialer) time.Duration {
	tb.Helper()
	if !c.ticket {
		d = w.e.dialer(dialer.WithProtocols("h3"))
	}
	client := &http.Client{Transport: d.Transport()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := c.dial(ctx, d, client, w.base)
	elapsed := time.Since(start)
	if b, ok := tb.(*testing.B); ok {
		b.StopTimer()
		defer b.StartTimer()
	}
	w.settle()
	d.CloseIdleConnections()
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	return elapsed
}

// primed returns a Dialer that holds a ticket and the SETTINGS for the
// world's origin.
func primed(tb testing.TB, w *earlyWorld, c zeroRTTCase) *dialer.Dialer {
	d := w.e.dialer(dialer.WithProtocols("h3"))
	tb.Cleanup(d.CloseIdleConnections)
	if c.ticket {
		if err := c.dial(context.Background(), d, &http.Client{Transport: d.Transport()}, w.base); err != nil {
			tb.Fatal(err)
		}
		w.settle()
		d.CloseIdleConnections()
	}
	return d
}

// BenchmarkZeroRTT measures, in round trips through latency proxies with a
// 20 ms round trip, the first GET through the Transport and a ready
// WebSocket over HTTP/3, on a fresh Dialer and on a Dialer with a ticket
// (a new connection each time), with and without WithEarlyData. Run it with
// a small count: -benchtime 20x.
func BenchmarkZeroRTT(b *testing.B) {
	w := newEarlyWorld(b, rttBenchOneWay)
	for _, c := range zeroRTTCases() {
		b.Run(c.name, func(b *testing.B) {
			d := primed(b, w, c)
			for b.Loop() {
				zeroRTTOnce(b, w, c, d)
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(w.round), "RTTs")
		})
	}
}

// TestZeroRTTRoundTrips dials each case rttTries times through latency
// proxies with a 40 ms round trip and checks the fastest: with a ticket a
// GET, and a WebSocket with WithEarlyData, take one round trip; fresh, or
// without the option, two.
func TestZeroRTTRoundTrips(t *testing.T) {
	w := newEarlyWorld(t, rttTestOneWay)
	for _, c := range zeroRTTCases() {
		d := primed(t, w, c)
		var all []float64
		for range rttTries {
			all = append(all, float64(zeroRTTOnce(t, w, c, d))/float64(w.round))
		}
		rtts := slices.Min(all)
		t.Logf("%-16s %.2f RTTs %.2f", c.name, rtts, all)
		if rtts < c.min-0.01 || rtts > c.max {
			t.Errorf("%s took %.2f round trips at best (%.2f), want %.2f to %.2f", c.name, rtts, all, c.min, c.max)
		}
	}
}

// TestZeroRTTBlockedUDP: a dial with a ticket goes early and wins its race
// before any packet comes back; when the path stopped carrying UDP since,
// the request must still be answered, over TCP, well before QUIC's 5 s
// handshake timeout, and the early attempt's report says it failed.
func TestZeroRTTBlockedUDP(t *testing.T) {
	w := newEarlyWorld(t, 5*time.Millisecond)
	var (
		mu   sync.Mutex
		reps []*dialer.Report
	)
	tr := w.e.dialer(dialer.WithReport(func(r *dialer.Report) { mu.Lock(); reps = append(reps, r); mu.Unlock() })).Transport()
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := "https://" + w.base + "/proto"

	// Alt-Svc over h2 first, then h3 with a ticket and its SETTINGS.
	if resp, _ := do(t, c, http.MethodGet, url+"?altsvc=h3=%22:"+itoa(w.udp.Port())+"%22", nil); resp.ProtoMajor != 2 {
		t.Fatalf("first GET over HTTP/%d, want 2", resp.ProtoMajor)
	}
	tr.CloseIdleConnections()
	if resp, _ := do(t, c, http.MethodGet, url, nil); resp.ProtoMajor != 3 {
		t.Fatalf("GET after Alt-Svc over HTTP/%d, want 3", resp.ProtoMajor)
	}
	w.settle()
	tr.CloseIdleConnections()

	w.udp.Close() // UDP blackholed from now on
	mu.Lock()
	reps = nil
	mu.Unlock()
	start := time.Now()
	resp, body := do(t, c, http.MethodGet, url, nil)
	took := time.Since(start)
	if resp.ProtoMajor != 2 || body != "2" {
		t.Errorf("GET with UDP blocked: HTTP/%d %q, want HTTP/2", resp.ProtoMajor, body)
	}
	if took > 3*time.Second {
		t.Errorf("GET with UDP blocked took %v: it waited for QUIC's handshake timeout", took)
	}
	mu.Lock()
	defer mu.Unlock()
	var early []string
	for _, r := range reps {
		for _, a := range r.Attempts {
			if a.EarlyData != "" {
				early = append(early, a.EarlyData)
			}
		}
	}
	if len(early) != 1 || early[0] != "failed" {
		t.Errorf("early attempts' EarlyData %q, want one \"failed\"\n%v", early, reps)
	}
}
