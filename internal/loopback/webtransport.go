package loopback

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

// WTProtocols are the WebTransport application protocols a WTServer
// selects from the client's WT-Available-Protocols, in the client's order
// of preference.
var WTProtocols = []string{"echo-v1", "chat-v1"}

// Texts a WTServer sends on the streams it opens on "push".
const (
	WTPushBidi = "hello from server"
	WTPushUni  = "uni from server"
)

// wtMaxCommand bounds the first line of a bidirectional stream that a
// WTServer reads as a command.
const wtMaxCommand = 256

// Session flow control limits a WTServer advertises. They apply only when
// the client advertises its own (webtransport.Transport.Config), which is
// also what lets it open several sessions on one QUIC connection.
const (
	wtMaxStreams = 100
	wtMaxData    = 16 << 20
)

// WTServer is an HTTP/3 server that also serves WebTransport (see
// StartWebTransport). Besides the QUIC connections its H3Server counts, it
// counts WebTransport sessions and remembers how the last one ended.
type WTServer struct {
	*H3Server
	*wtBook
	// WebTransport is the front that upgrades requests to sessions; do not
	// change it after start.
	WebTransport *webtransport.Server
}

// WTClose is how a session served by a WTServer ended.
type WTClose struct {
	// Err is what ended it: a *webtransport.SessionError when either side
	// closed it (WT_CLOSE_SESSION), another error when the CONNECT stream or
	// the QUIC connection ended first.
	Err error
	// Code and Message are Err's when it is a *webtransport.SessionError.
	Code    webtransport.SessionErrorCode
	Message string
	// Remote reports whether the client closed the session.
	Remote bool
	// Addr is the client's address.
	Addr net.Addr
}

// StartWebTransport serves WebTransport over HTTP/3 on pc, together with
// WebSocket over HTTP/3 (RFC 9220), so that one QUIC connection can carry
// both. tlsConf needs a certificate (see CA.ServerConfig); its NextProtos is
// set to "h3".
//
// A WebTransport request (extended CONNECT with :protocol webtransport-h3
// or webtransport), on any path, is answered with 403 when it has
// "X-Reject: 1"; otherwise its X-Test header is copied into the response,
// the first of the client's WT-Available-Protocols that is in WTProtocols
// is selected, any Origin is accepted, and the session is served as
// follows:
//   - each bidirectional stream the client opens is echoed as data arrives
//     and closed after the client's end of stream, except when its first
//     line is a command:
//     "push\n" makes the server open a bidirectional stream carrying
//     WTPushBidi and a unidirectional one carrying WTPushUni, each closed
//     after it, and close the command stream empty;
//     "close <code> <message>\n" (a decimal code, the message may be empty)
//     makes the server close the session with that code and message;
//     echoing starts as soon as the first bytes cannot begin a command, so
//     an interactive client that sends a prefix of one ("p", "clo") gets no
//     echo before more bytes, a newline or its end of stream;
//   - for each unidirectional stream the client opens, the server opens one
//     and copies the bytes to it, closing it after the client's end of
//     stream;
//   - each datagram is sent back;
//   - Close ends it with code 0 and "server closing".
//
// Every other request goes to EchoHandler, WebSocket over HTTP/3 on "/ws"
// (or any path) included.
func StartWebTransport(pc net.PacketConn, tlsConf *tls.Config) (*WTServer, error) {
	return StartWebTransportHandler(pc, tlsConf, nil)
}

// StartWebTransportHandler is StartWebTransport with h serving every
// request that is not a WebTransport session (nil: EchoHandler).
func StartWebTransportHandler(pc net.PacketConn, tlsConf *tls.Config, h http.Handler) (*WTServer, error) {
	if tlsConf == nil {
		return nil, errors.New("dialertest: StartWebTransport needs a TLS config")
	}
	s := &WTServer{wtBook: newWTBook()}
	ws := h
	if ws == nil {
		ws = EchoHandler()
	}
	h3 := &http3.Server{
		TLSConfig:       tlsConf,
		QUICConfig:      quicServerConfig(),
		EnableDatagrams: true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isWebTransport(r) {
				s.serveSession(w, r)
				return
			}
			ws.ServeHTTP(w, r)
		}),
	}
	s.WebTransport = &webtransport.Server{
		H3: h3,
		Config: &webtransport.Config{
			MaxIncomingStreams:    wtMaxStreams,
			MaxIncomingUniStreams: wtMaxStreams,
			MaxIncomingData:       wtMaxData,
		},
		ApplicationProtocols: slices.Clone(WTProtocols),
		CheckOrigin:          func(*http.Request) bool { return true },
	}
	hs, err := StartH3Server(pc, h3, &wtFront{Server: s.WebTransport, closeSessions: s.closeSessions})
	if err != nil {
		return nil, err
	}
	s.H3Server = hs
	return s, nil
}

// wtFront is the front of a WTServer. It runs the QUIC listener itself
// and hands each connection to the webtransport.Server (ServeQUICConn):
// webtransport.Server.Serve counts itself in a WaitGroup that its Close
// waits on, and a Close that comes before Serve has started races with it.
// Close closes the sessions before the connections, so that they end with
// "server closing".
type wtFront struct {
	*webtransport.Server
	closeSessions func()

	mu     sync.Mutex
	closed bool
	ln     *quic.EarlyListener
	conns  sync.WaitGroup // ServeQUICConn calls; none is added once closed
}

func (f *wtFront) Serve(pc net.PacketConn) error {
	ln, err := quic.ListenEarly(pc, f.H3.TLSConfig, quicServerConfig())
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	f.ln = ln
	f.mu.Unlock()
	for {
		qc, err := ln.Accept(context.Background())
		if err != nil {
			return err
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			qc.CloseWithError(0, "")
			continue
		}
		f.conns.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.conns.Done()
			_ = f.ServeQUICConn(qc)
		}()
	}
}

func (f *wtFront) Close() error {
	f.closeSessions()
	f.mu.Lock()
	f.closed = true
	ln := f.ln
	f.mu.Unlock()
	err := f.Server.Close()
	if ln != nil {
		ln.Close()
	}
	f.conns.Wait()
	return err
}

// StartH3NoWebTransport serves EchoHandler over HTTP/3 on pc like StartH3:
// extended CONNECT, HTTP/3 and QUIC datagrams and partial stream resets are
// on, but the WebTransport settings are missing, so WebTransport clients
// refuse it (webtransport-go with a *webtransport.RequirementsNotMetError)
// while WebSocket over HTTP/3 works.
func StartH3NoWebTransport(pc net.PacketConn, tlsConf *tls.Config) (*H3Server, error) {
	return StartH3(pc, tlsConf, EchoHandler())
}

// isWebTransport reports whether r asks for a WebTransport session (the
// draft-15 :protocol, or the older one webtransport-go still accepts).
func isWebTransport(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.ProtoMajor == 3 &&
		(r.Proto == "webtransport-h3" || r.Proto == "webtransport")
}

// serveSession upgrades r and serves the session until it ends.
func (s *WTServer) serveSession(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Reject") == "1" {
		http.Error(w, "rejected: X-Reject: 1", http.StatusForbidden)
		return
	}
	if v := r.Header.Values("X-Test"); len(v) > 0 {
		w.Header()["X-Test"] = v
	}
	sess, err := s.WebTransport.Upgrade(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.serve(h3Session{sess})
}

// serveWTEcho serves sess as StartWebTransport describes until it ends. It
// returns the error the session ended with once every goroutine it started
// has returned. The request's context is no use to end it early: quic-go
// cancels it as soon as the client stops reading the CONNECT stream, which
// is how the client closes the session.
func serveWTEcho(sess wtSession) error {
	sctx := sess.Context()
	var wg sync.WaitGroup
	var closeErr error
	wg.Go(func() {
		for {
			str, err := sess.AcceptStream(context.Background()) // fails once the session ends
			if err != nil {
				closeErr = err
				return
			}
			wg.Go(func() { echoWTStream(sctx, sess, &wg, str) })
		}
	})
	wg.Go(func() {
		for {
			str, err := sess.AcceptUniStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() { echoWTUniStream(sctx, sess, str) })
		}
	})
	wg.Go(func() {
		for {
			b, err := sess.ReceiveDatagram(sctx)
			if err != nil {
				return
			}
			_ = sess.SendDatagram(b) // datagrams may be lost anyway
		}
	})
	wg.Wait()
	<-sctx.Done()
	return closeErr
}

// echoWTStream serves a bidirectional stream the client opened: it runs
// the command on its first line, or echoes it.
func echoWTStream(ctx context.Context, sess wtSession, wg *sync.WaitGroup, str wtStream) {
	br := bufio.NewReaderSize(str, 4096)
	line, err := peekCommand(br)
	if err != nil && !errors.Is(err, io.EOF) {
		str.CancelRead(0)
		str.CancelWrite(0)
		return
	}
	switch {
	case line == "push\n":
		_, _ = br.Discard(len(line))
		wg.Go(func() { pushWT(ctx, sess) })
		_ = str.Close()
		_, _ = io.Copy(io.Discard, br)
		return
	case strings.HasPrefix(line, "close "):
		if code, msg, ok := parseClose(line); ok {
			_ = sess.CloseWithError(code, msg)
			return
		}
	}
	if _, err := io.Copy(str, br); err != nil {
		str.CancelRead(0)
		str.CancelWrite(0)
		return
	}
	_ = str.Close()
}

// peekCommand returns the first line of br without consuming it if it is,
// or may be, a command ("push\n" or "close ...\n"), and "" as soon as the
// bytes that arrived show that it is not one, so that an interactive echo
// never waits for a newline.
func peekCommand(br *bufio.Reader) (string, error) {
	for n := 1; n <= wtMaxCommand; n++ {
		b, err := br.Peek(n)
		s := string(b)
		if !strings.HasPrefix("push\n", s) && !strings.HasPrefix("close ", s) && !strings.HasPrefix(s, "close ") {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if b[n-1] == '\n' {
			return s, nil
		}
	}
	return "", nil
}

// parseClose parses "close <code> <message>\n".
func parseClose(line string) (uint32, string, bool) {
	rest := strings.TrimSuffix(strings.TrimPrefix(line, "close "), "\n")
	num, msg, _ := strings.Cut(rest, " ")
	code, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, "", false
	}
	return uint32(code), msg, true
}

// pushWT opens a bidirectional and a unidirectional stream to the client
// and writes WTPushBidi and WTPushUni on them. It discards what the client
// sends on the bidirectional one.
func pushWT(ctx context.Context, sess wtSession) {
	bs, err := sess.OpenStreamSync(ctx)
	if err != nil {
		return
	}
	writeAndClose(bs, WTPushBidi)
	if us, err := sess.OpenUniStreamSync(ctx); err == nil {
		writeAndClose(us, WTPushUni)
	}
	_, _ = io.Copy(io.Discard, bs)
}

// writeAndClose writes text to a stream the server opened and closes it,
// or resets it if the write fails.
func writeAndClose(w wtSend, text string) {
	if _, err := io.WriteString(w, text); err != nil {
		w.CancelWrite(0)
		return
	}
	_ = w.Close()
}

// echoWTUniStream copies a unidirectional stream the client opened to one
// the server opens.
func echoWTUniStream(ctx context.Context, sess wtSession, rs wtReceive) {
	ss, err := sess.OpenUniStreamSync(ctx)
	if err != nil {
		rs.CancelRead(0)
		return
	}
	if _, err := io.Copy(ss, rs); err != nil {
		rs.CancelRead(0)
		ss.CancelWrite(0)
		return
	}
	_ = ss.Close()
}
