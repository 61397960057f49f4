package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/wt2"
)

// raceSpec says what one race dials and what its winner must prove.
type raceSpec struct {
	url      string
	kind     string
	host     string     // DNS name, or "" when literal is set
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
}

// raceEvent is what the goroutines of a race report to its loop. done is
// set on a goroutine's last event.
type raceEvent struct {
	id       int
	query    bool
	answer   hev3.Answer
	car      *carrier       // the transport is up
	settings *hev3.Settings // the server's SETTINGS arrived
	tcpUp    bool           // a TCP+TLS attempt's TCP is up
	err      error
	done     bool
}

// attemptState is the loop's view of one attempt.
type attemptState struct {
	cancel context.CancelFunc
	car    *carrier // owned by the race until it wins or is closed
	rec    int      // index in report.Attempts
	over   bool     // no more events are expected to matter
	err    error
}

// race runs one Happy Eyeballs race to completion. Every goroutine it starts
// has ended when it returns; the only thing that outlives it is the winning
// connection, which the caller owns.
func (d *Dialer) race(ctx context.Context, cfg config, spec raceSpec) (*carrier, *Report, error) {
	start := time.Now()
	rep := &Report{URL: spec.url, Kind: spec.kind, Start: start, Winner: -1}
	since := func() time.Duration { return time.Since(start) }
	obs := newObserver(cfg)

	res, err := d.resolver(cfg)
	if err != nil && !spec.literal.IsValid() {
		derr := &DialError{URL: spec.url, Stage: "dns", Err: err}
		rep.Err = derr.Error()
		return nil, rep, derr
	}

	hcfg := hev3.Config{
		Host:            spec.host,
		Literal:         spec.literal,
		Port:            spec.port,
		Versions:        spec.versions,
		KnownH3:         spec.knownH3,
		H3Port:          spec.h3Port,
		NoHTTPS:         spec.noHTTPS,
		Need:            spec.need,
		MaxLive:         maxAttemptsPerDial,
		Avoid:           spec.avoid,
		ResolutionDelay: cfg.resolutionDelay,
		AttemptDelay:    cfg.attemptDelay,
		OnlyFamily:      cfg.onlyFamily,
		Only:            cfg.family,
	}
	if cfg.preferIPv4 {
		hcfg.Prefer = hev3.IPv4
	}
	m := hev3.New(hcfg, start)
	trace := httptrace.ContextClientTrace(ctx)
	dnsStarted, dnsDone := false, false
	var resolved []net.IPAddr
	endDNS := func(err error) {
		if dnsStarted && !dnsDone && trace != nil && trace.DNSDone != nil {
			trace.DNSDone(httptrace.DNSDoneInfo{Addrs: resolved, Err: err})
		}
		dnsDone = true
	}

	// raceCtx ends every query and attempt goroutine when the race ends.
	raceCtx, cancelRace := context.WithCancel(ctx)
	defer cancelRace()
	socks := &udpSockets{}
	dialTCP, dialQUIC := dialTCP(spec.tls, spec.serverName(), spec.wt != nil), dialQUIC(spec.tls, spec.serverName(), socks, spec.wt)
	events := make(chan raceEvent)
	live := 0
	queries := map[int]int{} // query id -> index in rep.DNS
	attempts := map[int]*attemptState{}
	var order []int // attempt ids in start order
	var (
		win     *carrier
		failure hev3.FailReason
		failed  bool
		aborted bool
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	for !m.Done() {
		acts, wake := m.Poll(time.Now())
		for _, act := range acts {
			switch a := act.(type) {
			case hev3.StartQuery:
				if !dnsStarted && trace != nil && trace.DNSStart != nil {
					trace.DNSStart(httptrace.DNSStartInfo{Host: spec.host})
				}
				dnsStarted = true
				queries[a.ID] = len(rep.DNS)
				rep.DNS = append(rep.DNS, DNSQuery{Name: a.Name, Type: a.Type.String(), Start: since()})
				obs.dnsStart(rep.DNS[len(rep.DNS)-1])
				live++
				go func() {
					// DNS traffic is not the caller's connection: keep
					// httptrace's connect hooks out of it.
					ans := res.Lookup(valueless{raceCtx}, a.Name, a.Type)
					events <- raceEvent{id: a.ID, query: true, answer: ans, done: true}
				}()
			case hev3.StartAttempt:
				endDNS(nil)
				actx, cancel := context.WithCancel(raceCtx)
				st := &attemptState{cancel: cancel, rec: len(rep.Attempts)}
				attempts[a.ID] = st
				order = append(order, a.ID)
				rep.Attempts = append(rep.Attempts, Attempt{
					Addr:   a.Endpoint.Addr,
					Proto:  protoName(spec, a.Endpoint.Proto),
					Family: hev3.FamilyOf(a.Endpoint.Addr.Addr()).String(),
					Hint:   a.Endpoint.Hint,
					ECH:    len(a.Endpoint.ECH) > 0,
					Start:  since(),
				})
				obs.attemptStart(rep.Attempts[st.rec])
				live++
				dial := dialTCP
				if a.Endpoint.Proto.QUIC() {
					dial = dialQUIC
				}
				go func() {
					// Wait for one of the Dialer's attempt tokens.
					select {
					case d.attempts <- struct{}{}:
						defer func() { <-d.attempts }()
					case <-actx.Done():
						events <- raceEvent{id: a.ID, err: context.Cause(actx), done: true}
						return
					}
					tcpUp := func() { events <- raceEvent{id: a.ID, tcpUp: true} }
					car, err := dial(actx, a.Endpoint, tcpUp)
					if err != nil {
						events <- raceEvent{id: a.ID, err: err, done: true}
						return
					}
					wait := spec.need != hev3.NeedTransport && car.needsSettings()
					events <- raceEvent{id: a.ID, car: car, done: !wait}
					if wait {
						s, err := car.settings(actx)
						events <- raceEvent{id: a.ID, settings: &s, err: err, done: true}
					}
				}()
			case hev3.Cancel:
				st := attempts[a.ID]
				st.cancel()
				st.over = true
				if st.car != nil {
					st.car.Close()
					st.car = nil
				}
				r := &rep.Attempts[st.rec]
				r.End = since()
				switch a.Reason {
				case hev3.LostRace:
					r.Outcome = "lost"
				case hev3.Incapable:
					r.Outcome, r.Err = "incapable", missing(spec.need, r)
					st.err = fmt.Errorf("%w: %s", ErrUnsupported, r.Err)
				default:
					r.Outcome = "aborted"
					st.err = context.Cause(ctx)
					if r.TCP != 0 && r.Connected == 0 {
						st.err = fmt.Errorf("TCP connected but the TLS handshake did not finish: %w", st.err)
					}
				}
				if st.err != nil && r.Err == "" {
					r.Err = st.err.Error()
				}
				if a.Reason == hev3.Incapable {
					obs.incapable(*r)
				} else {
					obs.cancelled(*r)
				}
			case hev3.Succeed:
				st := attempts[a.ID]
				win = st.car
				st.car, st.over = nil, true
				r := &rep.Attempts[st.rec]
				r.Outcome, r.End = "won", since()
				rep.Winner = st.rec
				rep.Reason = winReason(spec, r)
				obs.won(*r, rep.Reason)
			case hev3.Fail:
				failed, failure = true, a.Reason
			}
		}
		if m.Done() {
			break
		}
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		}
		select {
		case ev := <-events:
			if ev.done {
				live--
			}
			now := time.Now()
			if ev.query {
				q := &rep.DNS[queries[ev.id]]
				q.End = since()
				fillAnswer(q, ev.answer)
				for _, a := range ev.answer.Addrs {
					resolved = append(resolved, net.IPAddr{IP: a.AsSlice()})
				}
				obs.dnsDone(*q)
				m.OnDNS(now, ev.id, ev.answer)
				continue
			}
			st := attempts[ev.id]
			if st.over {
				if ev.car != nil {
					ev.car.Close()
				}
				continue
			}
			r := &rep.Attempts[st.rec]
			switch {
			case ev.tcpUp:
				r.TCP = since()
			case ev.err != nil:
				if st.car != nil {
					st.car.Close()
					st.car = nil
				}
				st.err, st.over = ev.err, true
				r.End, r.Outcome, r.Err = since(), "failed", ev.err.Error()
				obs.failed(*r)
				m.OnFailed(now, ev.id, ev.err)
			case ev.car != nil:
				st.car = ev.car
				r.Connected, r.Version = since(), ev.car.version.String()
				obs.handshakeDone(*r)
				m.OnConnected(now, ev.id, ev.car.version)
			case ev.settings != nil:
				r.Settings = &Capabilities{At: since(), ExtendedConnect: ev.settings.ExtendedConnect, Datagrams: ev.settings.Datagrams, WebTransport: ev.settings.WebTransport}
				obs.settings(*r)
				m.OnSettings(now, ev.id, *ev.settings)
			}
		case <-timer.C:
		case <-ctx.Done():
			aborted = true
			m.Abort(time.Now())
		}
	}

	// End every goroutine of the race; close what losers still hold.
	cancelRace()
	for _, st := range attempts {
		st.cancel()
	}
	for live > 0 {
		ev := <-events
		if ev.done {
			live--
		}
		if ev.car != nil {
			ev.car.Close()
		}
		if ev.query {
			// Answers that come in while the race winds down still tell
			// what DNS did (a reply ignored as malformed, say).
			q := &rep.DNS[queries[ev.id]]
			if q.End == 0 {
				q.End = since()
				fillAnswer(q, ev.answer)
			}
		}
	}
	rep.Duration = since()
	if failed && failure == hev3.FailDNS {
		endDNS(ErrNoAddress)
	} else {
		endDNS(nil)
	}
	// The winner keeps its UDP socket; every other one closes.
	var keep *quic.Transport
	if win != nil && win.h3 != nil {
		keep = win.transport
		win.h3.own(keep)
	}
	socks.close(keep)

	if win != nil {
		return win, rep, nil
	}
	derr := raceError(ctx, spec, rep, failure, aborted || !failed || expired(ctx))
	for _, id := range order {
		if st := attempts[id]; st.err != nil {
			r := rep.Attempts[st.rec]
			derr.Attempts = append(derr.Attempts, AttemptError{Addr: r.Addr, Proto: r.Proto, Err: st.err})
		}
	}
	rep.Err = derr.Error()
	rep.Reason = "failed: " + derr.Stage
	return nil, rep, derr
}

// valueless is a context without values: its deadline and cancellation,
// but not the caller's httptrace hooks.
type valueless struct{ context.Context }

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
	e := &DialError{URL: spec.url}
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
	case reason == hev3.FailDNS:
		e.Stage, e.Err = "dns", fmt.Errorf("%w for %s", ErrNoAddress, spec.host)
	case reason == hev3.FailUnsupported:
		e.Stage, e.Err = "capability", ErrUnsupported
	default:
		e.Stage = "connect"
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
	for _, a := range rep.Attempts {
		if a.Outcome == "incapable" && !slices.Contains(lack, a.Err) {
			lack = append(lack, a.Err)
		}
	}
	return strings.Join(lack, "; ")
}

// udpSilent reports whether a race made QUIC attempts and none of them
// heard from the server, whatever its TCP attempts did.
func udpSilent(rep *Report) bool {
	quic := false
	for _, a := range rep.Attempts {
		if a.Proto != "h3" {
			continue
		}
		if a.Connected != 0 || strings.Contains(a.Err, "refused") {
			return false
		}
		quic = true
	}
	return quic
}

func fillAnswer(q *DNSQuery, ans hev3.Answer) {
	if ans.Err != nil {
		q.Err = ans.Err.Error()
		return
	}
	q.Addrs = ans.Addrs
	for _, s := range ans.Services {
		e := ServiceEntry{Priority: s.Priority, Target: s.Target, ALPN: s.ALPN, Port: s.Port, ECH: len(s.ECH) > 0}
		e.Hints = append(append(e.Hints, s.IPv6Hints...), s.IPv4Hints...)
		q.Services = append(q.Services, e)
	}
}

func protoName(spec raceSpec, p hev3.Proto) string {
	if spec.need == hev3.NeedTransport && spec.versions == hev3.Versions(hev3.H1) && !p.QUIC() && spec.kind == "tcp" {
		return "tcp"
	}
	return p.String()
}

// missing says what an incapable attempt lacked.
func missing(need hev3.Need, a *Attempt) string {
	if a.Version == "h1" {
		return "WebTransport needs HTTP/2 or HTTP/3 but the server chose HTTP/1.1"
	}
	var lack []string
	s := a.Settings
	if s == nil {
		s = &Capabilities{}
	}
	if !s.ExtendedConnect {
		lack = append(lack, "SETTINGS_ENABLE_CONNECT_PROTOCOL")
	}
	if need == hev3.NeedWebTransport {
		if a.Version == "h3" && !s.Datagrams {
			lack = append(lack, "SETTINGS_H3_DATAGRAM")
		}
		switch {
		case s.WebTransport:
		case a.Version == "h2":
			lack = append(lack, "SETTINGS_WT_ENABLED (WebTransport, "+wt2.Draft+") or draft-13's SETTINGS_WT_INITIAL_*")
		default:
			lack = append(lack, "WebTransport")
		}
	}
	return fmt.Sprintf("%s SETTINGS lack %s", a.Version, strings.Join(lack, ", "))
}

// serverName is the TLS server name of the race's attempts.
func (s raceSpec) serverName() string {
	if s.literal.IsValid() {
		return s.literal.String()
	}
	return s.host
}

// winReason explains in one line why an attempt won.
func winReason(spec raceSpec, a *Attempt) string {
	why := fmt.Sprintf("%s %s won after %s", a.Proto, a.Addr, fmtDur(a.End))
	switch spec.need {
	case hev3.NeedWebSocket:
		if a.Version == "h1" {
			why += ": first TLS/TCP connection for an HTTP/1.1 upgrade"
		} else {
			why += ": first connection whose SETTINGS enable extended CONNECT"
		}
	case hev3.NeedWebTransport:
		why += ": first connection whose SETTINGS enable WebTransport"
	case hev3.NeedHTTP:
		if a.Version == "h1" {
			why += ": first TLS/TCP connection (HTTP/1.1)"
		} else {
			why += ": first connection whose SETTINGS arrived"
		}
	default:
		why += ": first connection established"
	}
	return why
}
