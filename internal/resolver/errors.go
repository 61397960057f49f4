package resolver

import (
	"errors"

	"github.com/eyeballs/dialer/internal/hev3"
)

// Sentinel errors, matched with errors.Is against Answer.Err.
var (
	// ErrNXDomain: the name does not exist.
	ErrNXDomain = errors.New("NXDOMAIN")
	// ErrServFail: the server failed to resolve the name.
	ErrServFail = errors.New("SERVFAIL")
	// ErrRefused: the server refused the query.
	ErrRefused = errors.New("REFUSED")
	// ErrRcode: the server answered with another error rcode.
	ErrRcode = errors.New("error rcode")
	// ErrMalformed: the reply could not be parsed or did not match the
	// query (ID, question), or was truncated over TCP.
	ErrMalformed = errors.New("malformed reply")
	// ErrTimeout: no reply in time. Errors from an expired context match
	// both ErrTimeout and context.DeadlineExceeded.
	ErrTimeout = errors.New("timeout")
	// ErrLoop: a CNAME or HTTPS AliasMode chain loops or is too long.
	ErrLoop = errors.New("CNAME or alias loop")
	// ErrInvalidName: the name is not a valid domain name.
	ErrInvalidName = errors.New("invalid name")
)

// Error is a failed query for one name and type. When several servers
// failed, Answer.Err joins one Error per server.
type Error struct {
	Name   string // the name queried, fully qualified
	Type   hev3.RecordType
	Server string // the server asked; "" if none was
	Err    error
}

func (e *Error) Error() string {
	s := "dns: " + e.Type.String() + " " + e.Name
	if e.Server != "" {
		s += " from " + e.Server
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
