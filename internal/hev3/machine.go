package hev3

import (
	"net/netip"
	"time"
)

// attemptState is where one attempt is in its life.
type attemptState uint8

const (
	connecting       attemptState = iota // transport handshake in progress
	awaitingSettings                     // transport up, waiting for SETTINGS
	failed                               // reported failed by the caller
	incapable                            // up, but lacks the needed capability
	cancelled                            // cancelled by the machine
	won                                  // the winner
)

// live reports whether the attempt still holds a connection or a handshake
// that the machine is waiting on.
func (s attemptState) live() bool { return s == connecting || s == awaitingSettings }

type attempt struct {
	id    int
	ep    Endpoint
	start time.Time
	// slotEnd is when the attempt stops holding the slot: its start plus
	// its attempt delay, later if OnProgress extended it.
	slotEnd time.Time
	state   attemptState
	ver     Version // negotiated, once connected
}

// Machine is the state of one race. It is not safe for concurrent use.
type Machine struct {
	cfg    Config
	origin string // normalized cfg.Host
	// versions is cfg.Versions, without H1 for WebTransport, and without
	// each version a connection of this race proved incapable.
	versions Versions
	prefer   Family // effective preferred family
	resDelay time.Duration
	attDelay time.Duration // fixed delay: configured, or the default
	// local is Config.LocalAddrs, valid ones unmapped, at most
	// MaxLocalAddrs; haveLocal says which families it holds.
	local     []netip.Addr
	haveLocal [2]bool

	nextID  int
	queried bool                // origin queries decided
	queries map[int]*query      // sent, by ID
	byName  map[nameType]*query // decided, sent or not
	// queue holds the queries decided but not sent, oldest first: they
	// wait for room under maxLiveQueries.
	queue          []*query
	liveQueries    int // sent and not answered
	maxLiveQueries int
	// targets are the TargetNames whose addresses are asked for (at most
	// MaxTargets); servicesNew says the HTTPS answer has not been looked
	// at for targets yet.
	targets     map[string]bool
	servicesNew bool

	attempts []*attempt // in start (and id) order
	// triedFam and triedQUIC record the families and the transports
	// (TCP: 0, QUIC: 1) attempted so far, for pick.
	triedFam  [2]bool
	triedQUIC [2]bool
	byID      map[int]*attempt
	tried     map[endpointKey]bool
	avoid     map[netip.AddrPort]bool // Config.Avoid
	// reachable holds the addresses whose transport (TCP or QUIC) came up
	// in this race; their endpoints of the same transport go first (see
	// pending).
	reachable map[transportKey]bool

	// pend is the endpoints not attempted yet, best first. It is rebuilt
	// by Poll when an input has changed it (dirty), and otherwise consumed
	// from the front (pick may take one from further into the head's
	// group): a Poll without input does not look at every endpoint again.
	// rebuilds counts the rebuilds, for tests.
	pend     []cand
	dirty    bool
	rebuilds int

	httpsDone    bool
	services     []ServiceInfo // origin HTTPS answer, normalized, sorted by priority
	answered     bool          // some query completed
	first        time.Time     // when the first query completed
	gotAddrs     bool          // some answer gave an address or a hint
	prefAnswered bool          // a query for the preferred family completed

	anyFailed    bool
	anyIncapable bool

	out     []Action // decided by an input, returned by the next Poll
	decided bool     // Succeed or Fail is in out or was returned
	done    bool     // Succeed or Fail was returned by Poll
}

// New returns a machine for one race. Nothing happens until the first Poll.
//
// Zero or negative ResolutionDelay means DefaultResolutionDelay unless
// ResolutionDelaySet; zero AttemptDelay means RTT-derived or
// DefaultAttemptDelay, and any AttemptDelay is clamped to
// [MinAttemptDelay, MaxAttemptDelay]. Zero Versions means AllVersions.
func New(cfg Config, now time.Time) *Machine {
	m := &Machine{
		cfg:      cfg,
		origin:   normalizeName(cfg.Host),
		versions: cfg.Versions,
		prefer:   cfg.Prefer,
		resDelay: cfg.ResolutionDelay,
		attDelay: cfg.AttemptDelay,
		queries:  make(map[int]*query),
		byName:   make(map[nameType]*query),
		targets:  make(map[string]bool),
		byID:     make(map[int]*attempt),
		tried:    make(map[endpointKey]bool),
		avoid:    make(map[netip.AddrPort]bool, len(cfg.Avoid)),
		dirty:    true,

		maxLiveQueries: cfg.MaxLiveQueries,
	}
	for _, a := range cfg.Avoid {
		m.avoid[a] = true
	}
	if m.maxLiveQueries <= 0 {
		m.maxLiveQueries = DefaultMaxLiveQueries
	}
	if m.versions == 0 {
		m.versions = AllVersions
	}
	if cfg.Need == NeedWebTransport {
		m.versions &^= Versions(H1)
	}
	switch {
	case cfg.OnlyFamily:
		m.prefer = cfg.Only
	case cfg.Connectivity == HaveIPv6:
		m.prefer = IPv6
	case cfg.Connectivity == HaveIPv4:
		m.prefer = IPv4
	}
	if m.prefer != IPv4 {
		m.prefer = IPv6
	}
	for _, a := range cfg.LocalAddrs {
		if len(m.local) == MaxLocalAddrs {
			break
		}
		if a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() {
			a = a.Unmap()
			m.local = append(m.local, a)
			m.haveLocal[FamilyOf(a)] = true
		}
	}
	switch {
	case cfg.ResolutionDelaySet:
		m.resDelay = max(m.resDelay, 0)
	case m.resDelay <= 0:
		m.resDelay = DefaultResolutionDelay
	}
	if m.attDelay == 0 {
		m.attDelay = DefaultAttemptDelay
	}
	m.attDelay = min(max(m.attDelay, MinAttemptDelay), MaxAttemptDelay)
	if cfg.Literal.IsValid() {
		m.cfg.Literal = cfg.Literal.Unmap()
	}
	m.cfg.LocalAddrs = nil // m.local holds the copy
	return m
}

// OnDNS reports the answer to the query StartQuery{ID: id}. Answers for
// unknown or already answered queries are ignored.
func (m *Machine) OnDNS(now time.Time, id int, ans Answer) {
	if m.decided {
		return
	}
	q := m.queries[id]
	if q == nil || q.done {
		return
	}
	q.done = true
	m.liveQueries--
	if !m.answered || now.Before(m.first) {
		m.answered = true
		m.first = now
	}
	if q.q.Type == HTTPS {
		m.httpsDone = true
		if ans.Err == nil {
			m.services = m.normalizeServices(ans.Services)
			m.servicesNew = true
			m.dirty = true
			for _, s := range m.services {
				if len(s.IPv4Hints) > 0 || len(s.IPv6Hints) > 0 {
					m.gotAddrs = true
				}
			}
		}
		return
	}
	if q.q.Type == typeOfFamily(m.prefer) {
		m.prefAnswered = true
	}
	if ans.Err == nil {
		q.addrs = m.filterAddrs(ans.Addrs, familyOfType(q.q.Type), MaxAddrs)
		if len(q.addrs) > 0 {
			m.gotAddrs = true
			m.dirty = true
		}
	}
}

// OnProgress reports that attempt id moved forward in its handshake
// without completing it: TCP connected and TLS started, or a QUIC
// Handshake packet arrived. Draft §6.1: "When the connection
// establishment makes progress, but has not completed, the timer SHOULD
// be extended to a new value that represents an estimated time for the
// full connection establishment to complete." The attempt keeps the slot
// until one attempt delay (for its family, see Config.RTT) after now, if
// that is later than before, and never past MaxAttemptDelay after its
// start (the draft's Maximum Connection Attempt Delay), however many
// times progress is reported. A failure still frees the slot at once.
//
// Without OnProgress a slot lasts one attempt delay from the start.
func (m *Machine) OnProgress(now time.Time, id int) {
	a := m.attempt(id)
	if a == nil {
		return
	}
	end := now.Add(m.delayFor(a.ep))
	end = minTime(end, a.start.Add(MaxAttemptDelay))
	if end.After(a.slotEnd) {
		a.slotEnd = end
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// delayFor returns the attempt delay of an attempt on e: the configured
// one, else 2×RTT of e's path (Config.History) or of its family
// (Config.RTT) clamped to [MinRTTAttemptDelay, MaxAttemptDelay] when the
// caller knows the RTT, else DefaultAttemptDelay.
func (m *Machine) delayFor(e Endpoint) time.Duration {
	if m.cfg.AttemptDelay != 0 {
		return m.attDelay
	}
	var rtt time.Duration
	if m.cfg.History != nil {
		rtt = m.cfg.History.RTT(e)
	}
	if rtt <= 0 {
		rtt = m.cfg.RTT[FamilyOf(e.Addr.Addr())]
	}
	if rtt <= 0 {
		return m.attDelay
	}
	if rtt > MaxAttemptDelay/2 {
		return MaxAttemptDelay
	}
	return min(max(2*rtt, MinRTTAttemptDelay), MaxAttemptDelay)
}

// OnConnected reports that the transport of attempt id is up and that v is
// the negotiated HTTP version. Depending on Config.Need the attempt wins at
// once, waits for OnSettings, or is cancelled as Incapable.
func (m *Machine) OnConnected(now time.Time, id int, v Version) {
	a := m.attempt(id)
	if a == nil || a.state != connecting {
		return
	}
	a.ver = v
	if m.reachable == nil {
		m.reachable = make(map[transportKey]bool)
	}
	if k := transportOf(a.ep); !m.reachable[k] {
		m.reachable[k] = true
		m.dirty = true // its other endpoints go first
	}
	switch m.cfg.Need {
	case NeedTransport:
		m.win(now, a)
	case NeedWebSocket, NeedHTTP:
		switch v {
		case H1:
			m.win(now, a)
		case H2, H3:
			a.state = awaitingSettings
		default:
			m.reject(a)
		}
	default: // NeedWebTransport
		switch v {
		case H2, H3:
			a.state = awaitingSettings
		default:
			m.reject(a)
		}
	}
}

// OnSettings reports the capability bits of the server's first SETTINGS on
// attempt id, which must have connected with h2 or h3. The attempt wins if
// they prove the capability Config.Need asks for; otherwise it is cancelled
// as Incapable and the race goes on.
func (m *Machine) OnSettings(now time.Time, id int, s Settings) {
	a := m.attempt(id)
	if a == nil || a.state != awaitingSettings {
		return
	}
	ok := s.ExtendedConnect || m.cfg.Need == NeedHTTP
	if m.cfg.Need == NeedWebTransport {
		ok = ok && s.WebTransport
		if a.ep.Proto == ProtoH3 {
			ok = ok && s.Datagrams
		}
	}
	if ok {
		m.win(now, a)
	} else {
		m.reject(a)
	}
}

// OnFailed reports that attempt id failed, before or after its transport
// came up. Its slot is freed at once. The caller has already closed it, so
// no Cancel follows.
func (m *Machine) OnFailed(now time.Time, id int, err error) {
	a := m.attempt(id)
	if a == nil {
		return
	}
	a.state = failed
	m.anyFailed = true
}

// Abort ends the race: the next Poll returns Cancel{Aborted} for every live
// attempt, in attempt order, then Fail{FailAborted}. It does nothing once
// the race is decided.
func (m *Machine) Abort(now time.Time) {
	if m.decided {
		return
	}
	m.cancelLive(nil, Aborted)
	m.out = append(m.out, Fail{Reason: FailAborted})
	m.decided = true
}

// Done reports whether Poll has returned Succeed or Fail. After that every
// input is ignored and Poll returns nothing.
func (m *Machine) Done() bool { return m.done }

// Endpoint returns the endpoint of attempt id.
func (m *Machine) Endpoint(id int) (Endpoint, bool) {
	a := m.byID[id]
	if a == nil {
		return Endpoint{}, false
	}
	return a.ep, true
}

// Query returns the query issued with id.
func (m *Machine) Query(id int) (StartQuery, bool) {
	q := m.queries[id]
	if q == nil {
		return StartQuery{}, false
	}
	return q.q, true
}

// attempt returns the live attempt id, or nil when id is unknown, is a
// query, or the attempt is over (failed, cancelled) or the race is decided.
func (m *Machine) attempt(id int) *attempt {
	if m.decided {
		return nil
	}
	a := m.byID[id]
	if a == nil || !a.state.live() {
		return nil
	}
	return a
}

// win makes a the winner: every other live attempt is cancelled, in attempt
// order, then Succeed is queued, asking the caller to keep the queries in
// flight for DNSLinger (draft §6).
func (m *Machine) win(now time.Time, a *attempt) {
	a.state = won
	m.cancelLive(a, LostRace)
	s := Succeed{ID: a.id}
	if m.liveQueries > 0 {
		s.KeepDNSUntil = now.Add(DNSLinger)
	}
	m.out = append(m.out, s)
	m.decided = true
}

// reject cancels an attempt whose connection lacks the needed capability.
// The caller must close that connection.
//
// The missing capability is taken to be the origin's, not the address's:
// the rest of the race does without the negotiated version. For a WebSocket
// whose h2 lacks extended CONNECT, the remaining TCP endpoints, and the
// rejected address itself first (it is known to be reachable), are then tried with ALPN http/1.1 only (the
// h2 → h1 rung of the ladder); an h3 without it ends the QUIC attempts.
func (m *Machine) reject(a *attempt) {
	a.state = incapable
	m.anyIncapable = true
	m.versions &^= Versions(a.ver)
	m.dirty = true
	m.out = append(m.out, Cancel{ID: a.id, Reason: Incapable})
}

// cancelLive queues a Cancel for every live attempt except keep.
func (m *Machine) cancelLive(keep *attempt, r CancelReason) {
	for _, b := range m.attempts {
		if b != keep && b.state.live() {
			b.state = cancelled
			m.out = append(m.out, Cancel{ID: b.id, Reason: r})
		}
	}
}
