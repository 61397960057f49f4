package resolver

import (
	"container/list"
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
	expires time.Time
}

// cache is a bounded, least recently used cache of answers with expiry.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]*list.Element
	lru list.List // of *cacheEntry, most recently used first
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[cacheKey]*list.Element)}
}

func (c *cache) get(k cacheKey, now time.Time) (hev3.Answer, bool) {
	if c == nil {
		return hev3.Answer{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return hev3.Answer{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.m, k)
		return hev3.Answer{}, false
	}
	c.lru.MoveToFront(el)
	return cloneAnswer(e.ans), true
}

func (c *cache) put(k cacheKey, ans hev3.Answer, expires time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cacheEntry{key: k, ans: cloneAnswer(ans), expires: expires}
	if el, ok := c.m[k]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.m[k] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
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
