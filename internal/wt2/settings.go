package wt2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http2"
)

// HTTP/2 SETTINGS of draft-ietf-webtrans-http2-15 §11.2. Every one defaults
// to 0 when a peer does not send it.
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
// defaults). Pass the same Config to NewSession. c is not modified.
func ClientSettings(c *Config) []http2.Setting {
	return limitSettings(c)
}

// ServerSettings returns the SETTINGS a WebTransport server sends: extended
// CONNECT and SETTINGS_WT_ENABLED on, plus the initial flow-control limits
// of c (nil meaning the defaults). Pass the same Config to NewSession.
func ServerSettings(c *Config) []http2.Setting {
	return append([]http2.Setting{
		{ID: SettingEnableConnectProtocol, Val: 1},
		{ID: SettingWTEnabled, Val: 1},
	}, limitSettings(c)...)
}

// limitSettings advertises c's receive windows: the same per-stream window
// for every kind of stream.
func limitSettings(cp *Config) []http2.Setting {
	var c Config
	if cp != nil {
		c = *cp
	}
	c = c.withDefaults()
	return []http2.Setting{
		{ID: SettingWTInitialMaxData, Val: c.MaxData},
		{ID: SettingWTInitialMaxStreamDataUni, Val: c.MaxStreamData},
		{ID: SettingWTInitialMaxStreamDataBidiLocal, Val: c.MaxStreamData},
		{ID: SettingWTInitialMaxStreamDataBidiRemote, Val: c.MaxStreamData},
		{ID: SettingWTInitialMaxStreamsUni, Val: c.MaxIncomingUniStreams},
		{ID: SettingWTInitialMaxStreamsBidi, Val: c.MaxIncomingStreams},
	}
}

// CheckSettings reports whether a server's SETTINGS allow a WebTransport
// session (draft §3.1): nil, or an error wrapping ErrNotSupported that names
// what is missing. A SETTINGS_WT_ENABLED above 1 is also reported; the draft
// makes it an HTTP/2 connection error of type PROTOCOL_ERROR.
func CheckSettings(peer map[http2.SettingID]uint32) error {
	var problems []string
	if peer[SettingEnableConnectProtocol] != 1 {
		problems = append(problems, "no SETTINGS_ENABLE_CONNECT_PROTOCOL")
	}
	switch v := peer[SettingWTEnabled]; {
	case v == 0:
		problems = append(problems, "no SETTINGS_WT_ENABLED")
	case v > 1:
		problems = append(problems, fmt.Sprintf("SETTINGS_WT_ENABLED = %d (must be 1; a PROTOCOL_ERROR)", v))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrNotSupported, strings.Join(problems, ", "))
	}
	return nil
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

func limitsFrom(peer map[http2.SettingID]uint32) peerLimits {
	return peerLimits{
		maxData:              uint64(peer[SettingWTInitialMaxData]),
		streamDataUni:        uint64(peer[SettingWTInitialMaxStreamDataUni]),
		streamDataBidiLocal:  uint64(peer[SettingWTInitialMaxStreamDataBidiLocal]),
		streamDataBidiRemote: uint64(peer[SettingWTInitialMaxStreamDataBidiRemote]),
		streamsUni:           uint64(peer[SettingWTInitialMaxStreamsUni]),
		streamsBidi:          uint64(peer[SettingWTInitialMaxStreamsBidi]),
	}
}
