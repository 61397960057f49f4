package wt2

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// Capsule types (draft §6, §11.4; close and drain from the HTTP/3 draft).
const (
	capsuleDatagram           http3.CapsuleType = 0x00
	capsuleCloseSession       http3.CapsuleType = 0x2843
	capsuleDrainSession       http3.CapsuleType = 0x78ae
	capsulePadding            http3.CapsuleType = 0x190b4d38
	capsuleResetStream        http3.CapsuleType = 0x190b4d39
	capsuleStopSending        http3.CapsuleType = 0x190b4d3a
	capsuleStreamFin          http3.CapsuleType = 0x190b4d3b // low bit = FIN (draft-15 §6.4)
	capsuleStream             http3.CapsuleType = 0x190b4d3c
	capsuleMaxData            http3.CapsuleType = 0x190b4d3d
	capsuleMaxStreamData      http3.CapsuleType = 0x190b4d3e
	capsuleMaxStreamsBidi     http3.CapsuleType = 0x190b4d3f
	capsuleMaxStreamsUni      http3.CapsuleType = 0x190b4d40
	capsuleDataBlocked        http3.CapsuleType = 0x190b4d41
	capsuleStreamDataBlocked  http3.CapsuleType = 0x190b4d42
	capsuleStreamsBlockedBidi http3.CapsuleType = 0x190b4d43
	capsuleStreamsBlockedUni  http3.CapsuleType = 0x190b4d44
)

// Sizes.
const (
	maxStreamCapsule  = 1<<20 + 8           // received WT_STREAM: 1 MiB of data and a stream ID
	maxControlCapsule = 32                  // received flow-control and stream-control capsules
	maxCloseMessage   = 1024                // WT_CLOSE_SESSION message (draft §6.12)
	maxCloseCapsule   = 4 + maxCloseMessage // code and message
	maxStreamChunk    = 16 << 10            // data per WT_STREAM we send
	recvChunk         = 16 << 10            // size of the buffers received stream data is read into (recvbuf.go)
	readBuffer        = 1 << 10             // the reader's bufio size: capsule headers and small values; larger reads bypass it
	writeBatch        = 64 << 10            // at most this much of capsules goes in one rw.Write
	maxFrameSize      = writeBatch          // the SETTINGS_MAX_FRAME_SIZE we announce: one batch per DATA frame
	minChunk          = 1 << 10             // a batch with less room than this for stream data is full
	maxCapsuleHeader  = 3 * 8               // a WT_STREAM's type, length and stream ID varints, at most
	maxStreamsValue   = 1 << 60             // bound of WT_MAX_STREAMS (draft §6.7)
	maxErrorCode      = 1<<32 - 1
)

// appendCapsuleHeader appends a capsule's Type and Length (RFC 9297 §3.2)
// to out; the caller appends the n bytes of its value.
func appendCapsuleHeader(out *bytes.Buffer, ct http3.CapsuleType, n uint64) {
	b := quicvarint.Append(out.AvailableBuffer(), uint64(ct))
	out.Write(quicvarint.Append(b, n))
}

// errNotConsumed is a bug: a capsule's value was left partly unread.
var errNotConsumed = errors.New("wt2: capsule value not consumed")

// capsuleReader reads the capsules of the CONNECT stream (RFC 9297 §3.2:
// Type, Length, Value) from br, one at a time, without the allocation per
// capsule of http3.CapsuleParser. The value is read through the reader
// itself, which stops at its end. br should be small (readBuffer): reads
// of a value at least that long go straight from the stream into the
// caller's buffer, without a copy through br.
type capsuleReader struct {
	br        *bufio.Reader
	remaining uint64 // unread bytes of the current capsule's value
	skip      bool   // br does not hold the value: Discard leaves it to the push parser
}

// next reads the Type and Length of the next capsule; the previous
// capsule's value must have been read or discarded. It returns io.EOF only
// when the stream ends between capsules, io.ErrUnexpectedEOF within one.
func (p *capsuleReader) next() (http3.CapsuleType, error) {
	if p.remaining > 0 {
		return 0, errNotConsumed
	}
	ct, err := p.varint()
	if err != nil {
		return 0, err
	}
	l, err := p.varint()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, err
	}
	p.remaining = l
	return http3.CapsuleType(ct), nil
}

// varint reads one variable-length integer (RFC 9000 §16) of the framing:
// io.EOF if the stream ended before it, io.ErrUnexpectedEOF within it.
func (p *capsuleReader) varint() (uint64, error) {
	first, err := p.br.Peek(1)
	if err != nil {
		return 0, err
	}
	n := 1 << (first[0] >> 6)
	b, err := p.br.Peek(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	v, _, _ := quicvarint.Parse(b) // b holds the n bytes its first byte says
	p.br.Discard(n)
	return v, nil
}

// Remaining returns the unread length of the current capsule's value.
func (p *capsuleReader) Remaining() int64 { return int64(p.remaining) }

// Read reads from the current capsule's value; io.EOF at its end,
// io.ErrUnexpectedEOF if the stream ends before it.
func (p *capsuleReader) Read(b []byte) (int, error) {
	if p.remaining == 0 {
		return 0, io.EOF
	}
	if uint64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	n, err := p.br.Read(b)
	p.remaining -= uint64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // remaining > 0: bufio returns io.EOF without data
	}
	return n, err
}

// ReadByte reads one byte of the current capsule's value.
func (p *capsuleReader) ReadByte() (byte, error) {
	if p.remaining == 0 {
		return 0, io.EOF
	}
	c, err := p.br.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	if err == nil {
		p.remaining--
	}
	return c, err
}

// Discard skips the rest of the current capsule's value.
func (p *capsuleReader) Discard() error {
	if p.skip {
		p.remaining = 0
		return nil
	}
	for p.remaining > 0 {
		n, err := p.br.Discard(int(min(p.remaining, 1<<30)))
		p.remaining -= uint64(n)
		if err == io.EOF && p.remaining > 0 {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readControl reads a control capsule's value, r holding n bytes, as exactly
// len(vals) varints.
func readControl(ct http3.CapsuleType, r io.Reader, n int64, vals ...*uint64) error {
	_, err := readFields(ct, r, n, len(vals), vals...)
	return err
}

// readFields reads a control capsule's value, r holding n bytes, as at least
// least and at most len(vals) varints, and returns how many there were.
func readFields(ct http3.CapsuleType, r io.Reader, n int64, least int, vals ...*uint64) (int, error) {
	if n > maxControlCapsule {
		return 0, violate(ErrProtocol, "capsule 0x%x of %d bytes (at most %d)", uint64(ct), n, maxControlCapsule)
	}
	var buf [maxControlCapsule]byte
	b := buf[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, err
	}
	got := 0
	for _, v := range vals {
		if len(b) == 0 && got >= least {
			break
		}
		x, l, err := quicvarint.Parse(b)
		if err != nil {
			return 0, violate(ErrProtocol, "capsule 0x%x is too short", uint64(ct))
		}
		*v, b = x, b[l:]
		got++
	}
	if len(b) != 0 {
		return 0, violate(ErrProtocol, "capsule 0x%x has %d trailing bytes", uint64(ct), len(b))
	}
	return got, nil
}

// truncateUTF8 cuts s to at most n bytes at a UTF-8 character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
