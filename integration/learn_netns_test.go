//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// The learning scenario (issue 16): two network namespaces joined by a
// link with real latency, which loopback cannot have (the userspace
// latency proxies accept TCP at once, so a SYN's round trip is not
// delayed). The link is a pair of TUN devices, one in each namespace,
// whose packets the test relays with a one-way delay: a TCP handshake, a
// QUIC Initial and everything after take the round trip a real path
// would. The relay can drop what one address receives (a blackholed
// server address) or all UDP (blocked QUIC).
//
// Client namespace: tc0 with 192.0.2.1/24 and 2001:db8::1/64. Server
// namespace: ts0 with 192.0.2.2/24, 2001:db8::2/64 and 2001:db8::3/64
// (the address the relay can blackhole). The DNS server is on the client's
// loopback. TestLearnNamespace (root only) creates the namespaces and
// runs TestLearnNamespaceChild inside the client's; BenchmarkLearnNamespace
// does the same for BenchmarkLearnNamespaceChild. Nothing is configured
// outside the two namespaces, which are deleted at the end, and every
// packet stays in them.

const (
	learnNetnsEnv = "EYEBALLS_LEARN_NETNS_SERVER"
	nsClient6     = "2001:db8::1"
	nsHole6       = "2001:db8::3" // on the server, blackholed by the relay when asked
	nsUDPHost     = "udp.example.test"
)

// runInNamespaces creates a client and a server namespace, runs this test
// binary inside the client's with args, and returns its output. It skips
// unless root with ip(8) and /dev/net/tun.
func runInNamespaces(tb testing.TB, args ...string) []byte {
	tb.Helper()
	if os.Getenv(learnNetnsEnv) != "" {
		tb.Skip("already inside the namespace")
	}
	if os.Geteuid() != 0 {
		tb.Skip("the namespace scenario needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("the namespace scenario needs ip(8)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		tb.Skipf("the namespace scenario needs /dev/net/tun: %v", err)
	}
	id := fmt.Sprintf("eyeballs-learn-%d", os.Getpid())
	client, server := id+"-c", id+"-s"
	for _, ns := range []string{client, server} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			tb.Skipf("ip netns does not work here: %v: %s", err, out)
		}
		tb.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			tb.Skipf("cannot set up %s: %v: %s", ns, err, out)
		}
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", client, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), learnNetnsEnv+"="+server)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("the test inside the namespace failed: %v\n%s", err, out)
	}
	return out
}

// TestLearnNamespace runs TestLearnNamespaceChild in the scenario.
func TestLearnNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace scenario: skipped with -short")
	}
	out := runInNamespaces(t, "-test.run=^TestLearnNamespaceChild$", "-test.v", "-test.count=1")
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "LEARN |") {
			t.Log(strings.TrimSpace(line[strings.Index(line, "LEARN |"):]))
		}
	}
	if !bytes.Contains(out, []byte("--- PASS: TestLearnNamespaceChild")) {
		t.Fatalf("the test inside the namespace did not pass:\n%s", out)
	}
}

// BenchmarkLearnNamespace runs BenchmarkLearnNamespaceChild in the
// scenario and logs its results.
func BenchmarkLearnNamespace(b *testing.B) {
	out := runInNamespaces(b, "-test.run=^$", "-test.bench=^BenchmarkLearnNamespaceChild$", "-test.benchtime="+benchtime())
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "BenchmarkLearnNamespaceChild") {
			b.Log(line)
		}
	}
	if !bytes.Contains(out, []byte("BenchmarkLearnNamespaceChild")) {
		b.Fatalf("the benchmark inside the namespace ran nothing:\n%s", out)
	}
}

// benchtime is this run's -test.benchtime, for the child.
func benchtime() string {
	for _, a := range os.Args {
		if v, ok := strings.CutPrefix(a, "-test.benchtime="); ok {
			return v
		}
	}
	return "1s"
}

// tunLink relays packets between the TUN devices of the two namespaces.
type tunLink struct {
	client, server *os.File
	oneWay         time.Duration
	// dropTo, when valid, is an address whose packets are dropped
	// (blackholed); dropUDP drops every UDP datagram.
	dropTo  atomic.Pointer[netip.Addr]
	dropUDP atomic.Bool
	wg      sync.WaitGroup
}

// openTUN creates TUN device name (IP packets, no header) in the
// namespace of the calling thread.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true) // so that Close ends a Read
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

// startTUNLink builds the link: tc0 here (the client namespace), ts0 in
// server, their addresses, and the relay.
func startTUNLink(t testing.TB, server string, oneWay time.Duration) *tunLink {
	t.Helper()
	l := &tunLink{oneWay: oneWay}
	var err error
	if l.client, err = openTUN("tc0"); err != nil {
		t.Fatal(err)
	}
	if err := inNetns(server, func() error {
		l.server, err = openTUN("ts0")
		return err
	}); err != nil {
		l.client.Close()
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	for _, args := range [][]string{
		{"addr", "add", nsClient4 + "/24", "dev", "tc0"},
		{"addr", "add", nsClient6 + "/64", "dev", "tc0", "nodad"},
		{"link", "set", "tc0", "up"},
		{"-n", server, "addr", "add", nsServer4 + "/24", "dev", "ts0"},
		{"-n", server, "addr", "add", nsServer6 + "/64", "dev", "ts0", "nodad"},
		{"-n", server, "addr", "add", nsHole6 + "/64", "dev", "ts0", "nodad"},
		{"-n", server, "link", "set", "ts0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	l.wg.Add(2)
	go l.pump(l.client, l.server)
	go l.pump(l.server, l.client)
	return l
}

// pump relays packets from src to dst, each oneWay after it was read, in
// order, dropping what the link drops.
func (l *tunLink) pump(src, dst *os.File) {
	defer l.wg.Done()
	type packet struct {
		b  []byte
		at time.Time
	}
	q := make(chan packet, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range q {
			time.Sleep(time.Until(p.at))
			dst.Write(p.b)
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			close(q)
			<-done
			return
		}
		if l.drops(buf[:n]) {
			continue
		}
		select {
		case q <- packet{bytes.Clone(buf[:n]), time.Now().Add(l.oneWay)}:
		default: // a full queue drops, as a router would
		}
	}
}

// drops reports whether the link drops packet p.
func (l *tunLink) drops(p []byte) bool {
	var dst netip.Addr
	var proto byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		dst, proto = netip.AddrFrom4([4]byte(p[16:20])), p[9]
	case len(p) >= 40 && p[0]>>4 == 6:
		dst, proto = netip.AddrFrom16([16]byte(p[24:40])), p[6]
	default:
		return false
	}
	if to := l.dropTo.Load(); to != nil && *to == dst {
		return true
	}
	return proto == unix.IPPROTO_UDP && l.dropUDP.Load()
}

func (l *tunLink) close() {
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
	l.wg.Wait()
}

// learnWorld is the scenario's servers: WebSocket over TLS (HTTP/1.1 and
// HTTP/2) on 192.0.2.2, [2001:db8::2] and [2001:db8::3], HTTP/3 on the
// first two, one port; and the DNS names: host (::2 and 192.0.2.2),
// otherHost (::3 and 192.0.2.2), nsUDPHost (::2 and 192.0.2.2, HTTPS
// h3,h2).
type learnWorld struct {
	link *tunLink
	ca   *testkit.CA
	dns  *dnstest.Server
	port int
}

func newLearnWorld(t testing.TB, oneWay time.Duration) *learnWorld {
	t.Helper()
	server := os.Getenv(learnNetnsEnv)
	if server == "" {
		t.Skip("runs inside the namespaces of TestLearnNamespace or BenchmarkLearnNamespace only")
	}
	w := &learnWorld{link: startTUNLink(t, server, oneWay), dns: dnstest.Start(t)}
	var err error
	if w.ca, err = testkit.NewCA(); err != nil {
		t.Fatal(err)
	}
	conf, err := w.ca.ServerConfig(host, otherHost, nsUDPHost)
	if err != nil {
		t.Fatal(err)
	}
	var ls []net.Listener
	var pcs []net.PacketConn
	err = inNetns(server, func() error {
		for range 20 {
			ls, pcs = nil, nil
			l, err := net.Listen("tcp4", net.JoinHostPort(nsServer4, "0"))
			if err != nil {
				return err
			}
			ls = append(ls, l)
			port := itoa(l.Addr().(*net.TCPAddr).Port)
			for _, a := range []string{nsServer6, nsHole6} {
				if l, err = net.Listen("tcp6", net.JoinHostPort(a, port)); err == nil {
					ls = append(ls, l)
				}
			}
			for _, a := range []string{nsServer4, nsServer6} {
				if pc, err := net.ListenPacket("udp", net.JoinHostPort(a, port)); err == nil {
					pcs = append(pcs, pc)
				}
			}
			if len(ls) == 3 && len(pcs) == 2 {
				w.port = ls[0].Addr().(*net.TCPAddr).Port
				return nil
			}
			for _, l := range ls {
				l.Close()
			}
			for _, pc := range pcs {
				pc.Close()
			}
		}
		return fmt.Errorf("no port free on the server's addresses")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		hs, err := testkit.StartServer(l, &http.Server{Handler: handler(), TLSConfig: conf.Clone()})
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { hs.Close() })
	}
	for _, pc := range pcs {
		s, err := testkit.StartH3(pc, conf.Clone(), handler())
		if err != nil {
			pc.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	w.dns.A(host, nsServer4)
	w.dns.AAAA(host, nsServer6)
	w.dns.A(otherHost, nsServer4)
	w.dns.AAAA(otherHost, nsHole6)
	w.dns.A(nsUDPHost, nsServer4)
	w.dns.AAAA(nsUDPHost, nsServer6)
	w.dns.HTTPS(nsUDPHost, "1 . alpn=h3,h2")
	return w
}

// dialer returns a Dialer of the scenario that hands each Report to rep.
func (w *learnWorld) dialer(rep func(*dialer.Report)) *dialer.Dialer {
	return dialer.New(
		dialer.WithNameservers(w.dns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(w.ca.ClientConfig()),
		dialer.WithTimeout(10*time.Second),
		dialer.WithReport(rep),
	)
}

// dial dials a WebSocket to name with d, uses it, closes it and d's pooled
// connections, and returns how long it took.
func (w *learnWorld) dial(tb testing.TB, d *dialer.Dialer, name string) time.Duration {
	tb.Helper()
	defer d.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	c, _, err := d.DialWebSocket(ctx, "wss://"+name+":"+itoa(w.port)+"/echo")
	if err != nil {
		tb.Fatal(err)
	}
	elapsed := time.Since(start)
	if err := c.Write(ctx, websocket.MessageText, []byte("learn")); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		tb.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	return elapsed
}

// gap is the time between the first and the second attempt of a race, or
// -1 if it made one attempt.
func gap(rep *dialer.Report) time.Duration {
	if len(rep.Attempts) < 2 {
		return -1
	}
	return rep.Attempts[1].Start - rep.Attempts[0].Start
}

// nsOneWay is the scenario's one-way delay: an 80 ms round trip, so that
// 2×RTT (160 ms) is above the 100 ms floor of an RTT-derived attempt delay
// and below the 250 ms default, and tells them apart.
const nsOneWay = 40 * time.Millisecond

// TestLearnNamespaceChild: with real addresses and an 80 ms round trip,
// the Dialer measures the RTT (draft §6) and times its next race by it:
// the attempt after a blackholed IPv6 address starts 2×RTT after it, where
// a Dialer without history waits 250 ms. What it learned shapes the next
// race (IPv6 went silent: IPv4 first) until the network changes: a new
// address on the client's link forgets it. With UDP dropped, QUIC goes
// last on the second dial.
func TestLearnNamespaceChild(t *testing.T) {
	w := newLearnWorld(t, nsOneWay)
	var (
		mu  sync.Mutex
		rep *dialer.Report
	)
	last := func() *dialer.Report { mu.Lock(); defer mu.Unlock(); return rep }
	keep := func(r *dialer.Report) { mu.Lock(); rep = r; mu.Unlock() }
	logf := func(step string, elapsed time.Duration) {
		r := last()
		t.Logf("LEARN | %s | %v | second attempt after %v | %s | learned %q", step, elapsed.Round(time.Millisecond), gap(r), winner(r), r.Learned)
	}
	hole := netip.MustParseAddr(nsHole6)
	w.link.dropTo.Store(&hole)

	d := w.dialer(keep)
	// 1. Both families work: IPv6 wins; its TCP round trip is measured.
	elapsed := w.dial(t, d, host)
	logf("first dial, dual-stack", elapsed)
	if r := last(); r.Attempts[r.Winner].Family != "IPv6" {
		t.Fatalf("won by %s, want IPv6", winner(r))
	}
	// 2. otherHost's IPv6 address is blackholed: IPv4 starts 2×RTT
	// (160 ms) after it.
	elapsed = w.dial(t, d, otherHost)
	logf("blackholed IPv6 address, with RTT history", elapsed)
	r := last()
	if g := gap(r); g < 130*time.Millisecond || g > 210*time.Millisecond || !learnedAny(r, "RTT") {
		t.Errorf("with RTT history: second attempt after %v, learned %q; want about 160ms, from the RTT", g, r.Learned)
	}
	// Without history: 250 ms.
	fresh := w.dialer(keep)
	elapsed = w.dial(t, fresh, otherHost)
	logf("blackholed IPv6 address, new Dialer", elapsed)
	if g := gap(last()); g < 240*time.Millisecond || g > 300*time.Millisecond {
		t.Errorf("without RTT history: second attempt after %v, want 250ms", g)
	}
	// 3. IPv6 went silent on this network: IPv4 first, even to host.
	elapsed = w.dial(t, d, host)
	logf("after the silence", elapsed)
	if r := last(); r.Attempts[0].Family != "IPv4" || !learnedAny(r, "silent") {
		t.Errorf("after IPv6 went silent: first attempt over %s, learned %q; want IPv4, from the silence", r.Attempts[0].Family, r.Learned)
	}
	// 4. The network changes: a new address on the client's link.
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.3/24", "dev", "tc0").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	time.Sleep(1100 * time.Millisecond) // the Dialer looks at the network at most once a second
	elapsed = w.dial(t, d, host)
	logf("after a new local address", elapsed)
	if r := last(); r.Attempts[0].Family != "IPv6" || len(r.Learned) != 0 {
		t.Errorf("on the changed network: first attempt over %s, learned %q; want IPv6, nothing learned", r.Attempts[0].Family, r.Learned)
	}
	// 5. UDP dropped, HTTPS says h3,h2: h2 after one delay (here 2×RTT
	// of this network: the RTT was measured again in step 4), then at
	// once.
	w.link.dropUDP.Store(true)
	elapsed = w.dial(t, d, nsUDPHost)
	logf("UDP dropped, first dial", elapsed)
	if r := last(); r.Attempts[r.Winner].Proto == "h3" || r.Winner == 0 {
		t.Errorf("UDP dropped: won by %s, want TCP after QUIC", winner(r))
	}
	elapsed = w.dial(t, d, nsUDPHost)
	logf("UDP dropped, second dial", elapsed)
	if r := last(); r.Winner != 0 || r.Attempts[0].Proto == "h3" || !learnedAny(r, "QUIC") {
		t.Errorf("UDP dropped, second dial: won by %s, learned %q; want TCP first", winner(r), r.Learned)
	}
}

// learnedAny reports whether a line of the Report's Learned contains s.
func learnedAny(r *dialer.Report, s string) bool {
	for _, l := range r.Learned {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// BenchmarkLearnNamespaceChild: a 20 ms round trip, an origin whose IPv6
// address is blackholed: the time to a ready WebSocket for coder/websocket
// over net.Dialer (its fallback delay is 300 ms), for this dialer without
// history (250 ms), and for this dialer with the RTT of the network
// measured by an earlier dial to another origin (2×RTT, at least 100 ms).
func BenchmarkLearnNamespaceChild(b *testing.B) {
	w := newLearnWorld(b, 10*time.Millisecond)
	hole := netip.MustParseAddr(nsHole6)
	w.link.dropTo.Store(&hole)
	url := "wss://" + otherHost + ":" + itoa(w.port) + "/echo"
	b.Run("coder+net.Dialer", func(b *testing.B) {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, w.dns.Addr())
		}}
		nd := &net.Dialer{Resolver: res}
		client := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, TLSClientConfig: w.ca.ClientConfig()}}
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			c.CloseNow()
		}
		client.CloseIdleConnections()
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/dial")
	})
	for _, tc := range []struct {
		name    string
		history bool
	}{
		{"dialer-first-no-history", false},
		{"dialer-first-rtt-history", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				d := w.dialer(func(*dialer.Report) {})
				if tc.history {
					w.dial(b, d, host) // measures the RTT
				}
				b.StartTimer()
				total += w.dial(b, d, otherHost)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/dial")
		})
	}
}
