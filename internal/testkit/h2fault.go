package testkit

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
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
// Its counts work as H2FakeServer's: Accepted, Open and WaitOpen take "h2"
// or "http/1.1", or "" for every TCP connection.
type H2FaultServer struct {
	// Listener is the listener it serves, as passed in.
	Listener net.Listener
	// Fault is what h2 clients meet.
	Fault H2Fault

	tlsConf *tls.Config
	h1      *HTTPServer // nil without a handler
	h1l     *connListener
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	conns   *tally
	wg      sync.WaitGroup

	mu      sync.Mutex
	closing bool
	open    map[*tallyConn]struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartH2Fault serves fault to h2 clients on l, and h (if not nil) to
// HTTP/1.1 clients. tlsConf needs a certificate (see CA.ServerConfig); its
// NextProtos is set to "h2" and, with h, "http/1.1".
func StartH2Fault(l net.Listener, tlsConf *tls.Config, fault H2Fault, h http.Handler) (*H2FaultServer, error) {
	if l == nil || tlsConf == nil {
		return nil, errors.New("testkit: StartH2Fault needs a listener and a TLS config")
	}
	if len(tlsConf.Certificates) == 0 && tlsConf.GetCertificate == nil && tlsConf.GetConfigForClient == nil {
		return nil, errors.New("testkit: TLS config has no certificate")
	}
	if fault < H2CloseAfterSettings || fault > H2SettingsTooLarge {
		return nil, fmt.Errorf("testkit: unknown %v", fault)
	}
	conf := tlsConf.Clone()
	conf.NextProtos = []string{http2.NextProtoTLS}
	ctx, cancel := context.WithCancel(context.Background())
	s := &H2FaultServer{
		Listener: l,
		Fault:    fault,
		tlsConf:  conf,
		ctx:      ctx,
		cancel:   cancel,
		conns:    newTally(),
		open:     map[*tallyConn]struct{}{},
	}
	if h != nil {
		conf.NextProtos = append(conf.NextProtos, "http/1.1")
		s.h1l = &connListener{addr: l.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
		h1, err := StartServer(s.h1l, &http.Server{Handler: h})
		if err != nil {
			cancel()
			return nil, err
		}
		s.h1 = h1
	}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

func (s *H2FaultServer) acceptLoop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		tc := newTallyConn(c, s.conns, s.forget)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			tc.Close()
			continue
		}
		s.open[tc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serveConn(tc) })
	}
}

func (s *H2FaultServer) forget(tc *tallyConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, tc)
}

func (s *H2FaultServer) serveConn(tc *tallyConn) {
	tlsConn := tls.Server(tc, s.tlsConf)
	ctx, cancel := context.WithTimeout(s.ctx, fakeHandshakeTimeout)
	err := tlsConn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		tlsConn.Close()
		return
	}
	proto := tlsConn.ConnectionState().NegotiatedProtocol
	if proto == "" {
		proto = "http/1.1"
	}
	tc.label(proto)
	if proto != http2.NextProtoTLS {
		if s.h1l == nil || !s.h1l.deliver(tlsConn) {
			tlsConn.Close()
		}
		return
	}
	defer tlsConn.Close()
	_ = s.serveFault(tlsConn, tc)
}

// serveFault sends the fault's first frame and then either closes
// (H2CloseAfterSettings) or reads and discards what the client sends
// until it closes the connection.
func (s *H2FaultServer) serveFault(c *tls.Conn, raw *tallyConn) error {
	if _, err := c.Write(H2FaultPreface(s.Fault)); err != nil {
		return err
	}
	if s.Fault == H2CloseAfterSettings {
		// close_notify and FIN now; the client's bytes are read until it
		// closes too, so that the kernel never answers them with a reset.
		_ = c.CloseWrite()
		if cw, ok := raw.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		stop := context.AfterFunc(s.ctx, func() { raw.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
		_ = raw.SetReadDeadline(time.Now().Add(h2FaultLinger))
		_, err := io.Copy(io.Discard, raw.Conn)
		return err
	}
	stop := context.AfterFunc(s.ctx, func() { raw.SetReadDeadline(time.Unix(1, 0)) })
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

// Addr returns the address the server listens on.
func (s *H2FaultServer) Addr() net.Addr { return s.Listener.Addr() }

// Accepted returns how many connections negotiated proto ("h2" or
// "http/1.1"), or with "" how many TCP connections were accepted.
func (s *H2FaultServer) Accepted(proto string) int {
	n, _ := s.conns.counts(proto)
	return n
}

// Open returns how many of the connections Accepted(proto) counts are not
// closed yet.
func (s *H2FaultServer) Open(proto string) int {
	_, n := s.conns.counts(proto)
	return n
}

// WaitOpen waits until exactly n connections counted under proto are open,
// or until ctx ends.
func (s *H2FaultServer) WaitOpen(ctx context.Context, proto string, n int) error {
	return s.conns.waitOpen(ctx, proto, n)
}

// Close closes the listener and every connection, ends the HTTP/1.1
// server, and waits for every goroutine of the server. It is safe to call
// more than once.
func (s *H2FaultServer) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		err := s.Listener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		s.cancel()
		if s.h1 != nil {
			err = errors.Join(err, s.h1.Close())
		}
		s.mu.Lock()
		conns := make([]*tallyConn, 0, len(s.open))
		for tc := range s.open {
			conns = append(conns, tc)
		}
		s.mu.Unlock()
		for _, tc := range conns {
			tc.Close()
		}
		s.wg.Wait()
		if err != nil {
			s.closeErr = fmt.Errorf("testkit: close HTTP/2 fault server: %w", err)
		}
	})
	return s.closeErr
}
