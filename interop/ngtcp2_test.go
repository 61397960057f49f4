package interop

import (
	"path/filepath"
	"testing"
)

// startNgtcp2 starts the ngtcp2 example server (Debian's gtlsserver, on
// GnuTLS) for r's test: HTTP/3 on UDP 127.0.0.1, serving the world's
// documents. It has no TCP side and no extended CONNECT.
func startNgtcp2(t testing.TB, w *world, r *row) (host string, port int) {
	t.Helper()
	host = w.name("ngtcp2")
	_, _, ports := launch(t, w, "ngtcp2", 1, true, func(dir string, ports []int) command {
		// -q: no per-packet dump.
		return command{bin: r.path, args: []string{"-q", "-d", filepath.Join(w.dir, "htdocs"),
			"127.0.0.1", itoa(ports[0]), w.keyFile, w.certFile}}
	})
	return host, ports[0]
}

// TestNgtcp2Transport fetches static documents from the ngtcp2 example
// server through the Transport by a name whose HTTPS record says alpn=h3:
// the race goes to QUIC first, and every response comes over HTTP/3.
func TestNgtcp2Transport(t *testing.T) {
	r := need(t, ngtcp2, "Transport GET, HTTPS record alpn=h3")
	w := newWorld(t)
	host, port := startNgtcp2(t, w, r)
	w.dns.HTTPS(host, "1 . alpn=h3")
	r.proto = checkTransport(t, w, r, "https://"+host+":"+itoa(port), 3, false)
}
