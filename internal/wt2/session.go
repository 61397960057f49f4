package wt2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// datagramSendQueue is how many datagrams SendDatagram queues for the
// writer before it blocks.
const datagramSendQueue = 32

// Session is one WebTransport session over the byte stream of an extended
// CONNECT stream. Its methods are safe for concurrent use.
type Session struct {
	rw     io.ReadWriteCloser
	client bool
	cfg    Config
	w      *wire // the dialect's wire form

	ctx    context.Context // cancelled, with the cause, when the session ends
	cancel context.CancelCauseFunc

	wake       chan struct{} // wakes the writer; capacity 1
	wtok       chan struct{} // held (capacity 1) by whoever writes rw: writeLoop or writeDirectLocked
	out        bytes.Buffer  // the batch being written; the holder of wtok owns it
	readerDone chan struct{}
	writerDone chan struct{}
	done       chan struct{} // closed once rw is closed and every goroutine returned
	draining   chan struct{} // closed when the peer sent WT_DRAIN_SESSION

	mu sync.Mutex

	cause       error         // why the session ended; nil while it runs
	writeFailed bool          // a write to rw failed: nothing more is written
	closeCap    *SessionError // WT_CLOSE_SESSION for the writer to send last
	halfClosed  bool          // the writer ended the send side with CloseWrite
	drainQueued bool          // Drain was called; WT_DRAIN_SESSION to send once
	drainSent   bool
	drainRecv   bool

	streams map[uint64]*stream // streams not yet finished in both directions

	// Streams we open.
	nextBidi, nextUni       uint64 // index of the next one
	peerMaxBidi, peerMaxUni uint64 // cumulative limits granted by the peer
	blockedBidiAt           uint64 // peerMaxBidi+1 when WT_STREAMS_BLOCKED was queued for it
	blockedUniAt            uint64
	needBlockedBidi         bool
	needBlockedUni          bool
	openN                   notifier // peer's stream limits changed

	// Streams the peer opens.
	inBidi, inUni         incoming
	acceptBidi, acceptUni []*stream
	acceptN               notifier

	// Session-level flow control, send direction.
	sendMax, sent   uint64
	dataBlockedAt   uint64 // sendMax+1 when WT_DATA_BLOCKED was queued for it
	needDataBlocked bool
	sessionBlocked  []*stream // streams waiting for WT_MAX_DATA

	// Session-level flow control, receive direction.
	recvMax, received, consumed uint64
	needMaxData                 bool

	// Peer's initial per-stream limits.
	peer peerLimits

	ready []*stream // streams with data or FIN to send, in turn
	ctrl  []*stream // streams with control capsules to send

	dgOut  [][]byte // datagram payloads to send
	dgOutN notifier // room in dgOut, or session end
	dgTurn bool     // the writer sends a datagram before the next stream chunk
	dgIn   [][]byte
	dgInN  notifier

	scratch []byte // the writer's capsule value buffer

	// Receive buffering high-water marks, for tests.
	hwSession, hwStream uint64
}

// incoming counts the streams of one type the peer opens.
type incoming struct {
	opened  uint64 // highest index opened + 1
	closed  uint64 // streams finished in both directions
	limit   uint64 // cumulative limit we granted (WT_MAX_STREAMS)
	window  uint64 // streams the peer may have open at once
	needMax bool   // WT_MAX_STREAMS to send
}

// NewSession starts a WebTransport session on rw, the byte stream of an
// established extended CONNECT stream, as the client (client true) or the
// server. local holds our receive limits and must be the Config given to
// ClientSettings or ServerSettings for our SETTINGS, and the dialect to
// speak (local.Dialect); peer holds the peer's
// SETTINGS, whose WebTransport initial limits bound what we send (absent
// ones are 0: nothing until the peer grants credit by capsule).
//
// The session owns rw from now on and closes it when the session ends.
func NewSession(rw io.ReadWriteCloser, client bool, local Config, peer map[http2.SettingID]uint32) *Session {
	cfg := local.withDefaults()
	w := cfg.Dialect.wire()
	pl := w.limits(peer)
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Session{
		rw:          rw,
		client:      client,
		cfg:         cfg,
		w:           w,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		wtok:        make(chan struct{}, 1),
		readerDone:  make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
		draining:    make(chan struct{}),
		streams:     make(map[uint64]*stream),
		peerMaxBidi: pl.streamsBidi,
		peerMaxUni:  pl.streamsUni,
		inBidi:      incoming{limit: uint64(cfg.MaxIncomingStreams), window: uint64(cfg.MaxIncomingStreams)},
		inUni:       incoming{limit: uint64(cfg.MaxIncomingUniStreams), window: uint64(cfg.MaxIncomingUniStreams)},
		sendMax:     pl.maxData,
		recvMax:     uint64(cfg.MaxData),
		peer:        pl,
	}
	go s.readLoop()
	go s.writeLoop()
	go s.supervise()
	return s
}

// Context returns a context cancelled when the session ends; its cause
// (context.Cause) is a *SessionError, or the transport error that ended the
// CONNECT stream.
func (s *Session) Context() context.Context { return s.ctx }

// OpenStream opens a bidirectional stream without waiting: it fails with
// ErrTooManyStreams when the peer's limit is reached. The peer learns of the
// stream with its first Write, Close or CancelWrite.
func (s *Session) OpenStream() (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.openLocked(false)
	if err != nil {
		return nil, err
	}
	return newBidi(st), nil
}

// OpenStreamSync opens a bidirectional stream, waiting for the peer to grant
// one (WT_MAX_STREAMS) if its limit is reached.
func (s *Session) OpenStreamSync(ctx context.Context) (*Stream, error) {
	st, err := s.openSync(ctx, false)
	if err != nil {
		return nil, err
	}
	return newBidi(st), nil
}

// OpenUniStream opens a unidirectional stream without waiting, like
// OpenStream.
func (s *Session) OpenUniStream() (*SendStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.openLocked(true)
	if err != nil {
		return nil, err
	}
	return &SendStream{st}, nil
}

// OpenUniStreamSync opens a unidirectional stream, waiting for credit like
// OpenStreamSync.
func (s *Session) OpenUniStreamSync(ctx context.Context) (*SendStream, error) {
	st, err := s.openSync(ctx, true)
	if err != nil {
		return nil, err
	}
	return &SendStream{st}, nil
}

func (s *Session) openSync(ctx context.Context, uni bool) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		st, err := s.openLocked(uni)
		if err != ErrTooManyStreams {
			return st, err
		}
		if err := s.waitLocked(ctx, s.openN.wait(), noDeadline); err != nil {
			return nil, err
		}
	}
}

// openLocked reserves our next stream ID of a type, or queues
// WT_STREAMS_BLOCKED and fails with ErrTooManyStreams.
func (s *Session) openLocked(uni bool) (*stream, error) {
	if s.cause != nil {
		return nil, s.cause
	}
	next, limit := &s.nextBidi, s.peerMaxBidi
	if uni {
		next, limit = &s.nextUni, s.peerMaxUni
	}
	if *next >= limit {
		s.queueStreamsBlockedLocked(uni, limit)
		return nil, ErrTooManyStreams
	}
	id := *next<<2 | s.localBit()
	var st *stream
	if uni {
		id |= uniBit
		st = s.newStreamLocked(id, true, false, s.peer.streamDataUni)
	} else {
		st = s.newStreamLocked(id, true, true, s.peer.streamDataBidiRemote)
	}
	*next++
	return st, nil
}

func (s *Session) queueStreamsBlockedLocked(uni bool, limit uint64) {
	at, need := &s.blockedBidiAt, &s.needBlockedBidi
	if uni {
		at, need = &s.blockedUniAt, &s.needBlockedUni
	}
	if *at != limit+1 {
		*at, *need = limit+1, true
		s.wakeWriter()
	}
}

// AcceptStream waits for the next bidirectional stream the peer opens.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	st, err := s.accept(ctx, &s.acceptBidi)
	if err != nil {
		return nil, err
	}
	return newBidi(st), nil
}

// AcceptUniStream waits for the next unidirectional stream the peer opens.
func (s *Session) AcceptUniStream(ctx context.Context) (*ReceiveStream, error) {
	st, err := s.accept(ctx, &s.acceptUni)
	if err != nil {
		return nil, err
	}
	return &ReceiveStream{st}, nil
}

func (s *Session) accept(ctx context.Context, q *[]*stream) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.cause != nil {
			return nil, s.cause
		}
		if len(*q) > 0 {
			st := popFront(q)
			st.accepted = true
			if st.deleted {
				s.grantStreamLocked(st)
			}
			return st, nil
		}
		if err := s.waitLocked(ctx, s.acceptN.wait(), noDeadline); err != nil {
			return nil, err
		}
	}
}

// SendDatagram sends b in a DATAGRAM capsule. Over HTTP/2 datagrams are
// delivered reliably and in order unless the peer drops them for want of
// room. It blocks while datagramSendQueue datagrams wait for the writer,
// as quic-go's does: until the writer takes one or the session ends, by
// CloseWithError or by the transport failing (over h2conn, a socket that
// takes nothing for its WriteTimeout).
func (s *Session) SendDatagram(b []byte) error {
	if len(b) > s.cfg.MaxDatagramSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrDatagramTooLarge, len(b), s.cfg.MaxDatagramSize)
	}
	p := append([]byte(nil), b...)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.cause != nil {
			return s.cause
		}
		if len(s.dgOut) < datagramSendQueue {
			s.dgOut = append(s.dgOut, p)
			s.wakeWriter()
			return nil
		}
		if err := s.waitLocked(nil, s.dgOutN.wait(), noDeadline); err != nil {
			return err
		}
	}
}

// ReceiveDatagram waits for the next datagram from the peer. Datagrams that
// arrive while Config.DatagramQueue of them wait here are dropped.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.cause != nil {
			return nil, s.cause
		}
		if len(s.dgIn) > 0 {
			b := popFront(&s.dgIn)
			return b, nil
		}
		if err := s.waitLocked(ctx, s.dgInN.wait(), noDeadline); err != nil {
			return nil, err
		}
	}
}

// Drain sends WT_DRAIN_SESSION, asking the peer to finish the session soon.
// The session keeps working; a second call does nothing.
func (s *Session) Drain() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause != nil {
		return s.cause
	}
	if !s.drainQueued {
		s.drainQueued = true
		s.wakeWriter()
	}
	return nil
}

// Draining returns a channel closed when the peer sent WT_DRAIN_SESSION.
func (s *Session) Draining() <-chan struct{} { return s.draining }

// CloseWithError ends the session: every pending and later operation returns
// a *SessionError{Code: code, Message: msg} at once; the peer gets the
// code and msg (made valid UTF-8 and cut to 1024 bytes) in
// WT_CLOSE_SESSION, followed by the end of the CONNECT stream's send side.
// It returns once rw is closed and the session's goroutines have returned:
// normally one round trip, at most Config.CloseTimeout (see supervise).
// Calling it on an ended session only waits for that and returns nil.
func (s *Session) CloseWithError(code uint32, msg string) error {
	msg = truncateUTF8(strings.ToValidUTF8(msg, "\uFFFD"), maxCloseMessage)
	s.mu.Lock()
	e := &SessionError{Code: code, Message: msg}
	s.endLocked(e, e)
	s.mu.Unlock()
	<-s.done
	return nil
}

// endLocked ends the session with cause (first call only) and, if closeCap
// is not nil, has the writer send it as WT_CLOSE_SESSION; every waiting
// operation is woken.
func (s *Session) endLocked(cause error, closeCap *SessionError) {
	if s.cause != nil {
		return
	}
	s.cause = cause
	s.closeCap = closeCap
	s.cancel(cause)
	for _, st := range s.streams {
		st.readN.notify()
		st.writeN.notify()
	}
	s.ready, s.ctrl, s.sessionBlocked, s.dgOut = nil, nil, nil, nil
	s.openN.notify()
	s.acceptN.notify()
	s.dgInN.notify()
	s.dgOutN.notify()
	s.wakeWriter()
}

// fail ends the session because of err: a protocol violation is reported
// to the peer in WT_CLOSE_SESSION; a transport error is not.
func (s *Session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := err.(*violation); ok {
		e := &SessionError{Message: truncateUTF8(v.wire(), maxCloseMessage), err: v}
		s.endLocked(e, e)
		return
	}
	s.endLocked(err, nil)
}

func (s *Session) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeDeadliner is implemented by transports whose pending Write a
// deadline ends, like net.Conn and *h2conn.Stream.
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// supervise closes rw once the session has ended and the writer has sent
// its last capsule and, after a CloseWrite, the peer has ended its side; or
// when Config.CloseTimeout has passed. A writer still in rw.Write then is
// stuck on a transport that no longer drains: a deadline in the past ends
// that write (an *h2conn.Stream's Close alone would not, for a write stuck
// in its socket), and closing rw ends the reader's Read. So the session's
// end waits at most CloseTimeout, plus what rw takes to honour them.
func (s *Session) supervise() {
	<-s.ctx.Done()
	t := time.NewTimer(s.cfg.CloseTimeout)
	defer t.Stop()
	if waitFor(s.writerDone, t.C) {
		s.mu.Lock()
		half := s.halfClosed
		s.mu.Unlock()
		if half {
			waitFor(s.readerDone, t.C)
		}
	} else if wd, ok := s.rw.(writeDeadliner); ok {
		wd.SetWriteDeadline(time.Now())
	}
	s.rw.Close()
	<-s.writerDone
	<-s.readerDone
	close(s.done)
}

// bufferedHighWater returns the most stream data ever buffered unread, for
// the session and for any one stream.
func (s *Session) bufferedHighWater() (session, stream uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hwSession, s.hwStream
}
