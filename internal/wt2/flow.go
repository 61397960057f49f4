package wt2

// Receive-side flow control. We grant a window of Config.MaxData for the
// session and Config.MaxStreamData per stream beyond what the application
// has consumed, re-advertising once half of a window is used, so unread
// data never exceeds a window.

// consumedLocked records n bytes read or discarded from st and grants
// credit for them.
func (st *stream) consumedLocked(n uint64) {
	if n == 0 {
		return
	}
	s := st.s
	st.readOff += n
	s.consumed += n
	st.maybeGrantLocked()
	s.maybeGrantLocked()
}

// maybeGrantLocked queues WT_MAX_STREAM_DATA when less than half of the
// stream window is left, unless the peer has finished sending or we asked
// it to stop (after WT_STOP_SENDING the draft forbids the capsule).
func (st *stream) maybeGrantLocked() {
	if st.finReceived || st.resetReceived || st.recvErr != nil {
		return
	}
	w := uint64(st.s.cfg.MaxStreamData)
	if st.recvMax-st.readOff > w/2 {
		return
	}
	st.recvMax = st.readOff + w
	st.needMaxStreamData = true
	st.s.queueCtrlLocked(st)
}

// maybeGrantLocked queues WT_MAX_DATA when less than half of the session
// window is left.
func (s *Session) maybeGrantLocked() {
	w := uint64(s.cfg.MaxData)
	if s.recvMax-s.consumed > w/2 {
		return
	}
	s.recvMax = s.consumed + w
	s.needMaxData = true
	s.wakeWriter()
}

// noteBufferedLocked updates the buffering high-water marks after data was
// added to st.
func (s *Session) noteBufferedLocked(st *stream) {
	if b := s.received - s.consumed; b > s.hwSession {
		s.hwSession = b
	}
	if b := st.recvOff - st.readOff; b > s.hwStream {
		s.hwStream = b
	}
}
