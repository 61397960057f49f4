package hev3

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestRandomRaces drives many seeded random races and checks the
// invariants every race must keep, whatever the inputs.
func TestRandomRaces(t *testing.T) {
	for seed := range uint64(3000) {
		rnd := rand.New(rand.NewPCG(seed, 0x4865763))
		if err := randomRace(rnd); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

type simAttempt struct {
	start time.Time
	end   time.Time // slot end, for FuzzBounds
	fam   Family
	state attemptState // as the driver knows it
	proto Proto
	ep    Endpoint
}

// randomRace runs one race with random config and inputs, then settles
// everything so that the race must end.
func randomRace(rnd *rand.Rand) error {
	pool := parseAddrs(v6, v6b, v6c, v4, v4b, v4c)
	pick := func(n int) []netip.Addr {
		var out []netip.Addr
		for range rnd.IntN(n + 1) {
			out = append(out, pool[rnd.IntN(len(pool))])
		}
		return out
	}
	alpns := []string{"h3", "h2", "http/1.1", "h3-29"}
	targets := []string{"", ".", "example.com", "svc1.example.com", "svc2.example.com."}

	cfg := Config{
		Host:         "example.com",
		Port:         443,
		Prefer:       Family(rnd.IntN(2)),
		OnlyFamily:   rnd.IntN(5) == 0,
		Only:         Family(rnd.IntN(2)),
		Versions:     Versions(rnd.IntN(8)),
		KnownH3:      rnd.IntN(2) == 0,
		NoHTTPS:      rnd.IntN(5) == 0,
		Need:         Need(rnd.IntN(3)),
		AttemptDelay: time.Duration(rnd.IntN(300)) * ms,
	}
	if rnd.IntN(8) == 0 {
		cfg.Literal = pool[rnd.IntN(len(pool))]
	}
	// Issue 16 inputs.
	cfg.Connectivity = Families(rnd.IntN(4))
	cfg.ResolutionDelaySet = rnd.IntN(4) == 0
	if rnd.IntN(3) == 0 {
		cfg.Shuffle = rnd.Shuffle
	}
	cfg.LocalAddrs = fuzzLocal[rnd.IntN(len(fuzzLocal))]
	for f := range cfg.RTT {
		if rnd.IntN(2) == 0 {
			cfg.RTT[f] = time.Duration(rnd.IntN(400)) * ms
		}
	}
	if rnd.IntN(2) == 0 { // what the caller learned on this network
		h := &fakeHistory{broken: map[pathOf]bool{}, rtt: map[pathOf]time.Duration{}, quicWorks: rnd.IntN(2) == 0}
		for _, p := range []pathOf{v6TCP, v6QUIC, v4TCP, v4QUIC} {
			h.broken[p] = rnd.IntN(3) == 0
			if rnd.IntN(2) == 0 {
				h.rtt[p] = time.Duration(rnd.IntN(400)) * ms
			}
		}
		cfg.History = h
	}
	versions := cfg.Versions
	if versions == 0 {
		versions = AllVersions
	}

	now := base
	m := New(cfg, now)
	nextID := 0
	queries := map[int]bool{} // id -> outstanding
	var attempts []*simAttempt
	tried := map[endpointKey]bool{}
	cancelledIDs := map[int]bool{}
	var wake, lastStart time.Time
	ended := false
	var trace []string

	poll := func() error {
		acts, w := m.Poll(now)
		for _, a := range acts {
			trace = append(trace, fmt.Sprintf("%v %s", now.Sub(base), describe(a)))
			if ended {
				return fmt.Errorf("action after the end: %s", describe(a))
			}
			switch a := a.(type) {
			case StartQuery:
				if a.ID != nextID {
					return fmt.Errorf("query id %d, want %d", a.ID, nextID)
				}
				nextID++
				queries[a.ID] = true
			case StartAttempt:
				if a.ID != nextID {
					return fmt.Errorf("attempt id %d, want %d", a.ID, nextID)
				}
				nextID++
				k := keyOf(a.Endpoint)
				if tried[k] {
					return fmt.Errorf("endpoint %+v attempted twice", a.Endpoint)
				}
				tried[k] = true
				for id, b := range attempts {
					if b != nil && b.state.live() && now.Before(b.end) {
						return fmt.Errorf("attempt %d started %v after live attempt %d", a.ID, now.Sub(b.start), id)
					}
				}
				if !lastStart.IsZero() && now.Sub(lastStart) < MinAttemptDelay {
					return fmt.Errorf("attempt %d started %v after the previous one", a.ID, now.Sub(lastStart))
				}
				lastStart = now
				p := a.Endpoint.Proto
				if cfg.Need == NeedWebTransport && (p == ProtoH1 || p == ProtoH2OrH1) {
					return fmt.Errorf("WebTransport attempt with %v", p)
				}
				if p == ProtoH3 && !versions.Has(H3) {
					return fmt.Errorf("QUIC attempt without H3")
				}
				if cfg.OnlyFamily && FamilyOf(a.Endpoint.Addr.Addr()) != cfg.Only {
					return fmt.Errorf("attempt on excluded family")
				}
				for len(attempts) < a.ID {
					attempts = append(attempts, nil)
				}
				f := FamilyOf(a.Endpoint.Addr.Addr())
				attempts = append(attempts, &simAttempt{start: now, end: now.Add(fuzzDelay(cfg, a.Endpoint)), fam: f, proto: p, ep: a.Endpoint})
			case Cancel:
				b := attemptAt(attempts, a.ID)
				if b == nil || !b.state.live() || cancelledIDs[a.ID] {
					return fmt.Errorf("cancel of attempt %d that is not live", a.ID)
				}
				cancelledIDs[a.ID] = true
				b.state = cancelled
				if a.Reason == Incapable {
					b.state = incapable
				}
			case Succeed:
				b := attemptAt(attempts, a.ID)
				if b == nil || !b.state.live() {
					return fmt.Errorf("succeed of attempt %d that is not live", a.ID)
				}
				for id, c := range attempts {
					if c != nil && c != b && c.state.live() {
						return fmt.Errorf("succeed %d with attempt %d still live", a.ID, id)
					}
				}
				ended = true
			case Fail:
				for id, c := range attempts {
					if c != nil && c.state.live() {
						return fmt.Errorf("fail with attempt %d still live", id)
					}
				}
				ended = true
			}
		}
		if ended != m.Done() {
			return fmt.Errorf("Done() = %v after %v", m.Done(), describeAll(acts))
		}
		if !w.IsZero() && (ended || !w.After(now)) {
			return fmt.Errorf("bad wake %v at %v (ended %v)", w.Sub(base), now.Sub(base), ended)
		}
		if !ended && len(acts) == 0 && w.IsZero() {
			// Stalled: only an outstanding query or a live attempt
			// may be what the machine waits for.
			waiting := false
			for _, out := range queries {
				waiting = waiting || out
			}
			for _, b := range attempts {
				waiting = waiting || (b != nil && b.state.live())
			}
			if !waiting {
				return fmt.Errorf("stalled with nothing outstanding")
			}
		}
		wake = w
		return nil
	}

	randomAnswer := func(typ RecordType) Answer {
		switch rnd.IntN(6) {
		case 0:
			return Answer{Err: errTest}
		case 1:
			return Answer{}
		}
		if typ != HTTPS {
			return Answer{Addrs: pick(3)}
		}
		var recs []ServiceInfo
		for range rnd.IntN(3) + 1 {
			s := ServiceInfo{Priority: uint16(rnd.IntN(3) + 1), Target: targets[rnd.IntN(len(targets))]}
			for _, a := range alpns {
				if rnd.IntN(2) == 0 {
					s.ALPN = append(s.ALPN, a)
				}
			}
			if rnd.IntN(3) == 0 {
				s.Port = 8443
			}
			if rnd.IntN(4) == 0 {
				s.ECH = []byte("E")
			}
			for _, a := range pick(2) {
				if a.Is4() {
					s.IPv4Hints = append(s.IPv4Hints, a)
				} else {
					s.IPv6Hints = append(s.IPv6Hints, a)
				}
			}
			recs = append(recs, s)
		}
		return Answer{Services: recs}
	}

	answerQuery := func(id int) {
		queries[id] = false
		q, _ := m.Query(id)
		m.OnDNS(now, id, randomAnswer(q.Type))
	}

	liveIDs := func() []int {
		var ids []int
		for id, b := range attempts {
			if b != nil && b.state.live() {
				ids = append(ids, id)
			}
		}
		return ids
	}

	// Report fails a live attempt, connects it or sends its SETTINGS.
	report := func(id int, settle bool) {
		b := attempts[id]
		if settle || rnd.IntN(3) == 0 {
			b.state = failed
			m.OnFailed(now, id, errTest)
			return
		}
		if rnd.IntN(3) == 0 {
			// Progress: the slot may grow, never past the cap.
			end := now.Add(fuzzDelay(cfg, b.ep))
			if cap := b.start.Add(MaxAttemptDelay); end.After(cap) {
				end = cap
			}
			if end.After(b.end) {
				b.end = end
			}
			m.OnProgress(now, id)
			return
		}
		if b.state == connecting {
			v := []Version{H1, H2, H3}[rnd.IntN(3)]
			m.OnConnected(now, id, v)
			b.state = awaitingSettings // a guess; a win or cancel shows in Poll
			return
		}
		m.OnSettings(now, id, Settings{rnd.IntN(2) == 0, rnd.IntN(2) == 0, rnd.IntN(2) == 0})
	}

	if err := poll(); err != nil {
		return fmt.Errorf("%v\n%v", err, trace)
	}
	for step := 0; step < 40 && !ended; step++ {
		switch rnd.IntN(10) {
		case 0, 1, 2:
			var out []int
			for id, o := range queries {
				if o {
					out = append(out, id)
				}
			}
			if len(out) > 0 {
				answerQuery(minInt(out))
			}
		case 3, 4, 5:
			if ids := liveIDs(); len(ids) > 0 {
				report(ids[rnd.IntN(len(ids))], false)
			}
		case 6, 7:
			if !wake.IsZero() {
				now = wake
			} else {
				now = now.Add(time.Duration(rnd.IntN(100)) * ms)
			}
		case 8:
			id := rnd.IntN(nextID + 2)
			m.OnDNS(now, id, randomAnswer(AAAA))
			m.OnConnected(now, id, H2)
			m.OnSettings(now, id, Settings{true, true, true})
		case 9:
			if rnd.IntN(10) == 0 {
				m.Abort(now)
			}
		}
		if err := poll(); err != nil {
			return fmt.Errorf("%v\n%v", err, trace)
		}
	}
	// Settle: answer every query, fail every attempt, follow timers. The
	// race must end.
	for step := 0; !ended; step++ {
		if step > 1000 {
			return fmt.Errorf("race did not end\n%v", trace)
		}
		progressed := false
		for id, o := range queries {
			if o {
				answerQuery(id)
				progressed = true
			}
		}
		for _, id := range liveIDs() {
			report(id, true)
			progressed = true
		}
		if !progressed && !wake.IsZero() {
			now = wake
		}
		if err := poll(); err != nil {
			return fmt.Errorf("%v\n%v", err, trace)
		}
	}
	// Nothing happens after the end.
	now = now.Add(time.Hour)
	m.OnDNS(now, 0, Answer{})
	m.OnFailed(now, nextID-1, errTest)
	m.Abort(now)
	if acts, w := m.Poll(now); len(acts) > 0 || !w.IsZero() {
		return fmt.Errorf("after the end: %v, %v", describeAll(acts), w)
	}
	return nil
}

func attemptAt(attempts []*simAttempt, id int) *simAttempt {
	if id < 0 || id >= len(attempts) {
		return nil
	}
	return attempts[id]
}

func minInt(s []int) int {
	m := s[0]
	for _, v := range s[1:] {
		m = min(m, v)
	}
	return m
}
