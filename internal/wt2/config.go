package wt2

import "time"

// Defaults for the zero fields of a Config.
const (
	DefaultMaxData               = 16 << 20 // session receive window, bytes
	DefaultMaxStreamData         = 1 << 20  // per-stream receive window, bytes
	DefaultMaxIncomingStreams    = 100      // peer-initiated bidirectional streams at once
	DefaultMaxIncomingUniStreams = 100      // peer-initiated unidirectional streams at once
	DefaultMaxDatagramSize       = 64 << 10 // datagram payload, bytes, both directions
	DefaultDatagramQueue         = 128      // received datagrams waiting for ReceiveDatagram
	DefaultCloseTimeout          = time.Second
)

// Config holds a session's receive limits and its dialect. The limits are
// advertised to the peer in our SETTINGS (ClientSettings, ServerSettings)
// and enforced: a peer exceeding them ends the session. A zero field means
// its default.
type Config struct {
	// Dialect is the draft the session speaks on the wire; the zero value
	// is Draft15. A client sets the one Negotiate chose from the server's
	// SETTINGS, a server the one its SETTINGS announce (ServerSettings).
	Dialect Dialect
	// MaxData bounds the stream data the peer may have in flight to us across
	// all streams (WT_MAX_DATA); received but unread data never exceeds it.
	MaxData uint32
	// MaxStreamData bounds the unread data of one stream (WT_MAX_STREAM_DATA).
	// Whatever it is, a received WT_STREAM capsule may carry at most 1 MiB.
	MaxStreamData uint32
	// MaxIncomingStreams and MaxIncomingUniStreams bound the streams the peer
	// may have open at once (WT_MAX_STREAMS); credit for one more is granted
	// when one of its streams is finished in both directions.
	MaxIncomingStreams    uint32
	MaxIncomingUniStreams uint32
	// MaxDatagramSize bounds datagram payloads: larger ones are refused by
	// SendDatagram and dropped on receipt.
	MaxDatagramSize int
	// DatagramQueue is how many received datagrams are kept for
	// ReceiveDatagram; further ones are dropped until the application reads.
	DatagramQueue int
	// CloseTimeout bounds how long a closing session waits to write its last
	// capsule and for the peer to end the CONNECT stream before closing rw.
	CloseTimeout time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxData == 0 {
		c.MaxData = DefaultMaxData
	}
	if c.MaxStreamData == 0 {
		c.MaxStreamData = DefaultMaxStreamData
	}
	if c.MaxIncomingStreams == 0 {
		c.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	if c.MaxIncomingUniStreams == 0 {
		c.MaxIncomingUniStreams = DefaultMaxIncomingUniStreams
	}
	if c.MaxDatagramSize <= 0 {
		c.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if c.DatagramQueue <= 0 {
		c.DatagramQueue = DefaultDatagramQueue
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	return c
}
