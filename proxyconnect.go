package dialer

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxProxyHeader bounds the proxy's answer to CONNECT: status line and
// header fields together. A proxy's answer is a few hundred bytes; net/http
// reads up to its MaxResponseHeaderBytes (1 MiB by default) here, curl up
// to 100 KiB. 16 KiB holds any real one and keeps a hostile proxy from
// making the dial read more.
const maxProxyHeader = 16 << 10

// httpConnect asks the HTTP proxy on c (plain, or TLS for an https://
// proxy) for a tunnel to the hop's target and reads its answer: the
// CONNECT method (RFC 9110 §9.3.6) with the target in authority form
// (RFC 9112 §3.2.3) and the same Host (RFC 9112 §3.2), and, when the proxy
// URL has user info, Proxy-Authorization with the Basic scheme (RFC 9110
// §11.7.2, RFC 7617 §2). Any 2xx answer opens the tunnel (RFC 9110
// §9.3.6); its header fields, a Content-Length or Transfer-Encoding
// included, are ignored, as the RFC tells a client to. Another status is a
// *ProxyError with it: 407 (RFC 9110 §15.5.8) when the proxy wants
// credentials or refused those given, 403 when its policy refuses the
// target. It returns the answer's status.
//
// c's deadline bounds the exchange (see tunnel). Bytes the proxy sent
// after its answer belong to the tunnel and are kept: on success the
// returned error is nil and c is read through them first (see
// prependConn), so the caller must use the connection it gets back from
// the hop, never c; httpConnect returns it through *c.
func httpConnect(c *net.Conn, hop *proxyHop) (int, error) {
	target := hop.target()
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if u := hop.u.User; u != nil {
		pw, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pw))
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(*c, b.String()); err != nil {
		return 0, hop.errf("CONNECT", 0, err)
	}
	lr := &io.LimitedReader{R: *c, N: maxProxyHeader}
	br := bufio.NewReaderSize(lr, 4096)
	// Interim answers (1xx but 101) precede the final one (RFC 9110
	// §15.2); all of them count against maxProxyHeader.
	var (
		resp *http.Response
		err  error
	)
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil {
		switch {
		case lr.N == 0:
			err = fmt.Errorf("answer header larger than %d bytes", maxProxyHeader)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("the proxy closed the connection before it answered: %w", io.ErrUnexpectedEOF)
		default:
			err = fmt.Errorf("malformed answer: %w", err)
		}
		return 0, hop.errf("CONNECT", 0, err)
	}
	if resp.StatusCode/100 != 2 {
		var why string
		switch resp.StatusCode {
		case http.StatusProxyAuthRequired:
			why = "the proxy wants credentials (none in the proxy URL)"
			if hop.u.User != nil {
				why = "the proxy refused the credentials in the proxy URL"
			}
			if s := resp.Header.Get("Proxy-Authenticate"); s != "" {
				why += "; it offers " + trim(s, 80)
			}
		case http.StatusForbidden:
			why = "the proxy's policy refuses this target"
		default:
			why = "the proxy refused the tunnel"
		}
		return resp.StatusCode, hop.errf("CONNECT", resp.StatusCode, fmt.Errorf("%s: %s", trim(resp.Status, 64), why))
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		*c = &prependConn{Conn: *c, buf: append([]byte(nil), rest...)}
	}
	return resp.StatusCode, nil
}

// A prependConn is a connection whose first reads return buf: bytes read
// ahead of a handshake that belong to what follows it.
type prependConn struct {
	net.Conn
	buf []byte
}

func (c *prependConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
