package dialer

import (
	"fmt"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// raced returns the Report of a race whose attempts ended as results say,
// as far as learning reads it.
func raced(results ...attemptResult) *Report {
	return &Report{Winner: -1, Attempts: make([]Attempt, len(results)), results: results}
}

// report returns a Report of attempts, with the typed record a race keeps
// beside each (see resultOf).
func report(attempts ...Attempt) *Report {
	r := &Report{Attempts: attempts, Winner: -1}
	for _, a := range attempts {
		r.results = append(r.results, resultOf(a))
	}
	return r
}

// resultOf returns the typed record a race keeps beside attempt a, for
// tests that write attempts as the Report shows them.
func resultOf(a Attempt) attemptResult {
	res := attemptResult{start: a.Start, connected: a.Connected != 0, tcpUp: a.TCP != 0}
	for p := hev3.ProtoH3; p <= hev3.ProtoH1; p++ {
		if p.String() == a.Proto {
			res.proto = p
		}
	}
	if a.Proto == "tcp" {
		res.proto = hev3.ProtoH1
	}
	for _, v := range []hev3.Version{hev3.H1, hev3.H2, hev3.H3} {
		if v.String() == a.Version {
			res.version = v
		}
	}
	for o := outcomePending; o <= outcomeAborted; o++ {
		if o.String() == a.Outcome {
			res.outcome = o
		}
	}
	return res
}

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
	h3 := func(o outcome, start time.Duration) attemptResult {
		return attemptResult{proto: hev3.ProtoH3, start: start, outcome: o}
	}
	connected := func(p hev3.Proto, v hev3.Version, o outcome, start time.Duration) attemptResult {
		return attemptResult{proto: p, version: v, start: start, connected: true, outcome: o}
	}
	if v, k := apply(key, hev3.NeedWebSocket, all, false); v != all || k {
		t.Fatalf("unknown origin changed: %v %v", v, k)
	}
	// h3 won: QUIC is tried next time even without an HTTPS record.
	c.learn(key, hev3.NeedWebSocket, raced(connected(hev3.ProtoH3, hev3.H3, outcomeWon, 0)))
	if _, k := apply(key, hev3.NeedWebSocket, all, false); !k {
		t.Error("h3 success not remembered")
	}
	// QUIC hung while TCP, started after it, got through: h3 is skipped
	// for 5 minutes.
	c.learn(key, hev3.NeedWebSocket, raced(h3(outcomeLost, 0), connected(hev3.ProtoH2OrH1, hev3.H2, outcomeWon, 250)))
	if v, k := apply(key, hev3.NeedWebSocket, all, true); v.Has(hev3.H3) || k {
		t.Errorf("broken h3 not skipped: %v %v", v, k)
	}
	// h2 without extended CONNECT: WebSocket goes to h1; other needs not.
	c.learn(key, hev3.NeedWebSocket, raced(connected(hev3.ProtoH2OrH1, hev3.H2, outcomeIncapable, 0)))
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
	z := poolKey{origin: "z.test:443"}
	c.learn(z, hev3.NeedWebSocket, raced(connected(hev3.ProtoH2OrH1, hev3.H2, outcomeWon, 0), h3(outcomeLost, 3)))
	if v, _ := apply(z, hev3.NeedWebSocket, all, false); !v.Has(hev3.H3) {
		t.Error("h3 marked broken by a QUIC attempt that started after TCP")
	}
	// A QUIC failure while nothing else worked says nothing about UDP.
	y := poolKey{origin: "y.test:443"}
	c.learn(y, hev3.NeedWebSocket, raced(h3(outcomeFailed, 0), attemptResult{proto: hev3.ProtoH2OrH1, outcome: outcomeFailed}))
	if v, _ := apply(y, hev3.NeedWebSocket, all, false); !v.Has(hev3.H3) {
		t.Error("h3 marked broken although TCP failed too")
	}
	// An h3 without WebTransport may still carry WebSockets.
	w := poolKey{origin: "w.test:443"}
	c.learn(w, hev3.NeedWebTransport, raced(connected(hev3.ProtoH3, hev3.H3, outcomeIncapable, 0)))
	if v, _ := apply(w, hev3.NeedWebSocket, all, false); !v.Has(hev3.H3) {
		t.Error("h3 marked broken for WebSockets by a WebTransport race")
	}
	c.learn(w, hev3.NeedWebSocket, raced(connected(hev3.ProtoH3, hev3.H3, outcomeIncapable, 0)))
	if v, _ := apply(w, hev3.NeedWebSocket, all, false); v.Has(hev3.H3) {
		t.Error("h3 without extended CONNECT still tried for WebSocket")
	}
}

// TestCapsLearnReadsResults: learning reads the typed records of a race,
// not the Report's strings, which are for people.
func TestCapsLearnReadsResults(t *testing.T) {
	c := &caps{}
	key := poolKey{origin: "x.test:443"}
	rep := raced(attemptResult{proto: hev3.ProtoH3, version: hev3.H3, connected: true, outcome: outcomeWon})
	rep.Attempts[0] = Attempt{Proto: "h2", Version: "h2", Outcome: "failed"} // strings say otherwise
	c.learn(key, hev3.NeedWebSocket, rep)
	if h := c.apply(key, hev3.NeedWebSocket, raceHints{versions: hev3.AllVersions}); !h.knownH3 {
		t.Error("the h3 winner of the typed records was not learned")
	}
	// A Report without records (built by hand, or decoded from JSON)
	// teaches nothing.
	c.learn(poolKey{origin: "y.test:443"}, hev3.NeedWebSocket, report())
	c.learn(poolKey{origin: "y.test:443"}, hev3.NeedWebSocket, &Report{Attempts: []Attempt{{Proto: "h3", Version: "h3", Outcome: "won"}}})
	if len(c.origins) != 1 {
		t.Errorf("%d origins learned, want 1", len(c.origins))
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

// TestCapsSilentQUICOtherFamily (issue 16): a silent QUIC attempt over
// IPv6 and a TCP success over IPv4 do not mark h3 broken for the origin:
// IPv6 may be what is broken, which the Dialer learns per network
// (netstate.go). The same silence with TCP over IPv6 getting through does.
func TestCapsSilentQUICOtherFamily(t *testing.T) {
	now := time.Unix(1000, 0)
	key := poolKey{origin: "x.test:443"}
	quic6 := attemptResult{addr: v6, proto: hev3.ProtoH3, start: 0, end: 250 * time.Millisecond, outcome: outcomeLost}
	tcp4 := attemptResult{addr: v4, proto: hev3.ProtoH2OrH1, version: hev3.H2, start: 250 * time.Millisecond, connected: true, outcome: outcomeWon}
	tcp6 := tcp4
	tcp6.addr = v6
	for _, tc := range []struct {
		name   string
		tcp    attemptResult
		broken bool
	}{
		{"TCP over IPv4", tcp4, false},
		{"TCP over IPv6", tcp6, true},
	} {
		c := &caps{now: func() time.Time { return now }}
		c.learn(key, hev3.NeedWebSocket, raced(quic6, tc.tcp))
		h := c.apply(key, hev3.NeedWebSocket, raceHints{versions: hev3.AllVersions, knownH3: true})
		if broken := !h.versions.Has(hev3.H3); broken != tc.broken {
			t.Errorf("silent QUIC over IPv6, %s: h3 broken for the origin %v, want %v", tc.name, broken, tc.broken)
		}
	}
}
