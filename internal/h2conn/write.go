package h2conn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// maxCtrlQueue bounds the control frames waiting for the writer. A peer
// that makes us queue more (PING or SETTINGS floods while not reading) gets
// ENHANCE_YOUR_CALM.
const maxCtrlQueue = 4096

// maxDataFrame caps our DATA frames below a large peer MAX_FRAME_SIZE so
// control frames never wait behind a huge frame.
const maxDataFrame = 64 << 10

// maxStreamID is the highest stream ID (RFC 9113 section 5.1.1).
const maxStreamID = 1<<31 - 1

type ctrlKind uint8

const (
	ctrlPreface ctrlKind = iota
	ctrlSettings
	ctrlSettingsAck
	ctrlPing
	ctrlPingAck
	ctrlWindowUpdate
	ctrlRST
	ctrlGoAway
	ctrlHeaders   // a response the read loop sends itself (431)
	ctrlEndStream // an empty DATA frame with END_STREAM, from Stream.Close
	ctrlFinal     // close the connection once everything before is written
)

// ctrlFrame is a frame queued for the writer goroutine.
type ctrlFrame struct {
	kind     ctrlKind
	stream   uint32
	n        uint32 // WINDOW_UPDATE increment, GOAWAY last stream ID
	code     http2.ErrCode
	data     [8]byte
	settings []http2.Setting
	debug    []byte
	fields   []hpack.HeaderField
	end      bool
}

// queueLocked queues f for the writer goroutine without blocking. A full
// queue ends the connection: the frame (an END_STREAM among them) cannot
// simply be dropped.
func (c *Conn) queueLocked(f ctrlFrame) {
	if c.closed {
		return
	}
	if len(c.ctrl) >= maxCtrlQueue && f.kind != ctrlGoAway && f.kind != ctrlFinal {
		c.ctrlOverflow = true
		c.failLocked(protocolError{code: http2.ErrCodeEnhanceYourCalm, reason: "too many control frames queued"})
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.pokeWriter()
}

// writeLoop writes queued control frames when no stream is writing, and
// flushes them. Its waits end when the connection does; its writes, with
// no caller behind them, are bounded by WriteTimeout alone.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctrlSig:
		case <-c.done:
			return
		}
		select {
		case c.wsem <- struct{}{}:
		case <-c.done:
			return
		}
		err := c.writeCtrlHeld()
		if err == nil {
			if ferr := c.bw.Flush(); ferr != nil {
				err = c.writeFailed(ferr)
			}
		}
		<-c.wsem
		if err != nil {
			return
		}
	}
}

// writeCtrlHeld writes the queued control frames; the caller holds wsem.
// Whoever takes wsem does this first, so control frames never wait behind
// data and our preface precedes everything. After ctrlFinal, or when
// writing fails, it closes the connection and returns its error.
func (c *Conn) writeCtrlHeld() error {
	c.mu.Lock()
	q := c.ctrl
	c.ctrl = nil
	c.mu.Unlock()
	for _, f := range q {
		if f.kind != ctrlFinal {
			if err := c.writeCtrl(f); err != nil {
				return c.writeFailed(err)
			}
			continue
		}
		c.bw.Flush()
		c.mu.Lock()
		c.closeLocked(nil) // with failErr, which ctrlFinal always follows
		err := c.err
		c.mu.Unlock()
		return err
	}
	return nil
}

// writeFailed ends the connection after a failed frame write and returns
// why it ended: the socket's error as sockWriter described it or, for a
// frame that could not even be encoded, err.
func (c *Conn) writeFailed(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sockErr != nil {
		err = c.sockErr
	} else {
		err = fmt.Errorf("h2conn: write: %w", err)
	}
	c.closeLocked(err)
	return c.err
}

func (c *Conn) writeCtrl(f ctrlFrame) error {
	switch f.kind {
	case ctrlPreface:
		_, err := c.bw.WriteString(http2.ClientPreface)
		return err
	case ctrlSettings:
		return c.fr.WriteSettings(f.settings...)
	case ctrlSettingsAck:
		return c.fr.WriteSettingsAck()
	case ctrlPing:
		return c.fr.WritePing(false, f.data)
	case ctrlPingAck:
		return c.fr.WritePing(true, f.data)
	case ctrlWindowUpdate:
		return c.fr.WriteWindowUpdate(f.stream, f.n)
	case ctrlRST:
		return c.fr.WriteRSTStream(f.stream, f.code)
	case ctrlGoAway:
		return c.fr.WriteGoAway(f.n, f.code, f.debug)
	case ctrlHeaders:
		return c.writeHeaderBlock(f.stream, f.fields, f.end)
	case ctrlEndStream:
		return c.fr.WriteData(f.stream, true, nil)
	}
	return nil
}

// acquireWrite takes the right to write frames, for stream s or, when s
// is nil, for an OpenStream bounded by ctx. The wait ends when wsem is
// free, when ctx ends, when s's write deadline passes (re-read whenever
// SetWriteDeadline moves it), when s's sending side ends, or when the
// connection ends; and it cannot outlast the holder of wsem, whose
// socket writes all have deadlines (see sockWriter).
func (c *Conn) acquireWrite(ctx context.Context, s *Stream) error {
	select {
	case c.wsem <- struct{}{}:
		return c.afterAcquire(ctx, s)
	default:
	}
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	c.wwait.Add(1)
	defer c.wwait.Add(-1)
	for {
		var dl time.Time
		var moved, ended <-chan struct{}
		if s != nil {
			c.mu.Lock()
			dl, moved, ended = s.wdl, s.wsig.wait(), s.wdone
			c.mu.Unlock()
		}
		timeout, stop, err := deadlineTimer(dl)
		if err != nil {
			return err
		}
		select {
		case c.wsem <- struct{}{}:
			stop()
			return c.afterAcquire(ctx, s)
		case <-c.done:
			stop()
			return c.Err()
		case <-timeout:
			return os.ErrDeadlineExceeded
		case <-ctxDone:
			stop()
			return ctx.Err()
		case <-ended:
			stop()
			c.mu.Lock()
			defer c.mu.Unlock()
			if err := s.writableLocked(); err != nil {
				return err
			}
			return ErrStreamClosed
		case <-moved: // a new deadline, or window: look again
			stop()
		}
	}
}

// afterAcquire records who holds wsem, for the socket's write deadline,
// and writes queued control frames; it gives wsem back if the holder's
// deadline has already passed or the connection ended.
func (c *Conn) afterAcquire(ctx context.Context, s *Stream) error {
	c.mu.Lock()
	c.wowner, c.wctxDL = s, time.Time{}
	if s == nil && ctx != nil {
		c.wctxDL, _ = ctx.Deadline()
	}
	expired := pastLocked(c.holderDeadlineLocked())
	c.mu.Unlock()
	if expired {
		c.abandonWrite()
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return os.ErrDeadlineExceeded
	}
	if err := c.writeCtrlHeld(); err != nil {
		c.abandonWrite()
		return err
	}
	return nil
}

// pastLocked reports whether deadline is set and has passed. Callers check
// it with wsem held, just before writing: a socket write that starts with
// its deadline already gone fails without writing, yet ends the
// connection.
func pastLocked(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

// releaseWrite flushes, gives up the right to write, and ends the
// connection if writing failed. When other writers wait, the flush is left
// to them so frames batch; the writer goroutine, woken here, flushes if
// they give up.
func (c *Conn) releaseWrite(err error) error {
	if err == nil {
		if c.wwait.Load() > 0 {
			c.pokeWriter()
		} else {
			err = c.bw.Flush()
		}
	}
	c.dropWrite()
	if err != nil {
		return c.writeFailed(err)
	}
	return nil
}

// abandonWrite gives up the right to write without writing; the writer
// goroutine flushes any control frames written meanwhile.
func (c *Conn) abandonWrite() {
	c.dropWrite()
	c.pokeWriter()
}

// dropWrite gives wsem back.
func (c *Conn) dropWrite() {
	c.mu.Lock()
	c.wowner, c.wctxDL = nil, time.Time{}
	c.mu.Unlock()
	<-c.wsem
}

// sockWriter is what c.bw writes to: the socket, with a write deadline on
// every write, so that a peer that stops reading cannot hold wsem, and
// every writer waiting behind it, for ever.
type sockWriter struct{ c *Conn }

// Write writes p to the socket for the holder of wsem. Its deadline is
// the holder's (a stream's write deadline, an OpenStream context's) or
// WriteTimeout from the last progress, whichever comes first: progress
// moves the latter on, as x/net's WriteByteTimeout does (over TLS, whose
// writes fail for good once one times out, it bounds each write instead).
// On failure c.bw keeps the error, so the caller must end the connection
// (writeFailed), with c.sockErr: which deadline passed, or what failed.
func (w sockWriter) Write(p []byte) (int, error) {
	c := w.c
	n := 0
	for {
		c.mu.Lock()
		c.inSock = true
		c.sockStall = time.Now().Add(c.ours.writeTimeout)
		c.armSocketLocked()
		c.mu.Unlock()
		k, err := c.nc.Write(p[n:])
		n += k
		c.mu.Lock()
		c.inSock = false
		if err == nil {
			c.mu.Unlock()
			return n, nil
		}
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		byHolder := timedOut && pastLocked(c.holderDeadlineLocked())
		if timedOut && !byHolder && k > 0 && n < len(p) {
			c.mu.Unlock()
			continue
		}
		switch {
		case byHolder:
			who := "the request context's deadline"
			if c.wowner != nil {
				who = fmt.Sprintf("stream %d's write deadline", c.wowner.id)
			}
			err = fmt.Errorf("%w: %s passed with the socket full (the peer is not reading); a frame may be cut short, so the connection is closed: %w", ErrWriteTimeout, who, err)
		case timedOut:
			err = fmt.Errorf("%w: the socket took nothing for %v (the peer is not reading); a frame may be cut short, so the connection is closed: %w", ErrWriteTimeout, c.ours.writeTimeout, err)
		default:
			err = fmt.Errorf("h2conn: write: %w", err)
		}
		if c.sockErr == nil {
			c.sockErr = err
		}
		c.mu.Unlock()
		return n, err
	}
}

// holderDeadlineLocked returns the deadline of whoever holds wsem: zero
// for the writer goroutine.
func (c *Conn) holderDeadlineLocked() time.Time {
	if c.wowner != nil {
		return c.wowner.wdl
	}
	return c.wctxDL
}

// armSocketLocked sets the socket's write deadline for the write under
// way: the holder's deadline or the stall limit, whichever is sooner.
func (c *Conn) armSocketLocked() {
	dl := c.sockStall
	if h := c.holderDeadlineLocked(); !h.IsZero() && h.Before(dl) {
		dl = h
	}
	c.nc.SetWriteDeadline(dl)
}

// pokeWriter wakes the writer goroutine.
func (c *Conn) pokeWriter() {
	select {
	case c.ctrlSig <- struct{}{}:
	default:
	}
}

// headerListSize is the size RFC 9113 section 6.5.2 counts.
func headerListSize(fields []hpack.HeaderField) uint64 {
	var n uint64
	for _, f := range fields {
		n += uint64(f.Size())
	}
	return n
}

// writeHeaderBlock encodes fields and writes HEADERS and CONTINUATION
// frames no larger than the peer's MAX_FRAME_SIZE. The caller holds wsem,
// which keeps HPACK state and the frames on the wire in one order.
func (c *Conn) writeHeaderBlock(id uint32, fields []hpack.HeaderField, end bool) error {
	c.mu.Lock()
	maxFrame := int(c.peerMaxFrame)
	table, tmin, changed := c.peerTable, c.peerTableMin, c.tableChanged
	c.tableChanged = false
	c.mu.Unlock()
	if changed {
		// RFC 7541 section 4.2: a size that dropped and rose again
		// between two header blocks must still be signalled; the table
		// then stays at that smallest size.
		c.henc.SetMaxDynamicTableSizeLimit(tmin)
		c.henc.SetMaxDynamicTableSizeLimit(table)
	}
	c.hbuf.Reset()
	for _, f := range fields {
		if err := c.henc.WriteField(f); err != nil {
			return err
		}
	}
	block := c.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{
				StreamID:      id,
				BlockFragment: frag,
				EndStream:     end,
				EndHeaders:    len(block) == 0,
			})
			first = false
		} else {
			err = c.fr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
