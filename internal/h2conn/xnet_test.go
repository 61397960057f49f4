package h2conn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// xnetServer serves h with x/net's HTTP/2 server on a loopback listener,
// over h2c or over TLS when tlsConf is set, and returns its address and
// the http.Server whose Shutdown sends GOAWAY.
func xnetServer(t *testing.T, h2s *http2.Server, tlsConf *tls.Config, h http.Handler) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: nil}
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tlsConf != nil {
				tc := tls.Server(c, tlsConf)
				if err := tc.Handshake(); err != nil {
					c.Close()
					continue
				}
				c = tc
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				h2s.ServeConn(c, &http2.ServeConnOpts{BaseConfig: srv, Handler: h})
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), srv
}

// dialClient connects our client to addr.
func dialClient(t *testing.T, addr string, cfg Config) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func do(t *testing.T, c *Conn, method, url string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t, 30*time.Second), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// testMux is what the x/net server answers in these tests.
func testMux(t *testing.T) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Host", r.Host)
		fmt.Fprint(w, "hello")
	})
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("some"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	return mux
}

// pattern is n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestXNetServerGetPost(t *testing.T) {
	addr, _ := xnetServer(t, &http2.Server{}, nil, testMux(t))
	c := dialClient(t, addr, Config{})
	resp := do(t, c, "GET", "http://"+addr+"/hello", nil)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "hello" || resp.StatusCode != 200 {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, b, err)
	}
	if resp.Header.Get("X-Proto") != "HTTP/2.0" || resp.Header.Get("X-Host") != addr || resp.ContentLength != 5 {
		t.Fatalf("GET header %v, length %d", resp.Header, resp.ContentLength)
	}
	body := []byte("a small request body")
	resp = do(t, c, "POST", "http://"+addr+"/sum", bytesReader(body))
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %s", len(body), hash(body)); string(b) != want {
		t.Fatalf("POST: %q, want %q", b, want)
	}
	// A handler that answers without reading the body: the server stops
	// the upload with RST_STREAM(NO_ERROR) and the response stays whole.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(make([]byte, 1<<20))
	resp = do(t, c, "POST", "http://"+addr+"/hello", pr)
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "hello" {
		t.Fatalf("POST without reading: %q %v", b, err)
	}
	resp = do(t, c, "GET", "http://"+addr+"/nothing", nil)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func bytesReader(b []byte) io.Reader { return &onlyReader{b} }

// onlyReader hides the length, so requests stream their body.
type onlyReader struct{ b []byte }

func (r *onlyReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestXNetServerLarge(t *testing.T) {
	addr, _ := xnetServer(t, &http2.Server{}, nil, testMux(t))
	c := dialClient(t, addr, Config{})
	const n = 10 << 20
	resp := do(t, c, "GET", "http://"+addr+"/big?n="+strconv.Itoa(n), nil)
	if err := readAllCheck(&slowReader{r: resp.Body, every: 16}, pattern(n)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body := pattern(n)
	resp = do(t, c, "POST", "http://"+addr+"/sum", bytesReader(body))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %s", n, hash(body)); string(b) != want {
		t.Fatalf("POST: %q, want %q", b, want)
	}
}

// TestXNetServerConcurrency: more requests than the server's
// MAX_CONCURRENT_STREAMS wait for room instead of being refused.
func TestXNetServerConcurrency(t *testing.T) {
	var active, peak atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		active.Add(-1)
		fmt.Fprint(w, "ok")
	})
	addr, _ := xnetServer(t, &http2.Server{MaxConcurrentStreams: 3}, nil, h)
	c := dialClient(t, addr, Config{})
	if _, err := c.PeerSettings(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st.MaxConcurrentStreams != 3 {
		t.Fatalf("MaxConcurrentStreams %d", st.MaxConcurrentStreams)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), "GET", "http://"+addr+"/", nil)
			resp, err := c.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && string(b) != "ok" {
				err = fmt.Errorf("body %q", b)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > 3 || p < 1 {
		t.Fatalf("peak concurrency %d", p)
	}
}

// TestXNetServerGoAway: a shutting-down server's GOAWAY lets the stream
// in flight finish, refuses new ones, and ends the connection.
func TestXNetServerGoAway(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		fmt.Fprint(w, "done")
	})
	addr, srv := xnetServer(t, &http2.Server{}, nil, h)
	c := dialClient(t, addr, Config{})
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), "GET", "http://"+addr+"/", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(testCtx(t, 10*time.Second)) }()
	deadline := time.Now().Add(5 * time.Second)
	for !c.State().Closing {
		if time.Now().After(deadline) {
			t.Fatal("no GOAWAY")
		}
		time.Sleep(5 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	if _, err := c.RoundTrip(req); !errors.Is(err, ErrNotProcessed) {
		t.Fatalf("request after GOAWAY: %v", err)
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection did not end")
	}
	var ga *GoAwayError
	if err := c.Err(); !errors.As(err, &ga) || ga.Code != http2.ErrCodeNo || !ga.Remote {
		t.Fatalf("Err = %v", err)
	}
	<-shut
}

// TestXNetServerAbort: a handler that aborts resets the stream; the body
// read fails with the peer's code.
func TestXNetServerAbort(t *testing.T) {
	addr, _ := xnetServer(t, &http2.Server{}, nil, testMux(t))
	c := dialClient(t, addr, Config{})
	resp := do(t, c, "GET", "http://"+addr+"/abort", nil)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var se *StreamError
	if !errors.As(err, &se) || !se.Remote || se.Code != http2.ErrCodeInternal {
		t.Fatalf("read %q, %v", b, err)
	}
	// The connection is still fine.
	resp = do(t, c, "GET", "http://"+addr+"/hello", nil)
	resp.Body.Close()
}

// testCert makes a throwaway CA-less self-signed certificate for
// 127.0.0.1 and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "h2conn test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestXNetServerTLS(t *testing.T) {
	cert, pool := testCert(t)
	addr, _ := xnetServer(t, &http2.Server{}, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}, testMux(t))
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	c, err := NewClient(tc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := do(t, c, "GET", "https://"+addr+"/hello", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("%q, TLS %v", b, resp.TLS)
	}
}

// TestXNetClient: x/net's client against our server, to show our server
// side interoperates.
func TestXNetClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := NewServer(testCtx(t, 5*time.Second), nc, Config{})
			if err != nil {
				t.Error(err)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var hw sync.WaitGroup
				defer hw.Wait()
				defer srv.Close()
				for {
					s, err := srv.AcceptStream(context.Background())
					if err != nil {
						return
					}
					hw.Add(1)
					go func() {
						defer hw.Done()
						xnetClientHandler(s)
					}()
				}
			}()
		}
	}()
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	base := "http://" + ln.Addr().String()

	resp, err := hc.Get(base + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello /hello" || resp.ProtoMajor != 2 || resp.Header.Get("X-Test") != "yes" {
		t.Fatalf("GET: %q %v", b, resp.Header)
	}

	const n = 10 << 20
	body := pattern(n)
	resp, err = hc.Post(base+"/echo", "application/octet-stream", bytesReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := readAllCheck(&slowReader{r: resp.Body, every: 16}, body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr.CloseIdleConnections()
	ln.Close()
}

// xnetClientHandler answers /hello and echoes everything else.
func xnetClientHandler(s *Stream) {
	h, err := s.Header(context.Background())
	if err != nil {
		return
	}
	if p := value(h, ":path"); p == "/hello" {
		s.WriteHeader(status(200, "x-test", "yes"), false)
		s.Write([]byte("hello " + p))
		s.CloseWrite()
		s.Close()
		return
	}
	echo(s)
}
