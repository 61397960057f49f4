package interop

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/testkit"
)

// zeroRTTAgain fetches a document over HTTP/3 from the server on UDP
// 127.0.0.1:port, through a latency proxy (10 ms round trips: the dialer
// takes no 0-RTT on loopback's), three times, each on a new connection
// once the server's ticket had time to arrive: the second and third dials
// resume with 0-RTT on the remembered SETTINGS, and every answer must be
// the document. It returns what each race's report says the server did
// with the early request ("" for the first, which had no ticket).
func zeroRTTAgain(t *testing.T, w *world, host string, port int) []string {
	t.Helper()
	doc := bytes.Repeat([]byte("0-RTT "), 100)
	w.write(filepath.Join(w.dir, "htdocs", "zerortt.txt"), doc)
	p, err := testkit.LatencyUDP("127.0.0.1:0", "127.0.0.1:"+itoa(port), 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var mu sync.Mutex
	var last *dialer.Report
	tr := w.transport(dialer.WithProtocols("h3"), dialer.WithIPv4Only(),
		dialer.WithReport(func(r *dialer.Report) { mu.Lock(); last = r; mu.Unlock() }))
	client := &http.Client{Transport: tr}
	var early []string
	for i := range 3 {
		resp, body := fetch(t, client, "https://"+host+":"+itoa(p.Port())+"/zerortt.txt")
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || !bytes.Equal(body, doc) {
			t.Fatalf("GET %d: %s over HTTP/%d, %d bytes", i, resp.Status, resp.ProtoMajor, len(body))
		}
		mu.Lock()
		rep := last
		mu.Unlock()
		if rep == nil || rep.Winner < 0 {
			t.Fatalf("GET %d: no race report", i)
		}
		early = append(early, rep.Attempts[rep.Winner].EarlyData)
		time.Sleep(200 * time.Millisecond) // the ticket, sent after the handshake
		tr.CloseIdleConnections()
	}
	t.Logf("EarlyData of the three dials: %q", early)
	return early
}

// TestNgtcp2ZeroRTT: the ngtcp2 example server (GnuTLS) rejects the
// dialer's 0-RTT; every answer is still the document, sent again after the
// handshake.
func TestNgtcp2ZeroRTT(t *testing.T) {
	r := need(t, ngtcp2, "Transport GET again, in 0-RTT")
	w := newWorld(t)
	host, port := startNgtcp2(t, w, r)
	early := zeroRTTAgain(t, w, host, port)
	if early[0] != "" || early[1] == "" || early[2] == "" {
		t.Errorf("EarlyData %q: want none on the first dial, then 0-RTT tried", early)
	}
	r.proto = "h3, 0-RTT " + early[1]
}

// TestCaddyZeroRTT: Caddy (quic-go's HTTP/3 server) accepts the dialer's
// 0-RTT: the second and third GETs go in the first flight.
func TestCaddyZeroRTT(t *testing.T) {
	r := need(t, caddy, "Transport GET again, in 0-RTT")
	w := newWorld(t)
	c := startCaddy(t, w, r)
	early := zeroRTTAgain(t, w, c.host, c.port)
	if want := []string{"", "accepted", "accepted"}; !slices.Equal(early, want) {
		t.Errorf("EarlyData %q, want %q", early, want)
	}
	r.proto = "h3, 0-RTT " + early[1]
}
