package dialer

import (
	"os"
	"strings"
	"testing"

	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// TestRequirementsNotMetPinned pins the one reading of a dependency's
// error text (wtreq.go) to the webtransport-go version it was checked
// against: when go.mod moves to another version, it fails until the
// messages of RequirementsNotMetError in that version's client_conn.go
// are compared with wtRequirements and pinned is updated.
func TestRequirementsNotMetPinned(t *testing.T) {
	const (
		module = "github.com/quic-go/webtransport-go"
		pinned = "v0.13.0"
	)
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for line := range strings.Lines(string(mod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == module {
			version = f[1]
		}
	}
	if version != pinned {
		t.Fatalf("go.mod requires %s %q; wtreq.go was checked against %s: compare RequirementsNotMetError's messages in its client_conn.go with wtRequirements, then update pinned", module, version, pinned)
	}
	// The messages of webtransport-go v0.13.0, (*ClientConn).dial, and
	// the bit each says is missing.
	for _, tc := range []struct {
		msg  string
		want hev3.Settings
	}{
		{"server didn't enable QUIC datagram support", hev3.Settings{ExtendedConnect: true, WebTransport: true}},
		{"server didn't enable QUIC stream reset partial delivery", hev3.Settings{ExtendedConnect: true, Datagrams: true}},
		{"server didn't enable Extended CONNECT", hev3.Settings{Datagrams: true, WebTransport: true}},
		{"server didn't enable HTTP/3 datagram support", hev3.Settings{ExtendedConnect: true, WebTransport: true}},
		{"server didn't enable WebTransport", hev3.Settings{ExtendedConnect: true, Datagrams: true}},
		// A message of another version is not a capability proved.
		{"server didn't enable something new", hev3.Settings{ExtendedConnect: true, Datagrams: true}},
	} {
		if got := requirementsNotMet(&webtransport.RequirementsNotMetError{Message: tc.msg}); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.msg, got, tc.want)
		}
	}
	if len(wtRequirements) != 5 {
		t.Errorf("%d messages mapped, want the 5 of %s", len(wtRequirements), pinned)
	}
}
