package dialer

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// A PlannedEndpoint is one attempt a dial to the resolved host would make,
// in the order it would make them if each failed: an address and port, the
// protocol offered ("h3", "h2,h1", ...), whether the address came from an
// HTTPS record's hint and whether the attempt would carry the record's ECH
// configuration.
type PlannedEndpoint struct {
	Addr  netip.AddrPort `json:"addr"`
	Proto string         `json:"proto"`
	Hint  bool           `json:"hint,omitempty"`
	ECH   bool           `json:"ech,omitempty"`
}

// errPlanned is the failure plan reports for every attempt, so that the
// race moves on to the next endpoint.
var errPlanned = errors.New("planned, not dialed")

// plan runs a race's state machine (internal/hev3, the one every dial
// runs) for an HTTP dial to host:port with lookup for its queries and no
// sockets: each query is answered at once, and each attempt fails at once.
// The attempts the machine asks for are the endpoints of the dial, in
// order. Nothing learned about networks or origins is used, so the order
// is that of a first dial on an unknown network; a real dial reorders it
// with what it knows (see the Report).
func plan(ctx context.Context, host string, port uint16, lookup func(context.Context, string, hev3.RecordType) hev3.Answer) []PlannedEndpoint {
	if port == 0 {
		port = 443
	}
	lookup = raceLookup(lookup, host, port, true) // as a race asks
	now := time.Unix(0, 0)
	m := hev3.New(hev3.Config{
		Host:           host,
		Port:           port,
		Versions:       hev3.AllVersions,
		Need:           hev3.NeedHTTP,
		MaxLive:        maxAttemptsPerDial,
		MaxLiveQueries: maxQueriesPerDial,
	}, now)
	var out []PlannedEndpoint
	// Each round answers a query or fails an attempt, or moves the clock
	// to the machine's next timer; the machine's own bounds (hev3.
	// MaxQueries, MaxAttempts) end it.
	for range 4 * (hev3.MaxQueries + hev3.MaxAttempts) {
		if m.Done() || ctx.Err() != nil {
			break
		}
		acts, next := m.Poll(now)
		for _, a := range acts {
			switch a := a.(type) {
			case hev3.StartQuery:
				m.OnDNS(now, a.ID, lookup(ctx, a.Name, a.Type))
			case hev3.StartAttempt:
				ep := a.Endpoint
				out = append(out, PlannedEndpoint{Addr: ep.Addr, Proto: ep.Proto.String(), Hint: ep.Hint, ECH: len(ep.ECH) > 0})
				m.OnFailed(now, a.ID, errPlanned)
			}
		}
		if len(acts) == 0 {
			if next.IsZero() {
				break
			}
			now = next
		}
	}
	return out
}
