package hev3

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzBounds decodes the fuzz input into a race configuration and a
// sequence of inputs (DNS answers with up to thousands of records, hints
// and addresses, AliasMode records, attempt results, the passing of time),
// feeds them to a Machine and checks the bounds of bounds.go after every
// step: the queries sent and in flight, the endpoints known, the attempts
// made and live, the spacing of attempts (each live attempt's slot, RTT
// derived and extended by progress, and MinAttemptDelay between any two
// starts), and the work of each step (a Poll without input rebuilds
// nothing; no step takes long). The race is then settled and must end.
func FuzzBounds(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := fuzzRace(data); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzStepTime bounds the wall time of one input or Poll. A bounded step
// takes microseconds to a millisecond (1,024 records of 32 hints each); one
// that looks at every endpoint of an unbounded answer took 10 ms to a
// second before the bounds. The margin absorbs a loaded machine.
const fuzzStepTime = 500 * time.Millisecond

// Input format, byte by byte (a missing byte reads as 0):
//
//	config: 6 bytes (see fuzzConfig)
//	then up to fuzzMaxOps operations, each an op byte and its arguments:
//	  0, 1: answer an outstanding query: pick, then an answer spec
//	  2:    the clock moves: n, by n*4 ms
//	  3:    an attempt connects: pick, version
//	  4:    an attempt fails: pick
//	  5:    an attempt's SETTINGS: pick, bits
//	  6:    inputs with IDs the machine never issued
//	  7:    Abort if the next byte is 0xff
//	  8:    an attempt makes progress: pick
//
// An answer spec for A or AAAA is mode (0 error, 1 NODATA, 2-3 addresses),
// count (2 bytes) and pattern; for HTTPS it is mode, record count (2
// bytes), pattern, hints per family and record (2 bytes) and ALPN byte.
const fuzzMaxOps = 300

type fuzzReader struct {
	b []byte
}

func (r *fuzzReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) u16() int { return int(r.next())<<8 | int(r.next()) }

func (r *fuzzReader) done() bool { return len(r.b) == 0 }

// fuzzAddr returns the i-th address of a generated list: pattern bits 0-1
// choose the family (IPv6, IPv4, alternating, IPv4-mapped IPv6 every third),
// bit 2 repeats every third address, bit 3 puts an invalid one every fifth.
func fuzzAddr(i int, pattern byte) netip.Addr {
	if pattern&8 != 0 && i%5 == 4 {
		return netip.Addr{}
	}
	if pattern&4 != 0 {
		i -= i % 3
	}
	v4 := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	switch pattern & 3 {
	case 1:
		return v4
	case 2:
		if i%2 == 0 {
			return v4
		}
	case 3:
		if i%3 == 0 {
			return netip.AddrFrom16(v4.As16())
		}
	}
	return v6
}

func fuzzAddrs(n int, pattern byte) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = fuzzAddr(i, pattern)
	}
	return out
}

// fuzzLocal are the host address sets fuzzConfig chooses from.
var fuzzLocal = [][]netip.Addr{
	nil,
	parseAddrs("198.18.0.200", "127.0.0.1"),
	parseAddrs("fe80::1", "198.18.0.200", "::1", "127.0.0.1"),
	parseAddrs("2001:db8::ff", "fd00::1", "198.18.0.200", "::", "ff02::1"),
}

// fuzzConfig decodes 6 bytes into a race configuration.
func fuzzConfig(r *fuzzReader) Config {
	b0, b1, b2, b3, b4, b5 := r.next(), r.next(), r.next(), r.next(), r.next(), r.next()
	cfg := Config{
		Host:           "example.com",
		Port:           443,
		OnlyFamily:     b0&2 != 0,
		KnownH3:        b0&8 != 0,
		NoHTTPS:        b0&16 != 0,
		Need:           Need(b0 >> 5 & 3),
		Versions:       Versions(b1 & 7),
		MaxLive:        int(b1>>3) % 10,
		MaxLiveQueries: int(b2) % 10,
		AttemptDelay:   time.Duration(b3) * 2 * ms,
	}
	if b0&1 != 0 {
		cfg.Prefer = IPv4
	}
	if b0&4 != 0 {
		cfg.Only = IPv4
	}
	if b0&128 != 0 && b2&128 != 0 {
		cfg.Literal = fuzzAddr(int(b3), b2&3)
	}
	if b3&1 != 0 {
		cfg.H3Port = 8443
	}
	for i := range int(b2>>4) % 4 {
		cfg.Avoid = append(cfg.Avoid, netip.AddrPortFrom(fuzzAddr(i, b2>>2), 443))
	}
	// b4: connectivity (bits 0-1), ResolutionDelaySet (2), Shuffle (3),
	// local addresses (4-5), RTT per family (6, 7); b5: the RTT and the
	// resolution delay.
	cfg.Connectivity = Families(b4 & 3)
	if b4&4 != 0 {
		cfg.ResolutionDelaySet = true
		cfg.ResolutionDelay = time.Duration(b5%8) * 10 * ms
	}
	if b4&8 != 0 {
		rot := int(b5)
		cfg.Shuffle = func(n int, swap func(i, j int)) { // a rotation
			for i := range n - 1 {
				swap(i, (i+rot)%n)
			}
		}
	}
	cfg.LocalAddrs = fuzzLocal[b4>>4&3]
	if b4&64 != 0 {
		cfg.RTT[IPv6] = time.Duration(b5) * 3 * ms
	}
	if b4&128 != 0 {
		cfg.RTT[IPv4] = time.Duration(b5) * ms / 2
	}
	// b3 bit 1: a History (what the caller learned on the network): b5's
	// bits 0-3 say which paths are broken, bit 4 whether QUIC works, and
	// QUIC over IPv6 and TCP over IPv4 get RTTs of their own.
	if b3&2 != 0 {
		h := &fakeHistory{broken: map[pathOf]bool{}, quicWorks: b5&16 != 0, rtt: map[pathOf]time.Duration{
			v6QUIC: time.Duration(b5) * 2 * ms,
			v4TCP:  time.Duration(b5) * ms,
		}}
		for i, p := range []pathOf{v6TCP, v6QUIC, v4TCP, v4QUIC} {
			h.broken[p] = b5>>i&1 != 0
		}
		cfg.History = h
	}
	return cfg
}

// fuzzDelay is the attempt delay the race must keep for an attempt on
// family f, from the configuration alone (the oracle of delayFor).
func fuzzDelay(cfg Config, e Endpoint) time.Duration {
	rtt := cfg.RTT[FamilyOf(e.Addr.Addr())]
	if cfg.History != nil && cfg.History.RTT(e) > 0 {
		rtt = cfg.History.RTT(e)
	}
	if cfg.AttemptDelay == 0 && rtt > 0 {
		return min(max(2*rtt, MinRTTAttemptDelay), MaxAttemptDelay)
	}
	delay := cfg.AttemptDelay
	if delay == 0 {
		delay = DefaultAttemptDelay
	}
	return min(max(delay, MinAttemptDelay), MaxAttemptDelay)
}

// fuzzAnswer decodes an answer spec for a query of type typ.
func fuzzAnswer(r *fuzzReader, typ RecordType) Answer {
	mode := r.next() % 4
	switch mode {
	case 0:
		return Answer{Err: errTest}
	case 1:
		return Answer{}
	}
	if typ != HTTPS {
		n := min(r.u16(), 8192)
		return Answer{Addrs: fuzzAddrs(n, r.next())}
	}
	nrec := min(r.u16(), 2048)
	pattern := r.next()
	hints := r.u16()
	hints = min(hints, 16384)
	alpnByte := r.next()
	alpns := [][]string{{"h3", "h2"}, {"h2"}, {"http/1.1"}, {"h3"}, {"h3-29"}, {"h2", "h2", "h3", "x", "y", "z"}}
	if alpnByte&128 != 0 {
		// Long ALPN lists, as a hostile record may carry.
		for i, a := range alpns {
			alpns[i] = append(slices.Repeat([]string{"x"}, 500), a...)
		}
	}
	targets := []string{".", "", "example.com", "EXAMPLE.com."}
	// Pattern bits 6 and 7: duplicate and invalid hints; both: IPv6 hints
	// of both families. Record i's hints are a window of one list, so that
	// records differ without each allocating its own.
	hp := (pattern >> 6 & 1 << 2) | (pattern >> 7 << 3)
	v6p := hp
	if pattern>>6 == 3 {
		v6p |= 2
	}
	v4hints, v6hints := fuzzAddrs(hints+nrec, 1|hp), fuzzAddrs(hints+nrec, v6p)
	recs := make([]ServiceInfo, nrec)
	for i := range recs {
		s := &recs[i]
		switch pattern & 3 { // targets
		case 0:
			s.Target = targets[i%len(targets)]
		case 1:
			s.Target = fmt.Sprintf("t%d.example.net", i)
		case 2:
			s.Target = fmt.Sprintf("shared%d.example.net.", i%3)
		case 3:
			s.Target = fmt.Sprintf("T%d.Example.NET", i%7)
		}
		switch pattern >> 2 & 3 { // priorities
		case 0:
			s.Priority = 1
		case 1:
			s.Priority = uint16(i + 1)
		case 2:
			s.Priority = uint16(nrec - i)
		case 3:
			s.Priority = uint16(i % 5) // 0: AliasMode
		}
		if pattern&16 != 0 {
			s.Port = uint16(8000 + i%1000)
		}
		if pattern&32 != 0 && i%2 == 0 {
			s.ECH = []byte{byte(i)}
		}
		s.ALPN = alpns[(int(alpnByte)+i)%len(alpns)]
		s.IPv4Hints = v4hints[i : i+hints]
		s.IPv6Hints = v6hints[i : i+hints]
	}
	return Answer{Services: recs}
}

// fuzzRace runs one race from data and returns the first broken bound or
// invariant.
func fuzzRace(data []byte) error {
	r := &fuzzReader{b: data}
	cfg := fuzzConfig(r)
	maxLiveQueries := cfg.MaxLiveQueries
	if maxLiveQueries == 0 {
		maxLiveQueries = DefaultMaxLiveQueries
	}
	now := base
	m := New(cfg, now)
	var (
		nextID    int
		queries   = map[int]RecordType{} // sent and not answered
		sent      int
		attempts  = map[int]*simAttempt{} // live
		made      int
		tried     = map[endpointKey]bool{}
		ended     bool
		lastStart time.Time
		inputs    int // since the last Poll
		wake      time.Time
		trace     []string
		stepStart time.Time
	)
	fail := func(format string, args ...any) error {
		tail := trace[max(0, len(trace)-30):]
		return fmt.Errorf("%s\nlast actions:\n\t%s", fmt.Sprintf(format, args...), strings.Join(tail, "\n\t"))
	}
	// step times one input and counts it.
	step := func(f func()) error {
		start := time.Now()
		f()
		inputs++
		if d := time.Since(start); d > fuzzStepTime {
			return fail("an input took %v", d)
		}
		return nil
	}
	poll := func() error {
		rebuilds := m.rebuilds
		stepStart = time.Now()
		acts, w := m.Poll(now)
		if d := time.Since(stepStart); d > fuzzStepTime {
			return fail("Poll took %v", d)
		}
		if d := m.rebuilds - rebuilds; d > 1 || d == 1 && inputs == 0 && rebuilds > 0 {
			return fail("Poll rebuilt the endpoint list %d times after %d inputs", d, inputs)
		}
		inputs = 0
		for _, a := range acts {
			trace = append(trace, fmt.Sprintf("%v %s", now.Sub(base), describe(a)))
			if ended {
				return fail("action after the end: %s", describe(a))
			}
			switch a := a.(type) {
			case StartQuery:
				if a.ID != nextID {
					return fail("query id %d, want %d", a.ID, nextID)
				}
				if f := familyOfType(a.Type); a.Type != HTTPS && cfg.Connectivity != 0 && !cfg.Connectivity.Has(f) && !cfg.OnlyFamily {
					return fail("query %s without %v connectivity", a.Type, f)
				}
				nextID++
				sent++
				queries[a.ID] = a.Type
				if sent > MaxQueries {
					return fail("%d queries sent, bound %d", sent, MaxQueries)
				}
				if len(queries) > maxLiveQueries {
					return fail("%d queries in flight, bound %d", len(queries), maxLiveQueries)
				}
			case StartAttempt:
				if a.ID != nextID {
					return fail("attempt id %d, want %d", a.ID, nextID)
				}
				nextID++
				made++
				if made > MaxAttempts {
					return fail("%d attempts, bound %d", made, MaxAttempts)
				}
				k := keyOf(a.Endpoint)
				if tried[k] {
					return fail("endpoint %+v attempted twice", a.Endpoint)
				}
				tried[k] = true
				for id, b := range attempts {
					if now.Before(b.end) {
						return fail("attempt %d started %v after live attempt %d, whose slot ends %v after it", a.ID, now.Sub(b.start), id, b.end.Sub(b.start))
					}
				}
				if made > 1 && now.Sub(lastStart) < MinAttemptDelay {
					return fail("attempt %d started %v after the previous one", a.ID, now.Sub(lastStart))
				}
				lastStart = now
				f := FamilyOf(a.Endpoint.Addr.Addr())
				attempts[a.ID] = &simAttempt{start: now, state: connecting, proto: a.Endpoint.Proto, fam: f, ep: a.Endpoint, end: now.Add(fuzzDelay(cfg, a.Endpoint))}
				if cfg.MaxLive > 0 && len(attempts) > cfg.MaxLive {
					return fail("%d attempts live, bound %d", len(attempts), cfg.MaxLive)
				}
			case Cancel:
				if attempts[a.ID] == nil {
					return fail("cancel of attempt %d that is not live", a.ID)
				}
				delete(attempts, a.ID)
			case Succeed:
				if attempts[a.ID] == nil || len(attempts) != 1 {
					return fail("succeed %d with live attempts %v", a.ID, attempts)
				}
				if want := len(queries) > 0; want != !a.KeepDNSUntil.IsZero() ||
					want && !a.KeepDNSUntil.Equal(now.Add(DNSLinger)) {
					return fail("succeed with %d queries in flight: KeepDNSUntil %v", len(queries), a.KeepDNSUntil)
				}
				delete(attempts, a.ID)
				ended = true
			case Fail:
				if len(attempts) != 0 {
					return fail("fail with %d attempts live", len(attempts))
				}
				ended = true
			}
		}
		if ended != m.Done() {
			return fail("Done() = %v after %v", m.Done(), describeAll(acts))
		}
		if !w.IsZero() && (ended || !w.After(now)) {
			return fail("bad wake %v at %v", w.Sub(base), now.Sub(base))
		}
		if len(m.pend) > MaxEndpoints {
			return fail("%d endpoints pending, bound %d", len(m.pend), MaxEndpoints)
		}
		if len(m.services) > MaxServices {
			return fail("%d services kept, bound %d", len(m.services), MaxServices)
		}
		for _, s := range m.services {
			if len(s.IPv4Hints) > MaxHints || len(s.IPv6Hints) > MaxHints || len(s.ALPN) > 3 {
				return fail("a service keeps %d+%d hints and %d ALPN IDs", len(s.IPv4Hints), len(s.IPv6Hints), len(s.ALPN))
			}
		}
		if len(m.targets) > MaxTargets {
			return fail("%d target names, bound %d", len(m.targets), MaxTargets)
		}
		wake = w
		return nil
	}
	pick := func(ids []int) int {
		slices.Sort(ids)
		return ids[int(r.next())%len(ids)]
	}
	queryIDs := func() []int {
		var ids []int
		for id := range queries {
			ids = append(ids, id)
		}
		return ids
	}
	liveIDs := func() []int {
		var ids []int
		for id := range attempts {
			ids = append(ids, id)
		}
		return ids
	}
	answer := func(id int, ans Answer) error {
		delete(queries, id)
		return step(func() { m.OnDNS(now, id, ans) })
	}

	if err := poll(); err != nil {
		return err
	}
	for op := 0; op < fuzzMaxOps && !r.done() && !ended; op++ {
		var err error
		switch r.next() % 9 {
		case 0, 1:
			if ids := queryIDs(); len(ids) > 0 {
				id := pick(ids)
				err = answer(id, fuzzAnswer(r, queries[id]))
			}
		case 2:
			now = now.Add(time.Duration(r.next()) * 4 * ms)
		case 3:
			if ids := liveIDs(); len(ids) > 0 {
				id := pick(ids)
				v := []Version{H1, H2, H3, 0}[r.next()%4]
				if attempts[id].state == connecting {
					attempts[id].state = awaitingSettings
				}
				err = step(func() { m.OnConnected(now, id, v) })
			}
		case 4:
			if ids := liveIDs(); len(ids) > 0 {
				id := pick(ids)
				delete(attempts, id)
				err = step(func() { m.OnFailed(now, id, errTest) })
			}
		case 5:
			if ids := liveIDs(); len(ids) > 0 {
				id := pick(ids)
				b := r.next()
				err = step(func() { m.OnSettings(now, id, Settings{b&1 != 0, b&2 != 0, b&4 != 0}) })
			}
		case 6:
			id := nextID + int(r.next()%3)
			err = step(func() {
				m.OnDNS(now, id, Answer{Addrs: fuzzAddrs(3, 0)})
				m.OnFailed(now, id, errTest)
				m.OnConnected(now, id, H2)
			})
		case 7:
			if r.next() == 0xff {
				err = step(func() { m.Abort(now) })
			}
		case 8:
			if ids := liveIDs(); len(ids) > 0 {
				id := pick(ids)
				b := attempts[id]
				end := now.Add(fuzzDelay(cfg, b.ep))
				if cap := b.start.Add(MaxAttemptDelay); end.After(cap) {
					end = cap
				}
				if end.After(b.end) {
					b.end = end
				}
				err = step(func() { m.OnProgress(now, id) })
			}
		}
		if err != nil {
			return err
		}
		if err := poll(); err != nil {
			return err
		}
	}

	// Settle: answer every query with NODATA, fail every live attempt,
	// follow timers. The race must end, in a bounded number of steps.
	for steps := 0; !ended; steps++ {
		if steps > 4*(MaxQueries+MaxAttempts)+10 {
			return fail("the race did not end after %d settling steps", steps)
		}
		progressed := false
		for _, id := range queryIDs() {
			if err := answer(id, Answer{}); err != nil {
				return err
			}
			progressed = true
		}
		for _, id := range liveIDs() {
			delete(attempts, id)
			if err := step(func() { m.OnFailed(now, id, errTest) }); err != nil {
				return err
			}
			progressed = true
		}
		if !progressed {
			if wake.IsZero() {
				return fail("stalled with nothing outstanding")
			}
			now = wake
		}
		if err := poll(); err != nil {
			return err
		}
	}
	return nil
}

// fuzzSpec builds fuzz inputs for the seed corpus.
type fuzzSpec []byte

func (s fuzzSpec) b(bs ...byte) fuzzSpec { return append(s, bs...) }
func (s fuzzSpec) u16(n int) fuzzSpec    { return append(s, byte(n>>8), byte(n)) }

// https answers the pick-th outstanding query (by ID order) with nrec
// records.
func (s fuzzSpec) https(pick byte, nrec int, pattern byte, hints int, alpn byte) fuzzSpec {
	return s.b(0, pick, 2).u16(nrec).b(pattern).u16(hints).b(alpn)
}

func (s fuzzSpec) addrs(pick byte, n int, pattern byte) fuzzSpec {
	return s.b(0, pick, 2).u16(n).b(pattern)
}

func (s fuzzSpec) nodata(pick byte) fuzzSpec { return s.b(0, pick, 1) }

func fuzzSeeds() [][]byte {
	cfg := fuzzSpec{0, 0, 0, 0, 0, 0} // defaults: HTTPS, AAAA, A queried (IDs 0, 1, 2)
	fails := func(s fuzzSpec, n int) fuzzSpec {
		for range n {
			s = s.b(4, 0)
		}
		return s
	}
	return [][]byte{
		// An ordinary race.
		cfg.https(0, 1, 0, 2, 0).addrs(0, 2, 0).addrs(0, 2, 1).b(3, 0, 1),
		// 600 ServiceMode records with distinct targets, then every
		// query answered with NODATA.
		fails(cfg.https(0, 600, 1|4, 0, 1).nodata(0).nodata(0).nodata(0).nodata(0), 20),
		// One record with 4,000 hints of each family; AAAA and A empty;
		// attempts fail one after the other.
		fails(cfg.https(0, 1, 0|64, 4000, 1).nodata(0).nodata(0), 40),
		// 8,000 A and AAAA addresses, duplicates and invalid ones among
		// them, QUIC known, h3 on another port.
		fails(fuzzSpec{8, 0, 0, 1, 0, 0}.nodata(0).addrs(0, 8000, 0|4|8).addrs(0, 8000, 1), 80),
		// AliasMode records among 2,000 records sharing three targets,
		// with ports and ECH; one query in flight at a time.
		fails(fuzzSpec{0, 0, 1, 0, 0, 0}.https(0, 2000, 2|12|16|32, 16, 3).nodata(0).nodata(0).nodata(0), 30),
		// 1,024 records with 32 hints each and long ALPN lists, a
		// WebTransport race, two attempts live at most, time passing.
		fails(fuzzSpec{0x60, 2 << 3, 0, 0, 0, 0}.https(0, 1024, 3|4|16|128, 32, 0x81).b(2, 100).nodata(0).b(2, 200), 70),
		// IPv4 only, avoided addresses, a literal.
		fuzzSpec{0x86, 0, 0xb0, 5, 0, 0}.b(2, 10, 4, 0),
		// An IPv4-only host with its addresses known, RTTs for both
		// families, a zero resolution delay, shuffled records with IPv6
		// hints; attempts make progress, then fail.
		fuzzSpec{8, 0, 0, 0, 2 | 4 | 8 | 16 | 64 | 128, 40}.https(0, 6, 0, 2, 0).
			addrs(0, 3, 1).b(8, 0, 2, 30, 8, 0, 2, 100, 4, 0, 2, 10, 4, 0, 8, 0),
		// A dual-stack host with link-local IPv6 only, progress on every
		// attempt as time passes, a win with a query in flight.
		fuzzSpec{0, 0, 0, 0, 32 | 64, 20}.addrs(1, 2, 2).
			b(8, 0, 2, 20, 8, 0, 2, 50, 8, 0, 2, 100, 3, 0, 1),
	}
}
