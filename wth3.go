package dialer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer/internal/wt2"
)

// requestSession asks for a WebTransport session on a pooled h3 connection
// opened for WebTransport. A non-2xx answer comes with a nil session.
func (h *h3Conn) requestSession(ctx context.Context, req *wtRequest) (*http.Response, sessionImpl, error) {
	return h3Session(h.wcc.Dial(ctx, req.url.String(), req.header))
}

// h3Session wraps webtransport-go's answer to a session request.
func h3Session(resp *http.Response, sess *webtransport.Session, err error) (*http.Response, sessionImpl, error) {
	if sess == nil {
		if err == nil && resp != nil && resp.StatusCode/100 == 2 {
			err = errors.New("the server answered 2xx but set up no session")
		}
		return resp, nil, err
	}
	return resp, wtH3{sess}, err
}

// wtH3 is a WebTransport session over HTTP/3, from webtransport-go.
type wtH3 struct{ s *webtransport.Session }

func (w wtH3) OpenStream() (bidiStream, error) { return wrapWTStream(w.s.OpenStream()) }
func (w wtH3) OpenStreamSync(ctx context.Context) (bidiStream, error) {
	return wrapWTStream(w.s.OpenStreamSync(ctx))
}
func (w wtH3) OpenUniStream() (sendStream, error) { return wrapWTSend(w.s.OpenUniStream()) }
func (w wtH3) OpenUniStreamSync(ctx context.Context) (sendStream, error) {
	return wrapWTSend(w.s.OpenUniStreamSync(ctx))
}
func (w wtH3) AcceptStream(ctx context.Context) (bidiStream, error) {
	return wrapWTStream(w.s.AcceptStream(ctx))
}
func (w wtH3) AcceptUniStream(ctx context.Context) (receiveStream, error) {
	st, err := w.s.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return wtReceive{st}, nil
}
func (w wtH3) SendDatagram(b []byte) error { return w.s.SendDatagram(b) }
func (w wtH3) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return w.s.ReceiveDatagram(ctx)
}
func (w wtH3) CloseWithError(code SessionErrorCode, msg string) error {
	return w.s.CloseWithError(webtransport.SessionErrorCode(code), msg)
}
func (w wtH3) Context() context.Context { return w.s.Context() }
func (w wtH3) Protocol() string         { return w.s.SessionState().ApplicationProtocol }
func (w wtH3) LocalAddr() net.Addr      { return w.s.LocalAddr() }
func (w wtH3) RemoteAddr() net.Addr     { return w.s.RemoteAddr() }

func wrapWTStream(st *webtransport.Stream, err error) (bidiStream, error) {
	if err != nil {
		return nil, err
	}
	return wtStream{st}, nil
}

func wrapWTSend(st *webtransport.SendStream, err error) (sendStream, error) {
	if err != nil {
		return nil, err
	}
	return wtSend{st}, nil
}

// wtStream, wtSend and wtReceive adapt webtransport-go's streams to the
// package's error codes.
type wtStream struct{ *webtransport.Stream }

func (s wtStream) CancelRead(c StreamErrorCode) { s.Stream.CancelRead(webtransport.StreamErrorCode(c)) }
func (s wtStream) CancelWrite(c StreamErrorCode) {
	s.Stream.CancelWrite(webtransport.StreamErrorCode(c))
}

type wtSend struct{ *webtransport.SendStream }

func (s wtSend) CancelWrite(c StreamErrorCode) {
	s.SendStream.CancelWrite(webtransport.StreamErrorCode(c))
}

type wtReceive struct{ *webtransport.ReceiveStream }

func (s wtReceive) CancelRead(c StreamErrorCode) {
	s.ReceiveStream.CancelRead(webtransport.StreamErrorCode(c))
}

// convertErr maps webtransport-go's and wt2's session and stream errors to
// the package's SessionError and StreamError; other errors pass unchanged.
func convertErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var se *webtransport.SessionError
	if errors.As(err, &se) {
		return &SessionError{Code: SessionErrorCode(se.ErrorCode), Message: se.Message, Remote: se.Remote}
	}
	var ste *webtransport.StreamError
	if errors.As(err, &ste) {
		return &StreamError{Code: StreamErrorCode(ste.ErrorCode), Remote: ste.Remote}
	}
	if se, ok := errors.AsType[*wt2.SessionError](err); ok {
		return &SessionError{Code: SessionErrorCode(se.Code), Message: se.Message, Remote: se.Remote}
	}
	if ste, ok := errors.AsType[*wt2.StreamError](err); ok {
		return &StreamError{Code: StreamErrorCode(ste.Code), Remote: ste.Remote}
	}
	return err
}
