package interop

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestApacheIdleConnectionClosed lets Apache close an idle HTTP/2
// connection (KeepAliveTimeout 1: GOAWAY, then FIN) that the Dialer and
// the Transport keep in their pool, then dials and requests again: each
// must notice and go over a new connection instead of failing on the dead
// one.
func TestApacheIdleConnectionClosed(t *testing.T) {
	r := need(t, apache, "pooled h2 connection closed by Apache when idle")
	w := newWorld(t)
	a := startApache(t, w, r, "KeepAliveTimeout 1")
	d := w.dialer()
	c, _, _ := dialWS(t, d, a.url("/echo"), 2)
	closeWS(t, c)
	client := &http.Client{Transport: w.transport()}
	origin := "https://" + a.host + ":" + itoa(a.port)
	if resp, _ := fetch(t, client, origin+"/index.html"); resp.ProtoMajor != 2 {
		t.Fatalf("GET over HTTP/%d, want HTTP/2", resp.ProtoMajor)
	}
	time.Sleep(2500 * time.Millisecond) // Apache closes both connections
	c, _, rep := dialWS(t, d, a.url("/echo"), 2)
	closeWS(t, c)
	r.proto = "h2, then h2 on a new connection"
	if rep.Reason == "reused a live h2 connection" {
		t.Errorf("the second WebSocket went on the connection Apache had closed: %s", rep.Reason)
	}
	resp, body := fetch(t, client, origin+"/index.html")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || string(body) != string(w.docs["/index.html"]) {
		t.Errorf("GET after Apache closed the connection: %s over HTTP/%d, %d bytes", resp.Status, resp.ProtoMajor, len(body))
	}
	lines := logLines(t, a.access, regexp.MustCompile(`/echo|/index.html`), 4)
	if ports := clientPorts(lines); len(ports) != 4 {
		t.Errorf("4 requests came on %d connections, want 4 (two before Apache closed them, two after):\n%s", len(ports), strings.Join(lines, "\n"))
	}
}

// TestApacheMaxStreams dials 20 WebSockets at once through one Dialer to
// an Apache that allows 2 concurrent streams per HTTP/2 connection
// (H2MaxSessionStreams 2): all must succeed, the ones that do not fit
// going over further connections, none over more streams than Apache
// allows. Apache gets threads enough for 20 proxied WebSockets at once.
func TestApacheMaxStreams(t *testing.T) {
	const n = 20
	r := need(t, apache, "20 WebSockets at once, H2MaxSessionStreams 2")
	w := newWorld(t)
	a := startApache(t, w, r, "H2MaxSessionStreams 2", "H2MaxWorkers 64", "ThreadsPerChild 64", "MaxRequestWorkers 64")
	d := w.dialer()
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], _, _, errs[i] = tryWS(t, d, a.url("/echo"), 2) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r.proto = "h2"
	for i, c := range conns {
		echo(t, c, "stream "+itoa(i))
	}
	for _, c := range conns {
		closeWS(t, c)
	}
	lines := logLines(t, a.access, regexp.MustCompile(`/echo`), n)
	perConn := map[string]int{}
	for _, l := range lines {
		perConn[strings.Fields(l)[1]]++
	}
	for port, k := range perConn {
		if k > 2 {
			t.Errorf("%d WebSockets on the connection from port %s, Apache allows 2:\n%s", k, port, strings.Join(lines, "\n"))
		}
	}
	r.proto = "h2 on " + itoa(len(perConn)) + " connections"
}

// clientPorts returns the client ports of access log lines in the interop
// format (address, port, ...): one per connection.
func clientPorts(lines []string) map[string]bool {
	ports := map[string]bool{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 {
			ports[f[1]] = true
		}
	}
	return ports
}

// TestApacheGracefulRestartWebSocket gives Apache a graceful restart
// (SIGUSR1) while a WebSocket lives on a pooled HTTP/2 connection: Apache
// sends GOAWAY and keeps serving that stream (the old child finishes its
// connections), so the WebSocket must go on working, also after a second
// WebSocket is dialed to the same origin, which must go on a new
// connection.
//
// It found a library bug, now fixed:
// the second dial's pool.get finds the first connection not
// alive (GOAWAY) and drops it, and dropLocked closes it with the WebSocket
// still on it: the first WebSocket fails with "io: read/write on closed
// pipe". Without the second dial it keeps working.
func TestApacheGracefulRestartWebSocket(t *testing.T) {
	r := need(t, apache, "WebSocket across a graceful restart (GOAWAY), then a second dial")
	w := newWorld(t)
	// The old generation's child keeps serving the WebSocket while the
	// new generation's takes new connections: two children at once.
	a := startApache(t, w, r, "ServerLimit 2", "MaxRequestWorkers 32")
	d := w.dialer()
	c1, _, _ := dialWS(t, d, a.url("/echo"), 2)
	if err := syscall.Kill(a.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	logLines(t, a.logs[0], regexp.MustCompile(`SIGUSR1 received`), 1)
	time.Sleep(500 * time.Millisecond) // the GOAWAY arrives
	echo(t, c1, "after the graceful restart")
	c2, _, rep := dialWS(t, d, a.url("/echo"), 2)
	if rep.Reason == "reused a live h2 connection" {
		t.Errorf("the second WebSocket went on the connection Apache sent GOAWAY on")
	}
	echo(t, c1, "after a second dial")
	echo(t, c2, "second")
	closeWS(t, c1)
	closeWS(t, c2)
	r.proto = "h2, then h2 on a new connection"
}
