package h2conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// RoundTrip sends req on a new stream (client role) and returns the
// response as soon as its header arrives; the body streams DATA frames.
//
// A CONNECT request whose Header has ":protocol" is an RFC 8441 extended
// CONNECT: RoundTrip first waits for the peer's SETTINGS and fails with
// ErrNoExtendedConnect unless they enable it. A CONNECT stream stays open
// for writing until req.Body ends, even with no body. req.Body, which may
// stay open for the stream's life (an io.Pipe), is copied in a goroutine
// and closed when our sending side ends.
//
// Cancelling req.Context() at any time resets the stream with CANCEL and
// fails its reads and writes; so does closing the response body before
// the stream has ended both ways.
func (c *Conn) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	var closeBody func()
	if req.Body != nil {
		closeBody = sync.OnceFunc(func() { req.Body.Close() })
	} else {
		closeBody = func() {}
	}
	s, err := c.open(req, body != nil)
	if err != nil {
		closeBody()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.reset(http2.ErrCodeCancel, context.Cause(ctx)) })
	if body != nil {
		go func() {
			<-s.wdone
			closeBody()
		}()
		go s.copyBody(body)
	} else {
		closeBody()
	}
	hdr, err := s.Header(ctx)
	if err != nil {
		stop()
		s.reset(http2.ErrCodeCancel, err)
		return nil, err
	}
	resp := c.response(req, hdr)
	resp.Body = &responseBody{s: s, stop: stop}
	if v := resp.Header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			resp.ContentLength = n
		}
	} else {
		c.mu.Lock()
		if s.recvEnd && s.buf.Len() == 0 {
			resp.ContentLength = 0
		}
		c.mu.Unlock()
	}
	return resp, nil
}

// Connect sends req, an RFC 8441 extended CONNECT (":protocol" in its
// Header, no Body), and waits for the response header, bounded by
// req.Context() (which, unlike RoundTrip's, does not outlive the wait).
// The stream is returned with any response, with the body left on it: the
// caller reads and writes the stream directly and closes it. This is
// RoundTrip without the goroutine that copies a request body, for
// protocols such as WebTransport that frame their own data on the stream.
func (c *Conn) Connect(req *http.Request) (*http.Response, *Stream, error) {
	if req.Method != http.MethodConnect || req.Header.Get(":protocol") == "" {
		return nil, nil, errors.New("h2conn: Connect needs an extended CONNECT request")
	}
	ctx := req.Context()
	s, err := c.open(req, false)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := s.Header(ctx)
	if err != nil {
		s.reset(http2.ErrCodeCancel, err)
		return nil, nil, err
	}
	return c.response(req, hdr), s, nil
}

// open opens req's stream: its header block, after the peer's SETTINGS
// have enabled extended CONNECT if req is one.
func (c *Conn) open(req *http.Request, hasBody bool) (*Stream, error) {
	fields, ext, err := requestFields(req, hasBody)
	if err != nil {
		return nil, err
	}
	if ext {
		if _, err := c.PeerSettings(req.Context()); err != nil {
			return nil, err
		}
		if v, _ := c.peerSetting(http2.SettingEnableConnectProtocol); v != 1 {
			return nil, ErrNoExtendedConnect
		}
	}
	return c.OpenStream(req.Context(), fields, !hasBody && req.Method != http.MethodConnect)
}

// response is the Response for a response header block, without a body.
func (c *Conn) response(req *http.Request, hdr []hpack.HeaderField) *http.Response {
	status, _ := checkResponse(hdr) // checked on arrival
	resp := &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        make(http.Header),
		ContentLength: -1,
		Request:       req,
		Body:          http.NoBody,
	}
	for _, f := range hdr {
		if !f.IsPseudo() {
			resp.Header.Add(textproto.CanonicalMIMEHeaderKey(f.Name), f.Value)
		}
	}
	if tc, ok := c.nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		resp.TLS = &st
	}
	return resp
}

// copyBody sends the request body, then END_STREAM; a failing body resets
// the stream.
func (s *Stream) copyBody(body io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			s.CloseWrite()
			return
		}
		if err != nil {
			select {
			case <-s.wdone: // our side ended first and we closed the body
			default:
				s.reset(http2.ErrCodeCancel, fmt.Errorf("h2conn: reading request body: %w", err))
			}
			return
		}
	}
}

// responseBody is a response's Body: the stream's data.
type responseBody struct {
	s    *Stream
	stop func() bool // unregisters the context's cancellation
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.s.Read(p)
	if err != nil {
		b.stop()
	}
	return n, err
}

// Close resets the stream with CANCEL unless it has ended both ways.
func (b *responseBody) Close() error {
	b.stop()
	b.s.reset(http2.ErrCodeCancel, ErrStreamClosed)
	return nil
}

// requestFields builds req's header block. ext reports an extended
// CONNECT.
func requestFields(req *http.Request, hasBody bool) (fields []hpack.HeaderField, ext bool, err error) {
	if req.URL == nil {
		return nil, false, errors.New("h2conn: request has no URL")
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return nil, false, fmt.Errorf("h2conn: invalid Host %q", req.Host)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "https"
	}
	path := req.URL.RequestURI()
	protocol := req.Header.Get(":protocol")
	add := func(name, value string) { fields = append(fields, hpack.HeaderField{Name: name, Value: value}) }
	add(":method", method)
	switch {
	case method == http.MethodConnect && protocol != "":
		ext = true
		add(":protocol", protocol)
		add(":scheme", scheme)
		add(":path", path)
		add(":authority", host)
	case method == http.MethodConnect:
		add(":authority", host)
	case protocol != "":
		return nil, false, errors.New("h2conn: :protocol on a request that is not CONNECT")
	default:
		add(":scheme", scheme)
		add(":path", path)
		add(":authority", host)
	}
	for k, vs := range req.Header {
		name := strings.ToLower(k)
		switch {
		case strings.HasPrefix(name, ":"), name == "host", name == "content-length", connectionSpecific[name]:
			continue
		case !httpguts.ValidHeaderFieldName(k):
			return nil, false, fmt.Errorf("h2conn: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, false, fmt.Errorf("h2conn: invalid header field value for %q", k)
			}
			if name == "te" && v != "trailers" {
				continue
			}
			add(name, v)
		}
	}
	switch {
	case req.ContentLength > 0 && hasBody:
		add("content-length", strconv.FormatInt(req.ContentLength, 10))
	case !hasBody && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch):
		add("content-length", "0")
	}
	return fields, ext, nil
}
