package h2conn

import (
	"errors"
	"fmt"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is the header block being read: a HEADERS frame and the
// CONTINUATION frames that follow it (RFC 9113 section 4.3), decoded as
// they arrive so that no block is ever held whole. The Framer keeps
// other frames from coming between them.
type headerBlock struct {
	hf         *http2.HeadersFrame // its flags and priority stay readable
	fields     []hpack.HeaderField
	size       uint64 // RFC 9113 section 6.5.2 size of the fields so far
	limit      uint64 // the size beyond which the list is truncated
	wire       uint64 // bytes of its frames so far, frame headers included
	truncated  bool
	invalid    error // a field that makes the message malformed
	sawRegular bool
}

// startBlockLocked starts reading the header block that f opens. A
// response's limit is what the 1xx responses before it left of
// MAX_HEADER_LIST_SIZE.
func (c *Conn) startBlockLocked(f *http2.HeadersFrame) error {
	limit := uint64(c.ours.maxHeaderList)
	if s := c.streams[f.StreamID]; s != nil && s.local && !s.gotHeader {
		limit -= min(limit, s.infoSize)
	}
	c.blk = headerBlock{hf: f, limit: limit}
	c.hdec.SetEmitEnabled(true)
	return c.blockFragmentLocked(f.Header().Length, f.HeaderBlockFragment(), f.HeadersEnded())
}

// continueBlockLocked goes on with the header block f continues.
func (c *Conn) continueBlockLocked(f *http2.ContinuationFrame) error {
	if c.blk.hf == nil || c.blk.hf.StreamID != f.StreamID {
		return connError(http2.ErrCodeProtocol, "unexpected CONTINUATION for stream %d", f.StreamID)
	}
	return c.blockFragmentLocked(f.Header().Length, f.HeaderBlockFragment(), f.HeadersEnded())
}

// blockFragmentLocked decodes one fragment of the header block, frames of
// length bytes, and hands the block on once end says it is complete.
//
// A block may take up to twice MAX_HEADER_LIST_SIZE on the wire. A list
// within the limit never needs more: each field counts 32 bytes more in
// the section 6.5.2 size than an encoder spends on its lengths and
// indexes. Beyond that the block is a CONTINUATION flood, or a list we
// would only have truncated: rather than decode without end, it is a
// connection error, as with x/net's Framer. (Every block must be decoded
// for the HPACK state, RFC 9113 section 10.5.1, unless the connection
// closes.)
func (c *Conn) blockFragmentLocked(length uint32, frag []byte, end bool) error {
	b := &c.blk
	b.wire += 9 + uint64(length)
	if most := 2 * uint64(c.ours.maxHeaderList); b.wire > most {
		c.blk = headerBlock{}
		cause := fmt.Errorf("%w: a header block of more than %d bytes, twice our MAX_HEADER_LIST_SIZE", ErrPeerHeaderListTooLarge, most)
		return connErrorIs(http2.ErrCodeProtocol, cause, "header block larger than %d bytes, twice our MAX_HEADER_LIST_SIZE", most)
	}
	if _, err := c.hdec.Write(frag); err != nil {
		return c.hpackErrorLocked(err)
	}
	if !end {
		return nil
	}
	if err := c.hdec.Close(); err != nil {
		return c.hpackErrorLocked(err)
	}
	mh := &http2.MetaHeadersFrame{HeadersFrame: b.hf, Fields: b.fields, Truncated: b.truncated}
	invalid := b.invalid
	if invalid == nil && !b.truncated {
		invalid = checkPseudos(mh.PseudoFields())
	}
	c.blk = headerBlock{}
	if invalid != nil {
		// A malformed message: a stream error (RFC 9113 section 8.1.1).
		return c.readErrorLocked(http2.StreamError{StreamID: mh.StreamID, Code: http2.ErrCodeProtocol, Cause: invalid})
	}
	return c.onHeadersLocked(mh)
}

// hpackErrorLocked is the connection error for a block HPACK could not
// decode: a COMPRESSION_ERROR (RFC 9113 section 4.3). A string longer
// than the whole header list may be is one too: the decoder stops there,
// and its table would no longer match the peer's.
func (c *Conn) hpackErrorLocked(err error) error {
	c.blk = headerBlock{}
	cause := fmt.Errorf("%w: %w", ErrHPACK, err)
	if errors.Is(err, hpack.ErrStringLength) {
		cause = fmt.Errorf("%w: %w: a field longer than our MAX_HEADER_LIST_SIZE of %d bytes", ErrHPACK, ErrPeerHeaderListTooLarge, c.ours.maxHeaderList)
	}
	return connErrorIs(http2.ErrCodeCompression, cause, "HPACK decoding: %v", err)
}

// onFieldLocked takes one decoded field of the block being read: it checks
// it as x/net's Framer does and keeps it while the list is within its
// limit (RFC 9113 section 6.5.2 size).
func (c *Conn) onFieldLocked(f hpack.HeaderField) {
	b := &c.blk
	if b.invalid == nil {
		switch {
		case !httpguts.ValidHeaderFieldValue(f.Value):
			// Not the value itself: it may be sensitive.
			b.invalid = fmt.Errorf("invalid value for header field %q", f.Name)
		case f.IsPseudo() && b.sawRegular:
			b.invalid = fmt.Errorf("pseudo-header field %q after a regular one", f.Name)
		case !f.IsPseudo() && !validFieldName(f.Name):
			b.invalid = fmt.Errorf("invalid header field name %q", f.Name)
		}
	}
	if !f.IsPseudo() {
		b.sawRegular = true
	}
	b.size += uint64(f.Size())
	if b.size > b.limit {
		b.truncated = true
		b.fields = nil
		c.hdec.SetEmitEnabled(false)
		return
	}
	b.fields = append(b.fields, f)
}

// validFieldName reports a field name HTTP/2 allows: a token, in lower
// case (RFC 9113 section 8.2.1).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos rejects unknown and duplicate pseudo-header fields and a
// mix of request and response ones (RFC 9113 section 8.3).
func checkPseudos(pseudo []hpack.HeaderField) error {
	var request, response bool
	for i, f := range pseudo {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("unknown pseudo-header field %q", f.Name)
		}
		for _, g := range pseudo[:i] {
			if g.Name == f.Name {
				return fmt.Errorf("duplicate pseudo-header field %q", f.Name)
			}
		}
	}
	if request && response {
		return errors.New("request and response pseudo-header fields mixed")
	}
	return nil
}
