package dialer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http/httptrace"
	"sync"

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
// HTTP/1.1. TLS sessions are resumed from, and kept in, sess (when not
// nil; see tlsSessions).
func dialTCP(conf *tls.Config, serverName string, wt bool, sess *sessions) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error) {
		if conf == nil {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
			if err != nil {
				return nil, err
			}
			return &carrier{version: hev3.H1, ep: ep, conn: c}, nil
		}
		// An ECH retry (ech.go) is a fresh TCP connection: the attempt
		// reports its TCP progress once.
		var once sync.Once
		tc, ech, err := withECH(ctx, attemptTLS(conf, serverName, ep, tlsSessions(conf, sess, false)), func(ctx context.Context, conf *tls.Config) (*tls.Conn, error) {
			return dialTLS(ctx, ep, conf, func() { once.Do(tcpUp) })
		})
		if err != nil {
			return nil, err
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			return &carrier{version: hev3.H1, ep: ep, conn: tc, tc: tc, sessions: sess, ech: ech}, nil
		}
		start := startH2
		if wt {
			start = startOwnH2
		}
		h2, err := start(tc)
		if err != nil {
			return nil, err
		}
		return &carrier{version: hev3.H2, ep: ep, h2: h2, tc: tc, sessions: sess, ech: ech}, nil
	}
}

// dialTLS opens a TCP connection to ep and runs the TLS handshake with conf
// on it.
func dialTLS(ctx context.Context, ep hev3.Endpoint, conf *tls.Config, tcpUp func()) (*tls.Conn, error) {
	// net.Dialer reports ConnectStart and ConnectDone to an httptrace in
	// ctx; the TLS handshake is reported here.
	trace := httptrace.ContextClientTrace(ctx)
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
	if err != nil {
		return nil, err
	}
	tcpUp()
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	tc := tls.Client(c, conf)
	err = tc.HandshakeContext(ctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("TCP connected, TLS handshake failed: %w", err)
	}
	return tc, nil
}

// attemptTLS derives one attempt's TLS configuration from the user's,
// resuming sessions from cache when it is not nil.
func attemptTLS(base *tls.Config, serverName string, ep hev3.Endpoint, cache tls.ClientSessionCache) *tls.Config {
	conf := base.Clone()
	conf.NextProtos = ep.Proto.ALPN()
	if cache != nil {
		conf.ClientSessionCache = cache
	}
	if conf.ServerName == "" {
		conf.ServerName = serverName
	}
	if len(ep.ECH) > 0 && conf.EncryptedClientHelloConfigList == nil {
		conf.EncryptedClientHelloConfigList = ep.ECH
	}
	return conf
}
