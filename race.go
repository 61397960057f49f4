package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/resolver"
)

// Bounds on DNS queries in flight: per race (hev3.Config.MaxLiveQueries),
// beyond which the race's next query waits for one of its answers, and per
// Dialer, beyond which a query waits for a token before it is sent. Each
// query in flight holds a goroutine and a socket to the resolver (two when
// a truncated reply is asked again over TCP). A race sends at most
// hev3.MaxQueries (11) in all; 64 lets eight races run at their own bound,
// or 21 races send their first three queries, at once, and keeps a burst of
// dials from opening hundreds of sockets to the resolver.
const (
	maxQueriesPerDial   = hev3.DefaultMaxLiveQueries
	maxQueriesPerDialer = 64
)

// tokens is a counting semaphore whose zero value is ready: its channel is
// made on first use, so that a zero Dialer works.
type tokens struct {
	once sync.Once
	ch   chan struct{}
}

// acquire takes one of n tokens, waiting for one while ctx allows. The
// caller must call release once done.
func (t *tokens) acquire(ctx context.Context, n int) (release func(), err error) {
	t.once.Do(func() { t.ch = make(chan struct{}, n) })
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// raceSpec says what one race dials and what its winner must prove.
type raceSpec struct {
	url      string
	kind     string
	host     string     // DNS name without trailing dot, or "" when literal is set
	rooted   bool       // host had a trailing dot: no search list (setHost)
	literal  netip.Addr // IP-literal host
	port     uint16
	need     hev3.Need
	versions hev3.Versions
	knownH3  bool             // try QUIC without an HTTPS record
	h3Port   uint16           // port of that QUIC (Alt-Svc), 0: the origin's
	avoid    []netip.AddrPort // addresses to try last
	noHTTPS  bool
	// tls is the TLS configuration of TCP+TLS and QUIC attempts; nil for
	// plain TCP.
	tls *tls.Config
	// wt is the WebTransport session a WebTransport race requests on each
	// QUIC connection as its capability check.
	wt *wtRequest
	// early is set when the QUIC attempts may dial with 0-RTT, on the
	// SETTINGS remembered with the origin's tickets (zerortt.go).
	early *earlyPlan
	// proxy, when set, is the proxy the race goes through (proxy.go):
	// host, literal and port are then the proxy's, and originHost and
	// originLit the origin's (see raceSpec.proxied).
	proxy      *proxyHop
	originHost string
	originLit  netip.Addr
}

// setHost sets the race's host from the URL's: a DNS name (rooted when it
// ends in a dot, which keeps the search list away from it) or a literal.
func (s *raceSpec) setHost(host string) {
	s.host, s.literal = hostOrLiteral(host)
	s.rooted = s.host != "" && strings.HasSuffix(host, ".")
}

// ownH2 reports whether the race's h2 connections run the package's own
// HTTP/2 client (internal/h2conn) rather than x/net's: sessions do, since
// their streams are read and written directly, with no request body or
// response body between them and the socket (issue 20), and WebTransport
// needs SETTINGS that x/net can neither send nor read. Plain requests
// keep x/net's request machinery (see h2Conn).
func (s raceSpec) ownH2() bool {
	return s.need == hev3.NeedWebSocket || s.need == hev3.NeedWebTransport
}

// queryName is the name the race's queries ask: host, with its trailing
// dot if it had one.
func (s raceSpec) queryName() string {
	if s.rooted {
		return s.host + "."
	}
	return s.host
}

// originPort is the origin's port, also when the race's port is its
// proxy's.
func (s raceSpec) originPort() uint16 {
	if s.proxy != nil {
		return s.proxy.targetPort
	}
	return s.port
}

// serverName is the TLS server name of the race's attempts.
func (s raceSpec) serverName() string {
	if s.proxy != nil {
		if s.originLit.IsValid() {
			return s.originLit.String()
		}
		return s.originHost
	}
	if s.literal.IsValid() {
		return s.literal.String()
	}
	return s.host
}

// machine returns the configuration of the race's state machine on the
// host's network hn, with what the Dialer learned there (h).
//
// The attempt delay is passed only when the user set one
// (WithAttemptDelay): otherwise the machine derives it from the RTT the
// Dialer measured on the attempt's path, or uses the draft's 250 ms
// (draft §6). The resolution delay is passed as set, zero included.
func (s raceSpec) machine(cfg config, hn hostNet, h hev3.History) hev3.Config {
	c := hev3.Config{
		Host:            s.queryName(),
		Literal:         s.literal,
		Port:            s.port,
		Versions:        s.versions,
		KnownH3:         s.knownH3,
		H3Port:          s.h3Port,
		NoHTTPS:         s.noHTTPS,
		Need:            s.need,
		MaxLive:         maxAttemptsPerDial,
		MaxLiveQueries:  maxQueriesPerDial,
		Avoid:           s.avoid,
		ResolutionDelay: cfg.resolutionDelay,
		AttemptDelay:    cfg.attemptDelay,
		OnlyFamily:      cfg.onlyFamily,
		Only:            cfg.family,

		ResolutionDelaySet: cfg.resolutionDelaySet,
		Connectivity:       hn.conn,
		LocalAddrs:         hn.local,
		History:            h,
		Shuffle:            rand.Shuffle,
	}
	if cfg.preferIPv4 {
		c.Prefer = hev3.IPv4
	}
	return c
}

// raceNet is the network of a race: the seams between the racer and the
// sockets. A nil field is the real one; tests set them on a Dialer to
// script DNS answers and connections without sockets.
type raceNet struct {
	// lookup asks one DNS question; noHTTPS says why it has no HTTPS
	// records, "" when it has (sysresolver.go).
	lookup  func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer
	noHTTPS string
	// dialTCP and dialQUIC run one attempt's transport handshake.
	dialTCP, dialQUIC dialFunc
	// settings waits for the server's SETTINGS on an h2 or h3 carrier.
	settings func(ctx context.Context, c *carrier) (hev3.Settings, error)
	// host looks at the host's network before a race: its identity,
	// which keys what the Dialer learns (netstate.go), its addresses
	// and its families. Tests change its identity to simulate a move to
	// another network.
	host func() hostNet
}

// race runs one Happy Eyeballs race to completion. Every goroutine it starts
// has ended when it returns, but for the DNS queries a won race leaves
// running to fill the cache, for at most hev3.DNSLinger (draft §6), which
// the Dialer owns then (dnsLinger, ended by CloseIdleConnections); the
// only thing that outlives it otherwise is the winning connection, which
// the caller owns.
//
// The race reads what the Dialer learned on the network the host is on,
// and teaches it what it showed (netstate.go).
func (d *Dialer) race(ctx context.Context, cfg config, spec raceSpec) (*carrier, *Report, error) {
	r, err := d.newRacer(ctx, cfg, spec)
	if err != nil {
		derr := &DialError{URL: spec.url, Stage: "dns", Err: err, Proxy: spec.proxyName()}
		rep := &Report{URL: spec.url, Kind: spec.kind, Start: time.Now(), Winner: -1, Err: derr.Error(), Proxy: spec.proxyReport()}
		return nil, rep, derr
	}
	car, rep, err := r.run()
	d.netmem.learn(r.host.id, time.Now(), rep)
	return car, rep, err
}

// newRacer prepares a race of spec on the Dialer's network.
func (d *Dialer) newRacer(ctx context.Context, cfg config, spec raceSpec) (*racer, error) {
	start := time.Now()
	socks := &udpSockets{}
	n, err := d.network(cfg, spec, socks)
	if err != nil {
		return nil, err
	}
	hn := n.host()
	view := d.netmem.view(hn.id, start)
	var noHTTPS string
	if n.noHTTPS != "" && !spec.noHTTPS {
		// Never wait for an answer that cannot come.
		spec.noHTTPS, noHTTPS = true, n.noHTTPS
	}
	raceCtx, stop := context.WithCancel(ctx)
	// DNS queries run on a context of their own: the caller's ends them
	// while the race runs, but a won race may hand them to the Dialer.
	dnsCtx, dnsStop := context.WithCancel(context.WithoutCancel(ctx))
	detach := context.AfterFunc(ctx, dnsStop)
	return &racer{
		ctx:           ctx,
		spec:          spec,
		net:           n,
		queryTokens:   &d.queries,
		attemptTokens: &d.attempts,
		raceCtx:       raceCtx,
		dnsCtx:        dnsCtx,
		events:        make(chan raceEvent),
		lingerer:      &d.lingering,
		host:          hn,
		view:          view,
		socks:         socks,
		obs:           newObserver(cfg),
		dns:           newDNSTrace(ctx, spec.host),
		start:         start,
		m:             hev3.New(spec.machine(cfg, hn, view), start),
		rep:           &Report{URL: spec.url, Kind: spec.kind, Start: start, Winner: -1, HTTPSUnavailable: noHTTPS, Proxy: spec.proxyReport()},
		stop:          stop,
		dnsStop:       dnsStop,
		dnsDetach:     detach,
		queries:       make(map[int]int),
		attempts:      make(map[int]*attemptState),
	}, nil
}

// network returns the network of a race of spec: the seams a test set in
// d.net, and the real resolver and dialers for the others. QUIC attempts
// share socks.
func (d *Dialer) network(cfg config, spec raceSpec, socks *udpSockets) (raceNet, error) {
	n := d.net
	if err := specialName(spec.host); err != nil {
		return n, err // .onion, .invalid: no query is sent
	}
	// originLookup resolves the origin's name itself, through the search
	// list: a SOCKS5 proxy that is not given names needs its addresses.
	originLookup := n.lookup
	if n.lookup == nil {
		res, err := d.resolver(cfg)
		if err != nil && !spec.literal.IsValid() {
			return n, err
		}
		if res != nil {
			originLookup = res.lookup
			n.lookup, n.noHTTPS = raceLookup(res.lookup, spec.queryName(), spec.port, !spec.noHTTPS), res.noHTTPS
		}
	} else if !spec.noHTTPS {
		n.lookup = httpsPortName(n.lookup, spec.port)
	}
	var sess *sessions // TLS sessions of the origin under cfg's trust
	if spec.tls != nil && (n.dialTCP == nil || n.dialQUIC == nil) {
		sess = d.sessions.get(originKey(cfg.trust().via(spec.proxy), spec.serverName(), spec.originPort()))
	}
	if n.dialTCP == nil && spec.proxy != nil {
		n.dialTCP = dialProxied(spec.proxy, cfg.tlsConfig(), spec.tls, spec.serverName(), spec.ownH2(), sess, spec.socksAddrs(cfg, originLookup))
	}
	if n.dialTCP == nil {
		n.dialTCP = dialTCP(spec.tls, spec.serverName(), spec.ownH2(), sess)
	}
	if n.dialQUIC == nil {
		n.dialQUIC = dialQUIC(spec.tls, spec.serverName(), socks, spec.wt, sess, spec.early)
	}
	if n.settings == nil {
		n.settings = func(ctx context.Context, c *carrier) (hev3.Settings, error) { return c.settings(ctx) }
	}
	if n.host == nil {
		n.host = lookHost
	}
	return n, nil
}

// raceLookup is lookup as a race asks it, for origin at port: HTTPS (when
// https is set) for the port's name (_8443._https.host, RFC 9460 §9.1)
// through the search list like the host itself, and every other name
// (the targets of HTTPS records) as fully qualified (absoluteTargets).
func raceLookup(lookup func(context.Context, string, hev3.RecordType) hev3.Answer, origin string, port uint16, https bool) func(context.Context, string, hev3.RecordType) hev3.Answer {
	if https {
		lookup = httpsPortName(lookup, port)
	}
	return absoluteTargets(lookup, origin)
}

// absoluteTargets makes lookup treat every name but the race's origin (as
// the machine asks it, hev3.Config.Host) as fully qualified: the targets
// of HTTPS records come from DNS, where names are absolute (RFC 1035
// §3.1), so the search list must not apply to them.
func absoluteTargets(lookup func(context.Context, string, hev3.RecordType) hev3.Answer, origin string) func(context.Context, string, hev3.RecordType) hev3.Answer {
	return func(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
		if !strings.HasSuffix(name, ".") && name != origin {
			name += "."
		}
		return lookup(ctx, name, t)
	}
}

// A racer drives one race, as draft-ietf-happy-happyeyeballs-v3 describes
// it: it carries out the actions of the state machine (internal/hev3) and
// feeds it the events of the network, one handler for each, keeping the
// Report as it goes. Its methods run on the dialing goroutine; the
// goroutines it starts, one per DNS query and one per attempt
// (raceio.go), only send it events.
type racer struct {
	// Set by newRacer; the goroutines of the race read them.
	ctx           context.Context // the caller's: when it ends, the race is aborted
	spec          raceSpec
	net           raceNet
	queryTokens   *tokens         // the Dialer's DNS queries in flight
	attemptTokens *tokens         // the Dialer's attempts in flight
	raceCtx       context.Context // ends with the race: every attempt of the race watches it
	dnsCtx        context.Context // the DNS queries': ends with the race, or after DNSLinger
	events        chan raceEvent
	lingerer      *dnsLinger // takes the queries in flight after a win
	host          hostNet    // the host's network when the race started
	view          *netView   // what the Dialer learned on it

	// Owned by the dialing goroutine.
	socks *udpSockets // the race's UDP sockets: the winner keeps its own
	obs   observer
	dns   dnsTrace
	start time.Time
	m     *hev3.Machine
	rep   *Report
	stop  context.CancelFunc // cancels raceCtx
	// dnsStop cancels dnsCtx; dnsDetach stops the caller's context from
	// doing so (false: it already has).
	dnsStop   context.CancelFunc
	dnsDetach func() bool
	// liveQueries and liveAttempts count the goroutines yet to send
	// their last event.
	liveQueries, liveAttempts int
	// lingerUntil is Succeed.KeepDNSUntil: the queries in flight at the
	// win may run until then.
	lingerUntil time.Time
	queries     map[int]int // query ID -> index in rep.DNS
	attempts    map[int]*attemptState
	win         *carrier
	failed      bool // the machine gave up, for failure
	failure     hev3.FailReason
	aborted     bool // the caller's context ended first
}

// attemptState is the racer's hold on one attempt.
type attemptState struct {
	id     int
	i      int                // index in rep.Attempts and rep.results
	cancel context.CancelFunc // ends the attempt's goroutine
	// car is the attempt's connection once it is up, until the attempt
	// wins or the racer closes it.
	car *carrier
}

// run runs the race: it polls the machine, carries out its actions and
// waits for the next event, until the machine is done; then it winds the
// race down.
func (r *racer) run() (*carrier, *Report, error) {
	defer r.stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		acts, wake := r.m.Poll(time.Now())
		for _, act := range acts {
			r.do(act)
		}
		if r.m.Done() {
			break
		}
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		}
		select {
		case ev := <-r.events:
			r.on(ev)
		case <-timer.C:
			// The machine's wake time: the next Poll acts on it.
		case <-r.ctx.Done():
			r.onAbort()
		}
	}
	r.windDown()
	return r.finish()
}

// since is the time since the race started, as the Report counts it.
func (r *racer) since() time.Duration { return time.Since(r.start) }

// attempt returns the Report's record of attempt st and its typed twin.
func (r *racer) attempt(st *attemptState) (*Attempt, *attemptResult) {
	return &r.rep.Attempts[st.i], &r.rep.results[st.i]
}

// do carries out one action of the machine.
func (r *racer) do(act hev3.Action) {
	switch a := act.(type) {
	case hev3.StartQuery:
		r.startQuery(a)
	case hev3.StartAttempt:
		r.startAttempt(a)
	case hev3.Cancel:
		r.cancel(a)
	case hev3.Succeed:
		r.succeed(a)
	case hev3.Fail:
		r.failed, r.failure = true, a.Reason
	}
}

// startQuery sends a DNS query on its own goroutine.
func (r *racer) startQuery(a hev3.StartQuery) {
	r.dns.start()
	r.queries[a.ID] = len(r.rep.DNS)
	r.rep.DNS = append(r.rep.DNS, DNSQuery{Name: a.Name, Type: a.Type.String(), Start: r.since()})
	r.obs.dnsStart(r.rep.DNS[len(r.rep.DNS)-1])
	r.liveQueries++
	go r.query(a)
}

// startAttempt dials an endpoint on its own goroutine.
func (r *racer) startAttempt(a hev3.StartAttempt) {
	r.dns.end(nil)
	ctx, cancel := context.WithCancel(r.raceCtx)
	st := &attemptState{id: a.ID, i: len(r.rep.Attempts), cancel: cancel}
	r.attempts[a.ID] = st
	ep := a.Endpoint
	r.rep.Attempts = append(r.rep.Attempts, Attempt{
		Addr:   ep.Addr,
		Proto:  protoName(r.spec, ep.Proto),
		Family: hev3.FamilyOf(ep.Addr.Addr()).String(),
		Hint:   ep.Hint,
		ECH:    len(ep.ECH) > 0,
		Start:  r.since(),
	})
	r.rep.results = append(r.rep.results, attemptResult{
		addr:  ep.Addr,
		proto: ep.Proto,
		plain: r.spec.tls == nil && !ep.Proto.QUIC(),
		start: r.rep.Attempts[st.i].Start,
	})
	r.obs.attemptStart(r.rep.Attempts[st.i])
	r.liveAttempts++
	dial := r.net.dialTCP
	if ep.Proto.QUIC() {
		dial = r.net.dialQUIC
	}
	go r.dial(ctx, a.ID, ep, dial)
}

// cancel ends an attempt the machine gave up on: another won, it lacked
// the capability, or the race was aborted. Its connection, if up, closes.
func (r *racer) cancel(c hev3.Cancel) {
	st := r.attempts[c.ID]
	st.cancel()
	r.drop(st)
	a, res := r.attempt(st)
	a.End = r.since()
	res.end = a.End
	switch c.Reason {
	case hev3.LostRace:
		res.outcome = outcomeLost
	case hev3.Incapable:
		res.outcome = outcomeIncapable
		a.Err = missing(r.spec.need, res.version, res.settings)
		res.err = fmt.Errorf("%w: %s", ErrUnsupported, a.Err)
	default:
		res.outcome = outcomeAborted
		res.err = context.Cause(r.ctx)
		if res.tcpUp && !res.connected {
			res.err = fmt.Errorf("TCP connected but the TLS handshake did not finish: %w", res.err)
		}
	}
	a.Outcome = res.outcome.String()
	if res.err != nil && a.Err == "" {
		a.Err = res.err.Error()
	}
	if c.Reason == hev3.Incapable {
		r.obs.incapable(*a)
	} else {
		r.obs.cancelled(*a)
	}
}

// succeed makes an attempt's connection the race's result.
func (r *racer) succeed(s hev3.Succeed) {
	st := r.attempts[s.ID]
	r.win, st.car = st.car, nil
	a, res := r.attempt(st)
	res.outcome = outcomeWon
	a.Outcome, a.End = res.outcome.String(), r.since()
	res.end = a.End
	r.rep.Winner = st.i
	r.lingerUntil = s.KeepDNSUntil
	r.rep.Reason = winReason(r.spec, a, res.version)
	r.obs.won(*a, r.rep.Reason)
}

// drop closes an attempt's connection, if it is up.
func (r *racer) drop(st *attemptState) {
	if st.car != nil {
		st.car.Close()
		st.car = nil
	}
}

// on handles one event from a goroutine of the race. Events of an
// attempt that is over (cancelled, failed) are ignored; a connection one
// brings is closed.
func (r *racer) on(ev raceEvent) {
	r.ended(ev)
	now := time.Now()
	if ev.kind == evAnswer {
		r.onAnswer(now, ev.id, ev.answer)
		return
	}
	st := r.attempts[ev.id]
	if _, res := r.attempt(st); res.outcome != outcomePending {
		if ev.car != nil {
			ev.car.Close()
		}
		return
	}
	switch ev.kind {
	case evTCPUp:
		r.onTCPUp(now, st)
	case evConnected:
		r.onConnected(now, st, ev.car)
	case evSettings:
		r.onSettings(now, st, ev.settings)
	case evFailed:
		r.onFailed(now, st, ev.err)
	}
}

// onAnswer records a DNS answer and gives it to the machine.
func (r *racer) onAnswer(now time.Time, id int, ans hev3.Answer) {
	q := &r.rep.DNS[r.queries[id]]
	q.End = r.since()
	fillAnswer(q, ans)
	r.dns.answer(ans.Addrs)
	r.obs.dnsDone(*q)
	r.m.OnDNS(now, id, ans)
}

// onTCPUp records that a TCP+TLS attempt's TCP connection is up: a stalled
// TLS handshake can then be told from a blackholed path. The handshake
// made progress: the attempt keeps the slot for one more attempt delay
// (draft §6.1).
func (r *racer) onTCPUp(now time.Time, st *attemptState) {
	a, res := r.attempt(st)
	a.TCP, res.tcpUp = r.since(), true
	res.tcpAt = a.TCP
	r.m.OnProgress(now, st.id)
}

// onConnected takes hold of an attempt's connection, whose transport
// handshake is done.
func (r *racer) onConnected(now time.Time, st *attemptState, car *carrier) {
	st.car = car
	a, res := r.attempt(st)
	res.connected, res.version, res.ech = true, car.version, car.ech
	a.Connected, a.Version, a.ECHResult = r.since(), car.version.String(), car.ech.String()
	if cs := car.tlsState(); cs != nil {
		a.Resumed = cs.DidResume
	}
	res.connectedAt = a.Connected
	if car.h3 != nil && car.h3.early != nil {
		// Up with 0-RTT keys, before the handshake ended.
		res.early, a.EarlyData = true, car.h3.early.outcome()
	}
	if t := car.tunnel; t != nil {
		a.Tunnel, a.ProxyStatus = t.at.Sub(r.start), t.status
	}
	r.obs.handshakeDone(*a)
	r.m.OnConnected(now, st.id, car.version)
}

// onSettings records the capabilities of the server's SETTINGS on an
// attempt's connection.
func (r *racer) onSettings(now time.Time, st *attemptState, s hev3.Settings) {
	a, res := r.attempt(st)
	res.settings = &s
	a.Settings = &Capabilities{At: r.since(), ExtendedConnect: s.ExtendedConnect, Datagrams: s.Datagrams, WebTransport: s.WebTransport}
	r.obs.settings(*a)
	r.m.OnSettings(now, st.id, s)
}

// onFailed records an attempt's failure and closes its connection, if up.
func (r *racer) onFailed(now time.Time, st *attemptState, err error) {
	r.drop(st)
	a, res := r.attempt(st)
	res.outcome, res.err = outcomeFailed, err
	a.End, a.Outcome, a.Err = r.since(), res.outcome.String(), err.Error()
	if _, ok := errors.AsType[*ECHError](err); ok {
		a.ECHResult = echRejected.String()
	}
	res.end = a.End
	r.obs.failed(*a)
	r.m.OnFailed(now, st.id, err)
}

// onAbort aborts the race when the caller's context ends.
func (r *racer) onAbort() {
	r.aborted = true
	r.m.Abort(time.Now())
}

// ended counts the last event of a goroutine of the race.
func (r *racer) ended(ev raceEvent) {
	switch {
	case !ev.last:
	case ev.kind == evAnswer:
		r.liveQueries--
	default:
		r.liveAttempts--
	}
}

// windDown ends every goroutine of the race and closes what losers still
// hold. Answers that come in meanwhile still tell what DNS did (a reply
// ignored as malformed, say).
//
// A race won while DNS queries were in flight leaves them running until
// Succeed.KeepDNSUntil, so that their answers fill the Dialer's cache
// (draft §6: "SHOULD still process DNS replies from the network for a
// short period of time (recommended to be 1 second)"): the Dialer takes
// them over (dnsLinger) once every attempt has ended, and the dial
// returns without waiting for them.
func (r *racer) windDown() {
	r.stop()
	for _, st := range r.attempts {
		st.cancel()
	}
	// The caller's context no longer ends the queries; if it already
	// has, they are ending and nothing lingers.
	detached := r.dnsDetach()
	linger := detached && !r.lingerUntil.IsZero() && r.liveQueries > 0
	if !linger {
		r.dnsStop()
	}
	for r.liveAttempts > 0 || (!linger && r.liveQueries > 0) {
		ev := <-r.events
		r.ended(ev)
		if ev.car != nil {
			ev.car.Close()
		}
		if ev.kind == evAnswer {
			if q := &r.rep.DNS[r.queries[ev.id]]; q.End == 0 {
				q.End = r.since()
				fillAnswer(q, ev.answer)
			}
		}
	}
	switch {
	case !linger:
	case r.liveQueries > 0:
		r.lingerer.take(r.events, r.liveQueries, r.lingerUntil, r.dnsStop)
	default: // answered while the attempts ended
		r.dnsStop()
	}
}

// finish completes the Report, hands the winner its UDP socket and closes
// the others, and returns the winner or the race's error.
func (r *racer) finish() (*carrier, *Report, error) {
	r.rep.Duration = r.since()
	r.rep.Learned = r.view.shaped()
	if r.failed && r.failure == hev3.FailDNS {
		r.dns.end(ErrNoAddress)
	} else {
		r.dns.end(nil)
	}
	r.socks.handOver(r.win)
	if r.win != nil {
		return r.win, r.rep, nil
	}
	derr := raceError(r.ctx, r.spec, r.rep, r.failure, r.aborted || !r.failed || expired(r.ctx))
	for i, res := range r.rep.results {
		if res.err != nil {
			a := r.rep.Attempts[i]
			derr.Attempts = append(derr.Attempts, AttemptError{Addr: a.Addr, Proto: a.Proto, Err: res.err})
		}
	}
	r.rep.Err = derr.Error()
	r.rep.Reason = "failed: " + derr.Stage
	return nil, r.rep, derr
}

// valueless is a context without values: its deadline and cancellation,
// but not the caller's httptrace hooks.
type valueless struct{ context.Context }

// Value returns nil for every key.
func (valueless) Value(any) any { return nil }

// expired reports whether ctx is done or its deadline has passed (net.Dialer
// may report the deadline before the context's timer fires).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// raceError builds the error of a race without a winner.
func raceError(ctx context.Context, spec raceSpec, rep *Report, reason hev3.FailReason, aborted bool) *DialError {
	e := &DialError{URL: spec.url, Proxy: spec.proxyName()}
	for _, q := range rep.DNS {
		if q.Err != "" {
			e.DNS = append(e.DNS, fmt.Errorf("%s %s: %s", q.Type, q.Name, q.Err))
		}
	}
	switch {
	case aborted:
		// The attempts may see the deadline a moment before ctx does.
		e.Err = context.Cause(ctx)
		if e.Err == nil {
			e.Err = context.DeadlineExceeded
		}
		e.Stage = "connect"
		if len(rep.Attempts) == 0 {
			e.Stage = "dns"
		}
	case reason == hev3.FailDNS && spec.proxy != nil:
		e.Stage, e.Err = "proxy", &ProxyError{Proxy: spec.proxyName(), Target: spec.proxy.target(), Op: "resolve",
			Err: fmt.Errorf("%w for the proxy's host %s", ErrNoAddress, spec.host)}
	case reason == hev3.FailDNS:
		e.Stage, e.Err = "dns", fmt.Errorf("%w for %s", ErrNoAddress, spec.host)
	case reason == hev3.FailUnsupported:
		e.Stage, e.Err = "capability", ErrUnsupported
	default:
		e.Stage = "connect"
	}
	if spec.proxy != nil && e.Stage == "connect" && e.Err == nil {
		e.Stage, e.Err = proxyBlame(rep)
	}
	if udpSilent(rep) {
		hint := errors.New("no QUIC handshake got an answer: UDP looks blocked")
		switch lack := incapable(rep); {
		case lack != "":
			// A connection was ruled out on its SETTINGS: that comes
			// first, as it holds whatever UDP does. The cause, when the
			// dial's bound ran out meanwhile, stays in the chain.
			if e.Err != nil && e.Err != ErrUnsupported {
				hint = fmt.Errorf("%w; %v", e.Err, hint)
			}
			e.Stage, e.Err = "capability", fmt.Errorf("%w: %s (%w)", ErrUnsupported, lack, hint)
		case e.Err != nil:
			e.Err = fmt.Errorf("%w (%v)", e.Err, hint)
		default:
			e.Err = hint
		}
	}
	return e
}

// incapable joins, once each, what the attempts ruled out on their
// SETTINGS lacked.
func incapable(rep *Report) string {
	var lack []string
	for i, a := range rep.results {
		if a.outcome == outcomeIncapable && i < len(rep.Attempts) && !slices.Contains(lack, rep.Attempts[i].Err) {
			lack = append(lack, rep.Attempts[i].Err)
		}
	}
	return strings.Join(lack, "; ")
}

// udpSilent reports whether a race made QUIC attempts and none of them
// heard from the server, whatever its TCP attempts did.
func udpSilent(rep *Report) bool {
	tried := false
	for _, a := range rep.results {
		if !a.proto.QUIC() {
			continue
		}
		if a.connected || heardFrom(a.err) {
			return false
		}
		tried = true
	}
	return tried
}

// Bounds on what a Report records of one answer. A race uses no more
// (internal/hev3's bounds; the resolver trims answers to them already),
// and a report stays small whatever DNS sent: DNSQuery.Omitted counts what
// is left out.
const (
	reportAddrs    = 2 * hev3.MaxAddrs
	reportServices = hev3.MaxServices
	reportHints    = 2 * hev3.MaxHints
	reportALPN     = resolver.MaxALPN
)

// fillAnswer records ans in q, within the report's bounds.
func fillAnswer(q *DNSQuery, ans hev3.Answer) {
	q.Found = ans.Name
	if ans.Err != nil {
		q.Err = ans.Err.Error()
		return
	}
	q.Omitted = ans.Omitted
	q.Addrs = capped(ans.Addrs, reportAddrs, &q.Omitted)
	for i, s := range ans.Services {
		if i == reportServices {
			q.Omitted += len(ans.Services) - i
			break
		}
		e := ServiceEntry{Priority: s.Priority, Target: s.Target, Port: s.Port, ECH: len(s.ECH) > 0}
		e.ALPN = capped(s.ALPN, reportALPN, &q.Omitted)
		hints := append(append([]netip.Addr(nil), s.IPv6Hints...), s.IPv4Hints...)
		e.Hints = capped(hints, reportHints, &q.Omitted)
		q.Services = append(q.Services, e)
	}
}

// capped returns the first n elements of s, adding the number of the
// others to omitted.
func capped[T any](s []T, n int, omitted *int) []T {
	if len(s) <= n {
		return s
	}
	*omitted += len(s) - n
	return s[:n:n]
}
