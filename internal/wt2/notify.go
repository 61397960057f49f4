package wt2

import (
	"context"
	"os"
	"time"
)

// notifier wakes every goroutine waiting for a change of state guarded by
// Session.mu. Its methods are called with the mutex held.
type notifier struct{ ch chan struct{} }

// wait returns a channel closed by the next notify.
func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// waitLocked releases s.mu until ch is closed, the session ends, ctx (which
// may be nil) is done or the deadline (zero: none) passes; it returns with
// s.mu held. Callers re-check their condition after a nil return.
func (s *Session) waitLocked(ctx context.Context, ch <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-s.ctx.Done():
		return nil
	case <-done:
		return ctx.Err()
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
}

// noDeadline is the zero deadline: wait without a time limit.
var noDeadline time.Time

// waitFor reports whether ch was closed before timeout fired.
func waitFor(ch <-chan struct{}, timeout <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	case <-timeout:
		return false
	}
}

// popFront removes and returns the first element of q. The rest move down,
// so that later appends reuse the array: a queue sliced from the front
// instead slides past the end of its array and allocates a new one about
// once per element when it holds few.
func popFront[T any](q *[]T) T {
	v := (*q)[0]
	n := copy(*q, (*q)[1:])
	var zero T
	(*q)[n] = zero
	*q = (*q)[:n]
	return v
}
