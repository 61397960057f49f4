package resolver

import (
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/loopback"
	"github.com/miekg/dns"
)

// TestDoTNagleServer: a server with Nagle's algorithm on (as unbound's DoT
// is) holds the second of two pipelined replies until the first is
// acknowledged; the client acknowledges at once, so the pair takes far
// less than the 40 ms delayed-ACK timer. Without quickAck the median
// pair took 44 ms.
func TestDoTNagleServer(t *testing.T) {
	ca, err := loopback.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("dot.test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		raw, err := l.Accept()
		if err != nil {
			return
		}
		raw.(*net.TCPConn).SetNoDelay(false)
		c := tls.Server(raw, conf)
		defer c.Close()
		for {
			var qs []*dns.Msg
			for range 2 {
				q, _, err := readQuery(c)
				if err != nil {
					return
				}
				qs = append(qs, q)
			}
			for _, q := range qs {
				if writeMsg(c, answerA(q)) != nil {
					return
				}
			}
		}
	})
	s := &dotServer{addr: l.Addr().String(), ca: ca}
	r, _ := s.resolver(t, 5*time.Second)
	var rounds []time.Duration
	for range 9 {
		start := time.Now()
		var wg sync.WaitGroup
		for _, typ := range []hev3.RecordType{hev3.A, hev3.AAAA} {
			wg.Go(func() {
				if ans := lookup(t, r, "a.test", typ); ans.Err != nil {
					t.Error(ans.Err)
				}
			})
		}
		wg.Wait()
		rounds = append(rounds, time.Since(start))
	}
	slices.Sort(rounds)
	if m := rounds[len(rounds)/2]; m > 20*time.Millisecond {
		t.Errorf("two pipelined queries took %v (median of %v), want well under the 40 ms delayed ACK", m, rounds)
	}
}
