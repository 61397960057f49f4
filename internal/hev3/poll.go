package hev3

import (
	"time"
)

// Poll returns every action due at now, in order, and the time at which the
// caller must call Poll again if no input arrives first (zero: no timer is
// needed). The caller must call Poll after every input.
//
// Order within one call: actions decided by inputs (Cancel, Succeed, Fail),
// then new DNS queries, then at most one new attempt, then Fail when the
// race can no longer succeed. After Succeed or Fail, Poll returns nothing.
//
// A returned wake time is always after now and is exactly the next instant
// at which Poll would act: the end of the resolution delay when it alone
// holds back an endpoint, or the moment the attempt slot frees when an
// endpoint waits for it.
//
// Poll costs O(MaxAttempts), plus one rebuild of the endpoint list, in
// O(MaxEndpoints), when an input since the last Poll changed it.
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
	for len(eps) > 0 && moved && !m.spent() && !m.slotBusy(now) && !m.capped() && !m.holdAvoided(now, eps[0]) {
		acts = append(acts, m.start(now, eps[0]))
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
	if !moved || m.holdAvoided(now, eps[0]) {
		return acts, m.first.Add(m.resDelay)
	}
	if m.capped() {
		// Only an attempt ending can make room: no timer.
		return acts, time.Time{}
	}
	return acts, m.slotFree()
}

// holdAvoided reports whether e, the next endpoint, is on an address the
// caller asked to avoid while DNS may still bring others: it waits for
// the resolution delay, as an answer for the other family would.
func (m *Machine) holdAvoided(now time.Time, e Endpoint) bool {
	return m.avoid[e.Addr] && m.outstanding() && now.Before(m.first.Add(m.resDelay))
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

// slotBusy reports whether a live attempt started less than the attempt
// delay before now.
//
// A live attempt is one still in its transport handshake or one whose
// transport is up but whose SETTINGS have not arrived yet. The latter keeps
// the slot for the full attempt delay from its start (draft §6.1 asks to
// extend the timer once the transport handshake is done, because the
// connection is not usable yet); a failure or an Incapable verdict frees
// the slot at once.
func (m *Machine) slotBusy(now time.Time) bool {
	return now.Before(m.slotFree())
}

// slotFree returns when the attempt slot frees (zero if no attempt is live).
func (m *Machine) slotFree() time.Time {
	var t time.Time
	for _, a := range m.attempts {
		if a.state.live() {
			if end := a.start.Add(m.attDelay); end.After(t) {
				t = end
			}
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
	a := &attempt{id: m.nextID, ep: e, start: now}
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
