package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
)

// Tests of issue 13: one DNS answer cannot make one dial do unbounded
// work. The bounds are internal/hev3's (bounds.go) and the Dialer's
// (race.go); the numbers are justified there and in RELIABILITY.md.

// cpuBound is the CPU time (user + system, of the whole process: the
// test's servers too) one dial that meets a hostile answer may use: twice
// that of an ordinary dial in the same env plus 40 ms. The bounded dials
// use a few milliseconds more than an ordinary one; before the bounds they
// used 100 ms to 600 ms more (seconds under -race). See the log lines.
func cpuBound(baseline time.Duration) time.Duration { return 2*baseline + 40*time.Millisecond }

// baselineCPU measures an ordinary dial in e (one A record, nothing else)
// and leaves e's DNS records for host empty. It returns the least CPU
// time of two dials.
func baselineCPU(t *testing.T, e *env) time.Duration {
	t.Helper()
	e.dns.A(host, "127.0.0.1")
	_, cpu1, _ := dialMeasured(t, e)
	_, cpu2, _ := dialMeasured(t, e)
	e.dns.A(host)
	return min(cpu1, cpu2)
}

// cpuTime returns the CPU time the process has used so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dialMeasured dials the env's wss URL once, echoes a message, and returns
// the dial's report, the CPU time and the wall time the dial took.
func dialMeasured(t *testing.T, e *env, opts ...dialer.Option) (*dialer.Report, time.Duration, time.Duration) {
	t.Helper()
	var (
		mu  sync.Mutex
		rep *dialer.Report
	)
	opts = append(opts, dialer.WithReport(func(r *dialer.Report) {
		mu.Lock()
		rep = r
		mu.Unlock()
	}))
	d := e.dialer(opts...)
	defer d.CloseIdleConnections()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, start := cpuTime(t), time.Now()
	c, _, err := d.DialWebSocket(ctx(t), e.url(true))
	cpu, wall := cpuTime(t)-cpu0, time.Since(start)
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Logf("dial: %v, CPU %v, %d kB allocated (process-wide)", wall, cpu, (m1.TotalAlloc-m0.TotalAlloc)>>10)
	echo(t, c, websocket.MessageText, []byte("bounded"))
	closeConn(t, c)
	mu.Lock()
	defer mu.Unlock()
	return rep, cpu, wall
}

// TestDNSFanOutServiceMode answers the origin's HTTPS query with 600
// ServiceMode records, each naming its own target: the dial asks for the
// addresses of MaxTargets targets only, and succeeds through the origin's
// addresses.
func TestDNSFanOutServiceMode(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	base := baselineCPU(t, e)
	before := e.dns.Total()
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	recs := make([]string, 600)
	for i := range recs {
		recs[i] = fmt.Sprintf("%d t%d.fanout.test. alpn=h2", i+1, i)
	}
	e.dns.HTTPS(host, recs...)

	rep, cpu, wall := dialMeasured(t, e)
	sent := e.dns.Total() - before
	targets := 0
	for _, q := range e.dns.Queries() {
		if strings.HasSuffix(q.Name, ".fanout.test.") {
			targets++
		}
	}
	t.Logf("600 ServiceMode records: %d queries received (%d for targets), %d in the report; dial took %v, CPU %v (ordinary dial: %v)",
		sent, targets, len(rep.DNS), wall, cpu, base)
	// HTTPS over UDP (truncated) then TCP, AAAA and A of the origin, and
	// AAAA and A of at most MaxTargets targets.
	if want := 4 + 2*hev3.MaxTargets; sent > want {
		t.Errorf("the DNS server received %d queries, want at most %d", sent, want)
	}
	if targets > 2*hev3.MaxTargets {
		t.Errorf("%d queries for ServiceMode targets, want at most %d", targets, 2*hev3.MaxTargets)
	}
	if len(rep.DNS) > hev3.MaxQueries {
		t.Errorf("the report lists %d queries, want at most %d", len(rep.DNS), hev3.MaxQueries)
	}
	if cpu > cpuBound(base) {
		t.Errorf("the dial used %v of CPU, want at most %v", cpu, cpuBound(base))
	}
	// The report lists the records the race used and counts the others.
	q := reportQuery(t, rep, host, "HTTPS")
	if len(q.Services) != hev3.MaxServices || q.Omitted != 600-hev3.MaxServices {
		t.Errorf("the report lists %d services and %d omitted, want %d and %d", len(q.Services), q.Omitted, hev3.MaxServices, 600-hev3.MaxServices)
	}
	checkReportSize(t, rep)
}

// reportQuery returns the report's query for name and type.
func reportQuery(t *testing.T, rep *dialer.Report, name, typ string) dialer.DNSQuery {
	t.Helper()
	for _, q := range rep.DNS {
		if q.Name == name && q.Type == typ {
			return q
		}
	}
	t.Fatalf("no %s query for %s in the report: %+v", typ, name, rep.DNS)
	return dialer.DNSQuery{}
}

// checkReportSize checks that the report's JSON stays small.
func checkReportSize(t *testing.T, rep *dialer.Report) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %d bytes of JSON", len(b))
	if len(b) > 32<<10 {
		t.Errorf("the report takes %d bytes of JSON, want at most 32 KiB", len(b))
	}
}

// hintList returns n IPv4 loopback addresses: refused ones (nothing listens
// on 127.1.0.0/16), with good, the server's address, at index at.
func hintList(n, at int, good string) []string {
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		if len(out) == at {
			out = append(out, good)
		}
		out = append(out, fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250))
	}
	return out[:n]
}

// TestDNSFanOutHints answers with one ServiceMode record carrying 4,000
// ipv4hint addresses, and, in a second case, with 4,000 A records; the
// server's address is the eighth, after seven refused ones. The dial walks
// the first addresses and succeeds through the good one; its CPU time
// stays small.
func TestDNSFanOutHints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		// check checks what the report says of the big answer.
		check func(t *testing.T, rep *dialer.Report)
	}{
		{"4000 hints", func(e *env) {
			e.dns.HTTPS(host, "1 . alpn=h2 ipv4hint="+strings.Join(hintList(4000, 7, "127.0.0.1"), ","))
		}, func(t *testing.T, rep *dialer.Report) {
			q := reportQuery(t, rep, host, "HTTPS")
			if len(q.Services) != 1 || len(q.Services[0].Hints) != hev3.MaxHints || q.Omitted != 4000-hev3.MaxHints {
				t.Errorf("the report lists %+v, %d omitted; want one record with %d hints, %d omitted", q.Services, q.Omitted, hev3.MaxHints, 4000-hev3.MaxHints)
			}
		}},
		{"4000 A records", func(e *env) {
			e.dns.A(host, hintList(4000, 7, "127.0.0.1")...)
			e.dns.HTTPS(host, "1 . alpn=h2")
		}, func(t *testing.T, rep *dialer.Report) {
			q := reportQuery(t, rep, host, "A")
			if len(q.Addrs) != hev3.MaxAddrs || q.Omitted != 4000-hev3.MaxAddrs {
				t.Errorf("the report lists %d addresses, %d omitted; want %d and %d", len(q.Addrs), q.Omitted, hev3.MaxAddrs, 4000-hev3.MaxAddrs)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, serve, serve)
			base := baselineCPU(t, e)
			tc.setup(e)
			rep, cpu, wall := dialMeasured(t, e)
			t.Logf("%s: %d attempts; dial took %v, CPU %v (ordinary dial: %v)", tc.name, len(rep.Attempts), wall, cpu, base)
			if rep.Winner < 0 || rep.Attempts[rep.Winner].Addr.Addr().String() != "127.0.0.1" {
				t.Fatalf("winner %d, attempts %+v", rep.Winner, rep.Attempts)
			}
			if n := len(rep.Attempts); n != 8 {
				t.Errorf("%d attempts, want 8 (seven refused, then the good address)", n)
			}
			if cpu > cpuBound(base) {
				t.Errorf("the dial used %v of CPU, want at most %v", cpu, cpuBound(base))
			}
			tc.check(t, rep)
			checkReportSize(t, rep)
		})
	}
}

// TestDNSQueriesInFlightPerRace makes the origin's AAAA and A answers slow
// and each target's answers take 100 ms: with four targets, the race wants
// ten queries at once, sends eight, and sends the last two (the fourth
// target's, the only one with addresses) when earlier ones are answered.
func TestDNSQueriesInFlightPerRace(t *testing.T) {
	e := newEnv(t, true, serve, serve)
	e.dns.HTTPS(host,
		"1 t1.fanout.test. alpn=h2",
		"2 t2.fanout.test. alpn=h2",
		"3 t3.fanout.test. alpn=h2",
		"4 t4.fanout.test. alpn=h2")
	e.dns.A("t4.fanout.test", "127.0.0.1")
	e.dns.AAAA("t4.fanout.test", "::1")
	e.dns.SetDefault(dnstest.Delay(100*time.Millisecond, nil))
	e.dns.Set(host, dnstest.TypeAAAA, dnstest.Delay(5*time.Second, nil))
	e.dns.Set(host, dnstest.TypeA, dnstest.Delay(5*time.Second, nil))
	e.dns.Set(host, dnstest.TypeHTTPS, dnstest.Default())

	rep, _, wall := dialMeasured(t, e)
	t.Logf("%d queries received, at most %d in flight; dial took %v", e.dns.Total(), e.dns.MaxInFlight(), wall)
	if n := e.dns.MaxInFlight(); n > hev3.DefaultMaxLiveQueries {
		t.Errorf("%d queries in flight at once, want at most %d", n, hev3.DefaultMaxLiveQueries)
	}
	for _, typ := range []uint16{dnstest.TypeAAAA, dnstest.TypeA} {
		if n := e.dns.Count("t4.fanout.test", typ); n != 1 {
			t.Errorf("%d queries for t4.fanout.test type %d, want 1: a query beyond the bound waits, it is not dropped", n, typ)
		}
	}
	if wall > 2*time.Second {
		t.Errorf("the dial took %v: it waited for the origin's slow answers", wall)
	}
	if rep.Winner < 0 {
		t.Fatalf("no winner: %+v", rep)
	}
}

// TestDNSQueriesInFlightPerDialer runs 16 dials at once on one Dialer,
// each to its own name whose HTTPS answer lists four targets; every answer
// takes 300 ms, and no name has an address, so that each race waits for
// all of its queries (none is abandoned while the server holds it). The
// races want up to 128 queries at once; the Dialer sends at most 64, and
// every query is sent in the end.
func TestDNSQueriesInFlightPerDialer(t *testing.T) {
	const dials = 16
	e := newEnv(t, true, serve, serve)
	e.dns.SetDefault(dnstest.Delay(300*time.Millisecond, nil))
	names := make([]string, dials)
	for i := range names {
		names[i] = fmt.Sprintf("d%d.fanout.test", i)
		var recs []string
		for j := range 4 {
			recs = append(recs, fmt.Sprintf("%d t%d.%s. alpn=h2", j+1, j, names[i]))
		}
		e.dns.HTTPS(names[i], recs...)
	}
	d := e.dialer()
	defer d.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, dials)
	start := time.Now()
	for _, name := range names {
		wg.Go(func() {
			c, _, err := d.DialWebSocket(ctx(t), fmt.Sprintf("wss://%s:%d/echo", name, e.port))
			if err == nil {
				c.Close(websocket.StatusNormalClosure, "")
				err = errors.New("succeeded")
			}
			errs <- fmt.Errorf("%s: %w", name, err)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, dialer.ErrNoAddress) {
			t.Errorf("%v, want ErrNoAddress", err)
		}
	}
	t.Logf("%d dials: %d queries received, at most %d in flight; %v", dials, e.dns.Total(), e.dns.MaxInFlight(), time.Since(start))
	if n := e.dns.MaxInFlight(); n > maxQueriesPerDialer {
		t.Errorf("%d queries in flight at once, want at most %d", n, maxQueriesPerDialer)
	}
	if n, want := e.dns.Total(), dials*hev3.MaxQueries; n != want {
		t.Errorf("%d queries received, want %d: a query beyond the bound waits, it is not dropped", n, want)
	}
}

// maxQueriesPerDialer is the Dialer's bound on queries in flight (race.go).
const maxQueriesPerDialer = 64
