package loopback

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Impairment is what ImpairTCP and ImpairUDP do to the traffic they carry,
// in each direction on its own.
type Impairment struct {
	// Delay is the one-way delay, as in LatencyTCP and LatencyUDP.
	Delay time.Duration
	// Jitter adds to each datagram (UDP) or chunk of bytes (TCP) an extra
	// delay drawn uniformly from [0, Jitter). Jitter never reorders: what
	// was read later is never sent earlier, so a short draw behind a long
	// one waits for it, as in a FIFO router queue.
	Jitter time.Duration
	// DropEvery drops the Nth, 2Nth, 3Nth... datagram read in each
	// direction (UDP only; 0 drops none, 1 drops all).
	DropEvery int
	// Seed seeds the jitter: the same seed draws the same delays.
	Seed uint64
}

func (im Impairment) check(udp bool) error {
	switch {
	case im.Delay < 0 || im.Jitter < 0:
		return fmt.Errorf("dialertest: negative delay %v or jitter %v", im.Delay, im.Jitter)
	case im.DropEvery < 0:
		return fmt.Errorf("dialertest: negative DropEvery %d", im.DropEvery)
	case im.DropEvery > 0 && !udp:
		return errors.New("dialertest: DropEvery applies to UDP only: TCP retransmits what a path drops")
	}
	return nil
}

// Impaired is a running impairment proxy (ImpairTCP, ImpairUDP, DropUDP):
// a Proxy that also counts what it dropped.
type Impaired struct {
	*Proxy
	dropped atomic.Int64
}

// Dropped returns how many datagrams the proxy dropped on purpose
// (DropEvery), in both directions.
func (p *Impaired) Dropped() int64 { return p.dropped.Load() }

// delayLine assigns due times to what one direction carries, and says
// which datagrams to drop.
type delayLine struct {
	im *Impairment

	mu   sync.Mutex
	rng  *rand.Rand
	last time.Time // due time of the previous datagram or chunk
	n    int       // datagrams read so far
}

func newDelayLine(im *Impairment, stream uint64) *delayLine {
	return &delayLine{im: im, rng: rand.New(rand.NewPCG(im.Seed, stream))}
}

// next returns the due time of what was read at now, and whether to drop
// it instead (counted for UDP only).
func (l *delayLine) next(now time.Time, udp bool) (due time.Time, drop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if udp {
		l.n++
		if n := l.im.DropEvery; n > 0 && l.n%n == 0 {
			return time.Time{}, true
		}
	}
	due = now.Add(l.im.Delay)
	if j := l.im.Jitter; j > 0 {
		due = due.Add(time.Duration(l.rng.Int64N(int64(j))))
	}
	if due.Before(l.last) {
		due = l.last
	}
	l.last = due
	return due, false
}

// DropUDP listens for UDP on listenAddr and forwards every datagram to
// upstream and back without delay, dropping every nth datagram in each
// direction: a lossy path on which QUIC must retransmit. See ImpairUDP.
func DropUDP(listenAddr, upstream string, n int) (*Impaired, error) {
	if n < 1 {
		return nil, fmt.Errorf("dialertest: DropUDP needs n >= 1, got %d", n)
	}
	return ImpairUDP(listenAddr, upstream, Impairment{DropEvery: n})
}

// LatencyJitterTCP is LatencyTCP with jitter: each chunk of bytes is
// delayed by oneWay plus a random extra in [0, jitter), in order. See
// ImpairTCP.
func LatencyJitterTCP(listenAddr, upstream string, oneWay, jitter time.Duration) (*Impaired, error) {
	return ImpairTCP(listenAddr, upstream, Impairment{Delay: oneWay, Jitter: jitter})
}

// LatencyJitterUDP is LatencyUDP with jitter: each datagram is delayed by
// oneWay plus a random extra in [0, jitter), in order. See ImpairUDP.
func LatencyJitterUDP(listenAddr, upstream string, oneWay, jitter time.Duration) (*Impaired, error) {
	return ImpairUDP(listenAddr, upstream, Impairment{Delay: oneWay, Jitter: jitter})
}

// ImpairUDP listens for UDP on listenAddr (a loopback literal such as
// "127.0.0.1:0") and forwards every datagram to upstream (a loopback literal
// and port) and the answers back, as LatencyUDP does (one upstream socket
// per client address, living until Close), impaired by im: delayed by
// im.Delay plus jitter, and every im.DropEvery-th datagram of each
// direction dropped. Count reports the client addresses seen.
func ImpairUDP(listenAddr, upstream string, im Impairment) (*Impaired, error) {
	if err := im.check(true); err != nil {
		return nil, err
	}
	return impairUDP(listenAddr, upstream, im, "impairment")
}

// impairUDP starts the UDP proxy behind ImpairUDP and LatencyUDP; kind
// names it in errors.
func impairUDP(listenAddr, upstream string, im Impairment, kind string) (*Impaired, error) {
	lap, uap, err := latencyAddrs(listenAddr, upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP(network("udp", lap), net.UDPAddrFromAddrPort(lap))
	if err != nil {
		return nil, fmt.Errorf("dialertest: %s proxy listen %s: %w", kind, listenAddr, err)
	}
	setUDPBuffers(ln)
	p := &Impaired{Proxy: &Proxy{addr: ln.LocalAddr(), oneWay: im.Delay, done: make(chan struct{})}}
	u := &udpProxy{
		p:        p,
		ln:       ln,
		upstream: net.UDPAddrFromAddrPort(uap),
		network:  network("udp", uap),
		sessions: map[netip.AddrPort]*net.UDPConn{},
		up:       newDelayLine(&im, 1),
		down:     newDelayLine(&im, 2),
		toUp:     make(chan datagram, latencyUDPQueue),
		toClient: make(chan datagram, latencyUDPQueue),
	}
	p.wg.Go(func() { u.deliver(u.toUp) })
	p.wg.Go(func() { u.deliver(u.toClient) })
	p.wg.Go(u.readClients)
	p.stop = u.close
	return p, nil
}

// ImpairTCP listens for TCP on listenAddr (a loopback literal such as
// "127.0.0.1:0") and proxies every connection to upstream (a loopback
// literal and port) like LatencyTCP, TCP handshake simulation included (with
// im.Delay as the one-way delay), but each chunk of bytes is delayed by
// im.Delay plus a random extra in [0, im.Jitter), in order. im.DropEvery
// must be 0. Count reports the connections accepted.
func ImpairTCP(listenAddr, upstream string, im Impairment) (*Impaired, error) {
	if err := im.check(false); err != nil {
		return nil, err
	}
	return impairTCP(listenAddr, upstream, im, "impairment")
}

// impairTCP starts the TCP proxy behind ImpairTCP and LatencyTCP; kind
// names it in errors.
func impairTCP(listenAddr, upstream string, im Impairment, kind string) (*Impaired, error) {
	lap, uap, err := latencyAddrs(listenAddr, upstream)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen(network("tcp", lap), lap.String())
	if err != nil {
		return nil, fmt.Errorf("dialertest: %s proxy listen %s: %w", kind, listenAddr, err)
	}
	p := &Impaired{Proxy: &Proxy{addr: l.Addr(), oneWay: im.Delay, done: make(chan struct{})}}
	ctx, cancel := context.WithCancel(context.Background()) // ends upstream connects on Close
	var (
		mu     sync.Mutex
		closed bool
		links  = map[*tcpLink]struct{}{}
		stream atomic.Uint64
	)
	track := func(k *tcpLink) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		links[k] = struct{}{}
		return true
	}
	untrack := func(k *tcpLink) {
		mu.Lock()
		defer mu.Unlock()
		delete(links, k)
	}
	dial := func() (net.Conn, error) {
		dctx, dcancel := context.WithTimeout(ctx, latencyDialTimeout)
		defer dcancel()
		var d net.Dialer
		return d.DialContext(dctx, network("tcp", uap), uap.String())
	}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by stop
			}
			accepted := time.Now()
			p.count.Add(1)
			k := &tcpLink{p: p.Proxy, client: c, dead: make(chan struct{})}
			if !track(k) {
				c.Close()
				continue
			}
			s := stream.Add(2)
			up, down := newDelayLine(&im, s), newDelayLine(&im, s+1)
			p.wg.Go(func() {
				defer untrack(k)
				k.run(accepted, dial, up, down)
			})
		}
	})
	p.stop = func() error {
		cancel()
		err := l.Close()
		mu.Lock()
		closed = true
		all := make([]*tcpLink, 0, len(links))
		for k := range links {
			all = append(all, k)
		}
		mu.Unlock()
		for _, k := range all {
			k.teardown()
		}
		return err
	}
	return p, nil
}
