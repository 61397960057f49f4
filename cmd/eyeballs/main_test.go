package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

func TestMain(m *testing.M) {
	if code, ok := testkit.EnsureXConnect(); ok {
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "eyeballs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// wsServer starts a wss:// echo server on 127.0.0.1 named by a test DNS
// server and returns the URL, the nameserver and a CA file.
func wsServer(t *testing.T) (url, nameserver, cacert string) {
	t.Helper()
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("cli.example.test")
	if err != nil {
		t.Fatal(err)
	}
	l4, l6, port, err := testkit.ListenPair()
	if err != nil {
		t.Fatal(err)
	}
	l6.Close()
	srv, err := testkit.StartHTTP(l4, conf, testkit.EchoHandler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ns := dnstest.Start(t)
	ns.A("cli.example.test", "127.0.0.1")
	cacert = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cacert, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("wss://cli.example.test:%d/echo", port), ns.Addr(), cacert
}

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestWSEcho: lines on stdin come back on stdout, the trace goes to
// stderr, and the exit code is 0.
func TestWSEcho(t *testing.T) {
	url, ns, ca := wsServer(t)
	code, out, errOut := runCmd(t, "one\ntwo\n", "ws", "-nameserver", ns, "-cacert", ca, "-trace", "-subprotocol", "echo", url)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if out != "one\ntwo\n" {
		t.Errorf("stdout %q, want the two lines echoed", out)
	}
	for _, want := range []string{"dns A", "won h2", "connected over HTTP/2", `subprotocol "echo"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// TestExitCodes: usage errors exit 2, dial failures by their cause, with
// one-line messages.
func TestExitCodes(t *testing.T) {
	url, ns, ca := wsServer(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "Usage"},
		{"unknown command", []string{"frob"}, 2, "unknown command"},
		{"no URL", []string{"ws"}, 2, "want exactly one URL"},
		{"bad flag", []string{"ws", "-nope", url}, 2, "flag provided but not defined"},
		{"both families", []string{"ws", "-ipv4", "-ipv6", url}, 2, "exclude each other"},
		{"bad header", []string{"ws", "-header", "novalue", url}, 2, "Name: value"},
		{"missing CA file", []string{"ws", "-cacert", "/nonexistent.pem", url}, 2, "cacert"},
		{"untrusted CA", []string{"ws", "-nameserver", ns, "-timeout", "5s", url}, 5, "certificate"},
		{"rejected", []string{"ws", "-nameserver", ns, "-cacert", ca, "-header", "X-Reject: 1", url}, 7, "403"},
		{"help", []string{"ws", "-h"}, 0, "Usage: eyeballs ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut+usage, tc.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s", code, tc.code, errOut)
			}
		})
	}
}

// TestDemo runs the main job: every scenario completes with an echo.
func TestDemo(t *testing.T) {
	start := time.Now()
	code, out, errOut := runCmd(t, "", "demo")
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s\n%s", code, out, errOut)
	}
	if n := strings.Count(out, `echoed "hello"`); n != len(scenarios) {
		t.Errorf("%d scenarios echoed, want %d:\n%s", n, len(scenarios), out)
	}
	if !strings.Contains(out, "lost") {
		t.Errorf("no cancelled loser shown:\n%s", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("demo took %v", d)
	}
}
