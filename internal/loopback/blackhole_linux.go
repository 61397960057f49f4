package loopback

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// blackholeBacklog is the listen backlog of a blackhole. Linux drops a SYN
// when the accept queue holds more than backlog connections, so backlog 1
// is full with two. (Backlog 0 would also make the SYN queue count as full,
// and with net.ipv4.tcp_syncookies=0 even the filler connections would be
// dropped.)
const blackholeBacklog = 1

// fillTimeout bounds how long Blackhole waits for its filler connections.
const fillTimeout = 2 * time.Second

// Blackhole listens for TCP on addr and fills the accept queue with
// connections it never accepts, so the kernel silently drops every new SYN:
// a client's connect hangs until its own timeout, as if the path were
// blackholed, and is never refused. The socket is bound to addr's family
// only (IPV6_V6ONLY), so [::1]:P can be blackholed while a real server
// serves 127.0.0.1:P, and the other way round.
func Blackhole(addr string) (*Fault, error) {
	ap, err := parseLoopback(addr)
	if err != nil {
		return nil, err
	}
	fd, bound, err := listenBacklog(ap, blackholeBacklog)
	if err != nil {
		return nil, fmt.Errorf("dialertest: blackhole %s: %w", addr, err)
	}
	fillers, err := fillAcceptQueue(fd, bound)
	if err != nil {
		for _, c := range fillers {
			c.Close()
		}
		unix.Close(fd)
		return nil, fmt.Errorf("dialertest: blackhole %s: %w", addr, err)
	}
	f := &Fault{addr: net.TCPAddrFromAddrPort(bound)}
	f.stop = func() error {
		for _, c := range fillers {
			c.Close()
		}
		if err := unix.Close(fd); err != nil {
			return fmt.Errorf("dialertest: close blackhole %s: %w", bound, err)
		}
		return nil
	}
	return f, nil
}

// listenBacklog creates a TCP socket bound to ap and listening with the given
// backlog, which net.Listen does not let us choose (it uses somaxconn).
func listenBacklog(ap netip.AddrPort, backlog int) (fd int, bound netip.AddrPort, err error) {
	if fd, bound, err = bindTCP(ap, true); err != nil {
		return fd, bound, err
	}
	if err = unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, bound, fmt.Errorf("listen: %w", err)
	}
	return fd, bound, nil
}

// fillAcceptQueue connects to the listener on fd until its accept queue is
// full. It reads the queue from TCP_INFO, which for a listening socket
// reports the queue length in tcpi_unacked and the backlog in tcpi_sacked,
// and opens another filler only once every earlier one is queued: the final
// ACK of a loopback handshake may be processed just after connect returns.
func fillAcceptQueue(fd int, addr netip.AddrPort) ([]net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fillTimeout)
	defer cancel()
	var fillers []net.Conn
	for {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return fillers, fmt.Errorf("TCP_INFO: %w", err)
		}
		queued, backlog := int(info.Unacked), int(info.Sacked)
		if queued > backlog {
			return fillers, nil
		}
		if ctx.Err() != nil {
			return fillers, fmt.Errorf("accept queue holds %d of %d after %d connections: %w", queued, backlog+1, len(fillers), ctx.Err())
		}
		if queued < len(fillers) {
			time.Sleep(time.Millisecond)
			continue
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return fillers, fmt.Errorf("filler connection: %w", err)
		}
		fillers = append(fillers, c)
	}
}
