package dialer

import (
	"container/list"
	"crypto/tls"
	"encoding/binary"
	"sync"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// Bounds on what a Dialer keeps for TLS session resumption. Chromium keeps
// up to 1000 TLS sessions, two per key; a Dialer serves fewer origins than a
// browser, and every number here bounds what hostile servers can make it
// hold.
const (
	// maxSessionPartitions bounds the partitions (trust and origin) that
	// keep sessions; the least recently used one is dropped first.
	maxSessionPartitions = 256
	// maxSessionsPerCache is how many sessions one partition keeps for
	// TCP+TLS, and as many for QUIC: Chromium's two per key, so that a
	// server that sends two tickets (as OpenSSL does) serves two
	// connections that each use a ticket of their own.
	maxSessionsPerCache = 2
	// maxSessionSize bounds one session as it is stored: its ticket (up
	// to 2^16-1 bytes, RFC 8446 §4.6.1) and its state, certificate chain
	// included. A larger one is not kept.
	maxSessionSize = 64 << 10
	// maxSessionBytes bounds the sessions of a Dialer in all; past it the
	// least recently used partitions are dropped.
	maxSessionBytes = 4 << 20
)

// sessionCaches holds a Dialer's TLS sessions for resumption (RFC 8446
// §2.2), partitioned exactly like its pool: by trust and origin (poolKey),
// so a ticket is never offered under another TLS configuration, to
// another origin or port, or by another Dialer. The zero value is ready.
//
// Each partition is a *sessions; when the dialer's TLS configuration has
// no ClientSessionCache of its own (with one, the caller's cache is used
// and the configuration partitions by identity: see trust), attemptTLS
// installs the partition's tcp or quic cache on each attempt's clone,
// after the trust was computed from the caller's configuration.
type sessionCaches struct {
	mu    sync.Mutex
	parts map[poolKey]*list.Element // of *sessions
	lru   list.List                 // most recently used first
	bytes int                       // sizes of every session kept
}

// sessions is what one partition (a trust and an origin) remembers from
// its TLS handshakes: the sessions of its TCP+TLS connections and of its
// QUIC connections, kept apart as Chromium keeps them (a QUIC ticket holds
// the server's transport parameters, RFC 9000 §7.4.1, and a server may
// accept a ticket only on the transport that issued it), and the server's
// HTTP/3 SETTINGS.
//
// The SETTINGS slot is for 0-RTT: a client that sends requests in 0-RTT
// must use the SETTINGS the server sent on the connection whose ticket it
// resumes (RFC 9114 §7.2.4.2). H3Settings and SetH3Settings read and write
// it; nothing in this file does.
type sessions struct {
	key  poolKey
	tcp  sessionCache
	quic sessionCache
	elem *list.Element // in the owner's lru; nil once dropped

	mu sync.Mutex
	h3 *http3.Settings
	// h3RTT is the smoothed RTT of the connection h3 came from (zerortt.go).
	h3RTT time.Duration
}

// H3Settings returns the HTTP/3 SETTINGS remembered with the partition's
// QUIC sessions (see SetH3Settings), or nil.
func (s *sessions) H3Settings() *http3.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h3
}

// SetH3Settings remembers the SETTINGS a server sent on a QUIC connection
// of this partition, for 0-RTT on a later one (RFC 9114 §7.2.4.2); nil
// forgets them. The caller must not change st afterwards.
func (s *sessions) SetH3Settings(st *http3.Settings) {
	s.mu.Lock()
	s.h3 = st
	s.mu.Unlock()
}

// get returns the sessions of partition key, creating it (and dropping
// the least recently used partition past maxSessionPartitions), and marks
// it used.
func (c *sessionCaches) get(key poolKey) *sessions {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.parts[key]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*sessions)
	}
	if c.parts == nil {
		c.parts = make(map[poolKey]*list.Element)
	}
	s := &sessions{key: key}
	s.tcp.owner, s.quic.owner = c, c
	s.tcp.part, s.quic.part = s, s
	s.elem = c.lru.PushFront(s)
	c.parts[key] = s.elem
	for c.lru.Len() > maxSessionPartitions {
		c.dropLocked(c.lru.Back().Value.(*sessions))
	}
	return s
}

// len returns the number of partitions and the bytes of their sessions.
func (c *sessionCaches) len() (parts, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// dropLocked forgets partition s and its sessions.
func (c *sessionCaches) dropLocked(s *sessions) {
	if s.elem == nil {
		return
	}
	c.lru.Remove(s.elem)
	delete(c.parts, s.key)
	s.elem = nil
	c.bytes -= s.tcp.clearLocked() + s.quic.clearLocked()
}

// A sessionCache is a tls.ClientSessionCache of one partition and one
// transport. Like Chromium's and Firefox's, it hands out a TLS 1.3 session
// once (RFC 8446 §C.4: a ticket reused across connections links them);
// the server sends fresh tickets on each connection. A TLS 1.2 session
// (RFC 5077) stays until replaced. Its lock is its owner's.
type sessionCache struct {
	owner *sessionCaches
	part  *sessions
	kept  []keptSession // newest last; at most maxSessionsPerCache
}

// keptSession is one session and what the cache knows of it.
type keptSession struct {
	key  string // crypto/tls's cache key: ServerName, or the address
	cs   *tls.ClientSessionState
	size int
	once bool // TLS 1.3: handed out once
}

// Get returns the newest session for key, removing it when it is single
// use. Implements tls.ClientSessionCache.
func (sc *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	c := sc.owner
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(sc.kept) - 1; i >= 0; i-- {
		k := sc.kept[i]
		if k.key != key {
			continue
		}
		if k.once {
			sc.kept = append(sc.kept[:i], sc.kept[i+1:]...)
			c.bytes -= k.size
		}
		if sc.part.elem != nil {
			c.lru.MoveToFront(sc.part.elem)
		}
		return k.cs, true
	}
	return nil, false
}

// Put keeps cs for key, dropping the oldest session past the bound; a nil
// cs removes key's sessions (crypto/tls does so when one failed).
// Implements tls.ClientSessionCache.
func (sc *sessionCache) Put(key string, cs *tls.ClientSessionState) {
	c := sc.owner
	if cs == nil {
		c.mu.Lock()
		sc.removeLocked(key)
		c.mu.Unlock()
		return
	}
	k, ok := measure(key, cs)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc.part.elem == nil {
		return // the partition was dropped while its handshake ran
	}
	if !k.once {
		sc.removeLocked(key) // a TLS 1.2 session replaces the one before
	}
	sc.kept = append(sc.kept, k)
	c.bytes += k.size
	if len(sc.kept) > maxSessionsPerCache {
		c.bytes -= sc.kept[0].size
		sc.kept = append(sc.kept[:0], sc.kept[1:]...)
	}
	c.lru.MoveToFront(sc.part.elem)
	for c.bytes > maxSessionBytes && c.lru.Len() > 1 {
		c.dropLocked(c.lru.Back().Value.(*sessions))
	}
}

// removeLocked removes key's sessions.
func (sc *sessionCache) removeLocked(key string) {
	kept := sc.kept[:0]
	for _, k := range sc.kept {
		if k.key == key {
			sc.owner.bytes -= k.size
			continue
		}
		kept = append(kept, k)
	}
	clear(sc.kept[len(kept):])
	sc.kept = kept
}

// clearLocked removes every session and returns their size.
func (sc *sessionCache) clearLocked() int {
	n := 0
	for _, k := range sc.kept {
		n += k.size
	}
	sc.kept = nil
	return n
}

// measure returns cs as the cache keeps it: its size (ticket and encoded
// state) and whether it is TLS 1.3; ok is false for a session past
// maxSessionSize or one that does not encode.
func measure(key string, cs *tls.ClientSessionState) (keptSession, bool) {
	ticket, state, err := cs.ResumptionState()
	if err != nil || state == nil {
		return keptSession{}, false
	}
	b, err := state.Bytes()
	if err != nil || len(b) < 2 {
		return keptSession{}, false
	}
	size := len(key) + len(ticket) + len(b)
	if size > maxSessionSize {
		return keptSession{}, false
	}
	// The encoded state starts with the protocol version (crypto/tls's
	// SessionState.Bytes).
	v := binary.BigEndian.Uint16(b)
	return keptSession{key: key, cs: cs, size: size, once: v >= tls.VersionTLS13}, true
}

// tlsSessions returns the session cache of partition s for attempts under
// conf, over QUIC or TCP+TLS: nil when s is nil or the configuration
// brings its own cache or disables tickets.
func tlsSessions(conf *tls.Config, s *sessions, quic bool) tls.ClientSessionCache {
	if s == nil || conf.ClientSessionCache != nil || conf.SessionTicketsDisabled {
		return nil
	}
	if quic {
		return &s.quic
	}
	return &s.tcp
}
