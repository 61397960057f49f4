package resolver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Hosts is a hosts file: lower-case names without trailing dot to their
// addresses.
type Hosts map[string][]netip.Addr

// ReadHosts reads a hosts file ("-" or a missing file: none), for lookups
// that do not go through a Resolver (see Static).
func ReadHosts(path string) (Hosts, error) {
	return readHosts(path)
}

// readHosts reads a hosts file into a map from lower-case names without
// trailing dot to addresses. A missing file is an empty map.
func readHosts(path string) (Hosts, error) {
	hosts := make(Hosts)
	if path == "-" {
		return hosts, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return hosts, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns: reading hosts file: %w", err)
	}
	defer f.Close()
	if err := parseHosts(f, hosts); err != nil {
		return nil, fmt.Errorf("dns: reading hosts file %s: %w", path, err)
	}
	return hosts, nil
}

func parseHosts(r io.Reader, hosts map[string][]netip.Addr) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			name = hostKey(name)
			if name != "" && !slices.Contains(hosts[name], addr) {
				hosts[name] = append(hosts[name], addr)
			}
		}
	}
	return sc.Err()
}

// hostKey is the form of a name used for hosts and literal checks: lower
// case without trailing dot.
func hostKey(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
