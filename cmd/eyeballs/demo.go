package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
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
	v4    fault // what listens on 127.0.0.1
	v6    fault // what listens on [::1]
	slow  time.Duration
}

type fault int

const (
	healthy fault = iota
	blackholed
	refused
)

var scenarios = []scenario{
	{name: "normal", about: "both families healthy: IPv6 is preferred and wins at once"},
	{name: "ipv6-blackholed", about: "[::1] drops SYNs: IPv4 starts one attempt delay later and wins", v6: blackholed},
	{name: "ipv6-refused", about: "[::1] refuses: IPv4 starts at once", v6: refused},
	{name: "slow-aaaa", about: "the AAAA answer takes 1s: IPv4 goes after the 50ms resolution delay", slow: time.Second},
}

// runDemo starts a DNS server, a CA and WebSocket echo servers on loopback,
// and races to them in several scenarios, printing each race.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print each race report as JSON instead of a waterfall")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: eyeballs demo [flags]\n\nStarts a DNS server and WebSocket servers on loopback and races to them in a few scenarios.\nNothing leaves the machine.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: demo takes no arguments", errUsage)
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
	for _, sc := range scenarios {
		if err := runScenario(ctx, sc, ns, ca, *asJSON, stdout); err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
	}
	return nil
}

func runScenario(ctx context.Context, sc scenario, ns *dnstest.Server, ca *testkit.CA, asJSON bool, stdout io.Writer) error {
	name := sc.name + ".demo.test"
	conf, err := ca.ServerConfig(name)
	if err != nil {
		return err
	}
	l4, l6, port, err := testkit.ListenPair()
	if err != nil {
		return err
	}
	for _, s := range []struct {
		l    net.Listener
		f    fault
		addr string
	}{{l4, sc.v4, "127.0.0.1"}, {l6, sc.v6, "::1"}} {
		switch s.f {
		case healthy:
			srv, err := testkit.StartHTTP(s.l, conf.Clone(), testkit.EchoHandler())
			if err != nil {
				return err
			}
			defer srv.Close()
		case blackholed:
			s.l.Close()
			bh, err := testkit.Blackhole(net.JoinHostPort(s.addr, strconv.Itoa(port)))
			if err != nil {
				return err
			}
			defer bh.Close()
		default:
			s.l.Close()
		}
	}
	ns.A(name, "127.0.0.1")
	ns.AAAA(name, "::1")
	if sc.slow > 0 {
		ns.Set(name, dnstest.TypeAAAA, dnstest.Delay(sc.slow, dnstest.Default()))
	}

	fmt.Fprintf(stdout, "\n## %s: %s\n", sc.name, sc.about)
	var rep *dialer.Report
	d := dialer.New(
		dialer.WithNameservers(ns.Addr()),
		dialer.WithHostsFile("-"),
		dialer.WithTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
		dialer.WithReport(func(r *dialer.Report) { rep = r }),
	)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := fmt.Sprintf("wss://%s:%d/chat", name, port)
	c, resp, err := d.DialWebSocket(dctx, url)
	if rep != nil {
		if asJSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprint(stdout, rep)
		}
	}
	if err != nil {
		return err
	}
	defer c.CloseNow()
	if err := c.Write(dctx, websocket.MessageText, []byte("hello")); err != nil {
		return err
	}
	_, msg, err := c.Read(dctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  WebSocket over HTTP/%d, ready after %s; sent %q, echoed %q\n", resp.ProtoMajor, rep.Ready.Round(100*time.Microsecond), "hello", msg)
	return c.Close(websocket.StatusNormalClosure, "")
}
