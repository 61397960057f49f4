package loopback

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
)

// HTTPServer is a net/http server running on one listener. Unlike a bare
// http.Server, its Close also ends handlers that hijacked their connection
// (WebSocket) and waits for every handler to return, so nothing outlives it.
type HTTPServer struct {
	// Server is the underlying server; do not change it after start.
	Server *http.Server
	// Listener is the listener it serves, as passed in.
	Listener net.Listener

	tls      bool            // serving TLS; srv.TLSConfig alone does not tell, net/http may fill it in
	ctx      context.Context // cancelled by Close; every request's context follows it
	cancel   context.CancelFunc
	done     chan struct{} // closed when the serve loop returns
	serveErr error

	gate *handlerGate

	closeOnce sync.Once
	closeErr  error
}

// StartHTTP serves h on l: HTTP/1.1 in plain text when tlsConf is nil, else
// TLS with HTTP/2 when the client offers "h2" in ALPN and HTTP/1.1
// otherwise. tlsConf needs a certificate (see CA.ServerConfig). For other
// protocol sets, start the server with StartServer and set
// http.Server.Protocols. Its HTTP/2 side accepts RFC 8441 extended CONNECT
// (WebSocket over HTTP/2, see EchoHandler) only when the process started
// with GODEBUG=http2xconnect=1 (internal/testkit's EnsureXConnect restarts
// a test binary with it); StartH2NoWebTransport and StartWebTransportH2
// offer it without.
func StartHTTP(l net.Listener, tlsConf *tls.Config, h http.Handler) (*HTTPServer, error) {
	return StartServer(l, &http.Server{Handler: h, TLSConfig: tlsConf})
}

// StartServer serves srv on l, with TLS when srv.TLSConfig is set. It wraps
// srv.Handler so that each request's context also ends on Close, and, when
// srv.ErrorLog is nil, discards the server's log: the faults and the losers
// of a race make net/http log handshake errors that are expected here.
func StartServer(l net.Listener, srv *http.Server) (*HTTPServer, error) {
	if l == nil || srv == nil {
		return nil, errors.New("dialertest: StartServer needs a listener and a server")
	}
	if srv.TLSConfig != nil && len(srv.TLSConfig.Certificates) == 0 && srv.TLSConfig.GetCertificate == nil {
		return nil, errors.New("dialertest: TLS config has no certificate")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &HTTPServer{Server: srv, Listener: l, ctx: ctx, cancel: cancel, done: make(chan struct{}), gate: newHandlerGate()}
	srv.Handler = guard(ctx, s.gate, srv.Handler)
	if srv.ErrorLog == nil {
		srv.ErrorLog = log.New(io.Discard, "", 0)
	}
	s.tls = srv.TLSConfig != nil
	go func() {
		defer close(s.done)
		var err error
		if s.tls {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("dialertest: serve %s: %w", l.Addr(), err)
		}
	}()
	return s, nil
}

// URL returns the server's base URL, such as "https://127.0.0.1:8443" or
// "http://[::1]:8080".
func (s *HTTPServer) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.Listener.Addr().String()
}

// Close closes the listener and every connection, cancels every request's
// context (which ends WebSocket handlers such as EchoHandler's), and waits
// for the serve loop and all handlers to return. A handler that ignores its
// context makes Close wait for it.
func (s *HTTPServer) Close() error {
	s.closeOnce.Do(func() {
		idle := s.gate.shut()
		s.cancel()
		err := s.Server.Close()
		<-s.done
		<-idle
		s.closeErr = errors.Join(err, s.serveErr)
	})
	return s.closeErr
}
