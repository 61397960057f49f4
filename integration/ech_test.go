package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// The names of the ECH tests: the origin the client dials, and the public
// name of its ECH configurations (RFC 9849 §6.1.7), which the server
// authenticates for when it rejects ECH.
const (
	echOrigin = "ech.example.test"
	echPublic = "public.example.test"
)

// An echKey is an ECH key pair and its ECHConfig (RFC 9849 §4): DHKEM
// X25519 with HKDF-SHA256 and AES-128-GCM, public name echPublic.
type echKey struct {
	priv   []byte
	config []byte
}

// newECHKey generates a key with config_id id; mandatory adds a mandatory
// extension (§4.2) that no client knows, so that clients skip the config.
func newECHKey(t testing.TB, id byte, mandatory bool) echKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return echKey{priv: k.Bytes(), config: marshalECHConfig(id, k.PublicKey().Bytes(), mandatory)}
}

func marshalECHConfig(id byte, pub []byte, mandatory bool) []byte {
	c := []byte{id, 0x00, 0x20} // config_id, kem_id DHKEM(X25519, HKDF-SHA256)
	c = append(c, byte(len(pub)>>8), byte(len(pub)))
	c = append(c, pub...)
	c = append(c, 0, 4, 0, 1, 0, 1) // cipher_suites: HKDF-SHA256, AES-128-GCM
	c = append(c, 32, byte(len(echPublic)))
	c = append(c, echPublic...)
	if mandatory {
		c = append(c, 0, 4, 0xff, 0x01, 0, 0)
	} else {
		c = append(c, 0, 0)
	}
	return append([]byte{0xfe, 0x0d, byte(len(c) >> 8), byte(len(c))}, c...)
}

// echConfigList is the ECHConfigList of configs, as an HTTPS record's ech
// parameter carries it.
func echConfigList(configs ...[]byte) []byte {
	var b []byte
	for _, c := range configs {
		b = append(b, c...)
	}
	return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
}

// echServer is a TLS (TCP, HTTP/2) or QUIC (HTTP/3) server on 127.0.0.1
// holding ECH keys. It presents the origin's certificate, or, to a
// ClientHello naming echPublic (ECH rejected), the public name's
// certificate when it has one. It records the server name of every
// ClientHello it handshakes with (the inner one when it accepted ECH), and
// answers a request with the connection's server name and whether ECH was
// accepted.
type echServer struct {
	port int
	mu   sync.Mutex
	sni  []string
}

func startECHServer(t testing.TB, quic bool, ca *testkit.CA, keys []tls.EncryptedClientHelloKey, public *tls.Certificate) *echServer {
	t.Helper()
	origin, err := ca.Certificate(echOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s := &echServer{}
	conf := &tls.Config{
		MinVersion:               tls.VersionTLS13,
		EncryptedClientHelloKeys: keys,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			s.sni = append(s.sni, h.ServerName)
			s.mu.Unlock()
			if h.ServerName == echPublic && public != nil {
				return public, nil
			}
			return &origin, nil
		},
	}
	h := http.NewServeMux()
	h.Handle("/echo", testkit.EchoHandler())
	h.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s ech=%v", r.TLS.ServerName, r.TLS.ECHAccepted)
	})
	var closer io.Closer
	if quic {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := testkit.StartH3(pc, conf, h)
		if err != nil {
			pc.Close()
			t.Fatal(err)
		}
		s.port, closer = pc.LocalAddr().(*net.UDPAddr).Port, srv
	} else {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := testkit.StartHTTP(l, conf, h)
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		s.port, closer = l.Addr().(*net.TCPAddr).Port, srv
	}
	t.Cleanup(func() { closer.Close() })
	return s
}

// names returns the server names of the handshakes so far.
func (s *echServer) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sni)
}

// echCase is one server behaviour of TestECH.
type echCase struct {
	name string
	// keys are the server's ECH keys; the client is given key1's config.
	keys func(k1, k2, k3, mand echKey) []tls.EncryptedClientHelloKey
	// unusableRecord: the HTTPS record carries only a configuration the
	// client cannot use (a mandatory extension it does not know).
	unusableRecord bool
	// public is the certificate for echPublic: "trusted" (the test CA),
	// "untrusted" (another CA) or "" (none: the origin's is presented).
	public string
	// result is the winning attempt's Attempt.ECHResult, or, with errPart,
	// the failed attempt's; sni the handshakes' server names.
	result  string
	sni     []string
	errPart string
}

var echCases = []echCase{
	{
		name: "accepted",
		keys: func(k1, _, _, _ echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: k1.config, PrivateKey: k1.priv, SendAsRetry: true}}
		},
		public: "trusted", result: "accepted", sni: []string{echOrigin},
	},
	{
		// The key was rotated: the server rejects ECH and sends its new
		// config as a retry configuration; one retry with it succeeds.
		name: "retried",
		keys: func(_, k2, _, _ echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: k2.config, PrivateKey: k2.priv, SendAsRetry: true}}
		},
		public: "trusted", result: "retried", sni: []string{echPublic, echOrigin},
	},
	{
		// ECH turned off at the server while the HTTPS record still
		// carries ech=: securely disabled (it authenticates for the public
		// name and sends no retry configurations); one retry without ECH.
		name:   "disabled",
		keys:   func(_, _, _, _ echKey) []tls.EncryptedClientHelloKey { return nil },
		public: "trusted", result: "disabled", sni: []string{echPublic, echOrigin},
	},
	{
		// Retry configurations none of which the client can use (a
		// mandatory extension it does not know) disable ECH as securely.
		name: "unusable retry configs",
		keys: func(_, _, _, mand echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: mand.config, PrivateKey: mand.priv, SendAsRetry: true}}
		},
		public: "trusted", result: "disabled", sni: []string{echPublic, echOrigin},
	},
	{
		// The retry configuration is one the server cannot decrypt
		// either (its key does not match): the retry is rejected too, and
		// the dial fails after exactly two handshakes.
		name: "retry rejected",
		keys: func(_, k2, k3, _ echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: k3.config, PrivateKey: k2.priv, SendAsRetry: true}}
		},
		public: "trusted", result: "rejected", sni: []string{echPublic, echPublic}, errPart: "rejected ECH again",
	},
	{
		// Only configurations the client cannot use (RFC 9849 §4): no ECH
		// offered, as Chromium (which sends GREASE ECH instead).
		name: "unusable record",
		keys: func(k1, _, _, _ echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: k1.config, PrivateKey: k1.priv, SendAsRetry: true}}
		},
		unusableRecord: true, public: "trusted", result: "unusable", sni: []string{echOrigin},
	},
	{
		// Neither accepts ECH nor authenticates for the public name: an
		// error, and the origin's name never goes out in clear.
		name:   "public name not authenticated",
		keys:   func(_, _, _, _ echKey) []tls.EncryptedClientHelloKey { return nil },
		public: "", result: "rejected", sni: []string{echPublic}, errPart: "did not authenticate for the public name",
	},
	{
		name: "public name from untrusted CA",
		keys: func(_, k2, _, _ echKey) []tls.EncryptedClientHelloKey {
			return []tls.EncryptedClientHelloKey{{Config: k2.config, PrivateKey: k2.priv, SendAsRetry: true}}
		},
		public: "untrusted", result: "rejected", sni: []string{echPublic}, errPart: "did not authenticate for the public name",
	},
}

// TestECH: an origin whose HTTPS record carries ech= is dialed with
// Encrypted Client Hello over TCP+TLS and over QUIC, and a rejection is
// handled as RFC 9849 §6.1.6 says: one retry with the server's retry
// configurations, one retry without ECH when the server securely disabled
// it, an error otherwise. The servers are Go's crypto/tls (through
// net/http and quic-go) holding ECH keys.
func TestECH(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		for _, tc := range echCases {
			t.Run(transport+"/"+tc.name, func(t *testing.T) { testECH(t, transport == "quic", tc) })
		}
	}
}

// An echWorld is one ECH test's servers and client: a server as the case
// says, the test DNS server publishing key1's configuration in the
// origin's HTTPS record (none when noECH), and a Transport that trusts the
// test CA and keeps the last race's report.
type echWorld struct {
	srv *echServer
	d   *dialer.Dialer
	tr  *dialer.Transport // d's
	url string
	mu  sync.Mutex
	rep *dialer.Report
	// alpn is the HTTPS record's alpn, proto what the attempt offers.
	alpn, proto string
}

func newECHWorld(t testing.TB, quic bool, tc echCase, noECH bool) *echWorld {
	checkFDs(t)
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k3, mand := newECHKey(t, 1, false), newECHKey(t, 2, false), newECHKey(t, 3, false), newECHKey(t, 4, true)
	var public *tls.Certificate
	switch tc.public {
	case "trusted":
		c, err := ca.Certificate(echPublic)
		if err != nil {
			t.Fatal(err)
		}
		public = &c
	case "untrusted":
		other, err := testkit.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		c, err := other.Certificate(echPublic)
		if err != nil {
			t.Fatal(err)
		}
		public = &c
	}
	w := &echWorld{srv: startECHServer(t, quic, ca, tc.keys(k1, k2, k3, mand), public)}

	dns := dnstest.Start(t)
	dns.A(echOrigin, "127.0.0.1")
	// One endpoint: QUIC (h3 alone, RFC 9460 §7.1.1 no-default-alpn) or
	// TCP+TLS offering h2 and HTTP/1.1.
	w.alpn, w.proto = "h2", "h2,h1"
	if quic {
		w.alpn, w.proto = "h3 no-default-alpn", "h3"
	}
	record := fmt.Sprintf("1 . alpn=%s port=%d", w.alpn, w.srv.port)
	if !noECH {
		published := k1.config
		if tc.unusableRecord {
			published = mand.config
		}
		record += " ech=" + base64.StdEncoding.EncodeToString(echConfigList(published))
	}
	dns.HTTPS(echOrigin, record)

	w.d = dialer.New(
		dialer.WithNameservers(dns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(ca.ClientConfig()), // MinVersion TLS 1.2: ECH raises it to 1.3
		dialer.WithReport(func(r *dialer.Report) { w.mu.Lock(); w.rep = r; w.mu.Unlock() }),
	)
	w.tr = w.d.Transport()
	t.Cleanup(w.tr.CloseIdleConnections)
	t.Cleanup(w.d.CloseIdleConnections)
	w.url = fmt.Sprintf("https://%s:%d/", echOrigin, w.srv.port)
	return w
}

// get sends one GET request and returns the body.
func (w *echWorld) get() (*http.Response, []byte, error) {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(c, http.MethodGet, w.url, nil)
	resp, err := (&http.Client{Transport: w.tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// report returns the last race's report.
func (w *echWorld) report() *dialer.Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rep
}

func testECH(t *testing.T, quic bool, tc echCase) {
	w := newECHWorld(t, quic, tc, false)
	srv, proto := w.srv, w.proto
	resp, body, err := w.get()

	if got := srv.names(); !slices.Equal(got, tc.sni) {
		t.Errorf("server saw ClientHellos naming %q; want %q", got, tc.sni)
	}
	r := w.report()
	if r == nil || len(r.Attempts) != 1 {
		t.Fatalf("report %v; want one with one attempt", r)
	}
	a := r.Attempts[0]
	if !a.ECH || a.ECHResult != tc.result || a.Proto != proto {
		t.Errorf("attempt %s offered ECH %v with result %q; want %s, true, %q", a.Proto, a.ECH, a.ECHResult, proto, tc.result)
	}
	if !strings.Contains(r.String(), "(ECH "+tc.result+")") {
		t.Errorf("waterfall does not show the ECH result %q:\n%s", tc.result, r)
	}

	if tc.errPart != "" {
		var ee *dialer.ECHError
		var de *dialer.DialError
		if !errors.As(err, &ee) || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.errPart) {
			t.Fatalf("error %v; want a DialError holding an *ECHError saying %q", err, tc.errPart)
		}
		if ee.PublicName != echPublic {
			t.Errorf("ECHError.PublicName = %q; want %q", ee.PublicName, echPublic)
		}
		if wantRetried := len(tc.sni) > 1; ee.Retried != wantRetried {
			t.Errorf("ECHError.Retried = %v; want %v", ee.Retried, wantRetried)
		}
		switch tc.name {
		case "retry rejected":
			if !errors.As(err, new(*tls.ECHRejectionError)) {
				t.Errorf("error %v does not hold the *tls.ECHRejectionError", err)
			}
		default:
			if !errors.As(err, new(*tls.CertificateVerificationError)) {
				t.Errorf("error %v does not hold the *tls.CertificateVerificationError", err)
			}
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	wantECH := tc.result == "accepted" || tc.result == "retried"
	if want := fmt.Sprintf("%s ech=%v", echOrigin, wantECH); string(body) != want {
		t.Errorf("server answered %q; want %q", body, want)
	}
	if quic && resp.ProtoMajor != 3 || !quic && resp.ProtoMajor != 2 {
		t.Errorf("response over HTTP/%d", resp.ProtoMajor)
	}
	// The next request rides the pooled connection: no new handshake.
	if _, body2, err := w.get(); err != nil || string(body2) != string(body) {
		t.Errorf("second request answered %q, %v; want %q", body2, err, body)
	}
	if got := srv.names(); len(got) != len(tc.sni) {
		t.Errorf("second request made a handshake: %q", got)
	}
}

// TestECHWebSocket: a WebSocket dial goes through the same ECH retry as
// a request, over HTTP/3 and HTTP/2, and the session works.
func TestECHWebSocket(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			tc := *findECHCase(t, "retried")
			w := newECHWorld(t, transport == "quic", tc, false)
			c, resp, err := w.d.DialWebSocket(ctx(t), fmt.Sprintf("wss://%s:%d/echo", echOrigin, w.srv.port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if want := map[string]int{"tcp": 2, "quic": 3}[transport]; resp.ProtoMajor != want {
				t.Errorf("WebSocket over HTTP/%d; want HTTP/%d", resp.ProtoMajor, want)
			}
			if err := c.Write(ctx(t), websocket.MessageText, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := c.Read(ctx(t)); err != nil || string(msg) != "hello" {
				t.Fatalf("echo %q, %v", msg, err)
			}
			c.Close(websocket.StatusNormalClosure, "")
			if got := w.srv.names(); !slices.Equal(got, tc.sni) {
				t.Errorf("server saw ClientHellos naming %q; want %q", got, tc.sni)
			}
			r := w.report()
			if r == nil || r.Winner < 0 || r.Attempts[r.Winner].ECHResult != "retried" {
				t.Errorf("report: winner's ECH is not %q:\n%s", "retried", r)
			}
		})
	}
}

// BenchmarkECH: the cost of a fresh dial (DNS cached) with ECH accepted,
// retried with the server's retry configurations, and securely disabled,
// beside the same dial to the same server without ECH (baseline: the
// HTTPS record carries no ech=). Each request closes the connection
// after, so that every one dials.
func BenchmarkECH(b *testing.B) {
	for _, transport := range []string{"tcp", "quic"} {
		for _, name := range []string{"baseline", "accepted", "retried", "disabled"} {
			b.Run(transport+"/"+name, func(b *testing.B) {
				tc := echCases[0]
				if name != "baseline" {
					tc = *findECHCase(b, name)
				}
				w := newECHWorld(b, transport == "quic", tc, name == "baseline")
				for b.Loop() {
					if _, _, err := w.get(); err != nil {
						b.Fatal(err)
					}
					w.tr.CloseIdleConnections()
				}
				if r := w.report(); name != "baseline" && r.Attempts[0].ECHResult != name {
					b.Fatalf("ECH %q; want %q", r.Attempts[0].ECHResult, name)
				}
			})
		}
	}
}

func findECHCase(t testing.TB, name string) *echCase {
	for i := range echCases {
		if echCases[i].name == name {
			return &echCases[i]
		}
	}
	t.Fatalf("no ECH case %q", name)
	return nil
}
