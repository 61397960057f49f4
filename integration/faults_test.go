package integration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// The fault suite: every fault of the kit, for each session kind
// (WebSocket, WebTransport, Transport), one case each. A case passes when
// the dial succeeds over the surviving path within its bound, or fails
// within its bound with an error that names the cause; and when it leaves
// no goroutine and no file descriptor behind. Each case logs a line
//
//	RELIABILITY | fault | kind | outcome | ms | goroutines | fds
//
// from which RELIABILITY.md is built:
//
//	go test -v -count=1 -run Fault ./integration/ | grep 'RELIABILITY |'

// attemptDelay is the dialer's default connection attempt delay.
const attemptDelay = 250 * time.Millisecond

// faultSlack is what a bound allows beyond the time the protocol needs:
// handshakes and scheduling on a loaded machine, under -race.
const faultSlack = 300 * time.Millisecond

// faultTimeout is the dial bound (WithTimeout) of the cases that may
// fail; those that must succeed get okTimeout, so that a slow moment of the
// machine shows as a missed time bound (and another run), not as a
// failure.
const (
	faultTimeout = time.Second
	okTimeout    = 5 * time.Second
)

// sessionKind is what a case dials.
type sessionKind string

const (
	kindWS sessionKind = "WebSocket"
	kindWT sessionKind = "WebTransport"
	kindTr sessionKind = "Transport"
)

// slot says what listens on one family's TCP or UDP address.
type slot int

const (
	good     slot = iota // the kind's working server (TCP: serve, or wtH2 for WebTransport; UDP: h3, or wt for WebTransport)
	none                 // nothing: TCP refused, UDP port unreachable
	hole                 // blackhole: TCP accept queue full, UDP read and dropped
	rst                  // TCP reset on accept
	stall                // TLS stall: accepts and never answers
	slowTLS              // TLS server whose every write waits fault.slow
	h2Close              // h2: SETTINGS then close (HTTP/1.1 served)
	h2BadLen             // h2: SETTINGS length not a multiple of 6 (HTTP/1.1 served)
	h2Large              // h2: SETTINGS of 16386 bytes (HTTP/1.1 served)
	h2NoCap              // h2 without extended CONNECT (HTTP/1.1 served)
	h3Close              // h3: SETTINGS then CONNECTION_CLOSE
	h3Bad                // h3: malformed SETTINGS
	h3NoCap              // h3 without extended CONNECT (WebSocket, Transport) or WebTransport
)

// fault is one row of the table: a world to build and what each session
// kind must get from it.
type fault struct {
	name string
	// tcp and udp are the servers on 127.0.0.1 and [::1] (index 0 and 1).
	tcp, udp [2]slot
	// h3 makes the DNS server advertise h3 (HTTPS alpn=h3,h2) to
	// WebSocket and Transport dials.
	h3 bool
	// slow is the write delay of slowTLS slots.
	slow time.Duration
	// netem puts impairment proxies in front of the servers, on both
	// families: TCP and UDP with netem's delay and jitter, or UDP only when
	// netem.DropEvery is set.
	netem *testkit.Impairment
	// dns changes the DNS server's answers (after the default A, AAAA
	// and HTTPS records are set).
	dns func(s *dnstest.Server)
	// timeout is the dial bound (WithTimeout); if 0, okTimeout for the
	// kinds that must succeed and faultTimeout for the others.
	timeout time.Duration
	// opts are more options for every dial.
	opts []dialer.Option

	ws, wt, tr expect
}

// expect is what one session kind must get from a fault.
type expect struct {
	// ok: the dial must succeed; else it must fail, unless either is set.
	ok, either bool
	// max bounds the time to the outcome; min, when set, is the least
	// (a failure that must wait for the dial's bound).
	max, min time.Duration
	// proto and family, when set, are what must carry a success: "h1",
	// "h2", "h3"; "IPv4", "IPv6".
	proto, family string
	// maxAttempts, when set, bounds the attempts of the last race.
	maxAttempts int
	// status is the HTTP status a Transport success must get (200 if 0):
	// an answer from the surviving path, not from a faulty server.
	status int
	// causes must all match a failure's error.
	causes []cause
}

func succeeds(max time.Duration, proto, family string) expect {
	return expect{ok: true, max: max, proto: proto, family: family}
}

func fails(max time.Duration, causes ...cause) expect {
	return expect{max: max, causes: causes}
}

// hangs is a failure that comes when the dial's bound (faultTimeout) ends,
// not before.
func hangs(causes ...cause) expect {
	return expect{max: faultTimeout + faultSlack, min: faultTimeout - 50*time.Millisecond, causes: append([]cause{deadline}, causes...)}
}

// orFails accepts a failure too, with causes.
func (x expect) orFails(causes ...cause) expect {
	x.either, x.causes = true, causes
	return x
}

func (x expect) attempts(n int) expect { x.maxAttempts = n; return x }

// cause is a check that an error names what happened.
type cause struct {
	name  string
	match func(error) bool
}

func contains(subs ...string) cause {
	return cause{"says " + strings.Join(subs, " or "), func(err error) bool {
		for _, s := range subs {
			if strings.Contains(err.Error(), s) {
				return true
			}
		}
		return false
	}}
}

func is(target error, name string) cause {
	return cause{name, func(err error) bool { return errors.Is(err, target) }}
}

func stage(s string) cause {
	return cause{"stage " + s, func(err error) bool {
		var de *dialer.DialError
		return errors.As(err, &de) && de.Stage == s
	}}
}

var (
	deadline    = is(context.DeadlineExceeded, "context.DeadlineExceeded")
	refused     = is(syscall.ECONNREFUSED, "ECONNREFUSED")
	reset       = is(syscall.ECONNRESET, "ECONNRESET")
	noAddress   = is(dialer.ErrNoAddress, "ErrNoAddress")
	unsupported = is(dialer.ErrUnsupported, "ErrUnsupported")
	namesTLS    = contains("TLS", "tls:")
	namesSet    = contains("SETTINGS")
	peerClosed  = contains("closed")
	udpBlocked  = contains("UDP looks blocked")
	servfail    = contains("SERVFAIL")
	malformed   = contains("malformed")
)

// faults is the table. "[::1]" faults break the preferred family only, so
// the dial must succeed over IPv4; "all" faults break every path of that
// transport.
var faults = []fault{
	{
		name: "tcp blackhole [::1]", tcp: [2]slot{good, hole},
		ws: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		tr: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tcp blackhole all", tcp: [2]slot{hole, hole},
		ws: hangs(stage("connect")),
		tr: hangs(stage("connect")),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tcp refused [::1]", tcp: [2]slot{good, none},
		ws: succeeds(faultSlack, "", "IPv4"),
		tr: succeeds(faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tcp refused all", tcp: [2]slot{none, none},
		ws: fails(faultSlack, refused, stage("connect")),
		tr: fails(faultSlack, refused, stage("connect")),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tcp reset [::1]", tcp: [2]slot{good, rst},
		ws: succeeds(faultSlack, "", "IPv4"),
		tr: succeeds(faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tcp reset all", tcp: [2]slot{rst, rst},
		ws: fails(faultSlack, reset, stage("connect")),
		tr: fails(faultSlack, reset, stage("connect")),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tls stall [::1]", tcp: [2]slot{good, stall},
		ws: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		tr: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "tls stall all", tcp: [2]slot{stall, stall},
		ws: hangs(stage("connect"), namesTLS),
		tr: hangs(stage("connect"), namesTLS),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "slow tls 1s/write [::1]", tcp: [2]slot{good, slowTLS}, slow: time.Second,
		ws: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		tr: succeeds(attemptDelay+faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		// Every server write waits 100 ms: the TLS flight, the session
		// tickets, SETTINGS and its ACK, the response: slow, but well within
		// 2 s.
		name: "slow tls 100ms/write all", tcp: [2]slot{slowTLS, slowTLS}, slow: 100 * time.Millisecond,
		ws: succeeds(2*time.Second, "", ""),
		tr: succeeds(2*time.Second, "", ""),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		// Trickling servers cannot hold a dial past its bound.
		name: "slow tls 2s/write all", tcp: [2]slot{slowTLS, slowTLS}, slow: 2 * time.Second,
		ws: hangs(stage("connect"), namesTLS),
		tr: hangs(stage("connect"), namesTLS),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		// WebSocket and the Transport deal h3 and TCP diagonally (draft
		// -ietf-happy-happyeyeballs-v3, as internal/hev3 orders it): h3
		// to [::1] first, TCP to 127.0.0.1 one attempt delay later, which
		// wins before h3 to 127.0.0.1 would start. WebTransport tries h3
		// on both families before TCP.
		name: "udp blackhole [::1]", udp: [2]slot{good, hole}, h3: true,
		ws: succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
		tr: succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
		wt: succeeds(attemptDelay+faultSlack, "h3", "IPv4"),
	},
	{
		// The diagonal again: TCP to 127.0.0.1 starts one attempt delay
		// after h3 to [::1], and wins. WebTransport falls back to HTTP/2
		// after its two QUIC attempts, one delay apart.
		name: "udp blackhole all", udp: [2]slot{hole, hole}, h3: true,
		ws: succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
		tr: succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
		wt: succeeds(2*attemptDelay+faultSlack, "h2", "IPv6"),
	},
	{
		// Only QUIC is allowed: it must recover from the loss.
		name: "udp drop every 3rd all", netem: &testkit.Impairment{DropEvery: 3},
		opts: []dialer.Option{dialer.WithProtocols("h3")},
		ws:   succeeds(2*time.Second, "h3", ""),
		tr:   succeeds(2*time.Second, "h3", ""),
		wt:   succeeds(2*time.Second, "h3", ""),
	},
	{
		// 50 ms ± 20 ms one way on TCP and UDP: QUIC's handshake and
		// the request take 2 round trips of 100 to 140 ms.
		name: "latency 50ms+20ms jitter all", h3: true, netem: &testkit.Impairment{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond, Seed: 1},
		ws: succeeds(time.Second, "", ""),
		tr: succeeds(time.Second, "", ""),
		wt: succeeds(time.Second, "h3", ""),
	},
	{
		// h2's SETTINGS enable extended CONNECT, then the connection
		// closes: the WebSocket goes down the ladder to HTTP/1.1, which
		// the same server serves.
		name: "h2 close after SETTINGS [::1]", tcp: [2]slot{good, h2Close},
		ws: succeeds(faultSlack, "", ""),
		tr: succeeds(faultSlack, "h2", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h2 close after SETTINGS all", tcp: [2]slot{h2Close, h2Close},
		ws: succeeds(faultSlack, "h1", ""),
		tr: succeeds(faultSlack, "", "").orFails(peerClosed),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h2 SETTINGS length 7 [::1]", tcp: [2]slot{good, h2BadLen},
		ws: succeeds(faultSlack, "h2", "IPv4"),
		tr: succeeds(faultSlack, "h2", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h2 SETTINGS length 7 all", tcp: [2]slot{h2BadLen, h2BadLen},
		ws: succeeds(faultSlack, "h1", "").orFails(namesSet, stage("connect")),
		tr: succeeds(faultSlack, "h1", "").orFails(namesSet),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h2 SETTINGS 16386 bytes [::1]", tcp: [2]slot{good, h2Large},
		ws: succeeds(faultSlack, "h2", "IPv4"),
		tr: succeeds(faultSlack, "h2", "IPv4"),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h2 SETTINGS 16386 bytes all", tcp: [2]slot{h2Large, h2Large},
		ws: succeeds(faultSlack, "h1", "").orFails(namesSet, stage("connect")),
		tr: succeeds(faultSlack, "h1", "").orFails(namesSet),
		wt: succeeds(faultSlack, "h3", ""),
	},
	{
		name: "h3 close after SETTINGS [::1]", udp: [2]slot{good, h3Close}, h3: true,
		ws: succeeds(faultSlack, "", ""),
		tr: succeeds(faultSlack, "", ""),
		wt: succeeds(faultSlack, "h3", "IPv4"),
	},
	{
		name: "h3 close after SETTINGS all", udp: [2]slot{h3Close, h3Close}, h3: true,
		ws: succeeds(faultSlack, "h2", ""),
		tr: succeeds(faultSlack, "h2", ""),
		wt: succeeds(faultSlack, "h2", ""),
	},
	{
		name: "h3 SETTINGS malformed [::1]", udp: [2]slot{good, h3Bad}, h3: true,
		// The broken h3 fails at once and frees the slot: the next
		// endpoint is h3 over IPv4 if the A answer is in by then, else
		// h2 over IPv6 — both are the surviving paths.
		ws: succeeds(faultSlack, "", ""),
		tr: succeeds(faultSlack, "", ""),
		wt: succeeds(faultSlack, "h3", "IPv4"),
	},
	{
		name: "h3 SETTINGS malformed all", udp: [2]slot{h3Bad, h3Bad}, h3: true,
		ws: succeeds(faultSlack, "h2", ""),
		tr: succeeds(faultSlack, "h2", ""),
		wt: succeeds(faultSlack, "h2", ""),
	},
	{
		// The capability is missing: WebSocket falls back to HTTP/1.1,
		// the Transport does not need it (the fake h2 server answers it
		// with 501), WebTransport cannot have it.
		name: "capability missing all", tcp: [2]slot{h2NoCap, h2NoCap}, udp: [2]slot{h3NoCap, h3NoCap},
		ws: succeeds(faultSlack, "h1", ""),
		tr: expect{ok: true, max: faultSlack, proto: "h2", status: http.StatusNotImplemented},
		wt: fails(faultSlack, unsupported, stage("capability"), contains("lack WebTransport")),
	},
	{
		name: "dns AAAA 1s late", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAAAA, dnstest.Delay(time.Second, nil)) },
		ws: succeeds(faultSlack, "", "IPv4"),
		tr: succeeds(faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", "IPv4"),
	},
	{
		name: "dns truncated over UDP", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAny, dnstest.TruncateUDP(nil)) },
		ws: succeeds(faultSlack, "", "IPv6"),
		tr: succeeds(faultSlack, "", "IPv6"),
		wt: succeeds(faultSlack, "h3", "IPv6"),
	},
	{
		name: "dns SERVFAIL AAAA", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAAAA, dnstest.ServFail()) },
		ws: succeeds(faultSlack, "", "IPv4"),
		tr: succeeds(faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", "IPv4"),
	},
	{
		name: "dns SERVFAIL all", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAny, dnstest.ServFail()) },
		ws: fails(faultSlack, noAddress, servfail, stage("dns")),
		tr: fails(faultSlack, noAddress, servfail, stage("dns")),
		wt: fails(faultSlack, noAddress, servfail, stage("dns")),
	},
	{
		name: "dns garbage AAAA", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAAAA, dnstest.Garbage(nil)) },
		ws: succeeds(faultSlack, "", "IPv4"),
		tr: succeeds(faultSlack, "", "IPv4"),
		wt: succeeds(faultSlack, "h3", "IPv4"),
	},
	{
		// Garbage over UDP is ignored (it may be forged) until the
		// query's timeout; the dial's bound comes first.
		name: "dns garbage all", dns: func(s *dnstest.Server) { s.Set(host, dnstest.TypeAny, dnstest.Garbage(nil)) },
		ws: hangs(stage("dns"), malformed),
		tr: hangs(stage("dns"), malformed),
		wt: hangs(stage("dns"), malformed),
	},
	{
		// 2000 A records (over TCP: too many for UDP), the working
		// address first: one attempt, never thousands.
		name: "dns 2000 A records", dns: manyA(2000),
		ws: succeeds(faultSlack, "", "IPv4").attempts(8),
		tr: succeeds(faultSlack, "", "IPv4").attempts(8),
		wt: succeeds(faultSlack, "h3", "IPv4").attempts(8),
	},
}

// manyA answers A queries with 127.0.0.1 then n-1 other loopback
// addresses, and AAAA queries with nothing.
func manyA(n int) func(s *dnstest.Server) {
	return func(s *dnstest.Server) {
		ips := []string{"127.0.0.1"}
		for i := 1; len(ips) < n; i++ {
			ips = append(ips, fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250))
		}
		s.A(host, ips...)
		s.AAAA(host)
	}
}

func TestFaultWebSocket(t *testing.T)    { runFaults(t, kindWS) }
func TestFaultWebTransport(t *testing.T) { runFaults(t, kindWT) }
func TestFaultTransport(t *testing.T)    { runFaults(t, kindTr) }

func runFaults(t *testing.T, kind sessionKind) {
	if testing.Short() {
		t.Skip("fault suite: skipped with -short")
	}
	for _, f := range faults {
		runFault(t, kind, f)
	}
}

// caseResult is what one case measured.
type caseResult struct {
	outcome string
	elapsed time.Duration
	err     error
	status  int // Transport: the response's status
	// retry: the case missed only its time bound and will run again.
	retry bool
}

// faultRuns is how often a case may run: a case that gets the right
// outcome but misses its time bound runs again, since other processes may
// starve this one for a moment on a shared machine; a real hang misses it
// every time.
const faultRuns = 3

// runFault runs one case of the table.
func runFault(t *testing.T, kind sessionKind, f fault) {
	runCase(t, kind, f, func(t *testing.T) *world { return buildWorld(t, kind, f) })
}

// runCase runs one case in a subtest on the world build makes, measures
// what it left behind once its cleanups have run, and logs its RELIABILITY
// line.
func runCase(t *testing.T, kind sessionKind, f fault, build func(*testing.T) *world) {
	var slow []string
	for run := 1; run <= faultRuns; run++ {
		goroutines := settledGoroutines(0, 0)
		fds := countFDs(t)
		var res caseResult
		ran := false
		name := f.name
		if run > 1 {
			name += fmt.Sprintf(" run %d", run)
		}
		t.Run(name, func(t *testing.T) {
			ran = true
			x := f.expectFor(kind)
			w := build(t)
			res = w.dial(t)
			res.retry = w.check(t, x, res, run == faultRuns)
		})
		if !ran {
			return // not selected by -run
		}
		leakedG := max(settledGoroutines(goroutines, 3*time.Second)-goroutines, 0)
		leakedFD := max(settledFDs(t, fds, 3*time.Second)-fds, 0)
		if leakedG > 0 {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Errorf("%s, %s: %d goroutines more than before:\n%s", f.name, kind, leakedG, b.String())
		}
		if leakedFD > 0 {
			t.Errorf("%s, %s: %d file descriptors more than before: %s", f.name, kind, leakedFD, describeFDs())
		}
		if res.retry {
			slow = append(slow, strconv.FormatInt(res.elapsed.Milliseconds(), 10))
			continue
		}
		outcome := res.outcome
		if len(slow) > 0 {
			outcome += fmt.Sprintf(" (run %d; earlier runs took %s ms)", run, strings.Join(slow, ", "))
		}
		t.Logf("RELIABILITY | %s | %s | %s | %d | %d | %d", f.name, kind, outcome, res.elapsed.Milliseconds(), leakedG, leakedFD)
		if res.err != nil {
			t.Logf("ERROR | %s | %s | %v", f.name, kind, res.err)
		}
		return
	}
}

func (f fault) expectFor(kind sessionKind) expect {
	switch kind {
	case kindWS:
		return f.ws
	case kindWT:
		return f.wt
	}
	return f.tr
}

// settledGoroutines waits up to wait for the goroutine count to drop to
// want or below and returns it.
func settledGoroutines(want int, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func settledFDs(t *testing.T, want int, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	n := countFDs(t)
	for n > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = countFDs(t)
	}
	return n
}

// world is one case's servers and faults, and the port its URLs name.
type world struct {
	kind sessionKind
	f    fault
	e    *env
	port int

	mu  sync.Mutex
	rep *dialer.Report
}

var loopback = [2]string{"127.0.0.1", "::1"}

func tcpNet(i int) string { return [2]string{"tcp4", "tcp6"}[i] }

func buildWorld(t *testing.T, kind sessionKind, f fault) *world {
	t.Helper()
	var fam [2]family
	for i, s := range f.tcp {
		switch s {
		case good:
			fam[i] = serve
			if kind == kindWT {
				fam[i] = wtH2
			}
		case hole:
			fam[i] = blackhole
		case h2NoCap:
			fam[i] = h2NoExt
		default:
			fam[i] = closed
		}
	}
	e := newEnv(t, true, fam[0], fam[1])
	w := &world{kind: kind, f: f, e: e, port: e.port}
	for i, s := range f.tcp {
		w.startTCP(t, net.JoinHostPort(loopback[i], itoa(e.port)), i, s)
	}
	for i, s := range f.udp {
		w.startUDP(t, i, s)
	}
	if f.netem != nil {
		w.port = startNetem(t, e.port, *f.netem)
	}
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	if f.h3 && kind != kindWT {
		e.dns.HTTPS(host, "1 . alpn=h3,h2")
	}
	if f.dns != nil {
		f.dns(e.dns)
	}
	return w
}

// startTCP starts what s says on addr, where newEnv left nothing.
func (w *world) startTCP(t *testing.T, addr string, i int, s slot) {
	t.Helper()
	var c io.Closer
	var err error
	listen := func() net.Listener {
		l, err := net.Listen(tcpNet(i), addr)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	switch s {
	case rst:
		c, err = testkit.Reset(addr)
	case stall:
		c, err = testkit.TLSStall(addr)
	case slowTLS:
		l := listen()
		if c, err = testkit.StartSlowTLS(l, w.e.serverTLS(), handler(), w.f.slow); err != nil {
			l.Close()
		}
	case h2Close, h2BadLen, h2Large:
		h2f := map[slot]testkit.H2Fault{h2Close: testkit.H2CloseAfterSettings, h2BadLen: testkit.H2SettingsBadLength, h2Large: testkit.H2SettingsTooLarge}[s]
		l := listen()
		if c, err = testkit.StartH2Fault(l, w.e.serverTLS(), h2f, handler()); err != nil {
			l.Close()
		}
	default:
		return // newEnv did it
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

// startUDP starts what s says on one family's UDP address, on the socket
// newEnv reserved.
func (w *world) startUDP(t *testing.T, i int, s slot) {
	t.Helper()
	e := w.e
	pc, h3v, wtv := &e.udp4, &e.h3v4, &e.wt4
	if i == 1 {
		pc, h3v, wtv = &e.udp6, &e.h3v6, &e.wt6
	}
	addr := net.JoinHostPort(loopback[i], itoa(e.port))
	var m udpMode
	switch s {
	case good:
		m = h3
		if w.kind == kindWT {
			m = wt
		}
	case none:
		m = noUDP
	case hole:
		m = udpBlackhole
	case h3NoCap:
		m = h3NoExt
		if w.kind == kindWT {
			m = h3NoWT
		}
	case h3Close, h3Bad:
		conn := *pc
		*pc = nil
		h3f := testkit.H3CloseAfterSettings
		if s == h3Bad {
			h3f = testkit.H3SettingsMalformed
		}
		srv, err := testkit.StartH3Fault(conn, e.serverTLS(), h3f)
		if err != nil {
			conn.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		*h3v = srv
		return
	default:
		t.Fatalf("slot %d on UDP", s)
	}
	*h3v, *wtv = e.setupUDP(pc, m, addr)
}

// startNetem starts impairment proxies on one port of both families in
// front of the servers on upstream's port, and returns that port: TCP and
// UDP, or UDP only when im drops datagrams.
func startNetem(t *testing.T, upstream int, im testkit.Impairment) int {
	t.Helper()
	var lastErr error
	for range 20 {
		var closers []io.Closer
		port := 0
		ok := true
		for i, host := range loopback {
			up := net.JoinHostPort(host, itoa(upstream))
			p, err := testkit.ImpairUDP(net.JoinHostPort(host, itoa(port)), up, im)
			if err == nil {
				closers = append(closers, p)
				port = p.Port()
				if im.DropEvery == 0 {
					var q *testkit.Impaired
					if q, err = testkit.ImpairTCP(net.JoinHostPort(host, itoa(port)), up, im); err == nil {
						closers = append(closers, q)
					}
				}
			}
			if err != nil {
				if i == 0 && port == 0 {
					t.Fatal(err)
				}
				lastErr, ok = err, false
				break
			}
		}
		if ok {
			t.Cleanup(func() {
				for _, c := range closers {
					c.Close()
				}
			})
			return port
		}
		for _, c := range closers {
			c.Close()
		}
	}
	t.Fatalf("no port free for the impairment proxies: %v", lastErr)
	return 0
}

// options are the dial options of every case.
func (w *world) options() []dialer.Option {
	timeout := w.f.timeout
	if x := w.f.expectFor(w.kind); timeout == 0 && x.ok && !x.either {
		timeout = okTimeout
	} else if timeout == 0 {
		timeout = faultTimeout
	}
	opts := append([]dialer.Option{dialer.WithTimeout(timeout)}, w.f.opts...)
	return append(opts, dialer.WithReport(func(r *dialer.Report) { w.mu.Lock(); w.rep = r; w.mu.Unlock() }))
}

func (w *world) report() *dialer.Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rep
}

// dial dials the case's session, times it, proves a success by using the
// session once, and closes everything it opened.
func (w *world) dial(t *testing.T) caseResult {
	t.Helper()
	var (
		res   caseResult
		major int
	)
	origin := host + ":" + itoa(w.port)
	start := time.Now()
	switch w.kind {
	case kindWS:
		d := w.e.dialer(w.options()...)
		defer d.CloseIdleConnections()
		c, resp, err := d.DialWebSocket(ctx(t), "wss://"+origin+"/echo")
		res.elapsed, res.err = time.Since(start), err
		if err == nil {
			major = resp.ProtoMajor
			echo(t, c, websocket.MessageText, []byte("fault"))
			closeConn(t, c)
		}
	case kindWT:
		d := w.e.dialer(w.options()...)
		defer d.CloseIdleConnections()
		s, _, err := d.DialWebTransport(ctx(t), "https://"+origin+"/wt")
		res.elapsed, res.err = time.Since(start), err
		if err == nil {
			major = s.HTTPVersion()
			roundTrip(t, s, []byte("fault"))
			s.CloseWithError(0, "")
		}
	case kindTr:
		tr := w.e.dialer(w.options()...).Transport()
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, "https://"+origin+"/proto", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		res.elapsed, res.err = time.Since(start), err
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			major, res.status = resp.ProtoMajor, resp.StatusCode
			if err != nil || res.status == http.StatusOK && string(b) != strconv.Itoa(major) {
				t.Errorf("GET /proto over HTTP/%d: %q, %v", major, b, err)
			}
		}
	}
	if res.err == nil {
		res.outcome = fmt.Sprintf("ok h%d", major)
		if rep := w.report(); rep != nil && rep.Winner >= 0 {
			res.outcome += " " + rep.Attempts[rep.Winner].Family
		}
		if res.status != 0 && res.status != http.StatusOK {
			res.outcome += fmt.Sprintf(" (HTTP %d)", res.status)
		}
	} else {
		res.outcome = "error: " + classify(res.err)
	}
	return res
}

// classify names an error's cause in a few words, for the table.
func classify(err error) string {
	var parts []string
	var de *dialer.DialError
	if errors.As(err, &de) {
		parts = append(parts, de.Stage)
	}
	for _, c := range []cause{deadline, refused, reset, noAddress, unsupported, udpBlocked, servfail, malformed, namesSet} {
		if c.match(err) {
			parts = append(parts, strings.TrimPrefix(c.name, "says "))
		}
	}
	if len(parts) == 0 || (len(parts) == 1 && de != nil) {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, ", ")
}

// check holds the result to x. When only the time bound was missed and
// this is not the last run, it asks for another run (retry).
func (w *world) check(t *testing.T, x expect, res caseResult, last bool) (retry bool) {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	rep := w.report()
	if rep != nil {
		t.Logf("last race:\n%s", rep)
	}
	switch {
	case res.err == nil && !x.ok && !x.either:
		bad("succeeded (%s), want a failure", res.outcome)
	case res.err != nil && !x.ok:
		for _, c := range x.causes {
			if !c.match(res.err) {
				bad("error does not match %s: %v", c.name, res.err)
			}
		}
	case res.err != nil && x.either:
		for _, c := range x.causes {
			if !c.match(res.err) {
				bad("neither a success nor an error matching %s: %v", c.name, res.err)
			}
		}
	case res.err != nil:
		bad("failed, want a success: %v", res.err)
	}
	if res.err == nil {
		if x.proto != "" && !strings.HasPrefix(res.outcome, "ok "+x.proto) {
			bad("carried over %s, want %s", res.outcome, x.proto)
		}
		if x.family != "" && !strings.Contains(res.outcome, x.family) {
			bad("won by %s, want %s", res.outcome, x.family)
		}
		if want := cmp.Or(x.status, http.StatusOK); res.status != 0 && res.status != want {
			bad("answered %d, want %d from the surviving path", res.status, want)
		}
	}
	if x.maxAttempts > 0 && rep != nil && len(rep.Attempts) > x.maxAttempts {
		bad("%d attempts, want at most %d", len(rep.Attempts), x.maxAttempts)
	}
	if len(problems) == 0 {
		switch {
		case res.elapsed > x.max:
			if !last {
				t.Logf("took %v, more than its bound %v: running it again", res.elapsed, x.max)
				return true
			}
			bad("took %v, want at most %v", res.elapsed, x.max)
		case res.elapsed < x.min:
			bad("ended after %v, before the dial's bound %v", res.elapsed, x.min)
		}
	}
	if len(problems) > 0 {
		t.Error(strings.Join(problems, "; "))
	}
	return false
}
