package dialer

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/eyeballs/dialer/internal/hev3"
)

// dialTCP returns the attempt function for TCP endpoints: a TCP connection,
// then, when conf is not nil, a TLS handshake offering the endpoint's ALPN
// protocols (and its ECH configuration, if any). The negotiated version is
// HTTP/2 when ALPN chose h2 and HTTP/1.1 otherwise.
func dialTCP(conf *tls.Config, serverName string) func(context.Context, hev3.Endpoint) (net.Conn, hev3.Version, error) {
	return func(ctx context.Context, ep hev3.Endpoint) (net.Conn, hev3.Version, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", ep.Addr.String())
		if err != nil {
			return nil, 0, err
		}
		if conf == nil {
			return c, hev3.H1, nil
		}
		tc := tls.Client(c, attemptTLS(conf, serverName, ep))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, 0, err
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return tc, hev3.H2, nil
		}
		return tc, hev3.H1, nil
	}
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
