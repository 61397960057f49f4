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

// protocolError is a connection error we detected: we send GOAWAY with
// its code and close.
type protocolError struct {
	code   http2.ErrCode
	reason string
}

func (e protocolError) Error() string { return fmt.Sprintf("%v: %s", e.code, e.reason) }

func connError(code http2.ErrCode, format string, args ...any) error {
	return protocolError{code, fmt.Sprintf(format, args...)}
}
