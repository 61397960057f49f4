package wt2

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// errEnded stops the read loop once the session has ended.
var errEnded = errors.New("wt2: session ended")

// readLoop is the only reader of rw. It applies each capsule under s.mu and
// never waits for the application or the writer. Once the session has ended
// it keeps reading, discarding, until the peer ends the CONNECT stream, so
// that the last capsules and the end of stream can cross without a reset.
func (s *Session) readLoop() {
	defer close(s.readerDone)
	if ds, ok := s.rw.(dataHandlerSetter); ok {
		s.pushLoop(ds)
		return
	}
	br := bufio.NewReaderSize(s.rw, readBuffer)
	err := s.readCapsules(&capsuleReader{br: br})
	switch {
	case err == errEnded:
	case err == io.EOF:
		// The peer ended the CONNECT stream without WT_CLOSE_SESSION:
		// the same as code 0 and no message (draft §6.12).
		s.mu.Lock()
		s.endLocked(&SessionError{Remote: true}, nil)
		s.mu.Unlock()
	case errors.As(err, new(*violation)):
		s.fail(err)
	default:
		s.fail(fmt.Errorf("wt2: reading CONNECT stream: %w", err))
	}
	io.Copy(io.Discard, br)
}

func (s *Session) readCapsules(r *capsuleReader) error {
	for {
		ct, err := r.next()
		if err != nil {
			return err
		}
		if err := s.handleCapsule(ct, r); err != nil {
			return err
		}
		s.mu.Lock()
		ended := s.cause != nil
		s.mu.Unlock()
		if ended {
			return errEnded
		}
	}
}

// handleCapsule applies one capsule. Its type is the dialect's code; the
// switch reads the package's names for it.
func (s *Session) handleCapsule(ct http3.CapsuleType, r *capsuleReader) error {
	n := r.Remaining()
	var a, b, c uint64
	switch ct = s.w.capsuleType(ct); ct {
	case capsuleStream, capsuleStreamFin:
		return s.handleStream(r, n, ct == capsuleStreamFin)
	case capsuleDatagram:
		return s.handleDatagram(r, n)
	case capsuleCloseSession:
		return s.handleClose(r, n)
	case capsuleDrainSession:
		if err := r.Discard(); err != nil {
			return err
		}
		s.mu.Lock()
		if !s.drainRecv {
			s.drainRecv = true
			close(s.draining)
		}
		s.mu.Unlock()
		return nil
	case capsuleResetStream:
		least := 3 // stream ID, code, Reliable Size (-15 §6.2)
		if !s.w.resetSize {
			least = 2 // without Reliable Size (-08 §5.2), or with it (-13 §6.2)
		}
		got, err := readFields(ct, r, n, least, &a, &b, &c)
		if err != nil {
			return err
		}
		return s.handleReset(a, b, c, got == 3)
	case capsuleStopSending:
		if err := readControl(ct, r, n, &a, &b); err != nil {
			return err
		}
		return s.handleStopSending(a, b)
	case capsuleMaxData:
		if err := readControl(ct, r, n, &a); err != nil {
			return err
		}
		return s.handleMaxData(a)
	case capsuleMaxStreamData:
		if err := readControl(ct, r, n, &a, &b); err != nil {
			return err
		}
		return s.handleMaxStreamData(a, b)
	case capsuleMaxStreamsBidi, capsuleMaxStreamsUni:
		if err := readControl(ct, r, n, &a); err != nil {
			return err
		}
		return s.handleMaxStreams(a, ct == capsuleMaxStreamsUni)
	case capsuleDataBlocked, capsuleStreamsBlockedBidi, capsuleStreamsBlockedUni:
		// Advisory: we grant credit as data is read and streams finish.
		if err := readControl(ct, r, n, &a); err != nil {
			return err
		}
		if ct != capsuleDataBlocked && a > maxStreamsValue {
			return violate(ErrFlowControl, "WT_STREAMS_BLOCKED of %d streams (at most 2^60)", a)
		}
		return nil
	case capsuleStreamDataBlocked:
		if err := readControl(ct, r, n, &a, &b); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_, err := s.streamLocked(a, true, false)
		return err
	default:
		// PADDING and unknown capsules are skipped (RFC 9297 §3.2).
		return r.Discard()
	}
}

// streamLocked finds stream id for a capsule that needs its receive side
// (recv) or its send side (send), opening the peer's streams up to id
// (stream IDs cannot be skipped). It returns nil, nil for a stream that is
// already finished and forgotten.
func (s *Session) streamLocked(id uint64, recv, send bool) (*stream, error) {
	uni := id&uniBit != 0
	if st, ok := s.streams[id]; ok {
		if recv && !st.hasRecv || send && !st.hasSend {
			return nil, violate(ErrStreamState, "capsule for a direction stream %d does not have", id)
		}
		return st, nil
	}
	index := id >> 2
	if s.isLocal(id) {
		next := s.nextBidi
		if uni {
			next = s.nextUni
		}
		switch {
		case recv && uni:
			return nil, violate(ErrStreamState, "peer sent on our unidirectional stream %d", id)
		case index >= next:
			return nil, violate(ErrStreamState, "stream %d was never opened by us", id)
		}
		return nil, nil
	}
	if send && uni {
		return nil, violate(ErrStreamState, "capsule for the send side of the peer's unidirectional stream %d", id)
	}
	in := &s.inBidi
	if uni {
		in = &s.inUni
	}
	if index < in.opened {
		return nil, nil
	}
	if index >= in.limit {
		return nil, violate(ErrFlowControl, "stream %d is beyond the %d streams we allowed", id, in.limit)
	}
	for i := in.opened; i <= index; i++ {
		sid := i<<2 | id&(uniBit|initiatorBit)
		if uni {
			s.acceptUni = append(s.acceptUni, s.newStreamLocked(sid, false, true, 0))
		} else {
			s.acceptBidi = append(s.acceptBidi, s.newStreamLocked(sid, true, true, s.peer.streamDataBidiLocal))
		}
	}
	in.opened = index + 1
	s.acceptN.notify()
	return s.streams[id], nil
}

func (s *Session) handleStream(r *capsuleReader, n int64, fin bool) error {
	if n > maxStreamCapsule {
		return violate(ErrProtocol, "WT_STREAM capsule of %d bytes (at most %d)", n, maxStreamCapsule)
	}
	id, err := quicvarint.Read(r)
	if err == io.EOF {
		return violate(ErrProtocol, "WT_STREAM capsule without a stream ID")
	}
	if err != nil {
		return err
	}
	size := uint64(r.Remaining())
	st, err := s.streamForData(id, size)
	if err != nil {
		return err
	}
	// Read the data straight into the stream's receive buffer, a piece
	// at a time: the application can read each piece while the next
	// arrives.
	for size > 0 {
		s.mu.Lock()
		room := st.roomLocked(size)
		s.mu.Unlock()
		k, err := io.ReadFull(r, room)
		s.mu.Lock()
		st.commitLocked(k)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		size -= uint64(k)
	}
	s.endStreamCapsule(st, fin)
	return nil
}

// streamForData returns the stream a WT_STREAM capsule with size bytes of
// data for stream id goes to, once it is sure that the stream may still
// receive and that the data is within its and the session's credit.
func (s *Session) streamForData(id, size uint64) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(id, true, false)
	switch {
	case err != nil:
		return nil, err
	case st == nil || st.finReceived || st.resetReceived:
		return nil, violate(ErrStreamState, "WT_STREAM for stream %d after its end", id)
	case st.recvOff+size > st.recvMax:
		return nil, violate(ErrFlowControl, "stream %d: %d bytes beyond its limit of %d", id, st.recvOff+size, st.recvMax)
	case s.received+size > s.recvMax:
		return nil, violate(ErrFlowControl, "%d bytes beyond the session limit of %d", s.received+size, s.recvMax)
	}
	return st, nil
}

// endStreamCapsule finishes a WT_STREAM capsule whose data st has taken.
func (s *Session) endStreamCapsule(st *stream, fin bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fin {
		st.finReceived = true
	}
	st.readN.notify()
	s.maybeFinishLocked(st)
}

// handleReset applies WT_RESET_STREAM; hasSize tells whether it carried a
// Reliable Size.
func (s *Session) handleReset(id, code, size uint64, hasSize bool) error {
	if code > maxErrorCode {
		return violate(ErrProtocol, "WT_RESET_STREAM code %d exceeds 32 bits", code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(id, true, false)
	switch {
	case err != nil:
		return err
	case st == nil || st.finReceived || st.resetReceived:
		return violate(ErrStreamState, "WT_RESET_STREAM for stream %d after its end", id)
	case hasSize && size != st.recvOff:
		return violate(ErrStreamState, "WT_RESET_STREAM for stream %d with reliable size %d, %d bytes received", id, size, st.recvOff)
	}
	st.resetReceived = true
	if st.recvErr == nil {
		st.recvErr = &StreamError{StreamID: id, Code: uint32(code), Remote: true}
	}
	st.discardLocked()
	st.readN.notify()
	s.maybeFinishLocked(st)
	return nil
}

func (s *Session) handleStopSending(id, code uint64) error {
	if code > maxErrorCode {
		return violate(ErrProtocol, "WT_STOP_SENDING code %d exceeds 32 bits", code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(id, false, true)
	if err != nil || st == nil {
		return err // a finished stream: the capsule crossed our FIN or reset
	}
	if st.stopReceived {
		return violate(ErrStreamState, "second WT_STOP_SENDING for stream %d", id)
	}
	st.stopReceived = true
	if !st.finSent && !st.resetQueued {
		st.sendErr = &StreamError{StreamID: id, Code: uint32(code), Remote: true}
		s.resetLocked(st, uint32(code))
	}
	return nil
}

func (s *Session) handleMaxData(v uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v < s.sendMax {
		return violate(ErrFlowControl, "WT_MAX_DATA went down from %d to %d", s.sendMax, v)
	}
	if v > s.sendMax {
		s.sendMax = v
		for _, st := range s.sessionBlocked {
			st.inBlocked = false
			s.queueReadyLocked(st)
		}
		s.sessionBlocked = nil
	}
	return nil
}

func (s *Session) handleMaxStreamData(id, v uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.creditOnRecvOnly && id&uniBit != 0 && !s.isLocal(id) {
		return nil // credit for a stream only the peer sends on
	}
	st, err := s.streamLocked(id, false, true)
	switch {
	case err != nil || st == nil:
		return err
	case st.stopReceived:
		return violate(ErrStreamState, "WT_MAX_STREAM_DATA for stream %d after WT_STOP_SENDING", id)
	case v < st.sendMax:
		return violate(ErrFlowControl, "WT_MAX_STREAM_DATA for stream %d went down from %d to %d", id, st.sendMax, v)
	}
	if v > st.sendMax {
		st.sendMax = v
		if len(st.sendPending) > 0 {
			s.queueReadyLocked(st)
		}
	}
	return nil
}

func (s *Session) handleMaxStreams(v uint64, uni bool) error {
	if v > maxStreamsValue {
		return violate(ErrFlowControl, "WT_MAX_STREAMS of %d streams (at most 2^60)", v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := &s.peerMaxBidi
	if uni {
		limit = &s.peerMaxUni
	}
	if v < *limit {
		return violate(ErrFlowControl, "WT_MAX_STREAMS went down from %d to %d", *limit, v)
	}
	if v > *limit {
		*limit = v
		s.openN.notify()
	}
	return nil
}

func (s *Session) handleDatagram(r *capsuleReader, n int64) error {
	if n > int64(s.cfg.MaxDatagramSize) {
		return r.Discard() // too large to buffer: dropped (draft §6.11)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dgIn) < s.cfg.DatagramQueue {
		s.dgIn = append(s.dgIn, b)
		s.dgInN.notify()
	}
	return nil
}

func (s *Session) handleClose(r *capsuleReader, n int64) error {
	if n < 4 || n > maxCloseCapsule {
		return violate(ErrProtocol, "WT_CLOSE_SESSION of %d bytes (4 to %d)", n, maxCloseCapsule)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	msg := b[4:]
	if !utf8.Valid(msg) {
		return violate(ErrProtocol, "WT_CLOSE_SESSION message is not UTF-8")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(&SessionError{Code: binary.BigEndian.Uint32(b), Message: string(msg), Remote: true}, nil)
	return nil
}
