package wt2

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// A Dialect is the version of draft-ietf-webtrans-http2 a session speaks on
// the wire, as WebTransport clients over HTTP/3 carry several drafts. The
// zero value is Draft15, the default and the one a client prefers;
// Negotiate picks a session's dialect from what the server's SETTINGS
// reveal, and Config.Dialect hands it to NewSession. Everything that
// differs between dialects is in one table (wires), read by the session
// where the wire is written or parsed.
type Dialect uint8

const (
	// Draft15 is draft-ietf-webtrans-http2-15 (see DRAFT.md).
	Draft15 Dialect = iota

	// Draft13 is the wire of @fails-components/webtransport 1.6.8 (npm),
	// the one independent implementation of WebTransport over HTTP/2 we
	// know of. Its SETTINGS, names and FIN coding are those of
	// draft-ietf-webtrans-http2-13:
	//
	//   - extended CONNECT alone announces support (-13 §3.1): there is no
	//     SETTINGS_WT_ENABLED (-15 §3.1, 0x2b60; before -13 that ID was
	//     SETTINGS_WEBTRANSPORT_MAX_SESSIONS, -08 §9.1, -11 §3.1);
	//   - SETTINGS_WT_INITIAL_MAX_DATA, _MAX_STREAM_DATA_UNI,
	//     _MAX_STREAM_DATA_BIDI, _MAX_STREAMS_UNI and _MAX_STREAMS_BIDI are
	//     0x2b61–0x2b65, one _BIDI limit for every bidirectional stream
	//     (-13 §4.3.1, §11.1; -14 §4.3.1 splits it into _BIDI_LOCAL 0x2b63
	//     and _BIDI_REMOTE 0x2b66);
	//   - a stream's data is 0x190B4D3B capsules, then a terminal
	//     0x190B4D3C that carries FIN (-13 §6.4; -15 §6.4 swapped them);
	//   - WT-Available-Protocols and WT-Protocol negotiate the application
	//     protocol (-13 §3.3).
	//
	// Where the package departs from -13 the dialect follows the package,
	// as it is the peer we talk to (lib/http2/parserbase.js,
	// streamidmanager.js and node/capsuleparser.js of 1.6.8):
	//
	//   - its WT_RESET_STREAM has no Reliable Size field, as in -08 §5.2
	//     (-09 §6.2 added it): we send it without, and accept it with or
	//     without;
	//   - client-initiated stream IDs are odd and server-initiated ones
	//     even, the reverse of -13 §5.2 and RFC 9000 §2.1;
	//   - WT_STREAMS_BLOCKED 0x190B4D43 is about unidirectional streams and
	//     0x190B4D44 about bidirectional ones, the reverse of -13 §6.10;
	//   - WT-Protocol is the bare name, not a Structured Field String;
	//   - it sends WT_MAX_STREAM_DATA for its own unidirectional streams,
	//     which only it sends on. -13 §6.6 does not make that an error
	//     (-15 follows RFC 9000 §19.10, which does); it is ignored;
	//   - its capsule parser drops the FIN of a FIN-carrying WT_STREAM that
	//     arrives split over socket reads (more than 64 bytes long), so the
	//     FIN we send travels in an empty WT_STREAM capsule of its own, which
	//     -13 §6.4 allows ("open or close a stream").
	Draft13
)

// wire is what one dialect puts on the wire differently.
type wire struct {
	name string
	// rename maps a capsule type as the package names it (draft-15's
	// codes, capsule.go) to the dialect's code, and back: every entry's
	// value is also a key mapping to the entry's key.
	rename map[http3.CapsuleType]http3.CapsuleType
	// clientBit is the initiator bit (0x1) of client-initiated stream IDs.
	clientBit uint64
	// resetSize: the WT_RESET_STREAM we send carries Reliable Size, and a
	// received one must. Otherwise we send it without and accept either.
	resetSize bool
	// finAlone: FIN goes in an empty WT_STREAM capsule of its own.
	finAlone bool
	// creditOnRecvOnly: WT_MAX_STREAM_DATA for a stream we only receive on
	// is ignored rather than a WT_STREAM_STATE_ERROR.
	creditOnRecvOnly bool
	// bareProtocol: WT-Protocol is the protocol name as is.
	bareProtocol bool
	// splitBidi: the bidirectional stream data limits are
	// SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL (0x2b63) and _REMOTE
	// (0x2b66); otherwise 0x2b63 is the limit for every bidirectional
	// stream, and SETTINGS_WT_ENABLED is not sent.
	splitBidi bool
}

var wires = [...]wire{
	Draft15: {
		name:      "draft-ietf-webtrans-http2-15",
		resetSize: true,
		splitBidi: true,
	},
	Draft13: {
		name: "draft-ietf-webtrans-http2-13",
		rename: map[http3.CapsuleType]http3.CapsuleType{
			capsuleStreamFin:          capsuleStream, // FIN is 0x190B4D3C (-13 §6.4)
			capsuleStream:             capsuleStreamFin,
			capsuleStreamsBlockedBidi: capsuleStreamsBlockedUni, // fails-components' codes
			capsuleStreamsBlockedUni:  capsuleStreamsBlockedBidi,
		},
		clientBit:        initiatorBit,
		finAlone:         true,
		creditOnRecvOnly: true,
		bareProtocol:     true,
	},
}

func (d Dialect) wire() *wire {
	if int(d) >= len(wires) {
		return &wires[Draft15]
	}
	return &wires[d]
}

// String returns the name of the draft, like "draft-ietf-webtrans-http2-15".
func (d Dialect) String() string {
	if int(d) >= len(wires) {
		return fmt.Sprintf("wt2.Dialect(%d)", uint8(d))
	}
	return wires[d].name
}

// capsuleType converts between the package's name for a capsule type and
// the dialect's code, either way.
func (w *wire) capsuleType(ct http3.CapsuleType) http3.CapsuleType {
	if x, ok := w.rename[ct]; ok {
		return x
	}
	return ct
}

// Negotiate picks the dialect of a session from the server's SETTINGS,
// draft-15 first:
//
//   - SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 and SETTINGS_WT_ENABLED = 1:
//     Draft15 (-15 §3.1);
//   - SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, no SETTINGS_WT_ENABLED, at
//     least one of -13's SETTINGS_WT_INITIAL_* (0x2b61–0x2b65) and not
//     -14's _BIDI_REMOTE (0x2b66): Draft13. -13 §3.1 lets extended CONNECT
//     alone announce WebTransport; asking for one of its limits too keeps
//     WebTransport requests away from servers that offer extended CONNECT
//     for WebSocket only (RFC 8441).
//
// Otherwise the error wraps ErrNotSupported and names what is missing. A
// SETTINGS_WT_ENABLED above 1 is reported too: -15 makes it a connection
// PROTOCOL_ERROR.
func Negotiate(peer map[http2.SettingID]uint32) (Dialect, error) {
	var problems []string
	if peer[SettingEnableConnectProtocol] != 1 {
		problems = append(problems, "no SETTINGS_ENABLE_CONNECT_PROTOCOL")
	}
	enabled, announced := peer[SettingWTEnabled]
	switch {
	case announced && enabled > 1:
		problems = append(problems, fmt.Sprintf("SETTINGS_WT_ENABLED = %d (must be 1; a PROTOCOL_ERROR)", enabled))
	case announced && enabled == 0:
		problems = append(problems, "SETTINGS_WT_ENABLED = 0")
	case announced:
		if len(problems) == 0 {
			return Draft15, nil
		}
	case hasAny(peer, SettingWTInitialMaxStreamDataBidiRemote):
		problems = append(problems, "no SETTINGS_WT_ENABLED with draft-14's SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE (draft-14 is not supported)")
	case hasAny(peer, SettingWTInitialMaxData, SettingWTInitialMaxStreamDataUni, SettingWTInitialMaxStreamDataBidiLocal,
		SettingWTInitialMaxStreamsUni, SettingWTInitialMaxStreamsBidi):
		if len(problems) == 0 {
			return Draft13, nil
		}
	default:
		problems = append(problems, "no SETTINGS_WT_ENABLED (draft-15) nor SETTINGS_WT_INITIAL_* (draft-13)")
	}
	return Draft15, fmt.Errorf("%w: %s", ErrNotSupported, strings.Join(problems, ", "))
}

func hasAny(peer map[http2.SettingID]uint32, ids ...http2.SettingID) bool {
	for _, id := range ids {
		if _, ok := peer[id]; ok {
			return true
		}
	}
	return false
}

// FormatProtocol returns the WT-Protocol field value by which a server of
// this dialect says it chose the application protocol p: a Structured Field
// String (draft-15 §3.3 and draft-ietf-webtrans-http3 §3.3), or p itself.
func (d Dialect) FormatProtocol(p string) (string, error) {
	if d.wire().bareProtocol {
		return p, nil
	}
	return httpsfv.Marshal(httpsfv.NewItem(p))
}

// ParseProtocol returns the application protocol a server chose, from the
// lines of its WT-Protocol field: a Structured Field String, or in a dialect
// whose servers send the name as is, a single line's value.
func (d Dialect) ParseProtocol(lines []string) (string, error) {
	item, err := httpsfv.UnmarshalItem(lines)
	if err == nil {
		if p, ok := item.Value.(string); ok {
			return p, nil
		}
	}
	if d.wire().bareProtocol && len(lines) == 1 {
		if p := strings.TrimSpace(lines[0]); p != "" {
			return p, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("invalid WT-Protocol header: %w", err)
	}
	return "", errors.New("invalid WT-Protocol header: value is not a string")
}
