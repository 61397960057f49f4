package dialer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/dunglas/httpsfv"
	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/h2conn"
	"github.com/eyeballs/dialer/internal/wt2"
)

// closeBound bounds a session's close on a stuck connection: wt2's
// CloseTimeout (1 s) for the server's end of stream, and a margin.
const closeBound = 3 * time.Second

// WebTransport over HTTP/2 follows wt2.Draft (draft-ietf-webtrans-http2):
// the session is an extended CONNECT stream (:protocol webtransport) on the
// package's own HTTP/2 client, and streams, datagrams, flow control and
// close travel on it as capsules (RFC 9297). A server whose SETTINGS are
// those of an earlier draft gets that draft's wire on its sessions
// (wt2.Negotiate, wt2.Draft13).

// requestSession asks for a WebTransport session on an h2 connection opened
// for WebTransport. The server's SETTINGS must allow it; a non-2xx answer
// is returned with a nil session. ctx bounds the request only.
func (h *h2Conn) requestSession(ctx context.Context, req *wtRequest) (*http.Response, sessionImpl, error) {
	peer, err := h.own.PeerSettings(ctx)
	if err != nil {
		return nil, nil, err
	}
	dialect, err := wt2.Negotiate(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: h2: %w", ErrUnsupported, err)
	}
	r, err := sessionRequest(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	resp, st, err := h.own.Connect(r)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = st // wtSession reads a little of it and closes it
		return resp, nil, nil
	}
	protocol, err := negotiated(dialect, resp.Header, req.protocols)
	if err != nil {
		st.Reset(http2.ErrCodeCancel)
		return resp, nil, err
	}
	cfg := *h.wt
	cfg.Dialect = dialect
	sess := wt2.NewSession(st, true, cfg, peer)
	return resp, &wtH2{s: sess, conn: h.own, protocol: protocol, local: h.own.LocalAddr(), remote: h.own.RemoteAddr()}, nil
}

// sessionRequest is the extended CONNECT that asks for req's session; ctx
// bounds the wait for the answer.
func sessionRequest(ctx context.Context, req *wtRequest) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodConnect, req.url.String(), nil)
	if err != nil {
		return nil, err
	}
	r.Header = req.header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set(":protocol", "webtransport")
	if len(req.protocols) > 0 && r.Header.Get("WT-Available-Protocols") == "" {
		list := make(httpsfv.List, 0, len(req.protocols))
		for _, p := range req.protocols {
			list = append(list, httpsfv.NewItem(p))
		}
		v, err := httpsfv.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("WT-Available-Protocols: %w", err)
		}
		r.Header.Set("WT-Available-Protocols", v)
	}
	return r, nil
}

// negotiated returns the application protocol the server chose in
// WT-Protocol, in the form of the session's dialect; it must be one the
// client offered.
func negotiated(d wt2.Dialect, h http.Header, offered []string) (string, error) {
	v, ok := h["Wt-Protocol"]
	if !ok {
		return "", nil
	}
	p, err := d.ParseProtocol(v)
	if err != nil {
		return "", fmt.Errorf("WT-Protocol: %w", err)
	}
	if !slices.Contains(offered, p) {
		return "", fmt.Errorf("the server selected application protocol %q, which was not offered", p)
	}
	return p, nil
}

// wtH2 is a WebTransport session over HTTP/2.
type wtH2 struct {
	s             *wt2.Session
	conn          *h2conn.Conn // carries the session
	protocol      string
	local, remote net.Addr
}

func (w *wtH2) OpenStream() (bidiStream, error) { return wrapH2Stream(w.s.OpenStream()) }
func (w *wtH2) OpenStreamSync(ctx context.Context) (bidiStream, error) {
	return wrapH2Stream(w.s.OpenStreamSync(ctx))
}
func (w *wtH2) OpenUniStream() (sendStream, error) { return wrapH2Send(w.s.OpenUniStream()) }
func (w *wtH2) OpenUniStreamSync(ctx context.Context) (sendStream, error) {
	return wrapH2Send(w.s.OpenUniStreamSync(ctx))
}
func (w *wtH2) AcceptStream(ctx context.Context) (bidiStream, error) {
	return wrapH2Stream(w.s.AcceptStream(ctx))
}
func (w *wtH2) AcceptUniStream(ctx context.Context) (receiveStream, error) {
	st, err := w.s.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return h2Receive{st}, nil
}
func (w *wtH2) SendDatagram(b []byte) error { return w.s.SendDatagram(b) }
func (w *wtH2) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return w.s.ReceiveDatagram(ctx)
}

// CloseWithError closes the session; it waits (wt2's CloseTimeout) for the
// server to end the CONNECT stream. A connection whose socket no longer
// drains (the server stopped reading) could hold that close forever, so
// after closeBound the whole HTTP/2 connection is closed, which ends it.
func (w *wtH2) CloseWithError(code SessionErrorCode, msg string) error {
	done := make(chan error, 1)
	go func() { done <- w.s.CloseWithError(uint32(code), msg) }()
	select {
	case err := <-done:
		return err
	case <-time.After(closeBound):
		w.conn.Close()
		return <-done
	}
}
func (w *wtH2) Context() context.Context { return w.s.Context() }
func (w *wtH2) Protocol() string         { return w.protocol }
func (w *wtH2) LocalAddr() net.Addr      { return w.local }
func (w *wtH2) RemoteAddr() net.Addr     { return w.remote }

func wrapH2Stream(st *wt2.Stream, err error) (bidiStream, error) {
	if err != nil {
		return nil, err
	}
	return h2Stream{st}, nil
}

func wrapH2Send(st *wt2.SendStream, err error) (sendStream, error) {
	if err != nil {
		return nil, err
	}
	return h2Send{st}, nil
}

// h2Stream, h2Send and h2Receive adapt wt2's streams to the package's
// error codes.
type h2Stream struct{ *wt2.Stream }

func (s h2Stream) CancelRead(c StreamErrorCode)  { s.Stream.CancelRead(uint32(c)) }
func (s h2Stream) CancelWrite(c StreamErrorCode) { s.Stream.CancelWrite(uint32(c)) }

type h2Send struct{ *wt2.SendStream }

func (s h2Send) CancelWrite(c StreamErrorCode) { s.SendStream.CancelWrite(uint32(c)) }

type h2Receive struct{ *wt2.ReceiveStream }

func (s h2Receive) CancelRead(c StreamErrorCode) { s.ReceiveStream.CancelRead(uint32(c)) }
