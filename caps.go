package dialer

import (
	"net/netip"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// How long the capability cache trusts what it learned. Failures expire
// sooner so that a repaired network or server is noticed.
const (
	capsGoodFor = time.Hour
	capsBadFor  = 5 * time.Minute
	// maxCapsEntries bounds the cache; the oldest entry goes first.
	maxCapsEntries = 1024
)

// caps remembers per origin and trust what worked and what did not, so
// that the next dial goes straight to a working protocol and skips a
// broken one. What was learned under one trust (an Alt-Svc header, a
// working h3) does not steer dials under another.
type caps struct {
	mu      sync.Mutex
	origins map[poolKey]*originCaps
	now     func() time.Time
}

// originCaps is what one origin showed. A zero time means unknown.
type originCaps struct {
	updated time.Time
	h3Good  time.Time // until: QUIC and (for sessions) its SETTINGS worked
	h3Bad   time.Time // until: QUIC failed while TCP worked, or h3 lacked the capability
	h2NoExt time.Time // until: h2 lacked extended CONNECT: WebSocket goes to h1
	h1Only  time.Time // until: an HTTP race to the origin ended on HTTP/1.1
	// altH3 is until when an Alt-Svc header advertised h3, on altPort.
	altH3   time.Time
	altPort uint16
	// bad maps addresses whose connection broke before its first
	// response to when that stops counting.
	bad map[netip.AddrPort]time.Time
}

// raceHints is what the cache says about an origin's next race.
type raceHints struct {
	versions hev3.Versions
	knownH3  bool
	h3Port   uint16           // 0: the origin's port
	avoid    []netip.AddrPort // addresses to try last
}

// clock returns the cache's time: c.now for tests, else the time.
func (c *caps) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// apply adjusts a race for origin key: drops versions known not to work and
// adds QUIC when it is known to.
func (c *caps) apply(key poolKey, need hev3.Need, h raceHints) raceHints {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.origins[key]
	if o == nil {
		return h
	}
	now := c.clock()
	switch {
	case now.Before(o.h3Bad):
		h.versions &^= hev3.Versions(hev3.H3)
		h.knownH3 = false
	case now.Before(o.h3Good):
		h.knownH3 = true
	case now.Before(o.altH3):
		h.knownH3, h.h3Port = true, o.altPort
	}
	if need == hev3.NeedWebSocket && now.Before(o.h2NoExt) {
		h.versions &^= hev3.Versions(hev3.H2)
	}
	for a, until := range o.bad {
		if now.Before(until) {
			h.avoid = append(h.avoid, a)
		}
	}
	return h
}

// avoid records that a connection to addr broke before its first response.
func (c *caps) avoid(key poolKey, addr netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	o := c.entryLocked(key, now)
	if o.bad == nil {
		o.bad = make(map[netip.AddrPort]time.Time)
	}
	for a, until := range o.bad {
		if !now.Before(until) {
			delete(o.bad, a)
		}
	}
	if len(o.bad) < 16 {
		o.bad[addr] = now.Add(capsBadFor)
	}
}

// h1Only reports whether origin key's TLS chose http/1.1 when offered h2.
func (c *caps) h1Only(key poolKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.origins[key]
	return o != nil && c.clock().Before(o.h1Only)
}

// markH1Only records that origin key answered an HTTP race over HTTP/1.1.
func (c *caps) markH1Only(key poolKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	c.entryLocked(key, now).h1Only = now.Add(capsGoodFor)
}

// altSvc records an Alt-Svc h3 alternative on port for maxAge; maxAge 0
// clears it (Alt-Svc: clear).
func (c *caps) altSvc(key poolKey, port uint16, maxAge time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	o := c.entryLocked(key, now)
	o.altH3, o.altPort = now.Add(min(maxAge, 24*time.Hour)), port
}

// learn records what a race showed about origin key. It reads the typed
// record of each attempt that the race keeps in rep, not its strings.
func (c *caps) learn(key poolKey, need hev3.Need, rep *Report) {
	if rep == nil || len(rep.results) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	o := c.entryLocked(key, now)
	// tcpUp is, per family, when the first TCP attempt over it to
	// connect had started: a QUIC attempt over the same family that
	// started no later and still never heard from the server while TCP
	// got through marks h3 as broken (blocked UDP), as browsers do. TCP
	// over the other family says nothing about h3: a silent QUIC over
	// IPv6 and a TCP success over IPv4 may as well be a broken IPv6, which
	// is the network's to learn, not the origin's (netstate.go).
	tcpUp := [2]time.Duration{-1, -1}
	for _, a := range rep.results {
		f := hev3.FamilyOf(a.addr.Addr())
		if a.connected && !a.proto.QUIC() && (tcpUp[f] < 0 || a.start < tcpUp[f]) {
			tcpUp[f] = a.start
		}
	}
	for _, a := range rep.results {
		silent := a.proto.QUIC() && !a.connected && (a.outcome == outcomeFailed || a.outcome == outcomeLost)
		up := tcpUp[hev3.FamilyOf(a.addr.Addr())]
		switch {
		case a.outcome == outcomeWon && a.version == hev3.H3:
			o.h3Good, o.h3Bad = now.Add(capsGoodFor), time.Time{}
		case a.outcome == outcomeIncapable && a.version == hev3.H3 && need != hev3.NeedWebTransport:
			// (An h3 server without WebTransport may still carry WebSockets.)
			o.h3Bad, o.h3Good = now.Add(capsBadFor), time.Time{}
		case silent && up >= 0 && a.start <= up:
			o.h3Bad, o.h3Good = now.Add(capsBadFor), time.Time{}
		case a.outcome == outcomeIncapable && a.version == hev3.H2 && need == hev3.NeedWebSocket:
			o.h2NoExt = now.Add(capsBadFor)
		}
	}
}

// forget marks version v of origin key as unusable for sessions, after a
// server refused extended CONNECT in a way that blames the protocol.
func (c *caps) forget(key poolKey, v hev3.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	o := c.entryLocked(key, now)
	switch v {
	case hev3.H3:
		o.h3Bad, o.h3Good = now.Add(capsBadFor), time.Time{}
	case hev3.H2:
		o.h2NoExt = now.Add(capsBadFor)
	}
}

// entryLocked returns key's entry, created if needed, marked as updated.
func (c *caps) entryLocked(key poolKey, now time.Time) *originCaps {
	o := c.origins[key]
	if o == nil {
		if c.origins == nil {
			c.origins = make(map[poolKey]*originCaps)
		}
		c.evictLocked()
		o = &originCaps{}
		c.origins[key] = o
	}
	o.updated = now
	return o
}

// evictLocked makes room for one entry.
func (c *caps) evictLocked() {
	if len(c.origins) < maxCapsEntries {
		return
	}
	var (
		oldest poolKey
		t      time.Time
		found  bool
	)
	for k, o := range c.origins {
		if !found || o.updated.Before(t) {
			oldest, t, found = k, o.updated, true
		}
	}
	delete(c.origins, oldest)
}
