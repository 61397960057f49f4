package integration

import (
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer/internal/testkit"
)

// BenchmarkH3Carrier splits what a WebSocket over HTTP/3 costs above a raw
// quic-go stream (BenchmarkDatapath's floor under dialer-h3) into quic-go's
// HTTP/3 layer and the rest, in one run, with BenchmarkDatapath's loads
// (echo: 1 MiB in 32 KiB pieces; pingpong: 64 B there and back):
//
//	raw-quic   a quic-go stream, no HTTP/3
//	raw-h3     an RFC 9220 extended CONNECT stream written and read through
//	           quic-go's http3.RequestStream directly, echoed a message
//	           (32 KiB or 64 B) at a time by rawEcho: the carrier of
//	           dialer-h3, without WebSocket and without the package
//	dialer-h3  DialWebSocket over HTTP/3, echoed by EchoHandler
//
// raw-h3 and dialer-h3 share one quic-go HTTP/3 server.
func BenchmarkH3Carrier(b *testing.B) {
	e := newEnv(b, true, closed, closed)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ws := testkit.EchoHandler()
	s, err := testkit.StartH3(pc, e.serverTLS(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/raw" {
			rawEcho(w, r)
			return
		}
		ws.ServeHTTP(w, r)
	}))
	if err != nil {
		pc.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	addr := s.Addr().String()
	qconf := &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true}

	for _, mode := range []string{"echo", "pingpong"} {
		b.Run(mode, func(b *testing.B) {
			size := map[string]int{"echo": echoPiece, "pingpong": pingSize}[mode]
			raws := []struct {
				name string
				open func(b *testing.B) byteStream
			}{
				{"raw-quic", func(b *testing.B) byteStream { return rawQUIC(b, e) }},
				{"raw-h3", func(b *testing.B) byteStream { return h3RequestStream(b, addr, e.ca.Pool(), qconf, size) }},
			}
			for _, r := range raws {
				b.Run(r.name, func(b *testing.B) {
					s := r.open(b)
					defer s.Close()
					if mode == "echo" {
						echoRaw(b, s)
					} else {
						pingRaw(b, s)
					}
				})
			}
			b.Run("dialer-h3", func(b *testing.B) {
				c := dialerWS(b, e, "wss://"+addr+"/echo", 3, "h3")
				defer c.CloseNow()
				if mode == "echo" {
					echoWS(b, c)
				} else {
					pingWS(b, c)
				}
				if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
					b.Fatalf("close handshake: %v", err)
				}
			})
		})
	}
}
