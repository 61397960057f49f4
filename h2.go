package dialer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/h2conn"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/sniff"
	"github.com/eyeballs/dialer/internal/wt2"
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

// h2Conn is an HTTP/2 client connection on a raced TLS connection. It is
// one of two clients:
//
//   - x/net/http2's, with the server's first SETTINGS read on the way in
//     (sn), for HTTP races (the Transport): its request machinery (bodies,
//     trailers, compression, GOAWAY retries) is the one net/http users know.
//     A WebSocket may ride on it too when the pool has it, through
//     RoundTrip's request and response bodies (connectRoundTrip);
//   - the package's own (internal/h2conn, own), for WebSocket and
//     WebTransport races (raceSpec.ownH2). Its streams are read and written
//     directly, with no body copier, pipe or frame-size cap between the
//     application and the socket: a WebSocket's data path over h2 costs
//     about what it costs over h1 (issue 20; BenchmarkDatapath). It
//     announces WebTransport in its SETTINGS, which x/net can neither send
//     nor read, so a WebTransport dial to the origin can reuse it too.
type h2Conn struct {
	sn  *sniff.Conn  // x/net only
	cc  h2Client     // x/net's ClientConn, or own
	own *h2conn.Conn // the package's own client, or nil
	wt  *wt2.Config  // with own: the WebTransport limits our SETTINGS announced
}

// maxRequestFrame caps the DATA frames x/net writes, and so the buffer it
// holds for each request body: a WebSocket over h2 held 512 KiB for its
// whole life against servers that allow 1 MiB frames, as Go's do (see
// sniff.New; BenchmarkManyWebSockets).
const maxRequestFrame = 16 << 10

// startH2 turns a TLS connection that negotiated h2 into an h2Conn.
func startH2(c net.Conn) (*h2Conn, error) {
	sn := sniff.New(c, maxRequestFrame)
	cc, err := newH2Client(sn)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &h2Conn{sn: sn, cc: cc}, nil
}

// ownConnWindow is the connection receive window of the package's own
// HTTP/2 client, as x/net's client has it.
const ownConnWindow = 1 << 30

// startOwnH2 turns a TLS connection that negotiated h2 into an h2Conn on
// the package's own HTTP/2 client, announcing WebTransport in its SETTINGS.
func startOwnH2(c net.Conn) (*h2Conn, error) {
	wc := &wt2.Config{}
	// The connection's receive window is x/net's: a few sessions that
	// stop reading may hold their streams' windows (1 MiB each) without
	// stalling the others. What is buffered stays bounded by the streams
	// we open.
	own, err := h2conn.NewClient(c, h2conn.Config{Settings: wt2.ClientSettings(wc), ConnWindow: ownConnWindow})
	if err != nil {
		c.Close()
		return nil, err
	}
	return &h2Conn{cc: own, own: own, wt: wc}, nil
}

// settings waits for the server's first SETTINGS frame.
func (h *h2Conn) settings(ctx context.Context) (hev3.Settings, error) {
	s, err := h.peerSettings(ctx)
	if err != nil {
		return hev3.Settings{}, err
	}
	return h2Settings(s), nil
}

// peerSettings waits for the server's first SETTINGS frame.
func (h *h2Conn) peerSettings(ctx context.Context) (map[http2.SettingID]uint32, error) {
	if h.own != nil {
		return h.own.PeerSettings(ctx)
	}
	s, err := h.sn.Settings(ctx)
	return settingIDs(s), err
}

// received returns the server's first SETTINGS without waiting.
func (h *h2Conn) received() (map[http2.SettingID]uint32, bool) {
	if h.own != nil {
		return h.own.ReceivedSettings()
	}
	s, ok := h.sn.Received()
	return settingIDs(s), ok
}

// settingIDs types the identifiers of SETTINGS read by sniff.
func settingIDs(s map[uint16]uint32) map[http2.SettingID]uint32 {
	if s == nil {
		return nil
	}
	m := make(map[http2.SettingID]uint32, len(s))
	for id, v := range s {
		m[http2.SettingID(id)] = v
	}
	return m
}

// h2Settings reads the capability bits from HTTP/2 SETTINGS.
func h2Settings(s map[http2.SettingID]uint32) hev3.Settings {
	return hev3.Settings{
		ExtendedConnect: s[http2.SettingEnableConnectProtocol] == 1,
		WebTransport:    wt2.CheckSettings(s) == nil,
	}
}

// alive reports whether the connection is neither closed nor closing
// (GOAWAY); a live connection may still be full (hasRoom).
func (h *h2Conn) alive() bool {
	st := h.cc.State()
	return !st.Closed && !st.Closing
}

// hasRoom reports whether the connection, with n sessions and requests
// the pool has reserved on it (some not sent yet, so the client does not
// count them), can take one more stream under the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2).
func (h *h2Conn) hasRoom(n int) bool {
	if !h.cc.CanTakeNewRequest() {
		return false
	}
	max := h.cc.State().MaxConcurrentStreams
	return max == 0 || uint32(n) < max
}

// Close closes the connection and every stream on it.
func (h *h2Conn) Close() error {
	err := h.cc.Close()
	if h.sn != nil {
		err = h.sn.Close()
	}
	return err
}

// connect opens an RFC 8441 extended CONNECT stream with :protocol set to
// protocol. On a 2xx answer the stream carries the session; otherwise the
// response is returned alone. ctx bounds the handshake only.
func (h *h2Conn) connect(ctx context.Context, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	if h.own == nil {
		return connectRoundTrip(ctx, h.cc, u, hdr, func(r *http.Request) { r.Header[":protocol"] = []string{protocol} })
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header[":protocol"] = []string{protocol}
	// Connect waits for the answer under ctx and resets the stream when
	// ctx ends first; the stream then lives on without ctx.
	resp, st, err := h.own.Connect(req)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, nil, err
	}
	if err := context.Cause(ctx); err != nil {
		st.Reset(http2.ErrCodeCancel)
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = readSome(ctx, st)
		return resp, nil, nil
	}
	return resp, newOwnStream(st), nil
}

// ownStream is the byte stream of an extended CONNECT on the package's own
// HTTP/2 client: reads come straight from the stream, writes go through a
// writeBehind, which sends a write of one TCP segment or less at once and
// batches larger ones into frames as large as the server allows.
type ownStream struct {
	st *h2conn.Stream
	wb *writeBehind
}

// ownInline is the largest write an ownStream sends at once, unbatched.
const ownInline = 1200

func newOwnStream(st *h2conn.Stream) *ownStream {
	end := func(err error) {
		if err != nil {
			st.Reset(http2.ErrCodeCancel)
			return
		}
		// END_STREAM after all we sent; then, if the server has not
		// ended its side, RST_STREAM (h2conn.Stream.Close).
		st.Close()
	}
	return &ownStream{st: st, wb: newWriteBehind(st, ownInline, end, st.SetWriteDeadline)}
}

// sent is closed once the stream has ended after Close.
func (s *ownStream) sent() <-chan struct{} { return s.wb.sent() }

// Read reads what the server sent on the stream.
func (s *ownStream) Read(p []byte) (int, error) { return s.st.Read(p) }

// Write sends p on the stream.
func (s *ownStream) Write(p []byte) (int, error) { return s.wb.Write(p) }

// Close stops reads at once and ends the stream once what was written
// behind has been sent (within closeDrain): a WebSocket writes its close
// frame and closes at once, and ending the stream first would reset it
// with the close frame unsent.
func (s *ownStream) Close() error {
	s.st.SetReadDeadline(time.Now())
	s.wb.Close()
	return nil
}

// connectRoundTrip sends an extended CONNECT through an HTTP/2 or HTTP/3
// client's RoundTrip, with a bodyPipe as the request body (the send side of the
// stream) and the response body as the receive side. mark sets :protocol
// the way the client wants it.
func connectRoundTrip(ctx context.Context, rt http.RoundTripper, u *url.URL, hdr http.Header, mark func(*http.Request)) (*http.Response, io.ReadWriteCloser, error) {
	// The clients tie the stream to the request's context for its whole
	// life, so the request gets its own context, cancelled by ctx only
	// until the handshake ends.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	pw := newBodyPipe()
	req, err := http.NewRequestWithContext(sctx, http.MethodConnect, u.String(), pw)
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
		pw.closeWrite()
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = readSome(ctx, resp.Body)
		cancel()
		pw.closeWrite()
		return resp, nil, nil
	}
	body := resp.Body
	resp.Body = http.NoBody
	return resp, &pipeStream{r: body, w: pw, cancel: cancel, ended: make(chan struct{})}, nil
}

// pipeStream is the byte stream of an extended CONNECT sent through
// RoundTrip: the response body one way, the request body the other.
type pipeStream struct {
	r      io.ReadCloser
	w      *bodyPipe
	cancel context.CancelFunc
	once   sync.Once
	ended  chan struct{} // closed once the stream has ended after Close
}

// sent is closed once the stream has ended after Close.
func (s *pipeStream) sent() <-chan struct{} { return s.ended }

// Read reads what the server sent on the stream.
func (s *pipeStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Write sends p on the stream.
func (s *pipeStream) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close ends the request body (END_STREAM) and returns; the stream itself
// ends once the client has sent what was written behind, or after
// closeDrain if flow control never lets it: a WebSocket writes its close
// frame and closes at once, and ending the stream first would reset it
// (RST_STREAM) with the close frame unsent.
func (s *pipeStream) Close() error {
	s.once.Do(func() {
		s.w.closeWrite()
		go func() {
			t := time.NewTimer(closeDrain)
			select {
			case <-s.w.drained:
			case <-t.C:
			}
			t.Stop()
			s.r.Close()
			s.cancel()
			close(s.ended)
		}()
	})
	return nil
}
