package dialertest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

// Test that a client falls back to IPv4 when IPv6 is blackholed: the
// dialer tries IPv6 first (HTTP/3) and, when nothing answers within the
// attempt delay (250 ms), IPv4 over TCP, which works whatever the fault
// (Happy Eyeballs v3's diagonal order). In a test pass t instead of nil,
// and the kit closes everything when the test ends.
func Example_fallback() {
	srv := dialertest.NewServer(nil, dialertest.Options{Names: []string{"chat.test"}},
		dialertest.BlackholeTCP(dialertest.IPv6), dialertest.BlackholeUDP(dialertest.IPv6))
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point("chat.test", srv) // A 127.0.0.1, AAAA ::1, HTTPS alpn=h3,h2

	var rep *dialer.Report
	d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()),
		dialer.WithReport(func(r *dialer.Report) { rep = r }))...)
	defer d.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := d.DialWebSocket(ctx, "wss://chat.test:"+fmt.Sprint(srv.Port())+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	won := rep.Attempts[rep.Winner]
	fmt.Printf("WebSocket over HTTP/%d to %s\n", resp.ProtoMajor, won.Family)
	fmt.Println("first attempt:", rep.Attempts[0].Proto, rep.Attempts[0].Family, rep.Attempts[0].Outcome)
	c.Close(websocket.StatusNormalClosure, "")
	// Output:
	// WebSocket over HTTP/2 to IPv4
	// first attempt: h3 IPv6 lost
}

// One server, every HTTP version: the dialer carries a WebSocket over the
// one it is allowed.
func ExampleNewServer() {
	srv := dialertest.NewServer(nil, dialertest.Options{})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, proto := range []string{"h1", "h2", "h3"} {
		d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()), dialer.WithProtocols(proto))...)
		c, resp, err := d.DialWebSocket(ctx, srv.URL("wss")+"/echo")
		if err != nil {
			log.Fatal(err)
		}
		c.Write(ctx, websocket.MessageText, []byte("hello"))
		_, msg, _ := c.Read(ctx)
		fmt.Printf("%s: HTTP/%d echoed %q\n", proto, resp.ProtoMajor, msg)
		c.Close(websocket.StatusNormalClosure, "")
		d.CloseIdleConnections()
	}
	// Output:
	// h1: HTTP/1 echoed "hello"
	// h2: HTTP/2 echoed "hello"
	// h3: HTTP/3 echoed "hello"
}

// A server that lacks WebSocket over HTTP/2 and HTTP/3, as most do: the
// dialer closes those connections as soon as their SETTINGS show it, and
// upgrades a fresh HTTP/1.1 connection.
func ExampleWithoutExtendedConnect() {
	srv := dialertest.NewServer(nil, dialertest.Options{}, dialertest.WithoutExtendedConnect())
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	d := dialer.New(dialertest.DialerOptions(ns, srv.CA())...)
	defer d.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := d.DialWebSocket(ctx, srv.URL("wss")+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	// The server saw the dialer close what it could not use.
	if err := srv.WaitOpen(ctx, dialertest.HTTP3, 0); err != nil {
		log.Fatal(err)
	}
	if err := srv.WaitOpen(ctx, dialertest.HTTP2, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("WebSocket over HTTP/%d\n", resp.ProtoMajor)
	// Output:
	// WebSocket over HTTP/1
}

// Test a client's reconnect logic: CloseConnections drops every connection
// as a server restart would, and the server keeps serving.
func ExampleServer_CloseConnections() {
	srv := dialertest.NewServer(nil, dialertest.Options{H2: true})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	d := dialer.New(dialertest.DialerOptions(ns, srv.CA())...)
	defer d.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := d.DialWebSocket(ctx, srv.URL("wss")+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()

	srv.CloseConnections()
	_, _, err = c.Read(ctx)
	fmt.Println("read after the restart failed:", err != nil)

	// The client's reconnect: a new dial opens a new connection.
	c2, _, err := d.DialWebSocket(ctx, srv.URL("wss")+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	c2.Close(websocket.StatusNormalClosure, "")
	fmt.Println("HTTP/2 connections accepted:", srv.Accepted(dialertest.HTTP2))
	// Output:
	// read after the restart failed: true
	// HTTP/2 connections accepted: 2
}

// A slow AAAA answer: the dialer waits the resolution delay (50 ms) for it,
// then goes on with IPv4.
func ExampleDNS_Delay() {
	srv := dialertest.NewServer(nil, dialertest.Options{H2: true})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	ns.Delay(srv.Name(), dialertest.TypeAAAA, time.Second)

	var rep *dialer.Report
	d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()),
		dialer.WithReport(func(r *dialer.Report) { rep = r }))...)
	defer d.CloseIdleConnections()
	c, _, err := d.DialWebSocket(context.Background(), srv.URL("wss")+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	fmt.Println("won over", rep.Attempts[rep.Winner].Family, "before the AAAA answer")
	// Output:
	// won over IPv4 before the AAAA answer
}

// A WebSocket handler of one's own, served over HTTP/1.1, HTTP/2 and
// HTTP/3 alike.
func ExampleAcceptWebSocket() {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := dialertest.AcceptWebSocket(w, r, nil)
		if err != nil {
			return // AcceptWebSocket has answered
		}
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageText, []byte(fmt.Sprintf("hello over HTTP/%d", r.ProtoMajor)))
		c.Close(websocket.StatusNormalClosure, "bye")
	})
	srv := dialertest.NewServer(nil, dialertest.Options{Handler: hello})
	defer srv.Close()
	ns := dialertest.NewDNS(nil)
	defer ns.Close()
	ns.Point(srv.Name(), srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, proto := range []string{"h1", "h2", "h3"} {
		d := dialer.New(append(dialertest.DialerOptions(ns, srv.CA()), dialer.WithProtocols(proto))...)
		c, _, err := d.DialWebSocket(ctx, srv.URL("wss")+"/")
		if err != nil {
			log.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(msg))
		c.CloseNow()
		d.CloseIdleConnections()
	}
	// Output:
	// hello over HTTP/1
	// hello over HTTP/2
	// hello over HTTP/3
}
