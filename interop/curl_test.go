package interop

import (
	"bytes"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eyeballs/dialer"
)

// checkGETs fetches each of the world's documents from origin
// ("https://host:port") through a new Transport, checks status 200, the
// body, and that HTTP/major carried every response, and compares each
// answer with curl's (compareCurl). It returns the protocol for the
// matrix.
func checkGETs(t testing.TB, w *world, r *row, origin string, major int, opts ...dialer.Option) string {
	t.Helper()
	client := &http.Client{Transport: w.transport(opts...)}
	for _, p := range slices.Sorted(maps.Keys(w.docs)) {
		u := origin + p
		resp, body := fetch(t, client, u)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, w.docs[p]) {
			t.Errorf("GET %s: %s, %d bytes; want 200 and the file's %d bytes", u, resp.Status, len(body), len(w.docs[p]))
		}
		if resp.ProtoMajor != major {
			t.Errorf("GET %s over HTTP/%d, want HTTP/%d", u, resp.ProtoMajor, major)
		}
		compareCurl(t, w, r, u, resp, body)
	}
	return proto(major)
}

// fetch GETs u and returns the response and its body.
func fetch(t testing.TB, client *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return resp, body
}

// compareCurl fetches u with curl, the reference client (Debian's offers
// h2 and http/1.1, not h3), and checks that it got the same status, body
// and Content-Type as the Transport's resp and body, over the same HTTP
// version. Without curl, or for an HTTP/3 answer, it only notes that in
// r.
func compareCurl(t testing.TB, w *world, r *row, u string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.ProtoMajor == 3 {
		r.note = "curl: Debian's has no HTTP/3"
		return
	}
	path := curl.path()
	if path == "" {
		r.note = "curl not installed: not compared"
		return
	}
	r.note = "curl " + curl.versionOf() + " agrees"
	cr := curlGet(t, w, path, u)
	if cr.status != resp.StatusCode || !bytes.Equal(cr.body, body) || cr.contentType != resp.Header.Get("Content-Type") {
		t.Errorf("GET %s: the Transport got %d, %d bytes, %q; curl got %d, %d bytes, %q", u,
			resp.StatusCode, len(body), resp.Header.Get("Content-Type"), cr.status, len(cr.body), cr.contentType)
	}
	want := map[int]string{1: "1.1", 2: "2"}[resp.ProtoMajor]
	if want != "" && cr.version != want {
		t.Errorf("GET %s: curl used HTTP/%s, the Transport HTTP/%d", u, cr.version, resp.ProtoMajor)
	}
}

// curlResult is what curl got.
type curlResult struct {
	status      int
	version     string // "2", "1.1"
	contentType string
	body        []byte
}

// curlGet fetches u with curl, trusting only the world's CA, resolving the
// host to 127.0.0.1 itself (--resolve: no DNS), ignoring proxies and
// ~/.curlrc, and offering h2 and http/1.1.
func curlGet(t testing.TB, w *world, curlPath, u string) curlResult {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, out := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "body")
	w.write(caFile, w.ca.PEM())
	args := []string{"-q", "-sS", "--http2", "--noproxy", "*", "--max-time", "20", "--cacert", caFile,
		"-o", out, "-w", "%{http_code} %{http_version} %{content_type}"}
	if net.ParseIP(pu.Hostname()) == nil {
		args = append(args, "--resolve", pu.Hostname()+":"+pu.Port()+":127.0.0.1")
	}
	cmd := exec.Command(curlPath, append(args, u)...)
	cmd.Env = append(os.Environ(), "HOME="+dir) // no ~/.curlrc either way
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v: %s", u, err, stderr.String())
	}
	f := strings.SplitN(string(stdout), " ", 3)
	if len(f) < 3 {
		t.Fatalf("curl %s printed %q", u, stdout)
	}
	status, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("curl %s printed %q", u, stdout)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return curlResult{status: status, version: f[1], contentType: f[2], body: body}
}
