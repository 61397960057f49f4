package dialer

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A Session is a WebTransport session, whatever HTTP version carries it:
// HTTP/3 (draft-ietf-webtrans-http3, through webtransport-go) or HTTP/2
// (draft-ietf-webtrans-http2: capsules on an extended CONNECT stream, when
// UDP is blocked or slower). The methods behave the same over both;
// HTTPVersion and DatagramsReliable tell callers which one they have.
type Session struct {
	impl    sessionImpl
	version int
	// done releases the carrying connection; it runs once, when the
	// session ends either way.
	done func()
}

// newSession wraps impl; release runs once when the session ends.
func newSession(impl sessionImpl, version int, release func()) *Session {
	s := &Session{impl: impl, version: version, done: sync.OnceFunc(release)}
	context.AfterFunc(impl.Context(), s.done)
	return s
}

// sessionImpl is a WebTransport session over one HTTP version.
type sessionImpl interface {
	OpenStream() (bidiStream, error)
	OpenStreamSync(context.Context) (bidiStream, error)
	OpenUniStream() (sendStream, error)
	OpenUniStreamSync(context.Context) (sendStream, error)
	AcceptStream(context.Context) (bidiStream, error)
	AcceptUniStream(context.Context) (receiveStream, error)
	SendDatagram([]byte) error
	ReceiveDatagram(context.Context) ([]byte, error)
	CloseWithError(SessionErrorCode, string) error
	Context() context.Context
	Protocol() string
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

type receiveStream interface {
	io.Reader
	CancelRead(StreamErrorCode)
	SetReadDeadline(time.Time) error
}

type sendStream interface {
	io.Writer
	io.Closer
	CancelWrite(StreamErrorCode)
	SetWriteDeadline(time.Time) error
}

type bidiStream interface {
	receiveStream
	sendStream
	SetDeadline(time.Time) error
}

// SessionErrorCode is the application's code for closing a session.
type SessionErrorCode uint32

// StreamErrorCode is the application's code for resetting a stream.
type StreamErrorCode uint32

// A SessionError is returned by a closed session's methods and streams: the
// code and message the session was closed with, and whether the peer
// closed it.
type SessionError struct {
	Code    SessionErrorCode
	Message string
	Remote  bool
}

func (e *SessionError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by the peer"
	}
	return fmt.Sprintf("webtransport: session closed %s with code %d: %q", who, e.Code, e.Message)
}

// A StreamError is returned by a stream reset by CancelRead or
// CancelWrite, on either side.
type StreamError struct {
	Code   StreamErrorCode
	Remote bool
}

func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by the peer"
	}
	return fmt.Sprintf("webtransport: stream reset %s with code %d", who, e.Code)
}

// OpenStream opens a bidirectional stream without waiting for flow control
// credit; it fails when the peer's stream limit is reached.
func (s *Session) OpenStream() (*Stream, error) {
	st, err := s.impl.OpenStream()
	return newStream(st, err)
}

// OpenStreamSync opens a bidirectional stream, waiting for the peer's
// stream limit if needed.
func (s *Session) OpenStreamSync(ctx context.Context) (*Stream, error) {
	st, err := s.impl.OpenStreamSync(ctx)
	return newStream(st, err)
}

// OpenUniStream opens a unidirectional (send-only) stream without waiting.
func (s *Session) OpenUniStream() (*SendStream, error) {
	st, err := s.impl.OpenUniStream()
	return newSendStream(st, err)
}

// OpenUniStreamSync opens a unidirectional stream, waiting for the peer's
// stream limit if needed.
func (s *Session) OpenUniStreamSync(ctx context.Context) (*SendStream, error) {
	st, err := s.impl.OpenUniStreamSync(ctx)
	return newSendStream(st, err)
}

// AcceptStream waits for the peer to open a bidirectional stream.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	st, err := s.impl.AcceptStream(ctx)
	return newStream(st, err)
}

// AcceptUniStream waits for the peer to open a unidirectional stream.
func (s *Session) AcceptUniStream(ctx context.Context) (*ReceiveStream, error) {
	st, err := s.impl.AcceptUniStream(ctx)
	if err != nil {
		return nil, convertErr(err)
	}
	return &ReceiveStream{s: st}, nil
}

// SendDatagram sends b as one datagram. See DatagramsReliable.
func (s *Session) SendDatagram(b []byte) error { return convertErr(s.impl.SendDatagram(b)) }

// ReceiveDatagram waits for the next datagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	b, err := s.impl.ReceiveDatagram(ctx)
	return b, convertErr(err)
}

// CloseWithError closes the session with an application code and message,
// which the peer sees in its SessionError.
func (s *Session) CloseWithError(code SessionErrorCode, msg string) error {
	err := convertErr(s.impl.CloseWithError(code, msg))
	s.done()
	return err
}

// Context is done when the session is closed, by either side.
func (s *Session) Context() context.Context { return s.impl.Context() }

// Protocol returns the application protocol the server selected from
// WithSubprotocols (WT-Protocol), or "".
func (s *Session) Protocol() string { return s.impl.Protocol() }

// HTTPVersion returns the major version of the HTTP connection carrying the
// session: 3 (QUIC) or 2 (TCP).
func (s *Session) HTTPVersion() int { return s.version }

// DatagramsReliable reports whether datagrams are delivered reliably and in
// order: false over HTTP/3, where they are QUIC datagrams and may be lost;
// true over HTTP/2, where they travel as capsules on the TCP stream.
func (s *Session) DatagramsReliable() bool { return s.version == 2 }

// LocalAddr returns the local address of the carrying connection.
func (s *Session) LocalAddr() net.Addr { return s.impl.LocalAddr() }

// RemoteAddr returns the server's address.
func (s *Session) RemoteAddr() net.Addr { return s.impl.RemoteAddr() }

// A Stream is a bidirectional WebTransport stream.
type Stream struct{ s bidiStream }

func newStream(st bidiStream, err error) (*Stream, error) {
	if err != nil {
		return nil, convertErr(err)
	}
	return &Stream{s: st}, nil
}

// Read reads from the stream; io.EOF once the peer closed its side.
func (s *Stream) Read(b []byte) (int, error) { n, err := s.s.Read(b); return n, convertErr(err) }

// Write writes to the stream.
func (s *Stream) Write(b []byte) (int, error) { n, err := s.s.Write(b); return n, convertErr(err) }

// Close closes the send side (FIN); the receive side stays readable.
func (s *Stream) Close() error { return convertErr(s.s.Close()) }

// CancelRead stops reading and asks the peer to stop sending.
func (s *Stream) CancelRead(code StreamErrorCode) { s.s.CancelRead(code) }

// CancelWrite resets the send side.
func (s *Stream) CancelWrite(code StreamErrorCode) { s.s.CancelWrite(code) }

// SetDeadline sets the read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// A SendStream is the sending end of a unidirectional stream.
type SendStream struct{ s sendStream }

func newSendStream(st sendStream, err error) (*SendStream, error) {
	if err != nil {
		return nil, convertErr(err)
	}
	return &SendStream{s: st}, nil
}

// Write writes to the stream.
func (s *SendStream) Write(b []byte) (int, error) { n, err := s.s.Write(b); return n, convertErr(err) }

// Close closes the stream (FIN).
func (s *SendStream) Close() error { return convertErr(s.s.Close()) }

// CancelWrite resets the stream.
func (s *SendStream) CancelWrite(code StreamErrorCode) { s.s.CancelWrite(code) }

// SetWriteDeadline sets the write deadline.
func (s *SendStream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// A ReceiveStream is the receiving end of a unidirectional stream.
type ReceiveStream struct{ s receiveStream }

// Read reads from the stream; io.EOF once the peer closed it.
func (s *ReceiveStream) Read(b []byte) (int, error) { n, err := s.s.Read(b); return n, convertErr(err) }

// CancelRead stops reading and asks the peer to stop sending.
func (s *ReceiveStream) CancelRead(code StreamErrorCode) { s.s.CancelRead(code) }

// SetReadDeadline sets the read deadline.
func (s *ReceiveStream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }
