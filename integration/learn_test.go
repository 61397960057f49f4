package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// What a Dialer learns about the network the host is on (issue 16, draft
// -ietf-happy-happyeyeballs-v3 §5.3): real sockets on loopback, where a
// family or UDP is blackholed. The first dial pays one attempt delay to get
// around the fault; the next ones, to the same origin or to a new one,
// do not. (That a move to another network forgets it is tested in the
// root package, which can simulate the move, and in the namespace
// scenario, which makes one: TestLearnNamespace.)

// otherHost is a second origin on the same addresses as host.
const otherHost = "new.example.test"

// notDelayed bounds a dial that must not wait for an attempt delay: a
// handshake on loopback takes milliseconds, under -race on a loaded
// machine tens of them.
const notDelayed = attemptDelay / 2

// learnDialer dials WebSockets (or WebTransport sessions) with one Dialer
// and keeps each dial's Report.
type learnDialer struct {
	d   *dialer.Dialer
	mu  sync.Mutex
	rep *dialer.Report
}

func newLearnDialer(e *env) *learnDialer {
	l := &learnDialer{}
	l.d = e.dialer(dialer.WithTimeout(okTimeout), dialer.WithReport(func(r *dialer.Report) {
		l.mu.Lock()
		l.rep = r
		l.mu.Unlock()
	}))
	return l
}

// dial dials origin's echo endpoint, proves the session by using it, closes
// it and every pooled connection (so that the next dial races again), and
// returns how long the dial took, the HTTP version and the race's Report.
func (l *learnDialer) dial(t *testing.T, kind sessionKind, origin string) (time.Duration, int, *dialer.Report) {
	t.Helper()
	defer l.d.CloseIdleConnections()
	start := time.Now()
	var major int
	switch kind {
	case kindWT:
		s, _, err := l.d.DialWebTransport(ctx(t), "https://"+origin+"/wt")
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		major = s.HTTPVersion()
		roundTrip(t, s, []byte("learn"))
		s.CloseWithError(0, "")
		return elapsed, major, l.report()
	default:
		c, resp, err := l.d.DialWebSocket(ctx(t), "wss://"+origin+"/echo")
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		major = resp.ProtoMajor
		echo(t, c, websocket.MessageText, []byte("learn"))
		closeConn(t, c)
		return elapsed, major, l.report()
	}
}

func (l *learnDialer) report() *dialer.Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rep
}

// winner describes the Report's winning attempt.
func winner(rep *dialer.Report) string {
	if rep == nil || rep.Winner < 0 {
		return "none"
	}
	a := rep.Attempts[rep.Winner]
	return fmt.Sprintf("%s %s (attempt %d of %d)", a.Proto, a.Family, rep.Winner+1, len(rep.Attempts))
}

// TestLearnIPv6Blackholed: [::1] drops SYNs, 127.0.0.1 serves. The first
// dial falls back after one attempt delay; a second one, to the same origin
// and to a new origin, goes to IPv4 at once, and its Report says why. A
// new Dialer knows nothing: it pays again.
func TestLearnIPv6Blackholed(t *testing.T) {
	e := newEnv(t, true, serve, blackhole)
	for _, name := range []string{host, otherHost} {
		e.dns.A(name, "127.0.0.1")
		e.dns.AAAA(name, "::1")
	}
	origin := func(name string) string { return name + ":" + itoa(e.port) }
	l := newLearnDialer(e)
	elapsed, _, rep := l.dial(t, kindWS, origin(host))
	if elapsed < attemptDelay-50*time.Millisecond || rep.Attempts[rep.Winner].Family != "IPv4" {
		t.Fatalf("first dial: %v, won by %s; want IPv4 after the attempt delay\n%v", elapsed, winner(rep), rep)
	}
	for _, name := range []string{host, otherHost} {
		elapsed, _, rep := l.dial(t, kindWS, origin(name))
		if elapsed > notDelayed || rep.Winner != 0 || rep.Attempts[0].Family != "IPv4" {
			t.Errorf("%s, second dial: %v, won by %s; want IPv4 first, within %v\n%v", name, elapsed, winner(rep), notDelayed, rep)
		}
		if len(rep.Learned) == 0 {
			t.Errorf("%s: the Report does not say that learned state shaped the race\n%v", name, rep)
		}
	}
	fresh := newLearnDialer(e)
	if elapsed, _, rep := fresh.dial(t, kindWS, origin(otherHost)); elapsed < attemptDelay-50*time.Millisecond || len(rep.Learned) != 0 {
		t.Errorf("a new Dialer: %v, learned %q; want a first dial's delay", elapsed, rep.Learned)
	}
}

// TestLearnUDPBlocked: a dual-stack origin whose HTTPS record says h3,h2,
// with UDP blackholed on both families. The first WebSocket dial gets h2
// about one attempt delay after its QUIC attempt (TCP over IPv4 is second
// in the diagonal order); the second, to the same origin or a new one, at
// once. WebTransport, which tries h3 on both families before TCP, pays
// two attempt delays the first time, and none the next.
func TestLearnUDPBlocked(t *testing.T) {
	for _, tc := range []struct {
		kind  sessionKind
		tcp   family
		first time.Duration // the first dial's delay
	}{
		{kindWS, serve, attemptDelay},
		{kindWT, wtH2, 2 * attemptDelay},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			e := newEnv(t, true, tc.tcp, tc.tcp)
			e.quic(udpBlackhole, udpBlackhole)
			for _, name := range []string{host, otherHost} {
				e.dns.A(name, "127.0.0.1")
				e.dns.AAAA(name, "::1")
				e.dns.HTTPS(name, "1 . alpn=h3,h2")
			}
			origin := func(name string) string { return name + ":" + itoa(e.port) }
			l := newLearnDialer(e)
			elapsed, major, rep := l.dial(t, tc.kind, origin(host))
			if major != 2 || elapsed < tc.first-50*time.Millisecond || elapsed > tc.first+faultSlack {
				t.Fatalf("first dial: HTTP/%d after %v, won by %s; want HTTP/2 after about %v\n%v", major, elapsed, winner(rep), tc.first, rep)
			}
			for _, name := range []string{host, otherHost} {
				elapsed, major, rep := l.dial(t, tc.kind, origin(name))
				if major != 2 || elapsed > notDelayed || rep.Winner != 0 {
					t.Errorf("%s, second dial: HTTP/%d after %v, won by %s; want HTTP/2 on the first attempt, within %v\n%v", name, major, elapsed, winner(rep), notDelayed, rep)
				}
				if len(rep.Learned) == 0 {
					t.Errorf("%s: the Report does not say that learned state shaped the race\n%v", name, rep)
				}
			}
		})
	}
}
