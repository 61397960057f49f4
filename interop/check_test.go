package interop

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// dialWS dials a WebSocket with d, checks that it is carried by HTTP/major
// and echoes, and returns it (closed when the test ends), the server's
// response and the dial's race report. It must run on the test's
// goroutine; others use tryWS.
func dialWS(t testing.TB, d *dialer.Dialer, url string, major int, opts ...dialer.Option) (*websocket.Conn, *http.Response, *dialer.Report) {
	t.Helper()
	c, resp, rep, err := tryWS(t, d, url, major, opts...)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, fmt.Sprintf("hello over HTTP/%d", major))
	return c, resp, rep
}

// tryWS dials a WebSocket with d and returns it (closed when the test
// ends), the server's response and the dial's race report, or an error,
// with the race, when the dial failed or HTTP/major did not carry it. It
// is safe on any goroutine.
func tryWS(t testing.TB, d *dialer.Dialer, url string, major int, opts ...dialer.Option) (*websocket.Conn, *http.Response, *dialer.Report, error) {
	var (
		mu  sync.Mutex
		rep *dialer.Report
	)
	opts = append(opts, dialer.WithReport(func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() }))
	c, resp, err := d.DialWebSocket(ctx(t), url, opts...)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return nil, resp, rep, fmt.Errorf("dial %s: %w; race:\n%v", url, err, rep)
	}
	t.Cleanup(func() { c.CloseNow() })
	if resp.ProtoMajor != major {
		return nil, resp, rep, fmt.Errorf("WebSocket over HTTP/%d, want HTTP/%d; race:\n%s", resp.ProtoMajor, major, rep)
	}
	return c, resp, rep, nil
}

// echo sends msg as a text message and checks that it comes back.
func echo(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(ctx(t), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	typ, b, err := c.Read(ctx(t))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText || string(b) != msg {
		t.Fatalf("echo: %v %q, want text %q", typ, b, msg)
	}
}

// closeWS closes a WebSocket with a normal closure and checks that the
// close handshake completed through the server.
func closeWS(t testing.TB, c *websocket.Conn) {
	t.Helper()
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
}

// winner returns the report's winning attempt, failing the test when
// there is none.
func winner(t testing.TB, rep *dialer.Report) dialer.Attempt {
	t.Helper()
	if rep == nil || rep.Winner < 0 || rep.Winner >= len(rep.Attempts) {
		t.Fatalf("no winning attempt in the race report:\n%v", rep)
	}
	return rep.Attempts[rep.Winner]
}

// incapable reports whether the race closed a connection that negotiated
// version but whose SETTINGS lacked extended CONNECT.
func incapable(rep *dialer.Report, version string) bool {
	for _, a := range rep.Attempts {
		if a.Version == version && a.Outcome == "incapable" && a.Settings != nil && !a.Settings.ExtendedConnect {
			return true
		}
	}
	return false
}

// checkLadder checks a race that had to step down to HTTP/1.1: every
// version in lacking connected and showed SETTINGS without extended
// CONNECT, and an http/1.1 connection won.
func checkLadder(t testing.TB, rep *dialer.Report, lacking ...string) {
	t.Helper()
	for _, v := range lacking {
		if !incapable(rep, v) {
			t.Errorf("no %s attempt closed for SETTINGS without extended CONNECT; race:\n%s", v, rep)
		}
	}
	if w := winner(t, rep); w.Version != "h1" {
		t.Errorf("winner negotiated %q, want h1; race:\n%s", w.Version, rep)
	}
}

// logLines waits until the file at path has at least n lines matching re
// (servers write access log lines when a request ends) and returns them.
func logLines(t testing.TB, path string, re *regexp.Regexp, n int) []string {
	t.Helper()
	return logLinesFunc(t, func() string { b, _ := os.ReadFile(path); return string(b) }, re, n)
}

// logLinesFunc is logLines on what read returns, such as a server's
// captured output.
func logLinesFunc(t testing.TB, read func() string, re *regexp.Regexp, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := read()
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			if re.MatchString(l) {
				got = append(got, l)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				t.Fatalf("%d lines matching %q, want %d:\n%s", len(got), re, n, b)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proto names an HTTP major version as ALPN does.
func proto(major int) string {
	if major == 1 {
		return "h1"
	}
	return fmt.Sprintf("h%d", major)
}

func itoa(n int) string { return fmt.Sprint(n) }

// checkH1Upgrade checks an access log line in the interop format
// (address, port, protocol, "request", status) for an HTTP/1.1 request
// answered 101.
func checkH1Upgrade(t testing.TB, server, line string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 5 || f[2] != "HTTP/1.1" || f[len(f)-1] != "101" {
		t.Errorf("%s logged %q, want an HTTP/1.1 request answered 101", server, line)
	}
}
