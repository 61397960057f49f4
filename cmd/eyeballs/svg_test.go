package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/netip"
	"slices"
	"strconv"
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
		case len(cls) > 0 && cls[0] == "dns":
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

// svgText is a <text> element of the image with what decides its extent.
type svgText struct {
	class, anchor string
	x, size       float64
	bold          bool
	text          string
}

// svgTexts returns the <text> elements of an SVG document.
func svgTexts(t *testing.T, doc []byte) []svgText {
	t.Helper()
	var texts []svgText
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var cur *svgText
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local != "text" {
				continue
			}
			cur = &svgText{size: 12}
			for _, a := range tok.Attr {
				switch a.Name.Local {
				case "class":
					cur.class = a.Value
				case "x":
					cur.x, _ = strconv.ParseFloat(a.Value, 64)
				case "font-size":
					cur.size, _ = strconv.ParseFloat(a.Value, 64)
				case "font-weight":
					cur.bold = a.Value == "bold"
				case "text-anchor":
					cur.anchor = a.Value
				}
			}
		case xml.CharData:
			if cur != nil {
				cur.text += string(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" && cur != nil {
				texts = append(texts, *cur)
				cur = nil
			}
		}
	}
}

// TestSVGTextFits: long titles, names, addresses and errors stay inside
// the image and their columns: titles wrap, labels and notes are cut with
// "…".
func TestSVGTextFits(t *testing.T) {
	rep := hostileReport()
	long := strings.Repeat("a-very-long-label-", 14) + "end.example.test"
	rep.URL = "wss://" + long + "/" + strings.Repeat("path/", 40)
	rep.DNS[0].Name = long
	rep.Attempts[1].Addr = netip.MustParseAddrPort("[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535")
	rep.Attempts[1].Proto = "h2,h1"
	rep.Attempts[2].Err = strings.Repeat("WWW MMM ", 30)
	rep.Reason = strings.Repeat("because of a very long reason ", 12)
	title := "scenario: " + strings.Repeat("a title that goes on and on ", 10)
	var b bytes.Buffer
	if err := svgReport(&b, []*dialer.Report{rep}, []string{title}); err != nil {
		t.Fatal(err)
	}
	var titleLines []string
	for _, tx := range svgTexts(t, b.Bytes()) {
		w := textWidth(tx.text, tx.size, tx.bold)
		right := tx.x + w
		if tx.anchor == "middle" {
			right = tx.x + w/2
		}
		switch tx.class {
		case "label":
			if right > svgX0-4 {
				t.Errorf("label %q runs into the plot: ends at %.0f, the plot starts at %d", tx.text, right, svgX0)
			}
		case "title":
			titleLines = append(titleLines, tx.text)
		}
		if right > svgWidth-svgPad/2 {
			t.Errorf("%s text %q leaves the image: ends at %.0f of %d", tx.class, tx.text, right, svgWidth)
		}
	}
	if len(titleLines) < 2 || strings.Join(titleLines, " ") != strings.Join(strings.Fields(title), " ") {
		t.Errorf("the title is not wrapped whole over lines: %q", titleLines)
	}
}

// TestTextWidth: the estimate is never narrower than Arial, whose widths
// (in em) are the narrowest of the fonts the image asks for.
func TestTextWidth(t *testing.T) {
	for s, arial := range map[string]float64{
		"W": 0.944, "m": 0.833, "M": 0.833, "a": 0.556, "0": 0.556, "i": 0.222, " ": 0.278,
		"[2001:db8::1]:443": 0.278*2 + 0.556*11 + 0.278*4, "…": 1.0, "⇒": 1.0, "µ": 0.576,
	} {
		if got := textWidth(s, 10, false); got < arial*10 {
			t.Errorf("textWidth(%q) = %.2f, Arial takes %.2f", s, got, arial*10)
		}
	}
	if got := fitText(strings.Repeat("W", 100), 100, 12, false); textWidth(got, 12, false) > 100 || !strings.HasSuffix(got, "…") {
		t.Errorf("fitText: %q", got)
	}
}

// TestSVGWinnerVisible: a winning attempt far shorter than the race (a
// slow AAAA answer stretches the axis) is a bar wide enough to see, not a
// 1-pixel sliver, and stays inside the plot.
func TestSVGWinnerVisible(t *testing.T) {
	ms := time.Millisecond
	for _, at := range []time.Duration{500 * ms, 997 * ms} {
		rep := &dialer.Report{
			URL: "wss://x.test/", Kind: "websocket", Duration: time.Second, Winner: 0,
			DNS: []dialer.DNSQuery{{Name: "x.test", Type: "AAAA", End: time.Second}},
			Attempts: []dialer.Attempt{
				{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h2,h1", Start: at, End: at + 2*ms, Outcome: "won"},
				{Addr: netip.MustParseAddrPort("127.0.0.2:443"), Proto: "h3", Start: at, End: at + ms/2, Outcome: "failed", Err: "x"},
			},
		}
		var b bytes.Buffer
		if err := svgReport(&b, []*dialer.Report{rep}, nil); err != nil {
			t.Fatal(err)
		}
		bars := attemptBars(t, b.Bytes())
		won := bars["won"]
		if won.width < svgMinWon {
			t.Errorf("start %v: the winning bar is %.1f px wide", at, won.width)
		}
		if won.x < svgX0 || won.x+won.width > svgX1+0.01 {
			t.Errorf("start %v: the winning bar [%.1f, %.1f] leaves the plot [%d, %d]", at, won.x, won.x+won.width, svgX0, svgX1)
		}
		if f := bars["failed"]; f.width < svgMinBar {
			t.Errorf("start %v: the failed bar is %.1f px wide", at, f.width)
		}
	}
}

// bar is the extent of an attempt bar.
type bar struct{ x, width float64 }

// attemptBars returns the attempt bars of an SVG document by outcome.
func attemptBars(t *testing.T, doc []byte) map[string]bar {
	t.Helper()
	var d struct {
		Rects []struct {
			Class string  `xml:"class,attr"`
			X     float64 `xml:"x,attr"`
			Width float64 `xml:"width,attr"`
		} `xml:"rect"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	bars := map[string]bar{}
	for _, r := range d.Rects {
		if c := strings.Fields(r.Class); len(c) == 2 && c[0] == "attempt" {
			bars[c[1]] = bar{r.X, r.Width}
		}
	}
	return bars
}

// TestSVGCancelledQuery: a DNS query that the end of the race cancelled
// (the demo's slow AAAA) is drawn pale and says it was not needed, while
// a query that failed on its own is drawn as an error.
func TestSVGCancelledQuery(t *testing.T) {
	ms := time.Millisecond
	rep := &dialer.Report{
		URL: "wss://x.test/", Kind: "websocket", Duration: 53 * ms, Winner: 0,
		DNS: []dialer.DNSQuery{
			{Name: "x.test", Type: "HTTPS", Start: 0, End: ms, Err: "SERVFAIL"},
			{Name: "x.test", Type: "AAAA", Start: 0, End: 53 * ms, Err: "dns: AAAA x.test. from 127.0.0.1:53: context canceled"},
			{Name: "x.test", Type: "A", Start: 0, End: ms, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		},
		Attempts: []dialer.Attempt{{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Proto: "h3", Start: 50 * ms, End: 53 * ms, Outcome: "won"}},
	}
	var b bytes.Buffer
	if err := svgReport(&b, []*dialer.Report{rep}, nil); err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, r := range doc.Rects {
		if strings.HasPrefix(r.Class, "dns") {
			classes = append(classes, r.Class)
		}
	}
	if want := []string{"dns error", "dns cancelled", "dns"}; !slices.Equal(classes, want) {
		t.Errorf("DNS bars %q, want %q", classes, want)
	}
	var notes []string
	for _, tx := range svgTexts(t, b.Bytes()) {
		if tx.class == "note" {
			notes = append(notes, tx.text)
		}
	}
	if len(notes) < 2 || notes[1] != "not needed: race over" || strings.Contains(strings.Join(notes, "\n"), "canceled") {
		t.Errorf("notes %q: the cancelled AAAA must read as not needed, not as an error", notes)
	}
}
