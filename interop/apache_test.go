package interop

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// apacheServer is a running Apache httpd (conf/apache2.conf).
type apacheServer struct {
	*proc
	host   string // its name in the test's DNS
	port   int
	access string // access log: client address, client port, protocol, request, status
}

// startApache starts Apache httpd for r's test: TLS on 127.0.0.1 with h2
// and http/1.1, RFC 8441 WebSocket (H2WebSockets) and HTTP/1.1 WebSocket
// proxied to the world's echo backend by mod_proxy_wstunnel; extra are
// configuration lines added at the end. It adds mod_http2's version, from
// the error log, to r.
func startApache(t testing.TB, w *world, r *row, extra ...string) *apacheServer {
	t.Helper()
	host := w.name("apache")
	p, dir, ports := launch(t, w, "apache", 1, false, func(dir string, ports []int) command {
		conf := filepath.Join(dir, "httpd.conf")
		w.render("apache2.conf", conf, map[string]string{
			"DIR": dir, "PORT": itoa(ports[0]), "NAME": host, "DOCS": filepath.Join(w.dir, "htdocs"),
			"EXTRA": strings.Join(extra, "\n"),
		})
		args := []string{"-f", conf, "-d", dir, "-DFOREGROUND"}
		if os.Geteuid() == 0 {
			args = append(args, "-DROOT") // children run as nobody
		}
		return command{bin: r.path, args: args,
			logs: []string{filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")}}
	})
	// Apache listens before its modules are initialized; this line comes
	// after mod_http2's, which has its version.
	errorLog := filepath.Join(dir, "error.log")
	logLines(t, errorLog, regexp.MustCompile(`resuming normal operations`), 1)
	if m := logLines(t, errorLog, regexp.MustCompile(`mod_http2 \(v[0-9.]+`), 1); !strings.Contains(r.version, "mod_http2") {
		r.version += ", mod_http2 " + regexp.MustCompile(`mod_http2 \(v([0-9.]+)`).FindStringSubmatch(m[0])[1]
	}
	return &apacheServer{proc: p, host: host, port: ports[0], access: filepath.Join(dir, "access.log")}
}

func (a *apacheServer) url(path string) string {
	return "wss://" + a.host + ":" + itoa(a.port) + path
}

// TestApacheWebSocketH2 dials a WebSocket by name against Apache: the
// race must pick HTTP/2 (Apache's SETTINGS enable extended CONNECT), and
// the extended CONNECT, with :scheme https, must reach the echo backend.
// Apache logs it as an HTTP/2.0 request.
func TestApacheWebSocketH2(t *testing.T) {
	r := need(t, apache, "WebSocket")
	w := newWorld(t)
	a := startApache(t, w, r)
	c, _, rep := dialWS(t, w.dialer(dialer.WithReadLimit(1<<20)), a.url("/echo"), 2)
	r.proto = "h2"
	if win := winner(t, rep); win.Settings == nil || !win.Settings.ExtendedConnect {
		t.Errorf("winner's SETTINGS %+v, want extended CONNECT; race:\n%s", win.Settings, rep)
	}
	echo(t, c, strings.Repeat("large message ", 10_000)) // 140 kB: several DATA frames and window updates
	closeWS(t, c)
	lines := logLines(t, a.access, regexp.MustCompile(`/echo`), 1)
	// mod_http2 hands the stream to the proxy as an HTTP/1.1-style
	// upgrade, so the log shows its 101; the client saw 200.
	if !strings.Contains(lines[0], `"GET /echo HTTP/2.0" 101`) {
		t.Errorf("Apache logged %q, want an HTTP/2.0 WebSocket request", lines[0])
	}
}

// TestApacheWebSocketsShareConnection dials three WebSockets at once
// through one Dialer: one race, whose HTTP/2 connection carries all three
// as streams. The reports say two dials reused the live connection, and
// Apache's access log shows three HTTP/2 requests from one client port.
func TestApacheWebSocketsShareConnection(t *testing.T) {
	const n = 3
	r := need(t, apache, "3 WebSockets on one connection")
	w := newWorld(t)
	a := startApache(t, w, r)
	d := w.dialer()
	conns := make([]*websocket.Conn, n)
	reps := make([]*dialer.Report, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], _, reps[i], errs[i] = tryWS(t, d, a.url("/echo"), 2) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r.proto = "h2"
	reused := 0
	for _, rep := range reps {
		if rep.Reason == "reused a live h2 connection" {
			reused++
		}
	}
	if reused != n-1 {
		for _, rep := range reps {
			t.Logf("race:\n%s", rep)
		}
		t.Errorf("%d dials reused the live h2 connection, want %d", reused, n-1)
	}
	// Interleaved traffic on the three streams.
	for round := range 3 {
		for i, c := range conns {
			echo(t, c, "stream "+itoa(i)+" round "+itoa(round))
		}
	}
	for _, c := range conns {
		closeWS(t, c)
	}
	lines := logLines(t, a.access, regexp.MustCompile(`/echo`), n)
	ports := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "HTTP/2.0" {
			t.Errorf("Apache logged %q, want an HTTP/2.0 request", l)
			continue
		}
		ports[f[1]] = true
	}
	if len(ports) != 1 {
		t.Errorf("the %d WebSockets came from %d client ports, want one connection:\n%s", n, len(ports), strings.Join(lines, "\n"))
	}
}

// TestApacheWebSocketH1 dials a WebSocket over HTTP/1.1 only: the Upgrade
// path of mod_proxy_wstunnel, the baseline that every server has.
func TestApacheWebSocketH1(t *testing.T) {
	r := need(t, apache, "WebSocket, http/1.1 only")
	w := newWorld(t)
	a := startApache(t, w, r)
	c, _, _ := dialWS(t, w.dialer(dialer.WithProtocols("h1")), a.url("/echo"), 1)
	r.proto = "h1"
	closeWS(t, c)
	lines := logLines(t, a.access, regexp.MustCompile(`/echo`), 1)
	if !strings.Contains(lines[0], "HTTP/1.1") || !strings.HasSuffix(lines[0], " 101") {
		t.Errorf("Apache logged %q, want an HTTP/1.1 request answered 101", lines[0])
	}
}

// TestApacheTransport fetches static documents through the Transport over
// HTTP/2 and checks them against the files and against curl.
func TestApacheTransport(t *testing.T) {
	r := need(t, apache, "Transport GET, POST")
	w := newWorld(t)
	a := startApache(t, w, r)
	r.proto = checkTransport(t, w, r, "https://"+a.host+":"+itoa(a.port), 2, true)
}

// TestApacheWebSocketHeaders dials over HTTP/2 through Apache with a
// subprotocol, an extra header and permessage-deflate offered: the
// backend's choices come back through mod_http2 and mod_proxy_wstunnel
// (Sec-WebSocket-Protocol, X-Test, Sec-WebSocket-Extensions), and a large
// compressible message echoes.
func TestApacheWebSocketHeaders(t *testing.T) {
	r := need(t, apache, "WebSocket: subprotocol, headers, permessage-deflate")
	w := newWorld(t)
	a := startApache(t, w, r)
	d := w.dialer(dialer.WithReadLimit(1 << 20))
	c, resp, _ := dialWS(t, d, a.url("/echo"), 2,
		dialer.WithSubprotocols("nope", "chat"),
		dialer.WithHeader(http.Header{"X-Test": {"through apache"}}),
		dialer.WithCompression(websocket.CompressionContextTakeover))
	r.proto = "h2"
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q, want chat (the backend's choice)", c.Subprotocol())
	}
	if got := resp.Header.Get("X-Test"); got != "through apache" {
		t.Errorf("X-Test came back as %q", got)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Errorf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
	}
	echo(t, c, strings.Repeat("compressible ", 50_000))
	closeWS(t, c)
}

// TestApacheWebSocketRejected dials over HTTP/2 where the backend refuses
// the WebSocket (X-Reject: 1 makes it answer 403): the dial fails with
// ErrRejected and returns Apache's response, over HTTP/2, without stepping
// down to HTTP/1.1.
func TestApacheWebSocketRejected(t *testing.T) {
	r := need(t, apache, "WebSocket refused by the backend (403)")
	w := newWorld(t)
	a := startApache(t, w, r)
	_, resp, err := w.dialer().DialWebSocket(ctx(t), a.url("/echo"), dialer.WithHeader(http.Header{"X-Reject": {"1"}}))
	if !errors.Is(err, dialer.ErrRejected) {
		t.Fatalf("dial: %v, want ErrRejected", err)
	}
	if resp == nil {
		t.Fatal("no response with ErrRejected")
	}
	r.proto = proto(resp.ProtoMajor) + " " + itoa(resp.StatusCode)
	if resp.StatusCode != http.StatusForbidden || resp.ProtoMajor != 2 {
		t.Errorf("response %s over HTTP/%d, want 403 over HTTP/2", resp.Status, resp.ProtoMajor)
	}
	lines := logLines(t, a.access, regexp.MustCompile(`/echo`), 1)
	if len(lines) != 1 || !strings.Contains(lines[0], "HTTP/2.0") {
		t.Errorf("Apache logged %q, want one HTTP/2.0 request (no retry over HTTP/1.1)", lines)
	}
}
