package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// A carrier is a connection whose transport handshake finished in a race:
// plain TCP or TLS carrying HTTP/1.1 (or raw bytes for DialContext), HTTP/2
// on TLS, or HTTP/3 on QUIC. Exactly one of conn, h2 and h3 is set.
type carrier struct {
	version hev3.Version
	ep      hev3.Endpoint // what the attempt dialed
	conn    net.Conn
	h2      *h2Conn
	h3      *h3Conn
	// transport is the race's shared UDP socket under an h3 carrier.
	transport *quic.Transport
	// tc is the TLS connection under an h1 or h2 carrier, nil otherwise.
	tc *tls.Conn
	// sessions is what the carrier's partition (trust and origin) keeps
	// for resumption (tickets.go), or nil for plain TCP.
	sessions *sessions
	// ech is what Encrypted Client Hello did on the connection (ech.go).
	ech echResult
	// tunnel is how the connection crossed a proxy (proxy.go), or nil.
	tunnel *tunnelInfo
}

// tlsState returns a copy of the TLS state of the carrier's connection
// (TLS or QUIC), or nil for plain TCP.
func (c *carrier) tlsState() *tls.ConnectionState {
	var st tls.ConnectionState
	switch {
	case c.tc != nil:
		st = c.tc.ConnectionState()
	case c.h3 != nil:
		st = c.h3.qc.ConnectionState().TLS
	default:
		return nil
	}
	return &st
}

// setTLS fills resp.TLS, where the HTTP layer left it nil, with the state
// of the connection that carried the response: x/net/http2 on a wrapped
// connection and the session handshakes do not set it.
func (c *carrier) setTLS(resp *http.Response) {
	if resp != nil && resp.TLS == nil {
		resp.TLS = c.tlsState()
	}
}

// needsSettings reports whether the carrier must show its SETTINGS before it
// can win a race that needs more than a transport.
func (c *carrier) needsSettings() bool { return c.version == hev3.H2 || c.version == hev3.H3 }

// settings waits for the server's SETTINGS on an h2 or h3 carrier.
func (c *carrier) settings(ctx context.Context) (hev3.Settings, error) {
	switch {
	case c.h2 != nil:
		return c.h2.settings(ctx)
	case c.h3 != nil:
		return c.h3.settings(ctx)
	}
	return hev3.Settings{}, errors.New("dialer: HTTP/1.1 has no SETTINGS")
}

// connect opens an extended CONNECT stream on an h2 or h3 carrier.
func (c *carrier) connect(ctx context.Context, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	switch {
	case c.h2 != nil:
		return c.h2.connect(ctx, u, hdr, protocol)
	case c.h3 != nil:
		return c.h3.connect(ctx, u, hdr, protocol)
	}
	return nil, nil, errors.New("dialer: extended CONNECT needs HTTP/2 or HTTP/3")
}

// roundTrip sends an HTTP request on an h2 or h3 carrier.
func (c *carrier) roundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case c.h2 != nil:
		return c.h2.cc.RoundTrip(req)
	case c.h3 != nil && c.h3.wcc != nil:
		return c.h3.wcc.RoundTrip(req)
	case c.h3 != nil:
		return c.h3.roundTrip(req)
	}
	return nil, errors.New("dialer: HTTP/1.1 connections are pooled by net/http")
}

// multiplexed reports whether the carrier is an h2 or h3 connection that
// can carry many requests and sessions.
func (c *carrier) multiplexed() bool { return c.h2 != nil || c.h3 != nil }

// servesHTTP reports whether the Transport may send requests on the
// carrier. The package's own HTTP/2 client, which WebSocket and
// WebTransport races start, carries sessions only: plain requests go to
// x/net's.
func (c *carrier) servesHTTP() bool { return c.multiplexed() && (c.h2 == nil || c.h2.own == nil) }

// canWebTransport reports, without waiting, whether the carrier was opened
// for WebTransport and its SETTINGS proved it.
func (c *carrier) canWebTransport() bool {
	switch {
	case c.h3 != nil:
		return c.h3.wcc != nil
	case c.h2 != nil && c.h2.own != nil:
		s, ok := c.h2.received()
		return ok && h2Settings(s).WebTransport
	}
	return false
}

// requestSession asks for a WebTransport session on a carrier that proved
// WebTransport (canWebTransport).
func (c *carrier) requestSession(ctx context.Context, req *wtRequest) (*http.Response, sessionImpl, error) {
	if c.h3 != nil {
		return c.h3.requestSession(ctx, req)
	}
	return c.h2.requestSession(ctx, req)
}

// canWebSocket reports, without waiting, whether the carrier's SETTINGS
// have proved extended CONNECT.
func (c *carrier) canWebSocket() bool {
	switch {
	case c.h2 != nil:
		s, ok := c.h2.received()
		return ok && h2Settings(s).ExtendedConnect
	case c.h3 != nil && c.h3.wcc != nil:
		return true // its WebTransport session request proved it
	case c.h3 != nil:
		select {
		case <-c.h3.client().ReceivedSettings():
			return c.h3.client().Settings().EnableExtendedConnect
		default:
		}
	}
	return false
}

// alive reports whether a pooled h2 or h3 carrier can take a new stream.
func (c *carrier) alive() bool {
	switch {
	case c.h2 != nil:
		return c.h2.alive()
	case c.h3 != nil:
		return c.h3.alive()
	}
	return false
}

// maxH3Streams is how many sessions and requests the pool puts on one
// HTTP/3 connection: quic-go's default stream limit and RFC 9114's
// recommended minimum. quic-go does not expose the peer's limit, and a
// stream opened beyond it would wait for one to close.
const maxH3Streams = 100

// hasRoom reports whether a pooled carrier with n streams in use can take
// one more without waiting for the server.
func (c *carrier) hasRoom(n int) bool {
	switch {
	case c.h2 != nil:
		return c.h2.hasRoom(n)
	case c.h3 != nil:
		return n < maxH3Streams
	}
	return false
}

// Close closes the carrier's connection.
func (c *carrier) Close() error {
	switch {
	case c.h2 != nil:
		return c.h2.Close()
	case c.h3 != nil:
		return c.h3.Close()
	case c.conn != nil:
		return c.conn.Close()
	}
	return nil
}
