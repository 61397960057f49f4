package h2conn

import (
	"fmt"
	"time"

	"golang.org/x/net/http2"
)

// Defaults for the zero fields of Config.
const (
	// DefaultMaxConcurrentStreams is how many streams the peer may have
	// open at once; more are refused with REFUSED_STREAM.
	DefaultMaxConcurrentStreams = 250
	// DefaultStreamWindow is the receive window of each stream: at most this
	// many bytes are buffered for a stream the application does not read.
	DefaultStreamWindow = 1 << 20
	// DefaultConnWindow is the receive window of the connection: at most
	// this many bytes are buffered for all streams together.
	DefaultConnWindow = 4 << 20
	// DefaultMaxHeaderListSize is the largest header list (RFC 9113 section
	// 6.5.2 size) we accept; net/http's server accepts the same.
	DefaultMaxHeaderListSize = 1 << 20
	// DefaultMaxFrameSize is the largest frame we accept: the protocol
	// default, so we never need to advertise it.
	DefaultMaxFrameSize = 16384
	// DefaultWriteTimeout is how long a write to the socket may go without
	// progress before the connection is closed: x/net's WriteByteTimeout,
	// which net/http leaves unset. Ten seconds lets a congested path drain
	// a 64 KiB frame at 6.5 KB/s yet ends a peer that stopped reading
	// long before any caller would notice by itself.
	DefaultWriteTimeout = 10 * time.Second
)

// The protocol's initial values (RFC 9113 section 6.5.2).
const (
	initialWindow     = 65535
	initialTableSize  = 4096
	initialMaxFrame   = 16384
	maxWindow         = 1<<31 - 1
	initialMaxStreams = 100 // assumed for the peer until its SETTINGS arrive, as x/net does
)

// Config tunes a Conn. The zero value is ready to use.
type Config struct {
	// Settings are extra SETTINGS sent in our first SETTINGS frame, such
	// as SETTINGS_ENABLE_CONNECT_PROTOCOL=1 on a server or the WebTransport
	// settings. A setting here overrides the value the fields below would
	// send for the same ID, and the connection then behaves by it.
	Settings []http2.Setting

	// MaxConcurrentStreams is how many streams the peer may open at once
	// (SETTINGS_MAX_CONCURRENT_STREAMS). Zero means
	// DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// StreamWindow is our initial stream receive window
	// (SETTINGS_INITIAL_WINDOW_SIZE): the most bytes buffered per stream.
	// Zero means DefaultStreamWindow.
	StreamWindow uint32
	// ConnWindow is our connection receive window: the most bytes buffered
	// for the whole connection. Zero means DefaultConnWindow. Below the
	// protocol's 65535 the window shrinks to it as the first data is read.
	ConnWindow uint32
	// MaxHeaderListSize is the largest header list we accept
	// (SETTINGS_MAX_HEADER_LIST_SIZE). Zero means DefaultMaxHeaderListSize.
	MaxHeaderListSize uint32
	// MaxFrameSize is the largest frame we accept (SETTINGS_MAX_FRAME_SIZE,
	// 16384 to 16777215). Zero means DefaultMaxFrameSize.
	MaxFrameSize uint32
	// WriteTimeout bounds every write to the socket: one that makes no
	// progress for this long ends the connection with ErrWriteTimeout, as
	// does one that outlasts the write deadline of the stream it writes
	// for. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// local holds the settings we advertise, after defaults and overrides.
type local struct {
	list          []http2.Setting // our first SETTINGS frame
	maxStreams    uint32
	streamWindow  uint32
	connWindow    uint32
	maxHeaderList uint32
	maxFrame      uint32
	tableSize     uint32
	extConnect    bool
	writeTimeout  time.Duration
}

// resolve applies defaults and overrides and checks every value.
func (cfg Config) resolve(client bool) (local, error) {
	def := func(v, d uint32) uint32 {
		if v == 0 {
			return d
		}
		return v
	}
	l := local{
		maxStreams:    def(cfg.MaxConcurrentStreams, DefaultMaxConcurrentStreams),
		streamWindow:  def(cfg.StreamWindow, DefaultStreamWindow),
		connWindow:    def(cfg.ConnWindow, DefaultConnWindow),
		maxHeaderList: def(cfg.MaxHeaderListSize, DefaultMaxHeaderListSize),
		maxFrame:      def(cfg.MaxFrameSize, DefaultMaxFrameSize),
		tableSize:     initialTableSize,
		writeTimeout:  cfg.WriteTimeout,
	}
	if l.writeTimeout <= 0 {
		l.writeTimeout = DefaultWriteTimeout
	}
	if l.connWindow > maxWindow {
		return local{}, fmt.Errorf("h2conn: ConnWindow %d above %d", l.connWindow, maxWindow)
	}
	if client {
		l.list = append(l.list, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	}
	l.list = append(l.list,
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: l.maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: l.streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: l.maxHeaderList},
	)
	if l.maxFrame != initialMaxFrame {
		l.list = append(l.list, http2.Setting{ID: http2.SettingMaxFrameSize, Val: l.maxFrame})
	}
	for _, s := range cfg.Settings {
		if err := s.Valid(); err != nil {
			return local{}, fmt.Errorf("h2conn: setting %v: %w", s, err)
		}
		replaced := false
		for i := range l.list {
			if l.list[i].ID == s.ID {
				l.list[i].Val = s.Val
				replaced = true
			}
		}
		if !replaced {
			l.list = append(l.list, s)
		}
	}
	for _, s := range l.list {
		if err := s.Valid(); err != nil {
			return local{}, fmt.Errorf("h2conn: setting %v: %w", s, err)
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			l.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			l.streamWindow = s.Val
		case http2.SettingMaxHeaderListSize:
			l.maxHeaderList = s.Val
		case http2.SettingMaxFrameSize:
			l.maxFrame = s.Val
		case http2.SettingHeaderTableSize:
			l.tableSize = s.Val
		case http2.SettingEnableConnectProtocol:
			l.extConnect = s.Val == 1
		}
	}
	return l, nil
}
