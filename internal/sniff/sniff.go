// Package sniff reads the server's first HTTP/2 SETTINGS frame off a
// connection while another HTTP/2 implementation (x/net/http2) owns it.
//
// x/net/http2's ClientConn does not expose the peer's SETTINGS. A Conn sits
// between it and the TLS connection: it holds back the first frame, which
// RFC 9113 §3.4 requires to be the server's SETTINGS, until it is whole,
// parses it, and then passes every byte through. The one change it makes
// is to cap the SETTINGS_MAX_FRAME_SIZE the client sees (see New).
package sniff

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Setting identifiers this package names (RFC 9113 §6.5.2, RFC 8441 §3).
const (
	SettingMaxFrameSize          = 0x5
	SettingEnableConnectProtocol = 0x8
)

// maxSettingsLen bounds the first SETTINGS frame: the default
// SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2) a server may use before it knows
// ours.
const maxSettingsLen = 16384

// ErrNotSettings is returned when the server's first frame is not a valid
// SETTINGS frame.
var ErrNotSettings = errors.New("http2: server preface is not a SETTINGS frame")

// Conn passes reads through and parses the first HTTP/2 frame read.
type Conn struct {
	net.Conn
	maxFrame uint32 // the cap on SETTINGS_MAX_FRAME_SIZE, 0 for none

	// Only Read touches these: the bytes read and not yet returned (the
	// first frame and what came with it), whether the first frame is
	// past, and the read error to return once held is drained.
	held    []byte
	through bool
	rerr    error

	mu       sync.Mutex
	buf      []byte // bytes of the first frame seen so far
	checked  bool   // the first frame's header was checked
	settings map[uint16]uint32
	err      error
	done     chan struct{} // closed when settings or err is set
}

// New wraps c, which must carry HTTP/2 from its first byte read. When
// maxFrame is not 0, a larger SETTINGS_MAX_FRAME_SIZE in the server's first
// SETTINGS reaches the client as maxFrame: x/net/http2 sizes the buffer it
// holds for each request body (a WebSocket's whole life) by that value, up
// to 512 KiB, where 16 KiB frames (RFC 9113 §4.2's default) cost little.
// Sending smaller frames than the peer allows is always valid, and the
// client's ACK carries no values (§6.5.3), so the server sees no change.
// Settings reports the values the server sent.
func New(c net.Conn, maxFrame uint32) *Conn {
	return &Conn{Conn: c, maxFrame: maxFrame, done: make(chan struct{})}
}

// ConnectionState returns the TLS state of the wrapped connection, so that
// HTTP/2 clients still see a TLS connection.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if cs, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return cs.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Read reads from the connection. Until the first frame is whole it holds
// back what it reads (the frame is at most 9+16384 bytes, checkHeader), so
// that the frame is parsed, and capped, before the client sees a byte.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.through && len(c.held) > 0 {
			n := copy(p, c.held)
			c.held = c.held[n:]
			if len(c.held) == 0 {
				c.held = nil // the frame's bytes are not kept for the connection's life
			}
			return n, nil
		}
		if c.through && c.rerr != nil {
			err := c.rerr
			c.rerr = nil
			return 0, err
		}
		if c.through {
			return c.Conn.Read(p)
		}
		n, err := c.Conn.Read(p)
		c.mu.Lock()
		c.held = append(c.held, p[:n]...)
		if c.settings == nil && c.err == nil {
			c.feed(p[:n])
			if err != nil && c.settings == nil && c.err == nil {
				c.fail(fmt.Errorf("http2: connection ended before the server's SETTINGS: %w", err))
			}
		}
		if c.settings != nil && c.maxFrame != 0 {
			capSetting(c.held, SettingMaxFrameSize, c.maxFrame)
		}
		c.through = c.settings != nil || c.err != nil
		c.mu.Unlock()
		c.rerr = err
	}
}

// capSetting lowers to max every value of setting id above it in frame, a
// whole SETTINGS frame (and maybe bytes after it).
func capSetting(frame []byte, id uint16, max uint32) {
	payload := frame[9 : 9+frameLen(frame)]
	for ; len(payload) >= 6; payload = payload[6:] {
		if binary.BigEndian.Uint16(payload) == id && binary.BigEndian.Uint32(payload[2:]) > max {
			binary.BigEndian.PutUint32(payload[2:], max)
		}
	}
}

// Close closes the connection; a pending Settings call returns an error.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	if c.settings == nil && c.err == nil {
		c.fail(net.ErrClosed)
	}
	c.mu.Unlock()
	return err
}

// Settings waits for the server's first SETTINGS frame and returns its
// values by identifier.
func (c *Conn) Settings(ctx context.Context) (map[uint16]uint32, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings, c.err
}

// Received returns the server's first SETTINGS if they have arrived.
func (c *Conn) Received() (map[uint16]uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings, c.settings != nil
}

func (c *Conn) fail(err error) {
	c.err = err
	close(c.done)
}

// feed adds bytes read to the first frame and parses it once complete.
func (c *Conn) feed(b []byte) {
	for {
		need := 9
		if len(c.buf) >= 9 {
			need += frameLen(c.buf)
		}
		take := min(len(b), need-len(c.buf))
		c.buf = append(c.buf, b[:take]...)
		b = b[take:]
		switch {
		case len(c.buf) < 9:
			return
		case !c.checked:
			if err := checkHeader(c.buf); err != nil {
				c.fail(err)
				return
			}
			c.checked = true
			continue
		case len(c.buf) < 9+frameLen(c.buf):
			return
		}
		s, err := Parse(c.buf)
		if err != nil {
			c.fail(err)
			return
		}
		c.settings, c.buf = s, nil
		close(c.done)
		return
	}
}

func frameLen(h []byte) int {
	return int(uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2]))
}

func checkHeader(h []byte) error {
	length := frameLen(h)
	typ, flags, stream := h[3], h[4], binary.BigEndian.Uint32(h[5:9])&0x7fffffff
	switch {
	case typ != 0x4:
		return fmt.Errorf("%w: frame type %#x", ErrNotSettings, typ)
	case flags&0x1 != 0:
		return fmt.Errorf("%w: SETTINGS with ACK", ErrNotSettings)
	case stream != 0:
		return fmt.Errorf("%w: SETTINGS on stream %d", ErrNotSettings, stream)
	case length%6 != 0:
		return fmt.Errorf("%w: SETTINGS length %d is not a multiple of 6", ErrNotSettings, length)
	case length > maxSettingsLen:
		return fmt.Errorf("%w: SETTINGS length %d exceeds %d", ErrNotSettings, length, maxSettingsLen)
	}
	return nil
}

// Parse parses one complete SETTINGS frame (header and payload). A
// repeated identifier keeps its last value (RFC 9113 §6.5).
func Parse(frame []byte) (map[uint16]uint32, error) {
	if len(frame) < 9 {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotSettings, len(frame))
	}
	if err := checkHeader(frame); err != nil {
		return nil, err
	}
	payload := frame[9:]
	if n := frameLen(frame); n != len(payload) {
		return nil, fmt.Errorf("%w: length %d but %d bytes of payload", ErrNotSettings, n, len(payload))
	}
	s := make(map[uint16]uint32, len(payload)/6)
	for ; len(payload) >= 6; payload = payload[6:] {
		s[binary.BigEndian.Uint16(payload)] = binary.BigEndian.Uint32(payload[2:])
	}
	return s, nil
}
