package main

import (
	"bytes"
	"encoding/xml"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer"
)

// hostileReport is a race with every outcome, whose names, addresses and
// errors hold characters that XML must escape.
func hostileReport() *dialer.Report {
	ms := time.Millisecond
	ap := netip.MustParseAddrPort
	return &dialer.Report{
		URL:      `wss://x.test/?a=1&b=<2>`,
		Kind:     "websocket",
		Duration: 300 * ms,
		Ready:    310 * ms,
		DNS: []dialer.DNSQuery{
			{Name: "x.test", Type: "HTTPS", Start: 0, End: 5 * ms, Services: []dialer.ServiceEntry{{Priority: 1, ALPN: []string{"h3", "h2"}}}},
			{Name: "x.test", Type: "AAAA", Start: 0, End: 0},
			{Name: "x.test", Type: "A", Start: 0, End: 4 * ms, Err: `SERVFAIL <"&'>`},
		},
		Attempts: []dialer.Attempt{
			{Addr: ap("[::1]:443"), Proto: "h3", Start: 5 * ms, Connected: 20 * ms, End: 300 * ms, Version: "h3",
				Settings: &dialer.Capabilities{At: 25 * ms, ExtendedConnect: true}, Outcome: "won"},
			{Addr: ap("127.0.0.1:443"), Proto: "h2,h1", Start: 10 * ms, End: 300 * ms, Outcome: "lost", Err: "context canceled"},
			{Addr: ap("[::2]:443"), Proto: "h2,h1", Start: 15 * ms, End: 16 * ms, Outcome: "failed", Err: `tls: <script>alert("x")</script> & more`},
			{Addr: ap("127.0.0.2:443"), Proto: "h3", Start: 20 * ms, Connected: 30 * ms, End: 31 * ms, Version: "h3",
				Settings: &dialer.Capabilities{At: 31 * ms}, Outcome: "incapable", Err: "no extended CONNECT"},
			{Addr: ap("127.0.0.3:443"), Proto: "h1", Start: 25 * ms, End: 300 * ms, Outcome: "aborted"},
		},
		Winner: 0,
		Reason: `h3 [::1]:443 won: "first" & <best>`,
	}
}

// svgDoc is the part of an SVG document the tests look at.
type svgDoc struct {
	Rects []struct {
		Class string `xml:"class,attr"`
		Fill  string `xml:"fill,attr"`
		Title string `xml:"title"`
	} `xml:"rect"`
	Paths []struct {
		Class string `xml:"class,attr"`
	} `xml:"path"`
	Texts  []string `xml:"text"`
	Groups []struct {
		Texts []string `xml:"text"`
	} `xml:"g"`
}

// TestSVGReport: every attempt is a bar of its outcome's colour, marks
// and labels are there, and hostile text survives escaping.
func TestSVGReport(t *testing.T) {
	var b bytes.Buffer
	title := `scenario <one> & "two"`
	if err := svgReport(&b, []*dialer.Report{hostileReport(), nil}, []string{title, "skipped"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "<script>") || strings.Contains(out, "<2>") {
		t.Fatalf("unescaped text in the SVG:\n%s", out)
	}
	var doc svgDoc
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("the SVG does not parse: %v\n%s", err, out)
	}
	var attempts, connected, dns []string
	tips := ""
	for _, r := range doc.Rects {
		cls := strings.Fields(r.Class)
		switch {
		case len(cls) == 2 && cls[0] == "attempt":
			attempts = append(attempts, cls[1])
			if fill, _ := outcomeColors(cls[1]); r.Fill != fill {
				t.Errorf("%s bar filled %s, want %s", cls[1], r.Fill, fill)
			}
			tips += r.Title + "\n"
		case r.Class == "connected":
			connected = append(connected, r.Title)
		case r.Class == "dns":
			dns = append(dns, r.Title)
		}
	}
	if got := strings.Join(attempts, ","); got != "won,lost,failed,incapable,aborted" {
		t.Errorf("attempt bars %s", got)
	}
	if len(connected) != 2 || len(dns) != 3 {
		t.Errorf("%d connected ticks (want 2), %d DNS bars (want 3)", len(connected), len(dns))
	}
	settings := 0
	for _, p := range doc.Paths {
		if p.Class == "settings" {
			settings++
		}
	}
	if settings != 3 { // two attempts and the legend
		t.Errorf("%d SETTINGS markers, want 3", settings)
	}
	for _, want := range []string{`tls: <script>alert("x")</script> & more`, "start 5.0ms, connected 20.0ms, end 300.0ms"} {
		if !strings.Contains(tips, want) {
			t.Errorf("attempt tooltips lack %q:\n%s", want, tips)
		}
	}
	texts := strings.Join(doc.Texts, "\n")
	for _, g := range doc.Groups {
		texts += "\n" + strings.Join(g.Texts, "\n")
	}
	for _, want := range []string{title, "h3 [::1]:443", "h2,h1 [::2]:443", "dns A x.test", `SERVFAIL <"&'>`,
		"won h3 295.0ms", "0", "100ms", "300ms", `⇒ h3 [::1]:443 won: "first" & <best>`, "incapable", "aborted"} {
		if !strings.Contains(texts, want) {
			t.Errorf("SVG text lacks %q:\n%s", want, texts)
		}
	}
	if strings.Contains(texts, "skipped") {
		t.Errorf("the nil report was drawn")
	}
}

// TestSVGEmpty: a race that failed before anything happened still draws.
func TestSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	rep := &dialer.Report{URL: "wss://x.test/", Kind: "websocket", Winner: -1, Err: "dial failed"}
	if err := svgReport(&b, []*dialer.Report{rep}, nil); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b.Bytes(), new(svgDoc)); err != nil {
		t.Fatalf("the SVG does not parse: %v", err)
	}
	if !strings.Contains(b.String(), "wss://x.test/") {
		t.Errorf("the URL is not the title:\n%s", &b)
	}
}

// TestHTMLReport: the page embeds the SVG and the text waterfall, escaped.
func TestHTMLReport(t *testing.T) {
	var b bytes.Buffer
	if err := htmlReport(&b, []*dialer.Report{hostileReport()}, []string{"<t>"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "<svg ", "## &lt;t&gt;", "&lt;script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<t>") {
		t.Errorf("unescaped text in the page")
	}
	if n := strings.Count(page, `class="attempt `); n != 5 {
		t.Errorf("%d attempt bars, want 5", n)
	}
}

// TestTicks: the time axis has round ticks.
func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		total, step time.Duration
		label       string
	}{
		{time.Millisecond, 200 * time.Microsecond, "200µs"},
		{8 * time.Millisecond, 2 * time.Millisecond, "2ms"},
		{10 * time.Millisecond, 2 * time.Millisecond, "2ms"},
		{257 * time.Millisecond, 100 * time.Millisecond, "100ms"},
		{515 * time.Millisecond, 200 * time.Millisecond, "200ms"},
		{3 * time.Second, time.Second, "1s"},
	} {
		step := tickStep(tc.total)
		if step != tc.step || tickLabel(step) != tc.label {
			t.Errorf("tickStep(%v) = %v (%q), want %v (%q)", tc.total, step, tickLabel(step), tc.step, tc.label)
		}
		if n := tc.total / step; n < 2 || n > 10 {
			t.Errorf("tickStep(%v) gives %d ticks", tc.total, n)
		}
	}
	if got := tickLabel(1500 * time.Millisecond); got != "1.5s" {
		t.Errorf("tickLabel(1.5s) = %q", got)
	}
}
