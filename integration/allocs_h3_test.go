package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// allocsServerEnv makes TestH3AllocsServer the server process of
// TestH3ClientAllocs instead of skipping.
const allocsServerEnv = "DIALER_TEST_H3_ALLOCS_SERVER"

// allocsServer is what the server process tells its parent on one line of
// its standard output: where it serves, and the CA it serves under.
type allocsServer struct {
	H3, Raw string // UDP addresses: HTTP/3 WebSocket echo, QUIC stream echo
	CA      []byte // PEM
}

// http3DataFrameAllocs is what quic-go's HTTP/3 layer allocates for each
// DATA frame (RFC 9114 §7.2.1) it reads, v0.64.1's http3.(*frameParser)
// .ParseNext: a countingByteReader, a quicvarint byteReader, a one-byte
// buffer per ReadByte (the type, and the two bytes of a length above 63),
// and the dataFrame. It is quic-go's, paid on a request stream whatever
// reads it, and cannot be removed without forking quic-go.
const http3DataFrameAllocs = 6

// TestH3ClientAllocs counts what one message costs the client in
// allocations, over a WebSocket on HTTP/3 (h3Stream on an http3 request
// stream) beside a raw quic-go stream on a connection of its own: echo
// servers of both run in a child process, so that only the client's
// allocations are counted. Over HTTP/3, a message may cost what the raw
// stream does plus quic-go's DATA frame parsing, plus one allocation of
// slack for quic-go's packet handling, which varies from run to run: an
// allocation per Write or Read in the package's stream, or in
// coder/websocket's path with a context that is never done, fails it.
// Messages above one packet go through h3Stream's write-behind buffer
// (see h3Stream), and are held to the same bound.
func TestH3ClientAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random)")
	}
	srv := startAllocsServer(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CA) {
		t.Fatal("server process sent no CA certificate")
	}

	// The raw quic-go stream, with the dialer's QUIC configuration.
	rc, err := quic.DialAddr(ctx(t), srv.Raw, &tls.Config{RootCAs: pool, NextProtos: []string{"echo"}}, &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true, KeepAlivePeriod: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseWithError(0, "")
	rs, err := rc.OpenStreamSync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	dns := dnstest.Start(t)
	d := dialer.New(dialer.WithNameservers(dns.Addr()), dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(&tls.Config{RootCAs: pool}), dialer.WithProtocols("h3"))
	defer d.CloseIdleConnections()
	c, resp, err := d.DialWebSocket(ctx(t), "wss://"+srv.H3+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != 3 {
		t.Fatalf("WebSocket over HTTP/%d, want HTTP/3", resp.ProtoMajor)
	}
	c.SetReadLimit(-1)

	for _, size := range []int{64, 8 << 10} {
		msg := make([]byte, size)
		buf := make([]byte, size)
		var failed error
		raw := func() {
			if _, err := rs.Write(msg); err != nil {
				failed = err
			} else if _, err := io.ReadFull(rs, buf); err != nil {
				failed = err
			}
		}
		ws := func() {
			if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				failed = err
			} else if err := readMessage(context.Background(), c, buf); err != nil {
				failed = err
			}
		}
		// Warm both up (buffers grown, pools filled), then count.
		for range 100 {
			raw()
			ws()
		}
		rawAllocs := testing.AllocsPerRun(1000, raw)
		wsAllocs := testing.AllocsPerRun(1000, ws)
		if failed != nil {
			t.Fatal(failed)
		}
		// The server sends each message in one DATA frame of at most
		// 16 KiB (quic-go's http3 server writes what it is given as one
		// frame, and coder/websocket writes a small message whole).
		bound := rawAllocs + http3DataFrameAllocs + 1
		t.Logf("%d B message, client allocations: raw quic-go stream %.1f, WebSocket over HTTP/3 %.1f (bound %.1f)", size, rawAllocs, wsAllocs, bound)
		if wsAllocs > bound {
			t.Errorf("%d B message: WebSocket over HTTP/3 costs the client %.1f allocations, above the raw quic-go stream's %.1f plus %d for quic-go's DATA frame parsing and 1 of slack", size, wsAllocs, rawAllocs, http3DataFrameAllocs)
		}
	}
	closeConn(t, c)
}

// startAllocsServer runs TestH3AllocsServer in a child process and returns
// what it serves. The child ends when the test does: its standard input
// closes.
func startAllocsServer(t *testing.T) allocsServer {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestH3AllocsServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), allocsServerEnv+"=1")
	cmd.Stderr = os.Stderr
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
	done := make(chan error, 1)
	var srv allocsServer
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if err := json.Unmarshal(sc.Bytes(), &srv); err == nil && srv.H3 != "" {
				break
			}
		}
		if srv.H3 == "" {
			rerr = errNoServer
		}
		go io.Copy(io.Discard, stdout) // the rest of the child's output, until it exits
	})
	t.Cleanup(func() {
		stdin.Close()
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server process: %v", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("server process did not end within 20s of its standard input closing")
		}
	})
	wg.Wait()
	if rerr != nil {
		t.Fatal(rerr)
	}
	return srv
}

// errNoServer: the server process ended without saying where it serves.
var errNoServer = errorString("server process ended without its addresses")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestH3AllocsServer is the server process of TestH3ClientAllocs, and
// skips otherwise: an HTTP/3 WebSocket echo server (the loopback servers'
// EchoHandler on quic-go's http3.Server) and a QUIC stream echo server on
// 127.0.0.1, until its standard input closes.
func TestH3AllocsServer(t *testing.T) {
	if os.Getenv(allocsServerEnv) != "1" {
		t.Skip("the server process of TestH3ClientAllocs")
	}
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h3, err := testkit.StartH3(pc, conf.Clone(), testkit.EchoHandler())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	defer h3.Close()
	rawConf := conf.Clone()
	rawConf.NextProtos = []string{"echo"}
	l, err := quic.ListenAddr("127.0.0.1:0", rawConf, &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Go(func() {
		for {
			qc, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				defer qc.CloseWithError(0, "")
				s, err := qc.AcceptStream(context.Background())
				if err != nil {
					return
				}
				echoConn(s)
				s.Close()
			})
		}
	})
	line, err := json.Marshal(allocsServer{H3: h3.Addr().String(), Raw: l.Addr().String(), CA: ca.PEM()})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.Write(append(line, '\n'))
	io.Copy(io.Discard, os.Stdin)
}
