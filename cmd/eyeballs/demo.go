package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/dialertest"
)

// A scenario is one race the demo runs against a server of its own.
type scenario struct {
	name  string
	about string
	// faults break the scenario's server (see dialertest.NewServer), which
	// otherwise serves HTTP/1.1, HTTP/2 and HTTP/3 on TCP and UDP of
	// 127.0.0.1 and [::1], with WebSocket over each and WebTransport over
	// HTTP/3 and HTTP/2.
	faults   []dialertest.Fault
	slowAAAA time.Duration
	// webtransport dials a WebTransport session instead of a WebSocket.
	webtransport bool
}

var scenarios = []scenario{
	{name: "normal", about: "HTTPS record says h3,h2: QUIC to IPv6 wins on its SETTINGS"},
	{name: "ipv6-blackholed", about: "[::1] drops everything: IPv4 starts one attempt delay later and wins",
		faults: []dialertest.Fault{dialertest.BlackholeTCP(dialertest.IPv6), dialertest.BlackholeUDP(dialertest.IPv6)}},
	{name: "udp-blocked", about: "UDP is blackholed: QUIC hangs, TCP+TLS with h2 wins",
		faults: []dialertest.Fault{dialertest.BlackholeUDP()}},
	{name: "h3-no-extended-connect", about: "h3 SETTINGS lack extended CONNECT: that connection is closed at once, h2 wins",
		faults: []dialertest.Fault{dialertest.WithoutExtendedConnect(dialertest.HTTP3)}},
	{name: "h2-no-extended-connect", about: "UDP blocked and h2 lacks extended CONNECT: a fresh http/1.1 connection upgrades",
		faults: []dialertest.Fault{dialertest.WithoutExtendedConnect(dialertest.HTTP2), dialertest.BlackholeUDP()}},
	{name: "slow-aaaa", about: "the AAAA answer takes 1s: IPv4 goes after the 50ms resolution delay",
		slowAAAA: time.Second},
	{name: "webtransport", about: "a WebTransport session: IPv6 blackholed, QUIC to IPv4 wins",
		faults:       []dialertest.Fault{dialertest.BlackholeTCP(dialertest.IPv6), dialertest.BlackholeUDP(dialertest.IPv6)},
		webtransport: true},
	{name: "webtransport-udp-blocked", about: "UDP is blackholed: the WebTransport session comes up over HTTP/2 (capsules on TCP+TLS)",
		faults: []dialertest.Fault{dialertest.BlackholeUDP()}, webtransport: true},
}

// runDemo starts a DNS server, a CA and WebSocket echo servers on loopback,
// and races to them in several scenarios, printing each race.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "Usage: eyeballs demo [flags]\n\nStarts a DNS server and WebSocket servers on loopback and races to them in a few scenarios.\nNothing leaves the machine.\n", stderr)
	asJSON := fs.Bool("json", false, "print each race report as JSON instead of a waterfall")
	svgFile := fs.String("svg", "", "also draw the races as an SVG image in `FILE`")
	htmlFile := fs.String("html", "", "also draw the races in an HTML page `FILE`")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usagef("demo takes no arguments")
	}
	var tb demoTB
	defer tb.cleanup()
	var ns *dialertest.DNS
	if err := tb.run(func() { ns = dialertest.NewDNS(&tb) }); err != nil {
		return fmt.Errorf("starting the DNS server: %w", err)
	}
	ca, err := dialertest.NewCA()
	if err != nil {
		return err
	}
	var (
		reports []*dialer.Report
		titles  []string
	)
	out := newOutput(*asJSON, stdout, stderr) // -json: NDJSON reports on stdout, text on stderr
	for _, sc := range scenarios {
		rep, err := runScenario(ctx, sc, ns, ca, *asJSON, out.Data())
		out.Report(rep)
		if rep != nil {
			reports = append(reports, rep)
			titles = append(titles, sc.name+": "+sc.about)
		}
		if err != nil {
			// Draw the races so far: they show what went wrong.
			writeImages(*svgFile, *htmlFile, reports, titles, stderr)
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
	}
	return writeImages(*svgFile, *htmlFile, reports, titles, stderr)
}

// writeImages writes the reports as an SVG image to svgFile and as an HTML
// page to htmlFile, skipping those that are "".
func writeImages(svgFile, htmlFile string, reports []*dialer.Report, titles []string, stderr io.Writer) error {
	for _, f := range []struct {
		name  string
		write func(io.Writer, []*dialer.Report, []string) error
	}{{svgFile, svgReport}, {htmlFile, htmlReport}} {
		if f.name == "" {
			continue
		}
		if err := writeFile(f.name, func(w io.Writer) error { return f.write(w, reports, titles) }); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", f.name)
	}
	return nil
}

// writeFile creates name and writes it with write.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runScenario runs one scenario and prints its race; it returns the race's
// report if there was one.
func runScenario(ctx context.Context, sc scenario, ns *dialertest.DNS, ca *dialertest.CA, asJSON bool, stdout io.Writer) (*dialer.Report, error) {
	name := sc.name + ".demo.test"
	var tb demoTB
	defer tb.cleanup()
	var srv *dialertest.Server
	err := tb.run(func() {
		srv = dialertest.NewServer(&tb, dialertest.Options{WebTransport: true, Names: []string{name}, CA: ca}, sc.faults...)
		ns.Point(name, srv)
		if sc.slowAAAA > 0 {
			ns.Delay(name, dialertest.TypeAAAA, sc.slowAAAA)
		}
	})
	if err != nil {
		return nil, err
	}
	port := srv.Port()

	fmt.Fprintf(stdout, "\n## %s: %s\n", sc.name, sc.about)
	var rep *dialer.Report
	d := dialer.New(append(dialertest.DialerOptions(ns, ca),
		dialer.WithReport(func(r *dialer.Report) { rep = r }))...)
	defer d.CloseIdleConnections()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if sc.webtransport {
		return rep, demoWT(dctx, d, fmt.Sprintf("https://%s:%d/wt", name, port), &rep, asJSON, stdout)
	}
	url := fmt.Sprintf("wss://%s:%d/chat", name, port)
	c, resp, err := d.DialWebSocket(dctx, url)
	printReport(stdout, rep, asJSON)
	if err != nil {
		return rep, err
	}
	defer c.CloseNow()
	if err := c.Write(dctx, websocket.MessageText, []byte("hello")); err != nil {
		return rep, err
	}
	_, msg, err := c.Read(dctx)
	if err != nil {
		return rep, err
	}
	ready := time.Duration(0)
	if rep != nil {
		ready = rep.Ready
	}
	fmt.Fprintf(stdout, "  WebSocket over HTTP/%d, ready after %s; sent %q, echoed %q\n", resp.ProtoMajor, ready.Round(100*time.Microsecond), "hello", msg)
	return rep, c.Close(websocket.StatusNormalClosure, "")
}

// demoWT opens a WebTransport session, echoes "hello" on a bidirectional
// stream and prints the race.
func demoWT(ctx context.Context, d *dialer.Dialer, url string, rep **dialer.Report, asJSON bool, stdout io.Writer) error {
	s, _, err := d.DialWebTransport(ctx, url)
	printReport(stdout, *rep, asJSON)
	if err != nil {
		return err
	}
	defer s.CloseWithError(0, "")
	str, err := s.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	str.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := str.Write([]byte("hello")); err != nil {
		return err
	}
	str.Close()
	msg, err := io.ReadAll(str)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  WebTransport over HTTP/%d, ready after %s; sent %q, echoed %q\n", s.HTTPVersion(), (*rep).Ready.Round(100*time.Microsecond), "hello", msg)
	return nil
}

// printReport prints a race as a waterfall, or as JSON.
func printReport(w io.Writer, rep *dialer.Report, asJSON bool) {
	if rep == nil {
		return
	}
	if asJSON {
		return // runDemo writes it with output.Report
	}
	fmt.Fprint(w, rep)
}

// demoTB is the dialertest.TB of the demo: Cleanup collects what to close
// when a scenario (or the demo) ends, and Fatalf, which dialertest calls
// when a server cannot start, ends the function run is running with an
// error, as a test's Fatalf ends the test.
type demoTB struct {
	cleanups []func()
}

// demoFailure is the panic value of demoTB.Fatalf.
type demoFailure struct{ err error }

func (*demoTB) Helper() {}

func (tb *demoTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

func (*demoTB) Fatalf(format string, args ...any) {
	panic(demoFailure{fmt.Errorf(format, args...)})
}

// run calls f and returns the error f's calls of Fatalf reported, if any.
func (tb *demoTB) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			failure, ok := r.(demoFailure)
			if !ok {
				panic(r)
			}
			err = failure.err
		}
	}()
	f()
	return nil
}

// cleanup runs the cleanups, the last registered first.
func (tb *demoTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
}
