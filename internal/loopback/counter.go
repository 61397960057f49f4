package loopback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Counter wraps a listener and counts the connections it accepted and those
// still open, so tests can check that a server saw the losers of a race
// closed. Wrap the raw TCP listener, then serve on the Counter (TLS goes on
// top of it): a connection counts as closed once the server closes it, which
// for an idle HTTP connection happens when the server reads the client's
// close.
type Counter struct {
	net.Listener

	mu       sync.Mutex
	accepted int
	open     int
	changed  chan struct{} // closed and replaced on every change
}

// NewCounter returns a Counter that wraps l.
func NewCounter(l net.Listener) *Counter {
	return &Counter{Listener: l, changed: make(chan struct{})}
}

// Accept accepts a connection from the wrapped listener and counts it.
func (c *Counter) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.update(func() { c.accepted++; c.open++ })
	return &countedConn{Conn: conn, c: c}, nil
}

// Accepted returns how many connections have been accepted.
func (c *Counter) Accepted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted
}

// Open returns how many accepted connections are not closed yet.
func (c *Counter) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// WaitOpen waits until exactly n accepted connections are open, or until ctx
// ends; servers close connections asynchronously, so tests wait rather than
// read Open once.
func (c *Counter) WaitOpen(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		open, changed := c.open, c.changed
		c.mu.Unlock()
		if open == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("dialertest: %d connections open, want %d: %w", open, n, context.Cause(ctx))
		}
	}
}

func (c *Counter) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
}

// countedConn decrements its Counter's open count on the first Close.
type countedConn struct {
	net.Conn
	c    *Counter
	once sync.Once
}

func (cc *countedConn) Close() error {
	err := cc.Conn.Close()
	cc.once.Do(func() { cc.c.update(func() { cc.c.open-- }) })
	return err
}

// CloseWrite half-closes the connection when the wrapped one can (TCP), as
// http.Server does before closing a connection.
func (cc *countedConn) CloseWrite() error {
	if cw, ok := cc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
