package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/miekg/dns"
)

// dnsMessage is the media type of DoH requests and replies (RFC 8484 §6).
const dnsMessage = "application/dns-message"

// maxDoHReply bounds a DoH reply's body: a DNS message is at most 65535
// octets (RFC 8484 §6 and RFC 1035 §4.2.2).
const maxDoHReply = dns.MaxMsgSize

// ErrHTTPStatus: a DoH server answered with a status other than 2xx
// (RFC 8484 §4.2.1).
var ErrHTTPStatus = errors.New("DoH server answered with an HTTP error")

// DoHConfig configures a DNS-over-HTTPS server (RFC 8484).
type DoHConfig struct {
	// URL is the server's URI template without its variable
	// ("https://dns.example/dns-query"); queries are POSTed to it.
	URL string
	// Transport carries the requests. It verifies the server's
	// certificate and finds its addresses without asking the server
	// itself, so that resolving never loops. It must not follow
	// redirects: a redirect is an error.
	Transport http.RoundTripper
}

// DoH is a DNS-over-HTTPS server (RFC 8484): each query is one POST of an
// application/dns-message body with ID 0 (§4.1), padded to 128-octet blocks
// (RFC 8467 §4.1); connections are the Transport's to pool. A reply other
// than 2xx, of another media type, or longer than 65535 octets is an error.
type DoH struct {
	cfg DoHConfig
}

// NewDoH returns a DoH server for cfg.
func NewDoH(cfg DoHConfig) *DoH { return &DoH{cfg: cfg} }

// String returns the server's URL.
func (d *DoH) String() string { return d.cfg.URL }

// CloseIdle closes the Transport's idle connections, if it can.
func (d *DoH) CloseIdle() {
	if c, ok := d.cfg.Transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Exchange POSTs m (with ID 0) and reads the reply.
func (d *DoH) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	q := m.Copy()
	// RFC 8484 §4.1: "DoH clients SHOULD use a DNS ID of 0 in every DNS
	// request", so that equal queries are equal HTTP requests.
	q.Id = 0
	b, err := pad(q)
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", dnsMessage)
	req.Header.Set("Accept", dnsMessage)
	resp, err := d.cfg.Transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// RFC 8484 §4.2.1: a successful response is 2xx; others carry no
	// DNS answer, whatever their body.
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%w: %s", ErrHTTPStatus, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != dnsMessage {
		return nil, fmt.Errorf("%w over https: Content-Type %q, want %s", ErrMalformed, resp.Header.Get("Content-Type"), dnsMessage)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDoHReply+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxDoHReply {
		return nil, fmt.Errorf("%w over https: body longer than %d octets", ErrMalformed, maxDoHReply)
	}
	r, err := unpack(body)
	if err == nil {
		err = check(q, r)
	}
	if err != nil {
		return nil, fmt.Errorf("%w over https: %w", ErrMalformed, err)
	}
	r.Id = m.Id
	return r, nil
}
