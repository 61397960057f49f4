package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3NoError is H3_NO_ERROR (RFC 9114 §8.1), the code servers here close
// QUIC connections with.
const h3NoError = quic.ApplicationErrorCode(http3.ErrCodeNoError)

// quicServerConfig is the QUIC configuration of the HTTP/3 servers here:
// datagrams and partial stream resets are on, as WebTransport needs.
func quicServerConfig() *quic.Config {
	return &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true}
}

// H3Frontend runs the serve loop of an http3.Server: the *http3.Server
// itself, or a *webtransport.Server whose H3 field is that server, which
// layers WebTransport on the same connections (it keeps the ConnContext and
// Handler StartH3Server installs).
type H3Frontend interface {
	Serve(pc net.PacketConn) error
	Close() error
}

// H3Server is an HTTP/3 server on one UDP socket: quic-go's http3.Server
// (StartH3, StartH3Server) or a fake one without extended CONNECT
// (StartH3NoExtendedConnect). It counts the QUIC connections it serves, like
// Counter does for TCP, and its Close ends every connection, handler and
// goroutine, WebSocket ones included, and waits for them.
type H3Server struct {
	// Server is the underlying server, nil for StartH3NoExtendedConnect; do
	// not change it after start.
	Server *http3.Server
	// PacketConn is the socket it serves, as passed in; Close closes it.
	PacketConn net.PacketConn

	conns *tally
	stop  func() error // ends serving, calling closeConns once nothing new is served

	mu      sync.Mutex
	closing bool
	qconns  map[*quic.Conn]chan struct{} // open QUIC connections; each channel is closed once it counts as closed

	closeOnce sync.Once
	closeErr  error
}

func newH3Server(pc net.PacketConn) *H3Server {
	return &H3Server{PacketConn: pc, conns: newTally(), qconns: map[*quic.Conn]chan struct{}{}}
}

// StartH3 serves h over HTTP/3 on pc, with H3 datagrams and partial stream
// resets enabled. tlsConf needs a certificate (see CA.ServerConfig); its
// NextProtos is set to "h3". quic-go's server always advertises extended
// CONNECT, so EchoHandler accepts WebSocket over HTTP/3 (RFC 9220).
func StartH3(pc net.PacketConn, tlsConf *tls.Config, h http.Handler) (*H3Server, error) {
	if tlsConf == nil {
		return nil, errors.New("dialertest: StartH3 needs a TLS config")
	}
	return StartH3Server(pc, &http3.Server{
		TLSConfig:       tlsConf,
		QUICConfig:      quicServerConfig(),
		EnableDatagrams: true,
		Handler:         h,
	}, nil)
}

// StartH3Server serves srv on pc through front, or through srv itself when
// front is nil. Before starting it sets srv.TLSConfig's NextProtos to "h3",
// chains a ConnContext hook that counts connections, and wraps srv.Handler
// so that each request's context also ends on Close. To add WebTransport,
// pass &webtransport.Server{H3: srv, ...} as front.
func StartH3Server(pc net.PacketConn, srv *http3.Server, front H3Frontend) (*H3Server, error) {
	if pc == nil || srv == nil {
		return nil, errors.New("dialertest: StartH3Server needs a packet conn and a server")
	}
	if c := srv.TLSConfig; c == nil || len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return nil, errors.New("dialertest: TLS config has no certificate")
	}
	if front == nil {
		front = srv
	}
	ctx, cancel := context.WithCancel(context.Background()) // every request's context follows it
	gate := newHandlerGate()
	done := make(chan struct{}) // closed when the serve loop returns
	var serveErr error
	s := newH3Server(pc)
	s.Server = srv
	srv.TLSConfig = http3.ConfigureTLSConfig(srv.TLSConfig) // a webtransport.Server listens with it as is
	srv.Handler = guard(ctx, gate, srv.Handler)
	next := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c *quic.Conn) context.Context {
		if next != nil {
			ctx = next(ctx, c)
		}
		s.track(c)
		return ctx // a connection refused by track fails on its own
	}
	go func() {
		defer close(done)
		err := front.Serve(pc)
		if ctx.Err() == nil && err != nil {
			serveErr = fmt.Errorf("dialertest: serve HTTP/3 on %s: %w", pc.LocalAddr(), err)
		}
	}()
	s.stop = func() error {
		idle := gate.shut()
		cancel()
		err := front.Close()
		<-done
		s.closeConns() // those the front left open
		<-idle
		return errors.Join(err, serveErr)
	}
	return s, nil
}

// track counts c as open until its context ends. After Close has begun it
// closes c instead and reports false.
func (s *H3Server) track(c *quic.Conn) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.CloseWithError(h3NoError, "server closing")
		return false
	}
	counted := make(chan struct{})
	s.qconns[c] = counted
	s.conns.add("")
	s.mu.Unlock()
	context.AfterFunc(c.Context(), func() {
		s.mu.Lock()
		delete(s.qconns, c)
		s.mu.Unlock()
		s.conns.drop("")
		close(counted)
	})
	return true
}

// closeConns closes every open QUIC connection with H3_NO_ERROR and waits
// until each is closed and counted so.
func (s *H3Server) closeConns() {
	s.mu.Lock()
	conns := maps.Clone(s.qconns)
	s.mu.Unlock()
	for c := range conns {
		_ = c.CloseWithError(h3NoError, "server closed the connection")
	}
	for _, counted := range conns {
		<-counted
	}
}

// Addr returns the UDP address the server listens on.
func (s *H3Server) Addr() net.Addr { return s.PacketConn.LocalAddr() }

// URL returns the server's base URL, such as "https://127.0.0.1:8443".
func (s *H3Server) URL() string { return "https://" + s.Addr().String() }

// Accepted returns how many QUIC connections the server has served.
func (s *H3Server) Accepted() int {
	n, _ := s.conns.counts("")
	return n
}

// Open returns how many of them are not closed yet.
func (s *H3Server) Open() int {
	_, n := s.conns.counts("")
	return n
}

// WaitOpen waits until exactly n QUIC connections are open, or until ctx
// ends. A connection counts as closed once either side closed it (the
// client's CONNECTION_CLOSE arrived) or it timed out.
func (s *H3Server) WaitOpen(ctx context.Context, n int) error {
	return s.conns.waitOpen(ctx, "", n)
}

// Changed returns a channel that is closed at the next change of the
// counts Accepted and Open report.
func (s *H3Server) Changed() <-chan struct{} { return s.conns.changes() }

// CloseConnections closes every open QUIC connection, as a server restart
// would, and goes on serving new ones. When it returns, Open no longer
// counts them.
func (s *H3Server) CloseConnections() {
	s.closeConns()
}

// Close stops serving, cancels every request's context, closes every QUIC
// connection and the packet conn, and waits for the serve loop, every
// handler and every connection to end. It is safe to call more than once.
func (s *H3Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		err := s.stop() // ends with every connection closed and counted so
		if cerr := s.PacketConn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, cerr)
		}
		s.closeErr = err
	})
	return s.closeErr
}
