package wt2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// closeWriter is implemented by transports that can end their send side
// alone, like *net.TCPConn and *tls.Conn.
type closeWriter interface{ CloseWrite() error }

// writeLoop writes whatever is queued whenever the write token is free:
// under s.mu it gathers whole capsules (control capsules first, then
// datagrams and stream chunks in turn) up to writeBatch bytes, then writes
// them without the lock. Once the session has ended it writes
// WT_CLOSE_SESSION if one is due, ends the send side and returns.
//
// Whoever holds s.wtok is the one writer of rw: this goroutine, or a
// Write that found the token free and writes its own data (writeDirect).
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	for {
		s.wtok <- struct{}{}
		s.mu.Lock()
		failed := s.writeFailed
		s.mu.Unlock()
		if failed {
			<-s.wtok
			return
		}
		wrote, ended, err := s.flushBatch()
		<-s.wtok
		if err != nil {
			return
		}
		if wrote {
			continue
		}
		if ended {
			if cw, ok := s.rw.(closeWriter); ok && cw.CloseWrite() == nil {
				s.mu.Lock()
				s.halfClosed = true
				s.mu.Unlock()
			}
			return
		}
		<-s.wake
	}
}

// flushBatch gathers one batch and writes it; the caller holds s.wtok. It
// reports whether there was anything to write, whether the session had
// ended when it gathered, and the write's error, after which the session
// has failed and nothing more is written.
func (s *Session) flushBatch() (wrote, ended bool, err error) {
	out := &s.out
	s.mu.Lock()
	for out.Len() < writeBatch && s.nextCapsuleLocked(out) {
	}
	ended = s.cause != nil
	s.mu.Unlock()
	if out.Len() == 0 {
		return false, ended, nil
	}
	_, err = s.rw.Write(out.Bytes())
	out.Reset()
	if err != nil {
		s.mu.Lock()
		s.writeFailed = true
		s.mu.Unlock()
		// The peer may have closed the session and then the stream:
		// let the reader take what it sent first (WT_CLOSE_SESSION, or
		// its end of stream) so that the session ends with the peer's
		// code, not our write error.
		t := time.NewTimer(s.cfg.CloseTimeout)
		select {
		case <-s.ctx.Done():
		case <-s.readerDone:
		case <-t.C:
		}
		t.Stop()
		s.fail(fmt.Errorf("wt2: writing CONNECT stream: %w", err))
	}
	return true, ended, err
}

// writeDirectLocked lets a Write with no deadline be the writer while the
// token is free: it writes batches on the caller's goroutine until st's
// data is all taken (or cannot go: flow control, reset), instead of
// handing each Write to writeLoop's goroutine and waiting to be woken, as
// x/net/http2's and coder/websocket's writers do. Other streams' capsules
// share the batches in their turn. Anything queued meanwhile has woken
// writeLoop, which writes it once the token is back. A Write with a
// deadline leaves the writing to writeLoop, so that the deadline can end
// its wait however long rw.Write blocks. A deadline set, or CancelWrite
// called, while a Write writes directly ends it after the batch in
// rw.Write, which h2conn's WriteTimeout bounds. Called and returns with
// s.mu held. It queues st, and wakes writeLoop only when it does not write
// all of st's data itself: a wake per Write would have writeLoop's
// goroutine run, wait for the token and find nothing to write.
func (s *Session) writeDirectLocked(st *stream) {
	if !st.inReady {
		st.inReady = true
		s.ready = append(s.ready, st)
	}
	if s.writeFailed {
		s.wakeWriter()
		return
	}
	select {
	case s.wtok <- struct{}{}:
	default:
		s.wakeWriter() // writeLoop or another Write is writing and will take st's data
		return
	}
	s.mu.Unlock()
	for {
		wrote, _, err := s.flushBatch()
		if err != nil || !wrote {
			break
		}
		// Stop once st's data is taken, or cannot go on (no flow-control
		// credit, reset), or a deadline was set meanwhile: then writeLoop
		// writes the rest while the Write waits where SetWriteDeadline
		// and CancelWrite can end it.
		s.mu.Lock()
		stop := len(st.sendPending) == 0 || !st.inReady || st.sendErr != nil || !st.writeDeadline.IsZero()
		s.mu.Unlock()
		if stop {
			break
		}
	}
	<-s.wtok
	s.mu.Lock()
	// What st has left (stopped by a deadline or a reset) is writeLoop's;
	// anything else queued meanwhile woke it.
	if len(s.ready) > 0 {
		s.wakeWriter()
	}
}

// nextCapsuleLocked appends the next capsule to send to out and reports
// whether there was one.
func (s *Session) nextCapsuleLocked(out *bytes.Buffer) bool {
	if s.cause != nil {
		if e := s.closeCap; e != nil {
			s.closeCap = nil
			v := binary.BigEndian.AppendUint32(s.scratch[:0], e.Code)
			s.put(out, capsuleCloseSession, append(v, e.Message...))
			return true
		}
		return false
	}
	if s.sessionControlLocked(out) || s.streamControlLocked(out) {
		return true
	}
	if s.dgTurn || len(s.ready) == 0 {
		s.dgTurn = false
		if s.datagramLocked(out) {
			return true
		}
	}
	if s.streamDataLocked(out) {
		s.dgTurn = true
		return true
	}
	return s.datagramLocked(out)
}

// put appends one capsule to out, with the dialect's code for ct.
func (s *Session) put(out *bytes.Buffer, ct http3.CapsuleType, value []byte) {
	appendCapsuleHeader(out, s.w.capsuleType(ct), uint64(len(value)))
	out.Write(value)
}

// varints encodes vals in s.scratch.
func (s *Session) varints(vals ...uint64) []byte {
	b := s.scratch[:0]
	for _, v := range vals {
		b = quicvarint.Append(b, v)
	}
	s.scratch = b
	return b
}

func (s *Session) sessionControlLocked(out *bytes.Buffer) bool {
	switch {
	case s.needMaxData:
		s.needMaxData = false
		s.put(out, capsuleMaxData, s.varints(s.recvMax))
	case s.inBidi.needMax:
		s.inBidi.needMax = false
		s.put(out, capsuleMaxStreamsBidi, s.varints(s.inBidi.limit))
	case s.inUni.needMax:
		s.inUni.needMax = false
		s.put(out, capsuleMaxStreamsUni, s.varints(s.inUni.limit))
	case s.needBlockedBidi:
		s.needBlockedBidi = false
		s.put(out, capsuleStreamsBlockedBidi, s.varints(s.peerMaxBidi))
	case s.needBlockedUni:
		s.needBlockedUni = false
		s.put(out, capsuleStreamsBlockedUni, s.varints(s.peerMaxUni))
	case s.needDataBlocked:
		s.needDataBlocked = false
		s.put(out, capsuleDataBlocked, s.varints(s.sendMax))
	case s.drainQueued && !s.drainSent:
		s.drainSent = true
		s.put(out, capsuleDrainSession, nil)
	default:
		return false
	}
	return true
}

// streamControlLocked sends one pending control capsule of the first stream
// in s.ctrl.
func (s *Session) streamControlLocked(out *bytes.Buffer) bool {
	for len(s.ctrl) > 0 {
		st := s.ctrl[0]
		sent := true
		switch {
		case st.needReset:
			st.needReset = false
			st.resetSent = true
			v := s.varints(st.id, uint64(st.resetCode))
			if s.w.resetSize {
				// Reliable size: every byte sent, as capsules arrive in
				// order (§6.2).
				v = quicvarint.Append(v, st.sendOff)
			}
			s.put(out, capsuleResetStream, v)
			s.maybeFinishLocked(st)
		case st.needStop:
			st.needStop = false
			sent = !st.finReceived && !st.resetReceived
			if sent {
				s.put(out, capsuleStopSending, s.varints(st.id, uint64(st.stopCode)))
			}
		case st.needMaxStreamData:
			st.needMaxStreamData = false
			sent = !st.finReceived && !st.resetReceived && !st.stopQueued
			if sent {
				s.put(out, capsuleMaxStreamData, s.varints(st.id, st.recvMax))
			}
		case st.needBlocked:
			st.needBlocked = false
			sent = !st.finSent && !st.resetQueued
			if sent {
				s.put(out, capsuleStreamDataBlocked, s.varints(st.id, st.sendMax))
			}
		default:
			st.inCtrl = false
			popFront(&s.ctrl)
			continue
		}
		if sent {
			return true
		}
	}
	return false
}

func (s *Session) datagramLocked(out *bytes.Buffer) bool {
	if len(s.dgOut) == 0 {
		return false
	}
	s.put(out, capsuleDatagram, popFront(&s.dgOut))
	s.dgOutN.notify()
	return true
}

// streamDataLocked sends the next chunk (at most maxStreamChunk bytes, with
// FIN once the data is all out and Close was called) of the first stream in
// s.ready that may send, and moves that stream to the back. Streams out of
// flow-control credit leave the queue until credit arrives, after queueing a
// *_BLOCKED capsule once per limit.
func (s *Session) streamDataLocked(out *bytes.Buffer) bool {
	// Keep the batch within writeBatch, the frame size we announce and
	// (h2conn's cap on DATA frames) the largest we send: a batch then
	// goes out in one DATA frame when the peer reads frames that large.
	room := uint64(writeBatch - out.Len() - maxCapsuleHeader)
	if out.Len() > 0 && (out.Len()+maxCapsuleHeader > writeBatch || room < minChunk) {
		return false
	}
	for len(s.ready) > 0 {
		st := popFront(&s.ready)
		st.inReady = false
		if st.finSent || st.resetQueued || (len(st.sendPending) == 0 && !st.sendFin) {
			continue
		}
		n := uint64(len(st.sendPending))
		size := min(n, maxStreamChunk, room)
		if n > 0 {
			if st.sendOff == st.sendMax {
				if st.blockedAt != st.sendMax+1 {
					st.blockedAt = st.sendMax + 1
					st.needBlocked = true
					s.queueCtrlLocked(st)
				}
				continue
			}
			if s.sent == s.sendMax {
				if s.dataBlockedAt != s.sendMax+1 {
					s.dataBlockedAt = s.sendMax + 1
					s.needDataBlocked = true
				}
				if !st.inBlocked {
					st.inBlocked = true
					s.sessionBlocked = append(s.sessionBlocked, st)
				}
				continue
			}
			size = min(size, st.sendMax-st.sendOff, s.sendMax-s.sent)
		}
		// In a dialect whose FIN goes alone, a chunk of data is never the
		// last: the FIN follows in an empty capsule on the stream's next
		// turn.
		fin := st.sendFin && size == n && (size == 0 || !s.w.finAlone)
		ct := capsuleStream
		if fin {
			ct = capsuleStreamFin
		}
		// WT_STREAM: Stream ID, then the data (draft §6.4), copied
		// once, from the Write's buffer into the batch.
		appendCapsuleHeader(out, s.w.capsuleType(ct), uint64(quicvarint.Len(st.id))+size)
		out.Write(quicvarint.Append(out.AvailableBuffer(), st.id))
		out.Write(st.sendPending[:size])
		st.sendPending = st.sendPending[size:]
		st.sendOff += size
		s.sent += size
		if len(st.sendPending) == 0 {
			st.writeN.notify()
		}
		switch {
		case fin:
			st.finSent = true
			s.maybeFinishLocked(st)
		case len(st.sendPending) > 0 || st.sendFin:
			s.queueReadyLocked(st)
		}
		return true
	}
	return false
}
