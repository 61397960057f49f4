package h2conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Stream is one HTTP/2 stream. Read and Write may be used from different
// goroutines; like a net.Conn, it is safe for concurrent use.
type Stream struct {
	c     *Conn
	id    uint32
	local bool // we opened it

	wlock chan struct{} // serialises Write, CloseWrite and WriteHeader
	wdone chan struct{} // closed when our sending side ends, one way or another

	// Guarded by c.mu.
	inMap      bool
	header     []hpack.HeaderField // peer's first (final) header block
	gotHeader  bool
	infoSize   uint64 // header list size of the 1xx responses before it
	sentHeader bool
	sentEnd    bool
	recvEnd    bool
	wdoneShut  bool
	err        error // set when the stream fails: reads and writes return it
	werr       error // set when only our sending side was stopped
	buf        bytes.Buffer
	onData     func([]byte) // SetDataHandler's: takes DATA instead of buf
	maxBuf     int64        // for tests: most bytes ever buffered
	in         inflow
	sendAvail  int64
	rdl, wdl   time.Time
	rsig       readSignal
	wsig       signal
}

func (c *Conn) newStreamLocked(id uint32, local bool) *Stream {
	s := &Stream{
		c:         c,
		id:        id,
		local:     local,
		wlock:     make(chan struct{}, 1),
		wdone:     make(chan struct{}),
		sendAvail: c.peerInitWin,
		inMap:     true,
	}
	// Until the peer acknowledges our SETTINGS, the stream has the
	// protocol's initial window; the ACK resizes it.
	s.in = newInflow(initialWindow, initialWindow)
	if c.ourAcked {
		s.in = newInflow(int64(c.ours.streamWindow), int64(c.ours.streamWindow))
	}
	c.streams[id] = s
	if local {
		c.localActive++
	} else {
		c.peerActive++
	}
	return s
}

// ID returns the stream's ID.
func (s *Stream) ID() uint32 { return s.id }

// Conn returns the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.c }

// OpenStream opens a stream (client role) by sending HEADERS with header,
// split into CONTINUATION frames as the peer's MAX_FRAME_SIZE requires.
// It waits, bounded by ctx, until the peer's MAX_CONCURRENT_STREAMS leaves
// room. Errors that wrap ErrNotProcessed mean nothing was sent.
func (c *Conn) OpenStream(ctx context.Context, header []hpack.HeaderField, endStream bool) (*Stream, error) {
	if !c.client {
		return nil, errors.New("h2conn: a server cannot open streams")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if headerListSize(header) > c.peerMaxHdr {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderListTooLarge, headerListSize(header), c.peerMaxHdr)
	}
	c.pending++
	for {
		if err := c.openableLocked(); err != nil {
			c.pending--
			c.mu.Unlock()
			return nil, err
		}
		if uint64(c.localActive+c.reserved) < uint64(c.peerMaxStrms) {
			break
		}
		if err := c.waitLocked(c.slotSig.wait(), nil, time.Time{}, ctx); err != nil {
			c.pending--
			c.mu.Unlock()
			return nil, err
		}
	}
	c.pending--
	c.reserved++
	c.mu.Unlock()

	if err := c.acquireWrite(ctx, nil); err != nil {
		c.mu.Lock()
		c.reserved--
		c.slotSig.fire()
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Lock()
	c.reserved--
	err := c.openableLocked()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.slotSig.fire()
		c.mu.Unlock()
		c.abandonWrite()
		return nil, err
	}
	s := c.newStreamLocked(c.nextID, true)
	c.nextID += 2
	s.sentHeader = true
	if endStream {
		s.sentEnd = true
		s.endWriteLocked()
	}
	c.mu.Unlock()
	if err := c.releaseWrite(c.writeHeaderBlock(s.id, header, endStream)); err != nil {
		return nil, err
	}
	return s, nil
}

// openableLocked returns why no new stream may open, or nil.
func (c *Conn) openableLocked() error {
	switch {
	case c.closed:
		return fmt.Errorf("%w: %w", ErrNotProcessed, c.err)
	case c.goAwayRecv != nil:
		return fmt.Errorf("%w: %w", ErrNotProcessed, c.goAwayRecv)
	case c.closingLocked():
		return fmt.Errorf("%w: connection is closing", ErrNotProcessed)
	case c.nextID > maxStreamID:
		return fmt.Errorf("%w: stream IDs exhausted", ErrNotProcessed)
	}
	return nil
}

// AcceptStream returns the next stream the peer opened (server role); its
// request header is ready through Header. It fails when ctx ends or the
// connection ends.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if len(c.acceptQ) > 0 {
			s := c.acceptQ[0]
			c.acceptQ[0] = nil
			c.acceptQ = c.acceptQ[1:]
			return s, nil
		}
		if c.closed {
			return nil, c.err
		}
		if err := c.waitLocked(c.acceptSig.wait(), nil, time.Time{}, ctx); err != nil {
			return nil, err
		}
	}
}

// Header waits for the peer's header block: the response on a client
// stream (informational 1xx responses are skipped), the request on a
// server stream. The caller may keep the slice.
func (s *Stream) Header(ctx context.Context) ([]hpack.HeaderField, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.gotHeader {
			return slices.Clone(s.header), nil
		}
		if s.err != nil {
			return nil, s.err
		}
		err := c.waitLocked(s.rsig.wait(), nil, time.Time{}, ctx)
		s.rsig.done()
		if err != nil {
			return nil, err
		}
	}
}

// WriteHeader sends a header block: a response on a server stream (1xx
// ones may come first), or trailers with endStream.
func (s *Stream) WriteHeader(fields []hpack.HeaderField, endStream bool) error {
	c := s.c
	if err := s.lockWrite(); err != nil {
		return err
	}
	defer s.unlockWrite()
	c.mu.Lock()
	if err := s.writableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if headerListSize(fields) > c.peerMaxHdr {
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderListTooLarge, headerListSize(fields), c.peerMaxHdr)
	}
	c.mu.Unlock()
	if err := c.acquireWrite(nil, s); err != nil {
		return err
	}
	c.mu.Lock()
	err := s.writableLocked()
	if err == nil && pastLocked(s.wdl) {
		err = os.ErrDeadlineExceeded
	}
	if err != nil {
		c.mu.Unlock()
		c.abandonWrite()
		return err
	}
	s.sentHeader = true
	if endStream {
		c.endSendLocked(s)
	}
	c.mu.Unlock()
	return c.releaseWrite(c.writeHeaderBlock(s.id, fields, endStream))
}

// endSendLocked records that the frame the caller is about to write (or
// queue) ends our sending side; the caller holds wsem (or s.wlock, with
// nothing of s's being written), so whatever is queued now goes out after
// that frame. A stream the peer has finished too leaves the map at once:
// a client that sees our END_STREAM may open its next stream straight away
// and must find the slot free. After a GOAWAY the last stream to leave
// closes the connection only once the writer has sent what is queued.
func (c *Conn) endSendLocked(s *Stream) {
	s.sentEnd = true
	s.endWriteLocked()
	c.maybeRemoveLocked(s)
}

// writableLocked returns why nothing more may be sent, or nil.
func (s *Stream) writableLocked() error {
	if s.err != nil {
		return s.err
	}
	if s.werr != nil {
		return s.werr
	}
	if s.sentEnd {
		return ErrStreamClosed
	}
	return nil
}

// lockWrite takes the stream's write lock, unless the sending side ends,
// the connection ends or the write deadline (re-read whenever
// SetWriteDeadline moves it) passes first. The holder, a Write, is itself
// bounded by the same deadline or by WriteTimeout.
func (s *Stream) lockWrite() error {
	select {
	case s.wlock <- struct{}{}:
		return nil
	default:
	}
	c := s.c
	for {
		c.mu.Lock()
		dl, moved := s.wdl, s.wsig.wait()
		c.mu.Unlock()
		timeout, stop, err := deadlineTimer(dl)
		if err != nil {
			return err
		}
		select {
		case s.wlock <- struct{}{}:
			stop()
			return nil
		case <-moved:
			stop()
			continue
		case <-s.wdone:
		case <-c.done:
		case <-timeout:
			return os.ErrDeadlineExceeded
		}
		stop()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := s.writableLocked(); err != nil {
			return err
		}
		return ErrStreamClosed
	}
}

func (s *Stream) unlockWrite() { <-s.wlock }

// Write sends p as DATA frames no larger than the peer's MAX_FRAME_SIZE,
// waiting for the stream and connection send windows and honouring the
// write deadline. On a server stream, WriteHeader must come first.
func (s *Stream) Write(p []byte) (int, error) {
	if err := s.lockWrite(); err != nil {
		return 0, err
	}
	defer s.unlockWrite()
	n := 0
	for len(p) > 0 {
		k, err := s.sendData(p, false)
		n += k
		p = p[k:]
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// sendData writes one DATA frame with as much of p as the windows allow,
// with END_STREAM if end and it holds all of p. It waits for window first
// and takes it only once it may write: a SETTINGS ACK written before the
// frame then never promises the peer less window than the frame uses.
func (s *Stream) sendData(p []byte, end bool) (int, error) {
	c := s.c
	for {
		c.mu.Lock()
		for {
			if err := s.writableLocked(); err != nil {
				c.mu.Unlock()
				return 0, err
			}
			if !s.sentHeader {
				c.mu.Unlock()
				return 0, errors.New("h2conn: write before WriteHeader")
			}
			if len(p) == 0 || (s.sendAvail > 0 && c.sendAvail > 0) {
				break
			}
			// Until window arrives, the write deadline passes, or the
			// stream or the connection ends.
			if err := c.waitLocked(s.wsig.wait(), c.sendSig.wait(), s.wdl, nil); err != nil {
				c.mu.Unlock()
				return 0, err
			}
		}
		c.mu.Unlock()

		if err := c.acquireWrite(nil, s); err != nil {
			return 0, err
		}
		c.mu.Lock()
		err := s.writableLocked()
		if err == nil && pastLocked(s.wdl) {
			err = os.ErrDeadlineExceeded
		}
		if err != nil {
			c.mu.Unlock()
			c.abandonWrite()
			return 0, err
		}
		k := min(int64(len(p)), s.sendAvail, c.sendAvail, int64(min(c.peerMaxFrame, maxDataFrame)))
		if len(p) > 0 && k <= 0 {
			c.mu.Unlock()
			c.abandonWrite() // another stream took the window first
			continue
		}
		k = max(k, 0)
		s.sendAvail -= k
		c.sendAvail -= k
		last := end && int(k) == len(p)
		if last {
			c.endSendLocked(s)
		}
		c.mu.Unlock()
		if err := c.releaseWrite(c.fr.WriteData(s.id, last, p[:k])); err != nil {
			return 0, err
		}
		return int(k), nil
	}
}

// CloseWrite ends our sending side with END_STREAM, in an empty DATA
// frame. It returns nil if the side has already ended.
func (s *Stream) CloseWrite() error {
	if err := s.lockWrite(); err != nil {
		if err == ErrStreamClosed {
			return nil
		}
		return err
	}
	defer s.unlockWrite()
	return s.closeWriteHeld()
}

func (s *Stream) closeWriteHeld() error {
	c := s.c
	c.mu.Lock()
	if s.sentEnd && s.err == nil {
		c.mu.Unlock()
		return nil
	}
	if err := s.writableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if !s.sentHeader {
		c.mu.Unlock()
		return errors.New("h2conn: CloseWrite before WriteHeader")
	}
	c.mu.Unlock()
	_, err := s.sendData(nil, true)
	return err
}

// Reset ends both directions with RST_STREAM(code). Reads and writes then
// fail with a *StreamError whose Remote is false. Reset after the stream
// has ended sends nothing but still fails later reads and writes.
func (s *Stream) Reset(code http2.ErrCode) { s.reset(code, nil) }

func (s *Stream) reset(code http2.ErrCode, cause error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		return
	}
	if s.inMap {
		c.queueLocked(ctrlFrame{kind: ctrlRST, stream: s.id, code: code})
	}
	s.failLocked(&StreamError{StreamID: s.id, Code: code, Cause: cause})
	c.removeLocked(s)
}

// Close ends the stream and releases its buffers, without waiting. Our
// side ends cleanly with END_STREAM (unless a Write is in progress, which
// fails), so the peer keeps all we sent; if the peer has not finished
// sending, the stream is then reset with CANCEL, or with NO_ERROR on a
// server stream whose response is complete. Later reads and writes return
// ErrStreamClosed.
func (s *Stream) Close() error {
	c := s.c
	locked := false
	select {
	case s.wlock <- struct{}{}:
		locked = true
		defer s.unlockWrite()
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		return nil
	}
	// Our side ends with END_STREAM even when the peer's has not: a
	// complete response (or request) stays complete for the peer, which
	// keeps what it received when the RST_STREAM below follows. It goes
	// out with the control frames, so that Close never waits for the
	// socket; holding wlock, no frame of ours is on its way, so it follows
	// all we sent.
	if locked && s.sentHeader && s.writableLocked() == nil {
		c.queueLocked(ctrlFrame{kind: ctrlEndStream, stream: s.id})
		c.endSendLocked(s)
	}
	if s.inMap {
		code := http2.ErrCodeCancel
		if !s.local && s.sentEnd {
			// A complete response: ask the client to stop sending,
			// without error (RFC 9113 section 8.1).
			code = http2.ErrCodeNo
		}
		c.queueLocked(ctrlFrame{kind: ctrlRST, stream: s.id, code: code})
	}
	s.failLocked(ErrStreamClosed)
	c.removeLocked(s)
	return nil
}

// Read reads data the peer sent. It returns io.EOF after END_STREAM, a
// *StreamError after RST_STREAM, the connection's error if it ends, and
// os.ErrDeadlineExceeded when the read deadline passes.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.err != nil {
			return 0, s.err
		}
		if s.buf.Len() > 0 {
			if len(p) == 0 {
				return 0, nil
			}
			n, _ := s.buf.Read(p)
			c.consumedLocked(s, int64(n))
			return n, nil
		}
		if s.recvEnd {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		err := c.waitLocked(s.rsig.wait(), nil, s.rdl, nil)
		s.rsig.done()
		if err != nil {
			return 0, err
		}
	}
}

// SetDataHandler has h take the stream's received data from now on, what
// is buffered first, instead of Read, whose calls then only wait for the
// end of the stream (io.EOF after END_STREAM) or its error. h runs on the
// connection's read goroutine with the connection's lock held: it must not
// block or call the Conn or its streams. The window for the data comes
// back as h returns, so h's owner bounds what it keeps, as a WebTransport
// session does by its own flow control; h saves the copy through the
// stream's buffer and the hand-off to a goroutine in Read.
func (s *Stream) SetDataHandler(h func(p []byte)) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.onData = h
	if n := s.buf.Len(); n > 0 {
		h(s.buf.Bytes())
		s.buf.Reset()
		c.consumedLocked(s, int64(n))
	}
}

// consumedLocked gives back window for n bytes taken out of s's buffer.
func (c *Conn) consumedLocked(s *Stream, n int64) {
	c.buffered -= n
	if inc := c.in.add(n); inc > 0 {
		c.queueLocked(ctrlFrame{kind: ctrlWindowUpdate, n: inc})
	}
	if inc := s.in.add(n); inc > 0 && s.inMap && !s.recvEnd && s.err == nil {
		c.queueLocked(ctrlFrame{kind: ctrlWindowUpdate, stream: s.id, n: inc})
	}
}

// SetReadDeadline sets when Read gives up; zero means never.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.rdl = t
	s.rsig.fire()
	s.c.mu.Unlock()
	return nil
}

// SetWriteDeadline sets when Write gives up; zero means never. It applies
// to a Write already waiting, and to one stuck in the socket: as a frame
// may then be left half written, that ends the connection with
// ErrWriteTimeout.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	c := s.c
	c.mu.Lock()
	s.wdl = t
	s.wsig.fire()
	if c.inSock && c.wowner == s {
		c.armSocketLocked()
	}
	c.mu.Unlock()
	return nil
}

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// endWriteLocked marks our sending side as over.
func (s *Stream) endWriteLocked() {
	if !s.wdoneShut {
		s.wdoneShut = true
		close(s.wdone)
	}
	s.wsig.fire()
}

// failLocked ends the stream with err: buffered data is dropped and its
// connection window given back.
func (s *Stream) failLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	if n := int64(s.buf.Len()); n > 0 {
		s.c.consumedLocked(s, n)
	}
	s.buf = bytes.Buffer{}
	s.endWriteLocked()
	s.rsig.fire()
}

// maybeRemoveLocked forgets s once both sides have ended.
func (c *Conn) maybeRemoveLocked(s *Stream) {
	if s.sentEnd && s.recvEnd {
		c.removeLocked(s)
	}
}

// removeLocked forgets s: it no longer counts against the concurrency
// limits. A connection that got GOAWAY closes when its last stream ends.
func (c *Conn) removeLocked(s *Stream) {
	if !s.inMap {
		return
	}
	s.inMap = false
	delete(c.streams, s.id)
	if s.local {
		c.localActive--
	} else {
		c.peerActive--
	}
	if len(c.streams) == 0 {
		c.lastIdle = time.Now()
		if c.goAwayRecv != nil {
			c.finishLocked(c.goAwayRecv)
		}
	}
	c.slotSig.fire()
}
