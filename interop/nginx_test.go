package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// startNginx starts nginx for r's test (conf/nginx.conf): TLS with h2 and
// http/1.1 on 127.0.0.1, /echo proxied to the world's echo backend with
// the Upgrade passed on, static files from the world's documents; extra
// are directives added to its server block. It returns the server's name,
// port and access log.
func startNginx(t testing.TB, w *world, r *row, extra ...string) (host string, port int, access string) {
	t.Helper()
	host = w.name("nginx")
	_, dir, ports := launch(t, w, "nginx", 1, false, func(dir string, ports []int) command {
		conf := filepath.Join(dir, "nginx.conf")
		w.render("nginx.conf", conf, map[string]string{
			"DIR": dir, "PORT": itoa(ports[0]), "NAME": host, "DOCS": filepath.Join(w.dir, "htdocs"),
			"EXTRA": strings.Join(extra, "\n\t\t"),
		})
		if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		// -p: prefix for relative paths; -e: the error log before the
		// configuration names one (the compiled-in one is /var/log).
		return command{bin: r.path, args: []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")},
			logs: []string{filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")}}
	})
	return host, ports[0], filepath.Join(dir, "access.log")
}

// TestNginxWebSocket dials a WebSocket by name against nginx, whose h2
// has no RFC 8441: the race must close the h2 connection for its SETTINGS
// and upgrade on a fresh http/1.1 one, as nginx's log confirms.
func TestNginxWebSocket(t *testing.T) {
	r := need(t, nginx, "WebSocket (no RFC 8441)")
	w := newWorld(t)
	host, port, access := startNginx(t, w, r)
	c, _, rep := dialWS(t, w.dialer(), "wss://"+host+":"+itoa(port)+"/echo", 1)
	r.proto = "h2 incapable, h1"
	checkLadder(t, rep, "h2")
	closeWS(t, c)
	checkH1Upgrade(t, "nginx", logLines(t, access, regexp.MustCompile(`/echo`), 1)[0])
}

// TestNginxTransport fetches static documents from nginx through the
// Transport over HTTP/2 and checks them against the files and curl.
func TestNginxTransport(t *testing.T) {
	r := need(t, nginx, "Transport GET, POST")
	w := newWorld(t)
	host, port, _ := startNginx(t, w, r)
	r.proto = checkTransport(t, w, r, "https://"+host+":"+itoa(port), 2, true)
}
