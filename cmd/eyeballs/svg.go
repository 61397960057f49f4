package main

import (
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/durfmt"
)

// Waterfall image geometry, in SVG user units (pixels).
const (
	svgWidth   = 960
	svgPad     = 16
	svgLabelW  = 260 // the label column, left of the time axis
	svgNoteW   = 190 // the outcome column, right of the time axis
	svgRowH    = 20
	svgBarH    = 12
	svgDNSBarH = 5
	svgGap     = 8 // between a column's text and the plot
	// svgMinWon is the narrowest a winning attempt's bar gets, however
	// short the attempt next to the race: never a sliver.
	svgMinWon = 8
	svgMinBar = 2 // the narrowest any other bar gets
)

// Plot area: the time axis runs from svgX0 to svgX1.
const (
	svgX0 = svgPad + svgLabelW
	svgX1 = svgWidth - svgPad - svgNoteW
)

// Widths, in pixels, that text may take: a label left of the plot, a note
// right of it, a line across the image.
const (
	svgLabelMax = svgLabelW - svgGap
	svgNoteMax  = svgNoteW + svgPad/2 - svgGap
	svgLineMax  = svgWidth - 2*svgPad
)

// outcomes are the attempt outcomes the legend shows, in its order.
func outcomes() []string { return []string{"won", "lost", "failed", "incapable", "aborted"} }

// outcomeColors returns the bar colour of an attempt outcome and the darker
// colour of its marks.
func outcomeColors(outcome string) (fill, dark string) {
	switch outcome {
	case "won":
		return "#2e9d48", "#145a26"
	case "lost":
		return "#a4a4a4", "#555555"
	case "failed":
		return "#d9383a", "#7f1416"
	case "incapable":
		return "#f08a0c", "#8a4b00"
	case "aborted":
		return "#8e44ad", "#4a1f5e"
	}
	return "#5b7f95", "#2c4150"
}

// svgReport writes the races as one SVG image: for each report, under its
// title, a time axis with tick labels, a thin grey bar per DNS query and a
// bar per attempt from its start to its end, coloured by outcome, with a
// dark tick when the transport connected and a diamond when the server's
// SETTINGS arrived; a legend is on top. Attempt bars have the class
// "attempt" (and the outcome); every bar has a tooltip with the details.
// All text is XML-escaped. Nil reports are skipped; a missing title is the
// report's URL.
func svgReport(w io.Writer, reports []*dialer.Report, titles []string) error {
	var body strings.Builder
	y := svgLegend(&body, svgPad)
	for i, r := range reports {
		if r == nil {
			continue
		}
		title := r.URL
		if i < len(titles) {
			title = titles[i]
		}
		y = svgWaterfall(&body, r, title, y+8)
	}
	height := y + svgPad
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="#222">`+"\n",
		svgWidth, height, svgWidth, height)
	b.WriteString("<title>Happy Eyeballs races</title>\n")
	fmt.Fprintf(&b, `<rect class="background" x="0" y="0" width="%d" height="%d" fill="#fff"/>`+"\n", svgWidth, height)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgLegend draws the legend at y and returns the y below it.
func svgLegend(b *strings.Builder, y int) int {
	x, mid := svgPad, y+8
	for _, o := range outcomes() {
		fill, _ := outcomeColors(o)
		fmt.Fprintf(b, `<rect class="swatch swatch-%s" x="%d" y="%d" width="16" height="%d" fill="%s"/>`, o, x, mid-svgBarH/2, svgBarH, fill)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+21, mid+4, o)
		x += 36 + 7*len(o)
	}
	fmt.Fprintf(b, `<rect class="swatch swatch-dns" x="%d" y="%d" width="16" height="%d" fill="#b8b8b8"/>`, x, mid-svgDNSBarH/2, svgDNSBarH)
	fmt.Fprintf(b, `<text x="%d" y="%d">DNS query</text>`+"\n", x+21, mid+4)
	x += 100
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="3" height="%d" fill="#333"/>`, x, mid-svgBarH/2, svgBarH)
	fmt.Fprintf(b, `<text x="%d" y="%d">connected</text>`+"\n", x+8, mid+4)
	x += 84
	b.WriteString(diamond(float64(x+5), float64(mid), "#333", "SETTINGS arrived"))
	fmt.Fprintf(b, `<text x="%d" y="%d">SETTINGS</text>`+"\n", x+14, mid+4)
	x += 84
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1a5fb4" stroke-width="1.5" stroke-dasharray="4 3"/>`, x+4, mid-8, x+4, mid+8)
	fmt.Fprintf(b, `<text x="%d" y="%d">ready</text>`+"\n", x+12, mid+4)
	return y + 24
}

// svgWaterfall draws one race at y and returns the y below it.
func svgWaterfall(b *strings.Builder, r *dialer.Report, title string, y int) int {
	total := span(r)
	scale := float64(svgX1-svgX0) / float64(total)
	xOf := func(d time.Duration) float64 {
		return svgX0 + float64(min(max(d, 0), total))*scale
	}

	for _, line := range wrapText(title, svgLineMax, 15, true, 3) {
		y += 16
		fmt.Fprintf(b, `<text class="title" x="%d" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", svgPad, y, esc(line))
	}
	sub := fmt.Sprintf("%s %s, %s", r.Kind, r.URL, durfmt.Format(r.Duration))
	if r.Ready > 0 {
		sub += fmt.Sprintf(", ready after %s", durfmt.Format(r.Ready))
	}
	if r.Err != "" {
		sub += ", failed: " + r.Err
	}
	y += 2
	for _, line := range wrapText(sub, svgLineMax, 12, false, 3) {
		y += 14
		fmt.Fprintf(b, `<text class="subtitle" x="%d" y="%d" fill="#666">%s</text>`+"\n", svgPad, y, esc(line))
	}

	// Time axis: tick labels, the axis line and a grid line per tick.
	y += 22
	axisY := y + 5
	rows := len(r.DNS) + len(r.Attempts)
	bottom := axisY + 6 + rows*svgRowH
	step := tickStep(total)
	b.WriteString(`<g class="axis" font-size="11" fill="#555">` + "\n")
	for t := time.Duration(0); t <= total; t += step {
		x := xOf(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`, x, axisY, x, bottom)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888"/>`, x, axisY-3, x, axisY+3)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y-2, tickLabel(t))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", svgX0, axisY, svgX1, axisY)
	b.WriteString("</g>\n")

	rowY := axisY + 6
	for _, q := range r.DNS {
		svgDNSRow(b, r, q, rowY, xOf)
		rowY += svgRowH
	}
	for i, a := range r.Attempts {
		svgAttemptRow(b, a, i == r.Winner, rowY, xOf)
		rowY += svgRowH
	}
	if r.Ready > 0 && r.Ready <= total {
		x := xOf(r.Ready)
		fmt.Fprintf(b, `<line class="ready" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a5fb4" stroke-width="1.5" stroke-dasharray="4 3"><title>ready after %s</title></line>`+"\n",
			x, axisY, x, bottom, durfmt.Format(r.Ready))
	}
	y = bottom + 2
	if r.Reason != "" {
		for _, line := range wrapText("⇒ "+r.Reason, svgLineMax, 12, false, 2) {
			y += 14
			fmt.Fprintf(b, `<text class="reason" x="%d" y="%d" fill="#444" font-style="italic">%s</text>`+"\n", svgPad, y, esc(line))
		}
		y += 8
	}
	return y + 8
}

// svgDNSRow draws a DNS query as a thin bar: grey for an answer, red for
// an error, and pale for a query the end of the race cut short (no answer
// yet, or cancelled): that is no error, the race no longer needed it.
func svgDNSRow(b *strings.Builder, r *dialer.Report, q dialer.DNSQuery, y int, xOf func(time.Duration) float64) {
	end, fill, class, noteFill := q.End, "#b8b8b8", "dns", "#666"
	note := dnsResult(q)
	detail := note
	switch {
	case cutByRace(r, q):
		if end == 0 {
			end = r.Duration
		}
		fill, class, noteFill = "#e4e4e4", "dns cancelled", "#999"
		note = "not needed: race over"
		detail = "cancelled when the race ended"
		if q.Err != "" {
			detail += " (" + q.Err + ")"
		}
	case q.End == 0:
		end, fill, class = r.Duration, "#e4e4e4", "dns cancelled"
	case q.Err != "":
		fill, class, noteFill = "#e8a3a4", "dns error", "#b3261e"
	}
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" fill="#666">%s</text>`, svgPad, y+svgRowH/2+4, esc(fitText("dns "+q.Type+" "+q.Name, svgLabelMax, 12, false)))
	x0, x1 := xOf(q.Start), xOf(end)
	fmt.Fprintf(b, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
		class, x0, y+(svgRowH-svgDNSBarH)/2, max(x1-x0, 1.5), svgDNSBarH, fill,
		esc(fmt.Sprintf("%s %s: %s\nasked at %s, took %s", q.Type, q.Name, detail, durfmt.Format(q.Start), durfmt.Format(end-q.Start))))
	fmt.Fprintf(b, `<text class="note" x="%d" y="%d" fill="%s">%s</text>`+"\n", svgX1+svgGap, y+svgRowH/2+4, noteFill, esc(fitText(note, svgNoteMax, 12, false)))
}

// cutByRace reports whether q ended because the race did: it had no answer
// yet, or failed (cancelled) no earlier than the winner won.
func cutByRace(r *dialer.Report, q dialer.DNSQuery) bool {
	if r.Winner < 0 || r.Winner >= len(r.Attempts) {
		return false
	}
	return q.End == 0 || (q.Err != "" && q.End >= r.Attempts[r.Winner].End)
}

// svgAttemptRow draws a connection attempt as a bar coloured by outcome,
// with its connected tick and SETTINGS marker.
func svgAttemptRow(b *strings.Builder, a dialer.Attempt, won bool, y int, xOf func(time.Duration) float64) {
	fill, dark := outcomeColors(a.Outcome)
	label := a.Proto + " " + a.Addr.String()
	weight := "normal"
	if won {
		weight = "bold"
	}
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" font-weight="%s">%s</text>`, svgPad, y+svgRowH/2+4, weight, esc(fitText(label, svgLabelMax, 12, won)))

	note := a.Outcome
	if a.Version != "" {
		note += " " + a.Version
	}
	note += " " + durfmt.Format(a.End-a.Start)
	tip := fmt.Sprintf("%s: %s\nstart %s", label, note, durfmt.Format(a.Start))
	if a.Connected > 0 {
		tip += ", connected " + durfmt.Format(a.Connected)
	}
	tip += ", end " + durfmt.Format(a.End)
	if a.Hint {
		tip += "\naddress from an SVCB hint"
	}
	if a.Err != "" {
		tip += "\n" + a.Err
	}
	barY := y + (svgRowH-svgBarH)/2
	x0, x1 := xOf(a.Start), xOf(a.End)
	w := max(x1-x0, svgMinBar)
	if won {
		// However short next to the race, the winner shows as a bar,
		// kept inside the plot.
		w = max(w, svgMinWon)
		x0 = min(x0, svgX1-w)
	}
	fmt.Fprintf(b, `<rect class="attempt %s" x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"><title>%s</title></rect>`,
		esc(a.Outcome), x0, barY, w, svgBarH, fill, esc(tip))
	if a.Connected > 0 {
		fmt.Fprintf(b, `<rect class="connected" x="%.1f" y="%d" width="3" height="%d" fill="%s"><title>connected after %s</title></rect>`,
			xOf(a.Connected)-1.5, barY, svgBarH, dark, durfmt.Format(a.Connected))
	}
	if s := a.Settings; s != nil {
		b.WriteString(diamond(xOf(s.At), float64(barY)+svgBarH/2, dark,
			fmt.Sprintf("SETTINGS at %s: extended CONNECT %s, datagrams %s, WebTransport %s",
				durfmt.Format(s.At), yesNo(s.ExtendedConnect), yesNo(s.Datagrams), yesNo(s.WebTransport))))
	}
	if a.Err != "" && a.Outcome != "lost" { // a loser's error is the cancellation
		note += ": " + a.Err
	}
	fmt.Fprintf(b, `<text class="note" x="%d" y="%d" fill="%s">%s</text>`+"\n", svgX1+svgGap, y+svgRowH/2+4, dark, esc(fitText(note, svgNoteMax, 12, false)))
}

// diamond returns a SETTINGS marker centred on (x, y) with a tooltip.
func diamond(x, y float64, fill, tip string) string {
	const r = 5
	return fmt.Sprintf(`<path class="settings" d="M%.1f %.1fl%d %dl%d %dl%d %dz" fill="%s" stroke="#fff" stroke-width="1"><title>%s</title></path>`,
		x, y-r, r, r, -r, r, -r, -r, fill, esc(tip))
}

// dnsResult summarises a DNS query's answer.
func dnsResult(q dialer.DNSQuery) string {
	switch {
	case q.Err != "":
		return q.Err
	case q.End == 0:
		return "no answer"
	case len(q.Services) > 0:
		parts := make([]string, len(q.Services))
		for i, s := range q.Services {
			parts[i] = fmt.Sprintf("%d alpn=%s", s.Priority, strings.Join(s.ALPN, ","))
			if s.Port != 0 {
				parts[i] += fmt.Sprintf(" port=%d", s.Port)
			}
		}
		return strings.Join(parts, "; ")
	case len(q.Addrs) > 0:
		parts := make([]string, len(q.Addrs))
		for i, a := range q.Addrs {
			parts[i] = a.String()
		}
		return strings.Join(parts, " ")
	}
	return "no records"
}

// span returns the length of the race's time axis: the latest moment
// anything in the report happened, and at least a millisecond.
func span(r *dialer.Report) time.Duration {
	total := max(r.Duration, r.Ready, time.Millisecond)
	for _, q := range r.DNS {
		total = max(total, q.End)
	}
	for _, a := range r.Attempts {
		total = max(total, a.End, a.Connected)
		if a.Settings != nil {
			total = max(total, a.Settings.At)
		}
	}
	return total
}

// tickStep returns a round step (1, 2 or 5 times a power of ten) that
// divides total into four to ten ticks.
func tickStep(total time.Duration) time.Duration {
	raw := float64(total) / 5
	exp := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*exp >= raw {
			return max(time.Duration(m*exp), time.Microsecond)
		}
	}
	return time.Duration(10 * exp)
}

// tickLabel formats a tick's time: "0", "250µs", "40ms", "1.5s".
func tickLabel(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', -1, 64) + "µs"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// textWidth estimates the width in pixels of s in the image's sans-serif
// font at size px, on the wide side: the widths are Arial's, plus a tenth
// for the wider system fonts the image asks for first.
func textWidth(s string, size float64, bold bool) float64 {
	em := 0.0
	for _, c := range s {
		em += runeWidth(c)
	}
	w := em * size * 1.1
	if bold {
		w *= 1.08
	}
	return w
}

// runeWidth returns the advance of c in em.
func runeWidth(c rune) float64 {
	switch {
	case strings.ContainsRune("ijlI!|.,:;'`", c):
		return 0.28
	case strings.ContainsRune(" ftr()[]{}/\\-", c):
		return 0.34
	case strings.ContainsRune("mwMW@%", c):
		return 0.95
	case c >= 'A' && c <= 'Z':
		return 0.72
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return 0.56
	case c < 0x80:
		return 0.6
	case unicode.Is(unicode.Han, c), unicode.Is(unicode.Hangul, c), unicode.Is(unicode.Hiragana, c),
		unicode.Is(unicode.Katakana, c), c >= 0x1F300:
		return 1.0
	}
	return 1.0 // ⇒, …, µ and the rest: as wide as the widest
}

// fitText shortens s, ending it with "…", so that it takes at most max
// pixels.
func fitText(s string, max float64, size float64, bold bool) string {
	if textWidth(s, size, bold) <= max {
		return s
	}
	r := []rune(s)
	for n := len(r) - 1; n > 0; n-- {
		if t := string(r[:n]) + "…"; textWidth(t, size, bold) <= max {
			return t
		}
	}
	return "…"
}

// wrapText breaks s into at most n lines of at most max pixels, at spaces
// where it can (a word too long for a line is cut), the last line
// shortened with "…" if s does not fit.
func wrapText(s string, max float64, size float64, bold bool, n int) []string {
	var lines []string
	rest := strings.Fields(s)
	for len(rest) > 0 && len(lines) < n {
		line := rest[0]
		if textWidth(line, size, bold) > max {
			// A word longer than a line: cut it.
			r := []rune(line)
			k := len(r)
			for k > 1 && textWidth(string(r[:k]), size, bold) > max {
				k--
			}
			line, rest = string(r[:k]), append([]string{string(r[k:])}, rest[1:]...)
		} else {
			rest = rest[1:]
			for len(rest) > 0 && textWidth(line+" "+rest[0], size, bold) <= max {
				line, rest = line+" "+rest[0], rest[1:]
			}
		}
		lines = append(lines, line)
	}
	if len(rest) > 0 {
		last := lines[len(lines)-1] + " " + strings.Join(rest, " ")
		lines[len(lines)-1] = fitText(last, max, size, bold)
	}
	return lines
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// htmlReport writes an HTML page showing the races as the SVG of svgReport,
// followed by their text waterfalls.
func htmlReport(w io.Writer, reports []*dialer.Report, titles []string) error {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>eyeballs: Happy Eyeballs races</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
svg { max-width: 100%; height: auto; }
pre { font-size: 12px; background: #f6f6f6; padding: 1em; overflow-x: auto; }
</style>
</head>
<body>
<h1>Happy Eyeballs races</h1>
<p>Each attempt is a bar from its start to its end, coloured by outcome; hover over a bar for its details.</p>
`)
	if err := svgReport(&b, reports, titles); err != nil {
		return err
	}
	b.WriteString("<h2>As text</h2>\n<pre>")
	for i, r := range reports {
		if r == nil {
			continue
		}
		if i < len(titles) {
			b.WriteString(html.EscapeString("## "+titles[i]) + "\n")
		}
		b.WriteString(html.EscapeString(r.String()) + "\n")
	}
	b.WriteString("</pre>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
