package resolver

import (
	"container/list"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

type cacheKey struct {
	name string // lower case, fully qualified
	typ  hev3.RecordType
}

type cacheEntry struct {
	key     cacheKey
	ans     hev3.Answer
	recs    Records   // the records ans was read from
	stored  time.Time // when recs were received, to count their TTLs down
	expires time.Time // the shortest TTL of the records, CNAMEs and aliases
	size    int       // estimated bytes, see entrySize
}

// cache is a least recently used cache of answers with expiry, bounded in
// entries and in (estimated) bytes: when either bound is passed, the least
// recently used entries go first.
type cache struct {
	mu       sync.Mutex
	max      int // entries
	maxBytes int
	bytes    int // sum of the entries' sizes
	m        map[cacheKey]*list.Element
	lru      list.List // of *cacheEntry, most recently used first
}

func newCache(max, maxBytes int) *cache {
	return &cache{max: max, maxBytes: maxBytes, m: make(map[cacheKey]*list.Element)}
}

// get returns k's answer and, when withRecords is set, its records, their
// TTLs lowered by the time they spent in the cache, unless k's entry
// expired.
func (c *cache) get(k cacheKey, now time.Time, withRecords bool) (hev3.Answer, Records, bool) {
	if c == nil {
		return hev3.Answer{}, Records{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return hev3.Answer{}, Records{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return hev3.Answer{}, Records{}, false
	}
	c.lru.MoveToFront(el)
	if !withRecords {
		return cloneAnswer(e.ans), Records{}, true
	}
	return cloneAnswer(e.ans), e.recs.clone(uint32(max(now.Sub(e.stored), 0) / time.Second)), true
}

// put caches ans and the records it was read from (received at stored)
// for k until expires. An answer larger than the whole byte budget is not
// cached.
func (c *cache) put(k cacheKey, ans hev3.Answer, recs Records, stored, expires time.Time) {
	if c == nil {
		return
	}
	e := &cacheEntry{key: k, ans: cloneAnswer(ans), recs: recs.clone(0), stored: stored, expires: expires}
	e.size = entrySize(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		c.remove(el)
	}
	if e.size > c.maxBytes {
		return
	}
	c.m[k] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.lru.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.m, e.key)
	c.bytes -= e.size
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// size returns the estimated bytes the cache holds.
func (c *cache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Sizes used by entrySize, in bytes.
var (
	addrSize    = int(reflect.TypeFor[netip.Addr]().Size())
	serviceSize = int(reflect.TypeFor[hev3.ServiceInfo]().Size())
	stringSize  = int(reflect.TypeFor[string]().Size())
	// entryOverhead is the entry itself, its list element and its map
	// slot (key and pointer), rounded up for the map's own overhead.
	entryOverhead = int(reflect.TypeFor[cacheEntry]().Size()+reflect.TypeFor[list.Element]().Size()+
		reflect.TypeFor[cacheKey]().Size()) + 64
	// errSize is an error value: an *Error with its strings, or a joined
	// one. It is an estimate; errors are small and bounded by the name.
	errSize = 128
)

// entrySize estimates the memory e holds: what its answer's slices and
// strings point to, plus fixed overheads. It is an estimate, not an exact
// count: the bound it serves is about orders of magnitude (an answer of
// 16 records with 64 KiB ECH configurations against one of one address).
func entrySize(e *cacheEntry) int {
	n := entryOverhead + len(e.key.name) + len(e.ans.Addrs)*addrSize + e.recs.size()
	if e.ans.Err != nil {
		n += errSize + len(e.key.name)
	}
	for _, s := range e.ans.Services {
		n += serviceSize + len(s.Target) + len(s.ECH) + (len(s.IPv4Hints)+len(s.IPv6Hints))*addrSize
		for _, id := range s.ALPN {
			n += stringSize + len(id)
		}
	}
	return n
}

// cloneAnswer copies a's slices so that callers cannot change the cache.
func cloneAnswer(a hev3.Answer) hev3.Answer {
	a.Addrs = slices.Clone(a.Addrs)
	if a.Services != nil {
		s := make([]hev3.ServiceInfo, len(a.Services))
		for i, si := range a.Services {
			si.ALPN = slices.Clone(si.ALPN)
			si.IPv4Hints = slices.Clone(si.IPv4Hints)
			si.IPv6Hints = slices.Clone(si.IPv6Hints)
			si.ECH = slices.Clone(si.ECH)
			s[i] = si
		}
		a.Services = s
	}
	return a
}
