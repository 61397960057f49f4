package dialertest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/eyeballs/dialer/internal/loopback"
)

// Options say what a Server serves. The zero Options serve HTTP/1.1,
// HTTP/2 and HTTP/3, with WebSocket over each, and EchoHandler.
type Options struct {
	// H1, H2 and H3 choose the HTTP versions served: HTTP/1.1 and HTTP/2
	// over TLS on TCP, HTTP/3 over QUIC on UDP. When all three are false,
	// all three are served. HTTP/2 and HTTP/3 offer extended CONNECT
	// (SETTINGS_ENABLE_CONNECT_PROTOCOL), so WebSocket rides every version
	// (RFC 6455, RFC 8441, RFC 9220). HTTP/2 is the library's own server,
	// which offers it in any process; net/http's does only with
	// GODEBUG=http2xconnect=1.
	H1, H2, H3 bool
	// WebTransport serves WebTransport sessions over HTTP/3
	// (draft-ietf-webtrans-http3) and HTTP/2 (draft-ietf-webtrans-http2),
	// those of the two that are served, with the echo service the package
	// documentation describes, and sends the SETTINGS that announce them.
	WebTransport bool
	// Handler serves every request that is not a WebTransport session;
	// nil means EchoHandler. WebSocket over HTTP/2 and HTTP/3 reaches it as
	// an extended CONNECT, which AcceptWebSocket accepts.
	Handler http.Handler
	// Names are the DNS names the server's certificate covers besides
	// DefaultName, "localhost", "127.0.0.1" and "::1". The first is the
	// server's Name; without Names it is DefaultName. Servers that share a
	// DNS need names of their own.
	Names []string
	// CA issues the server's certificate; nil means a new CA of its own
	// (see Server.CA).
	CA *CA
}

// DefaultName is the Name of a server started without Options.Names. It is
// under .test, which RFC 6761 reserves for testing, so it never means
// anything beyond the test's own DNS.
const DefaultName = "origin.test"

// A Server is one origin on loopback: TCP and UDP on the same port of
// 127.0.0.1 and [::1], so one name with an A and an AAAA record (see
// DNS.Point) reaches it over either family, and one family can be broken
// while the other works. It counts the connections it accepts per
// protocol, so tests can check that a client closed what it did not need.
type Server struct {
	name       string
	port       int
	ca         *CA
	h1, h2, h3 bool

	tcp      [2]*loopback.H2FakeServer // per family; nil unless served
	udp      [2]*loopback.H3Server
	sessions []interface{ Sessions() int }
	closers  []io.Closer // closed in reverse order

	closeOnce sync.Once
}

// NewServer starts a server as opts say, broken by faults. With a TB it is
// closed when the test ends and a failure to start fails the test; with a
// nil TB a failure panics and the caller closes the server.
func NewServer(tb TB, opts Options, faults ...Fault) *Server {
	if tb != nil {
		tb.Helper()
	}
	s, err := startServer(opts, faults)
	if err != nil {
		fail(tb, err)
	}
	cleanup(tb, s.Close)
	return s
}

func startServer(opts Options, faults []Fault) (_ *Server, err error) {
	var p plan
	for _, f := range faults {
		if f.apply == nil {
			return nil, errorf("the zero Fault breaks nothing")
		}
		if err := f.apply(&p); err != nil {
			return nil, err
		}
	}
	s := &Server{name: DefaultName, h1: opts.H1, h2: opts.H2, h3: opts.H3, ca: opts.CA}
	if !s.h1 && !s.h2 && !s.h3 {
		s.h1, s.h2, s.h3 = true, true, true
	}
	if len(opts.Names) > 0 {
		s.name = opts.Names[0]
	}
	if s.ca == nil {
		if s.ca, err = NewCA(); err != nil {
			return nil, err
		}
	}
	conf, err := s.ca.ServerConfig(append([]string{DefaultName, "localhost", "127.0.0.1", "::1"}, opts.Names...)...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	front, err := reserve()
	if err != nil {
		return nil, err
	}
	defer front.closeRest()
	s.port = front.port
	back := front // where the servers listen: behind the latency proxies, if any
	if p.latency > 0 {
		if back, err = reserve(); err != nil {
			return nil, err
		}
		defer back.closeRest()
	}
	for i, fam := range families {
		if err := s.startTCP(i, fam, p, opts, conf, front, back); err != nil {
			return nil, err
		}
		if err := s.startUDP(i, fam, p, opts, conf, front, back); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startTCP starts what listens on family fam's TCP port.
func (s *Server) startTCP(i int, fam Family, p plan, opts Options, conf *tls.Config, front, back *sockets) error {
	addr := net.JoinHostPort(fam.host(), strconv.Itoa(front.port))
	mode := p.tcp[i]
	if !s.h1 && !s.h2 && mode == tcpServe {
		mode = tcpRefuse
	}
	var (
		f   *loopback.Fault
		err error
	)
	switch mode {
	case tcpServe:
		if p.latency > 0 {
			drop(&front.l[i])
			up := back.l[i].Addr().String()
			proxy, err := loopback.LatencyTCP(addr, up, p.latency)
			if err != nil {
				return err
			}
			s.closers = append(s.closers, proxy)
		}
		return s.serveTCP(i, take(&back.l[i]), p, opts, conf)
	case tcpBlackhole:
		drop(&front.l[i])
		f, err = loopback.Blackhole(addr)
	case tcpRefuse:
		drop(&front.l[i])
		f, err = loopback.Refuse(addr)
	case tcpStall:
		drop(&front.l[i])
		f, err = loopback.TLSStall(addr)
	}
	if err != nil {
		return err
	}
	s.closers = append(s.closers, f)
	return nil
}

// serveTCP serves HTTP/1.1 and HTTP/2 on l.
func (s *Server) serveTCP(i int, l net.Listener, p plan, opts Options, conf *tls.Config) error {
	c := loopback.H2Config{Handler: opts.Handler, HTTP1: s.h1}
	var (
		srv *loopback.H2FakeServer
		err error
	)
	switch {
	case s.h2 && p.h2 == settingsClose:
		var h1 http.Handler
		if s.h1 {
			h1 = handlerOr(opts.Handler)
		}
		srv, err = loopback.StartH2Fault(l, conf, loopback.H2CloseAfterSettings, h1)
	default:
		c.HTTP2 = s.h2
		c.ExtendedConnect = p.h2 == settingsNormal
		c.WebTransport = c.ExtendedConnect && opts.WebTransport
		var wt *loopback.WTH2Server
		if wt, err = loopback.StartH2Server(l, conf, c); err == nil {
			srv = wt.H2FakeServer
			s.closers = append(s.closers, wt) // closes its sessions first
			s.sessions = append(s.sessions, wt)
			s.tcp[i] = srv
			return nil
		}
	}
	if err != nil {
		l.Close()
		return err
	}
	s.closers = append(s.closers, srv)
	s.tcp[i] = srv
	return nil
}

// startUDP starts what listens on family fam's UDP port.
func (s *Server) startUDP(i int, fam Family, p plan, opts Options, conf *tls.Config, front, back *sockets) error {
	if !s.h3 {
		return nil // the port is left closed: QUIC is refused
	}
	addr := net.JoinHostPort(fam.host(), strconv.Itoa(front.port))
	if p.udp[i] == udpBlackhole {
		drop(&front.u[i])
		f, err := loopback.UDPBlackhole(addr)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, f)
		return nil
	}
	if p.latency > 0 {
		drop(&front.u[i])
		proxy, err := loopback.LatencyUDP(addr, back.u[i].LocalAddr().String(), p.latency)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, proxy)
	}
	pc := take(&back.u[i])
	var (
		srv *loopback.H3Server
		err error
	)
	switch p.h3 {
	case settingsNormal:
		if opts.WebTransport {
			var wt *loopback.WTServer
			if wt, err = loopback.StartWebTransportHandler(pc, conf.Clone(), opts.Handler); err == nil {
				srv = wt.H3Server
				s.sessions = append(s.sessions, wt)
				s.closers = append(s.closers, wt)
				s.udp[i] = srv
				return nil
			}
		} else {
			srv, err = loopback.StartH3(pc, conf.Clone(), handlerOr(opts.Handler))
		}
	case settingsNoExtended:
		srv, err = loopback.StartH3NoExtendedConnect(pc, conf)
	case settingsClose:
		srv, err = loopback.StartH3Fault(pc, conf, loopback.H3CloseAfterSettings)
	}
	if err != nil {
		pc.Close()
		return err
	}
	s.closers = append(s.closers, srv)
	s.udp[i] = srv
	return nil
}

// handlerOr returns h, or EchoHandler when h is nil.
func handlerOr(h http.Handler) http.Handler {
	if h == nil {
		return EchoHandler()
	}
	return h
}

// Name returns the first of Options.Names, or DefaultName.
func (s *Server) Name() string { return s.name }

// Port returns the server's port, the same on TCP and UDP of 127.0.0.1
// and ::1.
func (s *Server) Port() int { return s.port }

// Addr returns the server's address in family f, such as "127.0.0.1:8443"
// or "[::1]:8443".
func (s *Server) Addr(f Family) string {
	return net.JoinHostPort(f.host(), strconv.Itoa(s.port))
}

// URL returns scheme://Name:Port, such as "wss://chat.test:8443", for a
// dialer that resolves Name through a DNS pointed at the server (see
// DNS.Point); append the path.
func (s *Server) URL(scheme string) string {
	return scheme + "://" + net.JoinHostPort(s.name, strconv.Itoa(s.port))
}

// CA returns the CA that issued the server's certificate: Options.CA, or
// the server's own.
func (s *Server) CA() *CA { return s.ca }

// Accepted returns how many connections the server accepted that carried
// protocol p, over both families: TCP connections that negotiated
// "http/1.1" or "h2" in ALPN, or QUIC connections for "h3". Connections
// that never got that far (a TLS handshake that failed or was abandoned)
// are not counted.
func (s *Server) Accepted(p Protocol) int {
	n := 0
	s.each(p, func(accepted, _ int) { n += accepted })
	return n
}

// Open returns how many of the connections Accepted counts are still open:
// neither side has closed them yet.
func (s *Server) Open(p Protocol) int {
	n := 0
	s.each(p, func(_, open int) { n += open })
	return n
}

// WaitOpen waits until exactly n connections that carried protocol p are
// open (see Open), or until ctx ends: WaitOpen(ctx, HTTP3, 0) checks that a
// client closed every QUIC connection it opened, the loser of a race or one
// whose SETTINGS fell short included.
func (s *Server) WaitOpen(ctx context.Context, p Protocol, n int) error {
	for {
		var changed [2]<-chan struct{}
		for i := range families {
			switch {
			case p == HTTP3 && s.udp[i] != nil:
				changed[i] = s.udp[i].Changed()
			case p != HTTP3 && s.tcp[i] != nil:
				changed[i] = s.tcp[i].Changed()
			}
		}
		open := s.Open(p)
		if open == n {
			return nil
		}
		select {
		case <-changed[0]:
		case <-changed[1]:
		case <-ctx.Done():
			return errorf("%d %s connections open, want %d: %w", open, p, n, context.Cause(ctx))
		}
	}
}

// each calls f with the counts of every server that serves p.
func (s *Server) each(p Protocol, f func(accepted, open int)) {
	for i := range families {
		switch {
		case p == HTTP3 && s.udp[i] != nil:
			f(s.udp[i].Accepted(), s.udp[i].Open())
		case (p == HTTP1 || p == HTTP2) && s.tcp[i] != nil:
			f(s.tcp[i].Accepted(string(p)), s.tcp[i].Open(string(p)))
		}
	}
}

// Sessions returns how many WebTransport sessions the server accepted,
// over HTTP/3 and HTTP/2.
func (s *Server) Sessions() int {
	n := 0
	for _, w := range s.sessions {
		n += w.Sessions()
	}
	return n
}

// CloseConnections closes every open connection, TCP and QUIC, and the
// WebSockets and WebTransport sessions they carry, as a server restart
// would, and goes on serving new ones: to test a client's reconnect logic.
// When it returns, Open no longer counts them.
func (s *Server) CloseConnections() {
	for i := range families {
		if s.tcp[i] != nil {
			s.tcp[i].CloseConnections()
		}
		if s.udp[i] != nil {
			s.udp[i].CloseConnections()
		}
	}
}

// Close stops the server: it closes every listener, connection and fault,
// ends every handler, and waits for all of it. It may be called more than
// once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i].Close()
		}
	})
}

// sockets is one port reserved on TCP and UDP of both loopback families.
type sockets struct {
	port int
	l    [2]net.Listener
	u    [2]net.PacketConn
}

// reserveAttempts bounds how often reserve picks a new port.
const reserveAttempts = 20

// reserve reserves a port that is free on TCP and UDP of 127.0.0.1 and
// ::1.
func reserve() (*sockets, error) {
	var lastErr error
	for range reserveAttempts {
		l4, l6, port, err := loopback.ListenPair()
		if err != nil {
			return nil, err
		}
		k := &sockets{port: port, l: [2]net.Listener{l4, l6}}
		for i, fam := range families {
			pc, err := net.ListenPacket("udp"+strconv.Itoa(int(fam)), net.JoinHostPort(fam.host(), strconv.Itoa(port)))
			if err != nil {
				lastErr = err
				break
			}
			k.u[i] = pc
		}
		if k.u[0] != nil && k.u[1] != nil {
			return k, nil
		}
		k.closeRest()
	}
	return nil, errorf("no port free on TCP and UDP of both loopback families: %w", lastErr)
}

// take returns the socket in *slot and empties the slot: its new owner
// closes it, not closeRest.
func take[T io.Closer](slot *T) T {
	c := *slot
	var none T
	*slot = none
	return c
}

// drop closes the socket in *slot, if it is still there, to free its port
// for another socket.
func drop[T io.Closer](slot *T) {
	if c := take(slot); any(c) != nil {
		c.Close()
	}
}

// closeRest closes every socket not handed over.
func (k *sockets) closeRest() {
	for i := range k.l {
		if k.l[i] != nil {
			k.l[i].Close()
			k.l[i] = nil
		}
		if k.u[i] != nil {
			k.u[i].Close()
			k.u[i] = nil
		}
	}
}
