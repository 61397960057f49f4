package h2conn

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// readLoop reads and handles frames until the connection ends. It never
// blocks on anything but the socket, which closing the connection
// unblocks: what it sends goes to the writer's queue and what it receives
// to the streams' buffers. After a protocol error it waits at most a
// second for the GOAWAY to go out.
func (c *Conn) readLoop() {
	defer c.wg.Done()
	for {
		f, err := c.fr.ReadFrame()
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if err != nil {
			err = c.readErrorLocked(err)
		} else {
			err = c.handleLocked(f)
		}
		if err == nil && c.ctrlOverflow {
			err = connError(http2.ErrCodeEnhanceYourCalm, "too many control frames queued")
		}
		if err == nil {
			c.mu.Unlock()
			continue
		}
		var pe protocolError
		if !errors.As(err, &pe) {
			c.closeLocked(err)
			c.mu.Unlock()
			return
		}
		c.failLocked(pe)
		c.mu.Unlock()
		// The writer closes the connection once GOAWAY is out; do not wait
		// long for a peer that does not read.
		t := time.NewTimer(time.Second)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
		c.mu.Lock()
		c.closeLocked(c.failErr)
		c.mu.Unlock()
		return
	}
}

// readErrorLocked turns an error from the Framer into a connection error,
// or handles a stream error and returns nil.
func (c *Conn) readErrorLocked(err error) error {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		id := se.StreamID
		if c.streams[id] == nil {
			if c.idleLocked(id) {
				if c.isOurs(id) {
					return connError(http2.ErrCodeProtocol, "stream error on idle stream %d", id)
				}
				c.maxPeerID = id
			} else {
				return nil // closed: nothing to reset
			}
		}
		c.streamErrorLocked(id, se.Code, fmt.Errorf("peer sent a bad frame: %w", se))
		return nil
	case errors.As(err, &ce):
		reason := "bad frame"
		if d := c.fr.ErrorDetail(); d != nil {
			reason = d.Error()
		}
		return connError(http2.ErrCode(ce), "%s", reason)
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connError(http2.ErrCodeFrameSize, "frame larger than our MAX_FRAME_SIZE")
	}
	return fmt.Errorf("h2conn: read: %w", err)
}

// ours reports whether stream id has the parity of the streams we open.
func (c *Conn) isOurs(id uint32) bool { return (id%2 == 1) == c.client }

// idleLocked reports whether stream id has never been opened.
func (c *Conn) idleLocked(id uint32) bool {
	if c.isOurs(id) {
		return id >= c.nextID
	}
	return id > c.maxPeerID
}

// streamErrorLocked resets stream id with code.
func (c *Conn) streamErrorLocked(id uint32, code http2.ErrCode, cause error) {
	if s := c.streams[id]; s != nil {
		s.failLocked(&StreamError{StreamID: id, Code: code, Cause: cause})
		c.removeLocked(s)
	}
	c.queueLocked(ctrlFrame{kind: ctrlRST, stream: id, code: code})
}

// returnLocked gives back window for n received bytes that will not be
// buffered (padding, data for a closed stream).
func (c *Conn) returnLocked(s *Stream, n int64) {
	if inc := c.in.add(n); inc > 0 {
		c.queueLocked(ctrlFrame{kind: ctrlWindowUpdate, n: inc})
	}
	if s == nil {
		return
	}
	if inc := s.in.add(n); inc > 0 && s.inMap && !s.recvEnd && s.err == nil {
		c.queueLocked(ctrlFrame{kind: ctrlWindowUpdate, stream: s.id, n: inc})
	}
}

func (c *Conn) handleLocked(f http2.Frame) error {
	if !c.sawSettings {
		// The preface must be SETTINGS; a GOAWAY instead still says why.
		if _, ok := f.(*http2.GoAwayFrame); ok {
			c.onGoAwayLocked(f.(*http2.GoAwayFrame))
			return nil
		}
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			return connError(http2.ErrCodeProtocol, "first frame is %v, not SETTINGS", f.Header().Type)
		}
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.onSettingsLocked(f)
	case *http2.HeadersFrame:
		return c.startBlockLocked(f)
	case *http2.ContinuationFrame:
		return c.continueBlockLocked(f)
	case *http2.DataFrame:
		return c.onDataLocked(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdateLocked(f)
	case *http2.RSTStreamFrame:
		return c.onRSTLocked(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.queueLocked(ctrlFrame{kind: ctrlPingAck, data: f.Data})
		} else if ch, ok := c.pings[f.Data]; ok {
			delete(c.pings, f.Data)
			close(ch)
		}
		return nil
	case *http2.GoAwayFrame:
		c.onGoAwayLocked(f)
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return c.priorityErrorLocked(f.StreamID)
		}
		return nil
	case *http2.PushPromiseFrame:
		return connError(http2.ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	}
	return nil // unknown and extension frames are ignored
}

// priorityErrorLocked handles a stream that depends on itself, a stream
// error (RFC 9113 section 5.3.1).
func (c *Conn) priorityErrorLocked(id uint32) error {
	if c.streams[id] == nil && c.idleLocked(id) && !c.isOurs(id) {
		c.maxPeerID = id
	}
	if c.streams[id] != nil || !c.idleLocked(id) {
		c.streamErrorLocked(id, http2.ErrCodeProtocol, errors.New("stream depends on itself"))
	}
	return nil
}

func (c *Conn) onDataLocked(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	if !c.in.take(n) {
		return connError(http2.ErrCodeFlowControl, "DATA beyond the connection window")
	}
	s := c.streams[id]
	if s == nil {
		if c.idleLocked(id) {
			return connError(http2.ErrCodeProtocol, "DATA on idle stream %d", id)
		}
		c.returnLocked(nil, n) // a stream we reset or closed
		return nil
	}
	var bad error
	code := http2.ErrCodeProtocol
	switch {
	case s.recvEnd:
		code, bad = http2.ErrCodeStreamClosed, errors.New("DATA after END_STREAM")
	case !s.gotHeader:
		bad = errors.New("DATA before HEADERS")
	case !s.in.take(n):
		code, bad = http2.ErrCodeFlowControl, errors.New("DATA beyond the stream window")
	}
	if bad != nil {
		c.returnLocked(nil, n)
		c.streamErrorLocked(id, code, bad)
		return nil
	}
	ended := f.StreamEnded()
	if ended {
		// Before the window comes back below: none for a stream whose
		// peer has finished sending.
		s.recvEnd = true
	}
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.returnLocked(s, pad)
	}
	if len(data) > 0 && s.onData != nil {
		s.onData(data) // SetDataHandler
		c.buffered += int64(len(data))
		c.consumedLocked(s, int64(len(data)))
	} else if len(data) > 0 {
		s.buf.Write(data)
		c.buffered += int64(len(data))
		c.maxBuffered = max(c.maxBuffered, c.buffered)
		s.maxBuf = max(s.maxBuf, int64(s.buf.Len()))
	}
	if ended {
		c.maybeRemoveLocked(s)
	} else if s.onData != nil {
		return nil // Read waits for the end only: nothing for it here
	}
	s.rsig.fire()
	return nil
}

func (c *Conn) onHeadersLocked(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	s := c.streams[id]
	if s == nil {
		switch {
		case c.isOurs(id) && c.idleLocked(id):
			return connError(http2.ErrCodeProtocol, "HEADERS on idle stream %d", id)
		case c.isOurs(id) || !c.idleLocked(id):
			return nil // a stream that has ended: ignore late trailers
		case c.client:
			return connError(http2.ErrCodeProtocol, "server opened stream %d", id)
		}
		c.maxPeerID = id
		if f.HasPriority() && f.Priority.StreamDep == id {
			return c.priorityErrorLocked(id)
		}
		c.acceptLocked(f)
		return nil
	}
	var bad error
	code := http2.ErrCodeProtocol
	switch {
	case s.recvEnd:
		code, bad = http2.ErrCodeStreamClosed, errors.New("HEADERS after END_STREAM")
	case f.HasPriority() && f.Priority.StreamDep == id:
		bad = errors.New("stream depends on itself")
	case f.Truncated:
		bad = fmt.Errorf("%w: larger than %d bytes", ErrPeerHeaderListTooLarge, c.ours.maxHeaderList)
		if !s.gotHeader && s.infoSize > 0 {
			bad = fmt.Errorf("%w: larger than %d bytes with the %d bytes of the 1xx responses before it", ErrPeerHeaderListTooLarge, c.ours.maxHeaderList, s.infoSize)
		}
	case !s.gotHeader:
		status, err := checkResponse(f.Fields)
		switch {
		case err != nil:
			bad = err
		case status >= 200:
			s.header = slices.Clone(f.Fields)
			s.gotHeader = true
		case status == 101 || f.StreamEnded():
			bad = fmt.Errorf("bad informational response %d", status)
		default:
			// A 1xx response (RFC 9113 section 8.1): skipped, but its
			// size counts against the final response's header list
			// limit (startBlockLocked), as net/http's HTTP/1 client
			// counts it against MaxResponseHeaderBytes. That bounds the
			// 1xx responses a server can send (MaxHeaderListSize / 42
			// bytes, the smallest :status-only list), so there is no cap
			// on their number, which would fail long 102 or 103 runs.
			s.infoSize += headerListSize(f.Fields)
			return nil
		}
	case !f.StreamEnded():
		bad = errors.New("second header block without END_STREAM")
	case len(f.PseudoFields()) > 0:
		bad = errors.New("pseudo-header in trailers")
	}
	if bad != nil {
		c.streamErrorLocked(id, code, bad)
		return nil
	}
	if f.StreamEnded() {
		s.recvEnd = true
		c.maybeRemoveLocked(s)
	} else if s.onData != nil {
		return nil // Read waits for the end only: nothing for it here
	}
	s.rsig.fire()
	return nil
}

// acceptLocked handles the HEADERS that open a peer's stream (server
// role).
func (c *Conn) acceptLocked(f *http2.MetaHeadersFrame) {
	id := f.StreamID
	refuse := func(code http2.ErrCode) {
		c.queueLocked(ctrlFrame{kind: ctrlRST, stream: id, code: code})
	}
	switch {
	// Streams the peer reset before AcceptStream took them no longer
	// count in peerActive but still wait in acceptQ: bound the queue too.
	case c.goAwaySent, uint64(c.peerActive) >= uint64(c.ours.maxStreams),
		uint64(len(c.acceptQ)) >= uint64(c.ours.maxStreams):
		refuse(http2.ErrCodeRefusedStream)
		return
	case f.Truncated:
		// RFC 9113 section 10.5.1: answer 431, then stop the upload.
		c.queueLocked(ctrlFrame{kind: ctrlHeaders, stream: id, end: true,
			fields: []hpack.HeaderField{{Name: ":status", Value: "431"}}})
		if !f.StreamEnded() {
			refuse(http2.ErrCodeNo)
		}
		return
	}
	if err := checkRequest(f.Fields, c.ours.extConnect); err != nil {
		refuse(http2.ErrCodeProtocol)
		return
	}
	s := c.newStreamLocked(id, false)
	s.header = slices.Clone(f.Fields)
	s.gotHeader = true
	s.recvEnd = f.StreamEnded()
	c.acceptQ = append(c.acceptQ, s)
	c.acceptSig.fire()
}

func (c *Conn) onWindowUpdateLocked(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendAvail += inc
		if c.sendAvail > maxWindow {
			return connError(http2.ErrCodeFlowControl, "connection window above 2^31-1")
		}
		c.sendSig.fire()
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleLocked(f.StreamID) {
			return connError(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil
	}
	s.sendAvail += inc
	if s.sendAvail > maxWindow {
		c.streamErrorLocked(s.id, http2.ErrCodeFlowControl, errors.New("stream window above 2^31-1"))
		return nil
	}
	s.wsig.fire()
	return nil
}

func (c *Conn) onRSTLocked(f *http2.RSTStreamFrame) error {
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleLocked(f.StreamID) {
			return connError(http2.ErrCodeProtocol, "RST_STREAM on idle stream %d", f.StreamID)
		}
		return nil
	}
	se := &StreamError{StreamID: s.id, Code: f.ErrCode, Remote: true}
	if s.recvEnd {
		// The peer had finished sending and only stops our side (with
		// NO_ERROR after a complete response, RFC 9113 section 8.1, or
		// with CANCEL when it closes): what it sent stays readable.
		s.werr = se
		s.endWriteLocked()
	} else {
		s.failLocked(se)
	}
	c.removeLocked(s)
	return nil
}

// onGoAwayLocked stops new streams and fails ours above the last stream
// ID, which the peer will never process.
func (c *Conn) onGoAwayLocked(f *http2.GoAwayFrame) {
	ga := &GoAwayError{LastStreamID: f.LastStreamID, Code: f.ErrCode, Debug: string(f.DebugData()), Remote: true}
	if c.goAwayRecv != nil && c.goAwayRecv.LastStreamID < ga.LastStreamID {
		ga.LastStreamID = c.goAwayRecv.LastStreamID
	}
	c.goAwayRecv = ga
	for id, s := range c.streams {
		if s.local && id > ga.LastStreamID {
			s.failLocked(fmt.Errorf("%w: %w", ErrNotProcessed, ga))
			c.removeLocked(s)
		}
	}
	c.slotSig.fire()
	if len(c.streams) == 0 {
		c.closeLocked(ga)
	}
}
