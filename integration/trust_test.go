package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
)

// clientCN answers every request with the common name of the client
// certificate its connection presented, in X-Client-CN.
func clientCN(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set("X-Client-CN", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		h.ServeHTTP(w, r)
	})
}

// verificationFailed reports whether err says the server's certificate
// did not verify.
func verificationFailed(err error) bool {
	var cv *tls.CertificateVerificationError
	return errors.As(err, &cv)
}

// TestTrustPoolWebSocket: a connection verified under the Dialer's TLS
// configuration (the test CA) is not reused by a dial whose per-call
// configuration trusts only the system roots: that dial connects afresh
// and fails verification.
func TestTrustPoolWebSocket(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	defer d.CloseIdleConnections()
	ws, resp, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("first WebSocket over HTTP/%d, want 2 (a pooled connection)", resp.ProtoMajor)
	}
	_, _, err = d.DialWebSocket(ctx(t), e.url(true), dialer.WithTLSConfig(&tls.Config{}))
	if !verificationFailed(err) {
		t.Fatalf("dial trusting the system roots: %v; want a certificate verification error", err)
	}
	// The same trust still shares the connection.
	ws2, resp, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("second dial under the Dialer's trust: %v", err)
	}
	ws2.CloseNow()
	if n := e.v4.Accepted(); n != 2 {
		t.Errorf("%d TCP connections, want 2: the shared one and the strict dial's", n)
	}
}

// TestTrustPoolTransport: an h2 connection that a per-call permissive
// configuration left in the pool is not used by the Dialer's Transport
// (whose requests may carry credentials), nor by a dial with the Dialer's
// own configuration; and the reverse: the Transport's connection does not
// serve a WebSocket dialled under another configuration.
func TestTrustPoolTransport(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	// The Dialer trusts only the system roots; one call trusts the test CA.
	d := e.dialer(dialer.WithTLSConfig(&tls.Config{}))
	defer d.CloseIdleConnections()
	ws, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithTLSConfig(e.ca.ClientConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("WebSocket over HTTP/%d, want 2", resp.ProtoMajor)
	}
	c := &http.Client{Transport: d.Transport()}
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, e.httpURL("/proto"), nil)
	req.Header.Set("Authorization", "Bearer secret")
	if resp, err := c.Do(req); !verificationFailed(err) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("Transport request: %v; want a certificate verification error", err)
	}
	if _, _, err := d.DialWebSocket(ctx(t), e.url(true)); !verificationFailed(err) {
		t.Fatalf("WebSocket with the Dialer's configuration: %v; want a certificate verification error", err)
	}

	// The other way round: the Transport's h2 connection (test CA) does
	// not carry a WebSocket dialled under another configuration that
	// trusts the same CA but presents a client certificate.
	e2 := newEnv(t, true, serve, closed)
	e2.dns.A(host, "127.0.0.1")
	d2 := e2.dialer()
	defer d2.CloseIdleConnections()
	get(t, &http.Client{Transport: d2.Transport()}, e2.httpURL("/proto"))
	cert, err := e2.ca.Certificate("alice")
	if err != nil {
		t.Fatal(err)
	}
	conf := e2.ca.ClientConfig()
	conf.Certificates = []tls.Certificate{cert}
	ws2, _, err := d2.DialWebSocket(ctx(t), e2.url(true), dialer.WithTLSConfig(conf))
	if err != nil {
		t.Fatal(err)
	}
	ws2.CloseNow()
	if n := e2.v4.Accepted(); n != 2 {
		t.Errorf("%d TCP connections, want 2: the client certificate's dial must not ride the Transport's", n)
	}
}

// TestTrustClientCertificates: two dials of one Dialer presenting different
// client certificates each get a connection of their own; the server sees
// the right certificate for each, and a third dial with the first
// certificate rides the first connection.
func TestTrustClientCertificates(t *testing.T) {
	e := newEnv(t, true, serveMTLS, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	defer d.CloseIdleConnections()
	confFor := func(name string) *tls.Config {
		cert, err := e.ca.Certificate(name)
		if err != nil {
			t.Fatal(err)
		}
		conf := e.ca.ClientConfig()
		conf.Certificates = []tls.Certificate{cert}
		return conf
	}
	alice, bob := confFor("alice"), confFor("bob")
	for i, tc := range []struct {
		conf *tls.Config
		want string
	}{{alice, "alice"}, {bob, "bob"}, {alice, "alice"}} {
		ws, resp, err := d.DialWebSocket(ctx(t), e.url(true), dialer.WithTLSConfig(tc.conf))
		if err != nil {
			t.Fatalf("dial %d as %s: %v", i, tc.want, err)
		}
		defer ws.CloseNow()
		if got := resp.Header.Get("X-Client-CN"); got != tc.want || resp.ProtoMajor != 2 {
			t.Errorf("dial %d as %s: the server saw %q over HTTP/%d", i, tc.want, got, resp.ProtoMajor)
		}
	}
	// The Transport (no client certificate) is refused by the server: it
	// does not borrow alice's or bob's connection.
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, e.httpURL("/proto"), nil)
	if resp, err := (&http.Client{Transport: d.Transport()}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a request without a client certificate got %s: it rode another identity's connection", resp.Status)
	}
	if n := e.v4.Accepted(); n != 3 {
		t.Errorf("%d TCP connections, want 3 (alice, bob, the Transport's refused one)", n)
	}
}

// TestTrustResolver: a dial with other nameservers does not ride a
// connection to an address that the Dialer's nameservers gave.
func TestTrustResolver(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	e.dns.A(host, "127.0.0.1")
	d := e.dialer()
	defer d.CloseIdleConnections()
	ws, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	other := dnstest.Start(t) // knows no names
	_, _, err = d.DialWebSocket(ctx(t), e.url(true), dialer.WithNameservers(other.Addr()))
	if !errors.Is(err, dialer.ErrNoAddress) {
		t.Fatalf("dial resolving with other nameservers: %v; want ErrNoAddress from them", err)
	}
}

// TestZeroDialer: the zero Dialer and the zero Transport work like New()
// and NewTransport() (IP literals: they use the system's resolver and
// roots, which tests must not).
func TestZeroDialer(t *testing.T) {
	e := newEnv(t, false, serve, closed)
	url := "ws://127.0.0.1:" + itoa(e.port) + "/echo"
	done := make(chan error, 1)
	var d dialer.Dialer
	go func() {
		ws, resp, err := d.DialWebSocket(context.Background(), url)
		if err == nil {
			if resp.ProtoMajor != 1 {
				err = errors.New("not over HTTP/1.1")
			}
			ws.CloseNow()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("zero Dialer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the zero Dialer's dial did not return in 10 s")
	}
	c, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:"+itoa(e.port))
	if err != nil {
		t.Fatalf("zero Dialer DialContext: %v", err)
	}
	c.Close()
	d.CloseIdleConnections()

	var tr dialer.Transport
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, "http://127.0.0.1:"+itoa(e.port)+"/proto", nil)
	resp, err := (&http.Client{Transport: &tr}).Do(req)
	if err != nil {
		t.Fatalf("zero Transport: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("zero Transport: %s", resp.Status)
	}
}

// TestDialErrorTimeout: a dial that runs out of time is a net.Error whose
// Timeout is true, through http.Client as with net/http's own transport,
// and errors.As reaches the DialError and its attempts.
func TestDialErrorTimeout(t *testing.T) {
	e := newEnv(t, true, blackhole, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	for _, tc := range []struct {
		name string
		opts []dialer.Option
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"WithTimeout", []dialer.Option{dialer.WithTimeout(300 * time.Millisecond)}, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
		{"request deadline", nil, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := e.dialer(tc.opts...).Transport()
			defer tr.CloseIdleConnections()
			rctx, cancel := tc.ctx()
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.httpURL("/proto"), nil)
			start := time.Now()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("request to blackholed addresses succeeded")
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("timed out after %v, want about 300 ms", el)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%v: not a net.Error timeout", err)
			}
			var de *dialer.DialError
			var ae dialer.AttemptError
			if !errors.As(err, &de) || !de.Timeout() || !errors.As(err, &ae) || !ae.Addr.IsValid() {
				t.Errorf("%v: errors.As does not reach a timed-out DialError and its attempts", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v: does not match context.DeadlineExceeded", err)
			}
		})
	}
	// WithResponseHeaderTimeout's bound is a timeout too, as net/http's is.
	e3 := newEnv(t, true, serve, closed)
	e3.dns.A(host, "127.0.0.1")
	tr := e3.dialer(dialer.WithResponseHeaderTimeout(200 * time.Millisecond)).Transport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, e3.httpURL("/stall?ms=3000"), nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a response 3 s late arrived within a 200 ms header timeout")
	}
	if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("response header timeout: %v: not a net.Error timeout", err)
	}

	// A refused dial is not a timeout.
	e2 := newEnv(t, true, closed, closed)
	e2.dns.A(host, "127.0.0.1")
	_, _, err = e2.dialer().DialWebSocket(ctx(t), e2.url(true))
	var de *dialer.DialError
	if !errors.As(err, &de) || de.Timeout() {
		t.Errorf("refused dial: %v; want a DialError that is not a timeout", err)
	}
}
