package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// H3Fault is a way an HTTP/3 server's SETTINGS go wrong.
type H3Fault int

const (
	// H3CloseAfterSettings: the server sends SETTINGS that enable extended
	// CONNECT, HTTP/3 datagrams and WebTransport, and closes the QUIC
	// connection (H3_NO_ERROR) without answering anything: as soon as the
	// client's first request stream arrives, or a second after its control
	// stream did. (Closing at once could discard the SETTINGS before they
	// are sent: quic-go drops unsent stream data on close.)
	H3CloseAfterSettings H3Fault = iota + 1
	// H3SettingsMalformed: the server's SETTINGS frame ends in the middle
	// of a setting (a truncated variable-length integer), an
	// H3_FRAME_ERROR (RFC 9114 §7.1).
	H3SettingsMalformed
	// H3SettingsDuplicate: the server's SETTINGS frame holds the same
	// identifier twice, an H3_SETTINGS_ERROR (RFC 9114 §7.2.4).
	H3SettingsDuplicate
)

func (f H3Fault) String() string {
	switch f {
	case H3CloseAfterSettings:
		return "close-after-settings"
	case H3SettingsMalformed:
		return "settings-malformed"
	case H3SettingsDuplicate:
		return "settings-duplicate"
	}
	return fmt.Sprintf("H3Fault(%d)", int(f))
}

// HTTP/3 settings H3FaultSettings sends (RFC 9297 §5.1; the WebTransport
// value as webtransport-go v0.13.0 reads it).
const (
	h3SettingDatagram   = 0x33
	h3SettingWTEnabled  = 0x2c7cf000
	h3FaultWaitForCtrl  = 5 * time.Second
	h3FaultGrace        = time.Second
	h3FaultAppErrorCode = quic.ApplicationErrorCode(http3.ErrCodeNoError)
)

// StartH3Fault serves on pc a minimal HTTP/3 server whose SETTINGS go wrong
// as fault says; requests are answered with 501. Like
// StartH3NoExtendedConnect it is built on QUIC directly and its H3Server
// has no Server; QUIC datagrams and partial stream resets are on, as
// WebTransport needs, so that only the SETTINGS are at fault. tlsConf needs
// a certificate (see CA.ServerConfig); its NextProtos is set to "h3".
func StartH3Fault(pc net.PacketConn, tlsConf *tls.Config, fault H3Fault) (*H3Server, error) {
	if pc == nil || tlsConf == nil {
		return nil, errors.New("dialertest: StartH3Fault needs a packet conn and a TLS config")
	}
	if fault < H3CloseAfterSettings || fault > H3SettingsDuplicate {
		return nil, fmt.Errorf("dialertest: unknown %v", fault)
	}
	conf := tlsConf.Clone()
	conf.NextProtos = []string{http3.NextProtoH3}
	ln, err := quic.Listen(pc, conf, quicServerConfig())
	if err != nil {
		return nil, fmt.Errorf("dialertest: listen QUIC on %s: %w", pc.LocalAddr(), err)
	}
	s := newH3Server(pc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			if s.track(c) {
				wg.Go(func() { serveH3Fault(ctx, c, fault) })
			}
		}
	})
	s.stop = func() error {
		cancel()
		s.closeConns()
		err := ln.Close()
		wg.Wait()
		if err != nil {
			return fmt.Errorf("dialertest: close QUIC listener: %w", err)
		}
		return nil
	}
	return s, nil
}

// H3FaultSettings returns the start of the control stream a server with
// fault sends: the stream type and one SETTINGS frame, valid or not.
func H3FaultSettings(fault H3Fault) []byte {
	var payload []byte
	setting := func(id, val uint64) {
		payload = quicvarint.Append(payload, id)
		payload = quicvarint.Append(payload, val)
	}
	setting(h3SettingQPACKMaxTable, 0)
	setting(h3SettingEnableConnectProtocol, 1)
	setting(h3SettingDatagram, 1)
	setting(h3SettingWTEnabled, 1)
	switch fault {
	case H3SettingsMalformed:
		// 0x40 starts a two-byte varint the frame then lacks.
		payload = append(payload, 0x40)
	case H3SettingsDuplicate:
		setting(h3SettingEnableConnectProtocol, 1)
	}
	b := quicvarint.Append(nil, h3StreamControl)
	b = quicvarint.Append(b, h3FrameSettings)
	b = quicvarint.Append(b, uint64(len(payload)))
	return append(b, payload...)
}

func serveH3Fault(ctx context.Context, c *quic.Conn, fault H3Fault) {
	ctrl, err := c.OpenUniStream()
	if err == nil {
		_, err = ctrl.Write(H3FaultSettings(fault))
	}
	if err != nil {
		_ = c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeInternalError), "control stream")
		return
	}
	if fault == H3CloseAfterSettings {
		// The client's control stream comes once it has the handshake
		// done; its first request once it could read the SETTINGS.
		wctx, cancel := context.WithTimeout(ctx, h3FaultWaitForCtrl)
		str, err := c.AcceptUniStream(wctx)
		cancel()
		if err == nil {
			str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
			wctx, cancel := context.WithTimeout(ctx, h3FaultGrace)
			_, _ = c.AcceptStream(wctx)
			cancel()
		}
		_ = c.CloseWithError(h3FaultAppErrorCode, "")
		return
	}
	rejectStreams(c)
}
