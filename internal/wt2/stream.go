package wt2

import (
	"fmt"
	"io"
	"time"
)

// Stream ID bits (QUIC rules, draft §5.2).
const (
	initiatorBit = 0x1 // set on server-initiated streams (client-initiated in Draft13)
	uniBit       = 0x2 // set on unidirectional streams
)

// localBit is the initiator bit of the streams we open.
func (s *Session) localBit() uint64 {
	if s.client {
		return s.w.clientBit
	}
	return s.w.clientBit ^ initiatorBit
}

func (s *Session) isLocal(id uint64) bool { return id&initiatorBit == s.localBit() }

// stream is the state of one stream, guarded by Session.mu. The peer's
// unidirectional streams have no send side, ours no receive side.
type stream struct {
	s  *Session
	id uint64

	// Send side.
	hasSend       bool
	sendPending   []byte // the rest of the blocked Write's data; the writer copies from it
	sendFin       bool   // Close was called: FIN follows the pending data
	finSent       bool
	resetQueued   bool // WT_RESET_STREAM is (or was) to be sent instead of more data
	resetSent     bool
	resetCode     uint32
	sendErr       error // for writers once the send side is cancelled
	sendOff       uint64
	sendMax       uint64 // peer's limit (WT_MAX_STREAM_DATA)
	blockedAt     uint64 // sendMax+1 when WT_STREAM_DATA_BLOCKED was queued for it
	stopReceived  bool   // the peer sent WT_STOP_SENDING
	inReady       bool
	inBlocked     bool // in Session.sessionBlocked
	writeDeadline time.Time
	writeN        notifier

	// Receive side.
	hasRecv       bool
	buf           []rchunk // received, unread data (recvbuf.go)
	filling       bool     // the reader is writing into the last chunk of buf, outside Session.mu
	recvOff       uint64   // bytes received
	readOff       uint64   // bytes read or discarded
	recvMax       uint64   // our limit (WT_MAX_STREAM_DATA)
	finReceived   bool
	resetReceived bool
	recvErr       error // local CancelRead or the peer's reset
	stopQueued    bool  // we send (or sent) WT_STOP_SENDING
	stopCode      uint32
	readDeadline  time.Time
	readN         notifier

	// Control capsules to send.
	inCtrl            bool
	needReset         bool
	needStop          bool
	needMaxStreamData bool
	needBlocked       bool

	deleted  bool // finished in both directions and removed from Session.streams
	accepted bool // a peer's stream returned by AcceptStream or AcceptUniStream
}

// newStreamLocked creates stream id and adds it to s.streams.
func (s *Session) newStreamLocked(id uint64, hasSend, hasRecv bool, sendMax uint64) *stream {
	st := &stream{
		s:       s,
		id:      id,
		hasSend: hasSend,
		hasRecv: hasRecv,
		sendMax: sendMax,
		recvMax: uint64(s.cfg.MaxStreamData),
	}
	s.streams[id] = st
	return st
}

// ReceiveStream is the receiving part of a stream: a peer's unidirectional
// stream, or one direction of a Stream. Read must not be called
// concurrently with itself.
type ReceiveStream struct{ st *stream }

// SendStream is the sending part of a stream: one we opened with
// OpenUniStream, or one direction of a Stream. Write must not be called
// concurrently with itself.
type SendStream struct{ st *stream }

// Stream is a bidirectional stream.
type Stream struct {
	ReceiveStream
	SendStream
}

func newBidi(st *stream) *Stream {
	return &Stream{ReceiveStream{st}, SendStream{st}}
}

// StreamID returns the stream's ID.
func (r *ReceiveStream) StreamID() uint64 { return r.st.id }

// StreamID returns the stream's ID.
func (w *SendStream) StreamID() uint64 { return w.st.id }

// StreamID returns the stream's ID.
func (str *Stream) StreamID() uint64 { return str.ReceiveStream.st.id }

// SetDeadline sets the read and write deadlines.
func (str *Stream) SetDeadline(t time.Time) error {
	str.SetReadDeadline(t)
	return str.SetWriteDeadline(t)
}

// Read reads stream data. It returns io.EOF after the peer's FIN and all
// data; a *StreamError after the peer's WT_RESET_STREAM (unread data is
// discarded) or CancelRead; the session's error once it has ended; and
// os.ErrDeadlineExceeded after the read deadline.
func (r *ReceiveStream) Read(p []byte) (int, error) {
	st := r.st
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.cause != nil {
			return 0, s.cause
		}
		if st.recvErr != nil {
			return 0, st.recvErr
		}
		if st.unreadLocked() > 0 {
			if len(p) == 0 {
				return 0, nil
			}
			return st.readLocked(p), nil
		}
		if st.finReceived {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if err := s.waitLocked(nil, st.readN.wait(), st.readDeadline); err != nil {
			return 0, err
		}
	}
}

// CancelRead aborts receiving: unread and later data is discarded, Read
// returns a *StreamError{Remote: false}, and the peer is sent
// WT_STOP_SENDING with code unless it has already finished sending.
func (r *ReceiveStream) CancelRead(code uint32) {
	st := r.st
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause != nil || st.recvErr != nil || (st.finReceived && st.unreadLocked() == 0) {
		return
	}
	st.recvErr = &StreamError{StreamID: st.id, Code: code}
	st.discardLocked()
	if !st.finReceived {
		st.stopQueued, st.stopCode, st.needStop = true, code, true
		s.queueCtrlLocked(st)
	}
	st.readN.notify()
	s.maybeFinishLocked(st)
}

// SetReadDeadline sets when a pending and later Reads fail with
// os.ErrDeadlineExceeded; the zero time means never.
func (r *ReceiveStream) SetReadDeadline(t time.Time) error {
	s := r.st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r.st.readDeadline = t
	r.st.readN.notify()
	return nil
}

// Write sends p, returning once all of it is taken by the session's writer
// (flow control permitting), or with the number of bytes taken and an
// error: a *StreamError after CancelWrite or the peer's WT_STOP_SENDING,
// the session's error once it has ended, os.ErrDeadlineExceeded after the
// write deadline. Without a write deadline, a Write that finds no other
// write under way writes its data on its own goroutine.
func (w *SendStream) Write(p []byte) (int, error) {
	st := w.st
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := st.writeErrLocked(); err != nil {
		return 0, err
	}
	if st.sendFin {
		return 0, fmt.Errorf("wt2: write on closed stream %d", st.id)
	}
	if len(p) == 0 {
		return 0, nil
	}
	st.sendPending = p
	if st.writeDeadline.IsZero() {
		s.writeDirectLocked(st)
	} else {
		s.queueReadyLocked(st)
	}
	for {
		if len(st.sendPending) == 0 {
			st.sendPending = nil
			return len(p), nil
		}
		err := st.writeErrLocked()
		if err == nil {
			err = s.waitLocked(nil, st.writeN.wait(), st.writeDeadline)
		}
		if err != nil {
			n := len(p) - len(st.sendPending)
			st.sendPending = nil
			return n, err
		}
	}
}

// writeErrLocked is why the send side cannot take more data, or nil.
func (st *stream) writeErrLocked() error {
	if st.s.cause != nil {
		return st.s.cause
	}
	return st.sendErr
}

// Close ends the send side: FIN follows the data written so far. It does
// not wait for FIN to be written. Closing a cancelled stream does nothing.
func (w *SendStream) Close() error {
	st := w.st
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause != nil {
		return s.cause
	}
	if st.sendFin || st.resetQueued {
		return nil
	}
	st.sendFin = true
	s.queueReadyLocked(st)
	return nil
}

// CancelWrite aborts sending: data not yet taken by the writer is dropped,
// Write returns a *StreamError{Remote: false}, and the peer gets
// WT_RESET_STREAM with code. It does nothing after FIN was sent.
func (w *SendStream) CancelWrite(code uint32) {
	st := w.st
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause != nil || st.finSent || st.resetQueued {
		return
	}
	st.sendErr = &StreamError{StreamID: st.id, Code: code}
	s.resetLocked(st, code)
}

// SetWriteDeadline sets when a pending and later Writes fail with
// os.ErrDeadlineExceeded; the zero time means never.
func (w *SendStream) SetWriteDeadline(t time.Time) error {
	s := w.st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w.st.writeDeadline = t
	w.st.writeN.notify()
	return nil
}

// resetLocked replaces the rest of the stream's data and FIN with
// WT_RESET_STREAM; st.sendErr is set. A blocked Write returns with the
// error and the count of bytes the writer took.
func (s *Session) resetLocked(st *stream, code uint32) {
	st.resetQueued, st.resetCode, st.needReset = true, code, true
	st.sendFin = false
	st.writeN.notify()
	s.queueCtrlLocked(st)
}

// queueReadyLocked gives st a turn to send data or FIN.
func (s *Session) queueReadyLocked(st *stream) {
	if !st.inReady {
		st.inReady = true
		s.ready = append(s.ready, st)
		s.wakeWriter()
	}
}

// queueCtrlLocked has the writer send st's pending control capsules.
func (s *Session) queueCtrlLocked(st *stream) {
	if !st.inCtrl {
		st.inCtrl = true
		s.ctrl = append(s.ctrl, st)
		s.wakeWriter()
	}
}

// maybeFinishLocked forgets st once it is finished in both directions and,
// for a peer's stream the application has accepted, grants the peer one
// more (WT_MAX_STREAMS). Credit for a stream not yet accepted waits for
// AcceptStream, so that the accept queue stays within the limit.
func (s *Session) maybeFinishLocked(st *stream) {
	if st.deleted {
		return
	}
	sendDone := !st.hasSend || st.finSent || st.resetSent
	recvDone := !st.hasRecv || st.resetReceived || (st.finReceived && st.unreadLocked() == 0)
	if !sendDone || !recvDone {
		return
	}
	st.deleted = true
	delete(s.streams, st.id)
	if !s.isLocal(st.id) && st.accepted {
		s.grantStreamLocked(st)
	}
}

// grantStreamLocked lets the peer open one more stream of st's type.
func (s *Session) grantStreamLocked(st *stream) {
	in := &s.inBidi
	if st.id&uniBit != 0 {
		in = &s.inUni
	}
	in.closed++
	in.limit = in.closed + in.window
	in.needMax = true
	s.wakeWriter()
}
