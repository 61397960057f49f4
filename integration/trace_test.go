package integration

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/eyeballs/dialer"
)

// recorder turns Trace callbacks into lines.
type recorder struct{ lines []string }

func (r *recorder) trace() *dialer.Trace {
	add := func(kind string) func(dialer.Attempt) {
		return func(a dialer.Attempt) {
			line := fmt.Sprintf("%s %s %s", kind, a.Proto, a.Family)
			switch kind {
			case "handshake":
				line += " " + a.Version
			case "settings":
				line += fmt.Sprintf(" ec=%v", a.Settings.ExtendedConnect)
			case "cancelled":
				line += " " + a.Outcome
			}
			r.lines = append(r.lines, line)
		}
	}
	return &dialer.Trace{
		DNSStart:      func(q dialer.DNSQuery) { r.lines = append(r.lines, "dns-start "+q.Type) },
		DNSDone:       func(q dialer.DNSQuery) { r.lines = append(r.lines, "dns-done "+q.Type) },
		AttemptStart:  add("start"),
		HandshakeDone: add("handshake"),
		Settings:      add("settings"),
		Incapable:     add("incapable"),
		Failed:        add("failed"),
		Cancelled:     add("cancelled"),
		Won:           func(a dialer.Attempt, _ string) { add("won")(a) },
	}
}

// attemptLines drops the DNS lines, whose order between types is the
// network's.
func (r *recorder) attemptLines() string {
	var out []string
	for _, l := range r.lines {
		if !strings.HasPrefix(l, "dns-") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestTrace: the Trace callbacks fire in order with the right fields for
// h1, h2, h3 and fallback races, and the JSON report agrees with them.
func TestTrace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v4, v6 family
		udp    udpMode
		https  bool
		want   string
	}{
		{"h1", serveH1, closed, noUDP, false, "start h2,h1 IPv4\nhandshake h2,h1 IPv4 h1\nwon h2,h1 IPv4"},
		{"h2", serve, closed, noUDP, false, "start h2,h1 IPv4\nhandshake h2,h1 IPv4 h2\nsettings h2,h1 IPv4 ec=true\nwon h2,h1 IPv4"},
		{"h3", serve, closed, h3, true, "start h3 IPv4\nhandshake h3 IPv4 h3\nsettings h3 IPv4 ec=true\nwon h3 IPv4"},
		{"h2 to h1", h2NoExt, closed, noUDP, false, "start h2,h1 IPv4\nhandshake h2,h1 IPv4 h2\nsettings h2,h1 IPv4 ec=false\nincapable h2,h1 IPv4\nstart h1 IPv4\nhandshake h1 IPv4 h1\nwon h1 IPv4"},
		{"v6 blackholed", serve, blackhole, noUDP, false, "start h2,h1 IPv6\nstart h2,h1 IPv4\nhandshake h2,h1 IPv4 h2\nsettings h2,h1 IPv4 ec=true\ncancelled h2,h1 IPv6 lost\nwon h2,h1 IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true, tc.v4, tc.v6)
			e.quic(tc.udp, noUDP)
			e.dns.A(host, "127.0.0.1")
			if tc.v6 != closed {
				e.dns.AAAA(host, "::1")
			}
			if tc.https {
				e.dns.HTTPS(host, "1 . alpn=h3,h2")
			}
			rec := &recorder{}
			var rep *dialer.Report
			d := e.dialer(dialer.WithTrace(rec.trace()), dialer.WithReport(func(r *dialer.Report) { rep = r }))
			defer d.CloseIdleConnections()
			c, _, err := d.DialWebSocket(ctx(t), e.url(true))
			if err != nil {
				t.Fatal(err)
			}
			closeConn(t, c)
			if got := rec.attemptLines(); got != tc.want {
				t.Errorf("trace\n%s\nwant\n%s", got, tc.want)
			}
			if n := strings.Count(strings.Join(rec.lines, " "), "dns-start"); n != 3 || len(rep.DNS) != 3 {
				t.Errorf("%d DNS starts, %d queries in the report, want 3", n, len(rep.DNS))
			}
			// The report says the same, and survives JSON.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var back dialer.Report
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			starts := strings.Count(tc.want, "start ")
			if len(back.Attempts) != starts || back.Winner < 0 || back.Attempts[back.Winner].Outcome != "won" {
				t.Errorf("report has %d attempts (trace: %d), winner %d\n%s", len(back.Attempts), starts, back.Winner, back.String())
			}
			w := back.Attempts[back.Winner]
			if !strings.Contains(tc.want, "won "+w.Proto+" "+w.Family) {
				t.Errorf("report winner %s %s not the trace's", w.Proto, w.Family)
			}
		})
	}
}

// TestLogger: WithLogger logs the race's events at debug level, in order.
func TestLogger(t *testing.T) {
	e := newEnv(t, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := e.dialer(dialer.WithLogger(log))
	defer d.CloseIdleConnections()
	c, _, err := d.DialWebSocket(ctx(t), e.url(true))
	if err != nil {
		t.Fatal(err)
	}
	closeConn(t, c)
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		_, rest, _ := strings.Cut(line, `msg="`)
		msg, _, _ := strings.Cut(rest, `"`)
		if !strings.HasPrefix(msg, "dns") {
			msgs = append(msgs, msg)
		}
	}
	want := "attempt start, attempt start, attempt connected, attempt settings, attempt cancelled, attempt won"
	if got := strings.Join(msgs, ", "); got != want {
		t.Errorf("logged\n%s\nwant\n%s\nfull log:\n%s", got, want, buf.String())
	}
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), `msg="dns answer"`) {
		t.Errorf("no debug DNS lines:\n%s", buf.String())
	}
}
