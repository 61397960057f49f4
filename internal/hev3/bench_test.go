package hev3

import (
	"net/netip"
	"testing"
)

// manyHints returns n/2 IPv6 and n/2 IPv4 documentation addresses.
func manyHints(n int) (v6s, v4s []netip.Addr) {
	for i := range n / 2 {
		v6s = append(v6s, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
		v4s = append(v4s, netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
	}
	return v6s, v4s
}

// hintRace starts a race whose HTTPS answer is one record with 4,000
// hints and whose AAAA and A answers are empty.
func hintRace(v6s, v4s []netip.Addr) *Machine {
	m := New(config(), base)
	m.Poll(base) // queries 0, 1, 2
	m.OnDNS(base, 0, Answer{Services: []ServiceInfo{{Priority: 1, ALPN: []string{"h2", "http/1.1"}, IPv6Hints: v6s, IPv4Hints: v4s}}})
	m.OnDNS(base, 1, Answer{})
	m.OnDNS(base, 2, Answer{})
	return m
}

// BenchmarkStepManyHints measures one step of a race with 4,000 hints:
// the last attempt fails and Poll starts the next. ns/step is the figure
// to read.
func BenchmarkStepManyHints(b *testing.B) {
	v6s, v4s := manyHints(4000)
	steps := 0
	for b.Loop() {
		m := hintRace(v6s, v4s)
		for range 16 {
			acts, _ := m.Poll(base)
			steps++
			for _, a := range acts {
				if s, ok := a.(StartAttempt); ok {
					m.OnFailed(base, s.ID, errTest)
				}
			}
			if m.Done() {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
}

// BenchmarkPollIdleManyHints measures a Poll that follows no input (a
// timer that fired early, say) while an attempt is live, in a race with
// 4,000 hints.
func BenchmarkPollIdleManyHints(b *testing.B) {
	v6s, v4s := manyHints(4000)
	m := hintRace(v6s, v4s)
	m.Poll(base) // the first attempt
	for b.Loop() {
		if acts, _ := m.Poll(base); len(acts) != 0 {
			b.Fatalf("Poll returned %v", describeAll(acts))
		}
	}
}
