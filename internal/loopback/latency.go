package loopback

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Latency proxies add a fixed one-way delay to loopback traffic, so tests
// can count the round trips a dial needs: through a proxy with one-way delay
// D, every round trip costs at least 2*D, while loopback itself costs
// microseconds.

const (
	// latencyReadSize is the most a TCP proxy reads at once: one chunk.
	latencyReadSize = 32 << 10
	// latencyTCPQueue bounds the chunks in flight per TCP direction. A full
	// queue stops reading, which the sender sees as TCP back-pressure.
	latencyTCPQueue = 1024
	// latencyUDPQueue bounds the datagrams in flight per UDP direction. A
	// datagram that finds the queue full is dropped, as a router would.
	latencyUDPQueue = 4096
	// latencyUDPBuffer is the socket buffer size a UDP proxy asks for, so
	// that a burst of QUIC packets is not dropped by the kernel; it gets at
	// most net.core.rmem_max and wmem_max.
	latencyUDPBuffer = 4 << 20
	// latencyDialTimeout bounds a TCP proxy's connect to its upstream.
	latencyDialTimeout = 5 * time.Second
)

// Proxy is a running latency proxy (LatencyTCP, LatencyUDP) bound to one
// loopback address. Close stops it and releases every socket and goroutine
// it holds.
type Proxy struct {
	addr   net.Addr
	oneWay time.Duration
	count  atomic.Int64
	done   chan struct{} // closed by Close: every sleeper wakes, every loop ends
	wg     sync.WaitGroup
	stop   func() error // closes the sockets; wg.Wait follows

	closeOnce sync.Once
	closeErr  error
}

// Addr returns the address the proxy listens on, with the real port when it
// was created on port 0.
func (p *Proxy) Addr() net.Addr { return p.addr }

// Port returns the port the proxy listens on.
func (p *Proxy) Port() int {
	switch a := p.addr.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	return 0
}

// Count reports what the proxy has carried: TCP connections accepted by
// LatencyTCP, client addresses (each with its own upstream socket) seen by
// LatencyUDP.
func (p *Proxy) Count() int64 { return p.count.Load() }

// Close stops the proxy: it closes the listening socket and every proxied
// connection or upstream socket, drops whatever is still in flight, and
// waits for all its goroutines. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.closeErr = p.stop()
		p.wg.Wait()
	})
	return p.closeErr
}

// sleepUntil waits until t or until the proxy closes, and reports whether t
// was reached.
func (p *Proxy) sleepUntil(t time.Time) bool { return sleepUntil(t, p.done) }

// sleepUntil waits until t or until done is closed, and reports whether t
// was reached.
func sleepUntil(t time.Time, done <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}

// latencyAddrs checks that both addresses are loopback IP literals (nothing
// is resolved) and returns them.
func latencyAddrs(listenAddr, upstream string) (listen, up netip.AddrPort, err error) {
	if listen, err = parseLoopback(listenAddr); err != nil {
		return listen, up, err
	}
	if up, err = parseLoopback(upstream); err != nil {
		return listen, up, err
	}
	if up.Port() == 0 {
		return listen, up, fmt.Errorf("dialertest: upstream %q needs a port", upstream)
	}
	return listen, up, nil
}

// LatencyTCP listens for TCP on listenAddr (a loopback literal such as
// "127.0.0.1:0") and proxies every connection to upstream (a loopback
// literal and port), delaying each chunk of bytes by oneWay in both
// directions: a chunk read at time t is written at t+oneWay. Reading goes
// on while earlier chunks wait, so the delay costs latency, not throughput,
// and order is kept. A half-close (FIN) travels with the same delay.
//
// The TCP handshake is simulated too: the kernel completes the client's
// connect at once, so the proxy treats bytes the client sends before
// 2*oneWay after the accept as sent at that moment (when a SYN/SYN-ACK
// round trip would have let the client send), and connects to upstream only
// at 3*oneWay, when the handshake's final ACK would arrive. So a client's
// first request reaches the server 3*oneWay after its connect, and a
// TCP + TLS 1.3 + HTTP exchange costs 3 round trips of 2*oneWay, as on a
// real path. An upstream that refuses shows as a connection closed by the
// proxy (EOF), not as a refused connect.
func LatencyTCP(listenAddr, upstream string, oneWay time.Duration) (*Proxy, error) {
	if oneWay < 0 {
		return nil, fmt.Errorf("dialertest: negative one-way delay %v", oneWay)
	}
	p, err := impairTCP(listenAddr, upstream, Impairment{Delay: oneWay}, "latency")
	if err != nil {
		return nil, err
	}
	return p.Proxy, nil
}

// tcpLink is one proxied TCP connection: the client's and, once connected,
// the upstream one.
type tcpLink struct {
	p      *Proxy
	client net.Conn

	mu       sync.Mutex
	upstream net.Conn
	closed   bool
	dead     chan struct{} // closed by teardown
}

// chunk is what a TCP reader hands its writer: bytes, or the end of the
// stream (eof), due at a given time.
type chunk struct {
	data []byte
	eof  bool
	due  time.Time
}

// run proxies the connection until both directions have ended or the link
// is torn down, and returns once all its goroutines have. upLine and
// downLine give the due times of each direction.
func (k *tcpLink) run(accepted time.Time, dial func() (net.Conn, error), upLine, downLine *delayLine) {
	ow := k.p.oneWay
	var wg sync.WaitGroup
	defer wg.Wait() // after teardown, which ends the readers
	defer k.teardown()
	up := make(chan chunk, latencyTCPQueue)
	wg.Go(func() { k.read(k.client, up, accepted.Add(2*ow), upLine) })
	if !k.p.sleepUntil(accepted.Add(3 * ow)) {
		return
	}
	uc, err := dial()
	if err != nil || !k.setUpstream(uc) {
		return
	}
	down := make(chan chunk, latencyTCPQueue)
	wg.Go(func() { k.read(uc, down, time.Time{}, downLine) })
	var ended sync.WaitGroup
	ended.Go(func() { k.write(k.client, down) })
	ended.Go(func() { k.write(uc, up) })
	// Both directions ended normally (FIN both ways), or a write failed and
	// tore the link down; either way, nothing more can pass.
	ended.Wait()
}

func (k *tcpLink) setUpstream(c net.Conn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		c.Close()
		return false
	}
	k.upstream = c
	return true
}

// teardown closes both connections and wakes every goroutine of the link.
func (k *tcpLink) teardown() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.closed = true
	close(k.dead)
	k.client.Close()
	if k.upstream != nil {
		k.upstream.Close()
	}
}

// read reads src into chunks due when line says (oneWay, plus any jitter,
// after they were read, or after notBefore when they were read earlier),
// until src ends; the end is queued too.
func (k *tcpLink) read(src net.Conn, q chan<- chunk, notBefore time.Time, line *delayLine) {
	buf := make([]byte, latencyReadSize)
	for {
		n, err := src.Read(buf)
		now := time.Now()
		if now.Before(notBefore) {
			now = notBefore
		}
		due, _ := line.next(now, false)
		c := chunk{due: due}
		if n > 0 {
			c.data = append([]byte(nil), buf[:n]...)
		}
		// A read error other than EOF (a reset, the link torn down) is
		// passed on as an end of stream: the other side sees FIN.
		c.eof = err != nil
		if n > 0 || c.eof {
			select {
			case q <- c:
			case <-k.dead:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// write writes the chunks of q to dst, each at its due time; at the end of
// the stream it half-closes dst. A failed write tears the link down.
func (k *tcpLink) write(dst net.Conn, q <-chan chunk) {
	for {
		var c chunk
		select {
		case c = <-q:
		case <-k.dead:
			return
		}
		if !k.sleepUntil(c.due) {
			return
		}
		if len(c.data) > 0 {
			if _, err := dst.Write(c.data); err != nil {
				k.teardown()
				return
			}
		}
		if c.eof {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil {
					k.teardown()
				}
				return
			}
			k.teardown()
			return
		}
	}
}

// sleepUntil is Proxy.sleepUntil that also wakes on teardown.
func (k *tcpLink) sleepUntil(t time.Time) bool { return sleepUntil(t, k.dead) }

// LatencyUDP listens for UDP on listenAddr (a loopback literal such as
// "127.0.0.1:0") and forwards every datagram to upstream (a loopback literal
// and port), delaying each by oneWay in both directions. Each client address
// gets its own upstream socket, so the upstream server sees one peer per
// client, as through a NAT; the sockets live until Close. Datagrams are
// never reordered; one that arrives while 4096 others wait in its direction
// is dropped.
func LatencyUDP(listenAddr, upstream string, oneWay time.Duration) (*Proxy, error) {
	if oneWay < 0 {
		return nil, fmt.Errorf("dialertest: negative one-way delay %v", oneWay)
	}
	p, err := impairUDP(listenAddr, upstream, Impairment{Delay: oneWay}, "latency")
	if err != nil {
		return nil, err
	}
	return p.Proxy, nil
}

// udpProxy is the UDP side of LatencyUDP and ImpairUDP.
type udpProxy struct {
	p        *Impaired
	ln       *net.UDPConn
	upstream *net.UDPAddr
	network  string
	up, down *delayLine // one per direction, shared by every client

	mu       sync.Mutex
	closed   bool
	sessions map[netip.AddrPort]*net.UDPConn // by client address

	toUp, toClient chan datagram
}

// datagram is one datagram in flight: send writes it out once due.
type datagram struct {
	data []byte
	due  time.Time
	send func([]byte) error
}

// readClients reads what clients send to the proxy and queues it for their
// upstream sockets, opening one for each new client address.
func (u *udpProxy) readClients() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := u.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error reported on the socket
		}
		now := time.Now()
		up, ok := u.session(from)
		if !ok {
			return // closing
		}
		if up == nil {
			continue // no upstream socket for this client
		}
		u.queue(u.up, u.toUp, now, buf[:n], func(b []byte) error { _, err := up.Write(b); return err })
	}
}

// session returns the upstream socket of client, opening it on first use;
// ok is false once the proxy is closing.
func (u *udpProxy) session(client netip.AddrPort) (up *net.UDPConn, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, false
	}
	if up := u.sessions[client]; up != nil {
		return up, true
	}
	up, err := net.DialUDP(u.network, nil, u.upstream) // a loopback literal: connect(2) only
	if err != nil {
		return nil, true
	}
	setUDPBuffers(up)
	u.sessions[client] = up
	u.p.count.Add(1)
	u.p.wg.Go(func() { u.readUpstream(up, client) })
	return up, true
}

// readUpstream reads what upstream answers on one client's socket and
// queues it for that client.
func (u *udpProxy) readUpstream(up *net.UDPConn, client netip.AddrPort) {
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED: nothing listens upstream (yet)
		}
		u.queue(u.down, u.toClient, time.Now(), buf[:n], func(b []byte) error {
			_, err := u.ln.WriteToUDPAddrPort(b, client)
			return err
		})
	}
}

// setUDPBuffers enlarges c's socket buffers as far as the system allows.
func setUDPBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(latencyUDPBuffer)
	_ = c.SetWriteBuffer(latencyUDPBuffer)
}

// queue schedules one datagram, read at now, on line and q; it drops the
// datagram when line says so (DropEvery) or when q is full, as a router
// would.
func (u *udpProxy) queue(line *delayLine, q chan<- datagram, now time.Time, b []byte, send func([]byte) error) {
	due, drop := line.next(now, true)
	if drop {
		u.p.dropped.Add(1)
		return
	}
	select {
	case q <- datagram{data: append([]byte(nil), b...), due: due, send: send}:
	default:
	}
}

// deliver sends the datagrams of q, each at its due time, until Close.
func (u *udpProxy) deliver(q <-chan datagram) {
	for {
		var d datagram
		select {
		case d = <-q:
		case <-u.p.done:
			return
		}
		if !u.p.sleepUntil(d.due) {
			return
		}
		_ = d.send(d.data) // lost, as a datagram may be
	}
}

func (u *udpProxy) close() error {
	err := u.ln.Close()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for _, up := range u.sessions {
		up.Close()
	}
	return err
}
