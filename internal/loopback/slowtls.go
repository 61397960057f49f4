package loopback

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// SlowWrites wraps l so that every Write on an accepted connection waits d
// before it goes out: a server whose every flight (TLS handshake, session
// tickets, HTTP/2 SETTINGS, responses) arrives d late, as behind a slow or
// overloaded middlebox. Reads are not delayed. The delay ends for good once
// the listener is closed, so that a server's Close (which writes TLS
// close_notify alerts) is not slowed down; a connection's own Close wakes
// its pending Write, which then fails with net.ErrClosed.
func SlowWrites(l net.Listener, d time.Duration) net.Listener {
	return &slowListener{Listener: l, d: d, done: make(chan struct{})}
}

// StartSlowTLS serves h on l like StartHTTP (TLS with HTTP/2 and HTTP/1.1),
// with every write delayed by d (see SlowWrites): a TLS server that is
// slow, not dead. tlsConf needs a certificate (see CA.ServerConfig).
func StartSlowTLS(l net.Listener, tlsConf *tls.Config, h http.Handler, d time.Duration) (*HTTPServer, error) {
	if tlsConf == nil {
		return nil, errors.New("dialertest: StartSlowTLS needs a TLS config")
	}
	return StartServer(SlowWrites(l, d), &http.Server{Handler: h, TLSConfig: tlsConf})
}

type slowListener struct {
	net.Listener
	d    time.Duration
	done chan struct{} // closed by Close: no more delays
	once sync.Once
}

func (l *slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

func (l *slowListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// slowConn delays each Write by its listener's d.
type slowConn struct {
	net.Conn
	l      *slowListener
	closed chan struct{}
	once   sync.Once
}

func (c *slowConn) Write(b []byte) (int, error) {
	t := time.NewTimer(c.l.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.l.done:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *slowConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, for servers that use it.
func (c *slowConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("dialertest: CloseWrite not supported")
}
