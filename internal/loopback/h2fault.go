package loopback

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// H2Fault is a way an HTTP/2 server's connection preface goes wrong.
type H2Fault int

const (
	// H2CloseAfterSettings: the server sends a valid SETTINGS frame that
	// enables extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL=1), then
	// closes the connection (TLS close_notify and TCP FIN) without
	// answering anything: a server that crashes or restarts right after
	// its preface.
	H2CloseAfterSettings H2Fault = iota + 1
	// H2SettingsBadLength: the server's first frame is a SETTINGS frame
	// whose length (7) is not a multiple of 6, a connection error of type
	// FRAME_SIZE_ERROR (RFC 9113 §6.5).
	H2SettingsBadLength
	// H2SettingsTooLarge: the server's first frame is a well-formed
	// SETTINGS frame of 16386 bytes (2731 settings, extended CONNECT among
	// them), more than the 16384 bytes a server may send before it knows
	// the client's SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2).
	H2SettingsTooLarge
)

func (f H2Fault) String() string {
	switch f {
	case H2CloseAfterSettings:
		return "close-after-settings"
	case H2SettingsBadLength:
		return "settings-bad-length"
	case H2SettingsTooLarge:
		return "settings-too-large"
	}
	return fmt.Sprintf("H2Fault(%d)", int(f))
}

// H2SettingsTooLargeLen is the length of H2SettingsTooLarge's frame.
const H2SettingsTooLargeLen = 16386

// h2FaultLinger bounds how long an H2CloseAfterSettings connection waits
// for the client to close its side after the server closed its own.
const h2FaultLinger = 5 * time.Second

// H2FaultServer serves TLS on one listener: a client that negotiates h2
// meets the fault, one that negotiates http/1.1 a real net/http server
// with the handler given (when there is none, only h2 is offered in ALPN).
// It is an H2FakeServer with another HTTP/2 side: its counts take "h2" or
// "http/1.1", or "" for every TCP connection.
type H2FaultServer = H2FakeServer

// StartH2Fault serves fault to h2 clients on l, and h (if not nil) to
// HTTP/1.1 clients. tlsConf needs a certificate (see CA.ServerConfig); its
// NextProtos is set to "h2" and, with h, "http/1.1".
func StartH2Fault(l net.Listener, tlsConf *tls.Config, fault H2Fault, h http.Handler) (*H2FaultServer, error) {
	if fault < H2CloseAfterSettings || fault > H2SettingsTooLarge {
		return nil, fmt.Errorf("dialertest: unknown %v", fault)
	}
	return startH2(l, tlsConf, h, "StartH2Fault", func(s *H2FakeServer, c *tls.Conn, raw *tallyConn) error {
		return serveFault(s.ctx, fault, c, raw)
	})
}

// serveFault sends the fault's first frame and then either closes
// (H2CloseAfterSettings) or reads and discards what the client sends
// until it closes the connection.
func serveFault(ctx context.Context, fault H2Fault, c *tls.Conn, raw *tallyConn) error {
	if _, err := c.Write(H2FaultPreface(fault)); err != nil {
		return err
	}
	if fault == H2CloseAfterSettings {
		// close_notify and FIN now; the client's bytes are read until it
		// closes too, so that the kernel never answers them with a reset.
		_ = c.CloseWrite()
		if cw, ok := raw.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		stop := context.AfterFunc(ctx, func() { raw.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
		_ = raw.SetReadDeadline(time.Now().Add(h2FaultLinger))
		_, err := io.Copy(io.Discard, raw.Conn)
		return err
	}
	stop := context.AfterFunc(ctx, func() { raw.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err := io.Copy(io.Discard, c)
	return err
}

// H2FaultPreface returns the bytes a server with fault sends first: one
// SETTINGS frame, valid or not.
func H2FaultPreface(fault H2Fault) []byte {
	var payload []byte
	setting := func(id uint16, val uint32) {
		payload = binary.BigEndian.AppendUint16(payload, id)
		payload = binary.BigEndian.AppendUint32(payload, val)
	}
	setting(uint16(http2.SettingMaxConcurrentStreams), fakeMaxConcurrentStreams)
	setting(uint16(http2.SettingEnableConnectProtocol), 1)
	switch fault {
	case H2SettingsBadLength:
		payload = append(payload[:6], 0) // 7 bytes
	case H2SettingsTooLarge:
		// Unknown identifiers, which a receiver must ignore, fill the
		// frame up.
		for id := uint16(0xf000); len(payload) < H2SettingsTooLargeLen; id++ {
			setting(id, 1)
		}
	}
	hdr := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), byte(http2.FrameSettings), 0, 0, 0, 0, 0}
	return append(hdr, payload...)
}
