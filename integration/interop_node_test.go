package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
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
// node's own HTTP/2 stack, unmodified: server.mjs only uses the package's
// API. Its SETTINGS (extended CONNECT and 0x2b61-0x2b65, no
// SETTINGS_WT_ENABLED) make the client speak wt2.Draft13, the package's
// wire: odd client stream IDs, FIN on 0x190B4D3C, resets without Reliable
// Size, a bare WT-Protocol. Checked: bidirectional echoes (small, 256 KiB
// through many flow-control updates, 16 streams at once), unidirectional
// streams answered on server-opened ones, datagram echoes, and the same
// session from the natural race, where the QUIC attempt finds no server.
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
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/echo"

	d := dialer.New(dialer.WithTLSConfig(ca.ClientConfig()), dialer.WithHostsFile("-"), dialer.WithProtocols("h2"))
	t.Cleanup(d.CloseIdleConnections)
	start := time.Now()
	s, _ := dialWTOver(t, 2, d, url, dialer.WithSubprotocols("echo-v1", "other"))
	t.Logf("session over h2 ready after %v", time.Since(start))
	if s.Protocol() != "echo-v1" {
		t.Errorf("protocol %q, want echo-v1", s.Protocol())
	}
	t.Run("bidi", func(t *testing.T) {
		roundTrip(t, s, []byte("hello node"))
		roundTrip(t, s, bytes.Repeat([]byte("0123456789abcdef"), 16<<10)) // 256 KiB: many flow-control updates
	})
	t.Run("bidi concurrent", func(t *testing.T) {
		// Interleaved capsules of 16 streams, each through the server's
		// 16 KiB windows several times. (The package grants no stream
		// credit back for streams that end with FIN both ways: a session
		// to it opens 100 bidirectional streams at most, its SETTINGS'
		// 0x2b65.)
		errs := make(chan error, 16)
		for i := range 16 {
			go func() { errs <- streamEcho(ctx(t), s, bytes.Repeat([]byte{byte(i)}, 64<<10)) }()
		}
		for range 16 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("uni", func(t *testing.T) {
		uniEcho(t, s)
		uniEchoSize(t, s, 100<<10)
	})
	t.Run("datagram", func(t *testing.T) {
		for _, n := range []int{1, 1000, 16 << 10} { // the package sends none above 16 KiB (getMaxDatagramSize)
			msg := bytes.Repeat([]byte{byte(n)}, n)
			if err := s.SendDatagram(msg); err != nil {
				t.Fatal(err)
			}
			b, err := s.ReceiveDatagram(ctx(t))
			if err != nil || !bytes.Equal(b, msg) {
				t.Fatalf("datagram of %d bytes: got %d bytes, %v", n, len(b), err)
			}
		}
	})
	if err := s.CloseWithError(0, "done"); err != nil {
		t.Errorf("close: %v", err)
	}

	t.Run("round trips", func(t *testing.T) {
		// Through a proxy that delays every byte by 10 ms each way (and
		// simulates the TCP handshake): TCP, TLS 1.3, the server's
		// SETTINGS, which node sends once it has the client's Finished
		// and which the client waits for (-13 §3.1), and the extended
		// CONNECT: 4 round trips, as with net/http's server.
		const oneWay = 10 * time.Millisecond
		p, err := testkit.LatencyTCP("127.0.0.1:0", "127.0.0.1:"+strconv.Itoa(port), oneWay)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		d := dialer.New(dialer.WithTLSConfig(ca.ClientConfig()), dialer.WithHostsFile("-"), dialer.WithProtocols("h2"))
		defer d.CloseIdleConnections()
		var best time.Duration
		for range 5 {
			start := time.Now()
			s, _, err := d.DialWebTransport(ctx(t), "https://127.0.0.1:"+strconv.Itoa(p.Port())+"/echo")
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			s.CloseWithError(0, "")
			d.CloseIdleConnections()
			if best == 0 || took < best {
				best = took
			}
		}
		rtts := float64(best) / float64(2*oneWay)
		t.Logf("session ready after %.2f round trips (best of 5: %v)", rtts, best)
		if rtts < 4 || rtts > 5.5 {
			t.Errorf("%.2f round trips to a ready session, want 4 to 5.5", rtts)
		}
	})

	t.Run("natural race", func(t *testing.T) {
		// Nothing answers QUIC on the port: HTTP/2 wins the race.
		d := dialer.New(dialer.WithTLSConfig(ca.ClientConfig()), dialer.WithHostsFile("-"))
		t.Cleanup(d.CloseIdleConnections)
		start := time.Now()
		s, rep := dialWTOver(t, 2, d, url)
		t.Logf("session ready after %v\n%s", time.Since(start), rep)
		roundTrip(t, s, []byte("after the race"))
		uniEcho(t, s)
	})
}

// streamEcho is roundTrip for any goroutine: it returns what went wrong.
func streamEcho(ctx context.Context, s *dialer.Session, msg []byte) error {
	str, err := s.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	str.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		str.Write(msg)
		str.Close()
	}()
	got, err := io.ReadAll(str)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes: got %d bytes", len(msg), len(got))
	}
	return nil
}

// uniEchoSize sends n bytes on a unidirectional stream and reads the
// server's copy on the unidirectional stream it opens in answer.
func uniEchoSize(t *testing.T, s *dialer.Session, n int) {
	t.Helper()
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	out, err := s.OpenUniStreamSync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out.SetWriteDeadline(time.Now().Add(10 * time.Second))
	go func() {
		out.Write(msg)
		out.Close()
	}()
	in, err := s.AcceptUniStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	in.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(in); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("uni echo of %d bytes: got %d bytes, %v", n, len(got), err)
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
	cmd.Env = append(os.Environ(), "WT_CERT="+certFile, "WT_KEY="+keyFile)
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
