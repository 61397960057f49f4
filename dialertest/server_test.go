package dialertest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is a server and a DNS that points a name at it, and a dialer that
// resolves through that DNS and trusts the server's CA.
type world struct {
	srv *dialertest.Server
	ns  *dialertest.DNS
	d   *dialer.Dialer
	rep *dialer.Report
}

func newWorld(t *testing.T, opts dialertest.Options, faults ...dialertest.Fault) *world {
	t.Helper()
	if len(opts.Names) == 0 {
		opts.Names = []string{"origin.test"}
	}
	w := &world{ns: dialertest.NewDNS(t)}
	w.srv = dialertest.NewServer(t, opts, faults...)
	w.ns.Point(w.srv.Name(), w.srv)
	w.d = dialer.New(append(dialertest.DialerOptions(w.ns, w.srv.CA()),
		dialer.WithReport(func(r *dialer.Report) { w.rep = r }))...)
	t.Cleanup(w.d.CloseIdleConnections)
	return w
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echoWS dials a WebSocket, checks that it echoes, closes it and returns
// the HTTP version that carried it and the winner's family.
func (w *world) echoWS(t *testing.T, opts ...dialer.Option) (major int, family string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	c, resp, err := w.d.DialWebSocket(ctx, w.srv.URL("wss")+"/echo", opts...)
	if err != nil {
		t.Fatalf("dial: %v\n%v", err, w.rep)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "hello" {
		t.Fatalf("echo %q, %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	if w.rep != nil && w.rep.Winner >= 0 {
		family = w.rep.Attempts[w.rep.Winner].Family
	}
	return resp.ProtoMajor, family
}

// TestProtocols: each HTTP version served alone carries a WebSocket, and
// with all three QUIC wins.
func TestProtocols(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts dialertest.Options
		want int
	}{
		{"h1", dialertest.Options{H1: true}, 1},
		{"h2", dialertest.Options{H2: true}, 2},
		{"h3", dialertest.Options{H3: true}, 3},
		{"all", dialertest.Options{}, 3},
		{"h1 and h2", dialertest.Options{H1: true, H2: true}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.opts)
			if got, _ := w.echoWS(t); got != tc.want {
				t.Errorf("WebSocket over HTTP/%d, want HTTP/%d", got, tc.want)
			}
		})
	}
}

// TestFaults: each fault makes the dialer take the way around it. With
// HTTP/3 advertised, the second attempt is TCP over IPv4 (the diagonal
// order of draft-ietf-happy-happyeyeballs-v3 as the dialer deals it):
// it carries the session when IPv6 or UDP is blackholed.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		faults     []dialertest.Fault
		wantMajor  int
		wantFamily string
	}{
		{"ipv6 blackholed", []dialertest.Fault{dialertest.BlackholeTCP(dialertest.IPv6), dialertest.BlackholeUDP(dialertest.IPv6)}, 2, "IPv4"},
		{"ipv6 refused", []dialertest.Fault{dialertest.RefuseTCP(dialertest.IPv6), dialertest.BlackholeUDP()}, 2, "IPv4"},
		{"ipv6 stalls TLS", []dialertest.Fault{dialertest.StallTLS(dialertest.IPv6), dialertest.BlackholeUDP()}, 2, "IPv4"},
		{"udp blocked", []dialertest.Fault{dialertest.BlackholeUDP()}, 2, "IPv4"},
		{"h3 without extended CONNECT", []dialertest.Fault{dialertest.WithoutExtendedConnect(dialertest.HTTP3)}, 2, "IPv6"},
		{"no extended CONNECT", []dialertest.Fault{dialertest.WithoutExtendedConnect()}, 1, "IPv6"},
		{"h3 closes after SETTINGS", []dialertest.Fault{dialertest.CloseAfterSettings(dialertest.HTTP3)}, 2, "IPv6"},
		{"h2 closes after SETTINGS", []dialertest.Fault{dialertest.BlackholeUDP(), dialertest.CloseAfterSettings(dialertest.HTTP2)}, 1, "IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, dialertest.Options{}, tc.faults...)
			major, family := w.echoWS(t, dialer.WithAttemptDelay(50*time.Millisecond))
			if major != tc.wantMajor || family != tc.wantFamily {
				t.Errorf("WebSocket over HTTP/%d on %s, want HTTP/%d on %s\n%v", major, family, tc.wantMajor, tc.wantFamily, w.rep)
			}
		})
	}
}

// TestLatency: every round trip through the server's proxies costs twice
// the one-way delay, so a WebSocket over HTTP/1.1 (TCP, TLS 1.3, upgrade:
// three round trips) is ready no sooner than 6 one-way delays.
func TestLatency(t *testing.T) {
	t.Parallel()
	const oneWay = 20 * time.Millisecond
	w := newWorld(t, dialertest.Options{H1: true}, dialertest.Latency(oneWay))
	start := time.Now()
	if major, _ := w.echoWS(t); major != 1 {
		t.Fatalf("HTTP/%d", major)
	}
	if d := time.Since(start); d < 6*oneWay {
		t.Errorf("WebSocket echoed after %v, want at least %v", d, 6*oneWay)
	}
}

// TestWebTransport: sessions over HTTP/3, and over HTTP/2 when UDP is
// blocked, echo streams and push server streams.
func TestWebTransport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults []dialertest.Fault
		want   int
	}{
		{"h3", nil, 3},
		{"h2", []dialertest.Fault{dialertest.BlackholeUDP()}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, dialertest.Options{WebTransport: true}, tc.faults...)
			ctx := ctxT(t, 10*time.Second)
			s, _, err := w.d.DialWebTransport(ctx, w.srv.URL("https")+"/wt")
			if err != nil {
				t.Fatalf("dial: %v\n%v", err, w.rep)
			}
			defer s.CloseWithError(0, "")
			if v := s.HTTPVersion(); v != tc.want {
				t.Errorf("session over HTTP/%d, want HTTP/%d", v, tc.want)
			}
			str, err := s.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			str.Write([]byte("push\n"))
			str.Close()
			in, err := s.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			in.SetDeadline(time.Now().Add(5 * time.Second))
			if got, err := io.ReadAll(in); string(got) != "hello from server" || err != nil {
				t.Errorf("pushed stream %q, %v", got, err)
			}
			if n := w.srv.Sessions(); n != 1 {
				t.Errorf("Sessions() = %d, want 1", n)
			}
		})
	}
}

// TestCounts: the server counts connections per protocol; the dialer
// closes the one it no longer needs; CloseConnections ends a WebSocket, and
// the next dial opens a new connection.
func TestCounts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, dialertest.Options{H2: true})
	ctx := ctxT(t, 10*time.Second)
	c, _, err := w.d.DialWebSocket(ctx, w.srv.URL("wss")+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if n := w.srv.Accepted(dialertest.HTTP2); n != 1 {
		t.Errorf("Accepted(h2) = %d, want 1", n)
	}
	if n := w.srv.Open(dialertest.HTTP2); n != 1 {
		t.Errorf("Open(h2) = %d, want 1", n)
	}
	w.srv.CloseConnections()
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("read after CloseConnections succeeded")
	}
	if err := w.srv.WaitOpen(ctx, dialertest.HTTP2, 0); err != nil {
		t.Fatal(err)
	}
	c2, _, err := w.d.DialWebSocket(ctx, w.srv.URL("wss")+"/echo")
	if err != nil {
		t.Fatalf("dial after CloseConnections: %v", err)
	}
	c2.Close(websocket.StatusNormalClosure, "")
	if n := w.srv.Accepted(dialertest.HTTP2); n != 2 {
		t.Errorf("Accepted(h2) = %d after a reconnect, want 2", n)
	}
	w.d.CloseIdleConnections()
	if err := w.srv.WaitOpen(ctx, dialertest.HTTP2, 0); err != nil {
		t.Error(err)
	}
}

// TestHandler: a handler of one's own serves plain requests over every
// HTTP version, and accepts WebSocket with AcceptWebSocket.
func TestHandler(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, err := dialertest.AcceptWebSocket(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.Write(r.Context(), websocket.MessageText, []byte("ws over HTTP/"+strconv.Itoa(r.ProtoMajor)))
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
		io.WriteString(w, "hello over "+r.Proto)
	})
	for _, tc := range []struct {
		opts  dialertest.Options
		proto string
	}{
		{dialertest.Options{H1: true, Handler: h}, "HTTP/1.1"},
		{dialertest.Options{H2: true, Handler: h}, "HTTP/2.0"},
		{dialertest.Options{H3: true, Handler: h}, "HTTP/3.0"},
		{dialertest.Options{H3: true, WebTransport: true, Handler: h}, "HTTP/3.0"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.opts)
			ctx := ctxT(t, 10*time.Second)
			tr := dialer.NewTransport(dialertest.DialerOptions(w.ns, w.srv.CA())...)
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.srv.URL("https")+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "hello over " + tc.proto; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			c, _, err := w.d.DialWebSocket(ctx, w.srv.URL("wss")+"/ws")
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if _, msg, err := c.Read(ctx); err != nil || string(msg) != "ws over "+tc.proto[:6] {
				t.Errorf("WebSocket read %q, %v", msg, err)
			}
		})
	}
}

// TestRefusedEverywhere: with nothing to connect to, the dial fails fast
// with a *dialer.DialError listing refused attempts.
func TestRefusedEverywhere(t *testing.T) {
	t.Parallel()
	w := newWorld(t, dialertest.Options{H1: true, H2: true}, dialertest.RefuseTCP())
	start := time.Now()
	_, _, err := w.d.DialWebSocket(ctxT(t, 10*time.Second), w.srv.URL("wss")+"/echo")
	var de *dialer.DialError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a *DialError", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || len(de.Attempts) != 2 {
		t.Errorf("error %v, want two refused attempts", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusal took %v", d)
	}
}

// TestServerAddrs: the same port on both families, TCP and UDP.
func TestServerAddrs(t *testing.T) {
	t.Parallel()
	srv := dialertest.NewServer(t, dialertest.Options{})
	for _, f := range []dialertest.Family{dialertest.IPv4, dialertest.IPv6} {
		addr := srv.Addr(f)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		c.Close()
		if _, port, _ := net.SplitHostPort(addr); port == "" || port == "0" {
			t.Errorf("Addr(%v) = %q", f, addr)
		}
	}
	if srv.Name() != dialertest.DefaultName || !strings.HasPrefix(srv.URL("wss"), "wss://origin.test:") {
		t.Errorf("Name %q, URL %q", srv.Name(), srv.URL("wss"))
	}
}

// TestNilTB: with a nil TB a bad fault panics, and the caller closes.
func TestNilTB(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewServer with the zero Fault did not panic")
		}
	}()
	srv := dialertest.NewServer(nil, dialertest.Options{}, dialertest.Fault{})
	srv.Close()
}

// TestFaultNames: faults name themselves, for test names and logs.
func TestFaultNames(t *testing.T) {
	for _, tc := range []struct {
		f    dialertest.Fault
		want string
	}{
		{dialertest.BlackholeTCP(dialertest.IPv6), "BlackholeTCP(IPv6)"},
		{dialertest.BlackholeUDP(), "BlackholeUDP(IPv4, IPv6)"},
		{dialertest.WithoutExtendedConnect(dialertest.HTTP3), "WithoutExtendedConnect(h3)"},
		{dialertest.Latency(20 * time.Millisecond), "Latency(20ms)"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
