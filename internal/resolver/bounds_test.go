package resolver

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
)

// TestBoundHTTPS answers with 600 ServiceMode records, in reverse priority
// order, the best of them with 40 hints of each family (duplicates
// included) and 50 ALPN IDs: the answer holds the hev3.MaxServices records
// of lowest priority, hev3.MaxHints distinct hints of each family, the
// ALPN IDs the dialer knows and the first others up to MaxALPN, and
// Omitted counts the rest.
func TestBoundHTTPS(t *testing.T) {
	s := dnstest.Start(t)
	var v4s, v6s, alpn []string
	for i := range 40 {
		v4s = append(v4s, fmt.Sprintf("192.0.2.%d", i%35+1))
		v6s = append(v6s, fmt.Sprintf("2001:db8::%x", i+1))
	}
	for i := range 50 {
		alpn = append(alpn, fmt.Sprintf("x%d", i))
	}
	alpn = append(alpn, "h3", "h2", "x1")
	var recs []string
	for i := 600; i >= 2; i-- {
		recs = append(recs, fmt.Sprintf("%d t%d.test. alpn=h2", i, i))
	}
	recs = append(recs, fmt.Sprintf("1 . alpn=%s ipv4hint=%s ipv6hint=%s", strings.Join(alpn, ","), strings.Join(v4s, ","), strings.Join(v6s, ",")))
	s.HTTPS("big.test", recs...)
	r := newResolver(t, Config{}, s.Addr())
	ans := lookup(t, r, "big.test", hev3.HTTPS)
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	if len(ans.Services) != hev3.MaxServices {
		t.Fatalf("%d services, want %d", len(ans.Services), hev3.MaxServices)
	}
	for i, si := range ans.Services {
		if si.Priority != uint16(i+1) {
			t.Fatalf("service %d has priority %d, want %d", i, si.Priority, i+1)
		}
	}
	best := ans.Services[0]
	if len(best.IPv4Hints) != hev3.MaxHints || len(best.IPv6Hints) != hev3.MaxHints {
		t.Errorf("%d and %d hints, want %d of each family", len(best.IPv4Hints), len(best.IPv6Hints), hev3.MaxHints)
	}
	if best.IPv4Hints[0] != netip.MustParseAddr("192.0.2.1") || best.IPv6Hints[hev3.MaxHints-1] != netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", hev3.MaxHints)) {
		t.Errorf("hints %v %v, want the first ones", best.IPv4Hints, best.IPv6Hints)
	}
	wantALPN := []string{"x0", "x1", "x2", "x3", "x4", "h3", "h2", "http/1.1"}
	if !slices.Equal(best.ALPN, wantALPN) {
		t.Errorf("ALPN %q, want %q", best.ALPN, wantALPN)
	}
	// 584 records past the bound; 32 + 32 hints; 53 + 1 ALPN IDs less 8.
	if want := 600 - hev3.MaxServices + (40 - hev3.MaxHints) + (40 - hev3.MaxHints) + (54 - len(wantALPN)); ans.Omitted != want {
		t.Errorf("Omitted = %d, want %d", ans.Omitted, want)
	}
	// The cached answer is the bounded one.
	if again := lookup(t, r, "big.test", hev3.HTTPS); len(again.Services) != hev3.MaxServices || again.Omitted != ans.Omitted {
		t.Errorf("cached: %d services, %d omitted", len(again.Services), again.Omitted)
	}
}

// TestBoundHostsFile bounds a hosts file name with many addresses too.
func TestBoundHostsFile(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "192.0.2.%d many.test\n", i+1)
	}
	path := t.TempDir() + "/hosts"
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, Config{HostsFile: path}, "127.0.0.1:1")
	ans := lookup(t, r, "many.test", hev3.A)
	if len(ans.Addrs) != hev3.MaxAddrs || ans.Omitted != 40-hev3.MaxAddrs {
		t.Errorf("%d addresses, %d omitted; want %d and %d", len(ans.Addrs), ans.Omitted, hev3.MaxAddrs, 40-hev3.MaxAddrs)
	}
}

// TestCacheBytes checks the byte bound: the least recently used entries
// go first when it is passed, and an answer larger than the whole budget
// is not cached.
func TestCacheBytes(t *testing.T) {
	now := time.Unix(1e9, 0)
	later := now.Add(time.Hour)
	one := hev3.Answer{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	size := entrySize(&cacheEntry{key: cacheKey{"a0.test.", hev3.A}, ans: one})
	c := newCache(1000, 3*size)
	for i := range 5 {
		c.put(cacheKey{fmt.Sprintf("a%d.test.", i), hev3.A}, one, Records{}, now, later)
		if c.size() > 3*size {
			t.Fatalf("after %d entries: %d bytes, bound %d", i+1, c.size(), 3*size)
		}
	}
	if c.len() != 3 || c.size() != 3*size {
		t.Errorf("%d entries, %d bytes; want 3 and %d", c.len(), c.size(), 3*size)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, _, ok := c.get(cacheKey{fmt.Sprintf("a%d.test.", i), hev3.A}, now, false); ok != want {
			t.Errorf("a%d cached: %v, want %v", i, ok, want)
		}
	}
	// Replacing an entry does not count it twice.
	c.put(cacheKey{"a4.test.", hev3.A}, one, Records{}, now, later)
	if c.len() != 3 || c.size() != 3*size {
		t.Errorf("after a replacement: %d entries, %d bytes", c.len(), c.size())
	}
	// An answer with a 64 KiB ECH configuration is larger than the budget.
	big := hev3.Answer{Services: []hev3.ServiceInfo{{Priority: 1, ALPN: []string{"h2"}, ECH: make([]byte, 64<<10)}}}
	c.put(cacheKey{"big.test.", hev3.HTTPS}, big, Records{}, now, later)
	if _, _, ok := c.get(cacheKey{"big.test.", hev3.HTTPS}, now, false); ok || c.len() != 3 {
		t.Errorf("an answer over the byte budget was cached (%d entries)", c.len())
	}

	// The default budget holds the default number of ordinary entries,
	// and far fewer entries of the largest kind.
	c = newCache(DefaultMaxCacheEntries, DefaultMaxCacheBytes)
	for i := range DefaultMaxCacheEntries {
		c.put(cacheKey{fmt.Sprintf("host%d.example.com.", i), hev3.AAAA}, hev3.Answer{Addrs: make([]netip.Addr, 4)}, Records{}, now, later)
	}
	if c.len() != DefaultMaxCacheEntries {
		t.Errorf("%d ordinary entries cached, want %d (%d bytes)", c.len(), DefaultMaxCacheEntries, c.size())
	}
	t.Logf("%d ordinary entries: %d bytes", c.len(), c.size())
	huge := hev3.Answer{Services: make([]hev3.ServiceInfo, hev3.MaxServices)}
	for i := range huge.Services {
		huge.Services[i] = hev3.ServiceInfo{Priority: 1, ALPN: []string{"h3", "h2"}, ECH: make([]byte, 4000),
			IPv4Hints: make([]netip.Addr, hev3.MaxHints), IPv6Hints: make([]netip.Addr, hev3.MaxHints)}
	}
	for i := range DefaultMaxCacheEntries {
		c.put(cacheKey{fmt.Sprintf("huge%d.example.com.", i), hev3.HTTPS}, huge, Records{}, now, later)
	}
	if c.size() > DefaultMaxCacheBytes {
		t.Errorf("%d bytes, bound %d", c.size(), DefaultMaxCacheBytes)
	}
	t.Logf("largest entries: %d cached, %d bytes", c.len(), c.size())
}
