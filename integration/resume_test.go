package integration

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// handshakes records, on the server, whether each TLS handshake (over TCP
// or QUIC) resumed a session: crypto/tls calls VerifyConnection on every
// server handshake, full or resumed.
type handshakes struct {
	mu      sync.Mutex
	resumed []bool
	// key is the session ticket key of every server of the test, so that
	// each would accept the others' tickets: only the client keeps a
	// ticket where it belongs.
	key [32]byte
}

// config returns conf recording its handshakes in h.
func (h *handshakes) config(conf *tls.Config) *tls.Config {
	conf.SessionTicketKey = h.key
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		h.mu.Lock()
		h.resumed = append(h.resumed, cs.DidResume)
		h.mu.Unlock()
		return nil
	}
	return conf
}

// take returns the handshakes recorded since the last call.
func (h *handshakes) take() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.resumed
	h.resumed = nil
	return r
}

// resumeServers says what a resumption test serves on 127.0.0.1's TCP and
// UDP ports.
type resumeServers struct {
	tcp func(l net.Listener, conf *tls.Config) (io.Closer, error) // nil: nothing
	udp func(pc net.PacketConn, conf *tls.Config) (io.Closer, error)
}

var (
	serveWS = func(l net.Listener, conf *tls.Config) (io.Closer, error) {
		return testkit.StartServer(l, &http.Server{Handler: handler(), TLSConfig: conf})
	}
	serveWSH1 = func(l net.Listener, conf *tls.Config) (io.Closer, error) {
		srv := &http.Server{Handler: handler(), TLSConfig: conf, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		return testkit.StartServer(l, srv)
	}
	serveWTH2 = func(l net.Listener, conf *tls.Config) (io.Closer, error) {
		return testkit.StartWebTransportH2(l, conf)
	}
	serveH3 = func(pc net.PacketConn, conf *tls.Config) (io.Closer, error) {
		return testkit.StartH3(pc, conf, handler())
	}
	serveWT = func(pc net.PacketConn, conf *tls.Config) (io.Closer, error) {
		return testkit.StartWebTransport(pc, conf)
	}
)

// newResumeEnv starts s on 127.0.0.1 (nothing on ::1), with server TLS
// configurations that record their handshakes in the returned handshakes.
func newResumeEnv(t testing.TB, s resumeServers) (*env, *handshakes) {
	t.Helper()
	checkFDs(t)
	e := &env{t: t, dns: dnstest.Start(t)}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	l4, l6 := e.listen()
	l6.Close()
	e.udp6.Close()
	e.udp6 = nil
	hs := &handshakes{}
	rand.Read(hs.key[:])
	if s.tcp != nil {
		started(t)(s.tcp(l4, hs.config(e.serverTLS())))
	} else {
		l4.Close()
	}
	if s.udp != nil {
		pc := e.udp4
		e.udp4 = nil
		started(t)(s.udp(pc, hs.config(e.serverTLS())))
	} else {
		e.udp4.Close()
		e.udp4 = nil
	}
	e.dns.A(host, "127.0.0.1")
	e.dns.A(otherHost, "127.0.0.1")
	return e, hs
}

// started returns a function that fails t on a server's start error, or
// closes the server when t ends.
func started(t testing.TB) func(c io.Closer, err error) {
	return func(c io.Closer, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// serveAgain starts s again on another port of 127.0.0.1, with e's
// certificate and the same session ticket key, and returns that port.
func serveAgain(t testing.TB, e *env, hs *handshakes, s resumeServers) int {
	t.Helper()
	if s.tcp != nil {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		started(t)(s.tcp(l, hs.config(e.serverTLS())))
		return l.Addr().(*net.TCPAddr).Port
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started(t)(s.udp(pc, hs.config(e.serverTLS())))
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// resumeDial is one kind of dial a resumption test makes: it returns the
// server's response and a function that ends the session or request.
type resumeDial func(t *testing.T, e *env, tr *dialer.Transport, opts ...dialer.Option) (*http.Response, func())

func dialWS(url string) resumeDial {
	return func(t *testing.T, e *env, tr *dialer.Transport, opts ...dialer.Option) (*http.Response, func()) {
		t.Helper()
		if url == "" {
			url = e.url(true)
		}
		ws, resp, err := tr.Dialer().DialWebSocket(ctx(t), url, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return resp, func() { ws.CloseNow() }
	}
}

func dialWTSession(t *testing.T, e *env, tr *dialer.Transport, opts ...dialer.Option) (*http.Response, func()) {
	t.Helper()
	s, resp, err := tr.Dialer().DialWebTransport(ctx(t), e.wtURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return resp, func() { s.CloseWithError(0, "") }
}

// getProto sends a GET through the Transport (whose Dialer's options
// apply; opts are ignored) and reads the answer to the end. The request
// asks for its connection to close, so that net/http's HTTP/1.1 pool
// cannot keep it past CloseIdleConnections.
func getProto(t *testing.T, e *env, tr *dialer.Transport, _ ...dialer.Option) (*http.Response, func()) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, e.httpURL("/proto"), nil)
	req.Close = true
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, func() {}
}

// TestResume: after the pool was emptied, a second dial to an origin
// resumes the first one's TLS session, over TCP+TLS (HTTP/1.1 and
// HTTP/2) and over QUIC, for WebSocket, WebTransport and the Transport:
// the server sees a resumed handshake, the Report says so, and resp.TLS
// is the connection's state on every carrier.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers resumeServers
		proto   string
		version int
		dial    resumeDial
	}{
		{"websocket/h1", resumeServers{tcp: serveWSH1}, "h1", 1, dialWS("")},
		{"websocket/h2", resumeServers{tcp: serveWS}, "h2", 2, dialWS("")},
		{"websocket/h3", resumeServers{udp: serveH3}, "h3", 3, dialWS("")},
		{"webtransport/h2", resumeServers{tcp: serveWTH2}, "h2", 2, dialWTSession},
		{"webtransport/h3", resumeServers{udp: serveWT}, "h3", 3, dialWTSession},
		{"transport/h1", resumeServers{tcp: serveWSH1}, "h1", 1, getProto},
		{"transport/h2", resumeServers{tcp: serveWS}, "h2", 2, getProto},
		{"transport/h3", resumeServers{udp: serveH3}, "h3", 3, getProto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, hs := newResumeEnv(t, tc.servers)
			var (
				mu     sync.Mutex
				reps   []*dialer.Report
				traced []bool // Trace.HandshakeDone's Resumed
			)
			d := e.dialer(dialer.WithProtocols(tc.proto), dialer.WithReport(func(r *dialer.Report) {
				mu.Lock()
				reps = append(reps, r)
				mu.Unlock()
			}), dialer.WithTrace(&dialer.Trace{HandshakeDone: func(a dialer.Attempt) {
				mu.Lock()
				traced = append(traced, a.Resumed)
				mu.Unlock()
			}}))
			tr := d.Transport()
			defer tr.CloseIdleConnections()
			for i, want := range []bool{false, true, true} {
				resp, done := tc.dial(t, e, tr)
				done()
				tr.CloseIdleConnections()
				if resp.ProtoMajor != tc.version {
					t.Fatalf("dial %d: HTTP/%d, want HTTP/%d", i, resp.ProtoMajor, tc.version)
				}
				if got := hs.take(); !slices.Equal(got, []bool{want}) {
					t.Fatalf("dial %d: server handshakes resumed %v, want [%v]", i, got, want)
				}
				if resp.TLS == nil {
					t.Fatalf("dial %d: resp.TLS is nil over HTTP/%d", i, resp.ProtoMajor)
				}
				if resp.TLS.DidResume != want || !resp.TLS.HandshakeComplete || len(resp.TLS.PeerCertificates) == 0 {
					t.Errorf("dial %d: resp.TLS resumed %v, complete %v, %d certificates; want resumed %v",
						i, resp.TLS.DidResume, resp.TLS.HandshakeComplete, len(resp.TLS.PeerCertificates), want)
				}
				mu.Lock()
				rep, hd := reps[len(reps)-1], traced
				traced = nil
				mu.Unlock()
				if !slices.Equal(hd, []bool{want}) {
					t.Errorf("dial %d: Trace.HandshakeDone saw resumed %v, want [%v]", i, hd, want)
				}
				if rep.Winner < 0 || rep.Attempts[rep.Winner].Resumed != want {
					t.Errorf("dial %d: report says resumed %v, want %v:\n%s", i, rep.Winner >= 0 && rep.Attempts[rep.Winner].Resumed, want, rep)
				}
			}
		})
	}
}

// TestResumeTrust: sessions are partitioned like the pool: a dial under
// another TLS configuration (another *x509.CertPool trusting the same CA),
// to another origin on the same server, to the same host on another port
// (whose server would accept the ticket), or from another Dialer never
// resumes a session it did not make, and does not use up the sessions of
// the others.
func TestResumeTrust(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers resumeServers
		proto   string
	}{
		{"h2", resumeServers{tcp: serveWS}, "h2"},
		{"h3", resumeServers{udp: serveH3}, "h3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, hs := newResumeEnv(t, tc.servers)
			d := e.dialer(dialer.WithProtocols(tc.proto))
			tr := d.Transport()
			defer tr.CloseIdleConnections()
			other := e.dialer(dialer.WithProtocols(tc.proto)).Transport()
			defer other.CloseIdleConnections()
			otherTrust := dialer.WithTLSConfig(&tls.Config{RootCAs: e.ca.Pool()})
			otherURL := "wss://" + otherHost + ":" + itoa(e.port) + "/echo"
			otherPort := "wss://" + host + ":" + itoa(serveAgain(t, e, hs, tc.servers)) + "/echo"
			type step struct {
				what    string
				tr      *dialer.Transport
				url     string
				opts    []dialer.Option
				resumed bool
			}
			var proxied []step
			if tc.proto == "h2" {
				// A ticket from a direct dial never goes through a
				// proxy, nor one from another proxy (or credentials):
				// the origin could link them (RFC 8446 §C.4).
				via := func(u string) []dialer.Option {
					pu, _ := url.Parse(u)
					return []dialer.Option{dialer.WithProxy(http.ProxyURL(pu))}
				}
				p := startTunnel(t, e.port)
				proxied = []step{
					{"through a proxy", tr, "", via("http://" + p), false},
					{"through the proxy with credentials", tr, "", via("http://u:p@" + p), false},
					{"through the proxy again", tr, "", via("http://" + p), true},
					{"direct after the proxy", tr, "", nil, true},
				}
			}
			for _, step := range append([]step{
				{"first dial", tr, "", nil, false},
				{"another TLS configuration", tr, "", []dialer.Option{otherTrust}, false},
				{"another origin", tr, otherURL, nil, false},
				{"another port", tr, otherPort, nil, false},
				{"another Dialer", other, "", nil, false},
				{"the Dialer's configuration again", tr, "", nil, true},
				{"the other configuration again", tr, "", []dialer.Option{otherTrust}, true},
				{"the other origin again", tr, otherURL, nil, true},
				{"the other port again", tr, otherPort, nil, true},
			}, proxied...) {
				resp, done := dialWS(step.url)(t, e, step.tr, step.opts...)
				done()
				step.tr.CloseIdleConnections()
				if got := hs.take(); !slices.Equal(got, []bool{step.resumed}) {
					t.Fatalf("%s: server handshakes resumed %v, want [%v]", step.what, got, step.resumed)
				}
				if resp.TLS == nil || resp.TLS.DidResume != step.resumed {
					t.Fatalf("%s: resp.TLS %v, want resumed %v", step.what, resp.TLS != nil, step.resumed)
				}
			}
		})
	}
}

// countingCache is a caller's session cache that counts what it stores.
type countingCache struct {
	tls.ClientSessionCache
	mu   sync.Mutex
	puts int
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	c.ClientSessionCache.Put(key, cs)
}

// TestResumeCallerCache: a TLS configuration with a ClientSessionCache of
// its own keeps its sessions there, over TCP+TLS and QUIC, and resumes from
// it; httptrace's TLSHandshakeDone gets the real state, resumed or not.
func TestResumeCallerCache(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers resumeServers
		proto   string
	}{
		{"h2", resumeServers{tcp: serveWS}, "h2"},
		{"h3", resumeServers{udp: serveH3}, "h3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, hs := newResumeEnv(t, tc.servers)
			cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			conf := e.ca.ClientConfig()
			conf.ClientSessionCache = cache
			tr := e.dialer(dialer.WithProtocols(tc.proto), dialer.WithTLSConfig(conf)).Transport()
			defer tr.CloseIdleConnections()
			for i, want := range []bool{false, true} {
				var traced []bool
				c := httptrace.WithClientTrace(ctx(t), &httptrace.ClientTrace{
					TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
						if err == nil {
							traced = append(traced, cs.DidResume)
						}
					},
				})
				ws, _, err := tr.Dialer().DialWebSocket(c, e.url(true))
				if err != nil {
					t.Fatal(err)
				}
				ws.CloseNow()
				tr.CloseIdleConnections()
				if got := hs.take(); !slices.Equal(got, []bool{want}) {
					t.Fatalf("dial %d: server handshakes resumed %v, want [%v]", i, got, want)
				}
				if !slices.Equal(traced, []bool{want}) {
					t.Errorf("dial %d: httptrace saw handshakes resumed %v, want [%v]", i, traced, want)
				}
				cache.mu.Lock()
				puts := cache.puts
				cache.mu.Unlock()
				if puts <= i {
					t.Errorf("dial %d: the caller's cache stored %d sessions; want it used", i, puts)
				}
			}
		})
	}
}

// startTunnel starts an HTTP CONNECT proxy on loopback that tunnels every
// CONNECT, whatever its target, to 127.0.0.1:port (the test's origin, so
// that the proxy resolves no name), and returns its address.
func startTunnel(t *testing.T, port int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				up, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
				if err != nil {
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				done := make(chan struct{})
				// Plain copies: TCPConn.ReadFrom would splice through
				// pipes that Go keeps, which the FD check counts.
				go func() {
					io.Copy(struct{ io.Writer }{up}, struct{ io.Reader }{br})
					up.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{up})
				c.Close()
				<-done
			})
		}
	})
	return l.Addr().String()
}
