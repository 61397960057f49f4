package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// The tests of this file run races on a scripted network (fakeNet) in a
// synctest bubble: time is fake, so every duration in them is exact, and
// no socket is opened.

// The addresses of the scripted origin x.test, on port 443.
var (
	v6 = netip.MustParseAddrPort("[::1]:443")
	v4 = netip.MustParseAddrPort("127.0.0.1:443")
)

// A fakeNet is a scripted network for races: what DNS answers for each
// record type and what each path (an address over TCP or QUIC) does, at
// set times. Its fields are set before the race and only read during it.
type fakeNet struct {
	answers map[hev3.RecordType]fakeAnswer // a type not listed: NODATA at once
	paths   map[fakeKey]fakePath           // a path not listed: refused at once

	// network is the identity of the network the host is on (see
	// hostNet): a test changes it to simulate a move.
	network atomic.Uint64

	running atomic.Int32 // lookups, dials and SETTINGS waits running
	mu      sync.Mutex
	conns   []*fakeConn   // every connection handed to a race, in order
	looked  []fakeLookout // every lookup that returned, in order
}

// A fakeLookout is how one lookup of a fakeNet ended.
type fakeLookout struct {
	t   hev3.RecordType
	at  time.Time
	err error // the context's, when it ended the lookup
}

// A fakeKey names a path: an address, over QUIC or TCP.
type fakeKey struct {
	addr netip.AddrPort
	quic bool
}

// A fakeAnswer is the answer to one DNS query.
type fakeAnswer struct {
	after    time.Duration
	addrs    []netip.Addr
	services []hev3.ServiceInfo
	err      error
}

// A fakePath is what the network does with an attempt on one path. Every
// wait ends early when the attempt's context ends, except with
// ignoreCancel. A path that hangs notices the end of the context 1 ms
// late, as a real dialer may: the racer sees the end of its own context
// first.
type fakePath struct {
	tcpUp   time.Duration // TCP+TLS: TCP is up after this (0: not reported)
	after   time.Duration // the handshake ends after this
	hang    bool          // the handshake (after tcpUp) never ends
	err     error         // the handshake fails with err
	version hev3.Version  // preferred: H2 (if offered) or H1 over TCP; H3 over QUIC
	// The SETTINGS arrive settingsAfter the handshake, or fail with
	// settingsErr.
	settingsAfter time.Duration
	settings      hev3.Settings
	settingsErr   error
	// ignoreCancel: the handshake ends at its time even if the attempt was
	// cancelled, as one that completes while it is being cancelled.
	ignoreCancel bool
}

// A fakeConn is a connection of the fake network; it only records Close.
type fakeConn struct {
	net.Conn // nil: a race calls nothing but Close
	key      fakeKey
	closes   atomic.Int32
}

// Close records the call.
func (c *fakeConn) Close() error {
	c.closes.Add(1)
	return nil
}

// raceNet returns the seams of a race on f.
func (f *fakeNet) raceNet() raceNet {
	return raceNet{lookup: f.lookup, dialTCP: f.dial(false), dialQUIC: f.dial(true), settings: f.settings, host: f.host}
}

// host is the host's network as the scripted races see it: f.network,
// with no interface addresses (the machine's RFC 6724 rules that need a
// source address are skipped) and both families.
func (f *fakeNet) host() hostNet { return hostNet{id: netID{ifs: f.network.Load()}} }

// lookup answers a query as scripted.
func (f *fakeNet) lookup(ctx context.Context, name string, t hev3.RecordType) hev3.Answer {
	f.running.Add(1)
	defer f.running.Add(-1)
	a, ok := f.answers[t]
	if !ok {
		return hev3.Answer{}
	}
	err := wait(ctx, a.after)
	f.mu.Lock()
	f.looked = append(f.looked, fakeLookout{t: t, at: time.Now(), err: err})
	f.mu.Unlock()
	if err != nil {
		return hev3.Answer{Err: err}
	}
	return hev3.Answer{Addrs: a.addrs, Services: a.services, Err: a.err}
}

// dial returns the dial function of TCP or QUIC attempts on f.
func (f *fakeNet) dial(overQUIC bool) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, tcpUp func()) (*carrier, error) {
		f.running.Add(1)
		defer f.running.Add(-1)
		key := fakeKey{ep.Addr, overQUIC}
		p, ok := f.paths[key]
		if !ok {
			return nil, refused()
		}
		pause := wait
		if p.ignoreCancel {
			pause = func(_ context.Context, d time.Duration) error { time.Sleep(d); return nil }
		}
		if p.tcpUp > 0 {
			if err := pause(ctx, p.tcpUp); err != nil {
				return nil, err
			}
			tcpUp()
		}
		if p.hang {
			return nil, hang(ctx)
		}
		if err := pause(ctx, p.after-p.tcpUp); err != nil {
			return nil, err
		}
		if p.err != nil {
			return nil, p.err
		}
		c := &fakeConn{key: key}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		return &carrier{version: negotiate(ep.Proto, p.version), ep: ep, conn: c}, nil
	}
}

// settings sends the SETTINGS scripted for the carrier's path.
func (f *fakeNet) settings(ctx context.Context, c *carrier) (hev3.Settings, error) {
	f.running.Add(1)
	defer f.running.Add(-1)
	p := f.paths[fakeKey{c.ep.Addr, c.ep.Proto.QUIC()}]
	if err := wait(ctx, p.settingsAfter); err != nil {
		return hev3.Settings{}, err
	}
	return p.settings, p.settingsErr
}

// conn returns the connections handed out on a path, in order.
func (f *fakeNet) conn(t *testing.T, addr netip.AddrPort, overQUIC bool) []*fakeConn {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var cs []*fakeConn
	for _, c := range f.conns {
		if c.key == (fakeKey{addr, overQUIC}) {
			cs = append(cs, c)
		}
	}
	return cs
}

// negotiate returns the version a server preferring v negotiates with an
// attempt offering p.
func negotiate(p hev3.Proto, v hev3.Version) hev3.Version {
	switch {
	case p.QUIC():
		return hev3.H3
	case v == hev3.H2 && (p == hev3.ProtoH2OrH1 || p == hev3.ProtoH2):
		return hev3.H2
	}
	return hev3.H1
}

// wait waits for d, or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// hang waits for ctx to end, and 1 ms more.
func hang(ctx context.Context) error {
	<-ctx.Done()
	time.Sleep(time.Millisecond)
	return context.Cause(ctx)
}

// refused is the error of a TCP connection refused, as net.Dialer returns it.
func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// dualStack answers HTTPS with NODATA after 1 ms, AAAA with ::1 after 2 ms
// and A with 127.0.0.1 after 3 ms: distinct times keep the order of events
// fixed.
func dualStack() map[hev3.RecordType]fakeAnswer {
	return map[hev3.RecordType]fakeAnswer{
		hev3.HTTPS: {after: time.Millisecond},
		hev3.AAAA:  {after: 2 * time.Millisecond, addrs: []netip.Addr{v6.Addr()}},
		hev3.A:     {after: 3 * time.Millisecond, addrs: []netip.Addr{v4.Addr()}},
	}
}

// wsSpec is a race for a WebSocket to wss://x.test/.
func wsSpec() raceSpec {
	return raceSpec{url: "wss://x.test/", kind: "websocket", host: "x.test", port: 443, need: hev3.NeedWebSocket, versions: hev3.AllVersions}
}

// runRace runs a race of spec on f with the default configuration, and
// checks that nothing of the network is still running when it returns.
func runRace(t *testing.T, ctx context.Context, f *fakeNet, cfg config, spec raceSpec) (*carrier, *Report, error) {
	t.Helper()
	d := &Dialer{net: f.raceNet()}
	car, rep, err := d.race(ctx, cfg, spec)
	d.lingering.stop() // DNS queries the race left running (see TestRaceDNSLinger)
	if n := f.running.Load(); n != 0 {
		t.Errorf("%d lookups, dials or SETTINGS waits still running after the race", n)
	}
	if car != nil {
		t.Cleanup(func() { car.Close() })
	}
	return car, rep, err
}

// outcomes lists the outcome of each attempt, from the typed records and,
// to check they agree, from the Report's strings.
func outcomes(t *testing.T, rep *Report) []outcome {
	t.Helper()
	var out []outcome
	for i, res := range rep.results {
		if got := rep.Attempts[i].Outcome; got != res.outcome.String() {
			t.Errorf("attempt %d: Report says %q, record says %v", i, got, res.outcome)
		}
		out = append(out, res.outcome)
	}
	return out
}

// TestRaceLoserClosedWinnerKept: the first attempt to prove the capability
// wins and keeps its connection; a connected attempt that lost is closed
// once; the race takes exactly as long as the winner needed.
func TestRaceLoserClosedWinnerKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ext := hev3.Settings{ExtendedConnect: true}
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			// [::1] starts at 2 ms and connects at once, but its SETTINGS
			// take 300 ms; 127.0.0.1 starts one attempt delay later and
			// proves extended CONNECT at 272 ms.
			{v6, false}: {version: hev3.H2, settingsAfter: 300 * time.Millisecond, settings: ext},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext},
		}}
		car, rep, err := runRace(t, t.Context(), f, defaultConfig(), wsSpec())
		if err != nil {
			t.Fatal(err)
		}
		loser, winner := f.conn(t, v6, false), f.conn(t, v4, false)
		if len(loser) != 1 || len(winner) != 1 {
			t.Fatalf("%d and %d connections, want one per path", len(loser), len(winner))
		}
		if car.conn != winner[0] {
			t.Error("the race returned another connection than the winner's")
		}
		if n := winner[0].closes.Load(); n != 0 {
			t.Errorf("winner closed %d times", n)
		}
		if n := loser[0].closes.Load(); n != 1 {
			t.Errorf("loser closed %d times, want 1", n)
		}
		if got, want := outcomes(t, rep), []outcome{outcomeLost, outcomeWon}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		a := rep.Attempts
		if rep.Winner != 1 || a[0].Start != 2*time.Millisecond || a[1].Start != 252*time.Millisecond || a[1].Connected != 262*time.Millisecond || a[1].End != 272*time.Millisecond || rep.Duration != 272*time.Millisecond {
			t.Errorf("winner %d, starts %v %v, connected %v, end %v, race %v", rep.Winner, a[0].Start, a[1].Start, a[1].Connected, a[1].End, rep.Duration)
		}
		if a[1].Settings == nil || !a[1].Settings.ExtendedConnect || a[0].Settings != nil || a[0].Version != "h2" {
			t.Errorf("settings %+v and %+v, loser version %q", a[1].Settings, a[0].Settings, a[0].Version)
		}
		if want := "h2,h1 127.0.0.1:443 won after 272.0ms: first connection whose SETTINGS enable extended CONNECT"; rep.Reason != want {
			t.Errorf("reason %q, want %q", rep.Reason, want)
		}
	})
}

// TestRaceLateConnectionClosed: a connection that comes up after the race
// was decided is closed, leaves the Report alone, and the race returns
// only once its goroutine has ended.
func TestRaceLateConnectionClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {after: 400 * time.Millisecond, version: hev3.H1, ignoreCancel: true},
			{v4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		_, rep, err := runRace(t, t.Context(), f, defaultConfig(), wsSpec())
		if err != nil {
			t.Fatal(err)
		}
		late := f.conn(t, v6, false)
		if len(late) != 1 || late[0].closes.Load() != 1 {
			t.Fatalf("late connection not closed once: %d", len(late))
		}
		if got, want := outcomes(t, rep), []outcome{outcomeLost, outcomeWon}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		if a := rep.Attempts[0]; a.Connected != 0 || a.Version != "" || a.End != 262*time.Millisecond {
			t.Errorf("late event changed the loser's record: %+v", a)
		}
		if rep.Duration != 402*time.Millisecond {
			t.Errorf("race returned after %v, want 402ms (when the late dial ended)", rep.Duration)
		}
	})
}

// TestRaceIncapableStepsDown: an h2 connection without extended CONNECT
// is closed at once as incapable, and the WebSocket race goes on over
// HTTP/1.1 on the same address.
func TestRaceIncapableStepsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: map[hev3.RecordType]fakeAnswer{hev3.AAAA: {addrs: []netip.Addr{v6.Addr()}}}, paths: map[fakeKey]fakePath{
			{v6, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond},
		}}
		car, rep, err := runRace(t, t.Context(), f, defaultConfig(), wsSpec())
		if err != nil {
			t.Fatal(err)
		}
		cs := f.conn(t, v6, false)
		if len(cs) != 2 || cs[0].closes.Load() != 1 || cs[1].closes.Load() != 0 || car.conn != cs[1] {
			t.Fatalf("%d connections; want the h2 one closed once, the h1 one returned", len(cs))
		}
		if got, want := outcomes(t, rep), []outcome{outcomeIncapable, outcomeWon}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		res := rep.results
		if res[0].version != hev3.H2 || res[0].settings == nil || res[1].version != hev3.H1 || res[1].proto != hev3.ProtoH1 {
			t.Errorf("records %+v", res)
		}
		if !errors.Is(res[0].err, ErrUnsupported) || rep.Attempts[0].Err != "h2 SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL" {
			t.Errorf("incapable attempt: %v / %q", res[0].err, rep.Attempts[0].Err)
		}
		if want := "h1 [::1]:443 won after 30.0ms: first TLS/TCP connection for an HTTP/1.1 upgrade"; rep.Reason != want {
			t.Errorf("reason %q, want %q", rep.Reason, want)
		}
	})
}

// TestRaceAllRefused: a race whose every attempt fails returns a
// DialError naming each attempt in order, matching the cause with
// errors.Is.
func TestRaceAllRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack()} // no path: every dial is refused
		car, rep, err := runRace(t, t.Context(), f, defaultConfig(), wsSpec())
		if car != nil {
			t.Fatal("a winner on a network that refuses everything")
		}
		var de *DialError
		if !errors.As(err, &de) || de.Stage != "connect" || !errors.Is(err, syscall.ECONNREFUSED) || de.Timeout() {
			t.Fatalf("error %v (%T)", err, err)
		}
		if len(de.Attempts) != 2 || de.Attempts[0].Addr != v6 || de.Attempts[1].Addr != v4 || de.Attempts[0].Proto != "h2,h1" {
			t.Errorf("attempts %v", de.Attempts)
		}
		if strings.Contains(err.Error(), "UDP") {
			t.Errorf("a race without QUIC blames UDP: %v", err)
		}
		if got, want := outcomes(t, rep), []outcome{outcomeFailed, outcomeFailed}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		// The second attempt starts 10 ms after the first (draft §6), at
		// 12 ms, however fast the first failed.
		if rep.Winner != -1 || rep.Reason != "failed: connect" || rep.Err != err.Error() || rep.Duration != 12*time.Millisecond {
			t.Errorf("report: winner %d, reason %q, error %q, duration %v", rep.Winner, rep.Reason, rep.Err, rep.Duration)
		}
	})
}

// TestRaceDeadline: when the dial's context ends, every live attempt is
// aborted and the error is a timeout; an attempt whose TCP was up says
// that TLS did not finish.
func TestRaceDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {hang: true},
			{v4, false}: {tcpUp: 5 * time.Millisecond, hang: true},
		}}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, rep, err := runRace(t, ctx, f, defaultConfig(), wsSpec())
		var de *DialError
		if !errors.As(err, &de) || de.Stage != "connect" || !errors.Is(err, context.DeadlineExceeded) || !de.Timeout() {
			t.Fatalf("error %v", err)
		}
		if got, want := outcomes(t, rep), []outcome{outcomeAborted, outcomeAborted}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		if len(de.Attempts) != 2 || !strings.Contains(de.Attempts[1].Err.Error(), "TCP connected but the TLS handshake did not finish") || strings.Contains(de.Attempts[0].Err.Error(), "TCP") {
			t.Errorf("attempt errors %v", de.Attempts)
		}
		if rep.Attempts[1].TCP != 257*time.Millisecond || rep.Duration != time.Second+time.Millisecond {
			t.Errorf("TCP up at %v, race %v", rep.Attempts[1].TCP, rep.Duration)
		}
	})
}

// TestRaceDNSFailure: without an address nothing is attempted and the
// error says DNS failed; every answer is in the Report.
func TestRaceDNSFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		servfail := errors.New("SERVFAIL")
		f := &fakeNet{answers: map[hev3.RecordType]fakeAnswer{
			hev3.AAAA: {err: servfail},
			hev3.A:    {after: time.Millisecond, err: servfail},
		}}
		var dnsDone []error
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{DNSDone: func(i httptrace.DNSDoneInfo) { dnsDone = append(dnsDone, i.Err) }})
		_, rep, err := runRace(t, ctx, f, defaultConfig(), wsSpec())
		var de *DialError
		if !errors.As(err, &de) || de.Stage != "dns" || !errors.Is(err, ErrNoAddress) || len(de.DNS) != 2 {
			t.Fatalf("error %v", err)
		}
		if len(rep.DNS) != 3 || len(rep.Attempts) != 0 {
			t.Fatalf("%d queries, %d attempts", len(rep.DNS), len(rep.Attempts))
		}
		for _, q := range rep.DNS {
			if q.Type != "HTTPS" && q.Err != "SERVFAIL" {
				t.Errorf("%s answer: %q", q.Type, q.Err)
			}
		}
		if len(dnsDone) != 1 || !errors.Is(dnsDone[0], ErrNoAddress) {
			t.Errorf("httptrace DNSDone: %v", dnsDone)
		}
	})
}

// TestRaceLateAnswerRecorded: an answer that comes in while the race winds
// down is still recorded. (An aborted race: a won one leaves its queries
// to the Dialer, see TestRaceDNSLinger.)
func TestRaceLateAnswerRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		answers := dualStack()
		answers[hev3.A] = fakeAnswer{after: time.Hour} // cut short when the race ends
		f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{{v6, false}: {hang: true}}}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, rep, err := runRace(t, ctx, f, defaultConfig(), wsSpec())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		q := rep.DNS[2]
		if q.Type != "A" || q.End != 100*time.Millisecond || q.Err != context.Canceled.Error() {
			t.Errorf("A query: %+v", q)
		}
	})
}

// TestRaceTrace: the Trace sees every event in order, and a lost attempt's
// cancellation before the winner's Won, as documented.
func TestRaceTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ext := hev3.Settings{ExtendedConnect: true}
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{v6, false}: {version: hev3.H2, settingsAfter: time.Second, settings: ext},
			{v4, false}: {version: hev3.H2, settingsAfter: time.Millisecond, settings: ext},
		}}
		var log []string
		add := func(what string, a Attempt) { log = append(log, what+" "+a.Addr.Addr().String()) }
		cfg := defaultConfig()
		cfg.trace = &Trace{
			DNSStart:      func(q DNSQuery) { log = append(log, "dns "+q.Type) },
			DNSDone:       func(q DNSQuery) { log = append(log, "answer "+q.Type) },
			AttemptStart:  func(a Attempt) { add("start", a) },
			HandshakeDone: func(a Attempt) { add("connected", a) },
			Settings:      func(a Attempt) { add("settings", a) },
			Cancelled:     func(a Attempt) { add(a.Outcome, a) },
			Won:           func(a Attempt, _ string) { add("won", a) },
		}
		if _, _, err := runRace(t, t.Context(), f, cfg, wsSpec()); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"dns HTTPS", "dns AAAA", "dns A", "answer HTTPS", "answer AAAA",
			"start ::1", "connected ::1", "answer A",
			"start 127.0.0.1", "connected 127.0.0.1", "settings 127.0.0.1",
			"lost ::1", "won 127.0.0.1",
		}
		if !slices.Equal(log, want) {
			t.Errorf("trace\n%q\nwant\n%q", log, want)
		}
	})
}

// TestRaceUDPSilent: a failed race with QUIC attempts says UDP looks
// blocked only when no QUIC attempt heard from the server; what they
// heard is read from typed errors.
func TestRaceUDPSilent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quic   fakePath
		silent bool
	}{
		{"blackholed", fakePath{hang: true}, true},
		{"handshake timeout", fakePath{err: &quic.HandshakeTimeoutError{}}, true},
		{"CONNECTION_REFUSED", fakePath{err: &quic.TransportError{Remote: true, ErrorCode: quic.ConnectionRefused}}, false},
		{"ICMP port unreachable", fakePath{err: fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvmsg", syscall.ECONNREFUSED)})}, false},
		{"connected but incapable", fakePath{version: hev3.H3, settings: hev3.Settings{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{{v6, true}: tc.quic, {v4, true}: tc.quic}}
				spec := wsSpec()
				spec.knownH3 = true
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				_, rep, err := runRace(t, ctx, f, defaultConfig(), spec)
				if err == nil {
					t.Fatal("race won")
				}
				n := 0
				for _, a := range rep.results {
					if a.proto.QUIC() {
						n++
					}
				}
				if n == 0 {
					t.Fatal("no QUIC attempt")
				}
				if got := strings.Contains(err.Error(), "UDP looks blocked"); got != tc.silent {
					t.Errorf("says UDP looks blocked: %v, want %v (%v)", got, tc.silent, err)
				}
			})
		})
	}
}

// TestHeardFrom: which errors of a QUIC attempt show that its packets
// reached the server's host.
func TestHeardFrom(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.DeadlineExceeded, false},
		{&quic.HandshakeTimeoutError{}, false},
		{&quic.IdleTimeoutError{}, false},
		{net.ErrClosed, false},
		{errors.New("connection refused"), false},                        // text says nothing
		{&quic.TransportError{ErrorCode: quic.ProtocolViolation}, false}, // ours
		{&quic.ApplicationError{ErrorCode: 0}, false},                    // ours
		{refused(), true},
		{fmt.Errorf("wrapped: %w", os.NewSyscallError("recvmsg", syscall.ECONNREFUSED)), true},
		{&quic.TransportError{Remote: true, ErrorCode: quic.ConnectionRefused}, true},
		{&quic.TransportError{Remote: true, ErrorCode: quic.ProtocolViolation}, true},
		{&quic.ApplicationError{Remote: true, ErrorCode: 0x100}, true},
		{&quic.VersionNegotiationError{}, true},
		{&quic.StatelessResetError{}, true},
	} {
		if got := heardFrom(tc.err); got != tc.want {
			t.Errorf("heardFrom(%#v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestHandOverKeepsWinnerSocket: when the race ends, the h3 winner owns its
// UDP socket and every other socket of the race is closed.
func TestHandOverKeepsWinnerSocket(t *testing.T) {
	socks := &udpSockets{}
	keep, err := socks.transport(hev3.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	other, err := socks.transport(hev3.IPv6)
	if err != nil {
		t.Skip("no IPv6:", err)
	}
	win := &carrier{version: hev3.H3, h3: &h3Conn{}, transport: keep}
	socks.handOver(win)
	if win.h3.tr != keep {
		t.Error("the winner does not own its socket")
	}
	if err := keep.Conn.SetReadDeadline(time.Time{}); err != nil {
		t.Errorf("winner's socket closed: %v", err)
	}
	if err := other.Conn.SetReadDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("loser's socket not closed: %v", err)
	}
	if _, err := socks.transport(hev3.IPv6); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a socket opened after the race: %v", err)
	}
	closeTransport(keep)
}

// TestRacerIgnoresLateEvents: an event of an attempt the machine has
// cancelled changes nothing, and a connection it brings is closed. (The
// machine cancels attempts only when the race is decided or when their
// last event shows them incapable, so such events reach the handlers only
// through windDown in a whole race; here the handlers get one directly.)
func TestRacerIgnoresLateEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{paths: map[fakeKey]fakePath{{v6, false}: {hang: true}}}
		d := &Dialer{net: f.raceNet()}
		spec := wsSpec()
		spec.host, spec.literal = "", v6.Addr()
		r, err := d.newRacer(t.Context(), defaultConfig(), spec)
		if err != nil {
			t.Fatal(err)
		}
		acts, _ := r.m.Poll(time.Now())
		start, ok := acts[0].(hev3.StartAttempt)
		if len(acts) != 1 || !ok {
			t.Fatalf("actions %v, want one StartAttempt", acts)
		}
		r.do(start)
		r.do(hev3.Cancel{ID: start.ID, Reason: hev3.LostRace})
		late := &fakeConn{}
		r.on(raceEvent{kind: evConnected, id: start.ID, car: &carrier{version: hev3.H2, conn: late}})
		r.on(raceEvent{kind: evSettings, id: start.ID, settings: hev3.Settings{ExtendedConnect: true}})
		r.on(raceEvent{kind: evFailed, id: start.ID, err: refused()})
		if n := late.closes.Load(); n != 1 {
			t.Errorf("late connection closed %d times, want 1", n)
		}
		a, res := r.attempt(r.attempts[start.ID])
		if a.Connected != 0 || a.Settings != nil || a.Err != "" || res.connected || res.err != nil || res.outcome != outcomeLost {
			t.Errorf("late events changed the attempt: %+v %+v", a, res)
		}
		r.windDown()
		if r.liveQueries+r.liveAttempts != 0 || f.running.Load() != 0 {
			t.Errorf("%d goroutines, %d dials still running", r.liveQueries+r.liveAttempts, f.running.Load())
		}
	})
}
