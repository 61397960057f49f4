package interop

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// domain is the zone of the names the tests dial; only the test's DNS
// server knows it.
const domain = "interop.test"

// blobSize is the size of the larger static document, enough for several
// HTTP/2 and HTTP/3 flow-control updates.
const blobSize = 300_000

// world is one test's surroundings: a CA, a DNS server, a directory for
// the certificate, configurations, logs and static documents, and the
// WebSocket echo backend that the proxies forward to.
type world struct {
	t   testing.TB
	ca  *testkit.CA
	dns *dnstest.Server
	// dir holds cert.pem and key.pem (a leaf for *.interop.test,
	// localhost, 127.0.0.1 and ::1), htdocs/ and each server's own
	// directory.
	dir               string
	certFile, keyFile string
	// backend is the port of the echo backend on 127.0.0.1, plain
	// HTTP/1.1: testkit's WebSocket EchoHandler at /echo, and at /post
	// an echo of the request body (see postEcho).
	backend int
	// docs are the files under htdocs, by URL path.
	docs map[string][]byte
}

// newWorld builds a world whose servers and sockets end with the test.
func newWorld(t testing.TB) *world {
	t.Helper()
	checkFDs(t)
	w := &world{t: t, dns: dnstest.Start(t), dir: t.TempDir()}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	w.ca = ca
	// Servers that drop privileges (Apache, nginx and h2o workers started
	// by root) read the documents as nobody.
	for _, d := range []string{filepath.Dir(w.dir), w.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.writeCert()
	w.writeDocs()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", testkit.EchoHandler())
	mux.HandleFunc("/post", postEcho)
	backend, err := testkit.StartHTTP(l, nil, mux)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	w.backend = l.Addr().(*net.TCPAddr).Port
	return w
}

// postEcho answers a POST with its body, as application/octet-stream, and
// the request's method and X-Test header in X-Method and X-Test.
func postEcho(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Test", r.Header.Get("X-Test"))
	w.Header().Set("Content-Type", "application/octet-stream")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Write(body)
}

func (w *world) writeCert() {
	t := w.t
	cert, err := w.ca.Certificate("*."+domain, "localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	w.certFile, w.keyFile = filepath.Join(w.dir, "cert.pem"), filepath.Join(w.dir, "key.pem")
	w.write(w.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	w.write(w.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
}

func (w *world) writeDocs() {
	blob := make([]byte, blobSize)
	r := rand.NewChaCha8([32]byte{'i', 'n', 't', 'e', 'r', 'o', 'p'})
	_, _ = r.Read(blob)
	w.docs = map[string][]byte{
		"/index.html": []byte("<!doctype html><title>interop</title>served by an independent server\n"),
		"/blob.bin":   blob,
	}
	if err := os.Mkdir(filepath.Join(w.dir, "htdocs"), 0o755); err != nil {
		w.t.Fatal(err)
	}
	for p, b := range w.docs {
		w.write(filepath.Join(w.dir, "htdocs", p), b)
	}
}

// write writes a file readable by every user: see newWorld.
func (w *world) write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// name returns label.interop.test, which the test's DNS server resolves to
// 127.0.0.1.
func (w *world) name(label string) string {
	n := label + "." + domain
	w.dns.A(n, "127.0.0.1")
	return n
}

// serverDir makes a directory of its own for one server run.
func (w *world) serverDir(name string) string {
	d, err := os.MkdirTemp(w.dir, name+"-")
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		w.t.Fatal(err)
	}
	return d
}

// placeholder matches what render replaces.
var placeholder = regexp.MustCompile(`@[A-Z0-9]+@`)

// render writes conf/src to dst with every @KEY@ replaced by vars[KEY];
// DIR, CERT, KEY and BACKEND default to the world's. A placeholder left
// without a value fails the test.
func (w *world) render(src, dst string, vars map[string]string) {
	t := w.t
	b, err := os.ReadFile(filepath.Join("conf", src))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"CERT": w.certFile, "KEY": w.keyFile, "BACKEND": itoa(w.backend)}
	for k, v := range vars {
		all[k] = v
	}
	var pairs []string
	for k, v := range all {
		pairs = append(pairs, "@"+k+"@", v)
	}
	out := strings.NewReplacer(pairs...).Replace(string(b))
	if left := placeholder.FindAllString(out, -1); len(left) > 0 {
		t.Fatalf("conf/%s: no value for %v", src, left)
	}
	w.write(dst, []byte(out))
}

// dialer returns a Dialer that asks only the test's DNS server, trusts only
// the test CA and ignores /etc/hosts; its idle connections close when the
// test ends.
func (w *world) dialer(opts ...dialer.Option) *dialer.Dialer {
	d := dialer.New(w.options(opts)...)
	w.t.Cleanup(d.CloseIdleConnections)
	return d
}

// options returns the options that make a dial use only the test's DNS
// server and CA, followed by opts.
func (w *world) options(opts []dialer.Option) []dialer.Option {
	return append([]dialer.Option{
		dialer.WithNameservers(w.dns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(w.ca.ClientConfig()),
	}, opts...)
}

// transport returns a Transport whose Dialer is configured like dialer's;
// its idle connections close when the test ends.
func (w *world) transport(opts ...dialer.Option) *dialer.Transport {
	tr := dialer.NewTransport(w.options(opts)...)
	w.t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// ctx returns a context bounded well above what any dial here needs.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// checkFDs fails the test if it ends with more open file descriptors than
// it started with (sockets or pipes outliving the test). Call it before
// starting anything so that its cleanup runs last.
func checkFDs(t testing.TB) {
	before := countFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		n := countFDs(t)
		for n > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			n = countFDs(t)
		}
		if n > before {
			t.Errorf("%d file descriptors open after the test, %d before", n, before)
		}
	})
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}
