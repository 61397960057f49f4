package dialer

import (
	"io"
	"sync"
)

// bodyPipeSize bounds what a bodyPipe holds: the bytes a WebSocket may
// have written that the HTTP/2 client has not yet taken. It is twice a
// 32 KiB message, so a writer never waits on the copier mid-message while
// the copier sends the previous batch.
const bodyPipeSize = 64 << 10

// bodyPipe is the request body of an extended CONNECT sent through an
// HTTP/2 or HTTP/3 client's RoundTrip (connectRoundTrip). It replaces
// io.Pipe, whose Write waits until the client's body copier has read that
// very slice: coder/websocket writes in 4 KiB pieces, so io.Pipe cost a
// goroutine hand-off and a DATA frame (and a TLS record and a syscall)
// per 4 KiB. Write here copies into a buffer of at most bodyPipeSize
// bytes and returns; the copier takes everything buffered in one Read and
// sends it as one DATA frame as flow control allows. A full buffer blocks
// Write, so the client's flow control (RFC 9113 §5.2) still pushes back on
// the writer, with at most bodyPipeSize bytes more in between.
type bodyPipe struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte // from bufPool while it holds bytes
	// drained is closed once the copier has taken the end of the body,
	// or stopped reading it (see pipeStream.Close).
	drained     chan struct{}
	drainedOnce sync.Once
	// werr ends the body once buf drains (closeWrite); rerr fails writes
	// (the client stopped reading: the stream is over).
	werr, rerr error
}

func newBodyPipe() *bodyPipe {
	p := &bodyPipe{drained: make(chan struct{})}
	p.cond.L = &p.mu
	return p
}

// bufPool holds the buffers of bodyPipes and writeBehinds between bursts: a
// thousand idle WebSockets hold none. It holds array pointers, which go
// in and out of an interface without an allocation (a *[]byte would cost
// one per Put, that is one per burst).
var bufPool = sync.Pool{New: func() any { return new([bodyPipeSize]byte) }}

// getBuf returns an empty buffer of capacity bodyPipeSize from bufPool.
func getBuf() []byte { return bufPool.Get().(*[bodyPipeSize]byte)[:0] }

// putBuf gives a buffer of getBuf back to bufPool; nil is ignored.
func putBuf(b []byte) {
	if cap(b) == bodyPipeSize {
		bufPool.Put((*[bodyPipeSize]byte)(b[:bodyPipeSize]))
	}
}

// Write buffers b, waiting while the buffer is full.
func (p *bodyPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		switch {
		case p.rerr != nil:
			return n, p.rerr
		case p.werr != nil:
			return n, io.ErrClosedPipe
		case len(p.buf) == bodyPipeSize:
			p.cond.Wait()
			continue
		}
		if p.buf == nil {
			p.buf = getBuf()
		}
		k := min(len(b), bodyPipeSize-len(p.buf))
		p.buf = append(p.buf, b[:k]...)
		b, n = b[k:], n+k
		p.cond.Broadcast()
	}
	return n, nil
}

// Read takes what is buffered, waiting for some; io.EOF after closeWrite
// once the buffer is empty.
func (p *bodyPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.rerr != nil:
			return 0, p.rerr
		case len(p.buf) > 0:
			n := copy(b, p.buf)
			p.buf = p.buf[:copy(p.buf, p.buf[n:])]
			if len(p.buf) == 0 {
				putBuf(p.buf)
				p.buf = nil
			}
			p.cond.Broadcast()
			return n, nil
		case p.werr != nil:
			p.drainedOnce.Do(func() { close(p.drained) })
			return 0, p.werr
		}
		p.cond.Wait()
	}
}

// Close is the client's: it stopped reading the body, and writes fail.
func (p *bodyPipe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr == nil {
		p.rerr = io.ErrClosedPipe
	}
	if p.buf != nil {
		putBuf(p.buf)
		p.buf = nil
	}
	p.drainedOnce.Do(func() { close(p.drained) })
	p.cond.Broadcast()
	return nil
}

// closeWrite ends the body after what is buffered (END_STREAM follows it)
// and fails a Write still waiting for room.
func (p *bodyPipe) closeWrite() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr == nil {
		p.werr = io.EOF
	}
	p.cond.Broadcast()
}
