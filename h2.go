package dialer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/sniff"
)

// h2Client is what the dialer needs of an HTTP/2 client connection. Today
// x/net/http2's ClientConn provides it; its client API is deprecated and
// becomes a wrapper over net/http in Go 1.27, so it stays behind this
// interface and newH2Client.
type h2Client interface {
	RoundTrip(*http.Request) (*http.Response, error)
	CanTakeNewRequest() bool
	State() http2.ClientConnState
	Close() error
}

// newH2Client starts an HTTP/2 client on c, a TLS connection that
// negotiated h2.
func newH2Client(c net.Conn) (h2Client, error) {
	// Compression on, as in net/http: requests ask for gzip and responses
	// are decompressed transparently.
	t := &http2.Transport{}
	return t.NewClientConn(c)
}

// h2Conn is an HTTP/2 client connection on a raced TLS connection, with the
// server's first SETTINGS read on the way in.
type h2Conn struct {
	sn *sniff.Conn
	cc h2Client
}

// startH2 turns a TLS connection that negotiated h2 into an h2Conn.
func startH2(c net.Conn) (*h2Conn, error) {
	sn := sniff.New(c)
	cc, err := newH2Client(sn)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &h2Conn{sn: sn, cc: cc}, nil
}

// settings waits for the server's first SETTINGS frame.
func (h *h2Conn) settings(ctx context.Context) (hev3.Settings, error) {
	s, err := h.sn.Settings(ctx)
	if err != nil {
		return hev3.Settings{}, err
	}
	return hev3.Settings{ExtendedConnect: s[sniff.SettingEnableConnectProtocol] == 1}, nil
}

// alive reports whether the connection is neither closed nor closing
// (GOAWAY); a live connection may still be full (hasRoom).
func (h *h2Conn) alive() bool {
	st := h.cc.State()
	return !st.Closed && !st.Closing
}

// hasRoom reports whether the connection can take one more stream under
// the server's SETTINGS_MAX_CONCURRENT_STREAMS.
func (h *h2Conn) hasRoom() bool { return h.cc.CanTakeNewRequest() }

func (h *h2Conn) Close() error {
	h.cc.Close()
	return h.sn.Close()
}

// connect opens an RFC 8441 extended CONNECT stream with :protocol set to
// protocol. On a 2xx answer the stream carries the session; otherwise the
// response is returned alone. ctx bounds the handshake only.
func (h *h2Conn) connect(ctx context.Context, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	return connectRoundTrip(ctx, h.cc, u, hdr, func(r *http.Request) { r.Header[":protocol"] = []string{protocol} })
}

// connectRoundTrip sends an extended CONNECT through an HTTP/2 or HTTP/3
// client's RoundTrip, with a pipe as the request body (the send side of the
// stream) and the response body as the receive side. mark sets :protocol
// the way the client wants it.
func connectRoundTrip(ctx context.Context, rt http.RoundTripper, u *url.URL, hdr http.Header, mark func(*http.Request)) (*http.Response, io.ReadWriteCloser, error) {
	// The clients tie the stream to the request's context for its whole
	// life, so the request gets its own context, cancelled by ctx only
	// until the handshake ends.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(sctx, http.MethodConnect, u.String(), pr)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	mark(req)
	req.ContentLength = -1
	resp, err := rt.RoundTrip(req)
	if !stop() && err == nil {
		resp.Body.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		cancel()
		pw.Close()
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = readSome(resp.Body)
		cancel()
		pw.Close()
		return resp, nil, nil
	}
	body := resp.Body
	resp.Body = http.NoBody
	return resp, &pipeStream{r: body, w: pw, cancel: cancel}, nil
}

// pipeStream is the byte stream of an extended CONNECT sent through
// RoundTrip: the response body one way, the request body the other.
type pipeStream struct {
	r      io.ReadCloser
	w      *io.PipeWriter
	cancel context.CancelFunc
	once   sync.Once
}

func (s *pipeStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *pipeStream) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close ends the request body (END_STREAM), then the stream itself.
func (s *pipeStream) Close() error {
	s.once.Do(func() {
		s.w.Close()
		s.r.Close()
		s.cancel()
	})
	return nil
}
