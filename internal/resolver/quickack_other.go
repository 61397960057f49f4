//go:build !linux

package resolver

import "net"

// quickAck returns c: TCP_QUICKACK is Linux's (see quickack_linux.go).
func quickAck(c net.Conn) net.Conn { return c }
