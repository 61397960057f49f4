package main

// Tests that build the eyeballs binary and run it against loopback servers,
// as a script would.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

// binDir is the directory, made by TestMain, that the binary is built in.
var binDir string

// build builds the binary once for all tests.
var build struct {
	once sync.Once
	path string
	skip string
	err  error
}

// binary returns the path of the eyeballs binary, building it with the go
// tool on first use. It skips the test when there is no go tool.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.skip = fmt.Sprintf("cannot build the eyeballs binary: no go tool on PATH (%v)", err)
			return
		}
		path := filepath.Join(binDir, "eyeballs")
		out, err := exec.Command(goTool, "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		build.path = path
	})
	switch {
	case build.skip != "":
		t.Skip(build.skip)
	case build.err != nil:
		t.Fatal(build.err)
	}
	return build.path
}

// result is how a run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// eyeballs runs the binary with args and stdin and waits for it, for at
// most 20 s.
func eyeballs(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = withoutProxies(os.Environ())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("eyeballs %s: did not end in time\n%s", strings.Join(args, " "), r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("eyeballs %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// withoutProxies returns env without the proxy variables, so that get
// only ever connects to loopback.
func withoutProxies(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasSuffix(strings.ToUpper(k), "_PROXY")
	})
}

// httpServer starts an https:// server (net/http's, HTTP/2 and HTTP/1.1)
// on 127.0.0.1 only, named get.example.test by a test DNS server that
// holds an A record only, and returns its base URL, the nameserver and the
// CA file. Nothing listens on [::1]. /hello says hello, /echo answers with the
// method, the X-Test header and the body, /who with the Host and the
// User-Agent, /redirect redirects to /hello, /stall sends the start of a
// body and then nothing for 10 s, and the rest is 404.
func httpServer(t *testing.T) (base, ns, cacert string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Eyeballs", "yes")
		fmt.Fprintln(w, "hello, eyeballs")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Test"), b)
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Host=%s UA=%s", r.Host, r.Header.Get("User-Agent"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/hello", http.StatusFound)
	})
	stop := make(chan struct{})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("part"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-time.After(10 * time.Second):
		}
	})
	ca, err := dialertest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("get.example.test")
	if err != nil {
		t.Fatal(err)
	}
	conf.NextProtos = []string{"h2", "http/1.1"}
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = conf
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-CA tests fail handshakes on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // before srv.Close
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("https://get.example.test:%d", port), v4DNS(t, "get.example.test").Addr(), caFile(t, ca)
}

// wtServer starts a WebTransport echo server over HTTP/3 only (TCP on its
// port is refused), named wt.example.test by a test DNS server that holds
// an A record only, and returns its URL, the nameserver and the CA file.
func wtServer(t *testing.T) (url, ns, cacert string) {
	t.Helper()
	srv := dialertest.NewServer(t, dialertest.Options{H3: true, WebTransport: true, Names: []string{"wt.example.test"}})
	return srv.URL("https") + "/wt", v4DNS(t, "wt.example.test").Addr(), caFile(t, srv.CA())
}

// h3Server starts an HTTP/3 server with h (TCP on its port is refused),
// named h3.example.test by a test DNS server with an A record and without
// an HTTPS record, and returns its base URL, the nameserver and the CA file.
func h3Server(t *testing.T, h http.Handler) (base, ns, cacert string) {
	t.Helper()
	srv := dialertest.NewServer(t, dialertest.Options{H3: true, Handler: h, Names: []string{"h3.example.test"}})
	return srv.URL("https"), v4DNS(t, "h3.example.test").Addr(), caFile(t, srv.CA())
}

// lines returns the lines of s without the final newline.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestBinaryHelp: "eyeballs -h" lists every command, and each command's -h
// lists its flags and exits 0.
func TestBinaryHelp(t *testing.T) {
	t.Parallel()
	r := eyeballs(t, "", "-h")
	if r.code != 0 {
		t.Fatalf("eyeballs -h: %s", r)
	}
	for _, cmd := range []string{"demo", "ws", "wt", "get", "resolve"} {
		if !strings.Contains(r.stdout, "eyeballs "+cmd+" [flags]") {
			t.Errorf("eyeballs -h does not list %s:\n%s", cmd, r.stdout)
		}
	}
	for _, want := range []string{"eyeballs version", "130  interrupted", "5    TLS", "--resolve HOST:PORT:ADDR"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("eyeballs -h lacks %q:\n%s", want, r.stdout)
		}
	}
	session := []string{"-trace", "-v, -verbose", "-json", "-4, -ipv4", "-6, -ipv6", "-H, -header NAME:VALUE", "-A, -user-agent VALUE",
		"-resolve HOST:PORT:ADDR", "-connect-to HOST1:PORT1:HOST2:PORT2", "-protocol, -subprotocol PROTOCOL"}
	for cmd, flags := range map[string][]string{
		"demo": {"-json", "-svg FILE", "-html FILE"},
		"ws":   append([]string{"-proto VERSIONS", "-linger", "-b, -binary", "-ping-interval INTERVAL"}, session...),
		"wt":   append([]string{"-datagrams", "-cacert FILE"}, session...),
		"get": {"-X, -request METHOD", "-d, -data DATA", "-i, -include", "-I, -head", "-f, -fail", "-o, -output FILE", "-L, -location",
			"-H, -header NAME:VALUE", "-A, -user-agent VALUE", "-v, -verbose", "-4, -ipv4", "-6, -ipv6", "-nameserver IP:PORT", "-attempt-delay",
			"-timeout", "-connect-timeout", "-resolve HOST:PORT:ADDR", "-connect-to HOST1:PORT1:HOST2:PORT2", "-json"},
		"resolve": {"-json", "-nameserver IP:PORT", "-timeout"},
		"version": {},
	} {
		r := eyeballs(t, "", cmd, "-h")
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: eyeballs "+cmd) {
			t.Errorf("eyeballs %s -h: %s", cmd, r)
			continue
		}
		for _, f := range flags {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(f) + `( |\t|$)`).MatchString(r.stderr) {
				t.Errorf("eyeballs %s -h does not list %s:\n%s", cmd, f, r.stderr)
			}
		}
	}
}

// TestBinaryUsageErrors: usage errors exit 2 with one line that says what
// to do, and the same mistake is the same usage error in every command.
func TestBinaryUsageErrors(t *testing.T) {
	t.Parallel()
	type tc struct {
		args []string
		want string
	}
	cases := []tc{
		{[]string{"frob"}, `unknown command "frob" (run "eyeballs -h"`},
		{[]string{"ws"}, `want exactly one URL`},
		{[]string{"ws", "-nope", "wss://x.test"}, `flag provided but not defined: -nope (see "eyeballs ws -h")`},
		{[]string{"ws", "-proto", "h1,h4", "wss://x.test"}, `unknown protocol "h4"`},
		{[]string{"wt", "-ipv4", "-ipv6", "https://x.test"}, "exclude each other"},
		{[]string{"get"}, `want exactly one http:// or https:// URL (see "eyeballs get -h")`},
		{[]string{"get", "ftp://x.test/"}, "is not an http:// or https:// URL"},
		{[]string{"get", "-header", "novalue", "https://x.test/"}, "Name: value"},
		{[]string{"get", "-d", "@/nonexistent/file", "https://x.test/"}, "-d: open /nonexistent/file"},
		{[]string{"get", "-I", "-d", "x", "https://x.test/"}, "exclude each other"},
		{[]string{"get", "-connect-timeout", "-1s", "https://x.test/"}, "negative"},
		{[]string{"ws", "-ping-interval", "soon", "wss://x.test/"}, "neither a duration"},
		{[]string{"resolve"}, "want exactly one name"},
		{[]string{"demo", "extra"}, "demo takes no arguments"},
		{[]string{"version", "extra"}, "version takes no arguments"},
	}
	// The same mistakes in each command that can make them.
	for _, cmd := range []struct{ name, url string }{{"ws", "wss://x.test/"}, {"wt", "https://x.test/"}, {"get", "https://x.test/"}} {
		cases = append(cases,
			tc{[]string{cmd.name, "-nameserver", "not-an-ip", cmd.url}, "is not IP:PORT"},
			tc{[]string{cmd.name, "-timeout", "-1s", cmd.url}, "-timeout -1s is negative"},
			tc{[]string{cmd.name, "-4", "-6", cmd.url}, "-ipv4 and -ipv6 exclude each other"},
			tc{[]string{cmd.name, "-H", "novalue", cmd.url}, "Name: value"},
			tc{[]string{cmd.name, "-cacert", "/nonexistent.pem", cmd.url}, "-cacert: open /nonexistent.pem"},
			tc{[]string{cmd.name, "--resolve", "x.test:443", cmd.url}, "is not HOST:PORT:ADDR"},
			tc{[]string{cmd.name, "--resolve", "x.test:443:not-an-ip", cmd.url}, "is not an IP address"},
			tc{[]string{cmd.name, "--resolve", "x.test:99999:127.0.0.1", cmd.url}, "not a number from 1 to 65535"},
			tc{[]string{cmd.name, "--connect-to", "x.test:443:y.test", cmd.url}, "is not HOST1:PORT1:HOST2:PORT2"},
			tc{[]string{cmd.name, "--connect-to", "x.test:443::", cmd.url}, "connects nowhere else"},
			tc{[]string{cmd.name, "-x", "ftp://p.test:21", cmd.url}, `scheme "ftp", want http, https, socks5 or socks5h`},
			tc{[]string{cmd.name, "-proxy", "p.test:3128", "-noproxy", cmd.url}, "-proxy and -noproxy exclude each other"},
			tc{[]string{cmd.name, "ftp://x.test/"}, "is not a"},
			tc{[]string{cmd.name, "x.test"}, "is not a"},
			tc{[]string{cmd.name, cmd.url, "extra"}, "want exactly one"},
		)
	}
	cases = append(cases,
		tc{[]string{"resolve", "-nameserver", "not-an-ip", "x.test"}, "is not IP:PORT"},
		tc{[]string{"resolve", "-timeout", "-1s", "x.test"}, "-timeout -1s is negative"},
		tc{[]string{"resolve", "x.test", "extra"}, "want exactly one"},
	)
	for _, tc := range cases {
		r := eyeballs(t, "", tc.args...)
		if r.code != 2 || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("eyeballs %s: want exit 2 and one line with %q; %s", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	r := eyeballs(t, "")
	if r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("eyeballs without a command: %s", r)
	}
}

// TestBinaryExitCodes: a failed dial exits with the code of its cause
// (3 DNS, 4 connect, 5 TLS, 6 timeout, 7 HTTP status), with one line that
// names the cause and what to do.
func TestBinaryExitCodes(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens: connection refused
	holePort := dialertest.NewServer(t, dialertest.Options{H1: true}, dialertest.BlackholeTCP()).Port()
	dns := v4DNS(t, "refused.example.test", "hole.example.test")
	wsURL, wsNS, wsCA := wsServer(t)
	base, getNS, getCA := httpServer(t)
	wt, wtNS, wtCA := wtServer(t)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ws", "-nameserver", dns.Addr(), "-timeout", "5s", fmt.Sprintf("wss://refused.example.test:%d/", port)}, 4, "is a server listening on that port?"},
		{[]string{"get", "-nameserver", dns.Addr(), "-timeout", "5s", fmt.Sprintf("https://refused.example.test:%d/", port)}, 4, "is a server listening on that port?"},
		{[]string{"ws", "-nameserver", dns.Addr(), "-timeout", "5s", "wss://missing.example.test/"}, 3, "-nameserver"},
		{[]string{"get", "-nameserver", dns.Addr(), "-timeout", "5s", "https://missing.example.test/"}, 3, "-nameserver"},
		{[]string{"ws", "-nameserver", wsNS, "-timeout", "5s", wsURL}, 5, "-cacert"},
		{[]string{"get", "-nameserver", getNS, "-timeout", "5s", base + "/hello"}, 5, "-cacert"},
		{[]string{"wt", "-nameserver", wtNS, "-proto", "h3", "-timeout", "5s", wt}, 5, "-cacert"},
		{[]string{"ws", "-nameserver", dns.Addr(), "-proto", "h1", "-timeout", "1s", fmt.Sprintf("wss://hole.example.test:%d/", holePort)}, 6, "in time"},
		{[]string{"get", "-nameserver", dns.Addr(), "-proto", "h1", "-connect-timeout", "1s", fmt.Sprintf("https://hole.example.test:%d/", holePort)}, 6, "in time"},
		{[]string{"ws", "-nameserver", wsNS, "-cacert", wsCA, "-H", "X-Reject: 1", wsURL}, 7, "403"},
		{[]string{"get", "-nameserver", getNS, "-cacert", getCA, "-f", base + "/missing"}, 7, "server answered 404 Not Found"},
		{[]string{"wt", "-nameserver", wtNS, "-cacert", wtCA, "-timeout", "5s", "-H", "X-Reject: 1", wt}, 7, "403"},
	} {
		start := time.Now()
		r := eyeballs(t, "", tc.args...)
		if r.code != tc.code || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("eyeballs %s: want exit %d and one line with %q; %s", strings.Join(tc.args, " "), tc.code, tc.want, r)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("eyeballs %s took %v", strings.Join(tc.args, " "), d)
		}
	}
}

// TestBinaryWSEcho: stdin lines come back on stdout.
func TestBinaryWSEcho(t *testing.T) {
	t.Parallel()
	url, ns, ca := wsServer(t)
	r := eyeballs(t, "one\ntwo\nthree\n", "ws", "-nameserver", ns, "-cacert", ca, "-proto", "h1,h2", "-subprotocol", "chat", url)
	if r.code != 0 || r.stdout != "one\ntwo\nthree\n" {
		t.Fatalf("want the three lines echoed; %s", r)
	}
	if !strings.Contains(r.stderr, `connected over HTTP/2, subprotocol "chat"`) {
		t.Errorf("stderr lacks the connection line:\n%s", r.stderr)
	}
	// Flags may follow the URL; -proto h1 forces HTTP/1.1.
	r = eyeballs(t, "hi\n", "ws", url, "-nameserver", ns, "-cacert", ca, "-proto", "h1")
	if r.code != 0 || r.stdout != "hi\n" || !strings.Contains(r.stderr, "connected over HTTP/1") {
		t.Errorf("ws -proto h1 after the URL: %s", r)
	}
}

// TestBinaryWSJSON: -json writes only the race report on stdout, as one
// line of JSON that decodes into dialer.Report; the messages and the
// connection line go to stderr.
func TestBinaryWSJSON(t *testing.T) {
	t.Parallel()
	url, ns, ca := wsServer(t)
	r := eyeballs(t, "x\n", "ws", "-json", "-trace", "-nameserver", ns, "-cacert", ca, url)
	if r.code != 0 {
		t.Fatal(r)
	}
	reps := ndjson(t, r.stdout)
	if len(reps) != 1 {
		t.Fatalf("%d reports on stdout, want 1; %s", len(reps), r)
	}
	rep := reps[0]
	if rep.URL != url || rep.Kind != "websocket" || rep.Winner < 0 || rep.Winner >= len(rep.Attempts) {
		t.Fatalf("report: %+v", rep)
	}
	if w := rep.Attempts[rep.Winner]; w.Outcome != "won" || w.Addr.Addr().String() != "127.0.0.1" {
		t.Errorf("winner: %+v", w)
	}
	if len(rep.DNS) == 0 {
		t.Errorf("report has no DNS queries: %+v", rep)
	}
	for _, want := range []string{"connected over HTTP/2", "\nx\n", "won h2"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// ndjson decodes out as NDJSON race reports: every line one JSON object
// with nothing else on it.
func ndjson(t *testing.T, out string) []dialer.Report {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("stdout does not end its last line: %q", out)
	}
	var reps []dialer.Report
	for i, line := range lines(out) {
		var rep dialer.Report
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil || dec.More() {
			t.Fatalf("stdout line %d is not one JSON report (%v): %q", i+1, err, line)
		}
		reps = append(reps, rep)
	}
	return reps
}

// TestBinaryWTEcho: stdin lines go out on a WebTransport stream, or as
// datagrams, and come back on stdout.
func TestBinaryWTEcho(t *testing.T) {
	t.Parallel()
	url, ns, ca := wtServer(t)
	r := eyeballs(t, "hello\nworld\n", "wt", "-nameserver", ns, "-cacert", ca, "-trace", url)
	if r.code != 0 || r.stdout != "hello\nworld\n" {
		t.Fatalf("want the lines echoed on the stream; %s", r)
	}
	for _, want := range []string{"won h3", "session open over HTTP/3"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = eyeballs(t, "dgram\n", "wt", "-datagrams", "-nameserver", ns, "-cacert", ca, "-proto", "h3", "-subprotocol", "echo-v1", url)
	if r.code != 0 || r.stdout != "dgram\n" || !strings.Contains(r.stderr, `protocol "echo-v1"`) {
		t.Errorf("want the datagram echoed with protocol echo-v1; %s", r)
	}
}

// TestBinaryGet: the body goes to stdout; -i, -trace, -X, -d, -header and
// -f work as in curl.
func TestBinaryGet(t *testing.T) {
	t.Parallel()
	base, ns, ca := httpServer(t)
	common := []string{"-nameserver", ns, "-cacert", ca}
	get := func(args ...string) result {
		return eyeballs(t, "from stdin", append(append([]string{"get"}, common...), args...)...)
	}

	r := get(base + "/hello")
	if r.code != 0 || r.stdout != "hello, eyeballs\n" || r.stderr != "" {
		t.Errorf("get /hello: %s", r)
	}
	r = get("-i", "-trace", base+"/hello")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\n\nhello, eyeballs\n") || !strings.Contains(r.stderr, "won h2") {
		t.Errorf("get -i -trace: %s", r)
	}
	// -i puts the head on stdout before the body, as curl does.
	for _, re := range []string{`^HTTP/[123]\.[01] 200 OK\n`, `(?m)^X-Eyeballs: yes$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("get -i -trace: stdout does not match %s:\n%s", re, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^HTTP/[123] 200 OK$`).MatchString(r.stderr) {
		t.Errorf("get -trace: no status line on stderr:\n%s", r.stderr)
	}
	r = get(base + "/missing")
	if r.code != 0 || !strings.Contains(r.stdout, "404 page not found") {
		t.Errorf("get of a 404 without -f: want exit 0 and the body; %s", r)
	}
	r = get("-f", base+"/missing")
	if r.code != 7 || r.stdout != "" || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, "server answered 404 Not Found") {
		t.Errorf("get -f of a 404: want exit 7, no body and one line; %s", r)
	}
	r = get("-d", "a=1", "-header", "X-Test: t1", base+"/echo")
	if r.code != 0 || r.stdout != "POST t1 a=1" {
		t.Errorf("get -d: %s", r)
	}
	r = get(base+"/echo", "-X", "PUT", "-d", "@-")
	if r.code != 0 || r.stdout != "PUT  from stdin" {
		t.Errorf("get -X PUT -d @- with flags after the URL: %s", r)
	}
}

// TestBinaryGetH3: -proto h3 makes get try QUIC without an HTTPS record.
func TestBinaryGetH3(t *testing.T) {
	t.Parallel()
	base, ns, ca := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s over %s\n", r.URL.Path, r.Proto)
	}))
	r := eyeballs(t, "", "get", "-trace", "-proto", "h3", "-nameserver", ns, "-cacert", ca, base+"/quic")
	if r.code != 0 || r.stdout != "/quic over HTTP/3.0\n" || !strings.Contains(r.stderr, "HTTP/3 200 OK") {
		t.Errorf("get -proto h3: %s", r)
	}
}

// TestBinaryResolve: resolve prints the A, AAAA and HTTPS records that the
// test DNS server holds, as text and as JSON, and exits 1 when there are
// none.
func TestBinaryResolve(t *testing.T) {
	t.Parallel()
	dns := dialertest.NewDNS(t)
	dns.A("res.example.test", "127.0.0.1", "127.0.0.2")
	dns.AAAA("res.example.test", "::1")
	dns.HTTPS("res.example.test", "1 . alpn=h3,h2 port=8443 ipv4hint=127.0.0.1 ipv6hint=::1 ech=AAEC", "2 alt.example.test. alpn=h2 no-default-alpn")
	dns.A("v4only.example.test", "127.0.0.3")

	r := eyeballs(t, "", "resolve", "-nameserver", dns.Addr(), "res.example.test")
	want := []string{
		"A      127.0.0.1",
		"A      127.0.0.2",
		"AAAA   ::1",
		"HTTPS  1 . alpn=h3,h2,http/1.1 port=8443 ipv4hint=127.0.0.1 ipv6hint=::1 ech=yes",
		"HTTPS  2 alt.example.test alpn=h2",
	}
	if r.code != 0 || !slices.Equal(lines(r.stdout), want) || r.stderr != "" {
		t.Errorf("resolve: want\n%s\n%s", strings.Join(want, "\n"), r)
	}

	r = eyeballs(t, "", "resolve", "-json", "-nameserver", dns.Addr(), "https://res.example.test:8443/path")
	var res dialer.Resolution
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || len(lines(r.stdout)) != 1 {
		t.Fatalf("resolve -json: want one line of JSON: %v\n%s", err, r)
	}
	if res.Host != "res.example.test" || len(res.A.Addrs) != 2 || len(res.AAAA.Addrs) != 1 || len(res.HTTPS.Services) != 2 {
		t.Fatalf("resolve -json: %+v", res)
	}
	s := res.HTTPS.Services[0]
	if s.Port != 8443 || !s.ECH || !slices.Equal(s.ALPN, []string{"h3", "h2", "http/1.1"}) || len(s.Hints) != 2 {
		t.Errorf("resolve -json: first HTTPS record %+v", s)
	}

	// Some types empty: still exit 0, with the empty ones on stderr.
	r = eyeballs(t, "", "resolve", "-nameserver", dns.Addr(), "v4only.example.test")
	if r.code != 0 || r.stdout != "A      127.0.0.3\n" || !strings.Contains(r.stderr, "AAAA   no records") {
		t.Errorf("resolve of an IPv4-only name: %s", r)
	}
	// Nothing at all: exit 3 with the errors and one line saying what to do.
	r = eyeballs(t, "", "resolve", "-nameserver", dns.Addr(), "nowhere.example.test")
	if r.code != 3 || r.stdout != "" || strings.Count(r.stderr, "NXDOMAIN") != 3 ||
		!strings.Contains(r.stderr, "eyeballs resolve: no A, AAAA or HTTPS record for nowhere.example.test") {
		t.Errorf("resolve of a missing name: %s", r)
	}
}

// TestBinaryDemoImages: demo -svg and -html finish in bounded time and
// draw exactly one attempt bar per attempt of the races it reports.
func TestBinaryDemoImages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svgPath, htmlPath := filepath.Join(dir, "out.svg"), filepath.Join(dir, "out.html")
	start := time.Now()
	r := eyeballs(t, "", "demo", "-json", "-svg", svgPath, "-html", htmlPath)
	if r.code != 0 {
		t.Fatal(r)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("demo took %v", d)
	}
	reps := ndjson(t, r.stdout) // nothing but the reports on stdout
	if len(reps) != len(scenarios) {
		t.Fatalf("%d reports in the -json output, want %d", len(reps), len(scenarios))
	}
	attempts, queries := 0, 0
	for _, rep := range reps {
		attempts += len(rep.Attempts)
		queries += len(rep.DNS)
	}

	f, err := os.Open(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := countClasses(t, f)
	if counts["attempt"] != attempts || attempts == 0 {
		t.Errorf("%d attempt bars in the SVG, want %d", counts["attempt"], attempts)
	}
	if counts["dns"] != queries {
		t.Errorf("%d DNS bars in the SVG, want %d", counts["dns"], queries)
	}
	if counts["won"] != len(reps) {
		t.Errorf("%d winning bars in the SVG, want one per race (%d)", counts["won"], len(reps))
	}

	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) || bytes.Count(page, []byte(`class="attempt `)) != attempts {
		t.Errorf("the HTML page does not embed the waterfall:\n%.500s", page)
	}
	if !strings.Contains(r.stderr, "wrote "+svgPath) || !strings.Contains(r.stderr, "wrote "+htmlPath) {
		t.Errorf("stderr does not tell where the images are:\n%s", r.stderr)
	}
	if n := strings.Count(r.stderr, `echoed "hello"`); n != len(scenarios) {
		t.Errorf("%d echo lines on stderr, want one per scenario:\n%s", n, r.stderr)
	}
}

// countClasses parses an SVG document and counts the elements by each of
// their classes.
func countClasses(t *testing.T, r io.Reader) map[string]int {
	t.Helper()
	counts := map[string]int{}
	dec := xml.NewDecoder(r)
	root := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root && (se.Name.Local != "svg" || se.Name.Space != "http://www.w3.org/2000/svg") {
			t.Fatalf("root element %v, want svg", se.Name)
		}
		root = false
		for _, a := range se.Attr {
			if a.Name.Local == "class" {
				for _, c := range strings.Fields(a.Value) {
					counts[c]++
				}
			}
		}
	}
	return counts
}

// TestBinaryGetCurlFlags: the flags a curl user reaches for do what they do
// in curl: -H, -A, -o, -i and -I (heads on stdout), -L (redirects only
// when asked), -v (request and response heads on stderr), -4 and -6.
func TestBinaryGetCurlFlags(t *testing.T) {
	t.Parallel()
	base, ns, ca := httpServer(t)
	get := func(args ...string) result {
		return eyeballs(t, "", append([]string{"get", "-nameserver", ns, "-cacert", ca}, args...)...)
	}
	host := strings.TrimPrefix(base, "https://")

	r := get("-H", "X-Test: t1", "-X", "PUT", "-d", "x", base+"/echo")
	if r.code != 0 || r.stdout != "PUT t1 x" {
		t.Errorf("get -H -X -d: %s", r)
	}
	r = get(base + "/who")
	if r.code != 0 || !regexp.MustCompile(`^Host=`+regexp.QuoteMeta(host)+` UA=eyeballs(/\S+)?$`).MatchString(r.stdout) {
		t.Errorf("get /who: want the URL's host and eyeballs as the agent; %s", r)
	}
	r = get("-A", "agent/1.0", base+"/who")
	if r.code != 0 || r.stdout != "Host="+host+" UA=agent/1.0" {
		t.Errorf("get -A: %s", r)
	}

	// -o writes the body to a file; a failed request leaves none.
	dir := t.TempDir()
	out := filepath.Join(dir, "body")
	r = get("-o", out, base+"/hello")
	if b, err := os.ReadFile(out); r.code != 0 || r.stdout != "" || string(b) != "hello, eyeballs\n" {
		t.Errorf("get -o: file %q (%v); %s", b, err, r)
	}
	missing := filepath.Join(dir, "missing")
	r = get("-f", "-o", missing, base+"/missing")
	if _, err := os.Stat(missing); r.code != 7 || err == nil {
		t.Errorf("get -f -o of a 404: want exit 7 and no file (%v); %s", err, r)
	}

	// -I: the head alone, on stdout.
	r = get("-I", base+"/hello")
	if r.code != 0 || !regexp.MustCompile(`^HTTP/2\.0 200 OK\n(.+\n)*X-Eyeballs: yes\n(.+\n)*\n$`).MatchString(r.stdout) {
		t.Errorf("get -I: %s", r)
	}

	// Redirects are followed with -L only; -i shows every head.
	r = get("-i", base+"/redirect")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "HTTP/2.0 302 Found\n") || !strings.Contains(r.stdout, "Location: /hello\n") || strings.Contains(r.stdout, "hello, eyeballs") {
		t.Errorf("get of a redirect without -L: want the 302 itself; %s", r)
	}
	r = get("-L", base+"/redirect")
	if r.code != 0 || r.stdout != "hello, eyeballs\n" {
		t.Errorf("get -L: %s", r)
	}
	r = get("-L", "-i", base+"/redirect")
	if r.code != 0 || !regexp.MustCompile(`^HTTP/2\.0 302 Found\n(.+\n)+\nHTTP/2\.0 200 OK\n(.+\n)+\nhello, eyeballs\n$`).MatchString(r.stdout) {
		t.Errorf("get -L -i: want both heads, then the body; %s", r)
	}

	// -v: the race, the request and the response heads on stderr.
	r = get("-v", base+"/hello")
	if r.code != 0 || r.stdout != "hello, eyeballs\n" {
		t.Errorf("get -v: %s", r)
	}
	for _, want := range []string{"won h2", "\n> GET /hello\n> Host: " + host + "\n", "> User-Agent: eyeballs", "\n< HTTP/2.0 200 OK\n", "< X-Eyeballs: yes\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("get -v: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Index(r.stderr, "won h2") > strings.Index(r.stderr, "> GET") {
		t.Errorf("get -v: the request is printed before the race that carried it:\n%s", r.stderr)
	}

	// -4 and -6: the name has an A record only.
	if r = get("-4", base+"/hello"); r.code != 0 || r.stdout != "hello, eyeballs\n" {
		t.Errorf("get -4: %s", r)
	}
	if r = get("-6", "-connect-timeout", "5s", base+"/hello"); r.code != 3 {
		t.Errorf("get -6 of a name with only an A record: want exit 3; %s", r)
	}
}

// TestBinaryGetJSON: with -json, stdout holds only the race reports, one
// JSON object a line; the body goes to stderr, or to -o's file.
func TestBinaryGetJSON(t *testing.T) {
	t.Parallel()
	base, ns, ca := httpServer(t)
	r := eyeballs(t, "", "get", "-json", "-i", "-nameserver", ns, "-cacert", ca, base+"/hello")
	if reps := ndjson(t, r.stdout); r.code != 0 || len(reps) != 1 || reps[0].URL != base+"/hello" || reps[0].Winner < 0 {
		t.Fatalf("get -json: want one report on stdout; %s", r)
	}
	if !strings.HasSuffix(r.stderr, "\nhello, eyeballs\n") || !strings.Contains(r.stderr, "X-Eyeballs: yes") {
		t.Errorf("get -json: the head and body are not on stderr:\n%s", r.stderr)
	}
	out := filepath.Join(t.TempDir(), "body")
	r = eyeballs(t, "", "get", "-json", "-o", out, "-nameserver", ns, "-cacert", ca, base+"/hello")
	b, _ := os.ReadFile(out)
	if reps := ndjson(t, r.stdout); r.code != 0 || len(reps) != 1 || string(b) != "hello, eyeballs\n" || r.stderr != "" {
		t.Errorf("get -json -o: file %q; %s", b, r)
	}
}

// TestBinaryGetTimeout: get's -timeout bounds the whole request, the body
// included, and exits 6 when it runs out.
func TestBinaryGetTimeout(t *testing.T) {
	t.Parallel()
	base, ns, ca := httpServer(t)
	start := time.Now()
	r := eyeballs(t, "", "get", "-timeout", "1s", "-nameserver", ns, "-cacert", ca, base+"/stall")
	if d := time.Since(start); r.code != 6 || r.stdout != "part" || d > 5*time.Second || !strings.Contains(r.stderr, "-timeout 1s") {
		t.Errorf("get -timeout 1s of a body that stalls: want exit 6 after about 1s (took %v); %s", d, r)
	}
}

// TestBinaryResolveFlag: --resolve HOST:PORT:ADDR reaches HOST without DNS
// on that port only, in every dialing command.
func TestBinaryResolveFlag(t *testing.T) {
	t.Parallel()
	base, _, ca := httpServer(t)
	wsURL, _, wsCA := wsServer(t)
	empty := dialertest.NewDNS(t) // knows no name: only --resolve can help
	port := base[strings.LastIndex(base, ":")+1:]
	r := eyeballs(t, "", "get", "-nameserver", empty.Addr(), "-cacert", ca, "--resolve", "get.example.test:"+port+":127.0.0.1", base+"/hello")
	if r.code != 0 || r.stdout != "hello, eyeballs\n" {
		t.Errorf("get --resolve: %s", r)
	}
	// Several addresses race; [::1] has nothing on the port.
	r = eyeballs(t, "", "get", "-nameserver", empty.Addr(), "-cacert", ca, "-resolve", "GET.example.test:"+port+":[::1],127.0.0.1", "-trace", base+"/hello")
	if r.code != 0 || r.stdout != "hello, eyeballs\n" || !strings.Contains(r.stderr, "127.0.0.1:"+port) {
		t.Errorf("get --resolve with two addresses: %s", r)
	}
	if empty.Total() != 0 {
		t.Errorf("--resolve sent %d DNS queries", empty.Total())
	}
	// Another port: DNS as usual, which knows nothing.
	r = eyeballs(t, "", "get", "-nameserver", empty.Addr(), "-cacert", ca, "--resolve", "get.example.test:1:127.0.0.1", base+"/hello")
	if r.code != 3 {
		t.Errorf("get --resolve for another port: want exit 3; %s", r)
	}
	wsPort := wsURL[strings.LastIndex(wsURL, ":")+1 : strings.LastIndex(wsURL, "/")]
	r = eyeballs(t, "hi\n", "ws", "-nameserver", empty.Addr(), "-cacert", wsCA, "--resolve", "cli.example.test:"+wsPort+":127.0.0.1", wsURL)
	if r.code != 0 || r.stdout != "hi\n" {
		t.Errorf("ws --resolve: %s", r)
	}
}

// TestBinaryConnectTo: --connect-to sends the request for one host and
// port to another, still asking for the URL's host and checking its
// certificate.
func TestBinaryConnectTo(t *testing.T) {
	t.Parallel()
	srv := dialertest.NewServer(t, dialertest.Options{H1: true, H2: true, Names: []string{"virtual.example.test"},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Host=%s", r.Host)
		})})
	ca := caFile(t, srv.CA())
	port := fmt.Sprint(srv.Port())
	dns := v4DNS(t, "real.example.test")
	get := func(args ...string) result {
		return eyeballs(t, "", append([]string{"get", "-nameserver", dns.Addr(), "-cacert", ca, "-connect-timeout", "5s"}, args...)...)
	}
	r := get("--connect-to", "virtual.example.test:443:real.example.test:"+port, "https://virtual.example.test/")
	if r.code != 0 || r.stdout != "Host=virtual.example.test" {
		t.Errorf("get --connect-to a name: %s", r)
	}
	// Empty HOST1 and PORT1 match any; the target may be an address.
	r = get("-connect-to", "::127.0.0.1:"+port, "https://virtual.example.test:8443/")
	if r.code != 0 || r.stdout != "Host=virtual.example.test:8443" {
		t.Errorf("get --connect-to ::ADDR:PORT: %s", r)
	}
	// No entry matches: the URL's host is looked up, and is unknown.
	r = get("--connect-to", "other.example.test:443:real.example.test:"+port, "https://virtual.example.test/")
	if r.code != 3 {
		t.Errorf("get --connect-to that does not match: want exit 3; %s", r)
	}
	wsURL, ns, wsCA := wsServer(t)
	wsPort := wsURL[strings.LastIndex(wsURL, ":")+1 : strings.LastIndex(wsURL, "/")]
	r = eyeballs(t, "hi\n", "ws", "-nameserver", ns, "-cacert", wsCA, "--connect-to", "cli.example.test:1:127.0.0.1:"+wsPort, "wss://cli.example.test:1/echo")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Errorf("ws --connect-to: %s", r)
	}
}

// TestBinaryWSBinary: -b sends stdin as it is, as binary messages, and
// prints the messages received as they are, without a newline added.
func TestBinaryWSBinary(t *testing.T) {
	t.Parallel()
	url, ns, ca := wsServer(t)
	in := "abc\x00\xff\ndef"
	r := eyeballs(t, in, "ws", "-b", "-nameserver", ns, "-cacert", ca, url)
	if r.code != 0 || r.stdout != in {
		t.Errorf("ws -b: want %q back; %s", in, r)
	}
}

// TestBinaryWSPing: --ping-interval pings (-v shows the pongs), and a peer
// that stops answering ends the session with exit 6.
func TestBinaryWSPing(t *testing.T) {
	t.Parallel()
	url, ns, ca := wsServer(t)
	r := eyeballs(t, "x\n", "ws", "-v", "--ping-interval", "0.1", "-linger", "600ms", "-nameserver", ns, "-cacert", ca, url)
	if r.code != 0 || r.stdout != "x\n" || !strings.Contains(r.stderr, "pong after") || !strings.Contains(r.stderr, "< HTTP/") {
		t.Errorf("ws -v --ping-interval 0.1: %s", r)
	}

	// A server that accepts and then never reads: no pong ever comes.
	muteURL, muteNS, muteCA := muteServer(t)
	start := time.Now()
	r = eyeballs(t, "", "ws", "-proto", "h1", "--ping-interval", "200ms", "-linger", "10s", "-nameserver", muteNS, "-cacert", muteCA, muteURL)
	if d := time.Since(start); r.code != 6 || !strings.Contains(r.stderr, "no pong") || d > 5*time.Second {
		t.Errorf("ws --ping-interval to a peer that does not answer: want exit 6 soon (took %v); %s", d, r)
	}
}

// muteServer starts a wss:// server (HTTP/1.1) on 127.0.0.1, named
// mute.example.test by a test DNS server, that accepts WebSockets and
// then never reads from them: no pong, no close. It returns the URL, the
// nameserver and the CA file.
func muteServer(t *testing.T) (url, ns, cacert string) {
	t.Helper()
	stop := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
		}
	})
	srv := dialertest.NewServer(t, dialertest.Options{H1: true, Handler: h, Names: []string{"mute.example.test"}})
	t.Cleanup(func() { close(stop) }) // before srv.Close
	return srv.URL("wss") + "/", v4DNS(t, "mute.example.test").Addr(), caFile(t, srv.CA())
}

// TestBinaryVersion: "eyeballs version" (and --version) prints the version
// and the Go toolchain on one line.
func TestBinaryVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		r := eyeballs(t, "", arg)
		if r.code != 0 || r.stderr != "" || !regexp.MustCompile(`^eyeballs \S+( rev [0-9a-f]+(\+dirty)?)? go\S+ \w+/\w+\n$`).MatchString(r.stdout) {
			t.Errorf("eyeballs %s: %s", arg, r)
		}
	}
}

// TestBinaryInterrupt: Ctrl-C (SIGINT) ends a command with exit 130,
// during a session and during a dial.
func TestBinaryInterrupt(t *testing.T) {
	t.Parallel()
	url, ns, ca := wsServer(t)
	hole := dialertest.NewServer(t, dialertest.Options{H1: true}, dialertest.BlackholeTCP())
	muteURL, muteNS, muteCA := muteServer(t)
	dns := v4DNS(t, "hole.example.test")
	for _, tc := range []struct {
		name  string
		args  []string
		ready string // on stderr when it is time to interrupt
	}{
		{"session", []string{"ws", "-nameserver", ns, "-cacert", ca, url}, "connected over"},
		{"session with a peer that does not close", []string{"ws", "-proto", "h1", "-nameserver", muteNS, "-cacert", muteCA, muteURL}, "connected over"},
		{"dial", []string{"get", "-v", "-nameserver", dns.Addr(), "-proto", "h1", fmt.Sprintf("https://hole.example.test:%d/", hole.Port())}, ""},
	} {
		bin := binary(t)
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = withoutProxies(os.Environ())
		stdin, err := cmd.StdinPipe() // left open: the session goes on
		if err != nil {
			t.Fatal(err)
		}
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), tc.ready) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // into the dial or the session
		start := time.Now()
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s: still running 3s after SIGINT", tc.name)
		}
		stdin.Close()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("%s: exit %d after SIGINT (in %v), want 130; stderr:\n%s", tc.name, code, time.Since(start), stderr.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBinaryProxy: -x sends the dial through the proxy; -trace draws the
// hop, and a proxy that refuses the tunnel exits 4 with a hint that
// blames the proxy, its password never shown.
func TestBinaryProxy(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	proxy := "http://alice:s3cret@" + l.Addr().String()
	for _, cmd := range []struct{ name, url string }{{"ws", "wss://origin.example.test/"}, {"wt", "https://origin.example.test/"}, {"get", "https://origin.example.test/"}} {
		r := eyeballs(t, "", cmd.name, "-nameserver", "127.0.0.1:1", "-timeout", "5s", "-trace", "-x", proxy, cmd.url)
		if r.code != 4 || !strings.Contains(r.stderr, "the proxy failed, not the server") ||
			!strings.Contains(r.stderr, "proxy http://alice:xxxxx@"+l.Addr().String()+" → origin.example.test:443") ||
			!strings.Contains(r.stderr, "407") || strings.Contains(r.stderr, "s3cret") {
			t.Errorf("eyeballs %s -x: want exit 4, the hop drawn, the 407 and the hint, no password; %s", cmd.name, r)
		}
	}
}
