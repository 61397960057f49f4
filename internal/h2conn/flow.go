package h2conn

// inflow is one receive window, stream or connection (RFC 9113 section
// 6.9). The invariant avail + buffered + unsent == win holds, where buffered
// is what the application has not read yet, so we never buffer more than win.
type inflow struct {
	win    int64 // window in force; shrinks towards target when larger (a connection window under 65535)
	avail  int64 // bytes the peer may still send
	unsent int64 // bytes read by the application and not yet given back
	target int64 // the window we advertise
}

func newInflow(win, target int64) inflow {
	return inflow{win: win, avail: win, target: target}
}

// take records n bytes received and reports false if they exceed the
// window, a FLOW_CONTROL_ERROR.
func (f *inflow) take(n int64) bool {
	if n > f.avail {
		return false
	}
	f.avail -= n
	return true
}

// resize applies a change of the window in force, as when the peer
// acknowledges our SETTINGS_INITIAL_WINDOW_SIZE.
func (f *inflow) resize(delta int64) {
	f.win += delta
	f.avail += delta
}

// add records n bytes read (or discarded) and returns the WINDOW_UPDATE
// increment to send now, or 0. Credit goes back in batches of half the
// target so the peer never stalls while we have room.
func (f *inflow) add(n int64) uint32 {
	f.unsent += n
	if f.win > f.target {
		d := min(f.win-f.target, f.unsent)
		f.win -= d
		f.unsent -= d
	}
	if f.unsent <= 0 || f.unsent < f.target/2 {
		return 0
	}
	inc := f.unsent
	f.unsent = 0
	f.avail += inc
	return uint32(inc)
}

// signal is a broadcast condition a select can wait on. It is guarded by
// Conn.mu: wait returns a channel that fire closes.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// readSignal is a signal that costs no allocation per wait while it has
// one waiter, as a stream's reader usually is: fire hands that waiter a
// token on a channel kept for the next wait; with more waiters it closes
// the channel, as signal does. Each wait is followed by done once the wait
// is over. Guarded by Conn.mu. A token left by a waiter that woke for
// another reason wakes the next wait early; waiters look again anyway.
type readSignal struct {
	ch      chan struct{}
	waiters int
}

func (s *readSignal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{}, 1)
	}
	s.waiters++
	return s.ch
}

func (s *readSignal) done() { s.waiters-- }

func (s *readSignal) fire() {
	switch {
	case s.ch == nil:
		// Closed by an earlier fire: every waiter counted until then is
		// awake (and not yet done), and no wait has come since.
	case s.waiters == 1:
		select {
		case s.ch <- struct{}{}:
		default: // a token is waiting already
		}
	case s.waiters > 1:
		close(s.ch)
		s.ch = nil
	}
}
