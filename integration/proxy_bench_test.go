package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// BenchmarkProxyWebSocket: time to a ready WebSocket through Squid (HTTP
// CONNECT) and Dante (SOCKS5) on loopback, each dial on a new connection:
// the dialer (h2 with extended CONNECT in the tunnel, and held to h1) and
// coder/websocket.Dial through the same proxy with net/http's transport.
// The origin and the proxy are IP literals, so that neither side asks
// DNS (Dante would ask the system's resolver about a name).
func BenchmarkProxyWebSocket(b *testing.B) {
	e := newEnv(b, true, serve, serve)
	target := fmt.Sprintf("wss://127.0.0.1:%d/echo", e.port)
	for _, p := range []struct {
		name  string
		start func(testing.TB) int
		url   string
	}{
		{"squid", func(tb testing.TB) int { return startSquid(tb, false) }, "http://127.0.0.1:%d"},
		{"dante", startDante, "socks5://127.0.0.1:%d"},
	} {
		proxy, err := url.Parse(fmt.Sprintf(p.url, p.start(b)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name+"/dialer", func(b *testing.B) {
			d := e.dialer(dialer.WithProxy(http.ProxyURL(proxy)))
			benchDials(b, func() (func(), error) { return wsDial(d, target) })
		})
		b.Run(p.name+"/dialer-h1", func(b *testing.B) {
			d := e.dialer(dialer.WithProxy(http.ProxyURL(proxy)), dialer.WithProtocols("h1"))
			benchDials(b, func() (func(), error) { return wsDial(d, target) })
		})
		b.Run(p.name+"/coder", func(b *testing.B) {
			benchDials(b, func() (func(), error) {
				tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: e.ca.ClientConfig()}
				c, _, err := websocket.Dial(context.Background(), target, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
				if err != nil {
					return nil, err
				}
				return func() { c.CloseNow(); tr.CloseIdleConnections() }, nil
			})
		})
	}
}
