package interop

import (
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// peer is one independent implementation: its name in the matrix, the
// program that runs it, and how to ask that program its version.
type peer struct {
	name string
	bin  string   // looked up in PATH, then in /usr/sbin
	args []string // arguments that make bin print its version
	// version picks the version out of what args printed; the first
	// submatch of each is joined with ", ".
	version []*regexp.Regexp
	// install says where the program comes from, for the skip message.
	install string
}

var (
	apache = peer{name: "Apache httpd + mod_http2", bin: "apache2", args: []string{"-v"}, install: "apt-get install apache2",
		version: []*regexp.Regexp{regexp.MustCompile(`Apache/(\S+)`)}}
	haproxy = peer{name: "HAProxy", bin: "haproxy", args: []string{"-v"}, install: "apt-get install haproxy",
		version: []*regexp.Regexp{regexp.MustCompile(`HAProxy version (\S+)`)}}
	nginx = peer{name: "nginx", bin: "nginx", args: []string{"-v"}, install: "apt-get install nginx",
		version: []*regexp.Regexp{regexp.MustCompile(`nginx/(\S+)`)}}
	h2o = peer{name: "h2o", bin: "h2o", args: []string{"-v"}, install: "apt-get install h2o",
		version: []*regexp.Regexp{regexp.MustCompile(`h2o version (\S+)`)}}
	caddy = peer{name: "Caddy", bin: "caddy", args: []string{"version"}, install: "apt-get install caddy",
		version: []*regexp.Regexp{regexp.MustCompile(`^v?(\S+)`)}}
	node = peer{name: "node http2", bin: "node", args: []string{"--version"}, install: "apt-get install nodejs",
		version: []*regexp.Regexp{regexp.MustCompile(`v(\S+)`)}}
	ngtcp2 = peer{name: "ngtcp2 example server (gtlsserver)", bin: "gtlsserver", install: "apt-get install ngtcp2-server"}
	curl   = peer{name: "curl", bin: "curl", args: []string{"-V"}, install: "apt-get install curl",
		version: []*regexp.Regexp{regexp.MustCompile(`^curl (\S+)`), regexp.MustCompile(`(nghttp2/\S+)`)}}
)

// path returns the program's path, or "" when it is not installed.
func (p peer) path() string {
	if path, err := exec.LookPath(p.bin); err == nil {
		return path
	}
	if path, err := exec.LookPath("/usr/sbin/" + p.bin); err == nil {
		return path
	}
	return ""
}

var versions sync.Map // peer name → version string

// versionOf asks the program its version, once per test binary. The
// ngtcp2 example server prints none; its Debian package says it.
func (p peer) versionOf() string {
	if v, ok := versions.Load(p.name); ok {
		return v.(string)
	}
	var out []byte
	if p.args == nil {
		out, _ = exec.Command("dpkg-query", "-W", "-f", "${Version}", "ngtcp2-server").Output()
		out = []byte(strings.SplitN(string(out), "+", 2)[0])
	} else {
		out, _ = exec.Command(p.path(), p.args...).CombinedOutput()
	}
	var parts []string
	for _, re := range p.version {
		if m := re.FindSubmatch(out); m != nil {
			parts = append(parts, string(m[1]))
		}
	}
	v := strings.Join(parts, ", ")
	if p.version == nil {
		v = strings.TrimSpace(string(out))
	}
	if v == "" {
		v = "?"
	}
	versions.Store(p.name, v)
	return v
}

// row is one line of the interop matrix (INTEROP.md). It is logged when the
// test ends as
//
//	INTEROP | peer | version | what | protocol | result
//
// with result "ok", "FAIL" or "skipped: why"; interop/matrix.sh collects
// these lines.
type row struct {
	p       peer
	path    string // the program's path
	version string
	what    string
	// proto is the HTTP version that carried the session or request, as
	// the test saw it ("h2", "h1", "h2 then h3"); tests set it.
	proto string
	// note, when set, follows the result in parentheses.
	note string
	// peerBug, when set, replaces "ok": the library did its part (the
	// test checked it) and the peer misbehaved as described.
	peerBug string
	skip    string
}

// need returns the matrix row of a test of what against p, logged when the
// test ends. When p is not installed the test skips, saying how to install
// it; extra names other programs the test needs too.
func need(t testing.TB, p peer, what string, extra ...peer) *row {
	t.Helper()
	r := &row{p: p, what: what, proto: "-"}
	t.Cleanup(func() {
		result := "ok"
		switch {
		case r.skip != "":
			result = "skipped: " + r.skip
		case t.Skipped():
			result = "skipped"
		case t.Failed():
			result = "FAIL"
		case r.peerBug != "":
			result = "peer bug: " + r.peerBug
		}
		if r.note != "" {
			result += " (" + r.note + ")"
		}
		t.Logf("INTEROP | %s | %s | %s | %s | %s", p.name, r.version, what, r.proto, result)
	})
	lookup(t, r, extra...)
	return r
}

// lookup fills in r's program path and version, or skips the test when
// r's peer or one of extra is not installed.
func lookup(t testing.TB, r *row, extra ...peer) {
	t.Helper()
	for _, q := range append([]peer{r.p}, extra...) {
		if q.path() == "" {
			r.version = "-"
			r.skip = q.bin + " is not installed (" + q.install + "; .ci/run does)"
			t.Skipf("%s: %s", r.what, r.skip)
		}
	}
	r.path = r.p.path()
	r.version = r.p.versionOf()
}
