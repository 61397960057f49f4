package interop

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eyeballs/dialer"
)

// startNode starts testdata/wsh2.mjs on node for r's test: node's own
// HTTP/2 (nghttp2) with RFC 8441 and a minimal WebSocket echo at /echo.
// It logs each connection and each extended CONNECT's pseudo-headers on
// its stderr.
func startNode(t testing.TB, w *world, r *row) (p *proc, host string, port int) {
	t.Helper()
	host = w.name("node")
	script, err := filepath.Abs(filepath.Join("testdata", "wsh2.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	p, _, ports := launch(t, w, "node", 1, false, func(dir string, ports []int) command {
		return command{bin: r.path, args: []string{script},
			env: []string{"PORT=" + itoa(ports[0]), "CERT=" + w.certFile, "KEY=" + w.keyFile}}
	})
	return p, host, ports[0]
}

// TestNodeWebSocketH2 dials two WebSockets by name against node's http2
// with RFC 8441: both over HTTP/2 on one connection, and node saw
// extended CONNECTs with :scheme https (RFC 8441 §5) for /echo.
func TestNodeWebSocketH2(t *testing.T) {
	r := need(t, node, "WebSocket, 2 on one connection")
	w := newWorld(t)
	p, host, port := startNode(t, w, r)
	d := w.dialer(dialer.WithSubprotocols("echo"), dialer.WithReadLimit(1<<20))
	url := "wss://" + host + ":" + itoa(port) + "/echo"
	c1, resp, _ := dialWS(t, d, url, 2)
	if c1.Subprotocol() != "echo" || resp.Header.Get("Sec-WebSocket-Protocol") != "echo" {
		t.Errorf("subprotocol %q, response header %q: want echo", c1.Subprotocol(), resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	c2, _, rep2 := dialWS(t, d, url, 2)
	if rep2.Reason != "reused a live h2 connection" {
		t.Errorf("second dial: %q, want the live h2 connection reused; race:\n%s", rep2.Reason, rep2)
	}
	r.proto = "h2"
	echo(t, c1, strings.Repeat("x", 70_000)) // a 64-bit frame length
	echo(t, c2, "two")
	closeWS(t, c1)
	closeWS(t, c2)
	connects := logLinesFunc(t, p.out.String, regexp.MustCompile(`^connect `), 2)
	want := "connect :scheme=https :path=/echo :authority=" + host + ":" + itoa(port) + " version=13"
	for _, l := range connects {
		if l != want {
			t.Errorf("node saw %q, want %q", l, want)
		}
	}
	if s := logLinesFunc(t, p.out.String, regexp.MustCompile(`^session `), 1); len(s) != 1 {
		t.Errorf("node saw %d HTTP/2 connections, want 1:\n%s", len(s), strings.Join(s, "\n"))
	}
}
