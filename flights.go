package dialer

import (
	"context"
	"sync"
)

// flights keeps concurrent dials to one origin from racing side by side:
// the first leads the race, the others wait for it and then look in the
// pool, where an h2 or h3 winner serves them all.
type flights struct {
	mu sync.Mutex
	m  map[poolKey]chan struct{}
}

// start returns a done func when the caller leads a race to key; it must
// call it when the race is over. When another race to key is in flight,
// start waits for it and returns nil, or ctx's error.
func (f *flights) start(ctx context.Context, key poolKey) (done func(), err error) {
	f.mu.Lock()
	if ch, ok := f.m[key]; ok {
		f.mu.Unlock()
		select {
		case <-ch:
			return nil, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	if f.m == nil {
		f.m = make(map[poolKey]chan struct{})
	}
	ch := make(chan struct{})
	f.m[key] = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(ch)
	}, nil
}

// turn decides how a dial to origin key goes when other dials may be under
// way. try uses a pooled connection and reports whether it served the
// dial; ok tells which pooled connections the dial could use.
//
// turn returns served when try did. Otherwise the caller races and must
// call done when its session is up or failed: if it leads the origin's
// race, that lets the waiters find the new connection; if the origin's
// last race gave no shareable connection (HTTP/1.1), it races on its own
// and done does nothing.
func (d *Dialer) turn(ctx context.Context, key poolKey, ok func(*carrier) bool, try func() bool) (done func(), served bool, err error) {
	for {
		if try() {
			return func() {}, true, nil
		}
		done, err := d.flights.start(ctx, key)
		if err != nil {
			return func() {}, false, err
		}
		if done != nil {
			return done, false, nil
		}
		// Another dial's race just ended. A shareable connection that
		// is already full sends us back in line to lead the next race;
		// none at all means we race alone.
		if !d.pool.has(key, ok) {
			return func() {}, try(), nil
		}
	}
}
