package loopback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// HTTP/3 wire constants (RFC 9114 §6.2.1, §7.2, §7.2.4.1; RFC 9204 §5).
const (
	h3StreamControl                = 0x00
	h3FrameHeaders                 = 0x01
	h3FrameSettings                = 0x04
	h3SettingQPACKMaxTable         = 0x01
	h3SettingEnableConnectProtocol = 0x08
)

// StartH3NoExtendedConnect serves on pc a minimal HTTP/3 server that does
// not offer extended CONNECT: its SETTINGS hold only
// QPACK_MAX_TABLE_CAPACITY=0, and it answers every request with 501. quic-go's
// http3.Server always advertises extended CONNECT, so this one is built on
// QUIC directly; the H3Server it returns has no Server. Its connection count
// lets tests check that a client which found the server incapable closed
// its connection. tlsConf needs a certificate (see CA.ServerConfig); its
// NextProtos is set to "h3".
func StartH3NoExtendedConnect(pc net.PacketConn, tlsConf *tls.Config) (*H3Server, error) {
	if pc == nil || tlsConf == nil {
		return nil, errors.New("dialertest: StartH3NoExtendedConnect needs a packet conn and a TLS config")
	}
	conf := tlsConf.Clone()
	conf.NextProtos = []string{http3.NextProtoH3}
	ln, err := quic.Listen(pc, conf, quicServerConfig())
	if err != nil {
		return nil, fmt.Errorf("dialertest: listen QUIC on %s: %w", pc.LocalAddr(), err)
	}
	s := newH3Server(pc)
	var wg sync.WaitGroup // accept loop and connections
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return // closed by Close
			}
			if s.track(c) {
				wg.Go(func() { serveFakeH3(c) })
			}
		}
	})
	s.stop = func() error {
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

// serveFakeH3 sends the SETTINGS, discards what the client sends on its
// unidirectional streams and answers its requests until the connection
// ends.
func serveFakeH3(c *quic.Conn) {
	ctrl, err := c.OpenUniStream()
	if err == nil {
		_, err = ctrl.Write(fakeH3Settings())
	}
	if err != nil {
		_ = c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeInternalError), "control stream")
		return
	}
	// The control stream stays open: closing it is a connection error.
	rejectStreams(c)
}

// rejectStreams reads and drops the client's unidirectional streams and
// answers each request with a 501, until the connection ends.
func rejectStreams(c *quic.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			str, err := c.AcceptUniStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() { _, _ = io.Copy(io.Discard, str) })
		}
	})
	for {
		str, err := c.AcceptStream(context.Background())
		if err != nil {
			break // the connection ended
		}
		wg.Go(func() { reject501(str) })
	}
	wg.Wait()
}

// fakeH3Settings returns the control stream's start: the stream type and a
// SETTINGS frame without SETTINGS_ENABLE_CONNECT_PROTOCOL.
func fakeH3Settings() []byte {
	payload := quicvarint.Append(nil, h3SettingQPACKMaxTable)
	payload = quicvarint.Append(payload, 0)
	b := quicvarint.Append(nil, h3StreamControl)
	b = quicvarint.Append(b, h3FrameSettings)
	b = quicvarint.Append(b, uint64(len(payload)))
	return append(b, payload...)
}

// reject501 answers a request stream with a 501 response, without reading
// the request, and tells the client to stop sending.
func reject501(str *quic.Stream) {
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	_ = enc.WriteField(qpack.HeaderField{Name: ":status", Value: "501"})
	_ = enc.WriteField(qpack.HeaderField{Name: "content-length", Value: "0"})
	b := quicvarint.Append(nil, h3FrameHeaders)
	b = quicvarint.Append(b, uint64(block.Len()))
	b = append(b, block.Bytes()...)
	if _, err := str.Write(b); err != nil {
		str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
	} else {
		_ = str.Close()
	}
	str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
}
