package wt2

import "sync"

// Received stream data is held in chunks of recvChunk bytes taken from
// chunkPool. The reader reads a WT_STREAM capsule's data from the CONNECT
// stream straight into the free end of the stream's last chunk (or a new
// one), so data is copied once on its way from the transport to the
// application and chunks are packed whatever the size of the peer's
// capsules: the memory held stays within a chunk or two of the bytes
// buffered, which flow control bounds. A chunk goes back to the pool once
// the application has read it, or its stream discarded it. A peer that
// sends one byte on each stream it may open makes each hold a chunk: at
// most the stream limits (MaxIncomingStreams and MaxIncomingUniStreams,
// plus ours) times recvChunk per session.

// chunkPool recycles receive chunks across sessions, as x/net/http2's
// dataChunkPools do for its stream buffers: a session that streams
// steadily takes none from the heap. It holds only free buffers.
var chunkPool = sync.Pool{New: func() any { return new([recvChunk]byte) }}

// rchunk is one chunk of a stream's received data: b[lo:hi] is unread.
type rchunk struct {
	b      *[recvChunk]byte
	lo, hi int
}

// unreadLocked returns the bytes received and neither read nor discarded:
// all of them sit in st.buf.
func (st *stream) unreadLocked() uint64 { return st.recvOff - st.readOff }

// roomLocked returns where the reader may write up to n more bytes of st's
// data: the free end of st's last chunk, or of a new one. Until
// commitLocked the reader writes there without s.mu, and the chunk stays
// in st.buf (see releaseLocked); Read and discards only touch b[lo:hi].
func (st *stream) roomLocked(n uint64) []byte {
	if k := len(st.buf); k == 0 || st.buf[k-1].hi == recvChunk {
		st.buf = append(st.buf, rchunk{b: chunkPool.Get().(*[recvChunk]byte)})
	}
	c := &st.buf[len(st.buf)-1]
	st.filling = true
	return c.b[c.hi : c.hi+int(min(n, uint64(recvChunk-c.hi)))]
}

// commitLocked adds the n bytes the reader wrote at the room roomLocked
// gave it: they are received data, discarded at once if reading was
// cancelled meanwhile.
func (st *stream) commitLocked(n int) {
	s := st.s
	st.filling = false
	c := &st.buf[len(st.buf)-1]
	c.hi += n
	st.recvOff += uint64(n)
	s.received += uint64(n)
	if st.recvErr != nil {
		st.discardLocked() // CancelRead
		return
	}
	if n > 0 {
		s.noteBufferedLocked(st)
		st.readN.notify()
	}
	st.releaseLocked() // the last chunk, if n is 0 and it was empty
}

// readLocked copies buffered data to p and returns credit for it.
func (st *stream) readLocked(p []byte) int {
	n := 0
	for i := 0; i < len(st.buf) && n < len(p); i++ {
		c := &st.buf[i]
		k := copy(p[n:], c.b[c.lo:c.hi])
		c.lo += k
		n += k
	}
	st.releaseLocked()
	st.consumedLocked(uint64(n))
	st.s.maybeFinishLocked(st)
	return n
}

// discardLocked drops st's unread data.
func (st *stream) discardLocked() {
	n := st.unreadLocked()
	for i := range st.buf {
		st.buf[i].lo = st.buf[i].hi
	}
	st.releaseLocked()
	st.consumedLocked(n)
}

// releaseLocked returns the chunks at the front of st.buf that hold no
// unread data to the pool, except the last while the reader fills it.
func (st *stream) releaseLocked() {
	i := 0
	for ; i < len(st.buf); i++ {
		c := &st.buf[i]
		if c.lo < c.hi || st.filling && i == len(st.buf)-1 {
			break
		}
		chunkPool.Put(c.b)
	}
	if i == 0 {
		return
	}
	k := copy(st.buf, st.buf[i:])
	clear(st.buf[k:])
	st.buf = st.buf[:k]
}

// appendLocked adds data, received for st, to its buffer (the push
// parser's way: the copy is made under s.mu, from the transport's frame).
func (st *stream) appendLocked(data []byte) {
	for len(data) > 0 {
		k := copy(st.roomLocked(uint64(len(data))), data)
		st.commitLocked(k)
		data = data[k:]
	}
}
