package dialer

import (
	"fmt"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

func report(attempts ...Attempt) *Report { return &Report{Attempts: attempts, Winner: -1} }

// TestCapsLearn: what a race shows changes the next race of the origin,
// until it expires.
func TestCapsLearn(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &caps{now: func() time.Time { return now }}
	all := hev3.AllVersions
	key := poolKey{origin: "x.test:443"}

	apply := func(key poolKey, need hev3.Need, v hev3.Versions, k bool) (hev3.Versions, bool) {
		h := c.apply(key, need, raceHints{versions: v, knownH3: k})
		return h.versions, h.knownH3
	}
	if v, k := apply(key, hev3.NeedWebSocket, all, false); v != all || k {
		t.Fatalf("unknown origin changed: %v %v", v, k)
	}
	// h3 won: QUIC is tried next time even without an HTTPS record.
	c.learn(key, hev3.NeedWebSocket, report(Attempt{Proto: "h3", Version: "h3", Connected: 1, Outcome: "won"}))
	if _, k := apply(key, hev3.NeedWebSocket, all, false); !k {
		t.Error("h3 success not remembered")
	}
	// QUIC hung while TCP, started after it, got through: h3 is skipped
	// for 5 minutes.
	c.learn(key, hev3.NeedWebSocket, report(
		Attempt{Proto: "h3", Outcome: "lost"},
		Attempt{Proto: "h2,h1", Version: "h2", Start: 250, Connected: 260, Outcome: "won"},
	))
	if v, k := apply(key, hev3.NeedWebSocket, all, true); v.Has(hev3.H3) || k {
		t.Errorf("broken h3 not skipped: %v %v", v, k)
	}
	// h2 without extended CONNECT: WebSocket goes to h1; other needs not.
	c.learn(key, hev3.NeedWebSocket, report(Attempt{Proto: "h2,h1", Version: "h2", Connected: 1, Outcome: "incapable"}))
	if v, _ := apply(key, hev3.NeedWebSocket, all, false); v.Has(hev3.H2) || !v.Has(hev3.H1) {
		t.Errorf("h2 without extended CONNECT still tried for WebSocket: %v", v)
	}
	if v, _ := apply(key, hev3.NeedTransport, all, false); !v.Has(hev3.H2) {
		t.Errorf("h2 dropped for plain HTTP: %v", v)
	}
	now = now.Add(capsBadFor + time.Second)
	if v, k := apply(key, hev3.NeedWebSocket, all, false); v != all || k {
		t.Errorf("failures did not expire: %v %v", v, k)
	}
	// A QUIC attempt that started after TCP and lost says nothing.
	c.learn(poolKey{origin: "z.test:443"}, hev3.NeedWebSocket, report(
		Attempt{Proto: "h2,h1", Version: "h2", Connected: 5, Outcome: "won"},
		Attempt{Proto: "h3", Start: 3, Outcome: "lost"},
	))
	if v, _ := apply(poolKey{origin: "z.test:443"}, hev3.NeedWebSocket, all, false); !v.Has(hev3.H3) {
		t.Error("h3 marked broken by a QUIC attempt that started after TCP")
	}
	// A QUIC failure while nothing else worked says nothing about UDP.
	c.learn(poolKey{origin: "y.test:443"}, hev3.NeedWebSocket, report(Attempt{Proto: "h3", Outcome: "failed"}, Attempt{Proto: "h2,h1", Outcome: "failed"}))
	if v, _ := apply(poolKey{origin: "y.test:443"}, hev3.NeedWebSocket, all, false); !v.Has(hev3.H3) {
		t.Error("h3 marked broken although TCP failed too")
	}
}

// TestCapsBounded: the cache never holds more than maxCapsEntries origins.
func TestCapsBounded(t *testing.T) {
	c := &caps{}
	for i := range maxCapsEntries + 50 {
		c.forget(poolKey{origin: fmt.Sprintf("o%d.test:443", i)}, hev3.H3)
	}
	if n := len(c.origins); n != maxCapsEntries {
		t.Errorf("%d entries, want %d", n, maxCapsEntries)
	}
}
