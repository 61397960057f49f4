package dialer

import (
	"crypto/tls"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/testkit"
)

// tlsPeers are a server with a certificate of a test CA for "a.test" and
// a client trusting that CA.
type tlsPeers struct {
	server, client *tls.Config
}

func newTLSPeers(t testing.TB) *tlsPeers {
	t.Helper()
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	sconf, err := ca.ServerConfig("a.test")
	if err != nil {
		t.Fatal(err)
	}
	return &tlsPeers{server: sconf, client: ca.ClientConfig()}
}

// handshake runs one TLS handshake of the given version over a pipe
// between p's peers, with cache as the client's session cache, and reads
// a byte so that the server's tickets have arrived. It reports whether the
// handshake resumed.
func handshake(t testing.TB, p *tlsPeers, version uint16, cache tls.ClientSessionCache) bool {
	t.Helper()
	sconf := p.server.Clone()
	sconf.MaxVersion = version
	sconf.SessionTicketKey = [32]byte{1} // the same keys for every handshake of the test
	cconf := p.client.Clone()
	cconf.ServerName, cconf.MaxVersion, cconf.ClientSessionCache = "a.test", version, cache
	cp, sp := net.Pipe()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sp, sconf)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		done <- err
	}()
	// The pipe's ends are closed without TLS close_notify alerts, which a
	// pipe would block on.
	defer sp.Close()
	defer cp.Close()
	c := tls.Client(cp, cconf)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

// TestSessionCacheSingleUse: like Chromium's and Firefox's, the cache
// hands out a TLS 1.3 session once (RFC 8446 §C.4) and the resumed
// connection's new ticket serves the next; a TLS 1.2 session is reused
// until replaced.
func TestSessionCacheSingleUse(t *testing.T) {
	ca := newTLSPeers(t)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			var c sessionCaches
			s := c.get(poolKey{origin: "a.test:443"})
			for i, want := range []bool{false, true, true} {
				if got := handshake(t, ca, v, &s.tcp); got != want {
					t.Fatalf("handshake %d resumed %v, want %v", i, got, want)
				}
			}
			if _, ok := s.tcp.Get("a.test"); !ok {
				t.Fatal("no session after a resumed handshake")
			}
			_, again := s.tcp.Get("a.test")
			if single := v == tls.VersionTLS13; again == single {
				t.Errorf("second Get found a session: %v; want %v", again, !single)
			}
			if _, ok := s.quic.Get("a.test"); ok {
				t.Error("the QUIC cache holds a TCP+TLS session")
			}
			if _, bytes := c.len(); v == tls.VersionTLS13 && bytes != 0 {
				t.Errorf("%d bytes counted with no session kept", bytes)
			}
		})
	}
}

// TestSessionCacheBounds: what a Dialer keeps is bounded in sessions per
// partition, in partitions, in the size of one session and in bytes.
func TestSessionCacheBounds(t *testing.T) {
	ca := newTLSPeers(t)
	// Real sessions: one from a handshake, then copies with tickets of the
	// sizes a hostile server may send (RFC 8446 §4.6.1: up to 2^16-1).
	var src sessionCaches
	s := src.get(poolKey{origin: "a.test:443"})
	handshake(t, ca, tls.VersionTLS13, &s.tcp)
	cs, ok := s.tcp.Get("a.test")
	if !ok {
		t.Fatal("no session")
	}
	_, state, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	withTicket := func(n int) *tls.ClientSessionState {
		cs, err := tls.NewResumptionState(make([]byte, n), state)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	var c sessionCaches
	p := c.get(poolKey{origin: "a.test:443"})
	for range maxSessionsPerCache + 3 {
		p.tcp.Put("a.test", withTicket(100))
	}
	if n := len(p.tcp.kept); n != maxSessionsPerCache {
		t.Errorf("%d sessions kept for one key, want %d", n, maxSessionsPerCache)
	}
	p.tcp.Put("a.test", nil)
	if _, ok := p.tcp.Get("a.test"); ok {
		t.Error("Put(nil) left a session")
	}
	p.tcp.Put("a.test", withTicket(maxSessionSize))
	if _, ok := p.tcp.Get("a.test"); ok {
		t.Errorf("a session with a %d-byte ticket was kept", maxSessionSize)
	}

	// Partitions: the least recently used goes first.
	for i := range maxSessionPartitions + 10 {
		c.get(poolKey{origin: "h" + strconv.Itoa(i) + ":443"}).quic.Put("k", withTicket(100))
	}
	if parts, _ := c.len(); parts != maxSessionPartitions {
		t.Errorf("%d partitions, want %d", parts, maxSessionPartitions)
	}
	if _, ok := c.parts[poolKey{origin: "h0:443"}]; ok {
		t.Error("the least recently used partition was kept")
	}

	// Bytes: large sessions drop whole partitions past maxSessionBytes.
	big := maxSessionSize - 4<<10
	for i := range 2 * maxSessionBytes / big {
		c.get(poolKey{origin: "big" + strconv.Itoa(i) + ":443"}).tcp.Put("k", withTicket(big))
	}
	if _, bytes := c.len(); bytes > maxSessionBytes || bytes < maxSessionBytes/2 {
		t.Errorf("%d bytes kept, want at most %d (and not far below)", bytes, maxSessionBytes)
	}
	// A session put into a partition dropped meanwhile is not kept.
	gone := c.get(poolKey{origin: "gone:443"})
	c.mu.Lock()
	c.dropLocked(gone)
	c.mu.Unlock()
	gone.tcp.Put("k", withTicket(100))
	if len(gone.tcp.kept) != 0 {
		t.Error("a dropped partition kept a session")
	}
}

// BenchmarkResumeHandshake compares, in one loop, a full TLS 1.3 handshake
// (client and server, over a pipe, with the test CA's ECDSA P-256
// certificate) against one resumed from a sessionCache, and reports the
// CPU time of each (client and server: the process's) and their ratio.
func BenchmarkResumeHandshake(b *testing.B) {
	ca := newTLSPeers(b)
	var c sessionCaches
	s := c.get(poolKey{origin: "a.test:443"})
	handshake(b, ca, tls.VersionTLS13, &s.tcp)
	var full, resumed time.Duration
	for b.Loop() {
		t0 := processCPU(b)
		if handshake(b, ca, tls.VersionTLS13, nil) {
			b.Fatal("resumed without a cache")
		}
		t1 := processCPU(b)
		if !handshake(b, ca, tls.VersionTLS13, &s.tcp) {
			b.Fatal("did not resume")
		}
		full += t1 - t0
		resumed += processCPU(b) - t1
	}
	b.ReportMetric(float64(full.Microseconds())/float64(b.N), "full-cpu-µs/op")
	b.ReportMetric(float64(resumed.Microseconds())/float64(b.N), "resumed-cpu-µs/op")
	b.ReportMetric(float64(resumed)/float64(full), "resumed/full")
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
