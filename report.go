package dialer

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/eyeballs/dialer/internal/durfmt"
)

// A Report is the record of one race: every DNS query and every connection
// attempt with its timing and outcome, and why the winner won. Times are
// offsets from Start. A Report encodes to JSON and back without loss.
//
// A Report's size is bounded whatever DNS answers: a race sends at most 11
// queries and makes at most 64 attempts (internal/hev3's MaxQueries and
// MaxAttempts), and each DNSQuery lists at most 32 addresses or 16
// services (each with at most 16 hints and 8 ALPN IDs); DNSQuery.Omitted
// counts what an answer held beyond that.
//
// In JSON, durations (duration, ready, and every start and end) are
// integers in nanoseconds, as time.Duration encodes; Start is RFC 3339.
type Report struct {
	URL string `json:"url"`
	// Kind is what the race dialed: "websocket" (DialWebSocket),
	// "webtransport" (DialWebTransport), "http" (a Transport's race for an
	// https origin) or "tcp" (DialContext, and the Transport's plain
	// connections).
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	// Duration is how long the race took; Ready is when the session was
	// ready (after the WebSocket handshake), or 0.
	Duration time.Duration `json:"duration"`
	Ready    time.Duration `json:"ready,omitempty"`
	DNS      []DNSQuery    `json:"dns,omitempty"`
	Attempts []Attempt     `json:"attempts,omitempty"`
	// Winner is the index in Attempts of the winning attempt, or -1.
	Winner int `json:"winner"`
	// Reason says why the winner won, or why the race failed.
	Reason string `json:"reason"`
	// Err is the dial's error, if it failed.
	Err string `json:"error,omitempty"`
	// Learned lists, one line each, what the Dialer had learned on the
	// network the host is on that shaped this race: a path that went
	// silent before and was tried last, QUIC known to work (h3 first on
	// both families), an attempt delay from a measured RTT
	// (draft-ietf-happy-happyeyeballs-v3 §5.3, §6). Empty: the race ran
	// as on a network never seen.
	Learned []string `json:"learned,omitempty"`
	// HTTPSUnavailable says why the race had no HTTPS records to ask
	// for, when its resolver cannot give them: WithResolver, or Go's
	// net.Resolver on macOS and Windows or where resolv.conf cannot be
	// read. "" when they were asked for (or not wanted, as for ws://).
	HTTPSUnavailable string `json:"https_unavailable,omitempty"`
	// Proxy is the proxy the race went through (WithProxy), or nil: the
	// attempts' addresses are then the proxy's.
	Proxy *ProxyHop `json:"proxy,omitempty"`

	// results holds the typed record of each attempt, in the order of
	// Attempts: what the Dialer learns from. It is not encoded.
	results []attemptResult
}

// A DNSQuery is one DNS question of a race and its answer.
type DNSQuery struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"` // "HTTPS", "AAAA", "A"
	Start    time.Duration  `json:"start"`
	End      time.Duration  `json:"end"` // 0 if no answer came before the race ended
	Addrs    []netip.Addr   `json:"addrs,omitempty"`
	Services []ServiceEntry `json:"services,omitempty"`
	Err      string         `json:"error,omitempty"`
	// Omitted counts the addresses, records, hints and ALPN IDs of the
	// answer that the dialer left out: past the bounds on what one race
	// uses, they are neither used nor listed here.
	Omitted int `json:"omitted,omitempty"`
	// Records are the DNS records the answer was read from, as dig shows
	// them (see DNSRecord); only Resolve fills them in, with
	// RecordsOmitted counting those past resolver.MaxRecords.
	Records        []DNSRecord `json:"records,omitempty"`
	RecordsOmitted int         `json:"recordsOmitted,omitempty"`
	// Found is the name that answered when the search list of
	// resolv.conf made it differ from Name (see WithResolvConf).
	Found string `json:"found,omitempty"`
}

// A ServiceEntry is one HTTPS (SVCB) ServiceMode record as the dialer used it.
type ServiceEntry struct {
	Priority uint16       `json:"priority"`
	Target   string       `json:"target,omitempty"`
	ALPN     []string     `json:"alpn,omitempty"`
	Port     uint16       `json:"port,omitempty"`
	Hints    []netip.Addr `json:"hints,omitempty"`
	ECH      bool         `json:"ech,omitempty"`
}

// An Attempt is one connection attempt of a race.
type Attempt struct {
	Addr   netip.AddrPort `json:"addr"`
	Proto  string         `json:"proto"` // what was offered: "h3", "h2,h1", "h2", "h1", "tcp"
	Family string         `json:"family"`
	Hint   bool           `json:"hint,omitempty"` // address came from an SVCB hint
	ECH    bool           `json:"ech,omitempty"`
	Start  time.Duration  `json:"start"`

	// ECH (above): the endpoint's HTTPS record carried an ECH
	// configuration (RFC 9849, RFC 9848). ECHResult says what came of it,
	// once known: "accepted"; "retried" (rejected with retry
	// configurations, accepted on the one retry); "disabled" (the server
	// securely disabled ECH: the one retry went without it); "rejected"
	// (the attempt failed with an *ECHError); "unusable" (ECH not
	// offered: the record's configurations hold none this client can
	// use, or the TLS configuration caps the version below TLS 1.3).
	// Empty when there was none or the attempt ended before it mattered.
	ECHResult string `json:"ech_result,omitempty"`

	// TCP is when a TCP+TLS attempt's TCP connection was up, or 0.
	TCP time.Duration `json:"tcp,omitempty"`
	// Connected is when the transport (TCP, TLS or QUIC) handshake ended,
	// or 0 if it never did.
	Connected time.Duration `json:"connected,omitempty"`
	End       time.Duration `json:"end"`
	// Resumed says the attempt's TLS handshake (over TCP or QUIC) resumed
	// a session from an earlier connection to the origin under the same
	// TLS configuration (RFC 8446 §2.2) instead of a full handshake.
	Resumed bool `json:"resumed,omitempty"`
	// Tunnel is when the proxy's tunnel to the origin opened (the answer
	// to CONNECT, or SOCKS5's reply), or 0; ProxyStatus is the proxy's
	// status in answer to CONNECT (HTTP proxies).
	Tunnel      time.Duration `json:"tunnel,omitempty"`
	ProxyStatus int           `json:"proxy_status,omitempty"`
	// Version is the negotiated HTTP version ("h1", "h2", "h3"), if any.
	Version string `json:"version,omitempty"`
	// EarlyData is set when a QUIC attempt resumed with 0-RTT: Connected
	// is then when it could send early, before its handshake ended, and
	// Settings are the remembered ones (RFC 9114 §7.2.4.2). "accepted" or
	// "rejected" says what the server did with what was sent early (a
	// rejected request is sent again after the handshake); "sent" that the
	// report was made before the server said; "failed" that the
	// connection ended, or its handshake stalled, before it could say.
	EarlyData string `json:"early_data,omitempty"`
	// Settings are the capabilities the server's HTTP/2 or HTTP/3 SETTINGS
	// advertised, if they arrived.
	Settings *Capabilities `json:"settings,omitempty"`
	// Outcome is "won", "failed", "lost" (cancelled because another attempt
	// won), "incapable" (connected but lacked the capability) or "aborted".
	Outcome string `json:"outcome"`
	Err     string `json:"error,omitempty"`
}

// Capabilities are the capability bits of a server's SETTINGS.
type Capabilities struct {
	At              time.Duration `json:"at"` // when the SETTINGS arrived
	ExtendedConnect bool          `json:"extended_connect"`
	Datagrams       bool          `json:"datagrams,omitempty"`
	WebTransport    bool          `json:"webtransport,omitempty"`
}

// String draws the race as a text waterfall: one line per DNS query and per
// attempt, with a bar on a common time axis.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s  %s\n", r.Kind, r.URL, durfmt.Format(r.Duration))
	x := axis{total: r.Duration}
	if x.total <= 0 {
		x.total = time.Millisecond
	}
	if p := r.Proxy; p != nil {
		fmt.Fprintf(&b, "  proxy %s → %s", p.URL, p.Target)
		if p.Note != "" {
			fmt.Fprintf(&b, " (%s)", p.Note)
		}
		b.WriteByte('\n')
	}
	for _, q := range r.DNS {
		end := q.End
		if end == 0 {
			end = r.Duration
		}
		fmt.Fprintf(&b, "  dns %-5s %-28s |%s| %7s  %s\n", q.Type, trim(q.Name, 28), x.bar(q.Start, end, '-'), durfmt.Format(end-q.Start), q.summary())
	}
	for i, a := range r.Attempts {
		mark, fill := ' ', byte('.')
		if i == r.Winner {
			mark = '*'
		}
		if a.Outcome == outcomeWon.String() {
			fill = '='
		}
		fmt.Fprintf(&b, "%c %-5s %-32s |%s| %7s  %s\n", mark, a.Proto, trim(a.Addr.String(), 32), x.bar(a.Start, a.End, fill), durfmt.Format(a.End-a.Start), a.summary())
	}
	if r.HTTPSUnavailable != "" {
		fmt.Fprintf(&b, "  dns: %s\n", r.HTTPSUnavailable)
	}
	for _, l := range r.Learned {
		fmt.Fprintf(&b, "  learned: %s\n", l)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "  => %s\n", r.Reason)
	}
	return b.String()
}

// An axis is the time axis of a waterfall: total is drawn over barWidth
// characters.
type axis struct{ total time.Duration }

// barWidth is the width of a waterfall's bars in characters.
const barWidth = 40

// bar draws the span from start to end with fill, at least one character
// wide.
func (x axis) bar(start, end time.Duration, fill byte) string {
	s := int(int64(barWidth) * int64(start) / int64(x.total))
	e := int(int64(barWidth) * int64(end) / int64(x.total))
	s, e = min(max(s, 0), barWidth), min(max(e, s+1), barWidth)
	if s == barWidth {
		s, e = barWidth-1, barWidth
	}
	return strings.Repeat(" ", s) + strings.Repeat(string(fill), e-s) + strings.Repeat(" ", barWidth-e)
}

// summary says in a few words what the query's answer held.
func (q DNSQuery) summary() string {
	var what string
	switch {
	case q.Err != "":
		what = q.Err
	case q.End == 0:
		what = "no answer"
	case len(q.Services) > 0:
		what = fmt.Sprintf("%d record(s)", len(q.Services))
		for _, s := range q.Services {
			what += fmt.Sprintf(" [%d alpn=%s", s.Priority, strings.Join(s.ALPN, ","))
			if s.Port != 0 {
				what += fmt.Sprintf(" port=%d", s.Port)
			}
			what += "]"
		}
	case len(q.Addrs) > 0:
		parts := make([]string, len(q.Addrs))
		for i, a := range q.Addrs {
			parts[i] = a.String()
		}
		what = strings.Join(parts, " ")
	default:
		what = "no records"
	}
	if q.Omitted > 0 {
		what += fmt.Sprintf(" (+%d left out)", q.Omitted)
	}
	if q.Found != "" {
		what = "as " + q.Found + ": " + what
	}
	return what
}

// summary says how the attempt ended: its outcome, version and error.
func (a Attempt) summary() string {
	what := a.Outcome
	if a.Tunnel != 0 {
		what += " tunnel"
		if a.ProxyStatus != 0 {
			what += fmt.Sprintf(" %d", a.ProxyStatus)
		}
		if a.TCP != 0 {
			what += " in " + durfmt.Format(a.Tunnel-a.TCP)
		}
		what += ","
	}
	if a.Version != "" {
		what += " " + a.Version
	}
	if a.Resumed {
		what += " resumed"
	}
	if a.EarlyData != "" {
		what += " 0-RTT " + a.EarlyData
	}
	if a.ECHResult != "" {
		what += " (ECH " + a.ECHResult + ")"
	}
	if a.Err != "" {
		what += ": " + a.Err
	}
	return what
}

// trim cuts s, if longer than n bytes, to its first n-1 and an ellipsis.
func trim(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
