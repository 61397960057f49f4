package loopback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fakeHandshakeTimeout bounds the TLS handshake of an H2FakeServer
// connection.
const fakeHandshakeTimeout = 10 * time.Second

// fakeMaxConcurrentStreams is the one setting H2FakeServer sends.
const fakeMaxConcurrentStreams = 100

// H2FakeServer serves TLS on one listener with ALPN "h2" and "http/1.1".
// A client that negotiates h2 meets a minimal HTTP/2 server whose SETTINGS
// lack SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) and which answers every
// request with 501; a client that negotiates http/1.1 (or nothing) is served
// by a real net/http server, so a WebSocket upgrade works on the same port.
// This is the server a dialer must fall back from: net/http cannot leave 0x8
// out once the process runs with GODEBUG=http2xconnect=1.
//
// It counts connections per negotiated protocol: Accepted, Open and WaitOpen
// take "h2" or "http/1.1", or "" for every TCP connection accepted, whatever
// became of its handshake.
type H2FakeServer struct {
	// Listener is the listener it serves, as passed in.
	Listener net.Listener

	tlsConf *tls.Config
	h1      *HTTPServer   // nil without an HTTP/1.1 handler
	h1l     *connListener // nil without an HTTP/1.1 handler
	// serveH2 runs a connection that negotiated h2; raw is its TCP side.
	serveH2 func(s *H2FakeServer, c *tls.Conn, raw *tallyConn) error
	ctx     context.Context // cancelled by Close; ends handshakes
	cancel  context.CancelFunc
	conns   *tally
	wg      sync.WaitGroup // accept loop and connections

	mu      sync.Mutex
	closing bool
	open    map[*tallyConn]struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartH2NoExtendedConnect serves the fake HTTP/2 server and h (over
// HTTP/1.1) on l. tlsConf needs a certificate (see CA.ServerConfig); its
// NextProtos is set to "h2" and "http/1.1".
func StartH2NoExtendedConnect(l net.Listener, tlsConf *tls.Config, h http.Handler) (*H2FakeServer, error) {
	if h == nil {
		return nil, errors.New("dialertest: StartH2NoExtendedConnect needs an HTTP/1.1 handler")
	}
	return startH2(l, tlsConf, h, "StartH2NoExtendedConnect", func(_ *H2FakeServer, c *tls.Conn, _ *tallyConn) error {
		return serveFakeH2(c)
	})
}

// startH2 serves TLS on l: h2 connections go to serveH2, http/1.1 ones to
// h through a net/http server. Without h only h2 is offered in ALPN, without
// serveH2 only http/1.1; one of them is needed.
func startH2(l net.Listener, tlsConf *tls.Config, h http.Handler, name string, serveH2 func(*H2FakeServer, *tls.Conn, *tallyConn) error) (*H2FakeServer, error) {
	if l == nil || tlsConf == nil {
		return nil, fmt.Errorf("dialertest: %s needs a listener and a TLS config", name)
	}
	if len(tlsConf.Certificates) == 0 && tlsConf.GetCertificate == nil && tlsConf.GetConfigForClient == nil {
		return nil, errors.New("dialertest: TLS config has no certificate")
	}
	if h == nil && serveH2 == nil {
		return nil, fmt.Errorf("dialertest: %s serves neither HTTP/2 nor HTTP/1.1", name)
	}
	conf := tlsConf.Clone()
	conf.NextProtos = nil
	if serveH2 != nil {
		conf.NextProtos = []string{http2.NextProtoTLS}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &H2FakeServer{
		Listener: l,
		tlsConf:  conf,
		serveH2:  serveH2,
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

func (s *H2FakeServer) acceptLoop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed by Close
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

// forget drops a closed connection from the set Close closes.
func (s *H2FakeServer) forget(tc *tallyConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, tc)
}

// serveConn runs the TLS handshake and hands the connection to the fake
// HTTP/2 server or to the HTTP/1.1 one.
func (s *H2FakeServer) serveConn(tc *tallyConn) {
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
	if proto != http2.NextProtoTLS || s.serveH2 == nil {
		if s.h1l == nil || !s.h1l.deliver(tlsConn) {
			tlsConn.Close()
		}
		return
	}
	defer tlsConn.Close()
	_ = s.serveH2(s, tlsConn, tc)
}

// serveFakeH2 speaks just enough HTTP/2 on c for a client to read the
// server's SETTINGS and get an answer to its requests: it sends SETTINGS
// with MAX_CONCURRENT_STREAMS only, acknowledges the client's SETTINGS,
// answers PINGs, and answers every request with a 501 that ends the stream.
// It returns when the client sends GOAWAY or the connection fails.
func serveFakeH2(c net.Conn) error {
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: fakeMaxConcurrentStreams}); err != nil {
		return fmt.Errorf("write SETTINGS: %w", err)
	}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return fmt.Errorf("read client preface: %w", err)
	}
	if string(preface) != http2.ClientPreface {
		_ = fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte("bad preface"))
		return errors.New("bad client preface")
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if err := fr.WriteRSTStream(se.StreamID, se.Code); err != nil {
					return err
				}
				continue
			}
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			block.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "501"})
			_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "0"})
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
			if err == nil && !f.StreamEnded() {
				err = fr.WriteRSTStream(f.StreamID, http2.ErrCodeNo) // stop the request body
			}
		case *http2.DataFrame:
			if n := f.Header().Length; n > 0 {
				err = fr.WriteWindowUpdate(0, n) // keep the connection's window open
			}
		case *http2.GoAwayFrame:
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Addr returns the address the server listens on.
func (s *H2FakeServer) Addr() net.Addr { return s.Listener.Addr() }

// URL returns the server's base URL, such as "https://127.0.0.1:8443".
func (s *H2FakeServer) URL() string { return "https://" + s.Addr().String() }

// Accepted returns how many connections negotiated proto ("h2" or
// "http/1.1"), or with "" how many TCP connections were accepted.
func (s *H2FakeServer) Accepted(proto string) int {
	n, _ := s.conns.counts(proto)
	return n
}

// Open returns how many of the connections Accepted(proto) counts are not
// closed yet.
func (s *H2FakeServer) Open(proto string) int {
	_, n := s.conns.counts(proto)
	return n
}

// WaitOpen waits until exactly n connections counted under proto are open,
// or until ctx ends.
func (s *H2FakeServer) WaitOpen(ctx context.Context, proto string, n int) error {
	return s.conns.waitOpen(ctx, proto, n)
}

// Changed returns a channel that is closed at the next change of any of
// the counts Accepted and Open report, so that a caller can wait on several
// servers at once.
func (s *H2FakeServer) Changed() <-chan struct{} { return s.conns.changes() }

// CloseConnections closes every open connection, as a server restart
// would, and goes on serving new ones. When it returns, Open no longer
// counts them.
func (s *H2FakeServer) CloseConnections() {
	s.mu.Lock()
	conns := make([]*tallyConn, 0, len(s.open))
	for tc := range s.open {
		conns = append(conns, tc)
	}
	s.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// Close closes the listener and every connection, ends the HTTP/1.1
// server's handlers (see HTTPServer.Close), and waits for every goroutine
// of the server. It is safe to call more than once.
func (s *H2FakeServer) Close() error {
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
		s.CloseConnections() // the fake HTTP/2 ones, and any the HTTP/1.1 server missed
		s.wg.Wait()
		if err != nil {
			s.closeErr = fmt.Errorf("dialertest: close HTTP/2 fake server: %w", err)
		}
	})
	return s.closeErr
}

// connListener is a net.Listener fed with connections accepted elsewhere.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// deliver hands c to Accept; it reports false once the listener is closed.
func (l *connListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
