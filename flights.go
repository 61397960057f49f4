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
	m  map[string]chan struct{}
}

// start returns a done func when the caller leads a race to key; it must
// call it when the race is over. When another race to key is in flight,
// start waits for it and returns nil, or ctx's error.
func (f *flights) start(ctx context.Context, key string) (done func(), err error) {
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
		f.m = make(map[string]chan struct{})
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
