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
// WebTransport, when own is set: raceSpec.ownH2); otherwise it is the connection itself, for
// HTTP/1.1. TLS sessions are resumed from, and kept in, sess (when not
// nil; see tlsSessions).
func dialTCP(conf *tls.Config, serverName string, own bool, sess *sessions) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error) {
		// net.Dialer reports ConnectStart and ConnectDone to an httptrace
		// in ctx; the TLS handshake is reported by handshakeTLS.
		var nd net.Dialer
		if conf == nil {
			c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
			if err != nil {
				return nil, err
			}
			return &carrier{version: hev3.H1, ep: ep, conn: c}, nil
		}
		// An ECH retry (ech.go) is a fresh TCP connection: the attempt
		// reports its TCP progress once.
		var once sync.Once
		return tlsCarrier(ctx, conf, serverName, ep, own, sess, func(ctx context.Context) (net.Conn, error) {
			c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
			if err == nil {
				once.Do(tcpUp)
			}
			return c, err
		})
	}
}

// tlsCarrier runs an attempt's TLS handshake on a connection from open (a
// TCP connection to the server, or a tunnel to it through a proxy),
// offering the endpoint's ALPN protocols and ECH configuration, with
// Encrypted Client Hello's retry rules (withECH: a retry opens a second
// connection) and resuming sessions from sess. It starts HTTP/2 when ALPN
// chose it (the package's own client, announcing WebTransport, when own
// is set); otherwise the carrier is the TLS connection, for HTTP/1.1.
func tlsCarrier(ctx context.Context, conf *tls.Config, serverName string, ep hev3.Endpoint, own bool, sess *sessions, open func(context.Context) (net.Conn, error)) (*carrier, error) {
	tc, ech, err := withECH(ctx, attemptTLS(conf, serverName, ep, tlsSessions(conf, sess, false)), func(ctx context.Context, conf *tls.Config) (*tls.Conn, error) {
		c, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return handshakeTLS(ctx, c, conf)
	})
	if err != nil {
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		return &carrier{version: hev3.H1, ep: ep, conn: tc, tc: tc, sessions: sess, ech: ech}, nil
	}
	start := startH2
	if own {
		start = startOwnH2
	}
	h2, err := start(tc)
	if err != nil {
		return nil, err
	}
	return &carrier{version: hev3.H2, ep: ep, h2: h2, tc: tc, sessions: sess, ech: ech}, nil
}

// handshakeTLS runs the TLS handshake with conf on c, reporting it to an
// httptrace in ctx. c is closed on error.
func handshakeTLS(ctx context.Context, c net.Conn, conf *tls.Config) (*tls.Conn, error) {
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	tc := tls.Client(c, conf)
	err := tc.HandshakeContext(ctx)
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
