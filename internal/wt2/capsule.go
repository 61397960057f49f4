package wt2

import (
	"bytes"
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
	copyBelow         = 16 << 10            // received WT_STREAM data below this is copied into chunks
	recvChunk         = 4 << 10             // size of those chunks
	writeBatch        = 64 << 10            // at most this much of capsules goes in one rw.Write
	maxFrameSize      = writeBatch          // the SETTINGS_MAX_FRAME_SIZE we announce: one batch per DATA frame
	minChunk          = 1 << 10             // a batch with less room than this for stream data is full
	maxCapsuleHeader  = 3 * 8               // a WT_STREAM's type, length and stream ID varints, at most
	maxStreamsValue   = 1 << 60             // bound of WT_MAX_STREAMS (draft §6.7)
	maxErrorCode      = 1<<32 - 1
)

// appendCapsule appends one whole capsule to out using quic-go's RFC 9297
// framing.
func appendCapsule(out *bytes.Buffer, ct http3.CapsuleType, value []byte) {
	_ = http3.WriteCapsule(out, ct, value) // a bytes.Buffer does not fail
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
