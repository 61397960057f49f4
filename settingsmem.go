package dialer

import (
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// Bounds on the remembered HTTP/3 SETTINGS. A TLS 1.3 ticket lives at most
// seven days (RFC 8446 §4.6.1), and SETTINGS are only of use with a ticket,
// so they are kept as long; maxRememberedSettings bounds the memory over
// all origins and trusts, the oldest entry going first.
const (
	rememberSettingsFor   = 7 * 24 * time.Hour
	maxRememberedSettings = 1024
)

// settingsMemory remembers, per origin and trust (poolKey), the capability
// bits of the last HTTP/3 SETTINGS the origin's server sent, so that a
// connection resumed with 0-RTT knows before its handshake ends whether it
// may send an extended CONNECT: RFC 9114 §7.2.4.2 lets a client use the
// remembered values until the server's new SETTINGS arrive. The trust in
// the key keeps a value learned under one TLS and resolver configuration
// from steering a dial under another, as the ticket it goes with does.
type settingsMemory struct {
	mu sync.Mutex
	m  map[poolKey]rememberedSettings
}

// rememberedSettings is one origin's SETTINGS and when they arrived.
type rememberedSettings struct {
	s  hev3.Settings
	at time.Time
}

// remember records the SETTINGS an HTTP/3 connection to key received.
func (m *settingsMemory) remember(key poolKey, s hev3.Settings, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[poolKey]rememberedSettings)
	}
	if _, ok := m.m[key]; !ok && len(m.m) >= maxRememberedSettings {
		var oldest poolKey
		first := true
		for k, r := range m.m {
			if first || r.at.Before(m.m[oldest].at) {
				oldest, first = k, false
			}
		}
		delete(m.m, oldest)
	}
	m.m[key] = rememberedSettings{s: s, at: now}
}

// recall returns the SETTINGS remembered for key, if any and not expired.
func (m *settingsMemory) recall(key poolKey, now time.Time) (hev3.Settings, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.m[key]
	if !ok {
		return hev3.Settings{}, false
	}
	if now.Sub(r.at) > rememberSettingsFor {
		delete(m.m, key)
		return hev3.Settings{}, false
	}
	return r.s, true
}

// forget drops what was remembered for key: the server broke the promise
// its SETTINGS made.
func (m *settingsMemory) forget(key poolKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
}

// covers reports whether SETTINGS s keep every capability promised
// had: what a 0-RTT request relied on must still hold (RFC 9114
// §7.2.4.2: a server accepting 0-RTT must not reduce what it remembered).
func covers(s, promised hev3.Settings) bool {
	return (s.ExtendedConnect || !promised.ExtendedConnect) &&
		(s.Datagrams || !promised.Datagrams) &&
		(s.WebTransport || !promised.WebTransport)
}
