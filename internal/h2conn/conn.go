package h2conn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Conn is one HTTP/2 connection, in the client or the server role. Its
// methods are safe for concurrent use.
type Conn struct {
	nc     net.Conn
	client bool
	ours   local

	fr   *http2.Framer // reads belong to the read loop, writes to the holder of wsem
	bw   *bufio.Writer // writes to sockWriter
	henc *hpack.Encoder
	hbuf bytes.Buffer
	hdec *hpack.Decoder // the read loop's, under mu
	blk  headerBlock    // the header block being read

	wsem    chan struct{} // held while writing frames: one writer at a time
	wwait   atomic.Int32  // writers waiting for wsem
	ctrlSig chan struct{} // wakes the writer goroutine
	done    chan struct{} // closed when the connection ends
	wg      sync.WaitGroup

	settingsCh chan struct{} // closed at the peer's first SETTINGS

	mu            sync.Mutex
	closed        bool
	err           error // why the connection ended
	failErr       error // the error to end with once the final GOAWAY is out
	ctrl          []ctrlFrame
	ctrlOverflow  bool
	streams       map[uint32]*Stream // open and half-closed streams
	nextID        uint32             // next stream ID we open
	maxPeerID     uint32             // highest stream ID the peer opened
	localActive   int                // our streams in streams
	peerActive    int                // peer's streams in streams
	reserved      int                // OpenStream calls that hold a slot
	pending       int                // OpenStream calls waiting for a slot
	lastIdle      time.Time
	acceptQ       []*Stream
	acceptSig     signal
	slotSig       signal // a stream ended, settings changed or the conn is closing
	sendSig       signal // the connection send window grew
	goAwaySent    bool
	shutdown      bool // Shutdown was called
	goAwayRecv    *GoAwayError
	sawSettings   bool
	firstSettings map[http2.SettingID]uint32
	peerSettings  map[http2.SettingID]uint32
	peerMaxFrame  uint32
	peerMaxStrms  uint32
	peerInitWin   int64
	peerMaxHdr    uint64
	peerTable     uint32
	peerTableMin  uint32 // smallest peerTable since the last header block
	tableChanged  bool
	ourAcked      bool // the peer acknowledged our SETTINGS
	in            inflow
	sendAvail     int64 // connection send window
	pings         map[[8]byte]chan struct{}
	pingSeq       uint64

	// The holder of wsem and its socket write, for sockWriter's deadline
	// and SetWriteDeadline's changes to it.
	wowner    *Stream   // the stream that holds wsem, or nil
	wctxDL    time.Time // the deadline of the OpenStream that holds wsem
	inSock    bool      // a socket write is under way
	sockStall time.Time // when it fails for want of progress
	sockErr   error     // what the failed socket write was, described

	// For tests: bytes buffered for all streams, and the most ever.
	buffered, maxBuffered int64
}

// NewClient starts the client side of an HTTP/2 connection on c: it queues
// the preface, our SETTINGS and a connection WINDOW_UPDATE, and starts
// reading. It does not wait for the server. On error c is closed.
func NewClient(c net.Conn, cfg Config) (*Conn, error) {
	ours, err := cfg.resolve(true)
	if err != nil {
		c.Close()
		return nil, err
	}
	return start(c, bufio.NewReaderSize(c, 16<<10), ours, true), nil
}

// NewServer starts the server side of an HTTP/2 connection on c: it reads
// the client preface (bounded by ctx), queues our SETTINGS and starts
// reading. On error c is closed.
func NewServer(ctx context.Context, c net.Conn, cfg Config) (*Conn, error) {
	ours, err := cfg.resolve(false)
	if err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 16<<10)
	if err := readPreface(ctx, c, br); err != nil {
		c.Close()
		return nil, err
	}
	return start(c, br, ours, false), nil
}

// readPreface reads the client connection preface, giving up when ctx
// ends.
func readPreface(ctx context.Context, c net.Conn, r io.Reader) error {
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	buf := make([]byte, len(http2.ClientPreface))
	_, err := io.ReadFull(r, buf)
	if !stop() {
		<-fired
	}
	c.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		return fmt.Errorf("h2conn: reading client preface: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("h2conn: reading client preface: %w", err)
	}
	if string(buf) != http2.ClientPreface {
		return fmt.Errorf("h2conn: bad client preface %q", buf)
	}
	return nil
}

func start(nc net.Conn, br *bufio.Reader, ours local, client bool) *Conn {
	c := &Conn{
		nc:           nc,
		client:       client,
		ours:         ours,
		wsem:         make(chan struct{}, 1),
		ctrlSig:      make(chan struct{}, 1),
		done:         make(chan struct{}),
		settingsCh:   make(chan struct{}),
		streams:      make(map[uint32]*Stream),
		nextID:       1,
		peerMaxFrame: initialMaxFrame,
		peerMaxStrms: initialMaxStreams,
		peerInitWin:  initialWindow,
		in:           newInflow(initialWindow, int64(ours.connWindow)),
		sendAvail:    initialWindow,
		pings:        make(map[[8]byte]chan struct{}),
		peerMaxHdr:   math.MaxUint64,
	}
	if !client {
		c.nextID = 2 // a server opens no streams: every even ID stays idle
	}
	c.bw = bufio.NewWriterSize(sockWriter{c}, 64<<10)
	c.fr = http2.NewFramer(c.bw, br)
	// Until the peer acknowledges our SETTINGS it cannot know a larger
	// SETTINGS_MAX_FRAME_SIZE of ours: a frame above the protocol's 16384
	// bytes is a FRAME_SIZE_ERROR (RFC 9113 §4.2) until then.
	c.fr.SetMaxReadFrameSize(initialMaxFrame)
	c.henc = hpack.NewEncoder(&c.hbuf)
	// We decode header blocks ourselves (readheaders.go) to bound them
	// and to say what was wrong with one.
	c.hdec = hpack.NewDecoder(ours.tableSize, c.onFieldLocked)
	c.hdec.SetMaxStringLength(int(min(uint64(ours.maxHeaderList), math.MaxInt)))
	// readLoop handles each frame before it reads the next and copies DATA
	// out of it (onDataLocked), so the framer may reuse its DATA frames:
	// one allocation less per DATA frame received.
	c.fr.SetReuseFrames()

	c.mu.Lock()
	if client {
		c.queueLocked(ctrlFrame{kind: ctrlPreface})
	}
	c.queueLocked(ctrlFrame{kind: ctrlSettings, settings: ours.list})
	if inc := int64(ours.connWindow) - initialWindow; inc > 0 {
		c.in.resize(inc)
		c.queueLocked(ctrlFrame{kind: ctrlWindowUpdate, n: uint32(inc)})
	}
	c.mu.Unlock()

	c.wg.Add(3)
	go c.readLoop()
	go c.writeLoop()
	go func() {
		defer c.wg.Done()
		<-c.done
		c.nc.Close()
	}()
	return c
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// NetConn returns the underlying connection, for its TLS state.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Done returns a channel closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: ErrConnClosed after Close or
// Shutdown, a *GoAwayError, or a read or write error. It is nil while the
// connection is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection at once: every open stream fails with
// ErrConnClosed. It waits for the connection's goroutines to end and may be
// called any number of times.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closeLocked(ErrConnClosed)
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Shutdown sends GOAWAY(NO_ERROR), refuses new streams, waits for the open
// streams to end or ctx to be done, and closes the connection. It returns
// ctx's error if ctx ended first.
func (c *Conn) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.shutdown = true
	if !c.closed && !c.goAwaySent {
		c.goAwaySent = true
		c.queueLocked(ctrlFrame{kind: ctrlGoAway, n: c.maxPeerID, code: http2.ErrCodeNo})
		c.slotSig.fire()
	}
	for !c.closed && len(c.streams) > 0 {
		if err := c.waitLocked(c.slotSig.wait(), nil, time.Time{}, ctx); err != nil {
			c.mu.Unlock()
			c.Close()
			return err
		}
	}
	// Let the writer flush what is queued, GOAWAY included, then close.
	c.finishLocked(ErrConnClosed)
	c.mu.Unlock()
	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.Close()
	return err
}

// closeLocked ends the connection with err, failing every open stream and
// waking every waiter; a goroutine closes the socket. Only the first call
// counts.
func (c *Conn) closeLocked(err error) {
	if c.closed {
		return
	}
	switch {
	case c.failErr != nil:
		err = c.failErr
	case c.shutdown:
		err = ErrConnClosed // the peer may hang up first after our GOAWAY
	case c.goAwayRecv != nil:
		err = c.goAwayRecv
	}
	c.closed = true
	c.err = err
	for _, s := range c.streams {
		s.failLocked(err)
		c.removeLocked(s)
	}
	for _, s := range c.acceptQ {
		s.failLocked(err)
	}
	c.acceptQ = nil
	c.ctrl = nil
	c.acceptSig.fire()
	c.slotSig.fire()
	c.sendSig.fire()
	close(c.done)
}

// failLocked starts ending the connection for a protocol error: GOAWAY
// with the error's code goes out, then the writer closes the connection.
func (c *Conn) failLocked(pe protocolError) {
	if c.closed || c.failErr != nil {
		return
	}
	c.failErr = &GoAwayError{LastStreamID: c.maxPeerID, Code: pe.code, Debug: pe.reason, Cause: pe.cause}
	c.goAwaySent = true
	c.slotSig.fire()
	c.queueLocked(ctrlFrame{kind: ctrlGoAway, n: c.maxPeerID, code: pe.code, debug: []byte(pe.reason)})
	c.queueLocked(ctrlFrame{kind: ctrlFinal})
}

// finishLocked ends the connection with err once what is queued has
// been written, as after our last stream ends under the peer's GOAWAY.
func (c *Conn) finishLocked(err error) {
	if c.closed || c.failErr != nil {
		return
	}
	c.failErr = err
	c.queueLocked(ctrlFrame{kind: ctrlFinal})
}

// waitLocked releases c.mu until one of a or b fires, the deadline
// passes, ctx ends or the connection ends, and takes c.mu again. It
// returns os.ErrDeadlineExceeded or ctx's error; nil means look again.
func (c *Conn) waitLocked(a, b <-chan struct{}, deadline time.Time, ctx context.Context) error {
	timeout, stop, err := deadlineTimer(deadline)
	if err != nil {
		return err
	}
	defer stop()
	var ctxDone <-chan struct{}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		ctxDone = ctx.Done()
	}
	c.mu.Unlock()
	defer c.mu.Lock()
	select {
	case <-a:
	case <-b:
	case <-c.done:
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-ctxDone:
		return ctx.Err()
	}
	return nil
}

// deadlineTimer returns a channel that fires at deadline (nil for a zero
// deadline: never) and the function that stops it, or
// os.ErrDeadlineExceeded if the deadline has passed.
func deadlineTimer(deadline time.Time) (<-chan time.Time, func(), error) {
	if deadline.IsZero() {
		return nil, func() {}, nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return nil, nil, os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }, nil
}

// PeerSettings waits for the peer's first SETTINGS frame, the one RFC 8441
// capability checks rely on, and returns its values. It fails if ctx ends or
// the connection ends first.
func (c *Conn) PeerSettings(ctx context.Context) (map[http2.SettingID]uint32, error) {
	select {
	case <-c.settingsCh:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		select {
		case <-c.settingsCh:
		default:
			return nil, fmt.Errorf("h2conn: no SETTINGS from the peer: %w", c.Err())
		}
	}
	s, _ := c.ReceivedSettings()
	return s, nil
}

// ReceivedSettings returns the values of the peer's first SETTINGS frame
// and whether it has arrived, without waiting.
func (c *Conn) ReceivedSettings() (map[http2.SettingID]uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sawSettings {
		return nil, false
	}
	m := make(map[http2.SettingID]uint32, len(c.firstSettings))
	for k, v := range c.firstSettings {
		m[k] = v
	}
	return m, true
}

// peerSetting returns the latest value the peer sent for id.
func (c *Conn) peerSetting(id http2.SettingID) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.peerSettings[id]
	return v, ok
}

// closingLocked reports whether no new streams may start.
func (c *Conn) closingLocked() bool {
	return c.closed || c.goAwaySent || c.goAwayRecv != nil || c.failErr != nil
}

// CanTakeNewRequest reports whether OpenStream would start a stream now
// without waiting: the connection is open, not going away, and under the
// peer's SETTINGS_MAX_CONCURRENT_STREAMS.
func (c *Conn) CanTakeNewRequest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client && !c.closingLocked() && c.nextID <= maxStreamID &&
		uint64(c.localActive+c.reserved) < uint64(c.peerMaxStrms)
}

// State reports the connection's state in x/net's terms. Closing means a
// GOAWAY was sent or received.
func (c *Conn) State() http2.ClientConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := http2.ClientConnState{
		Closed:          c.closed,
		Closing:         c.closingLocked(),
		StreamsActive:   len(c.streams),
		StreamsReserved: c.reserved,
		StreamsPending:  c.pending,
		LastIdle:        c.lastIdle,
	}
	if c.sawSettings {
		st.MaxConcurrentStreams = c.peerMaxStrms
	}
	return st
}

// Ping sends a PING and waits for its acknowledgement.
func (c *Conn) Ping(ctx context.Context) error {
	ch := make(chan struct{})
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.pingSeq++
	var data [8]byte
	for i := range data {
		data[i] = byte(c.pingSeq >> (8 * i))
	}
	c.pings[data] = ch
	c.queueLocked(ctrlFrame{kind: ctrlPing, data: data})
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pings, data)
		c.mu.Unlock()
		return ctx.Err()
	case <-c.done:
		return c.Err()
	}
}
