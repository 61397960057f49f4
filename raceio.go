package dialer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// An eventKind says what happened to a query or an attempt of a race.
type eventKind uint8

const (
	evAnswer    eventKind = iota // a DNS query was answered (answer)
	evTCPUp                      // a TCP+TLS attempt's TCP connection is up
	evConnected                  // an attempt's transport handshake is done (car)
	evSettings                   // the server's SETTINGS arrived (settings)
	evFailed                     // an attempt failed (err)
)

// A raceEvent is what a goroutine of a race reports to its racer.
type raceEvent struct {
	kind     eventKind
	id       int // the query's or the attempt's ID in the machine
	answer   hev3.Answer
	car      *carrier
	settings hev3.Settings
	err      error
	// last marks the goroutine's last event: it ends once the racer has
	// it.
	last bool
}

// query asks one DNS question, within the Dialer's bound on queries in
// flight, and reports the answer. It runs on its own goroutine, until the
// race ends or, when the race hands it to the Dialer, DNSLinger after the
// win (see windDown).
func (r *racer) query(q hev3.StartQuery) {
	var ans hev3.Answer
	release, err := r.queryTokens.acquire(r.dnsCtx, maxQueriesPerDialer)
	if err != nil {
		ans.Err = fmt.Errorf("dns: %s %s: waiting for one of the Dialer's %d queries in flight: %w", q.Type, q.Name, maxQueriesPerDialer, err)
	} else {
		// DNS traffic is not the caller's connection: keep httptrace's
		// connect hooks out of it.
		ans = r.net.lookup(valueless{r.dnsCtx}, q.Name, q.Type)
		release()
	}
	r.events <- raceEvent{kind: evAnswer, id: q.ID, answer: ans, last: true}
}

// dial runs attempt id on ep, within the Dialer's bound on attempts in
// flight, and reports its progress. It runs on its own goroutine, and
// ends when ctx does if not before.
func (r *racer) dial(ctx context.Context, id int, ep hev3.Endpoint, dial dialFunc) {
	last := raceEvent{kind: evFailed, id: id, last: true}
	if release, err := r.attemptTokens.acquire(ctx, maxAttemptsPerDialer); err != nil {
		last.err = err
	} else {
		last = r.connect(ctx, id, ep, dial)
		release()
	}
	r.events <- last
}

// connect dials ep and, when the race needs them, waits for the server's
// SETTINGS. It reports the steps before the last and returns the last.
func (r *racer) connect(ctx context.Context, id int, ep hev3.Endpoint, dial dialFunc) raceEvent {
	car, err := dial(ctx, ep, func() { r.events <- raceEvent{kind: evTCPUp, id: id} })
	if err != nil {
		return raceEvent{kind: evFailed, id: id, err: err, last: true}
	}
	if r.spec.need == hev3.NeedTransport || !car.needsSettings() {
		return raceEvent{kind: evConnected, id: id, car: car, last: true}
	}
	r.events <- raceEvent{kind: evConnected, id: id, car: car}
	s, err := r.net.settings(ctx, car)
	if err != nil {
		return raceEvent{kind: evFailed, id: id, err: err, last: true}
	}
	return raceEvent{kind: evSettings, id: id, settings: s, last: true}
}

// dnsLinger owns the DNS queries that won races left running so that
// their answers fill the cache (draft §6; see racer.windDown): the dial
// has returned, so a goroutine of the Dialer drains their events until
// they end. They are cancelled at their deadline (hev3.DNSLinger after the
// win) or by CloseIdleConnections, whichever comes first. The zero value
// is ready.
type dnsLinger struct {
	mu     sync.Mutex
	active map[*lingering]struct{}
}

// lingering is one race's queries left running.
type lingering struct {
	cancel context.CancelFunc // ends the queries
	done   chan struct{}      // closed once they all have
}

// take drains the last events of n queries from events until they end,
// cancelling them (cancel) at until.
func (l *dnsLinger) take(events <-chan raceEvent, n int, until time.Time, cancel context.CancelFunc) {
	g := &lingering{cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	if l.active == nil {
		l.active = make(map[*lingering]struct{})
	}
	l.active[g] = struct{}{}
	l.mu.Unlock()
	go func() {
		defer close(g.done)
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		for n > 0 {
			select {
			case ev := <-events:
				if ev.last {
					n--
				}
			case <-t.C:
				cancel()
			}
		}
		cancel()
		l.mu.Lock()
		delete(l.active, g)
		l.mu.Unlock()
	}()
}

// stop cancels every query left running and waits for them to end.
func (l *dnsLinger) stop() {
	l.mu.Lock()
	var gs []*lingering
	for g := range l.active {
		g.cancel()
		gs = append(gs, g)
	}
	l.mu.Unlock()
	for _, g := range gs {
		<-g.done
	}
}
