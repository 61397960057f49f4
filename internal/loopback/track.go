package loopback

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// tally counts connections under keys, such as a negotiated protocol, with
// "" for every connection: how many were accepted and how many are still
// open. It is Counter's bookkeeping for servers that are not a listener.
type tally struct {
	mu       sync.Mutex
	accepted map[string]int
	open     map[string]int
	changed  chan struct{} // closed and replaced on every change
}

func newTally() *tally {
	return &tally{accepted: map[string]int{}, open: map[string]int{}, changed: make(chan struct{})}
}

// add counts a new open connection under each key.
func (t *tally) add(keys ...string) {
	t.update(func() {
		for _, k := range keys {
			t.accepted[k]++
			t.open[k]++
		}
	})
}

// drop counts a connection closed under each key.
func (t *tally) drop(keys ...string) {
	t.update(func() {
		for _, k := range keys {
			t.open[k]--
		}
	})
}

func (t *tally) update(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *tally) counts(key string) (accepted, open int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted[key], t.open[key]
}

// changes returns a channel closed at the next change of any count.
func (t *tally) changes() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// waitOpen waits until exactly n connections are open under key, or until
// ctx ends.
func (t *tally) waitOpen(ctx context.Context, key string, n int) error {
	for {
		t.mu.Lock()
		open, changed := t.open[key], t.changed
		t.mu.Unlock()
		if open == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			what := "connections"
			if key != "" {
				what = key + " connections"
			}
			return fmt.Errorf("dialertest: %d %s open, want %d: %w", open, what, n, context.Cause(ctx))
		}
	}
}

// tallyConn is a connection counted in a tally under "" from the start and
// under more keys once they are known (label); its first Close counts it
// closed under all of them and calls onClose.
type tallyConn struct {
	net.Conn
	t       *tally
	onClose func(*tallyConn)

	mu     sync.Mutex
	keys   []string
	closed bool
}

func newTallyConn(c net.Conn, t *tally, onClose func(*tallyConn)) *tallyConn {
	t.add("")
	return &tallyConn{Conn: c, t: t, onClose: onClose, keys: []string{""}}
}

// label counts the connection under key too, unless it is already closed.
func (tc *tallyConn) label(key string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if !tc.closed {
		tc.keys = append(tc.keys, key)
		tc.t.add(key)
	}
}

func (tc *tallyConn) Close() error {
	err := tc.Conn.Close()
	tc.mu.Lock()
	first := !tc.closed
	tc.closed = true
	tc.mu.Unlock()
	if first {
		tc.t.drop(tc.keys...)
		if tc.onClose != nil {
			tc.onClose(tc)
		}
	}
	return err
}

// handlerGate counts running handlers so that a server's Close can refuse
// new ones and wait for the others.
type handlerGate struct {
	mu      sync.Mutex
	closing bool
	running int
	idle    chan struct{} // closed when running drops to 0 while closing
}

func newHandlerGate() *handlerGate {
	return &handlerGate{idle: make(chan struct{})}
}

// enter counts a starting handler; it fails once shut has been called.
func (g *handlerGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.running++
	return true
}

// leave counts a finished handler and wakes shut's caller after the last one.
func (g *handlerGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.closing && g.running == 0 {
		close(g.idle)
	}
}

// shut refuses new handlers and returns a channel that is closed once no
// handler runs. It must be called once.
func (g *handlerGate) shut() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closing = true
	if g.running == 0 {
		close(g.idle)
	}
	return g.idle
}

// guard wraps h so that every request counts in g, is refused with 503 once
// g is shut, and has a context that also ends when ctx does.
func guard(ctx context.Context, g *handlerGate, h http.Handler) http.Handler {
	if h == nil {
		h = http.DefaultServeMux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.enter() {
			http.Error(w, "server closing", http.StatusServiceUnavailable)
			return
		}
		defer g.leave()
		rctx, stop := context.WithCancel(r.Context())
		defer stop()
		unlink := context.AfterFunc(ctx, stop)
		defer unlink()
		h.ServeHTTP(w, r.WithContext(rctx))
	})
}
