package h2conn

import (
	"context"
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
	ctrlHeaders // a response the read loop sends itself (431)
	ctrlFinal   // close the connection once everything before is written
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

// queueLocked queues f for the writer goroutine without blocking.
func (c *Conn) queueLocked(f ctrlFrame) {
	if c.closed {
		return
	}
	if len(c.ctrl) >= maxCtrlQueue && f.kind != ctrlGoAway && f.kind != ctrlFinal {
		c.ctrlOverflow = true
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.pokeWriter()
}

// writeLoop writes queued control frames when no stream is writing, and
// flushes them.
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
			if err = c.bw.Flush(); err != nil {
				err = fmt.Errorf("h2conn: write: %w", err)
				c.mu.Lock()
				c.closeLocked(err)
				c.mu.Unlock()
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
		var cause error
		if f.kind == ctrlFinal {
			c.bw.Flush()
		} else if err := c.writeCtrl(f); err != nil {
			cause = fmt.Errorf("h2conn: write: %w", err)
		} else {
			continue
		}
		c.mu.Lock()
		c.closeLocked(cause) // the failure's own error wins over cause
		err := c.err
		c.mu.Unlock()
		return err
	}
	return nil
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
	}
	return nil
}

// acquireWrite takes the right to write frames, waiting at most until
// the deadline or ctx's end.
func (c *Conn) acquireWrite(ctx context.Context, deadline time.Time) error {
	select {
	case c.wsem <- struct{}{}:
		return c.afterAcquire()
	default:
	}
	timeout, stop, err := deadlineTimer(deadline)
	if err != nil {
		return err
	}
	defer stop()
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	c.wwait.Add(1)
	defer c.wwait.Add(-1)
	select {
	case c.wsem <- struct{}{}:
		return c.afterAcquire()
	case <-c.done:
		return c.Err()
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-ctxDone:
		return ctx.Err()
	}
}

// afterAcquire writes queued control frames once wsem is ours, and gives
// wsem back if the connection ended.
func (c *Conn) afterAcquire() error {
	if err := c.writeCtrlHeld(); err != nil {
		c.abandonWrite()
		return err
	}
	return nil
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
	<-c.wsem
	if err != nil {
		err = fmt.Errorf("h2conn: write: %w", err)
		c.mu.Lock()
		c.closeLocked(err)
		err = c.err
		c.mu.Unlock()
	}
	return err
}

// abandonWrite gives up the right to write without writing; the writer
// goroutine flushes any control frames written meanwhile.
func (c *Conn) abandonWrite() {
	<-c.wsem
	c.pokeWriter()
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
