package integration

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// nodeDir holds the interop server on @fails-components/webtransport
// (package.json pins the version; `npm ci` there installs it).
const nodeDir = "testdata/wtnode"

// TestWebTransportH2InteropNode dials WebTransport over HTTP/2 against the
// only other implementation we know of, @fails-components/webtransport on
// node's own HTTP/2 stack: a bidirectional echo, a unidirectional stream
// answered on a server-opened one, and a datagram echo.
//
// The package (1.6.8) speaks an earlier draft than ours in a few wire
// details (stream ID parity, the two WT_STREAM codes, WT_STREAMS_BLOCKED
// codes, no Reliable Size in resets, no SETTINGS_WT_ENABLED, an unquoted
// WT-Protocol); server.mjs translates those in WT_WIRE=draft15 mode, so
// what is exercised here is node's TLS, HTTP/2 framing, SETTINGS, extended
// CONNECT, flow control and the package's capsule handling. See
// testdata/wtnode/server.mjs.
func TestWebTransportH2InteropNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the interop test against @fails-components/webtransport needs it")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@fails-components", "webtransport", "package.json")); err != nil {
		t.Skipf("@fails-components/webtransport is not installed: run `npm ci` in integration/%s (.ci/run does)", nodeDir)
	}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeCert(t, ca, "127.0.0.1", "localhost")
	port := startNode(t, node, certFile, keyFile)

	d := dialer.New(dialer.WithTLSConfig(ca.ClientConfig()), dialer.WithHostsFile("-"), dialer.WithProtocols("h2"))
	t.Cleanup(d.CloseIdleConnections)
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/echo"
	s, _ := dialWTOver(t, 2, d, url, dialer.WithSubprotocols("echo-v1"))
	if s.Protocol() != "echo-v1" {
		t.Errorf("protocol %q, want echo-v1", s.Protocol())
	}
	t.Run("bidi", func(t *testing.T) {
		roundTrip(t, s, []byte("hello node"))
		roundTrip(t, s, bytes.Repeat([]byte("0123456789abcdef"), 16<<10)) // 256 KiB: many flow-control updates
	})
	t.Run("uni", func(t *testing.T) { uniEcho(t, s) })
	t.Run("datagram", func(t *testing.T) {
		if err := s.SendDatagram([]byte("dgram")); err != nil {
			t.Fatal(err)
		}
		b, err := s.ReceiveDatagram(ctx(t))
		if err != nil || string(b) != "dgram" {
			t.Fatalf("datagram %q, %v", b, err)
		}
	})
	if err := s.CloseWithError(0, "done"); err != nil {
		t.Errorf("close: %v", err)
	}
}

// writeCert writes a leaf certificate for names and its key as PEM files.
func writeCert(t *testing.T, ca *testkit.CA, names ...string) (certFile, keyFile string) {
	t.Helper()
	cert, err := ca.Certificate(names...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startNode starts server.mjs and returns its port. The server ends when
// its stdin closes, at the end of the test.
func startNode(t *testing.T, node, certFile, keyFile string) int {
	t.Helper()
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "WT_CERT="+certFile, "WT_KEY="+keyFile, "WT_WIRE=draft15")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("node server stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case line := <-lines:
		var v struct{ Port int }
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Port == 0 {
			t.Fatalf("node server said %q (%v); stderr:\n%s", line, err, stderr.String())
		}
		return v.Port
	case <-time.After(30 * time.Second):
		t.Fatalf("node server did not start; stderr:\n%s", stderr.String())
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
