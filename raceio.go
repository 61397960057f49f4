package dialer

import (
	"context"
	"fmt"

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
// flight, and reports the answer. It runs on its own goroutine.
func (r *racer) query(q hev3.StartQuery) {
	var ans hev3.Answer
	release, err := r.queryTokens.acquire(r.raceCtx, maxQueriesPerDialer)
	if err != nil {
		ans.Err = fmt.Errorf("dns: %s %s: waiting for one of the Dialer's %d queries in flight: %w", q.Type, q.Name, maxQueriesPerDialer, err)
	} else {
		// DNS traffic is not the caller's connection: keep httptrace's
		// connect hooks out of it.
		ans = r.net.lookup(valueless{r.raceCtx}, q.Name, q.Type)
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
