package hev3

import (
	"time"
)

// Poll returns every action due at now, in order, and the time at which the
// caller must call Poll again if no input arrives first (zero: no timer is
// needed). The caller must call Poll after every input.
//
// Order within one call: actions decided by inputs (Cancel, Succeed, Fail),
// then new DNS queries, then at most one new attempt (two attempts never
// start within MinAttemptDelay of each other), then Fail when the race can
// no longer succeed. After Succeed or Fail, Poll returns nothing.
//
// A returned wake time is always after now and is exactly the next instant
// at which Poll would act: the end of the resolution delay when it alone
// holds back an endpoint, or the moment the attempt slot frees when an
// endpoint waits for it.
//
// Poll costs O(MaxAttempts) plus a look into the first group of the
// pending endpoints (at most 2*(2*MaxAddrs+2*MaxHints) of them), plus one
// rebuild of the endpoint list, in O(MaxEndpoints), when an input since
// the last Poll changed it.
func (m *Machine) Poll(now time.Time) ([]Action, time.Time) {
	if m.done {
		return nil, time.Time{}
	}
	acts := m.out
	m.out = nil
	if m.decided {
		m.done = true
		return acts, time.Time{}
	}
	acts = m.issueQueries(acts)
	if m.dirty {
		m.pend = m.pending()
		m.dirty = false
		m.rebuilds++
	}
	eps := m.pend
	moved := m.movedOn(now)
	if len(eps) > 0 && moved && !m.spent() && !m.slotBusy(now) && !m.capped() && !m.holdAvoided(now, eps[0].ep) && !m.holdForTargets(now, eps[0]) {
		if i := m.pick(eps); i > 0 {
			c := eps[i]
			copy(eps[1:i+1], eps[:i])
			eps[0] = c
		}
		acts = append(acts, m.start(now, eps[0].ep))
		eps = eps[1:]
	}
	m.pend = eps
	// With MaxAttempts made, only the live attempts can still win.
	over := len(eps) == 0 || m.spent()
	if over && !m.anyLive() && (m.spent() || !m.outstanding()) {
		acts = append(acts, Fail{Reason: m.failReason()})
		m.decided = true
		m.done = true
		return acts, time.Time{}
	}
	if over {
		return acts, time.Time{}
	}
	if !moved || m.holdAvoided(now, eps[0].ep) || m.holdForTargets(now, eps[0]) {
		return acts, m.first.Add(m.resDelay)
	}
	if m.capped() {
		// Only an attempt ending can make room: no timer.
		return acts, time.Time{}
	}
	return acts, m.slotFree()
}

// holdAvoided reports whether e, the next endpoint, is on an address the
// caller asked to avoid, on a path History says is broken, or on one the
// host cannot reach (RFC 6724 rule 1), while DNS may still bring others:
// it waits for the resolution delay, as an answer for the other family
// would.
func (m *Machine) holdAvoided(now time.Time, e Endpoint) bool {
	return (m.avoid[e.Addr] || m.broken(e) || !m.usable(FamilyOf(e.Addr.Addr()))) &&
		m.outstanding() && now.Before(m.first.Add(m.resDelay))
}

// holdForTargets reports whether c, the next endpoint, is one of the
// origin's own addresses (the fallback tier) while the addresses of an
// HTTPS record's TargetName are still being asked, within the resolution
// delay: RFC 9460 §3 tries the records' endpoints, the one an AliasMode
// chain ends in included, "before falling back to non-SVCB connection
// modes". Without it, a zone apex aliased to a CDN name was dialed on the
// apex's own address whenever its A answer came before the CDN name's.
func (m *Machine) holdForTargets(now time.Time, c cand) bool {
	if c.group < 0 || len(m.targets) == 0 || !now.Before(m.first.Add(m.resDelay)) {
		return false
	}
	if recs, _ := m.records(); c.group != len(recs) {
		return false
	}
	for key := range m.targets {
		for _, t := range [...]RecordType{AAAA, A} {
			if q := m.byName[nameType{key, t}]; q != nil && !q.done {
				return true
			}
		}
	}
	return false
}

// pick returns the index in eps of the endpoint to attempt next: the one
// of the head's group that adds the most to what the race has tried, the
// earliest of those on a tie (the first, unless the race already tried
// its family or transport while some other is untried).
//
// The static order of a group (see interleave) alternates families and,
// with h3 preferred but not required, transports, so that every fault is
// covered early. But attempts made before an answer arrived (a late HTTPS
// record, a late AAAA) are not in that order: without this, a late HTTPS
// answer put its h3 endpoint on the preferred family right after a TCP
// attempt on the same family, and the other family waited two slots.
// Draft §7: a new address's position is found "by applying the sorting
// rules ... to the complete list of addresses, including those
// previously received. This ensures that sorting rules, such as address
// family interleaving, are maintained correctly regardless of when
// addresses arrive."
//
// An endpoint scores one for a family the race has not tried and, when
// the group is dealt diagonally, one for a transport (QUIC or TCP) the race
// has not tried. For WebTransport only the family counts: TCP is never
// pulled ahead of h3. Endpoints known reachable, avoided or unusable
// (negative groups) are taken in order, and so is everything once some
// transport of the race came up: a path is proven, there is no fault left
// to cover. The look stays within the head's group: draft §6, "all of the
// addresses of the first group SHOULD be started before starting
// attempts using the next group".
func (m *Machine) pick(eps []cand) int {
	g := eps[0].group
	if g < 0 || len(m.attempts) == 0 || len(m.reachable) > 0 {
		return 0
	}
	diag := m.diagonal(eps[0].ep.Addr.Addr())
	score := func(e Endpoint) int {
		n := 0
		if !m.triedFam[FamilyOf(e.Addr.Addr())] {
			n++
		}
		if diag && !m.triedQUIC[b2i(e.Proto.QUIC())] {
			n++
		}
		return n
	}
	most := 1 + b2i(diag) // the best score there can be
	best, bestScore := 0, score(eps[0].ep)
	for i := 1; i < len(eps) && eps[i].group == g && bestScore < most; i++ {
		if s := score(eps[i].ep); s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// spent reports whether the race has made MaxAttempts attempts.
func (m *Machine) spent() bool { return len(m.attempts) >= MaxAttempts }

// capped reports whether Config.MaxLive attempts are live.
func (m *Machine) capped() bool {
	if m.cfg.MaxLive <= 0 {
		return false
	}
	n := 0
	for _, a := range m.attempts {
		if a.state.live() {
			n++
		}
	}
	return n >= m.cfg.MaxLive
}

// movedOn reports whether the machine stops waiting for DNS (draft §4.2):
// some answer gave an address and either the preferred family and the
// origin's HTTPS record have been answered, or the resolution delay has
// passed since the first answer. An IP literal moves on at once.
func (m *Machine) movedOn(now time.Time) bool {
	if m.cfg.Literal.IsValid() {
		return true
	}
	if !m.hasAddrs() {
		return false
	}
	if m.preferredAnswered() && (m.httpsDone || m.cfg.NoHTTPS) {
		return true
	}
	return m.answered && !now.Before(m.first.Add(m.resDelay))
}

// slotBusy reports whether a live attempt holds the attempt slot at now,
// or the last attempt started less than MinAttemptDelay before now.
//
// A live attempt is one still in its transport handshake or one whose
// transport is up but whose SETTINGS have not arrived yet. It holds the
// slot for its attempt delay from its start (Config.AttemptDelay, or
// derived from Config.RTT), longer when OnProgress extended it (draft
// §6.1); a transport up and waiting for SETTINGS keeps the slot it had. A
// failure or an Incapable verdict frees the slot at once, but never the
// 10 ms after the last start (draft §6: "a subsequent connection MUST
// NOT be started within 10 milliseconds of the previous attempt").
func (m *Machine) slotBusy(now time.Time) bool {
	return now.Before(m.slotFree())
}

// slotFree returns when the next attempt may start (zero before the first
// attempt).
func (m *Machine) slotFree() time.Time {
	var t time.Time
	if n := len(m.attempts); n > 0 {
		t = m.attempts[n-1].start.Add(MinAttemptDelay)
	}
	for _, a := range m.attempts {
		if a.state.live() && a.slotEnd.After(t) {
			t = a.slotEnd
		}
	}
	return t
}

func (m *Machine) anyLive() bool {
	for _, a := range m.attempts {
		if a.state.live() {
			return true
		}
	}
	return false
}

// start records a new attempt on e.
func (m *Machine) start(now time.Time, e Endpoint) StartAttempt {
	f := FamilyOf(e.Addr.Addr())
	a := &attempt{id: m.nextID, ep: e, start: now, slotEnd: now.Add(m.delayFor(e))}
	m.triedFam[f] = true
	m.triedQUIC[b2i(e.Proto.QUIC())] = true
	m.nextID++
	m.attempts = append(m.attempts, a)
	m.byID[a.id] = a
	m.tried[keyOf(e)] = true
	return StartAttempt{ID: a.id, Endpoint: e}
}

// failReason classifies a race that ended without a winner.
func (m *Machine) failReason() FailReason {
	switch {
	case m.anyIncapable:
		return FailUnsupported
	case m.anyFailed:
		return FailConnect
	default:
		return FailDNS
	}
}
