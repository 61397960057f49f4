package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

func TestMain(m *testing.M) {
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

// wsServer starts a wss:// echo server (HTTP/1.1, and HTTP/2 with extended
// CONNECT), named cli.example.test by a test DNS server that holds an A
// record only, 127.0.0.1, and returns the URL, the nameserver and a CA
// file.
func wsServer(t *testing.T) (url, nameserver, cacert string) {
	t.Helper()
	srv := dialertest.NewServer(t, dialertest.Options{H1: true, H2: true, Names: []string{"cli.example.test"}})
	ns := v4DNS(t, "cli.example.test")
	return srv.URL("wss") + "/echo", ns.Addr(), caFile(t, srv.CA())
}

// v4DNS starts a test DNS server that gives each of names one A record,
// 127.0.0.1, and nothing else: no AAAA and no HTTPS record.
func v4DNS(t *testing.T, names ...string) *dialertest.DNS {
	t.Helper()
	ns := dialertest.NewDNS(t)
	for _, name := range names {
		ns.A(name, "127.0.0.1")
	}
	return ns
}

// caFile writes ca's certificate to a file, for -cacert, and returns its
// path.
func caFile(t *testing.T, ca *dialertest.CA) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
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

// TestExitCode: exitCode tells causes apart by what the errors are, and an
// attempt that timed out inside a race that failed otherwise does not make
// the dial a timeout.
func TestExitCode(t *testing.T) {
	ap := netip.MustParseAddrPort("127.0.0.1:443")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	untrusted := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	dial := func(stage string, cause error, attempts ...error) *dialer.DialError {
		d := &dialer.DialError{URL: "wss://x.test/", Stage: stage, Err: cause}
		for _, a := range attempts {
			d.Attempts = append(d.Attempts, dialer.AttemptError{Addr: ap, Proto: "h2,h1", Err: a})
		}
		return d
	}
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"ok", nil, 0},
		{"help", flag.ErrHelp, 0},
		{"usage", usagef("bad"), 2},
		{"other", errors.New("broken pipe"), 1},
		{"unsupported", dial("capability", dialer.ErrUnsupported), 1},
		{"no address", dial("dns", fmt.Errorf("%w for x.test", dialer.ErrNoAddress)), 3},
		{"dns stage", &url.Error{Op: "Get", URL: "https://x.test/", Err: dial("dns", errors.New("bad resolv.conf"))}, 3},
		{"go resolver", &net.DNSError{Err: "no such host", Name: "proxy.test", IsNotFound: true}, 3},
		{"refused", dial("connect", nil, refused), 4},
		{"refused and a QUIC attempt timed out", dial("connect", nil, refused, &quic.IdleTimeoutError{}), 4},
		{"reset under a request", dial("request", fmt.Errorf("h2 %v: %w", ap, syscall.ECONNRESET)), 4},
		{"untrusted", dial("connect", nil, untrusted), 5},
		{"untrusted beside refused", &url.Error{Op: "Get", URL: "https://x.test/", Err: dial("connect", nil, refused, untrusted)}, 5},
		{"bad name", dial("connect", nil, fmt.Errorf("TLS handshake failed: %w", x509.HostnameError{Host: "x.test", Certificate: &x509.Certificate{}})), 5},
		{"QUIC crypto error", dial("connect", nil, &quic.TransportError{ErrorCode: quic.TransportErrorCode(0x100 + 42)}), 5},
		{"TLS alert", dial("connect", nil, tls.AlertError(40)), 5},
		{"ECH retry configurations malformed", dial("connect", nil, &dialer.ECHError{What: "server rejected ECH and sent malformed retry configurations", Err: errors.New("malformed ECHConfigList")}), 5},
		{"dial deadline", dial("connect", context.DeadlineExceeded, &quic.IdleTimeoutError{}), 6},
		{"deadline in DNS", dial("dns", context.DeadlineExceeded), 6},
		{"get -timeout", &timeoutError{"no complete answer within -timeout 1s", errors.New("context deadline exceeded")}, 6},
		{"rejected", dial("handshake", fmt.Errorf("%w: 403 Forbidden", dialer.ErrRejected)), 7},
		{"get -f", &statusError{"404 Not Found"}, 7},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.code)
		}
	}
}

// TestRunInterrupted: a command whose context ends (Ctrl-C in main) exits
// 130 without an error line; a usage error still exits 2.
func TestRunInterrupted(t *testing.T) {
	url, ns, ca := wsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"ws", "-nameserver", ns, "-cacert", ca, url}, strings.NewReader(""), &out, &errb); code != 130 || errb.Len() != 0 {
		t.Errorf("interrupted ws: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(ctx, []string{"ws"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("interrupted usage error: exit %d, stderr %q", code, errb.String())
	}
}
