package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// TestWriteBehindOrder checks the written-behind data path of WebSocket
// over HTTP/2 and HTTP/3 (bodyPipe, h3Stream): large messages, which go
// behind, and small ones, which go straight out when nothing is buffered,
// are written back to back without waiting and must come back whole and
// in order; then the close handshake runs after the last buffered byte. A
// small write that overtook buffered data, or a batch lost or repeated,
// fails it.
func TestWriteBehindOrder(t *testing.T) {
	for _, proto := range []string{"h2", "h2-xnet", "h3"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, true, serve, closed)
			e.quic(h3, noUDP)
			d := dataPathDialer(t, e, proto)
			c, resp, err := d.DialWebSocket(ctx(t), "wss://127.0.0.1:"+itoa(e.port)+"/echo")
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if want := map[string]int{"h2": 2, "h2-xnet": 2, "h3": 3}[proto]; resp.ProtoMajor != want {
				t.Fatalf("WebSocket over HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
			}
			c.SetReadLimit(-1)
			var msgs [][]byte
			for i := range 40 {
				size := 10
				if i%2 == 0 {
					size = 100<<10 + i // above the write-behind buffers
				}
				msgs = append(msgs, bytes.Repeat([]byte(fmt.Sprintf("%03d", i)), size/3+1)[:size])
			}
			errc := make(chan error, 1)
			go func() {
				for _, m := range msgs {
					if err := c.Write(context.Background(), websocket.MessageBinary, m); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i, want := range msgs {
				_, got, err := c.Read(ctx(t))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: got %d bytes starting %q, want %d starting %q", i, len(got), got[:min(6, len(got))], len(want), want[:6])
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			closeConn(t, c)
			checkXnet(t, e, proto)
		})
	}
}

// TestUnreadWebSocketsDoNotStall: WebSockets on one HTTP/2 connection
// that stop reading hold their streams' windows, not the connection's: a
// fifth WebSocket still echoes while four others have more than their
// stream window (1 MiB) waiting unread (RFC 9113 §5.2).
func TestUnreadWebSocketsDoNotStall(t *testing.T) {
	e := newEnv(t, true, serve, closed)
	d := e.dialer(dialer.WithProtocols("h2"))
	defer d.CloseIdleConnections()
	url := "wss://127.0.0.1:" + itoa(e.port) + "/echo"
	big := make([]byte, 1<<20+100<<10)
	for i := range 4 {
		c, _, err := d.DialWebSocket(ctx(t), url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx(t), websocket.MessageBinary, big); err != nil {
			t.Fatalf("WebSocket %d: %v", i, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the echoes fill the windows
	c, _, err := d.DialWebSocket(ctx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	wctx, cancel := context.WithTimeout(ctx(t), 5*time.Second)
	defer cancel()
	if err := c.Write(wctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(wctx); err != nil || string(msg) != "still here" {
		t.Fatalf("fifth WebSocket: %q, %v: the connection's window is held by unread streams", msg, err)
	}
	if n := e.v4.Accepted(); n != 1 {
		t.Errorf("%d TCP connections, want the five WebSockets on one", n)
	}
}

// dataPathDialer returns a Dialer whose WebSockets to e go over proto:
// "h2" and "h3", or "h2-xnet", HTTP/2 on the x/net connection a Transport
// GET opened first (connectRoundTrip), rather than the package's own
// client that a WebSocket race starts.
func dataPathDialer(t *testing.T, e *env, proto string) *dialer.Dialer {
	if proto != "h2-xnet" {
		d := e.dialer(dialer.WithProtocols(proto))
		t.Cleanup(d.CloseIdleConnections)
		return d
	}
	d := e.dialer(dialer.WithProtocols("h2"))
	t.Cleanup(d.CloseIdleConnections)
	resp, _ := get(t, &http.Client{Transport: d.Transport()}, "https://127.0.0.1:"+itoa(e.port)+"/proto")
	if resp.ProtoMajor != 2 {
		t.Fatalf("GET over HTTP/%d, want 2", resp.ProtoMajor)
	}
	return d
}

// checkXnet checks that "h2-xnet" WebSockets rode on the Transport's
// connection: one TCP connection in all.
func checkXnet(t *testing.T, e *env, proto string) {
	if n := e.v4.Accepted(); proto == "h2-xnet" && n != 1 {
		t.Errorf("%d TCP connections, want the Transport's one", n)
	}
}

// closeTokens numbers TestServerCloseHandshake's dials.
var closeTokens atomic.Int64

// TestServerCloseHandshake: a server that closes a WebSocket over HTTP/2
// and HTTP/3 gets the client's close frame back (RFC 6455 §5.5.1):
// coder/websocket answers and closes the stream at once, and the close
// frame, written behind, must still go out before the stream ends instead
// of being reset away.
func TestServerCloseHandshake(t *testing.T) {
	for _, proto := range []string{"h2", "h2-xnet", "h3"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, true, serve, closed)
			e.quic(h3, noUDP)
			d := dataPathDialer(t, e, proto)
			for i := range 20 {
				// Unique in the process: -count runs the test again.
				token := fmt.Sprintf("%s-%d-%d", proto, i, closeTokens.Add(1))
				c, _, err := d.DialWebSocket(ctx(t), "wss://127.0.0.1:"+itoa(e.port)+"/server-close",
					dialer.WithHeader(http.Header{"X-Token": {token}}))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := c.Read(ctx(t)); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					t.Fatalf("read: %v, want the server's close", err)
				}
				c.CloseNow()
				deadline := time.Now().Add(10 * time.Second)
				for {
					if v, ok := serverCloses.LoadAndDelete(token); ok {
						if v != nil {
							t.Fatalf("dial %d: the server's close handshake failed: %v", i, v)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("dial %d: the server's Close never returned", i)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			checkXnet(t, e, proto)
		})
	}
}
