package h2conn

import (
	"errors"
	"fmt"

	"golang.org/x/net/http2"
)

var (
	// ErrConnClosed is the error of a connection closed by Close or
	// Shutdown, and of every stream still open on it.
	ErrConnClosed = errors.New("h2conn: connection closed")
	// ErrNotProcessed marks a stream the peer never processed, so the
	// request may be retried on another connection: OpenStream on a
	// closing connection, a stream above the last stream ID of a GOAWAY,
	// or (through StreamError.Is) a stream reset with REFUSED_STREAM.
	ErrNotProcessed = errors.New("h2conn: stream not processed by the peer")
	// ErrNoExtendedConnect is returned by RoundTrip for an extended CONNECT
	// request when the peer's SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL=1
	// (RFC 8441 section 3).
	ErrNoExtendedConnect = errors.New("h2conn: peer does not support extended CONNECT")
	// ErrHeaderListTooLarge is returned when a header list is larger than
	// the peer's SETTINGS_MAX_HEADER_LIST_SIZE; nothing was sent.
	ErrHeaderListTooLarge = errors.New("h2conn: header list larger than the peer accepts")
	// ErrStreamClosed is returned by a write after CloseWrite, and by any
	// operation after Close.
	ErrStreamClosed = errors.New("h2conn: stream closed")
	// ErrWriteTimeout marks a connection ended because a write to its
	// socket did not finish in time: the write deadline of the stream it
	// wrote for passed, or the socket took nothing for Config.WriteTimeout
	// (the peer stopped reading). A frame may have been cut short, and
	// nothing in HTTP/2 resynchronises a byte stream (RFC 9113 section
	// 4.1), so the connection cannot go on. The error also wraps the
	// socket's own, which matches os.ErrDeadlineExceeded.
	ErrWriteTimeout = errors.New("h2conn: socket write timed out")
	// ErrPeerHeaderListTooLarge is the cause of a stream reset, or of a
	// connection error, because a header list the peer sent is larger than
	// our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 section 6.5.2); the 1xx
	// responses before a final response count with it.
	ErrPeerHeaderListTooLarge = errors.New("h2conn: peer's header list too large")
	// ErrHPACK is the cause of a COMPRESSION_ERROR connection error: a
	// header block we could not decode (RFC 9113 section 4.3).
	ErrHPACK = errors.New("h2conn: HPACK decoding failed")
)

// StreamError reports a stream ended by RST_STREAM, sent by the peer
// (Remote) or by us. Use errors.As to get the code.
type StreamError struct {
	StreamID uint32
	Code     http2.ErrCode
	// Remote is true when the peer reset the stream, false when we did.
	Remote bool
	// Cause says why we reset the stream (a context's error, a protocol
	// violation, ErrStreamClosed); nil for remote resets.
	Cause error
}

func (e *StreamError) Error() string {
	by := "us"
	if e.Remote {
		by = "peer"
	}
	msg := fmt.Sprintf("h2conn: stream %d reset by %s with %v", e.StreamID, by, e.Code)
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the cause of a local reset.
func (e *StreamError) Unwrap() error { return e.Cause }

// Is reports a stream the peer refused as ErrNotProcessed.
func (e *StreamError) Is(target error) bool {
	return target == ErrNotProcessed && e.Remote && e.Code == http2.ErrCodeRefusedStream
}

// GoAwayError is why a connection ended with GOAWAY: one the peer sent
// (Remote), or one we sent after the peer broke the protocol.
type GoAwayError struct {
	// LastStreamID is the highest stream ID the sender of the GOAWAY
	// processed or may still process.
	LastStreamID uint32
	Code         http2.ErrCode
	// Debug is the GOAWAY's debug data, or what we found wrong.
	Debug  string
	Remote bool
	// Cause is what we found wrong, for errors.Is (ErrHPACK,
	// ErrPeerHeaderListTooLarge); nil for remote GOAWAYs and for causes
	// with no error of their own.
	Cause error
}

func (e *GoAwayError) Error() string {
	by := "us"
	if e.Remote {
		by = "peer"
	}
	msg := fmt.Sprintf("h2conn: GOAWAY from %s with %v, last stream %d", by, e.Code, e.LastStreamID)
	if e.Debug != "" {
		msg += ": " + e.Debug
	}
	return msg
}

// Unwrap returns the cause of a GOAWAY we sent.
func (e *GoAwayError) Unwrap() error { return e.Cause }

// protocolError is a connection error we detected: we send GOAWAY with
// its code and reason and close.
type protocolError struct {
	code   http2.ErrCode
	reason string
	cause  error // for errors.Is, or nil
}

func (e protocolError) Error() string { return fmt.Sprintf("%v: %s", e.code, e.reason) }

func connError(code http2.ErrCode, format string, args ...any) error {
	return protocolError{code: code, reason: fmt.Sprintf(format, args...)}
}

// connErrorIs is connError with a cause that errors.Is matches, such as
// ErrHPACK.
func connErrorIs(code http2.ErrCode, cause error, format string, args ...any) error {
	return protocolError{code: code, reason: fmt.Sprintf(format, args...), cause: cause}
}
