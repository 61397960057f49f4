package wt2

import (
	"io"
	"net/http"
	"runtime"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/eyeballs/dialer/internal/h2conn"
)

// h2Pair runs a client and a server Session on an extended CONNECT stream
// between our HTTP/2 client and server on loopback TCP, as the dialer and
// its test server do: both parse capsules in push mode.
func h2Pair(t *testing.T, cfg Config) (client, server *Session) {
	t.Helper()
	cc, sc := tcpPair(t)
	ctx := testCtx(t)
	type res struct {
		st  *h2conn.Stream
		err error
	}
	accepted := make(chan res, 1)
	servers := make(chan *h2conn.Conn, 1)
	go func() {
		// NewServer waits for the client's preface.
		sconn, err := h2conn.NewServer(ctx, sc, h2conn.Config{Settings: ServerSettings(&cfg)})
		if err != nil {
			sc.Close()
			accepted <- res{nil, err}
			return
		}
		servers <- sconn
		st, err := sconn.AcceptStream(ctx)
		if err == nil {
			_, err = st.Header(ctx)
		}
		if err == nil {
			err = st.WriteHeader([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
		}
		accepted <- res{st, err}
	}()
	cconn, err := h2conn.NewClient(cc, h2conn.Config{Settings: ClientSettings(&cfg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cconn.Close() })
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect, "https://127.0.0.1/wt", nil)
	req.Header.Set(":protocol", "webtransport")
	resp, cst, err := cconn.Connect(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v, %v", resp, err)
	}
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	sconn := <-servers
	t.Cleanup(func() { sconn.Close() })
	sp, err := cconn.PeerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := sconn.PeerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client = NewSession(cst, true, cfg, sp)
	server = NewSession(r.st, false, cfg, cp)
	t.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
	})
	return client, server
}

// A 64-byte round trip on a stream over HTTP/2, client and server in this
// process, allocates little: no buffer per capsule received or sent, no
// capsule parser state, no goroutine woken for nothing. (20 allocations
// before the receive chunks, the push parser and the quiet direct write;
// 2 with them: the channels of the two Reads' waits.)
func TestPingAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates")
	}
	client, server := h2Pair(t, Config{})
	ctx := testCtx(t)
	go func() {
		str, err := server.AcceptStream(ctx)
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(str, buf); err != nil {
				return
			}
			if _, err := str.Write(buf); err != nil {
				return
			}
		}
	}()
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg, buf := make([]byte, 64), make([]byte, 64)
	ping := func() {
		if _, err := str.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(str, buf); err != nil {
			t.Fatal(err)
		}
	}
	ping() // the server accepts the stream
	allocs := testing.AllocsPerRun(2000, ping)
	t.Logf("%.2f allocations per round trip", allocs)
	if allocs > 3 {
		t.Errorf("%.2f allocations per 64-byte round trip, want at most 3", allocs)
	}
	str.CancelWrite(0)
}

// Echoing 1 MiB on a stream over HTTP/2, client and server in this process,
// allocates little memory: received data goes into pooled chunks, not a
// fresh buffer per capsule (2.3 MB per MiB before them, 14 to 30 KB now).
func TestEchoAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates")
	}
	client, server := h2Pair(t, Config{})
	ctx := testCtx(t)
	go func() {
		str, err := server.AcceptStream(ctx)
		if err != nil {
			return
		}
		io.Copy(&str.SendStream, &str.ReceiveStream)
	}()
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer str.CancelWrite(0)
	const size, piece = 1 << 20, 32 << 10
	chunk, buf := make([]byte, piece), make([]byte, size)
	echo := func() {
		errc := make(chan error, 1)
		go func() {
			for range size / piece {
				if _, err := str.Write(chunk); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		if _, err := io.ReadFull(str, buf); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	echo() // warm the pools
	const rounds = 8
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		echo()
	}
	runtime.ReadMemStats(&after)
	perMiB := (after.TotalAlloc - before.TotalAlloc) / rounds
	t.Logf("%d bytes allocated per MiB echoed", perMiB)
	if perMiB > 256<<10 {
		t.Errorf("%d bytes allocated per MiB echoed, want at most %d", perMiB, 256<<10)
	}
}
