package loopback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"

	"github.com/quic-go/webtransport-go"
)

// wtSession is what the WebTransport echo service needs of a server-side
// session, over HTTP/3 (webtransport-go, h3Session) or HTTP/2 (wt2,
// h2Session).
type wtSession interface {
	AcceptStream(context.Context) (wtStream, error)
	AcceptUniStream(context.Context) (wtReceive, error)
	OpenStreamSync(context.Context) (wtStream, error)
	OpenUniStreamSync(context.Context) (wtSend, error)
	ReceiveDatagram(context.Context) ([]byte, error)
	SendDatagram([]byte) error
	CloseWithError(code uint32, msg string) error
	Context() context.Context
	RemoteAddr() net.Addr
	// closed reads the code and message of err if it says the session was
	// closed by either side, and whether the client closed it.
	closed(err error) (code uint32, msg string, remote, ok bool)
}

type wtSend interface {
	io.WriteCloser
	CancelWrite(uint32)
}

type wtReceive interface {
	io.Reader
	CancelRead(uint32)
}

type wtStream interface {
	wtSend
	wtReceive
}

// wtBook counts the sessions a WebTransport server serves, remembers how
// the last one ended, and closes them all when the server closes.
type wtBook struct {
	sessions *tally

	mu      sync.Mutex
	live    map[wtSession]struct{}
	closing bool // Close has begun: sessions are closed as they start
	last    WTClose
	hasLast bool
}

func newWTBook() *wtBook {
	return &wtBook{sessions: newTally(), live: map[wtSession]struct{}{}}
}

// Sessions returns how many WebTransport sessions the server has accepted.
func (b *wtBook) Sessions() int {
	n, _ := b.sessions.counts("")
	return n
}

// OpenSessions returns how many of them have not ended yet.
func (b *wtBook) OpenSessions() int {
	_, n := b.sessions.counts("")
	return n
}

// WaitSessions waits until exactly n sessions are open, or until ctx ends.
// A session counts as ended once LastClose reports it.
func (b *wtBook) WaitSessions(ctx context.Context, n int) error {
	if err := b.sessions.waitOpen(ctx, "", n); err != nil {
		return fmt.Errorf("dialertest: %d WebTransport sessions open, want %d: %w", b.OpenSessions(), n, context.Cause(ctx))
	}
	return nil
}

// LastClose returns how the session that ended last ended, and false if
// none has.
func (b *wtBook) LastClose() (WTClose, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.hasLast
}

// serve serves sess with the echo service until it ends, and records how it
// ended.
func (b *wtBook) serve(sess wtSession) {
	b.mu.Lock()
	closing := b.closing
	b.live[sess] = struct{}{}
	b.mu.Unlock()
	b.sessions.add("")
	if closing {
		_ = sess.CloseWithError(0, "server closing")
	}
	c := WTClose{Err: serveWTEcho(sess), Addr: sess.RemoteAddr()}
	if code, msg, remote, ok := sess.closed(c.Err); ok {
		c.Code, c.Message, c.Remote = webtransport.SessionErrorCode(code), msg, remote
	}
	b.mu.Lock()
	delete(b.live, sess)
	b.last, b.hasLast = c, true
	b.mu.Unlock()
	b.sessions.drop("")
}

// closeSessions closes every session with code 0 and "server closing", and
// makes sessions that start later close at once.
func (b *wtBook) closeSessions() {
	b.mu.Lock()
	b.closing = true
	live := maps.Clone(b.live)
	b.mu.Unlock()
	var wg sync.WaitGroup
	for sess := range live {
		wg.Go(func() { _ = sess.CloseWithError(0, "server closing") })
	}
	wg.Wait()
}

// h3Session is a webtransport-go session seen by the echo service.
type h3Session struct{ s *webtransport.Session }

func (h h3Session) AcceptStream(ctx context.Context) (wtStream, error) {
	st, err := h.s.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return h3WTStream{st}, nil
}

func (h h3Session) AcceptUniStream(ctx context.Context) (wtReceive, error) {
	st, err := h.s.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return h3WTReceive{st}, nil
}

func (h h3Session) OpenStreamSync(ctx context.Context) (wtStream, error) {
	st, err := h.s.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return h3WTStream{st}, nil
}

func (h h3Session) OpenUniStreamSync(ctx context.Context) (wtSend, error) {
	st, err := h.s.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return h3WTSend{st}, nil
}

func (h h3Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return h.s.ReceiveDatagram(ctx)
}
func (h h3Session) SendDatagram(b []byte) error { return h.s.SendDatagram(b) }
func (h h3Session) CloseWithError(code uint32, msg string) error {
	return h.s.CloseWithError(webtransport.SessionErrorCode(code), msg)
}
func (h h3Session) Context() context.Context { return h.s.Context() }
func (h h3Session) RemoteAddr() net.Addr     { return h.s.RemoteAddr() }

func (h h3Session) closed(err error) (uint32, string, bool, bool) {
	se, ok := errors.AsType[*webtransport.SessionError](err)
	if !ok {
		return 0, "", false, false
	}
	return uint32(se.ErrorCode), se.Message, se.Remote, true
}

type h3WTStream struct{ *webtransport.Stream }

func (s h3WTStream) CancelRead(c uint32)  { s.Stream.CancelRead(webtransport.StreamErrorCode(c)) }
func (s h3WTStream) CancelWrite(c uint32) { s.Stream.CancelWrite(webtransport.StreamErrorCode(c)) }

type h3WTSend struct{ *webtransport.SendStream }

func (s h3WTSend) CancelWrite(c uint32) { s.SendStream.CancelWrite(webtransport.StreamErrorCode(c)) }

type h3WTReceive struct{ *webtransport.ReceiveStream }

func (s h3WTReceive) CancelRead(c uint32) {
	s.ReceiveStream.CancelRead(webtransport.StreamErrorCode(c))
}
