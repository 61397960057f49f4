package dialer

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptrace"
	"net/netip"
)

// A Trace receives the events of each race as they happen, in the style of
// net/http/httptrace. Callbacks run on the dialing goroutine, in order, and
// must not block; any of them may be nil. Each gets the record as it stands
// at that moment (see Report for the fields).
//
// When an attempt wins, the other live attempts are cancelled first
// (Cancelled, with Outcome "lost"), then Won is called.
type Trace struct {
	// DNSStart: a query was sent. DNSDone: its answer (or error) arrived.
	DNSStart func(DNSQuery)
	DNSDone  func(DNSQuery)
	// AttemptStart: a connection attempt began.
	AttemptStart func(Attempt)
	// HandshakeDone: the attempt's transport and TLS (or QUIC) handshake
	// finished; Version is the negotiated HTTP version. Through a proxy,
	// Addr is the proxy's, and Tunnel and ProxyStatus tell when and how
	// its tunnel to the origin opened.
	HandshakeDone func(Attempt)
	// Settings: the server's HTTP/2 or HTTP/3 SETTINGS arrived; see
	// Attempt.Settings for the capability bits.
	Settings func(Attempt)
	// Incapable: the connection lacked the capability the dial needs and
	// was closed; Err says what was missing.
	Incapable func(Attempt)
	// Failed: the attempt failed (Err).
	Failed func(Attempt)
	// Cancelled: the attempt was cancelled because another won ("lost") or
	// the dial ended ("aborted"), and its connection closed.
	Cancelled func(Attempt)
	// Won: the attempt won; reason says why.
	Won func(a Attempt, reason string)
}

// WithTrace calls t's callbacks for every race of the dial (or of every
// dial, as a Dialer option).
func WithTrace(t *Trace) Option {
	return func(c *config) { c.trace = t }
}

// observer reports a race's events to the Trace and the logger.
type observer struct {
	t   *Trace
	log *slog.Logger
}

// newObserver returns the observer of a race under c.
func newObserver(c config) observer {
	o := observer{t: c.trace, log: c.logger}
	if o.t == nil {
		o.t = &Trace{}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o
}

// debug logs msg at debug level, if the logger wants it.
func (o observer) debug(msg string, args ...any) {
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		o.log.Debug(msg, args...)
	}
}

// dnsStart reports a query sent.
func (o observer) dnsStart(q DNSQuery) {
	o.debug("dns query", "name", q.Name, "type", q.Type)
	if o.t.DNSStart != nil {
		o.t.DNSStart(q)
	}
}

// dnsDone reports a query answered.
func (o observer) dnsDone(q DNSQuery) {
	o.debug("dns answer", "name", q.Name, "type", q.Type, "addrs", q.Addrs, "services", len(q.Services), "err", q.Err)
	if o.t.DNSDone != nil {
		o.t.DNSDone(q)
	}
}

// attemptStart reports an attempt started.
func (o observer) attemptStart(a Attempt) {
	o.debug("attempt start", "addr", a.Addr, "proto", a.Proto)
	if o.t.AttemptStart != nil {
		o.t.AttemptStart(a)
	}
}

// handshakeDone reports an attempt's transport handshake done.
func (o observer) handshakeDone(a Attempt) {
	o.debug("attempt connected", "addr", a.Addr, "proto", a.Proto, "version", a.Version)
	if o.t.HandshakeDone != nil {
		o.t.HandshakeDone(a)
	}
}

// settings reports the server's SETTINGS on an attempt.
func (o observer) settings(a Attempt) {
	s := a.Settings
	o.debug("attempt settings", "addr", a.Addr, "version", a.Version, "extended_connect", s.ExtendedConnect, "datagrams", s.Datagrams, "webtransport", s.WebTransport)
	if o.t.Settings != nil {
		o.t.Settings(a)
	}
}

// incapable reports an attempt closed for lack of the capability.
func (o observer) incapable(a Attempt) {
	o.debug("attempt incapable", "addr", a.Addr, "version", a.Version, "missing", a.Err)
	if o.t.Incapable != nil {
		o.t.Incapable(a)
	}
}

// failed reports an attempt failed.
func (o observer) failed(a Attempt) {
	o.debug("attempt failed", "addr", a.Addr, "proto", a.Proto, "err", a.Err)
	if o.t.Failed != nil {
		o.t.Failed(a)
	}
}

// cancelled reports an attempt cancelled: lost or aborted.
func (o observer) cancelled(a Attempt) {
	o.debug("attempt cancelled", "addr", a.Addr, "proto", a.Proto, "outcome", a.Outcome)
	if o.t.Cancelled != nil {
		o.t.Cancelled(a)
	}
}

// won reports the winner and why it won.
func (o observer) won(a Attempt, reason string) {
	o.debug("attempt won", "addr", a.Addr, "proto", a.Proto, "version", a.Version, "reason", reason)
	if o.t.Won != nil {
		o.t.Won(a, reason)
	}
}

// dnsTrace reports a race's DNS to the caller's httptrace hooks as one
// lookup, as net.Dialer does: DNSStart with the first query, DNSDone with
// every address answered when the first attempt starts or, failing that,
// when the race ends.
type dnsTrace struct {
	trace         *httptrace.ClientTrace // nil: no hooks
	host          string
	started, done bool
	addrs         []net.IPAddr
}

// newDNSTrace returns the DNS trace of a race for host, to the hooks in ctx.
func newDNSTrace(ctx context.Context, host string) dnsTrace {
	return dnsTrace{trace: httptrace.ContextClientTrace(ctx), host: host}
}

// start reports the first query.
func (t *dnsTrace) start() {
	if !t.started && t.trace != nil && t.trace.DNSStart != nil {
		t.trace.DNSStart(httptrace.DNSStartInfo{Host: t.host})
	}
	t.started = true
}

// answer records the addresses of an answer.
func (t *dnsTrace) answer(addrs []netip.Addr) {
	for _, a := range addrs {
		t.addrs = append(t.addrs, net.IPAddr{IP: a.AsSlice()})
	}
}

// end reports the end of the lookup, once, if it started.
func (t *dnsTrace) end(err error) {
	if t.started && !t.done && t.trace != nil && t.trace.DNSDone != nil {
		t.trace.DNSDone(httptrace.DNSDoneInfo{Addrs: t.addrs, Err: err})
	}
	t.done = true
}
