package hev3

import (
	"testing"
	"time"
)

// Tests of the timing rules added for issue 16: MinAttemptDelay between
// any two attempt starts (draft §6), attempt delays from measured RTTs
// (§6), the slot extended by progress (§6.1), a resolution delay of zero
// and DNS kept after the win (§6).

// Draft §6: "a subsequent connection MUST NOT be started within 10
// milliseconds of the previous attempt", whatever ended the previous one.
// The old machine started the next attempt at the instant of a failure.
func TestFastFailuresSpaced(t *testing.T) {
	r := resolved(t, config(), list(v6, v6b), list(v4, v4b))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	// Refused at once: the next waits until 10 ms after the start.
	r.failed(0, 3).expect().wakeAt(10 * ms)
	r.at(9 * ms).expect().wakeAt(10 * ms)
	r.at(10 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(260 * ms)
	r.failed(12*ms, 4).expect().wakeAt(20 * ms)
	r.at(20 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1")
	// A failure later than 10 ms after the start frees the slot at once.
	r.failed(45*ms, 5).expect("attempt 6 192.0.2.2:443 h2,h1")
	// Nothing left: the race fails at once.
	r.failed(46*ms, 6).expect("fail connect")
}

// An Incapable verdict frees the slot, but not the 10 ms either.
func TestIncapableSpaced(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(2*ms, 3, H2).settings(3*ms, 3, noEC)
	r.expect("cancel 3 incapable", "fail unsupported")

	r = resolved(t, sessionConfig(NeedWebSocket, AllVersions), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(2*ms, 3, H2).settings(3*ms, 3, noEC).
		expect("cancel 3 incapable").wakeAt(10 * ms)
	r.at(10 * ms).expect("attempt 4 [2001:db8::1]:443 h1")
}

// Draft §6: with RTT history and no configured delay, an attempt holds the
// slot for 2×RTT of its family, within [MinRTTAttemptDelay,
// MaxAttemptDelay]; a family without history uses the default.
func TestRTTDelay(t *testing.T) {
	for _, tt := range []struct {
		name   string
		rtt    time.Duration
		delay  time.Duration // configured
		wantV6 time.Duration
	}{
		{"no history", 0, 0, DefaultAttemptDelay},
		{"80ms", 80 * ms, 0, 160 * ms},
		{"floor", 5 * ms, 0, MinRTTAttemptDelay},
		{"cap", 1500 * ms, 0, MaxAttemptDelay},
		{"huge", time.Duration(1 << 62), 0, MaxAttemptDelay},
		{"negative", -ms, 0, DefaultAttemptDelay},
		{"configured wins", 80 * ms, 300 * ms, 300 * ms},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config()
			cfg.RTT[IPv6] = tt.rtt
			cfg.AttemptDelay = tt.delay
			r := resolved(t, cfg, list(v6), list(v4, v4b))
			r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(tt.wantV6)
			r.at(tt.wantV6 - time.Nanosecond).expect().wakeAt(tt.wantV6)
			r.at(tt.wantV6).expect("attempt 4 192.0.2.1:443 h2,h1")
			// IPv4 has no history: its attempt holds the default (or
			// the configured) delay.
			want := tt.wantV6 + DefaultAttemptDelay
			if tt.delay != 0 {
				want = tt.wantV6 + tt.delay
			}
			r.wakeAt(want)
		})
	}
}

// Per-family RTTs: each attempt's slot follows its own family's RTT.
func TestRTTDelayPerFamily(t *testing.T) {
	cfg := config()
	cfg.RTT = [2]time.Duration{IPv6: 60 * ms, IPv4: 200 * ms}
	r := resolved(t, cfg, list(v6, v6b), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(120 * ms)
	r.at(120 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(520 * ms)
	r.at(520 * ms).expect("attempt 5 [2001:db8::2]:443 h2,h1").idle()
}

// Draft §6.1: progress (TCP up, TLS started) extends the slot to one
// attempt delay after it, never past MaxAttemptDelay after the start;
// progress that would end the slot earlier changes nothing. Without
// OnProgress the slot ends one delay after the start (the other tests).
func TestProgressExtendsSlot(t *testing.T) {
	r := resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(250 * ms)
	r.at(200 * ms)
	r.m.OnProgress(r.clock(), 3)
	r.expect().wakeAt(450 * ms)
	r.at(450 * ms).expect("attempt 4 192.0.2.1:443 h2,h1").idle()

	// Early progress does not shorten the slot.
	r = resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.m.OnProgress(base.Add(-time.Second), 3)
	r.at(0).expect().wakeAt(250 * ms)

	// Progress reported again and again stops at MaxAttemptDelay.
	r = resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	for d := 100 * ms; d < 3*time.Second; d += 200 * ms {
		r.m.OnProgress(base.Add(d), 3)
	}
	r.at(100 * ms).expect().wakeAt(MaxAttemptDelay)
	r.at(MaxAttemptDelay).expect("attempt 4 192.0.2.1:443 h2,h1")
}

// Progress follows the RTT-derived delay of the attempt's family; a
// failure after progress frees the slot at once; progress for unknown,
// ended or query ids is ignored.
func TestProgressRTTAndFailure(t *testing.T) {
	cfg := config()
	cfg.RTT[IPv6] = 50 * ms
	r := resolved(t, cfg, list(v6), list(v4, v4b))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1").wakeAt(100 * ms)
	r.m.OnProgress(base.Add(60*ms), 3)
	r.at(60 * ms).expect().wakeAt(160 * ms)
	r.failed(70*ms, 3).expect("attempt 4 192.0.2.1:443 h2,h1").wakeAt(320 * ms)
	for _, id := range []int{-1, 0, 3, 99} {
		r.m.OnProgress(base.Add(80*ms), id)
	}
	r.at(80 * ms).expect().wakeAt(320 * ms)
	// After the race, ignored too.
	r.connected(90*ms, 4, H2).expect("succeed 4")
	r.m.OnProgress(base.Add(95*ms), 4)
	r.at(95 * ms).expect().idle()
}

// A connected attempt waiting for SETTINGS can report progress too.
func TestProgressWhileAwaitingSettings(t *testing.T) {
	r := resolved(t, sessionConfig(NeedWebSocket, Versions(H2)), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2").wakeAt(250 * ms)
	r.connected(200*ms, 3, H2)
	r.m.OnProgress(r.clock(), 3)
	r.expect().wakeAt(450 * ms)
}

// WithResolutionDelay(0) means zero (ResolutionDelaySet): the first answer
// with an address starts the race. Unset, zero still means the default.
func TestResolutionDelayZero(t *testing.T) {
	cfg := config()
	cfg.ResolutionDelaySet = true
	r := newRace(t, cfg).queries()
	r.addrs(5*ms, 2, v4).expect("attempt 3 192.0.2.1:443 h2,h1").idle()
	r.addrs(7*ms, 1, v6).expect().wakeAt(255 * ms)

	// Negative with ResolutionDelaySet is zero too.
	cfg.ResolutionDelay = -time.Second
	r = newRace(t, cfg).queries()
	r.addrs(5*ms, 2, v4).expect("attempt 3 192.0.2.1:443 h2,h1")

	// A value set is used as is.
	cfg.ResolutionDelay = 20 * ms
	r = newRace(t, cfg).queries()
	r.addrs(5*ms, 2, v4).expect().wakeAt(25 * ms)

	// Unset: zero and negative mean DefaultResolutionDelay.
	for _, d := range []time.Duration{0, -time.Second} {
		cfg := config()
		cfg.ResolutionDelay = d
		r := newRace(t, cfg).queries()
		r.addrs(5*ms, 2, v4).expect().wakeAt(5*ms + DefaultResolutionDelay)
	}
}

// A zero resolution delay with an avoided address: no hold either.
func TestResolutionDelayZeroAvoided(t *testing.T) {
	cfg := config()
	cfg.ResolutionDelaySet = true
	cfg.Avoid = parseAddrPorts("192.0.2.1:443")
	r := newRace(t, cfg).queries()
	r.addrs(5*ms, 2, v4).expect("attempt 3 192.0.2.1:443 h2,h1")
}

// succeedOf polls and returns the Succeed action.
func succeedOf(t *testing.T, r *race) Succeed {
	t.Helper()
	acts, _ := r.m.Poll(r.clock())
	for _, a := range acts {
		if s, ok := a.(Succeed); ok {
			return s
		}
	}
	t.Fatalf("no Succeed in %v", describeAll(acts))
	return Succeed{}
}

// Draft §6: after the win, queries still in flight should be kept for
// DNSLinger so their answers fill the cache: Succeed says until when.
// With every query answered, or after a failure, nothing is asked.
func TestKeepDNSAfterWin(t *testing.T) {
	r := newRace(t, config()).queries()
	r.negative(0, 0).addrs(0, 1, v6).expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(30*ms, 3, H2)
	if s := succeedOf(t, r); s.ID != 3 || !s.KeepDNSUntil.Equal(base.Add(30*ms+DNSLinger)) {
		t.Errorf("Succeed = %+v, want KeepDNSUntil at %v", s, 30*ms+DNSLinger)
	}
	// The late answer is the caller's cache's; the machine ignores it.
	r.addrs(40*ms, 2, v4).expect().idle()

	r = resolved(t, config(), list(v6), list(v4))
	r.expect("attempt 3 [2001:db8::1]:443 h2,h1")
	r.connected(30*ms, 3, H2)
	if s := succeedOf(t, r); !s.KeepDNSUntil.IsZero() {
		t.Errorf("every query answered: Succeed = %+v, want no KeepDNSUntil", s)
	}

	// A win after SETTINGS: the time of the winning input counts.
	r = newRace(t, sessionConfig(NeedWebSocket, Versions(H2))).queries()
	r.negative(0, 0).addrs(0, 1, v6).expect("attempt 3 [2001:db8::1]:443 h2")
	r.connected(30*ms, 3, H2).settings(70*ms, 3, ecOnly)
	if s := succeedOf(t, r); !s.KeepDNSUntil.Equal(base.Add(70*ms + DNSLinger)) {
		t.Errorf("Succeed = %+v, want KeepDNSUntil at %v", s, 70*ms+DNSLinger)
	}
}
