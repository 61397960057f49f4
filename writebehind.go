package dialer

import (
	"io"
	"net"
	"sync"
	"time"
)

// writeBehind is the send side of an extended CONNECT stream whose writes
// are batched.
//
// coder/websocket writes a message in 4 KiB pieces. Sent one by one, each
// piece costs a frame (an HTTP/2 DATA frame, an HTTP/3 DATA frame in a
// train of short QUIC packets), a flush, and on the server a frame to
// parse and deliver. Writes above inline bytes are therefore written
// behind: Write copies them into a buffer of at most sendBuffer bytes and
// returns, and one goroutine, running while there is something to send,
// writes the buffer in one call per batch, which the stream splits into
// frames as large as the peer allows. A full buffer blocks Write, so flow
// control (RFC 9113 §5.2, RFC 9000 §4.1) still pushes back on the writer,
// with at most sendBuffer bytes more in between. Writes of inline bytes or
// less with nothing buffered go straight to the stream: a small message,
// such as a ping-pong's, costs no hand-off.
type writeBehind struct {
	w      io.Writer
	inline int
	// end ends the send side once nothing is left to write: cleanly when
	// err is nil, else (an earlier write failed) with a reset.
	end func(err error)
	// bound sets a write deadline on w, which Close uses to bound how
	// long it keeps sending to a peer that gives no credit.
	bound func(time.Time) error

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte        // written behind, not yet handed to w
	spare    []byte        // the other buffer, while the flusher writes one
	flushing bool          // a goroutine (flusher or small Write) is in w.Write
	err      error         // the first write error: later writes fail with it
	closed   bool          // Close was called: the end follows what is buffered
	done     bool          // end has been called
	ended    chan struct{} // closed once end has returned

	// flusher is s.flush, bound once: a go statement on a method value
	// allocates a closure each time, this one starts without allocating.
	flusher func()
}

// sendBuffer bounds what a writeBehind holds for its flusher: twice a
// 32 KiB message, so that a writer does not wait mid-message while the
// previous batch is being sent. Its buffers come from bufPool.
const sendBuffer = bodyPipeSize

// closeDrain bounds how long a closed stream keeps sending what was
// written behind to a peer that gives no flow-control credit.
const closeDrain = 10 * time.Second

func newWriteBehind(w io.Writer, inline int, end func(error), bound func(time.Time) error) *writeBehind {
	s := &writeBehind{w: w, inline: inline, end: end, bound: bound, ended: make(chan struct{})}
	s.cond.L = &s.mu
	s.flusher = s.flush
	return s
}

// Write sends p on the stream: straight for a small write, else behind.
// An error of an earlier write behind is returned here.
func (s *writeBehind) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writableLocked(); err != nil {
		return 0, err
	}
	if !s.flushing && len(s.buf) == 0 && len(p) <= s.inline {
		s.flushing = true
		s.mu.Unlock()
		n, err := s.w.Write(p)
		s.mu.Lock()
		s.flushing = false
		if err != nil && s.err == nil {
			s.err = err
		}
		if len(s.buf) > 0 && s.err == nil {
			// Another Write buffered meanwhile, seeing this one in
			// w.Write: its bytes go now.
			s.flushing = true
			go s.flusher()
			return n, err
		}
		s.idleLocked()
		return n, err
	}
	n := 0
	for len(p) > 0 {
		if err := s.writableLocked(); err != nil {
			return n, err
		}
		if len(s.buf) == sendBuffer {
			s.cond.Wait()
			continue
		}
		if s.buf == nil {
			s.buf = getBuf()
		}
		k := min(len(p), sendBuffer-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p, n = p[k:], n+k
		if !s.flushing {
			s.flushing = true
			go s.flusher()
		}
	}
	return n, nil
}

// writableLocked says why nothing more can be written, if so.
func (s *writeBehind) writableLocked() error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return net.ErrClosed
	}
	return nil
}

// flush writes the buffer to w until it is empty, then ends.
func (s *writeBehind) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) > 0 && s.err == nil {
		b := s.buf
		s.buf, s.spare = s.spare[:0], nil
		s.cond.Broadcast() // room for the writer
		s.mu.Unlock()
		_, err := s.w.Write(b)
		s.mu.Lock()
		s.spare = b[:0]
		if err != nil && s.err == nil {
			s.err = err
		}
	}
	// Idle: the buffers go back to the pool, so that an idle WebSocket
	// holds none.
	if len(s.buf) == 0 {
		putBuf(s.buf)
		s.buf = nil
	}
	putBuf(s.spare)
	s.spare = nil
	s.flushing = false
	s.idleLocked()
}

// idleLocked runs when no goroutine is in w.Write: it wakes waiting
// writers and, after Close, ends the send side.
func (s *writeBehind) idleLocked() {
	s.cond.Broadcast()
	if !s.closed || s.done || s.flushing || (len(s.buf) > 0 && s.err == nil) {
		return
	}
	s.done = true
	s.buf, s.spare = nil, nil
	s.end(s.err)
	close(s.ended)
}

// sent is closed once the send side has ended after Close: everything
// written behind went out, or the side was reset.
func (s *writeBehind) sent() <-chan struct{} { return s.ended }

// Close ends the send side once what was written behind has been sent,
// within closeDrain, and returns at once. Later writes fail.
func (s *writeBehind) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.flushing {
		// Bound the flusher's wait for credit: past it, its write fails
		// and the send side is reset instead.
		s.bound(time.Now().Add(closeDrain))
	}
	s.idleLocked()
}
