package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// A scenario is one race the demo runs against its embedded servers.
type scenario struct {
	name  string
	about string
	// what listens on TCP and UDP of 127.0.0.1 and [::1]
	tcp4, tcp6 tcpMode
	udp4, udp6 udpMode
	slowAAAA   time.Duration
	// webtransport dials a WebTransport session instead of a WebSocket.
	webtransport bool
}

type tcpMode int

const (
	tcpServe     tcpMode = iota // HTTP/1.1 and HTTP/2 with extended CONNECT
	tcpH2NoExt                  // HTTP/2 without extended CONNECT, HTTP/1.1 on the same port
	tcpWTH2                     // WebTransport and WebSocket over HTTP/2, HTTP/1.1 on the same port
	tcpBlackhole                // SYNs dropped
	tcpRefused                  // nothing listens
)

type udpMode int

const (
	udpServe     udpMode = iota // HTTP/3 with extended CONNECT and WebTransport
	udpH3NoExt                  // HTTP/3 without extended CONNECT
	udpBlackhole                // datagrams dropped
)

var scenarios = []scenario{
	{name: "normal", about: "HTTPS record says h3,h2: QUIC to IPv6 wins on its SETTINGS"},
	{name: "ipv6-blackholed", about: "[::1] drops everything: IPv4 starts one attempt delay later and wins",
		tcp6: tcpBlackhole, udp6: udpBlackhole},
	{name: "udp-blocked", about: "UDP is blackholed: QUIC hangs, TCP+TLS with h2 wins",
		udp4: udpBlackhole, udp6: udpBlackhole},
	{name: "h3-no-extended-connect", about: "h3 SETTINGS lack extended CONNECT: that connection is closed at once, h2 wins",
		udp4: udpH3NoExt, udp6: udpH3NoExt},
	{name: "h2-no-extended-connect", about: "UDP blocked and h2 lacks extended CONNECT: a fresh http/1.1 connection upgrades",
		tcp4: tcpH2NoExt, tcp6: tcpH2NoExt, udp4: udpBlackhole, udp6: udpBlackhole},
	{name: "slow-aaaa", about: "the AAAA answer takes 1s: IPv4 goes after the 50ms resolution delay",
		slowAAAA: time.Second},
	{name: "webtransport", about: "a WebTransport session: IPv6 blackholed, QUIC to IPv4 wins",
		tcp6: tcpBlackhole, udp6: udpBlackhole, webtransport: true},
	{name: "webtransport-udp-blocked", about: "UDP is blackholed: the WebTransport session comes up over HTTP/2 (capsules on TCP+TLS)",
		tcp4: tcpWTH2, tcp6: tcpWTH2, udp4: udpBlackhole, udp6: udpBlackhole, webtransport: true},
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
	ns, err := dnstest.New("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the DNS server: %w", err)
	}
	defer ns.Close()
	ca, err := testkit.NewCA()
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
func runScenario(ctx context.Context, sc scenario, ns *dnstest.Server, ca *testkit.CA, asJSON bool, stdout io.Writer) (*dialer.Report, error) {
	name := sc.name + ".demo.test"
	conf, err := ca.ServerConfig(name)
	if err != nil {
		return nil, err
	}
	port, closers, err := startServers(sc, conf)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	ns.A(name, "127.0.0.1")
	ns.AAAA(name, "::1")
	ns.HTTPS(name, "1 . alpn=h3,h2")
	if sc.slowAAAA > 0 {
		ns.Set(name, dnstest.TypeAAAA, dnstest.Delay(sc.slowAAAA, dnstest.Default()))
	}

	fmt.Fprintf(stdout, "\n## %s: %s\n", sc.name, sc.about)
	var rep *dialer.Report
	d := dialer.New(
		dialer.WithNameservers(ns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
		dialer.WithReport(func(r *dialer.Report) { rep = r }),
	)
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

// startServers starts the scenario's servers and faults on one port of
// both families, TCP and UDP. The closers must be closed even on error.
func startServers(sc scenario, conf *tls.Config) (int, []io.Closer, error) {
	var closers []io.Closer
	l4, l6, u4, u6, port, err := listenAll()
	if err != nil {
		return 0, nil, err
	}
	for _, s := range []struct {
		l    net.Listener
		u    net.PacketConn
		tcp  tcpMode
		udp  udpMode
		addr string
	}{{l4, u4, sc.tcp4, sc.udp4, "127.0.0.1"}, {l6, u6, sc.tcp6, sc.udp6, "::1"}} {
		addr := net.JoinHostPort(s.addr, strconv.Itoa(port))
		var c io.Closer
		var err error
		switch s.tcp {
		case tcpServe:
			c, err = testkit.StartHTTP(s.l, conf.Clone(), testkit.EchoHandler())
		case tcpH2NoExt:
			c, err = testkit.StartH2NoExtendedConnect(s.l, conf.Clone(), testkit.EchoHandler())
		case tcpWTH2:
			c, err = testkit.StartWebTransportH2(s.l, conf.Clone())
		case tcpBlackhole:
			s.l.Close()
			c, err = testkit.Blackhole(addr)
		default:
			s.l.Close()
		}
		if c != nil {
			closers = append(closers, c)
		}
		if err != nil {
			s.u.Close()
			return 0, closers, err
		}
		c = nil
		switch s.udp {
		case udpServe:
			c, err = testkit.StartWebTransport(s.u, conf.Clone())
		case udpH3NoExt:
			c, err = testkit.StartH3NoExtendedConnect(s.u, conf.Clone())
		default:
			s.u.Close()
			c, err = testkit.UDPBlackhole(addr)
		}
		if c != nil {
			closers = append(closers, c)
		}
		if err != nil {
			return 0, closers, err
		}
	}
	return port, closers, nil
}

// listenAll reserves one port on TCP and UDP of both loopback families.
func listenAll() (l4, l6 net.Listener, u4, u6 net.PacketConn, port int, err error) {
	for range 20 {
		l4, l6, port, err = testkit.ListenPair()
		if err != nil {
			return
		}
		var err4, err6 error
		u4, err4 = net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u6, err6 = net.ListenPacket("udp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err4 == nil && err6 == nil {
			return
		}
		for _, c := range []io.Closer{l4, l6, u4, u6} {
			if c != nil {
				c.Close()
			}
		}
	}
	return nil, nil, nil, nil, 0, errors.New("no port free on TCP and UDP of both loopback families")
}
