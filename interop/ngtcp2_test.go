package interop

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// startNgtcp2 starts the ngtcp2 example server (Debian's gtlsserver, on
// GnuTLS) for r's test: HTTP/3 on UDP 127.0.0.1, serving the world's
// documents; args are options to add. It has no TCP side and no extended
// CONNECT.
func startNgtcp2(t testing.TB, w *world, r *row, args ...string) (host string, port int) {
	t.Helper()
	host = w.name("ngtcp2")
	_, _, ports := launch(t, w, "ngtcp2", 1, true, func(dir string, ports []int) command {
		// -q: no per-packet dump.
		args = append(args, "-q", "-d", filepath.Join(w.dir, "htdocs"), "127.0.0.1", itoa(ports[0]), w.keyFile, w.certFile)
		return command{bin: r.path, args: args}
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

// TestNgtcp2TransportLarge fetches 16 MiB over HTTP/3 from the ngtcp2
// example server, whose flow-control windows start at 256 KiB per stream
// and 1 MiB per connection: many MAX_STREAM_DATA and MAX_DATA updates
// from the client's QUIC stack.
func TestNgtcp2TransportLarge(t *testing.T) {
	r := need(t, ngtcp2, "Transport GET of 16 MiB")
	w := newWorld(t)
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	w.write(filepath.Join(w.dir, "htdocs", "big.bin"), big)
	host, port := startNgtcp2(t, w, r)
	client := &http.Client{Transport: w.transport(dialer.WithProtocols("h3"))}
	resp, body := fetch(t, client, "https://"+host+":"+itoa(port)+"/big.bin")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || !bytes.Equal(body, big) {
		t.Errorf("GET: %s over HTTP/%d, %d of %d bytes (equal: %v)", resp.Status, resp.ProtoMajor, len(body), len(big), bytes.Equal(body, big))
	}
	r.proto = proto(resp.ProtoMajor)
}

// TestNgtcp2KeepAlive leaves a pooled QUIC connection to the ngtcp2
// example server unused for longer than the server's idle timeout
// (--timeout=5s): the client's keep-alive PINGs (every half of the idle
// timeout) must keep it open, so the second request goes on it, at once.
func TestNgtcp2KeepAlive(t *testing.T) {
	r := need(t, ngtcp2, "Transport, pooled h3 connection idle past the server's 5 s idle timeout")
	w := newWorld(t)
	host, port := startNgtcp2(t, w, r, "--timeout=5s")
	races, took := idleGETs(t, w, "https://"+host+":"+itoa(port)+"/index.html", 6*time.Second)
	if races != 1 || took > time.Second {
		t.Errorf("the second request took %v and %d races in all, want the first connection kept alive", took, races)
	}
	r.proto = "h3, h3 on the same connection"
}

// TestNgtcp2SilentlyClosed lets the ngtcp2 example server drop a pooled
// QUIC connection silently (--timeout=1s: it keeps no state and sends no
// stateless reset) between two requests: the second must not fail but go
// over a new connection. quic-go takes a peer's idle timeout below 5 s
// for 5 s, so the client notices only then; the matrix says how long the
// second request took.
func TestNgtcp2SilentlyClosed(t *testing.T) {
	r := need(t, ngtcp2, "Transport, h3 connection dropped silently by the server (1 s idle)")
	w := newWorld(t)
	host, port := startNgtcp2(t, w, r, "--timeout=1s")
	races, took := idleGETs(t, w, "https://"+host+":"+itoa(port)+"/index.html", 2*time.Second)
	if races != 2 {
		t.Errorf("%d races, want 2: the second request on a new connection", races)
	}
	r.proto = fmt.Sprintf("h3, then h3 on a new connection after %.1f s", took.Seconds())
}

// idleGETs GETs u twice through a new Transport (h3 only), idle for pause
// in between, checks both answers, and returns how many races the
// Transport ran and how long the second request took.
func idleGETs(t *testing.T, w *world, u string, pause time.Duration) (races int, second time.Duration) {
	t.Helper()
	var mu sync.Mutex
	client := &http.Client{Transport: w.transport(dialer.WithProtocols("h3"),
		dialer.WithReport(func(*dialer.Report) { mu.Lock(); races++; mu.Unlock() }))}
	for i := range 2 {
		if i == 1 {
			time.Sleep(pause)
		}
		start := time.Now()
		resp, body := fetch(t, client, u)
		second = time.Since(start)
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || !bytes.Equal(body, w.docs["/index.html"]) {
			t.Errorf("GET %d: %s over HTTP/%d, %q", i+1, resp.Status, resp.ProtoMajor, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return races, second
}
