package interop

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eyeballs/dialer"
)

// TestKnotResolveCLI runs "eyeballs resolve" against Knot: its record
// lines are kdig's answers, type by type (CNAMEs and aliases included),
// and -json carries the same records as data.
func TestKnotResolveCLI(t *testing.T) {
	r := need(t, knot, "eyeballs resolve prints what kdig prints", kdig)
	r.proto = "DNS"
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build eyeballs with")
	}
	bin := filepath.Join(t.TempDir(), "eyeballs")
	build := exec.Command(gobin, "build", "-o", bin, "../cmd/eyeballs")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := startKnot(t, knotOrigin, knotZone)
	for _, c := range []struct {
		name  string
		chain map[string][]string // per type, the names kdig is asked
	}{
		{"www.example.test", nil},
		{"chain.example.test", nil},
		{"svc.example.test", nil},
		{"https://svc.example.test:8443/", map[string][]string{"HTTPS": {"_8443._https.svc.example.test"}, "A": {"svc.example.test"}, "AAAA": {"svc.example.test"}}},
		{"example.test", map[string][]string{"HTTPS": {"example.test", "cdn.example.test"}}},
		{"alias2.example.test", map[string][]string{"HTTPS": {"alias2.example.test", "alias.example.test", "svc.example.test"}}},
		{"gone.example.test", nil},
	} {
		out, err := exec.Command(bin, "resolve", "-nameserver", addr, c.name).Output()
		if err != nil {
			t.Errorf("eyeballs resolve %s: %v\n%s", c.name, err, out)
			continue
		}
		var got, endpoints []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			switch {
			case strings.HasPrefix(line, ";; endpoint "):
				endpoints = append(endpoints, line)
			case !strings.HasPrefix(line, ";"):
				got = append(got, normRecord(line))
			}
		}
		var want []string
		host := strings.TrimSuffix(strings.TrimPrefix(c.name, "https://"), "/")
		host, _, _ = strings.Cut(host, ":")
		for _, typ := range []string{"A", "AAAA", "HTTPS"} {
			names := c.chain[typ]
			if names == nil {
				names = []string{host}
			}
			want = append(want, kdigChain(t, addr, typ, names...)...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("eyeballs resolve %s:\n  ours %q\n  kdig %q", c.name, got, want)
		}
		if len(endpoints) == 0 {
			t.Errorf("eyeballs resolve %s printed no endpoint:\n%s", c.name, out)
		}

		out, err = exec.Command(bin, "resolve", "-json", "-nameserver", addr, c.name).Output()
		var res dialer.Resolution
		if err != nil || json.Unmarshal(out, &res) != nil {
			t.Errorf("eyeballs resolve -json %s: %v\n%s", c.name, err, out)
			continue
		}
		var fromJSON []string
		for _, q := range []dialer.DNSQuery{res.A, res.AAAA, res.HTTPS} {
			fromJSON = append(fromJSON, ours(q)...)
		}
		if !slices.Equal(fromJSON, want) || len(res.Endpoints) != len(endpoints) {
			t.Errorf("eyeballs resolve -json %s: records %q, %d endpoints; want %q, %d", c.name, fromJSON, len(res.Endpoints), want, len(endpoints))
		}
	}
}
