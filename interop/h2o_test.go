package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// startH2O starts h2o for r's test (conf/h2o.conf): TLS with h2 and
// http/1.1 on 127.0.0.1, /echo proxied to the world's echo backend with
// WebSocket upgrades passed on, static files from the world's documents.
// It returns the server's name, port and access log.
func startH2O(t testing.TB, w *world, r *row) (host string, port int, access string) {
	t.Helper()
	host = w.name("h2o")
	user := ""
	if os.Geteuid() == 0 {
		user = "user: nobody" // h2o will not serve as root
	}
	_, dir, ports := launch(t, w, "h2o", 1, false, func(dir string, ports []int) command {
		conf := filepath.Join(dir, "h2o.conf")
		w.render("h2o.conf", conf, map[string]string{
			"DIR": dir, "PORT": itoa(ports[0]), "USER": user, "DOCS": filepath.Join(w.dir, "htdocs"),
		})
		return command{bin: r.path, args: []string{"-c", conf},
			logs: []string{filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")}}
	})
	return host, ports[0], filepath.Join(dir, "access.log")
}

// TestH2OWebSocket dials a WebSocket by name against h2o, whose h2 has no
// RFC 8441: the race must close the h2 connection for its SETTINGS and
// upgrade on a fresh http/1.1 one, as h2o's log confirms.
func TestH2OWebSocket(t *testing.T) {
	r := need(t, h2o, "WebSocket (no RFC 8441)")
	w := newWorld(t)
	host, port, access := startH2O(t, w, r)
	c, _, rep := dialWS(t, w.dialer(), "wss://"+host+":"+itoa(port)+"/echo", 1)
	r.proto = "h2 incapable, h1"
	checkLadder(t, rep, "h2")
	closeWS(t, c)
	checkH1Upgrade(t, "h2o", logLines(t, access, regexp.MustCompile(`/echo`), 1)[0])
}

// TestH2OTransport fetches static documents from h2o through the
// Transport over HTTP/2 and checks them against the files and curl.
func TestH2OTransport(t *testing.T) {
	r := need(t, h2o, "Transport GET, POST")
	w := newWorld(t)
	host, port, _ := startH2O(t, w, r)
	r.proto = checkTransport(t, w, r, "https://"+host+":"+itoa(port), 2, true)
}
