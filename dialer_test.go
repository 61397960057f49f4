package dialer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// The tests of this file run a Dialer's races on the scripted network of
// race_test.go (fakeNet), in a synctest bubble.

// TestDialContextReturnsWinner: DialContext hands back the winning
// connection, closes the others and reports the race.
func TestDialContextReturnsWinner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a6, a4 := netip.AddrPortFrom(v6.Addr(), 80), netip.AddrPortFrom(v4.Addr(), 80)
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{a6, false}: {after: 300 * time.Millisecond, version: hev3.H1}, // loses to IPv4, one attempt delay later
			{a4, false}: {after: 10 * time.Millisecond, version: hev3.H1},
		}}
		var rep *Report
		d := New(WithReport(func(r *Report) { rep = r }))
		d.net = f.raceNet()
		c, err := d.DialContext(t.Context(), "tcp", "x.test:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if w := f.conn(t, a4, false); len(w) != 1 || c != w[0] || w[0].closes.Load() != 0 {
			t.Errorf("DialContext returned %v, not the IPv4 winner", c)
		}
		if len(f.conn(t, a6, false)) != 0 {
			t.Error("the IPv6 attempt connected although it was cancelled")
		}
		if rep == nil || rep.Kind != "tcp" || rep.Winner != 1 || rep.Attempts[1].Proto != "tcp" || rep.Duration != 262*time.Millisecond {
			t.Fatalf("report %+v", rep)
		}
		if got, want := outcomes(t, rep), []outcome{outcomeLost, outcomeWon}; !slices.Equal(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
	})
}

// TestDialContextNetworks: "tcp4" races IPv4 only; a network other than
// TCP fails at once.
func TestDialContextNetworks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a6, a4 := netip.AddrPortFrom(v6.Addr(), 80), netip.AddrPortFrom(v4.Addr(), 80)
		f := &fakeNet{answers: dualStack(), paths: map[fakeKey]fakePath{
			{a6, false}: {version: hev3.H1},
			{a4, false}: {version: hev3.H1},
		}}
		d := New()
		d.net = f.raceNet()
		c, err := d.DialContext(t.Context(), "tcp4", "x.test:80")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if len(f.conn(t, a6, false)) != 0 || len(f.conn(t, a4, false)) != 1 {
			t.Error("tcp4 dialed IPv6")
		}
		_, err = d.DialContext(t.Context(), "udp", "x.test:80")
		var ue net.UnknownNetworkError
		if !errors.As(err, &ue) {
			t.Errorf("udp: %v", err)
		}
	})
}

// TestRaceTeachesNextRace: a QUIC attempt that never heard from the
// server while TCP over the same family got through marks h3 as broken for
// the origin, from the race's typed records: the next race of the origin
// makes no QUIC attempt and wins on its first. A QUIC attempt over IPv6
// silent while TCP over IPv4 got through does not (issue 16): IPv6 may be
// what is broken. (Each second race runs on another network, so that what
// the Dialer learned about the network, netstate.go, does not shape it.)
func TestRaceTeachesNextRace(t *testing.T) {
	ext := hev3.Settings{ExtendedConnect: true}
	for _, tc := range []struct {
		name string
		// ipv6Only: the origin has no A record.
		ipv6Only bool
		quic     int // QUIC attempts of the second race
	}{
		{"same family", true, 0},
		{"other family", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				answers := dualStack()
				if tc.ipv6Only {
					delete(answers, hev3.A)
				}
				f := &fakeNet{answers: answers, paths: map[fakeKey]fakePath{
					{v6, true}:  {hang: true}, // UDP blackholed
					{v4, true}:  {hang: true},
					{v6, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext},
					{v4, false}: {after: 10 * time.Millisecond, version: hev3.H2, settingsAfter: 10 * time.Millisecond, settings: ext},
				}}
				d := &Dialer{net: f.raceNet()}
				key := poolKey{origin: "x.test:443"}
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				race := func() *Report {
					spec := wsSpec()
					h := d.caps.apply(key, spec.need, raceHints{versions: hev3.AllVersions, knownH3: true})
					spec.versions, spec.knownH3, spec.h3Port = h.versions, h.knownH3, h.h3Port
					car, rep, err := d.race(ctx, defaultConfig(), spec)
					if err != nil {
						t.Fatal(err)
					}
					car.Close()
					d.caps.learn(key, spec.need, rep)
					return rep
				}
				quicAttempts := func(rep *Report) int {
					n := 0
					for _, a := range rep.results {
						if a.proto.QUIC() {
							n++
						}
					}
					return n
				}
				first := race()
				if quicAttempts(first) == 0 || first.results[first.Winner].proto.QUIC() {
					t.Fatalf("first race: %d QUIC attempts, winner %v", quicAttempts(first), first.results[first.Winner].proto)
				}
				f.network.Add(1)
				second := race()
				if n := quicAttempts(second); n != tc.quic {
					t.Errorf("second race: %d QUIC attempts, want %d\n%v", n, tc.quic, second)
				}
				if tc.quic == 0 && (second.Winner != 0 || second.Duration != 22*time.Millisecond) {
					t.Errorf("second race: winner %d after %v; want the first after 22ms", second.Winner, second.Duration)
				}
			})
		})
	}
}
