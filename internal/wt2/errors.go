package wt2

import (
	"errors"
	"fmt"
)

// Kinds of protocol violation by the peer (draft §3.4). A session ended by
// one has a *SessionError cause that wraps the kind.
var (
	// ErrProtocol is WT_ERROR: a malformed or oversized capsule, an error
	// code above 32 bits, a bad close message.
	ErrProtocol = errors.New("wt2: WT_ERROR")
	// ErrStreamState is WT_STREAM_STATE_ERROR: a capsule for a stream in a
	// state that does not allow it (data after FIN or reset, a stream we
	// never opened, a second WT_STOP_SENDING, a wrong reliable size).
	ErrStreamState = errors.New("wt2: WT_STREAM_STATE_ERROR")
	// ErrFlowControl is WT_FLOW_CONTROL_ERROR: data or streams beyond the
	// limits we granted, or a limit that went down.
	ErrFlowControl = errors.New("wt2: WT_FLOW_CONTROL_ERROR")
)

// ErrTooManyStreams is returned by OpenStream and OpenUniStream when the
// peer's stream limit is reached; OpenStreamSync and OpenUniStreamSync wait
// for more credit instead.
var ErrTooManyStreams = errors.New("wt2: peer's stream limit reached")

// ErrDatagramTooLarge is returned by SendDatagram for a payload above
// Config.MaxDatagramSize.
var ErrDatagramTooLarge = errors.New("wt2: datagram too large")

// SessionError is why a session ended with a WT_CLOSE_SESSION capsule, or
// with a clean end of the CONNECT stream (Code 0, empty Message, Remote
// true). Remote tells whether the peer closed it.
type SessionError struct {
	Code    uint32
	Message string
	Remote  bool

	err error // the protocol violation that made us close, if any
}

// Error describes the close: who closed, the code and the message.
func (e *SessionError) Error() string {
	by := "locally"
	if e.Remote {
		by = "by peer"
	}
	if e.Message == "" {
		return fmt.Sprintf("wt2: session closed %s with code %d", by, e.Code)
	}
	return fmt.Sprintf("wt2: session closed %s with code %d: %s", by, e.Code, e.Message)
}

// Unwrap returns the protocol violation (wrapping ErrProtocol,
// ErrStreamState or ErrFlowControl) that made us close the session, or nil.
func (e *SessionError) Unwrap() error { return e.err }

// StreamError is why one direction of a stream was aborted: by
// WT_RESET_STREAM or WT_STOP_SENDING from the peer (Remote true), or by
// CancelRead or CancelWrite here (Remote false).
type StreamError struct {
	StreamID uint64
	Code     uint32
	Remote   bool
}

// Error describes the abort: the stream, who aborted it and the code.
func (e *StreamError) Error() string {
	by := "locally"
	if e.Remote {
		by = "by peer"
	}
	return fmt.Sprintf("wt2: stream %d canceled %s with code %d", e.StreamID, by, e.Code)
}

// violation is a protocol error by the peer.
type violation struct {
	kind error // ErrProtocol, ErrStreamState or ErrFlowControl
	msg  string
}

func violate(kind error, format string, args ...any) error {
	return &violation{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (v *violation) Error() string { return v.kind.Error() + ": " + v.msg }
func (v *violation) Unwrap() error { return v.kind }

// wire is the message we send the peer in WT_CLOSE_SESSION.
func (v *violation) wire() string {
	name := "WT_ERROR"
	switch v.kind {
	case ErrStreamState:
		name = "WT_STREAM_STATE_ERROR"
	case ErrFlowControl:
		name = "WT_FLOW_CONTROL_ERROR"
	}
	return name + ": " + v.msg
}
