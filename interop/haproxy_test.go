package interop

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// haproxyServer is a running HAProxy (conf/haproxy.cfg); it logs one line
// per request to its stderr: client address, client port, HTTP version,
// method and URL, status.
type haproxyServer struct {
	*proc
	host string
	port int
}

// startHAProxy starts HAProxy for r's test: an h2 + http/1.1 TLS frontend
// on 127.0.0.1 in front of the world's echo backend. With bogus set, the
// global h2-workaround-bogus-websocket-clients makes it leave
// SETTINGS_ENABLE_CONNECT_PROTOCOL out: h2 without RFC 8441.
func startHAProxy(t testing.TB, w *world, r *row, bogus bool) *haproxyServer {
	t.Helper()
	host := w.name("haproxy")
	global := ""
	if bogus {
		global = "h2-workaround-bogus-websocket-clients"
	}
	p, _, ports := launch(t, w, "haproxy", 1, false, func(dir string, ports []int) command {
		conf := filepath.Join(dir, "haproxy.cfg")
		w.render("haproxy.cfg", conf, map[string]string{"DIR": dir, "PORT": itoa(ports[0]), "GLOBAL": global})
		// HAProxy takes the certificate and its key from one file.
		cert, err := os.ReadFile(w.certFile)
		if err != nil {
			t.Fatal(err)
		}
		key, err := os.ReadFile(w.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		w.write(filepath.Join(dir, "haproxy.pem"), append(cert, key...))
		// -db: stay in the foreground, no daemon.
		return command{bin: r.path, args: []string{"-db", "-f", conf}}
	})
	return &haproxyServer{proc: p, host: host, port: ports[0]}
}

func (h *haproxyServer) url(path string) string {
	return "wss://" + h.host + ":" + itoa(h.port) + path
}

// TestHAProxyWebSocketH2 dials two WebSockets by name against HAProxy's
// h2 frontend, which offers RFC 8441 by default and turns the extended
// CONNECT into an HTTP/1.1 upgrade to the backend: both over HTTP/2, the
// second on the first's connection, as HAProxy's log confirms.
func TestHAProxyWebSocketH2(t *testing.T) {
	r := need(t, haproxy, "WebSocket, 2 on one connection")
	w := newWorld(t)
	h := startHAProxy(t, w, r, false)
	d := w.dialer()
	c1, _, rep := dialWS(t, d, h.url("/echo"), 2)
	if win := winner(t, rep); win.Settings == nil || !win.Settings.ExtendedConnect {
		t.Errorf("winner's SETTINGS %+v, want extended CONNECT; race:\n%s", win.Settings, rep)
	}
	c2, _, rep2 := dialWS(t, d, h.url("/echo"), 2)
	if rep2.Reason != "reused a live h2 connection" {
		t.Errorf("second dial: %q, want the live h2 connection reused; race:\n%s", rep2.Reason, rep2)
	}
	r.proto = "h2"
	echo(t, c1, "one")
	echo(t, c2, "two")
	closeWS(t, c1)
	closeWS(t, c2)
	lines := logLinesFunc(t, h.out.String, regexp.MustCompile(`/echo`), 2)
	ports := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "HTTP/2.0" {
			t.Errorf("HAProxy logged %q, want an HTTP/2.0 request", l)
			continue
		}
		ports[f[1]] = true
	}
	if len(ports) != 1 {
		t.Errorf("the WebSockets came from %d client ports, want one connection:\n%s", len(ports), strings.Join(lines, "\n"))
	}
}

// TestHAProxyNoRFC8441WebSocketH1 dials a WebSocket against HAProxy with
// h2-workaround-bogus-websocket-clients: a real h2 server whose SETTINGS
// lack extended CONNECT. The race must close that h2 connection and
// upgrade on a fresh http/1.1 one, as HAProxy's log confirms.
func TestHAProxyNoRFC8441WebSocketH1(t *testing.T) {
	r := need(t, haproxy, "WebSocket, h2-workaround-bogus-websocket-clients (no RFC 8441)")
	w := newWorld(t)
	h := startHAProxy(t, w, r, true)
	c, _, rep := dialWS(t, w.dialer(), h.url("/echo"), 1)
	r.proto = "h2 incapable, h1"
	checkLadder(t, rep, "h2")
	closeWS(t, c)
	lines := logLinesFunc(t, h.out.String, regexp.MustCompile(`/echo`), 1)
	if f := strings.Fields(lines[0]); len(f) < 5 || f[2] != "HTTP/1.1" || f[len(f)-1] != "101" {
		t.Errorf("HAProxy logged %q, want an HTTP/1.1 request answered 101", lines[0])
	}
}

// TestHAProxyTransport sends requests through the Transport over HTTP/2
// to HAProxy, which passes them to the echo backend: a GET of /echo that
// is not a WebSocket upgrade gets the backend's 426, the same for curl,
// and POSTs to /post come back whole.
func TestHAProxyTransport(t *testing.T) {
	r := need(t, haproxy, "Transport GET (backend's 426), POST")
	w := newWorld(t)
	h := startHAProxy(t, w, r, false)
	client := &http.Client{Transport: w.transport()}
	origin := "https://" + h.host + ":" + itoa(h.port)
	resp, body := fetch(t, client, origin+"/echo")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.ProtoMajor != 2 {
		t.Errorf("GET /echo: %s over HTTP/%d, want 426 from the backend over HTTP/2", resp.Status, resp.ProtoMajor)
	}
	compareCurl(t, w, r, origin+"/echo", resp, body)
	checkPOST(t, client, origin+"/post", 2, true)
	r.proto = "h2"
}
