package dialer

import (
	"strconv"
	"strings"
	"time"
)

// defaultAltSvcMaxAge is Alt-Svc's default freshness (RFC 7838 §3.1).
const defaultAltSvcMaxAge = 24 * time.Hour

// parseAltSvcH3 reads an Alt-Svc header value (RFC 7838) and returns the
// first "h3" alternative on the same host: its port and max age. "clear"
// gives a zero max age. Alternatives on other hosts are ignored.
func parseAltSvcH3(v string, origPort uint16) (port uint16, maxAge time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "clear" {
		return origPort, 0, true
	}
	for _, alt := range strings.Split(v, ",") {
		params := strings.Split(alt, ";")
		proto, authority, found := strings.Cut(strings.TrimSpace(params[0]), "=")
		if !found || proto != "h3" {
			continue
		}
		authority = strings.Trim(authority, `"`)
		host, p, found := strings.Cut(authority, ":")
		if !found || host != "" {
			continue
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			continue
		}
		maxAge = defaultAltSvcMaxAge
		for _, param := range params[1:] {
			k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
			if k == "ma" {
				if s, err := strconv.ParseUint(strings.Trim(val, `"`), 10, 32); err == nil {
					maxAge = time.Duration(s) * time.Second
				}
			}
		}
		return uint16(n), maxAge, true
	}
	return 0, 0, false
}
