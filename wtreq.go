package dialer

import (
	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// This file is the one place where the package reads a dependency's error
// text. webtransport-go checks the server's QUIC transport parameters and
// HTTP/3 SETTINGS before it requests a session, and says which requirement
// is not met only in RequirementsNotMetError.Message; it does not expose
// the SETTINGS of the connections it owns. The messages below are those of
// webtransport-go v0.13.0 (client_conn.go, (*ClientConn).dial);
// TestRequirementsNotMetPinned fails when go.mod moves to another version,
// so that they are checked again.

// wtRequirements maps each message of a RequirementsNotMetError to the
// capability bits it reports missing.
var wtRequirements = map[string]hev3.Settings{
	"server didn't enable QUIC datagram support":              {ExtendedConnect: true, WebTransport: true},
	"server didn't enable QUIC stream reset partial delivery": {ExtendedConnect: true, Datagrams: true},
	"server didn't enable Extended CONNECT":                   {Datagrams: true, WebTransport: true},
	"server didn't enable HTTP/3 datagram support":            {ExtendedConnect: true, WebTransport: true},
	"server didn't enable WebTransport":                       {ExtendedConnect: true, Datagrams: true},
}

// requirementsNotMet returns the capability bits of a server that failed
// webtransport-go's check with e: every bit set but the one e reports
// missing. A message it does not know leaves WebTransport unset, so that
// the attempt is incapable rather than a winner without a session.
func requirementsNotMet(e *webtransport.RequirementsNotMetError) hev3.Settings {
	if s, ok := wtRequirements[e.Message]; ok {
		return s
	}
	return hev3.Settings{ExtendedConnect: true, Datagrams: true}
}
