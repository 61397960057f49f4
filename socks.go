package dialer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// SOCKS version 5 (RFC 1928) and its user name and password
// authentication (RFC 1929): the constants of the client below.
const (
	socksVersion    = 5    // RFC 1928 §3: VER
	socksNoAuth     = 0x00 // RFC 1928 §3: NO AUTHENTICATION REQUIRED
	socksUserPass   = 0x02 // RFC 1928 §3: USERNAME/PASSWORD
	socksNoMethod   = 0xff // RFC 1928 §3: NO ACCEPTABLE METHODS
	socksAuthVer    = 1    // RFC 1929 §2: the subnegotiation's VER
	socksCmdConnect = 1    // RFC 1928 §4: CMD CONNECT
	socksATypIPv4   = 1    // RFC 1928 §5: ATYP IP V4 address
	socksATypName   = 3    // RFC 1928 §5: ATYP DOMAINNAME
	socksATypIPv6   = 4    // RFC 1928 §5: ATYP IP V6 address
)

// socksReplies names the REP codes of RFC 1928 §6.
var socksReplies = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// socksConnect asks the SOCKS5 proxy on c for a TCP connection to the
// hop's target (RFC 1928): it offers no authentication, and user name and
// password (RFC 1929) too when the proxy URL has user info, then sends
// CONNECT with the target's name (socks5h://, and socks5:// when addrs is
// empty) or its first address in addrs (socks5://, resolved here as curl
// does). Every reply is read in fields of known length: a hostile proxy
// can make it read at most 2 + 2 + 4+255+2 bytes. c's deadline bounds the
// exchange (see tunnel).
func socksConnect(c net.Conn, hop *proxyHop, addrs []netip.Addr) error {
	fail := func(err error) error { return hop.errf("SOCKS5", 0, err) }
	// With credentials, both methods are offered and the proxy picks, as
	// curl does.
	methods := []byte{socksNoAuth}
	if hop.u.User != nil {
		methods = append(methods, socksUserPass)
	}
	// RFC 1928 §3: VER, NMETHODS, METHODS.
	hello := append([]byte{socksVersion, byte(len(methods))}, methods...)
	if _, err := c.Write(hello); err != nil {
		return fail(err)
	}
	var b [2]byte
	if err := readFull(c, b[:]); err != nil {
		return fail(fmt.Errorf("method selection: %w", err))
	}
	switch {
	case b[0] != socksVersion:
		return fail(fmt.Errorf("method selection: version %d, not 5: not a SOCKS5 proxy", b[0]))
	case b[1] == socksNoMethod:
		if hop.u.User == nil {
			return fail(errors.New("the proxy accepts none of the offered methods: it wants credentials (none in the proxy URL)"))
		}
		return fail(errors.New("the proxy accepts none of the offered methods (user name and password)"))
	case b[1] != socksNoAuth && (b[1] != socksUserPass || hop.u.User == nil):
		return fail(fmt.Errorf("the proxy chose method %#x, which was not offered", b[1]))
	}
	if b[1] == socksUserPass {
		if err := socksAuth(c, hop); err != nil {
			return fail(err)
		}
	}
	// RFC 1928 §4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
	req := []byte{socksVersion, socksCmdConnect, 0}
	switch {
	case len(addrs) > 0 && addrs[0].Is4():
		a := addrs[0].As4()
		req = append(append(req, socksATypIPv4), a[:]...)
	case len(addrs) > 0:
		a := addrs[0].As16()
		req = append(append(req, socksATypIPv6), a[:]...)
	case hop.targetLiteral().Is4():
		a := hop.targetLiteral().As4()
		req = append(append(req, socksATypIPv4), a[:]...)
	case hop.targetLiteral().IsValid():
		a := hop.targetLiteral().As16()
		req = append(append(req, socksATypIPv6), a[:]...)
	default:
		if len(hop.targetHost) > 255 {
			return fail(fmt.Errorf("host name %q longer than 255 bytes", hop.targetHost))
		}
		req = append(append(req, socksATypName, byte(len(hop.targetHost))), hop.targetHost...)
	}
	req = append(req, byte(hop.targetPort>>8), byte(hop.targetPort))
	if _, err := c.Write(req); err != nil {
		return fail(err)
	}
	// RFC 1928 §6: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT.
	var head [4]byte
	if err := readFull(c, head[:]); err != nil {
		return fail(fmt.Errorf("CONNECT reply: %w", err))
	}
	if head[0] != socksVersion {
		return fail(fmt.Errorf("CONNECT reply: version %d, not 5", head[0]))
	}
	if rep := head[1]; rep != 0 {
		why := "unknown reply code"
		if int(rep) < len(socksReplies) {
			why = socksReplies[rep]
		}
		return fail(fmt.Errorf("CONNECT refused: %s (reply %d)", why, rep))
	}
	var n int
	switch head[3] {
	case socksATypIPv4:
		n = 4
	case socksATypIPv6:
		n = 16
	case socksATypName:
		var l [1]byte
		if err := readFull(c, l[:]); err != nil {
			return fail(fmt.Errorf("CONNECT reply: %w", err))
		}
		n = int(l[0])
	default:
		return fail(fmt.Errorf("CONNECT reply: unknown address type %d", head[3]))
	}
	rest := make([]byte, n+2) // BND.ADDR and BND.PORT, unused
	if err := readFull(c, rest); err != nil {
		return fail(fmt.Errorf("CONNECT reply: %w", err))
	}
	return nil
}

// socksAuth runs the user name and password subnegotiation (RFC 1929 §2):
// VER 1, ULEN, UNAME, PLEN, PASSWD; the reply's STATUS 0 is success.
// newProxyHop checked that each is at most 255 bytes.
func socksAuth(c net.Conn, hop *proxyHop) error {
	user := hop.u.User.Username()
	pw, _ := hop.u.User.Password()
	req := append([]byte{socksAuthVer, byte(len(user))}, user...)
	req = append(append(req, byte(len(pw))), pw...)
	if _, err := c.Write(req); err != nil {
		return err
	}
	var b [2]byte
	if err := readFull(c, b[:]); err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	// RFC 1929 says VER is 1; some servers answer 5 here. Either is taken,
	// as curl does; anything else is not this exchange.
	if b[0] != socksAuthVer && b[0] != socksVersion {
		return fmt.Errorf("authentication reply: version %d", b[0])
	}
	if b[1] != 0 {
		return fmt.Errorf("the proxy refused the user name and password (status %d)", b[1])
	}
	return nil
}

// readFull reads len(b) bytes, calling a connection closed early what it
// is.
func readFull(c net.Conn, b []byte) error {
	if _, err := io.ReadFull(c, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("the proxy closed the connection: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	return nil
}
