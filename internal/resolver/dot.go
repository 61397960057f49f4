package resolver

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults of a DoT server's connection.
const (
	// DefaultDoTIdle is how long a DoT connection with no query in flight
	// stays open for the next one (RFC 7858 §3.4 asks clients to reuse
	// connections; unbound closes idle ones after its tcp-idle-timeout,
	// 30 s by default).
	DefaultDoTIdle = 10 * time.Second
	// DefaultDoTInFlight bounds the queries pipelined on one DoT
	// connection (RFC 7766 §6.2.1.1); more wait for one to end.
	DefaultDoTInFlight = 64
)

// Errors that end a DoT connection.
var (
	errConnIdle   = errors.New("idle connection closed")
	errUnanswered = errors.New("connection closed: a query went unanswered until its deadline")
	errWriteCut   = errors.New("connection closed: a query's context ended while it was written")
)

// DoTConfig configures a DNS-over-TLS server (RFC 7858).
type DoTConfig struct {
	// Name names the server in errors ("dns.example:853").
	Name string
	// Dial opens a TCP connection to the server. The caller finds the
	// server's addresses without asking the server itself (its name
	// from a hosts file, an IP literal or plaintext bootstrap servers),
	// so that resolving never loops.
	Dial func(ctx context.Context) (net.Conn, error)
	// TLS verifies the server: ServerName (the name, or an IP literal
	// checked against the certificate's IP SANs) and RootCAs (nil: the
	// system's roots). Its NextProtos is set to "dot" (RFC 7858 §3.1
	// registers the ALPN ID).
	TLS *tls.Config
	// Idle is how long an idle connection is kept (DefaultDoTIdle if 0).
	Idle time.Duration
	// MaxInFlight bounds the queries pipelined on the connection
	// (DefaultDoTInFlight if 0).
	MaxInFlight int
}

// DoT is a DNS-over-TLS server (RFC 7858). It keeps one TLS connection open
// and pipelines queries on it, matching replies to queries by message ID
// (RFC 7766 §6.2.1.1); replies may come in any order. Queries are padded
// to 128-octet blocks (RFC 8467 §4.1). The connection closes after Idle
// without a query, on any reply the server was not asked for, and when a
// query goes unanswered for the Resolver's whole timeout.
type DoT struct {
	cfg DoTConfig

	// dialing holds a token while a connection is dialed, so that
	// concurrent queries share one connection.
	dialing chan struct{}
	mu      sync.Mutex
	conn    *dotConn // nil or closed: dial on the next query
}

// NewDoT returns a DoT server for cfg.
func NewDoT(cfg DoTConfig) *DoT {
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultDoTIdle
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultDoTInFlight
	}
	conf := &tls.Config{}
	if cfg.TLS != nil {
		conf = cfg.TLS.Clone()
	}
	conf.NextProtos = []string{"dot"}
	cfg.TLS = conf
	return &DoT{cfg: cfg, dialing: make(chan struct{}, 1)}
}

// String returns "tls://" and the server's name.
func (d *DoT) String() string { return "tls://" + d.cfg.Name }

// CloseIdle closes the connection if no query is in flight on it.
func (d *DoT) CloseIdle() {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c != nil {
		c.closeIfIdle()
	}
}

// Exchange sends m on the server's connection, dialing one if there is none,
// and waits for its reply. A query that fails on a connection already used
// by others (the server closed it meanwhile: RFC 7766 §6.2.3 lets servers
// close idle connections) is sent once more on a new one.
func (d *DoT) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	for try := 0; ; try++ {
		c, reused, err := d.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(ctx, m)
		if err != nil && reused && try == 0 && ctx.Err() == nil && c.closedBefore() {
			continue
		}
		return resp, err
	}
}

// get returns the open connection, or dials one.
func (d *DoT) get(ctx context.Context) (c *dotConn, reused bool, err error) {
	select {
	case d.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { <-d.dialing }()
	d.mu.Lock()
	c = d.conn
	d.mu.Unlock()
	if c != nil && c.open() {
		return c, true, nil
	}
	raw, err := d.cfg.Dial(ctx)
	if err != nil {
		return nil, false, err
	}
	tc := tls.Client(quickAck(raw), d.cfg.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, false, err
	}
	c = newDoTConn(tc, d.cfg.Idle, d.cfg.MaxInFlight)
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, false, nil
}

// dotConn is one DoT connection: queries written under wmu, replies read
// by one goroutine (readLoop) and handed to the query with their ID.
type dotConn struct {
	conn  net.Conn
	idle  time.Duration
	slots chan struct{} // a token per query in flight, abandoned ones included

	wmu sync.Mutex // one query's frame at a time

	mu sync.Mutex
	// pending are the IDs of queries sent and not yet answered; a nil
	// channel marks a query whose caller gave up, whose reply is still
	// expected (and then dropped).
	pending map[uint16]chan []byte
	used    bool      // a query was answered: the connection is a reused one
	read    time.Time // when the last reply came
	err     error
	timer   *time.Timer // idle timer, running while nothing is pending
}

func newDoTConn(conn net.Conn, idle time.Duration, inFlight int) *dotConn {
	c := &dotConn{
		conn:    conn,
		idle:    idle,
		slots:   make(chan struct{}, inFlight),
		pending: make(map[uint16]chan []byte),
	}
	c.timer = time.AfterFunc(idle, c.closeIfIdle)
	go c.readLoop()
	return c
}

func (c *dotConn) open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// closedBefore reports whether the connection failed after answering an
// earlier query: the server closed a connection it had served.
func (c *dotConn) closedBefore() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil && (c.used || c.err == errConnIdle)
}

// exchange sends m with an ID unused on the connection and waits for the
// reply with that ID.
func (c *dotConn) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	if c.err != nil || ctx.Err() != nil {
		// A query whose caller already left must not start a write
		// that its context would cut short, closing the connection.
		err := c.err
		if err == nil {
			err = ctx.Err()
		}
		c.mu.Unlock()
		<-c.slots
		return nil, err
	}
	id := dns.Id()
	for _, used := c.pending[id]; used; _, used = c.pending[id] {
		id = dns.Id()
	}
	ch := make(chan []byte, 1)
	c.pending[id] = ch
	c.timer.Stop()
	c.mu.Unlock()

	q := m.Copy()
	q.Id = id
	b, err := pad(q)
	if err != nil {
		c.forget(id)
		return nil, fmt.Errorf("packing query: %w", err)
	}
	// RFC 7858 §3.3 and RFC 1035 §4.2.2: a two-octet length, then the
	// message, in one write so that a frame is never split between
	// writers.
	frame := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(frame, uint16(len(b)))
	copy(frame[2:], b)
	// A write cut short by ctx leaves half a frame: the connection is
	// then unusable.
	// The connection fails with errWriteCut, not with this caller's
	// context error, which would mislabel the other queries' failures.
	stop := context.AfterFunc(ctx, func() { c.fail(errWriteCut) })
	c.wmu.Lock()
	_, err = c.conn.Write(frame)
	c.wmu.Unlock()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.fail(errWriteCut)
		return nil, err
	}
	sent := time.Now()

	select {
	case reply, ok := <-ch:
		if !ok {
			return nil, c.failure(io.ErrUnexpectedEOF)
		}
		resp, err := unpack(reply)
		if err != nil {
			return nil, fmt.Errorf("%w over tls: %w", ErrMalformed, err)
		}
		resp.Id = m.Id
		return resp, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !c.readSince(sent) {
			// Unanswered for the whole timeout, and nothing else
			// answered meanwhile: the server is stuck, or hostile; a
			// new connection serves the next query.
			c.fail(errUnanswered)
		} else {
			c.abandon(id)
		}
		return nil, ctx.Err()
	}
}

// readSince reports whether a reply came after t.
func (c *dotConn) readSince(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read.After(t)
}

// failure is the error of a query cut off by the connection's end.
func (c *dotConn) failure(fallback error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return fallback
}

// forget drops a pending query that was never sent.
func (c *dotConn) forget(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		delete(c.pending, id)
		<-c.slots
		c.idleIfNone()
	}
}

// abandon keeps id pending without a receiver: its reply, when it comes,
// is dropped, and frees the query's slot.
//
// Its slot stays taken until the reply comes; one that never comes within
// abandonedFor fails the connection, so that queries the server drops
// cannot fill every slot and leave the connection open and useless.
func (c *dotConn) abandon(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return
	}
	c.pending[id] = nil
	time.AfterFunc(abandonedFor, func() {
		c.mu.Lock()
		ch, still := c.pending[id]
		c.mu.Unlock()
		if still && ch == nil {
			c.fail(errUnanswered)
		}
	})
}

// abandonedFor is how long the reply to an abandoned query may take.
const abandonedFor = 2 * DefaultTimeout

// idleIfNone starts the idle timer when nothing is pending; c.mu is held.
func (c *dotConn) idleIfNone() {
	if len(c.pending) == 0 && c.err == nil {
		c.timer.Reset(c.idle)
	}
}

// closeIfIdle closes the connection if nothing is pending.
func (c *dotConn) closeIfIdle() {
	c.mu.Lock()
	idle := len(c.pending) == 0
	c.mu.Unlock()
	if idle {
		c.fail(errConnIdle)
	}
}

// fail closes the connection with err (the first error wins) and ends
// every pending query.
func (c *dotConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.timer.Stop()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.conn.Close()
	for _, ch := range pending {
		if ch != nil {
			close(ch)
		}
		<-c.slots
	}
}

// readLoop reads replies until the connection ends and hands each to its
// query. A reply whose ID matches no query sent on the connection, or too
// short to hold a DNS header, ends the connection: the stream cannot be
// trusted past it.
func (c *dotConn) readLoop() {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
			c.fail(readError(err))
			return
		}
		// The length is at most 65535: one reply is bounded by the
		// frame (RFC 1035 §4.2.2).
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n < 12 {
			c.fail(fmt.Errorf("%w over tls: %d-octet message, shorter than a header", ErrMalformed, n))
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.conn, buf); err != nil {
			c.fail(readError(err))
			return
		}
		id := binary.BigEndian.Uint16(buf)
		c.mu.Lock()
		ch, ok := c.pending[id]
		if ok {
			delete(c.pending, id)
			c.used, c.read = true, time.Now()
			<-c.slots
			c.idleIfNone()
		}
		c.mu.Unlock()
		if !ok {
			c.fail(fmt.Errorf("%w over tls: reply with ID %d answers no query", ErrMalformed, id))
			return
		}
		if ch != nil {
			ch <- buf
		}
	}
}

// readError says that a connection ended before a whole reply came.
func readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: connection closed by the server: %w", ErrMalformed, err)
	}
	return err
}
