package interop

import (
	"bytes"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

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
