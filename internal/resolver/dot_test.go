package resolver

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/loopback"
	"github.com/miekg/dns"
)

// answerA answers q with one A record, 192.0.2.1, for its name.
func answerA(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	if q.Question[0].Qtype == dns.TypeA {
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
		r.Answer = append(r.Answer, rr)
	}
	return r
}

// dotServer is a DoT server on 127.0.0.1 whose handle runs once per
// connection, with the TLS connection; conns counts them.
type dotServer struct {
	addr  string
	conns atomic.Int32
	ca    *loopback.CA
}

func startDoT(t *testing.T, handle func(c net.Conn)) *dotServer {
	t.Helper()
	ca, err := loopback.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return startDoTCA(t, ca, handle)
}

func startDoTCA(t *testing.T, ca *loopback.CA, handle func(c net.Conn)) *dotServer {
	t.Helper()
	conf, err := ca.ServerConfig("dot.test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	s := &dotServer{addr: l.Addr().String(), ca: ca}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// config is a DoT client configuration for s that trusts s's CA.
func (s *dotServer) config() DoTConfig {
	conf := s.ca.ClientConfig()
	conf.ServerName = "dot.test"
	return DoTConfig{
		Name: "dot.test:" + s.addr,
		Dial: func(ctx context.Context) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "tcp", s.addr)
		},
		TLS: conf,
	}
}

// resolver returns a DoT client for s that trusts s's CA, and a resolver
// asking only it; both are closed when the test ends.
func (s *dotServer) resolver(t *testing.T, timeout time.Duration) (*Resolver, *DoT) {
	t.Helper()
	d := NewDoT(s.config())
	r := newResolver(t, Config{Upstreams: []Server{d}, Timeout: timeout, MaxCacheEntries: -1})
	t.Cleanup(r.CloseIdle)
	return r, d
}

// readQuery reads one framed query.
func readQuery(c net.Conn) (*dns.Msg, int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, 0, err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, 0, err
	}
	m := new(dns.Msg)
	return m, len(b), m.Unpack(b)
}

func writeMsg(c net.Conn, m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	return writeFrame(c, b)
}

func writeFrame(c net.Conn, b []byte) error {
	f := binary.BigEndian.AppendUint16(nil, uint16(len(b)))
	_, err := c.Write(append(f, b...))
	return err
}

// serveDNS answers every query on c with answerA, as a well-behaved server.
func serveDNS(c net.Conn) {
	for {
		q, _, err := readQuery(c)
		if err != nil {
			return
		}
		if writeMsg(c, answerA(q)) != nil {
			return
		}
	}
}

// TestDoTPipelined sends several queries at once: they share one
// connection, carry distinct IDs, are padded to 128-octet blocks, and
// their replies, sent in reverse order, reach the right queries.
func TestDoTPipelined(t *testing.T) {
	const n = 8
	var sizes []int
	s := startDoT(t, func(c net.Conn) {
		var qs []*dns.Msg
		ids := map[uint16]bool{}
		for range n {
			q, size, err := readQuery(c)
			if err != nil {
				return
			}
			sizes = append(sizes, size)
			ids[q.Id] = true
			qs = append(qs, q)
		}
		if len(ids) != n {
			t.Errorf("%d distinct IDs among %d pipelined queries", len(ids), n)
		}
		for i := len(qs) - 1; i >= 0; i-- {
			writeMsg(c, answerA(qs[i]))
		}
		serveDNS(c)
	})
	r, _ := s.resolver(t, 5*time.Second)
	var wg sync.WaitGroup
	names := []string{"a.test", "bb.test", "ccc.test", "dddd.test", "e.test", "ff.test", "g.test", "hh.test"}
	answers := make([]hev3.Answer, n)
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = lookup(t, r, name, hev3.A)
		}()
	}
	wg.Wait()
	for i, ans := range answers {
		if ans.Err != nil || len(ans.Addrs) != 1 {
			t.Errorf("%s: %+v", names[i], ans)
		}
	}
	// Once more, on the same connection.
	wantAddrs(t, lookup(t, r, "again.test", hev3.A), "192.0.2.1")
	if got := s.conns.Load(); got != 1 {
		t.Errorf("%d connections, want 1 (reused)", got)
	}
	for _, size := range sizes {
		if size%paddingBlock != 0 {
			t.Errorf("query of %d octets, not padded to %d-octet blocks (RFC 8467)", size, paddingBlock)
		}
	}
}

// TestDoTHostile: replies a server must not send end the connection at
// once with ErrMalformed, long before the timeout; no fallback.
func TestDoTHostile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(c net.Conn, q *dns.Msg)
	}{
		{"wrong ID", func(c net.Conn, q *dns.Msg) {
			r := answerA(q)
			r.Id++
			writeMsg(c, r)
		}},
		{"length beyond the data", func(c net.Conn, q *dns.Msg) {
			b, _ := answerA(q).Pack()
			f := binary.BigEndian.AppendUint16(nil, 65535)
			c.Write(append(f, b...))
		}},
		{"length shorter than a header", func(c net.Conn, q *dns.Msg) {
			writeFrame(c, []byte{byte(q.Id >> 8), byte(q.Id), 0x80})
		}},
		{"other question", func(c net.Conn, q *dns.Msg) {
			q.Question[0].Name = "other.test."
			writeMsg(c, answerA(q))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startDoT(t, func(c net.Conn) {
				q, _, err := readQuery(c)
				if err != nil {
					return
				}
				tc.reply(c, q)
				if tc.name == "length beyond the data" {
					c.Close()
				}
				io.Copy(io.Discard, c)
			})
			r, _ := s.resolver(t, 5*time.Second)
			start := time.Now()
			ans := lookup(t, r, "a.test", hev3.A)
			if !errors.Is(ans.Err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", ans.Err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v: the reply should fail at once", d)
			}
		})
	}
}

// TestDoTSlowServer: a server that never answers times the query out
// after the Resolver's timeout, and the next query gets a new connection.
func TestDoTSlowServer(t *testing.T) {
	s := startDoT(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	r, _ := s.resolver(t, 200*time.Millisecond)
	start := time.Now()
	ans := lookup(t, r, "a.test", hev3.A)
	if !errors.Is(ans.Err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", ans.Err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v, want about the 200ms timeout", d)
	}
	lookup(t, r, "b.test", hev3.A)
	if got := s.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2: a connection whose query timed out is not reused", got)
	}
}

// TestDoTServerClosed: a server that closes a connection after serving a
// query (as servers do with idle ones) costs the next query nothing but a
// new connection.
func TestDoTServerClosed(t *testing.T) {
	s := startDoT(t, func(c net.Conn) {
		q, _, err := readQuery(c)
		if err != nil {
			return
		}
		writeMsg(c, answerA(q))
		time.Sleep(50 * time.Millisecond)
	})
	r, _ := s.resolver(t, 5*time.Second)
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	time.Sleep(200 * time.Millisecond)
	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.1")
	if got := s.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2", got)
	}
}

// TestDoTUntrusted: a server whose certificate comes from a CA the client
// does not trust is refused, with the verification error.
func TestDoTUntrusted(t *testing.T) {
	other, err := loopback.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	s := startDoTCA(t, other, serveDNS)
	mine, err := loopback.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	s.ca = mine
	r, _ := s.resolver(t, 5*time.Second)
	ans := lookup(t, r, "a.test", hev3.A)
	var verr *tls.CertificateVerificationError
	if !errors.As(ans.Err, &verr) {
		t.Fatalf("error %v, want a certificate verification error", ans.Err)
	}
}

// TestDoTIdleClose: the connection closes after its idle time, and
// CloseIdle closes it at once.
func TestDoTIdleClose(t *testing.T) {
	closed := make(chan struct{}, 2)
	s := startDoT(t, func(c net.Conn) {
		serveDNS(c)
		closed <- struct{}{}
	})
	dc := s.config()
	dc.Idle = 100 * time.Millisecond
	d := NewDoT(dc)
	r := newResolver(t, Config{Upstreams: []Server{d}, MaxCacheEntries: -1})
	defer r.CloseIdle()
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection still open after 5s")
	}
	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.1")
	r.CloseIdle()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseIdle left the connection open")
	}
}

// TestDoTAbandoned: a query whose caller gives up keeps its ID reserved;
// its late reply is dropped and the connection serves the next query.
func TestDoTAbandoned(t *testing.T) {
	s := startDoT(t, func(c net.Conn) {
		q, _, err := readQuery(c)
		if err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
		writeMsg(c, answerA(q))
		serveDNS(c)
	})
	r, _ := s.resolver(t, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if ans := r.Lookup(ctx, "slow.test", hev3.A); !errors.Is(ans.Err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", ans.Err)
	}
	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.1")
	if got := s.conns.Load(); got != 1 {
		t.Errorf("%d connections, want 1: a late reply to an abandoned query is not hostile", got)
	}
}

// TestUpstreamsIgnoreResolvConf: a resolver with only encrypted servers
// takes no search list or options from resolv.conf, which would send
// internal short names ("intranet" → "intranet.corp.example") to them.
func TestUpstreamsIgnoreResolvConf(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(path, []byte("nameserver 192.0.2.53\nsearch corp.example\noptions ndots:5 timeout:9 single-request\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDoT(DoTConfig{
		Name: "dns.test:853",
		Dial: func(context.Context) (net.Conn, error) { return nil, errors.New("not dialed") },
		TLS:  &tls.Config{ServerName: "dns.test"},
	})
	r, err := New(Config{Upstreams: []Server{d}, ResolvConf: path, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if r.search != nil || r.ndots != 1 || r.timeout != DefaultTimeout || r.single != nil {
		t.Errorf("search %v, ndots %d, timeout %v, single-request %v: want none of resolv.conf", r.search, r.ndots, r.timeout, r.single != nil)
	}
}

// TestDoTDroppedQueries: queries whose callers gave up and that the server
// never answers cannot hold every slot of the connection for good: after
// abandonedFor the connection fails, the query waiting for a slot returns,
// and the next one is answered on a new connection.
func TestDoTDroppedQueries(t *testing.T) {
	s := startDoT(t, func(c net.Conn) {
		for {
			q, _, err := readQuery(c)
			if err != nil {
				return
			}
			if q.Question[0].Name == "drop.test." {
				continue // never answered
			}
			if writeMsg(c, answerA(q)) != nil {
				return
			}
		}
	})
	dc := s.config()
	dc.MaxInFlight = 2
	d := NewDoT(dc)
	r := newResolver(t, Config{Upstreams: []Server{d}, Timeout: time.Minute, MaxCacheEntries: -1})
	t.Cleanup(r.CloseIdle)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		ctx, cancelNow := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancelNow)
		r.Lookup(ctx, "drop.test", hev3.A)
		cancel()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Lookup(ctx, "waits.test", hev3.A) // answered, or failed with the connection
	if took := time.Since(start); took > abandonedFor+5*time.Second {
		t.Fatalf("a query waited %v behind abandoned ones", took)
	}
	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.1")
	if got := s.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2: the jammed one, then a new one", got)
	}
}
