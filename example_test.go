package dialer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
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
