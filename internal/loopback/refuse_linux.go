//go:build linux

package loopback

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Refuse binds a TCP socket to addr and never listens on it, so the kernel
// answers every SYN with a reset: a client's connect is refused at once, as
// on a host where nothing serves the port. Unlike simply leaving the port
// free, the port stays taken until Close, so no other server started
// meanwhile can answer there. The socket is bound to addr's family only
// (IPV6_V6ONLY).
func Refuse(addr string) (*Fault, error) {
	ap, err := parseLoopback(addr)
	if err != nil {
		return nil, err
	}
	fd, bound, err := bindOnly(ap)
	if err != nil {
		return nil, fmt.Errorf("dialertest: refuse %s: %w", addr, err)
	}
	f := &Fault{addr: net.TCPAddrFromAddrPort(bound)}
	f.stop = func() error {
		if err := unix.Close(fd); err != nil {
			return fmt.Errorf("dialertest: close refusing socket %s: %w", bound, err)
		}
		return nil
	}
	return f, nil
}

// bindOnly creates a TCP socket bound to ap that does not listen.
func bindOnly(ap netip.AddrPort) (fd int, bound netip.AddrPort, err error) {
	return bindTCP(ap, false)
}

// bindTCP creates a TCP socket bound to ap (IPv6 sockets IPv6 only), with
// SO_REUSEADDR when reuseAddr is set, and returns it with the address it
// is bound to.
func bindTCP(ap netip.AddrPort, reuseAddr bool) (fd int, bound netip.AddrPort, err error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, bound, fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
			fd = -1
		}
	}()
	if reuseAddr {
		if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fd, bound, fmt.Errorf("SO_REUSEADDR: %w", err)
		}
	}
	if family == unix.AF_INET6 {
		if err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fd, bound, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if err = unix.Bind(fd, sa); err != nil {
		return fd, bound, fmt.Errorf("bind: %w", err)
	}
	bound, err = sockname(fd)
	return fd, bound, err
}

// sockname returns the address a socket is bound to.
func sockname(fd int) (netip.AddrPort, error) {
	got, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", err)
	}
	switch got := got.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(got.Addr), uint16(got.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(got.Addr), uint16(got.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getsockname: unexpected %T", got)
}
