package wt2

import (
	"errors"

	"golang.org/x/net/http2"
)

// HTTP/2 SETTINGS of draft-ietf-webtrans-http2-15 §11.2 (draft-13 §11.1 has
// 0x2b61–0x2b65, with 0x2b63 its one _BIDI limit). Every one defaults to 0
// when a peer does not send it.
const (
	// SettingEnableConnectProtocol is RFC 8441's extended CONNECT switch; a
	// WebTransport server must send it as 1.
	SettingEnableConnectProtocol = http2.SettingEnableConnectProtocol
	// SettingWTEnabled, sent as 1 by a server, says it accepts WebTransport.
	SettingWTEnabled http2.SettingID = 0x2b60
	// SettingWTInitialMaxData is the initial session-level data limit.
	SettingWTInitialMaxData http2.SettingID = 0x2b61
	// SettingWTInitialMaxStreamDataUni is the initial data limit of each
	// unidirectional stream the sender of the setting receives.
	SettingWTInitialMaxStreamDataUni http2.SettingID = 0x2b62
	// SettingWTInitialMaxStreamDataBidiLocal is the initial data limit the
	// sender of the setting grants on bidirectional streams it opens.
	SettingWTInitialMaxStreamDataBidiLocal http2.SettingID = 0x2b63
	// SettingWTInitialMaxStreamsUni is the initial unidirectional stream limit.
	SettingWTInitialMaxStreamsUni http2.SettingID = 0x2b64
	// SettingWTInitialMaxStreamsBidi is the initial bidirectional stream limit.
	SettingWTInitialMaxStreamsBidi http2.SettingID = 0x2b65
	// SettingWTInitialMaxStreamDataBidiRemote is the initial data limit the
	// sender of the setting grants on bidirectional streams its peer opens.
	SettingWTInitialMaxStreamDataBidiRemote http2.SettingID = 0x2b66
)

// ErrNotSupported reports that a server's SETTINGS do not allow a
// WebTransport session.
var ErrNotSupported = errors.New("wt2: server does not support WebTransport over HTTP/2")

// ClientSettings returns the SETTINGS a client sends for WebTransport: the
// initial flow-control limits of c (nil, or zero fields, meaning the
// defaults), in every dialect's IDs at once, as they go out before the
// server's SETTINGS tell the dialect: draft-13's
// SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI is -15's _BIDI_LOCAL (0x2b63),
// and the one per-stream window we announce serves for both. Pass the same
// Config to NewSession. c is not modified.
func ClientSettings(c *Config) []http2.Setting {
	return limitSettings(c, true)
}

// ServerSettings returns the SETTINGS a WebTransport server of c's dialect
// sends: extended CONNECT on, SETTINGS_WT_ENABLED on in draft-15, and the
// initial flow-control limits of c (nil meaning the defaults) in the
// dialect's IDs. Pass the same Config to NewSession.
func ServerSettings(c *Config) []http2.Setting {
	var d Dialect
	if c != nil {
		d = c.Dialect
	}
	s := []http2.Setting{{ID: SettingEnableConnectProtocol, Val: 1}}
	if d.wire().splitBidi {
		s = append(s, http2.Setting{ID: SettingWTEnabled, Val: 1})
	}
	return append(s, limitSettings(c, d.wire().splitBidi)...)
}

// limitSettings advertises c's receive windows: the same per-stream window
// for every kind of stream; remote adds draft-15's _BIDI_REMOTE (0x2b66).
func limitSettings(cp *Config, remote bool) []http2.Setting {
	var c Config
	if cp != nil {
		c = *cp
	}
	c = c.withDefaults()
	s := []http2.Setting{
		// RFC 9113 §6.5.2: we read frames of up to maxFrameSize, so a
		// peer's batch of capsules (a WT_STREAM is 16 KiB of data and a
		// few bytes of header) crosses in one DATA frame instead of a
		// full one and a sliver that costs a TLS record and a syscall.
		{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
		{ID: SettingWTInitialMaxData, Val: c.MaxData},
		{ID: SettingWTInitialMaxStreamDataUni, Val: c.MaxStreamData},
		{ID: SettingWTInitialMaxStreamDataBidiLocal, Val: c.MaxStreamData},
	}
	if remote {
		s = append(s, http2.Setting{ID: SettingWTInitialMaxStreamDataBidiRemote, Val: c.MaxStreamData})
	}
	return append(s,
		http2.Setting{ID: SettingWTInitialMaxStreamsUni, Val: c.MaxIncomingUniStreams},
		http2.Setting{ID: SettingWTInitialMaxStreamsBidi, Val: c.MaxIncomingStreams},
	)
}

// CheckSettings reports whether a server's SETTINGS allow a WebTransport
// session in a dialect the package speaks: nil, or the error of Negotiate,
// which wraps ErrNotSupported and names what is missing.
func CheckSettings(peer map[http2.SettingID]uint32) error {
	_, err := Negotiate(peer)
	return err
}

// peerLimits are the initial limits a peer's SETTINGS grant us.
type peerLimits struct {
	maxData              uint64
	streamDataUni        uint64 // on unidirectional streams we open
	streamDataBidiLocal  uint64 // on bidirectional streams the peer opens
	streamDataBidiRemote uint64 // on bidirectional streams we open
	streamsUni           uint64
	streamsBidi          uint64
}

// limits reads the initial limits from a peer's SETTINGS: in draft-13 one
// SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI (0x2b63) bounds the data we send
// on every bidirectional stream (-13 §11.1), in draft-15 _BIDI_LOCAL
// (0x2b63) those the peer opened and _BIDI_REMOTE (0x2b66) ours (-15 §11.2).
func (w *wire) limits(peer map[http2.SettingID]uint32) peerLimits {
	l := peerLimits{
		maxData:              uint64(peer[SettingWTInitialMaxData]),
		streamDataUni:        uint64(peer[SettingWTInitialMaxStreamDataUni]),
		streamDataBidiLocal:  uint64(peer[SettingWTInitialMaxStreamDataBidiLocal]),
		streamDataBidiRemote: uint64(peer[SettingWTInitialMaxStreamDataBidiRemote]),
		streamsUni:           uint64(peer[SettingWTInitialMaxStreamsUni]),
		streamsBidi:          uint64(peer[SettingWTInitialMaxStreamsBidi]),
	}
	if !w.splitBidi {
		l.streamDataBidiRemote = l.streamDataBidiLocal
	}
	return l
}
