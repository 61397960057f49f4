package loopback

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Fault is a running fault injector bound to one loopback address. Close
// stops it and releases every socket and goroutine it holds.
type Fault struct {
	addr  net.Addr
	count atomic.Int64
	stop  func() error

	closeOnce sync.Once
	closeErr  error
}

// Addr returns the address the fault is bound to, with the real port when
// it was created on port 0.
func (f *Fault) Addr() net.Addr { return f.addr }

// Port returns the port the fault is bound to.
func (f *Fault) Port() int {
	switch a := f.addr.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	return 0
}

// Count reports what the fault has swallowed: connections accepted by
// TLSStall and Reset, datagrams received by UDPBlackhole. Blackhole always
// reports 0, since its whole point is that no connection arrives.
func (f *Fault) Count() int64 { return f.count.Load() }

// Close stops the fault. It is safe to call more than once.
func (f *Fault) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.stop() })
	return f.closeErr
}

// TLSStall listens for TCP on addr, accepts every connection and never
// writes to it, so a client's TLS handshake hangs until its own deadline.
// The connections stay open until Close.
func TLSStall(addr string) (*Fault, error) {
	return acceptFault(addr, "tls-stall", func(c net.Conn) (keep bool) { return true })
}

// Reset listens for TCP on addr and answers every connection with a TCP
// reset right after accepting it (SO_LINGER 0, then close). The client sees
// ECONNRESET from its first read or write, or already from connect when the
// reset lands before the connect is reported (Go checks SO_ERROR after the
// socket turns writable, and the kernel has stored the reset there).
func Reset(addr string) (*Fault, error) {
	return acceptFault(addr, "reset", func(c net.Conn) (keep bool) {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		return false
	})
}

// acceptFault runs an accept loop on addr and hands each connection to
// handle, which says whether the fault must keep it open until Close.
func acceptFault(addr, name string, handle func(net.Conn) (keep bool)) (*Fault, error) {
	ap, err := parseLoopback(addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen(network("tcp", ap), ap.String())
	if err != nil {
		return nil, fmt.Errorf("dialertest: %s listen %s: %w", name, addr, err)
	}
	f := &Fault{addr: l.Addr()}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by stop
			}
			f.count.Add(1)
			if handle(c) {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}
	}()
	f.stop = func() error {
		err := l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		return err
	}
	return f, nil
}

// UDPBlackhole opens a UDP socket on addr that reads and discards every
// datagram: a QUIC path where packets go out and nothing ever comes back.
func UDPBlackhole(addr string) (*Fault, error) {
	ap, err := parseLoopback(addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP(network("udp", ap), net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("dialertest: udp blackhole listen %s: %w", addr, err)
	}
	f := &Fault{addr: c.LocalAddr()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. an ICMP error reported on the socket
			}
			f.count.Add(1)
		}
	}()
	f.stop = func() error {
		err := c.Close()
		<-done
		return err
	}
	return f, nil
}
