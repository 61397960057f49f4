package hev3

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// base is the fixed start of every test race.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const ms = time.Millisecond

// Addresses used in tests (RFC 3849 and RFC 5737 documentation ranges).
const (
	v6  = "2001:db8::1"
	v6b = "2001:db8::2"
	v6c = "2001:db8::3"
	v4  = "192.0.2.1"
	v4b = "192.0.2.2"
	v4c = "192.0.2.3"
)

var errTest = errors.New("test failure")

// race drives a Machine with time as an input and checks its actions.
type race struct {
	t    *testing.T
	m    *Machine
	now  time.Duration // since base
	wake time.Time     // from the last Poll
}

// config returns the default config for example.com:443.
func config() Config {
	return Config{Host: "example.com", Port: 443}
}

func newRace(t *testing.T, cfg Config) *race {
	t.Helper()
	return &race{t: t, m: New(cfg, base)}
}

// at moves the clock to base+d; time never goes back.
func (r *race) at(d time.Duration) *race {
	r.t.Helper()
	if d < r.now {
		r.t.Fatalf("time goes back: %v after %v", d, r.now)
	}
	r.now = d
	return r
}

func (r *race) clock() time.Time { return base.Add(r.now) }

// expect polls at the current time and checks the exact actions.
func (r *race) expect(want ...string) *race {
	r.t.Helper()
	acts, wake := r.m.Poll(r.clock())
	got := describeAll(acts)
	if !slices.Equal(got, want) {
		r.t.Fatalf("at %v: Poll returned\n\t%s\nwant\n\t%s", r.now,
			strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if !wake.IsZero() && !wake.After(r.clock()) {
		r.t.Fatalf("at %v: wake %v is not in the future", r.now, wake.Sub(base))
	}
	if r.m.Done() && !wake.IsZero() {
		r.t.Fatalf("at %v: wake %v after Done", r.now, wake.Sub(base))
	}
	// Poll returns everything that is due: polling again changes nothing.
	again, wake2 := r.m.Poll(r.clock())
	if len(again) > 0 || !wake2.Equal(wake) {
		r.t.Fatalf("at %v: second Poll returned %v, wake %v (first wake %v)",
			r.now, describeAll(again), wake2, wake)
	}
	r.wake = wake
	return r
}

// wakeAt checks that the last Poll asked to be called again at base+d.
func (r *race) wakeAt(d time.Duration) *race {
	r.t.Helper()
	if !r.wake.Equal(base.Add(d)) {
		r.t.Fatalf("at %v: wake = %s, want %v", r.now, r.wakeString(), d)
	}
	return r
}

// idle checks that the last Poll asked for no timer.
func (r *race) idle() *race {
	r.t.Helper()
	if !r.wake.IsZero() {
		r.t.Fatalf("at %v: wake = %s, want none", r.now, r.wakeString())
	}
	return r
}

func (r *race) wakeString() string {
	if r.wake.IsZero() {
		return "none"
	}
	return r.wake.Sub(base).String()
}

// done checks Machine.Done.
func (r *race) done(want bool) *race {
	r.t.Helper()
	if got := r.m.Done(); got != want {
		r.t.Fatalf("at %v: Done() = %v, want %v", r.now, got, want)
	}
	return r
}

// Inputs. Each moves the clock to base+d first.

func (r *race) dns(d time.Duration, id int, ans Answer) *race {
	r.t.Helper()
	r.at(d).m.OnDNS(r.clock(), id, ans)
	return r
}

func (r *race) addrs(d time.Duration, id int, addrs ...string) *race {
	r.t.Helper()
	return r.dns(d, id, Answer{Addrs: parseAddrs(addrs...)})
}

func (r *race) negative(d time.Duration, id int) *race {
	r.t.Helper()
	return r.dns(d, id, Answer{Err: errTest})
}

func (r *race) nodata(d time.Duration, id int) *race {
	r.t.Helper()
	return r.dns(d, id, Answer{})
}

func (r *race) https(d time.Duration, id int, recs ...ServiceInfo) *race {
	r.t.Helper()
	return r.dns(d, id, Answer{Services: recs})
}

func (r *race) connected(d time.Duration, id int, v Version) *race {
	r.t.Helper()
	r.at(d).m.OnConnected(r.clock(), id, v)
	return r
}

func (r *race) settings(d time.Duration, id int, s Settings) *race {
	r.t.Helper()
	r.at(d).m.OnSettings(r.clock(), id, s)
	return r
}

func (r *race) failed(d time.Duration, id int) *race {
	r.t.Helper()
	r.at(d).m.OnFailed(r.clock(), id, errTest)
	return r
}

func (r *race) abort(d time.Duration) *race {
	r.t.Helper()
	r.at(d).m.Abort(r.clock())
	return r
}

// queries polls at t=0 and expects the origin's HTTPS, AAAA and A queries
// for example.com.
func (r *race) queries() *race {
	r.t.Helper()
	return r.expect(
		"query 0 HTTPS example.com",
		"query 1 AAAA example.com",
		"query 2 A example.com",
	).idle()
}

// rec returns a ServiceMode record.
func rec(prio uint16, target string, alpn ...string) ServiceInfo {
	return ServiceInfo{Priority: prio, Target: target, ALPN: alpn}
}

func withHints(s ServiceInfo, hints ...string) ServiceInfo {
	for _, a := range parseAddrs(hints...) {
		if a.Is4() {
			s.IPv4Hints = append(s.IPv4Hints, a)
		} else {
			s.IPv6Hints = append(s.IPv6Hints, a)
		}
	}
	return s
}

func withPort(s ServiceInfo, port uint16) ServiceInfo {
	s.Port = port
	return s
}

func withECH(s ServiceInfo, ech string) ServiceInfo {
	s.ECH = []byte(ech)
	return s
}

func parseAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func describeAll(acts []Action) []string {
	out := make([]string, len(acts))
	for i, a := range acts {
		out[i] = describe(a)
	}
	return out
}

// describe renders an action as the tests spell it, for example
// "attempt 3 [2001:db8::1]:443 h3 ech=cfg hint".
func describe(a Action) string {
	switch a := a.(type) {
	case StartQuery:
		return fmt.Sprintf("query %d %s %s", a.ID, a.Type, a.Name)
	case StartAttempt:
		s := fmt.Sprintf("attempt %d %s %s", a.ID, a.Endpoint.Addr, a.Endpoint.Proto)
		if a.Endpoint.ECH != nil {
			s += " ech=" + string(a.Endpoint.ECH)
		}
		if a.Endpoint.Hint {
			s += " hint"
		}
		return s
	case Cancel:
		reason := map[CancelReason]string{LostRace: "lost", Incapable: "incapable", Aborted: "aborted"}[a.Reason]
		return fmt.Sprintf("cancel %d %s", a.ID, reason)
	case Succeed:
		return fmt.Sprintf("succeed %d", a.ID)
	case Fail:
		return "fail " + a.Reason.String()
	}
	return fmt.Sprintf("unknown %T", a)
}

func parseAddrPorts(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}
