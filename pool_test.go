package dialer

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/h2conn"
)

// TestPoolIdleBounded: however many origins and trusts a Dialer dials,
// at most maxIdleConns connections stay idle, the oldest closed first.
func TestPoolIdleBounded(t *testing.T) {
	var p pool
	var peers []net.Conn
	for i := range maxIdleConns + 20 {
		c, peer := net.Pipe()
		peers = append(peers, peer)
		p.put(poolKey{origin: fmt.Sprintf("o%d.test:443", i)}, &carrier{conn: c})
		time.Sleep(time.Microsecond) // distinct idle times on coarse clocks
	}
	defer p.closeIdle()
	n := 0
	for _, list := range p.conns {
		n += len(list)
	}
	if n != maxIdleConns {
		t.Errorf("%d idle connections kept, want %d", n, maxIdleConns)
	}
	for i, peer := range peers {
		peer.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := peer.Read(make([]byte, 1))
		closed := err != nil && !isTimeout(err)
		if want := i < 20; closed != want {
			t.Errorf("connection %d: closed %v, want %v (%v)", i, closed, want, err)
		}
		peer.Close()
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// idleCarrier puts an HTTP/2 connection in p, idle: the package's own
// client on one end of a pipe whose other end reads and discards. The
// channel returned is closed once the connection is.
func idleCarrier(t *testing.T, p *pool, origin string) (*pooled, <-chan struct{}) {
	t.Helper()
	c, peer := net.Pipe()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, peer)
		close(closed)
	}()
	t.Cleanup(func() { peer.Close(); <-closed })
	own, err := h2conn.NewClient(c, h2conn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	key := poolKey{origin: origin}
	p.put(key, &carrier{h2: &h2Conn{cc: own, own: own}})
	pc := p.conns[key][0]
	return pc, closed
}

// carries reports whether pc's connection is still pooled (not closed).
func carries(p *pool, pc *pooled) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !pc.closed && len(p.conns[pc.key]) == 1
}

// TestPoolIdleTimeout: a connection nothing uses is closed once it has
// been idle for the pool's idle time, counted from its last release, not
// from when its timer was armed.
func TestPoolIdleTimeout(t *testing.T) {
	// Long enough that a slow scheduler (-race, two cores) does not let
	// the timer armed at put fire during the sleep below.
	p := &pool{idle: time.Second}
	defer p.closeIdle()
	pc, closed := idleCarrier(t, p, "o.test:443")
	time.Sleep(p.idle * 6 / 10) // idle since put, not long enough
	if p.get(pc.key, func(*carrier) bool { return true }) != pc {
		t.Fatal("idle connection not handed out")
	}
	pc.release()
	released := time.Now()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed within 5 s")
	}
	if el := time.Since(released); el < p.idle {
		t.Errorf("closed %v after its last release, before its idle time %v", el, p.idle)
	}
	if carries(p, pc) || p.idleN != 0 {
		t.Errorf("closed connection still pooled (idle count %d)", p.idleN)
	}
}

// TestPoolIdleLateFire: an idle timer that fires while the connection is
// being reserved again (its callback waits for the pool's lock meanwhile)
// must not close it once it is idle anew: the new idle time counts.
func TestPoolIdleLateFire(t *testing.T) {
	p := &pool{idle: time.Hour}
	defer p.closeIdle()
	pc, _ := idleCarrier(t, p, "o.test:443")
	if p.get(pc.key, func(*carrier) bool { return true }) != pc {
		t.Fatal("idle connection not handed out")
	}
	pc.idleExpired() // fired for the first idle time, while reserved
	if !carries(p, pc) {
		t.Fatal("a reserved connection was closed by its idle timer")
	}
	pc.release()
	pc.idleExpired() // the same late callback, run after the release
	if !carries(p, pc) {
		t.Error("a connection idle for an instant was closed by the timer of its previous idle time")
	}
}

// TestPoolReuseAllocs: taking a pooled connection and releasing it, as
// each request on a warm connection does, allocates nothing (the idle
// timer is reset, not made anew).
func TestPoolReuseAllocs(t *testing.T) {
	p := &pool{}
	defer p.closeIdle()
	pc, _ := idleCarrier(t, p, "o.test:443")
	ok := func(*carrier) bool { return true }
	if n := testing.AllocsPerRun(100, func() {
		if p.get(pc.key, ok) != pc {
			t.Fatal("idle connection not handed out")
		}
		pc.release()
	}); n != 0 {
		t.Errorf("%v allocations per reuse, want 0", n)
	}
}
