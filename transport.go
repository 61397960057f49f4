package dialer

import (
	"net/http"
)

// A Transport is an http.RoundTripper that races connections with Happy
// Eyeballs: a drop-in replacement for http.DefaultTransport.
type Transport struct {
	d  *Dialer
	h1 *http.Transport
}

// NewTransport returns a Transport with its own Dialer configured by opts.
func NewTransport(opts ...Option) *Transport {
	return New(opts...).Transport()
}

// Transport returns an http.RoundTripper that dials with d and shares its
// connections with d's WebSocket and WebTransport dials.
func (d *Dialer) Transport() *Transport {
	return &Transport{d: d, h1: &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig:   d.base.tls,
	}}
}

// Dialer returns the Dialer the Transport dials with.
func (t *Transport) Dialer() *Dialer { return t.d }

// RoundTrip sends req and returns the response.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.h1.RoundTrip(req)
}

// CloseIdleConnections closes idle pooled connections.
func (t *Transport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.d.CloseIdleConnections()
}
