package dialer_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

// Dial a WebSocket: the dialer resolves the host, races its IPv6 and IPv4
// addresses and returns a ready coder/websocket connection.
func ExampleDialWebSocket() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, resp, err := dialer.DialWebSocket(ctx, "wss://chat.example.com/ws",
		dialer.WithSubprotocols("chat.v1"),
		dialer.WithCompression(websocket.CompressionContextTakeover),
	)
	if errors.Is(err, dialer.ErrRejected) {
		log.Fatalf("server said %s", resp.Status)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	fmt.Println("carried over HTTP/", resp.ProtoMajor)

	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", msg)
	c.Close(websocket.StatusNormalClosure, "")
}

// See the race: every DNS answer and every attempt with its timing.
func ExampleWithReport() {
	d := dialer.New(dialer.WithReport(func(r *dialer.Report) {
		fmt.Print(r) // a text waterfall; r also encodes to JSON
	}))
	c, _, err := d.DialWebSocket(context.Background(), "wss://chat.example.com/ws")
	if err != nil {
		log.Fatal(err)
	}
	c.CloseNow()
}

// Give existing net/http code Happy Eyeballs over TCP with a shared DNS
// cache.
func ExampleDialer_DialContext() {
	d := dialer.New()
	client := &http.Client{Transport: &http.Transport{
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://example.com/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
}

// A drop-in http.RoundTripper: requests race QUIC and TCP+TLS per origin,
// and HTTP/2 and HTTP/3 connections are pooled and shared with the
// Dialer's WebSocket and WebTransport dials.
func ExampleNewTransport() {
	tr := dialer.NewTransport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get("https://example.com/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Proto) // HTTP/3.0, HTTP/2.0 or HTTP/1.1

	// A WebSocket to the same origin rides the same HTTP/2 or HTTP/3
	// connection when the server allows extended CONNECT.
	ws, _, err := tr.Dialer().DialWebSocket(context.Background(), "wss://example.com/ws")
	if err != nil {
		log.Fatal(err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

// A WebTransport session with a stream and a datagram.
func ExampleDialWebTransport() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _, err := dialer.DialWebTransport(ctx, "https://media.example.com/wt", dialer.WithSubprotocols("moq-00"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.CloseWithError(0, "done")
	str, err := s.OpenStreamSync(ctx)
	if err != nil {
		log.Fatal(err)
	}
	str.Write([]byte("hello"))
	str.Close()
	// Over HTTP/3 datagrams may be lost; over HTTP/2 (UDP blocked) they
	// arrive reliably, in order, and so can add to latency under loss.
	if !s.DatagramsReliable() {
		log.Printf("datagrams over HTTP/%d may be lost", s.HTTPVersion())
	}
	if err := s.SendDatagram([]byte("ping")); err != nil {
		log.Fatal(err)
	}
}

// Trust a private CA, such as a company's or a test's, instead of the
// system's roots. Here dialertest plays the server whose certificate the
// CA issued: without the CA the certificate is refused on every attempt.
func ExampleWithTLSConfig() {
	ca, err := dialertest.NewCA()
	if err != nil {
		log.Fatal(err)
	}
	srv := dialertest.NewServer(nil, dialertest.Options{CA: ca, Names: []string{"chat.test"}})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point("chat.test", srv)
	resolve := []dialer.Option{dialer.WithNameservers(ns.Addr()), dialer.WithHostsFile("-")}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := srv.URL("wss") + "/echo"
	system := dialer.New(resolve...) // the system's roots
	defer system.CloseIdleConnections()
	_, _, err = system.DialWebSocket(ctx, url)
	var unknown x509.UnknownAuthorityError
	fmt.Println("without the CA, unknown authority:", errors.As(err, &unknown))

	d := dialer.New(append(resolve, dialer.WithTLSConfig(&tls.Config{RootCAs: ca.Pool()}))...)
	defer d.CloseIdleConnections()
	// A long attempt delay keeps IPv6 and QUIC first even on a busy machine,
	// so that the output is always the same.
	c, resp, err := d.DialWebSocket(ctx, url, dialer.WithAttemptDelay(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	fmt.Printf("with the CA: WebSocket over HTTP/%d\n", resp.ProtoMajor)
	c.Close(websocket.StatusNormalClosure, "")
	// Output:
	// without the CA, unknown authority: true
	// with the CA: WebSocket over HTTP/3
}

// A failed dial returns a *DialError that says where the dial stopped and
// lists every attempt with its address, protocol and error. Here nothing
// listens on either address, so both attempts are refused at once; a
// blackholed path instead runs out of time, and Timeout reports it.
func ExampleDialError() {
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	refused := dialertest.NewServer(nil, dialertest.Options{H1: true, H2: true, Names: []string{"refused.test"}},
		dialertest.RefuseTCP())
	defer refused.Close()
	ns.Point("refused.test", refused)
	blackholed := dialertest.NewServer(nil, dialertest.Options{H1: true, H2: true, Names: []string{"blackholed.test"}},
		dialertest.BlackholeTCP())
	defer blackholed.Close()
	ns.Point("blackholed.test", blackholed)
	d := dialer.New(dialertest.DialerOptions(ns, refused.CA())...)
	defer d.CloseIdleConnections()

	_, _, err := d.DialWebSocket(context.Background(), refused.URL("wss")+"/echo")
	var de *dialer.DialError
	if errors.As(err, &de) {
		fmt.Println("stopped at:", de.Stage)
		for _, a := range de.Attempts {
			fmt.Printf("%s %s refused: %v\n", a.Proto, a.Addr.Addr(), errors.Is(a, syscall.ECONNREFUSED))
		}
		fmt.Println("timeout:", de.Timeout())
	}

	_, _, err = d.DialWebSocket(context.Background(), blackholed.URL("wss")+"/echo",
		dialer.WithTimeout(300*time.Millisecond))
	if errors.As(err, &de) {
		fmt.Println("stopped at:", de.Stage)
		fmt.Println("timeout:", de.Timeout(), errors.Is(err, context.DeadlineExceeded))
	}
	// Output:
	// stopped at: connect
	// h2,h1 ::1 refused: true
	// h2,h1 127.0.0.1 refused: true
	// timeout: false
	// stopped at: connect
	// timeout: true true
}

// Follow a race as it happens, in the style of net/http/httptrace. Here
// the server lacks WebSocket over HTTP/3, so the QUIC connection is closed
// as soon as its SETTINGS show it, and HTTP/2 carries the WebSocket.
func ExampleWithTrace() {
	srv := dialertest.NewServer(nil, dialertest.Options{}, dialertest.WithoutExtendedConnect(dialertest.HTTP3))
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)

	trace := &dialer.Trace{
		Settings: func(a dialer.Attempt) {
			fmt.Printf("%s %s: SETTINGS, extended CONNECT %v\n", a.Version, a.Family, a.Settings.ExtendedConnect)
		},
		Incapable: func(a dialer.Attempt) { fmt.Printf("%s %s: closed, incapable\n", a.Version, a.Family) },
		Won:       func(a dialer.Attempt, _ string) { fmt.Printf("%s %s: won\n", a.Version, a.Family) },
	}
	d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()),
		dialer.WithTrace(trace), dialer.WithAttemptDelay(2*time.Second))...)
	defer d.CloseIdleConnections()
	c, _, err := d.DialWebSocket(context.Background(), srv.URL("wss")+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	// Output:
	// h3 IPv6: SETTINGS, extended CONNECT false
	// h3 IPv6: closed, incapable
	// h2 IPv6: SETTINGS, extended CONNECT true
	// h2 IPv6: won
}

// Read the streams a WebTransport server opens. dialertest's server opens
// a bidirectional and a unidirectional stream when a client's stream asks
// for "push".
func ExampleSession_AcceptStream() {
	srv := dialertest.NewServer(nil, dialertest.Options{WebTransport: true})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()), dialer.WithAttemptDelay(2*time.Second))...)
	defer d.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _, err := d.DialWebTransport(ctx, srv.URL("https")+"/wt")
	if err != nil {
		log.Fatal(err)
	}
	defer s.CloseWithError(0, "")
	ask, err := s.OpenStreamSync(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ask.Write([]byte("push\n"))
	ask.Close()

	str, err := s.AcceptStream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg, err := io.ReadAll(str)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stream: %s\n", msg)

	uni, err := s.AcceptUniStream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	uni.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg, err = io.ReadAll(uni)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("unidirectional stream: %s (over HTTP/%d)\n", msg, s.HTTPVersion())
	// Output:
	// stream: hello from server
	// unidirectional stream: uni from server (over HTTP/3)
}
