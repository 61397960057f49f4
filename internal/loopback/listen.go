package loopback

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// pairAttempts bounds how often ListenPair and ListenUDPPair pick a new port
// when the IPv6 side of the one the kernel chose is already taken.
const pairAttempts = 20

// ListenPair listens for TCP on 127.0.0.1:P and [::1]:P with the same port P,
// so that one origin can be served, or broken, per address family.
func ListenPair() (v4, v6 net.Listener, port int, err error) {
	err = listenPair(func(network, addr string) (io.Closer, error) {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		if network == "tcp4" {
			v4 = l
		} else {
			v6 = l
		}
		return l, nil
	}, "tcp", &port)
	if err != nil {
		return nil, nil, 0, err
	}
	return v4, v6, port, nil
}

// ListenUDPPair is ListenPair for UDP, for QUIC servers: it opens UDP sockets
// on 127.0.0.1:P and [::1]:P with the same port P.
func ListenUDPPair() (v4, v6 *net.UDPConn, port int, err error) {
	err = listenPair(func(network, addr string) (io.Closer, error) {
		ua, err := net.ResolveUDPAddr(network, addr) // IP literal only: no lookup
		if err != nil {
			return nil, err
		}
		c, err := net.ListenUDP(network, ua)
		if err != nil {
			return nil, err
		}
		if network == "udp4" {
			v4 = c
		} else {
			v6 = c
		}
		return c, nil
	}, "udp", &port)
	if err != nil {
		return nil, nil, 0, err
	}
	return v4, v6, port, nil
}

// listenPair binds 127.0.0.1:0, then [::1] on the same port, retrying with a
// new port while the IPv6 side is in use.
func listenPair(listen func(network, addr string) (io.Closer, error), proto string, port *int) error {
	var lastErr error
	for range pairAttempts {
		c4, err := listen(proto+"4", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("dialertest: listen %s 127.0.0.1: %w", proto, err)
		}
		p, err := portOf(c4)
		if err != nil {
			c4.Close()
			return err
		}
		_, err = listen(proto+"6", net.JoinHostPort("::1", strconv.Itoa(p)))
		if err == nil {
			*port = p
			return nil
		}
		c4.Close()
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("dialertest: listen %s [::1]:%d: %w", proto, p, err)
		}
		lastErr = err
	}
	return fmt.Errorf("dialertest: no %s port free on both 127.0.0.1 and [::1] after %d attempts: %w", proto, pairAttempts, lastErr)
}

func portOf(c io.Closer) (int, error) {
	var a net.Addr
	switch c := c.(type) {
	case net.Listener:
		a = c.Addr()
	case net.PacketConn:
		a = c.LocalAddr()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return 0, fmt.Errorf("dialertest: port of %v: %w", a, err)
	}
	return int(ap.Port()), nil
}

// parseLoopback parses an "ip:port" literal and refuses anything that is not
// a loopback address, so a fault can never end up listening elsewhere.
func parseLoopback(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dialertest: address %q must be an IP literal and port: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("dialertest: address %q is not loopback", addr)
	}
	return ap, nil
}

// network returns "tcp4" or "tcp6" (or the udp pair) for ap's family, so the
// socket is bound to exactly that family.
func network(proto string, ap netip.AddrPort) string {
	if ap.Addr().Is4() {
		return proto + "4"
	}
	return proto + "6"
}
