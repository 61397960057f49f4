package interop

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/eyeballs/dialer/internal/testkit"
)

// TestMain re-executes the test binary with GODEBUG=http2xconnect=1, which
// the Go-served HTTP/2 baseline of the round-trip measurements needs to
// offer RFC 8441, then checks for leaked goroutines.
func TestMain(m *testing.M) {
	if code, ok := testkit.EnsureXConnect(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}
