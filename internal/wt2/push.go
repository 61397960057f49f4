package wt2

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// dataHandlerSetter is implemented by transports that can hand over their
// data as it arrives, on their own read goroutine, instead of through Read,
// like *h2conn.Stream (SetDataHandler). The session then parses capsules
// there and copies stream data once, from the DATA frame into the stream's
// receive buffer, with no goroutine between the transport's reader and the
// application, the way quic-go's connection hands STREAM frames to its
// streams. Read then only reports the end of the transport's stream.
type dataHandlerSetter interface {
	SetDataHandler(func([]byte))
}

// Push parser states.
const (
	pushHeader   = iota // reading a capsule's Type and Length
	pushStreamID        // reading a WT_STREAM capsule's Stream ID
	pushData            // copying a WT_STREAM capsule's data to its stream
	pushValue           // gathering a capsule's value, for handleCapsule
	pushDiscard         // skipping a capsule's value
	pushDead            // the session has ended: everything is discarded
)

// maxGathered bounds the value of a capsule other than WT_STREAM that the
// push parser gathers whole: one larger is one handleCapsule refuses
// (control capsules, WT_CLOSE_SESSION) or drops (DATAGRAM beyond
// Config.MaxDatagramSize, padding, unknown types) without reading it.
func (s *Session) maxGathered() uint64 {
	return uint64(max(maxCloseCapsule, s.cfg.MaxDatagramSize))
}

// pushParser parses the capsules of the CONNECT stream (RFC 9297 §3.2) from
// the pieces a dataHandlerSetter hands it, one call at a time, applying each
// as readCapsules does.
type pushParser struct {
	s     *Session
	state int
	hdr   []byte // partial varints: Type and Length, or a Stream ID
	ct    http3.CapsuleType
	n     uint64 // bytes of the current capsule's value not yet taken
	fin   bool   // the WT_STREAM capsule carries FIN
	st    *stream
	val   []byte        // the gathered value (pushValue)
	vr    bytes.Reader  // val, read by handleCapsule through br
	br    *bufio.Reader // over vr
}

func newPushParser(s *Session) *pushParser {
	p := &pushParser{s: s, hdr: make([]byte, 0, 16)}
	p.br = bufio.NewReaderSize(&p.vr, readBuffer)
	return p
}

// feed takes the next piece of the CONNECT stream.
func (p *pushParser) feed(b []byte) {
	for len(b) > 0 {
		var err error
		switch p.state {
		case pushHeader:
			b, err = p.header(b)
		case pushStreamID:
			b, err = p.streamID(b)
		case pushData:
			k := min(uint64(len(b)), p.n)
			p.s.mu.Lock()
			p.st.appendLocked(b[:k])
			p.s.mu.Unlock()
			b, p.n = b[k:], p.n-k
			if p.n == 0 {
				p.s.endStreamCapsule(p.st, p.fin)
				p.st = nil
				p.done()
			}
		case pushValue:
			k := min(uint64(len(b)), p.n)
			p.val = append(p.val, b[:k]...)
			b, p.n = b[k:], p.n-k
			if p.n == 0 {
				err = p.apply(p.val, uint64(len(p.val)), false)
			}
		case pushDiscard:
			k := min(uint64(len(b)), p.n)
			b, p.n = b[k:], p.n-k
			if p.n == 0 {
				p.done()
			}
		case pushDead:
			return
		}
		if err != nil {
			p.state = pushDead
			if errors.As(err, new(*violation)) {
				p.s.fail(err)
			} else {
				p.s.fail(fmt.Errorf("wt2: reading CONNECT stream: %w", err))
			}
			return
		}
	}
}

// varints parses up to two varints from the front of b (RFC 9000 §16): ok
// when all of them are there.
func varints(b []byte, count int) (v [2]uint64, used int, ok bool) {
	for i := range count {
		x, l, err := quicvarint.Parse(b[used:])
		if err != nil {
			return v, 0, false
		}
		v[i] = x
		used += l
	}
	return v, used, true
}

// take appends to p.hdr what it can hold of b, parses count varints from
// it and returns them and the rest of b; ok is false when b ended first.
func (p *pushParser) take(b []byte, count int) (v [2]uint64, rest []byte, ok bool) {
	old := len(p.hdr)
	k := min(len(b), cap(p.hdr)-old)
	p.hdr = append(p.hdr, b[:k]...)
	v, used, ok := varints(p.hdr, count)
	if !ok {
		return v, b[k:], false
	}
	p.hdr = p.hdr[:0]
	return v, b[used-old:], true
}

// header reads a capsule's Type and Length and starts on its value.
func (p *pushParser) header(b []byte) ([]byte, error) {
	v, b, ok := p.take(b, 2)
	if !ok {
		return b, nil
	}
	p.ct, p.n = http3.CapsuleType(v[0]), v[1]
	switch ct := p.s.w.capsuleType(p.ct); {
	case ct == capsuleStream || ct == capsuleStreamFin:
		if p.n > maxStreamCapsule {
			return b, violate(ErrProtocol, "WT_STREAM capsule of %d bytes (at most %d)", p.n, maxStreamCapsule)
		}
		if p.n == 0 {
			return b, violate(ErrProtocol, "WT_STREAM capsule without a stream ID")
		}
		p.fin = ct == capsuleStreamFin
		p.state = pushStreamID
	case p.n > p.s.maxGathered():
		// handleCapsule decides from the length alone: it discards
		// the value (which skip then does here) or refuses it.
		return b, p.apply(nil, p.n, true)
	case p.n == 0:
		return b, p.apply(nil, 0, false)
	default:
		p.val = p.val[:0]
		p.state = pushValue
	}
	return b, nil
}

// streamID reads a WT_STREAM capsule's Stream ID and starts on its data.
func (p *pushParser) streamID(b []byte) ([]byte, error) {
	if len(p.hdr) == 0 && len(b) > 0 && uint64(1)<<(b[0]>>6) > p.n {
		return b, violate(ErrProtocol, "WT_STREAM capsule without a stream ID")
	}
	v, b, ok := p.take(b, 1)
	if !ok {
		return b, nil
	}
	id := v[0]
	p.n -= uint64(quicvarint.Len(id))
	st, err := p.s.streamForData(id, p.n)
	if err != nil {
		return b, err
	}
	if p.n == 0 {
		p.s.endStreamCapsule(st, p.fin)
		p.done()
		return b, nil
	}
	p.st = st
	p.state = pushData
	return b, nil
}

// apply hands a capsule of n bytes to handleCapsule: value holds all of
// them, or (skip) none, and a Discard of them is left to the parser.
func (p *pushParser) apply(value []byte, n uint64, skip bool) error {
	p.vr.Reset(value)
	p.br.Reset(&p.vr)
	r := &capsuleReader{br: p.br, remaining: n, skip: skip}
	err := p.s.handleCapsule(p.ct, r)
	if cap(p.val) > 4<<10 {
		p.val = nil // a large datagram's: not kept for the session's life
	}
	if err != nil {
		return err
	}
	if skip {
		p.n, p.state = n, pushDiscard
		if n == 0 {
			p.done()
		}
		return nil
	}
	p.done()
	return nil
}

// done ends a capsule: the next one follows, unless the session has ended,
// after which the rest of the stream is discarded (as readCapsules does).
func (p *pushParser) done() {
	p.state = pushHeader
	p.s.mu.Lock()
	if p.s.cause != nil {
		p.state = pushDead
	}
	p.s.mu.Unlock()
}

// partial reports whether the stream ended within a capsule.
func (p *pushParser) partial() bool {
	return p.state != pushDead && (p.state != pushHeader || len(p.hdr) > 0)
}

// pushLoop is readLoop for a dataHandlerSetter: capsules are parsed by the
// handler; this goroutine waits for the end of the transport's stream, and
// then ends the session as readLoop does.
func (s *Session) pushLoop(ds dataHandlerSetter) {
	p := newPushParser(s)
	ds.SetDataHandler(p.feed)
	var buf [512]byte
	var err error
	for err == nil {
		var n int
		n, err = s.rw.Read(buf[:]) // returns no data once the handler is set
		if n > 0 {
			p.feed(buf[:n])
		}
	}
	switch {
	case err == io.EOF && p.partial():
		s.fail(fmt.Errorf("wt2: reading CONNECT stream: %w", io.ErrUnexpectedEOF))
	case err == io.EOF:
		// As in readLoop: the peer ended the CONNECT stream without
		// WT_CLOSE_SESSION (draft §6.12).
		s.mu.Lock()
		s.endLocked(&SessionError{Remote: true}, nil)
		s.mu.Unlock()
	default:
		s.fail(fmt.Errorf("wt2: reading CONNECT stream: %w", err))
	}
}
