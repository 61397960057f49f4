package dialertest

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/eyeballs/dialer/internal/loopback"
)

// CA is an in-memory certificate authority. Servers of the kit present
// certificates it issued, and clients trust it through Pool or ClientConfig
// (or PEM, for tools that read a CA file), so that no test ever needs to
// skip certificate verification and every test also checks the names a
// dialer verifies. Its certificates are ECDSA P-256 and valid for a week.
type CA struct {
	ca *loopback.CA
}

// NewCA creates a CA with a fresh key and a self-signed root. It fails only
// when the system's random source does.
func NewCA() (*CA, error) {
	ca, err := loopback.NewCA()
	if err != nil {
		return nil, err
	}
	return &CA{ca: ca}, nil
}

// Pool returns a new pool holding only this CA, for tls.Config.RootCAs.
func (ca *CA) Pool() *x509.CertPool { return ca.ca.Pool() }

// PEM returns the CA certificate PEM-encoded, for tools that read a CA
// file (such as "eyeballs ws -cacert").
func (ca *CA) PEM() []byte { return ca.ca.PEM() }

// ClientConfig returns a client TLS configuration that trusts only this CA,
// for dialer.WithTLSConfig. ServerName and NextProtos are left to the
// dialer.
func (ca *CA) ClientConfig() *tls.Config { return ca.ca.ClientConfig() }

// Certificate issues a leaf certificate for names, each a DNS name
// ("localhost", "*.example.test") or an IP address ("127.0.0.1", "::1"),
// usable by servers and as a client certificate. The chain holds the leaf
// only; the root comes from Pool.
func (ca *CA) Certificate(names ...string) (tls.Certificate, error) {
	return ca.ca.Certificate(names...)
}

// ServerConfig returns a server TLS configuration with a fresh leaf for
// names (see Certificate), for servers of one's own. NextProtos is left
// empty: http.Server adds "h2" and "http/1.1", and quic-go's http3 adds
// "h3".
func (ca *CA) ServerConfig(names ...string) (*tls.Config, error) {
	return ca.ca.ServerConfig(names...)
}
