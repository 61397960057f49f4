package testkit

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if code, ok := EnsureXConnect(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}
