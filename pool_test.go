package dialer

import (
	"fmt"
	"net"
	"testing"
	"time"
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
