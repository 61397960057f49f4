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
