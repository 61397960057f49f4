// Command echo serves the tests' WebSocket echo (internal/testkit's
// EchoHandler) at /echo over plain HTTP/1.1 on a loopback address: the
// backend that interop/serve.sh puts behind an independent server.
//
//	go run ./interop/echo -addr 127.0.0.1:8080
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/netip"

	"github.com/eyeballs/dialer/internal/testkit"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "loopback address and port to listen on")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil || !ap.Addr().IsLoopback() {
		log.Fatalf("echo: -addr %q: want a loopback address and port", *addr)
	}
	l, err := net.Listen("tcp", ap.String())
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo: WebSocket echo at ws://%s/echo", l.Addr())
	log.Fatal(http.Serve(l, testkit.EchoHandler()))
}
