package dialer

import (
	"io"
	"sync"
	"time"
)

// DefaultIdleTimeout is how long a pooled HTTP/2 or HTTP/3 connection with
// no session on it stays open for reuse.
const DefaultIdleTimeout = 90 * time.Second

// maxIdleConns bounds the idle connections a Dialer keeps, over all origins
// and trusts, as http.Transport's MaxIdleConns (100) does: dials with
// ever-new TLS configurations (each its own trust) cannot pile up idle
// connections. The connection idle the longest is closed first.
const maxIdleConns = 100

// pool keeps the Dialer's HTTP/2 and HTTP/3 connections, by origin and
// trust (see trust), so that the next session or request to the origin
// under the same trust opens a stream on one instead of dialing (one round
// trip instead of several). A connection is never handed to a dial made
// under another trust.
type pool struct {
	mu    sync.Mutex
	conns map[poolKey][]*pooled
	idle  time.Duration
	idleN int // connections idle (pooled.idle), for trimIdleLocked
}

// pooled is one connection in the pool and the number of sessions on it.
type pooled struct {
	p       *pool
	key     poolKey
	car     *carrier
	streams int
	uses    int  // sessions and requests ever reserved
	retired bool // handed out no more; closed when streams reach 0
	// The idle timer closes the connection once it has been idle (no
	// streams) for the pool's idle time since idleAt. It is armed when the
	// connection becomes idle and not already armed, and not stopped when
	// the connection is taken again: a firing that finds the connection
	// in use, or idle for less than the idle time, re-arms it at most.
	// A connection that carries request after request thus touches no
	// timer for them (a timer reset costs an allocation or a wake-up of
	// the runtime's timer thread each time).
	timer  *time.Timer
	armed  bool      // timer pending
	idle   bool      // streams == 0 and not closed, counted in pool.idleN
	idleAt time.Time // when the connection last became idle
	closed bool
}

// get returns a live connection for key that can carry what ok accepts,
// with a session reserved on it, or nil. Dead connections met on the way
// are closed and dropped.
func (p *pool) get(key poolKey, ok func(*carrier) bool) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns[key] {
		if !pc.car.alive() {
			pc.retireLocked()
			continue
		}
		if pc.retired || !ok(pc.car) || !pc.car.hasRoom(pc.streams) {
			continue
		}
		pc.reserveLocked()
		return pc
	}
	return nil
}

// has reports whether the pool holds a live connection for key that ok
// accepts, full or not.
func (p *pool) has(key poolKey, ok func(*carrier) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns[key] {
		if !pc.retired && pc.car.alive() && ok(pc.car) {
			return true
		}
	}
	return false
}

// add puts car in the pool with one session reserved on it.
func (p *pool) add(key poolKey, car *carrier) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.putLocked(key, car)
	pc.reserveLocked()
	return pc
}

// put puts car in the pool, idle.
func (p *pool) put(key poolKey, car *carrier) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.putLocked(key, car).startIdleLocked()
}

func (p *pool) putLocked(key poolKey, car *carrier) *pooled {
	if p.conns == nil {
		p.conns = make(map[poolKey][]*pooled)
	}
	pc := &pooled{p: p, key: key, car: car}
	p.conns[key] = append(p.conns[key], pc)
	return pc
}

func (pc *pooled) reserveLocked() {
	pc.streams++
	pc.uses++
	pc.stopIdleLocked()
}

// stopIdleLocked marks an idle connection as in use; its timer, if
// armed, stays so (see pooled.timer).
func (pc *pooled) stopIdleLocked() {
	if pc.idle {
		pc.idle = false
		pc.p.idleN--
	}
}

// used reports whether the connection carried something before the
// current reservation.
func (pc *pooled) used() bool {
	pc.p.mu.Lock()
	defer pc.p.mu.Unlock()
	return pc.uses > 1
}

// idleTimeout is how long an unused connection stays pooled.
func (p *pool) idleTimeout() time.Duration {
	if p.idle <= 0 {
		return DefaultIdleTimeout
	}
	return p.idle
}

// release ends one session on the connection; the last one starts the
// idle timer.
func (pc *pooled) release() {
	p := pc.p
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.streams--
	pc.startIdleLocked()
}

// startIdleLocked starts the idle timer of a connection nothing uses, or
// closes it if it is retired.
func (pc *pooled) startIdleLocked() {
	if pc.streams > 0 || pc.closed {
		return
	}
	if pc.retired {
		pc.p.dropLocked(pc)
		return
	}
	if pc.idle {
		return // already counting
	}
	p := pc.p
	pc.idle, pc.idleAt = true, time.Now()
	p.idleN++
	pc.armLocked(p.idleTimeout())
	p.trimIdleLocked()
}

// armLocked makes the idle timer fire after d unless it is armed already.
func (pc *pooled) armLocked(d time.Duration) {
	if pc.armed {
		return
	}
	pc.armed = true
	if pc.timer == nil {
		pc.timer = time.AfterFunc(d, pc.idleExpired)
	} else {
		pc.timer.Reset(d)
	}
}

// idleExpired closes the connection when its idle timer fires, if it has
// been idle for the idle time. One in use is left alone (its release arms
// the timer again); one that was taken and became idle again since the
// timer was armed gets the timer again for what is left of its idle time.
func (pc *pooled) idleExpired() {
	p := pc.p
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.armed = false
	if !pc.idle || pc.closed {
		return
	}
	if left := p.idleTimeout() - time.Since(pc.idleAt); left > 0 {
		pc.armLocked(left)
		return
	}
	p.dropLocked(pc)
}

// trimIdleLocked closes the connections idle the longest while more than
// maxIdleConns are idle.
func (p *pool) trimIdleLocked() {
	for p.idleN > maxIdleConns {
		var oldest *pooled
		for _, list := range p.conns {
			for _, pc := range list {
				if pc.idle && (oldest == nil || pc.idleAt.Before(oldest.idleAt)) {
					oldest = pc
				}
			}
		}
		if oldest == nil {
			return
		}
		p.dropLocked(oldest)
	}
}

// retire stops handing the connection out; it closes once the sessions and
// requests on it have ended. A stream that failed for its own reasons, or
// a connection that takes no new streams (the server sent GOAWAY, RFC 9113
// §6.8, RFC 9114 §5.2), must not take down the WebSockets, sessions and
// responses still running on it; a connection that is really dead ends
// them by itself.
func (pc *pooled) retire() {
	pc.p.mu.Lock()
	defer pc.p.mu.Unlock()
	pc.retireLocked()
}

func (pc *pooled) retireLocked() {
	pc.retired = true
	pc.startIdleLocked()
}

func (p *pool) dropLocked(pc *pooled) {
	if pc.closed {
		return
	}
	pc.stopIdleLocked()
	if pc.timer != nil {
		pc.timer.Stop()
		pc.armed = false
	}
	pc.closed = true
	list := p.conns[pc.key]
	for i, x := range list {
		if x == pc {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.conns, pc.key)
	} else {
		p.conns[pc.key] = list
	}
	pc.car.Close()
}

// closeIdle closes every connection with no session on it.
func (p *pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range p.conns {
		for _, pc := range list {
			if pc.streams == 0 {
				p.dropLocked(pc)
			}
		}
	}
}

// pooledStream is a session's stream on a pooled connection; closing it
// releases the connection.
type pooledStream struct {
	io.ReadWriteCloser
	pc   *pooled
	once sync.Once
}

// drainer is a stream that goes on sending what it wrote behind after
// Close (writeBehind, bodyPipe): sent is closed once it is done.
type drainer interface{ sent() <-chan struct{} }

// Close closes the stream. The connection stays reserved while the stream
// sends what it wrote behind (at most closeDrain): the pool would close it
// under the stream once idle (CloseIdleConnections, a retired connection).
func (s *pooledStream) Close() error {
	err := s.ReadWriteCloser.Close()
	s.once.Do(func() {
		if d, ok := s.ReadWriteCloser.(drainer); ok {
			select {
			case <-d.sent():
			default:
				go func() {
					<-d.sent()
					s.pc.release()
				}()
				return
			}
		}
		s.pc.release()
	})
	return err
}
