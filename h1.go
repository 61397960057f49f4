package dialer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http/httptrace"

	"github.com/eyeballs/dialer/internal/hev3"
)

// dialFunc runs one attempt's transport handshake. tcpUp is called when a
// TCP+TLS attempt's TCP connection is up, so that a stalled TLS handshake
// can be told from a blackholed path.
type dialFunc func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error)

// dialTCP returns the attempt function for TCP endpoints: a TCP connection,
// then, when conf is not nil, a TLS handshake offering the endpoint's ALPN
// protocols (and its ECH configuration, if any). When ALPN chose h2 the
// carrier is an HTTP/2 client connection (the package's own, announcing
// WebTransport, when wt is set); otherwise it is the connection itself, for
// HTTP/1.1.
func dialTCP(conf *tls.Config, serverName string, wt bool) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error) {
		// net.Dialer reports ConnectStart and ConnectDone to an httptrace
		// in ctx; the TLS handshake is reported by handshakeTLS.
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
		if err != nil {
			return nil, err
		}
		if conf == nil {
			return &carrier{version: hev3.H1, ep: ep, conn: c}, nil
		}
		tcpUp()
		return handshakeTLS(ctx, c, conf, serverName, ep, wt)
	}
}

// handshakeTLS runs the TLS handshake of an attempt on c, a TCP connection
// to the server or a tunnel to it through a proxy, offering the endpoint's
// ALPN protocols, and starts HTTP/2 when ALPN chose it (the package's own
// client, announcing WebTransport, when wt is set). c is closed on error.
func handshakeTLS(ctx context.Context, c net.Conn, conf *tls.Config, serverName string, ep hev3.Endpoint, wt bool) (*carrier, error) {
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	tc := tls.Client(c, attemptTLS(conf, serverName, ep))
	err := tc.HandshakeContext(ctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("TCP connected, TLS handshake failed: %w", err)
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		return &carrier{version: hev3.H1, ep: ep, conn: tc}, nil
	}
	start := startH2
	if wt {
		start = startOwnH2
	}
	h2, err := start(tc)
	if err != nil {
		return nil, err
	}
	return &carrier{version: hev3.H2, ep: ep, h2: h2}, nil
}

// attemptTLS derives one attempt's TLS configuration from the user's.
func attemptTLS(base *tls.Config, serverName string, ep hev3.Endpoint) *tls.Config {
	conf := base.Clone()
	conf.NextProtos = ep.Proto.ALPN()
	if conf.ServerName == "" {
		conf.ServerName = serverName
	}
	if len(ep.ECH) > 0 && conf.EncryptedClientHelloConfigList == nil {
		conf.EncryptedClientHelloConfigList = ep.ECH
	}
	return conf
}
