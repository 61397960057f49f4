package interop

import (
	"os/exec"
	"strings"
	"testing"
)

// TestKnotStarts starts Knot with the test zone and asks it with kdig.
func TestKnotStarts(t *testing.T) {
	r := need(t, knot, "serves the resolver test zone", kdig)
	addr := startKnot(t, knotOrigin, knotZone)
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command(kdig.path(), "@"+host, "-p", port, "+short", "www.example.test", "A").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "127.0.0.1" {
		t.Fatalf("kdig www A: %v\n%s", err, out)
	}
	r.proto = "DNS"
}
